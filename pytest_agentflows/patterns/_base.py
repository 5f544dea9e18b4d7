"""What the four patterns share: the runtime they run on, calling an agent, sync and async drivers.

An *agent* is any of:

* a sync or async callable ``f(input) -> str | AgentResult``;
* an object with a ``.run(input)`` method, sync or async (an object that also has ``.run_sync``, such as a
  pattern or a pydantic-ai ``Agent``, has ``.run_sync`` called by the patterns' ``run_sync``).

Its return value may be a ``str``, an :class:`~pytest_agentflows.AgentResult`, an object with a ``str``
``output`` attribute (pydantic-ai's run result), which becomes ``AgentResult(text=output, data=obj)``, or
an object with a ``str`` ``text`` (and optional ``tokens``, the articles' agents), which becomes
``AgentResult(text=obj.text, data=obj)`` (usage is still measured from the flow's model calls).

Every agent runs inside ``AgentScope(name)`` (so the model calls it makes are attributed to it) and inside a
:class:`~pytest_agentflows.budget.Reservation` of the flow's budget (so a pattern never starts an agent when
the budget is used up, and knows the usage of each agent's calls).

Sequential patterns (router, pipeline, supervisor) are written once, as generators that ``yield`` the
agent calls they need (:class:`Call`); :meth:`Pattern._drive_async` and :meth:`Pattern._drive_sync` carry
the calls out on an event loop or in the calling thread.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import UnrecordedRequestError, UsageError
from ..runtime._binding import bound_flow
from ..runtime._context import AgentScope
from ..runtime._models import AgentResult, Decision, Usage
from ..runtime.budget import BudgetPool, Reservation
from ..runtime.clock import RealClock, VirtualClock
from ..runtime.deadline import Deadline
from ..runtime.decisions import DecisionLog

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["Agent", "Call", "Pattern", "Runtime", "StepTimeout"]

T = TypeVar("T")


class _HasRun(Protocol):
    def run(self, input: Any, /) -> Any: ...


Agent = Callable[[Any], Any] | _HasRun
"""A sync or async callable ``f(input) -> str | AgentResult``, or an object with a sync or async ``.run``."""


@dataclass(frozen=True)
class Runtime:
    """The clock, decision log, budget and deadline a pattern runs on (a flow's, or its own)."""

    clock: VirtualClock
    """Virtual clock (seconds)."""
    log: DecisionLog
    """Where decisions are recorded."""
    budget: BudgetPool
    """Budget every agent draws from."""
    deadline: Deadline | None = None
    """The flow's deadline, or ``None``."""

    @classmethod
    def of(cls, flow: Flow | None) -> Runtime:
        """The runtime of ``flow``; else of the active flow (the pattern was built inside one, e.g. by the
        articles' own code in a test), else a standalone one: a :class:`RealClock` (real time, so real
        network waits and timeouts are real), its own log and an uncapped budget."""
        if flow is not None:
            return cls(clock=flow.clock, log=flow.log, budget=flow.budget, deadline=flow.deadline)
        bound = bound_flow()
        if bound is not None:
            return cls(clock=bound.clock, log=bound.log, budget=bound.budget, deadline=bound.deadline)
        clock = RealClock()  # outside any flow: real time (no virtual fast-forward of real waits)
        return cls(clock=clock, log=DecisionLog(clock=clock), budget=BudgetPool())


# -- calling one agent -----------------------------------------------------------------------------------
def _unwrap(fn: Any) -> Any:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def _is_coroutine_callable(fn: Any) -> bool:
    fn = _unwrap(fn)
    if inspect.iscoroutinefunction(fn):
        return True
    if inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn):
        return False
    call = getattr(fn, "__call__", None)  # noqa: B004 - a callable object's method, not callable()
    return call is not None and inspect.iscoroutinefunction(call)


def target(agent: Any, *, sync: bool) -> Callable[[Any], Any]:
    """The callable to invoke for ``agent``: its ``.run_sync`` (sync callers) or ``.run``, or itself.

    Raises:
        TypeError: if ``agent`` is neither callable nor has a ``.run`` method.
    """
    plain = _unwrap(agent)
    if not (inspect.isfunction(plain) or inspect.ismethod(plain) or inspect.isbuiltin(plain)):
        run = getattr(agent, "run", None)
        if callable(run):
            run_sync = getattr(agent, "run_sync", None)
            return run_sync if sync and callable(run_sync) else run  # type: ignore[no-any-return]
    if callable(agent):
        return agent  # type: ignore[no-any-return]
    raise TypeError(
        f"an agent must be a callable f(input) -> str | AgentResult or an object with a .run method, "
        f"got {type(agent).__name__}"
    )


def is_async_agent(agent: Any) -> bool:
    """Whether calling ``agent`` from sync code would give a coroutine (an ``async def`` agent)."""
    return _is_coroutine_callable(target(agent, sync=True))


def as_result(output: Any, name: str, usage: Usage) -> AgentResult:
    """Normalise an agent's return value to an :class:`AgentResult` named ``name``.

    ``usage`` (measured from the flow's model calls) replaces the result's own usage unless it is empty.

    Raises:
        TypeError: for a return value that is not a str, an AgentResult or an object with a str ``output``.
    """
    empty = usage == Usage()
    if isinstance(output, AgentResult):
        update: dict[str, Any] = {}
        if output.agent is None:
            update["agent"] = name
        if not empty:
            update["usage"] = usage
        return output.model_copy(update=update) if update else output
    if isinstance(output, str):
        return AgentResult(text=output, agent=name, usage=usage)
    text = getattr(output, "output", None)
    if isinstance(text, str):
        return AgentResult(text=text, agent=name, data=output, usage=usage)
    text = getattr(output, "text", None)
    if isinstance(text, str):  # the articles' agents: an object with .text (and .tokens, kept in data)
        return AgentResult(text=text, agent=name, data=output, usage=usage)
    raise TypeError(
        f"agent {name!r} returned {type(output).__name__}; an agent must return a str, an AgentResult, "
        "or an object with a str .text (and optional int .tokens) or a str .output"
    )


def _refuse_awaitable(value: Any, name: str) -> None:
    if inspect.isawaitable(value):
        if inspect.iscoroutine(value):
            value.close()  # no "never awaited" warning
        raise TypeError(
            f"agent {name!r} returned an awaitable from a sync call; declare it `async def` (or give it an "
            "async .run) so run_sync() runs the pattern on an event loop, or use `await pattern.run(...)`"
        )


def call_sync(
    rt: Runtime, agent: Any, name: str, input: Any, reservation: Reservation | None = None
) -> AgentResult:
    """Run a sync agent in the calling thread, named ``name``, inside a budget reservation.

    Args:
        rt: The pattern's runtime.
        agent: The agent.
        name: Agent name for attribution (``AgentScope``) and the reservation.
        input: What the agent is given.
        reservation: A reservation to run in (not yet entered); default: an uncapped one for ``name``.

    Raises:
        BudgetExceeded: before the agent starts, when the reservation does not fit.
        TypeError: for an agent that is not sync or returns something else than a str / AgentResult.
        Exception: whatever the agent raises.
    """
    fn = target(agent, sync=True)
    with reservation or rt.budget.acquire(agent=name) as res, AgentScope(name):
        output = fn(input)
        _refuse_awaitable(output, name)
    return as_result(output, name, res.usage)


async def call_async(
    rt: Runtime, agent: Any, name: str, input: Any, reservation: Reservation | None = None
) -> AgentResult:
    """Run any agent from a coroutine, named ``name``, inside a budget reservation.

    An ``async`` agent is awaited. A sync agent runs at once (blocking the loop, which takes no virtual
    time) on its own branch of the virtual clock; then the task sleeps, on the virtual loop, for the virtual
    time its model calls took. So a sync agent among async ones overlaps with them and a timeout around it
    fires at the right virtual time.

    Args and errors as :func:`call_sync`.
    """
    fn = target(agent, sync=False)
    clock = rt.clock
    async with reservation or rt.budget.acquire(agent=name) as res:
        with AgentScope(name):
            if _is_coroutine_callable(fn):
                output = await fn(input)
            else:
                start = clock.now()
                error: Exception | None = None
                with clock.fork():
                    try:
                        output = fn(input)
                    except Exception as exc:
                        error = exc
                    took = clock.now() - start
                if clock.virtual:  # on real time the agent's calls already took their time
                    await clock.sleep(took)
                if error is not None:
                    raise error
                if inspect.isawaitable(output):
                    output = await output
    return as_result(output, name, res.usage)


# -- sequential patterns: generator steps, two drivers ---------------------------------------------------
class StepTimeout(Exception):
    """Thrown into a pattern's steps when a :class:`Call` cannot finish before its ``deadline``."""


@dataclass(frozen=True)
class Call:
    """One agent call a sequential pattern needs, yielded by its steps generator."""

    agent: Any
    """The agent."""
    name: str
    """Agent name (attribution, reservation, decisions)."""
    input: Any
    """What the agent is given."""
    max_usd: float | None = None
    """Stage cap in US dollars reserved before the call (``None``: no cap)."""
    max_tokens: int | None = None
    """Stage cap in tokens reserved before the call (``None``: no cap)."""
    deadline: float | None = None
    """Absolute virtual time (seconds) the call must end by, else :class:`StepTimeout` is thrown in."""


Steps = Generator[Call, AgentResult, AgentResult]


class Pattern:
    """Base of the four patterns: the runtime, ``run`` / ``run_sync`` and the drivers.

    Args:
        flow: The :class:`~pytest_agentflows.Flow` to run in (its clock, budget, deadline and decision
            log); ``None`` gives the pattern a standalone runtime of its own.
    """

    def __init__(self, *, flow: Flow | None = None) -> None:
        self.flow: Flow | None = flow
        """The flow the pattern runs in, or ``None`` (standalone)."""
        self._rt = Runtime.of(flow)

    # -- runtime ---------------------------------------------------------------------------------------
    @property
    def clock(self) -> VirtualClock:
        """The virtual clock the pattern runs on."""
        return self._rt.clock

    @property
    def log(self) -> DecisionLog:
        """The decision log the pattern records to."""
        return self._rt.log

    @property
    def budget(self) -> BudgetPool:
        """The budget pool its agents draw from."""
        return self._rt.budget

    @property
    def decisions(self) -> list[Decision]:
        """The decisions of its log, in order (the whole flow's, when bound to a flow)."""
        return self._rt.log.decisions

    # -- to implement ----------------------------------------------------------------------------------
    def _agents(self) -> list[Any]:
        """Every agent the pattern may call (to know whether ``run_sync`` needs an event loop)."""
        raise NotImplementedError

    def _steps(self, input: Any) -> Steps:
        """The pattern's logic, for sequential patterns: yields :class:`Call`\\ s, returns the result."""
        raise NotImplementedError

    # -- running ---------------------------------------------------------------------------------------
    async def run(self, input: Any) -> AgentResult:
        """Run the pattern on ``input`` from async code.

        Returns:
            The pattern's :class:`~pytest_agentflows.AgentResult`.
        """
        self._rt.clock.attach_loop()
        return await self._drive_async(self._steps(input))

    def run_sync(self, input: Any) -> AgentResult:
        """Run the pattern on ``input`` from sync code.

        Sync agents run in the calling thread (a broadcast runs them in threads); if any agent is
        ``async``, the pattern runs on a new event loop with virtual time, as with ``await run()``.

        Raises:
            UsageError: when called from a running event loop (use ``await pattern.run(...)`` there).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            name = type(self).__name__
            raise UsageError(
                f"{name}.run_sync() was called from a running event loop, which it would block. "
                f"Use `await {name.lower()}.run(...)` in async code."
            )
        if any(is_async_agent(agent) for agent in self._agents()):
            return self._run_on_new_loop(input)
        return self._run_sync(input)

    def _run_sync(self, input: Any) -> AgentResult:
        return self._drive_sync(self._steps(input))

    def _run_on_new_loop(self, input: Any) -> AgentResult:
        clock = self._rt.clock

        async def main() -> AgentResult:
            try:
                return await self.run(input)
            finally:
                clock.detach_loop()  # keep the time reached once this loop is gone

        return asyncio.run(main())

    # -- drivers ---------------------------------------------------------------------------------------
    def _drive_sync(self, steps: Steps) -> AgentResult:
        rt = self._rt
        sent: AgentResult | None = None
        thrown: BaseException | None = None
        while True:
            try:
                call = steps.throw(thrown) if thrown is not None else steps.send(sent)  # type: ignore[arg-type]
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            sent, thrown = None, None
            if call.deadline is not None and rt.clock.now() >= call.deadline - 1e-9:
                thrown = StepTimeout(call.name)
                continue
            try:
                sent = call_sync(rt, call.agent, call.name, call.input, self._reservation(call))
            except UnrecordedRequestError:
                raise  # not an agent failure: the flow stops
            except Exception as exc:
                thrown = exc

    async def _drive_async(self, steps: Steps) -> AgentResult:
        rt = self._rt
        sent: AgentResult | None = None
        thrown: BaseException | None = None
        while True:
            try:
                call = steps.throw(thrown) if thrown is not None else steps.send(sent)  # type: ignore[arg-type]
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            sent, thrown = None, None
            try:
                coro = call_async(rt, call.agent, call.name, call.input, self._reservation(call))
                if call.deadline is None:
                    sent = await coro
                else:
                    sent = await _within(rt.clock, coro, call.deadline, call.name)
            except UnrecordedRequestError:
                raise  # not an agent failure: the flow stops
            except Exception as exc:
                thrown = exc

    def _reservation(self, call: Call) -> Reservation:
        return self._rt.budget.acquire(max_usd=call.max_usd, max_tokens=call.max_tokens, agent=call.name)


async def _within(clock: VirtualClock, coro: Awaitable[T], deadline: float, name: str) -> T:
    """Await ``coro`` until virtual time ``deadline``; raise :class:`StepTimeout` (cancelling it) after."""
    remaining = deadline - clock.now()
    if remaining <= 1e-9:
        if inspect.iscoroutine(coro):
            coro.close()
        raise StepTimeout(name)
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({task}, timeout=remaining)
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise StepTimeout(name)
    return task.result()


def add_usage(results: list[AgentResult]) -> Usage:
    """Total usage of ``results``."""
    total = Usage()
    for result in results:
        total = total + result.usage
    return total
