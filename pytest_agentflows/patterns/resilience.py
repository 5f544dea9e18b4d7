"""Resilience patterns for agents, on the flow's virtual clock: a circuit breaker and retry-with-fallback.

Both wrap any agent (a sync or async callable ``f(input) -> str | AgentResult``, or an object with ``.run``)
and return an agent of the same kind, so they slot into the patterns (``Router(routes={"billing":
breaker(billing)})``) or plain code. Both record what they decide in the flow's decision log, with virtual
timestamps, so a decision snapshot shows when a circuit opened or a fallback answered::

    breaker = CircuitBreaker("billing", failure_threshold=3, reset_timeout=30, flow=agentflow)
    billing = breaker(billing_agent)                       # CircuitOpenError while open
    answer = with_fallback(billing, canned_reply, retries=2, flow=agentflow)

Graceful degradation in a broadcast is :class:`~pytest_agentflows.Broadcast`'s ``min_successes`` and
``timeout``; the "default result on timeout" pattern is plain ``asyncio.wait_for`` (recipes in
``docs/failure-modes.md``).
"""

from __future__ import annotations

import enum
import functools
import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import AgentflowsError, UnrecordedRequestError
from ..runtime._context import AgentScope, current_agent
from ..runtime.clock import RealClock, VirtualClock
from ..runtime.decisions import DecisionLog
from ._base import _is_coroutine_callable, target
from ._errtext import error_text

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["CircuitBreaker", "CircuitOpenError", "CircuitState", "with_fallback"]

DOCS_RESILIENCE = "https://pytest-agentflows.readthedocs.io/en/latest/failure-modes/"


class CircuitState(str, enum.Enum):
    """The state of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    """Calls go through; consecutive failures are counted."""
    OPEN = "open"
    """Calls are refused with :class:`CircuitOpenError` until the reset timeout has passed."""
    HALF_OPEN = "half_open"
    """One trial call goes through: success closes the circuit, failure opens it again."""


class CircuitOpenError(AgentflowsError):
    """A call was refused because the circuit is open (or half-open with its trial call in flight).

    Attributes:
        name: The breaker's name.
        state: ``"open"`` or ``"half_open"``.
        retry_at: Virtual time (seconds) from which a trial call is allowed, or ``None`` (half-open).
    """

    def __init__(self, name: str, state: CircuitState, retry_at: float | None) -> None:
        self.name = name
        self.state = state
        self.retry_at = retry_at
        when = (
            f"a trial call is allowed from t={retry_at:g} s (virtual)"
            if retry_at is not None
            else ("its trial call is still running")
        )
        super().__init__(
            f"circuit {name!r} is {state.value}: the call was refused without calling the agent; {when}. "
            "Give it a fallback (with_fallback(...)) or let the flow handle the error "
            f"(see {DOCS_RESILIENCE})."
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name, self.state, self.retry_at))


def _runtime(
    flow: Flow | None, clock: VirtualClock | None, log: DecisionLog | None
) -> tuple[VirtualClock, DecisionLog]:
    if flow is None:
        from ..runtime._binding import bound_flow

        bound = bound_flow()  # built inside an active flow (the articles' code in a test): use it
        if bound is not None:
            return clock or bound.clock, log or bound.log
    if clock is None:
        clock = flow.clock if flow is not None else RealClock()  # outside any flow: real time
    if log is None:
        log = flow.log if flow is not None else DecisionLog(clock=clock)
    return clock, log


class _DualAgent:
    """An agent with an async ``run`` and a sync ``run_sync`` (wraps pattern-like objects)."""

    def __init__(self, run: Callable[[Any], Any], run_sync: Callable[[Any], Any], name: str) -> None:
        self._run = run
        self.run_sync = run_sync
        self.name = name

    async def run(self, input: Any) -> Any:
        return await self._run(input)

    def __repr__(self) -> str:
        return f"<agent {self.name}>"


def _wrap_agent(
    agent: Any,
    label: str,
    sync_call: Callable[[Callable[[Any], Any], Any], Any],
    async_call: Callable[[Callable[[Any], Any], Any], Any],
) -> Any:
    """An agent of the same kind as ``agent`` whose calls go through ``sync_call`` / ``async_call``."""
    sync_fn = target(agent, sync=True)
    async_fn = target(agent, sync=False)
    if _is_coroutine_callable(sync_fn):  # async only

        async def guarded_async(input: Any) -> Any:
            return await async_call(async_fn, input)

        guarded_async.__name__ = guarded_async.__qualname__ = label
        return guarded_async
    if _is_coroutine_callable(async_fn):  # async .run and sync .run_sync

        async def run(input: Any) -> Any:
            return await async_call(async_fn, input)

        return _DualAgent(run, functools.partial(sync_call, sync_fn), label)

    def guarded(input: Any) -> Any:
        return sync_call(sync_fn, input)

    guarded.__name__ = guarded.__qualname__ = label
    return guarded


async def _await_if_needed(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class CircuitBreaker:
    """A circuit breaker on the virtual clock, usable around any agent.

    ``CircuitBreaker(failure_threshold=5, timeout_seconds=60)`` is the source article's call (its
    ``breaker.call(fn, *args, **kwargs)`` and ``await breaker.call_async(fn, *args, **kwargs)`` too).

    Closed: calls go through; ``failure_threshold`` consecutive failures open the circuit. Open: calls raise
    :class:`CircuitOpenError` at once, without calling the agent, until ``timeout_seconds`` seconds (on the
    flow clock; real seconds outside any flow) have passed since it opened; the first call after that finds
    it half-open. Half-open: that one trial
    call goes through (others are refused while it runs); success closes the circuit, failure opens it
    again for another ``reset_timeout``. Like most breakers, the open → half-open change is seen by the
    first call after the timeout, and is recorded at that call's virtual time.

    Every transition is recorded as a ``circuit_state`` decision (agent = the breaker's name) with
    ``state``, ``previous`` and ``failures`` (consecutive failures counted when it changed).

    Args:
        name: Name in decisions and errors (the protected agent's name reads best); default
            ``"circuit"``.
        failure_threshold: Consecutive failures that open the circuit (>= 1).
        timeout_seconds: Seconds the circuit stays open before a trial call (> 0).
        reset_timeout: The older name of ``timeout_seconds`` (give one of them).
        flow: The flow whose clock and decision log it uses; ``None``: the active flow's, else a real-time
            clock and a log of its own (or ``clock=`` / ``log=``).
        clock: Clock to read (default: the flow's).
        log: Decision log to record to (default: the flow's).
        failures: Exception types that count as failures (default ``Exception``; ``UnrecordedRequestError``
            and ``BaseException``\\ s always propagate uncounted).

    Raises:
        ValueError: for a threshold < 1, a timeout <= 0, or both ``timeout_seconds`` and ``reset_timeout``.

    Use ``breaker(agent)`` (also as a decorator) or ``breaker.wrap(agent)`` to get the protected agent.
    """

    def __init__(
        self,
        name: str = "circuit",
        *,
        failure_threshold: int = 5,
        timeout_seconds: float | None = None,
        reset_timeout: float | None = None,
        flow: Flow | None = None,
        clock: VirtualClock | None = None,
        log: DecisionLog | None = None,
        failures: tuple[type[BaseException], ...] = (Exception,),
    ) -> None:
        if (
            isinstance(failure_threshold, bool)
            or not isinstance(failure_threshold, int)
            or failure_threshold < 1
        ):
            raise ValueError(
                f"CircuitBreaker(failure_threshold=...) must be an int >= 1, got {failure_threshold!r}"
            )
        if timeout_seconds is not None and reset_timeout is not None:
            raise ValueError(
                "CircuitBreaker: give timeout_seconds= or its older name reset_timeout=, not both"
            )
        reset_timeout = timeout_seconds if timeout_seconds is not None else reset_timeout
        if reset_timeout is None:
            reset_timeout = 60.0
        if (
            isinstance(reset_timeout, bool)
            or not isinstance(reset_timeout, (int, float))
            or reset_timeout <= 0
        ):
            raise ValueError(
                f"CircuitBreaker(timeout_seconds=...) must be seconds > 0, got {reset_timeout!r}"
            )
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = float(reset_timeout)
        self.clock, self.log = _runtime(flow, clock, log)
        self.failures = failures
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._count = 0
        self._opened_at = 0.0
        self._trial = False

    # -- state -----------------------------------------------------------------------------------------
    @property
    def timeout_seconds(self) -> float:
        """Seconds the circuit stays open before a trial call (the article's name of ``reset_timeout``)."""
        return self.reset_timeout

    @property
    def state(self) -> CircuitState:
        """The state now (reading it never records a transition)."""
        with self._lock:
            if self._state is CircuitState.OPEN and self._timeout_passed():
                return CircuitState.HALF_OPEN
            return self._state

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted in the closed state."""
        with self._lock:
            return self._count

    def _timeout_passed(self) -> bool:
        return self.clock.now() >= self._opened_at + self.reset_timeout - 1e-9

    def _move(self, state: CircuitState) -> None:
        previous = self._state
        self._state = state
        if state is CircuitState.OPEN:
            self._opened_at = self.clock.now()
        self.log.record(
            "circuit_state", agent=self.name, state=state.value, previous=previous.value, failures=self._count
        )

    def _before(self) -> bool:
        """Admit a call (``True`` for a half-open trial) or raise :class:`CircuitOpenError`."""
        with self._lock:
            if self._state is CircuitState.OPEN:
                if not self._timeout_passed():
                    raise CircuitOpenError(self.name, CircuitState.OPEN, self._opened_at + self.reset_timeout)
                self._move(CircuitState.HALF_OPEN)
            if self._state is CircuitState.HALF_OPEN:
                if self._trial:
                    raise CircuitOpenError(self.name, CircuitState.HALF_OPEN, None)
                self._trial = True
                return True
            return False

    def _after(self, trial: bool, error: BaseException | None) -> None:
        with self._lock:
            if trial:
                self._trial = False
            if error is not None and (
                isinstance(error, UnrecordedRequestError) or not isinstance(error, self.failures)
            ):
                return  # not a failure of the agent (cancellation, missing cassette entry...)
            if error is None:
                if self._state is CircuitState.HALF_OPEN:
                    self._count = 0
                    self._move(CircuitState.CLOSED)
                self._count = 0
                return
            self._count += 1
            if self._state is CircuitState.HALF_OPEN or (
                self._state is CircuitState.CLOSED and self._count >= self.failure_threshold
            ):
                self._move(CircuitState.OPEN)

    def reset(self) -> None:
        """Close the circuit (records a transition if it was not closed) and forget the failures."""
        with self._lock:
            self._count = 0
            self._trial = False
            if self._state is not CircuitState.CLOSED:
                self._move(CircuitState.CLOSED)

    # -- calling ---------------------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)`` (sync) through the breaker.

        Raises:
            CircuitOpenError: when open (``fn`` is not called).
            Exception: whatever ``fn`` raises (counted as a failure).
        """
        trial = self._before()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._after(trial, exc)
            raise
        self._after(trial, None)
        return result

    async def call_async(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call and await ``fn(*args, **kwargs)`` through the breaker (``fn`` may be sync or async).

        Raises:
            CircuitOpenError: when open (``fn`` is not called).
            Exception: whatever ``fn`` raises (counted as a failure).
        """
        trial = self._before()
        try:
            result = await _await_if_needed(fn(*args, **kwargs))
        except BaseException as exc:
            self._after(trial, exc)
            raise
        self._after(trial, None)
        return result

    async def acall(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """The same as :meth:`call_async` (its older name)."""
        return await self.call_async(fn, *args, **kwargs)

    def wrap(self, agent: Any) -> Any:
        """The agent behind this breaker, of the same kind (sync, async, or with ``.run``/``.run_sync``)."""
        return _wrap_agent(agent, f"circuit_breaker_{self.name}", self.call, self.acall)

    def __call__(self, agent: Any) -> Any:
        """Same as :meth:`wrap`, so the breaker works as a decorator."""
        return self.wrap(agent)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state.value}, failures={self.failure_count})"


def with_fallback(
    primary: Any,
    fallback: Any,
    retries: int = 1,
    *,
    backoff: float = 0.0,
    fallback_name: str | None = None,
    on: tuple[type[BaseException], ...] = (Exception,),
    flow: Flow | None = None,
    clock: VirtualClock | None = None,
    log: DecisionLog | None = None,
) -> Any:
    """An agent that tries ``primary`` up to ``1 + retries`` times, then answers with ``fallback``.

    Each failed attempt followed by another is recorded as ``agent_retry`` (``attempt``, ``error``,
    ``message``); giving up on the primary is recorded as ``fallback_used`` (``fallback``, ``attempts``,
    ``error``, ``message`` of the last failure), both under the agent in effect. The fallback runs as agent
    ``fallback_name`` (default ``"<current agent>.fallback"``, or ``"fallback"`` outside any agent), so its
    model calls are told apart in the ledger and faults aimed at the primary agent do not hit it. If the
    fallback fails too, its error propagates.

    Args:
        primary: The agent to try first.
        fallback: The agent to use when every attempt failed (any agent; ``lambda _: "..."`` for a canned
            answer).
        retries: Extra attempts of the primary after the first (>= 0).
        backoff: Virtual seconds to wait between attempts (sync: ``clock.advance``; async: ``await
            clock.sleep``).
        fallback_name: Agent name the fallback runs as.
        on: Exception types that trigger a retry / the fallback (default ``Exception``;
            ``UnrecordedRequestError`` and ``BaseException``\\ s always propagate).
        flow: The flow whose clock and decision log it uses (``None``: ``clock=`` / ``log=`` or standalone).
        clock: Clock for the backoff (default: the flow's).
        log: Decision log (default: the flow's).

    Returns:
        An agent of the same kind (async when either agent is async).

    Raises:
        ValueError: for ``retries`` < 0 or ``backoff`` < 0.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"with_fallback(retries=...) must be an int >= 0, got {retries!r}")
    if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or backoff < 0:
        raise ValueError(f"with_fallback(backoff=...) must be seconds >= 0, got {backoff!r}")
    vclock, vlog = _runtime(flow, clock, log)
    attempts = 1 + retries

    def name_of_fallback() -> str:
        if fallback_name is not None:
            return fallback_name
        current = current_agent.get()
        return f"{current}.fallback" if current else "fallback"

    def failed(attempt: int, exc: BaseException) -> None:
        if attempt < attempts:
            vlog.record("agent_retry", attempt=attempt, error=type(exc).__name__, message=error_text(exc))

    def gave_up(name: str, exc: BaseException) -> None:
        vlog.record(
            "fallback_used",
            fallback=name,
            attempts=attempts,
            error=type(exc).__name__,
            message=error_text(exc),
        )

    sync_fallback = target(fallback, sync=True)
    async_fallback = target(fallback, sync=False)

    def sync_call(fn: Callable[[Any], Any], input: Any) -> Any:
        last: BaseException | None = None
        for attempt in range(1, attempts + 1):
            if attempt > 1 and backoff:
                vclock.advance(backoff)
            try:
                return fn(input)
            except UnrecordedRequestError:
                raise  # a missing cassette entry is not a failure of the primary
            except on as exc:
                last = exc
                failed(attempt, exc)
        assert last is not None
        name = name_of_fallback()
        gave_up(name, last)
        with AgentScope(name):
            result = sync_fallback(input)
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError(
                    "with_fallback(): the fallback is async but the primary is sync and was called from sync "
                    "code; make the primary async too, or give a sync fallback"
                )
            return result

    async def async_call(fn: Callable[[Any], Any], input: Any) -> Any:
        last: BaseException | None = None
        for attempt in range(1, attempts + 1):
            if attempt > 1 and backoff:
                await vclock.sleep(backoff)
            try:
                return await _await_if_needed(fn(input))
            except UnrecordedRequestError:
                raise  # a missing cassette entry is not a failure of the primary
            except on as exc:
                last = exc
                failed(attempt, exc)
        assert last is not None
        name = name_of_fallback()
        gave_up(name, last)
        with AgentScope(name):
            return await _await_if_needed(async_fallback(input))

    if _is_coroutine_callable(sync_fallback) and not _is_coroutine_callable(target(primary, sync=True)):
        # async fallback around a sync primary: the whole thing is async
        primary_async = target(primary, sync=False)

        async def guarded(input: Any) -> Any:
            return await async_call(primary_async, input)

        guarded.__name__ = guarded.__qualname__ = "with_fallback"
        return guarded
    return _wrap_agent(primary, "with_fallback", sync_call, async_call)
