"""Fault injection: make an agent's model requests fail, error, slow down or hang, on the virtual clock.

Faults sit on top of whatever answers the requests (a cassette, a scripted model, the network): a fault
fires in the SDK's HTTP transport, so the SDK reacts exactly as it does to the real thing (its own retries
included), and a request that gets a fault never reaches the cassette (its recorded answer is kept for the
retry). Every fault that fires is recorded in the flow's decision log as ``fault_injected``, so decision
snapshots show the scenario::

    agentflow.faults.status("search", 429, retry_after=2, times=2)   # two rate limits, then the answer
    agentflow.faults.fail("billing", "connection")                    # every billing request: no connection
    agentflow.faults.delay("writer", 8.0)                             # 8 s more latency per request
    agentflow.faults.stall("critic", at=0)                            # its first request never answers

or, for a whole test::

    @pytest.mark.agent_faults(fail={"billing": "connection"}, status={"search": 429}, stall=["critic"])

Faults apply to model requests (those a provider adapter reads: chat completions, responses, messages) made
with the httpx or httpx2 stacks, to the agent in effect when the request is made (``"*"``: any agent).
``at`` picks requests by index (0-based, counting every model request of that agent, SDK retries
included, from the moment the flow's first fault was added: the start of the flow for marker faults);
``times`` caps how many requests a fault hits. When several faults match one request, every ``delay`` adds
up first, then the first other fault (in the order added) fires.

See ``docs/failure-modes.md`` for a recipe per fault.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from ._host import FlowHost
    from ._transport import Outgoing, Reply

__all__ = ["STALL_LIMIT_S", "Fault", "FaultKind", "FaultPlan", "StalledRequestError", "faults_from_marker"]

DOCS_FAILURE_MODES = "https://pytest-agentflows.readthedocs.io/en/latest/failure-modes/"

STALL_LIMIT_S = 86_400.0
"""Virtual seconds an async stall with no client timeout waits before :class:`StalledRequestError`."""

ERRORS = ("connection", "timeout", "disconnect")
"""Error names of :meth:`Fault.fail`: ``ConnectError``, ``ReadTimeout``, ``RemoteProtocolError``."""


class FaultKind(str, enum.Enum):
    """What a fault does to a request."""

    FAIL = "fail"
    """Raise an exception in the transport (the SDK sees a connection error, a timeout, …)."""
    STATUS = "status"
    """Answer with an HTTP error status and the provider's error JSON."""
    DELAY = "delay"
    """Add virtual latency, then let the request through."""
    STALL = "stall"
    """Never answer: only a timeout ends the request."""


class StalledRequestError(BaseException):
    """A stalled request (``faults.stall``) that nothing could ever end: no client timeout, no ``wait_for``.

    A ``BaseException`` (like :class:`~pytest_agentflows.UnrecordedRequestError`), so the SDKs do not retry
    it and a flow does not swallow it as an agent failure: the test is missing a timeout.
    """

    def __init__(self, test: str, agent: str | None, method: str, url: str, *, waited: float | None) -> None:
        self.test, self.agent, self.method, self.url, self.waited = test, agent, method, url, waited
        how = (
            "the client has no timeout, so the sync call would hang forever"
            if waited is None
            else f"nothing timed it out in {waited:g} s of virtual time (the client has no timeout)"
        )
        super().__init__(
            f"stalled model request in test {test}\n"
            f"  agent:    {agent or '(none)'}\n"
            f"  request:  {method} {url}\n"
            f"  why:      an injected stall never answers and {how}.\n"
            "Fix: give the client a timeout (e.g. OpenAI(timeout=30)), wrap the call in "
            f"asyncio.wait_for(..., timeout), or use a Broadcast timeout= (see {DOCS_FAILURE_MODES}#stall)."
        )

    def __str__(self) -> str:
        return str(self.args[0])


def _indexes(at: int | Iterable[int] | None) -> tuple[int, ...] | None:
    if at is None:
        return None
    values = (at,) if isinstance(at, int) else tuple(at)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
        raise UsageError(f"a fault's at= must be a request index >= 0 or a list of them, got {at!r}")
    return tuple(sorted(set(values)))


@dataclass(frozen=True, kw_only=True)
class Fault:
    """One fault: what happens to which agent's model requests. Build it with the class methods.

    ``Fault.fail("billing")``, ``Fault.status("search", 429, retry_after=2)``, ``Fault.delay("writer", 3)``,
    ``Fault.stall("critic")``; add it with ``agentflow.faults.add(fault)`` or the ``agent_faults`` marker.
    """

    agent: str
    """Agent whose requests get the fault (``"*"``: every request, named or not)."""
    kind: FaultKind
    """What the fault does."""
    error: str | BaseException | type[BaseException] | None = None
    """``fail``: ``"connection"``, ``"timeout"``, ``"disconnect"``, an exception or exception class."""
    status_code: int | None = None
    """``status``: the HTTP status code (400..599)."""
    retry_after: float | None = None
    """``status``: seconds sent in the ``retry-after`` header (``None``: no header)."""
    message: str | None = None
    """``status``: the error message (default: the provider's usual one, marked as injected)."""
    seconds: float = 0.0
    """``delay``: extra virtual seconds per request."""
    at: tuple[int, ...] | None = None
    """Indexes of the agent's model requests to hit (0-based, retries included); ``None``: any."""
    times: int | None = None
    """Hit at most this many requests (``None``: no limit)."""

    def __post_init__(self) -> None:
        if not isinstance(self.agent, str) or not self.agent:
            raise UsageError(f"a fault needs an agent name (or '*' for every agent), got {self.agent!r}")
        if self.times is not None and (
            isinstance(self.times, bool) or not isinstance(self.times, int) or self.times < 1
        ):
            raise UsageError(f"a fault's times= must be an int >= 1 or None, got {self.times!r}")

    # -- constructors ----------------------------------------------------------------------------------
    @classmethod
    def fail(
        cls,
        agent: str,
        error: str | BaseException | type[BaseException] = "connection",
        *,
        at: int | Iterable[int] | None = None,
        times: int | None = None,
    ) -> Fault:
        """Raise ``error`` in the transport instead of sending the request.

        Args:
            agent: Agent name, or ``"*"``.
            error: ``"connection"`` (the stack's ``ConnectError``: the SDKs raise ``APIConnectionError`` after
                their retries), ``"timeout"`` (``ReadTimeout``: ``APITimeoutError``), ``"disconnect"``
                (``RemoteProtocolError``), or any exception instance or class, raised as is.
            at: Request index(es) of the agent to hit.
            times: At most this many requests.

        Raises:
            UsageError: for an unknown error name or bad ``at`` / ``times``.
        """
        if isinstance(error, str):
            if error not in ERRORS:
                raise UsageError(
                    f"Fault.fail({agent!r}, {error!r}): unknown error; valid: {', '.join(ERRORS)}, or an "
                    "exception instance or class"
                )
        elif not (
            isinstance(error, BaseException) or (isinstance(error, type) and issubclass(error, BaseException))
        ):
            raise UsageError(
                f"Fault.fail({agent!r}, error=...) needs an error name or an exception, got {error!r}"
            )
        return cls(agent=agent, kind=FaultKind.FAIL, error=error, at=_indexes(at), times=times)

    @classmethod
    def status(
        cls,
        agent: str,
        status: int,
        *,
        retry_after: float | None = None,
        message: str | None = None,
        at: int | Iterable[int] | None = None,
        times: int | None = None,
    ) -> Fault:
        """Answer with HTTP ``status`` and the provider's error JSON (the SDK decides whether to retry).

        The SDKs retry 408, 409, 429 and 5xx (``max_retries``, 2 by default), waiting ``retry_after``
        seconds when given (on the virtual clock), else their own exponential backoff (with jitter drawn
        from a generator seeded per flow, so it is deterministic too).

        Args:
            agent: Agent name, or ``"*"``.
            status: 400..599 (e.g. 429, 500, 503, Anthropic's 529).
            retry_after: Seconds for the ``retry-after`` header (``None``: no header).
            message: Error message (default: the provider's usual one, marked as injected).
            at: Request index(es) of the agent to hit.
            times: At most this many requests.

        Raises:
            UsageError: for a status outside 400..599 or a negative ``retry_after``.
        """
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise UsageError(f"Fault.status({agent!r}, {status!r}): the status must be an int in 400..599")
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, (int, float)) or retry_after < 0
        ):
            raise UsageError(
                f"Fault.status(retry_after=...) must be seconds >= 0 or None, got {retry_after!r}"
            )
        return cls(
            agent=agent,
            kind=FaultKind.STATUS,
            status_code=status,
            retry_after=None if retry_after is None else float(retry_after),
            message=message,
            at=_indexes(at),
            times=times,
        )

    @classmethod
    def delay(
        cls, agent: str, seconds: float, *, at: int | Iterable[int] | None = None, times: int | None = None
    ) -> Fault:
        """Add ``seconds`` of virtual latency before the request goes on (to the cassette, script or network).

        Raises:
            UsageError: for seconds < 0.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise UsageError(f"Fault.delay({agent!r}, {seconds!r}): seconds must be a number >= 0")
        return cls(agent=agent, kind=FaultKind.DELAY, seconds=float(seconds), at=_indexes(at), times=times)

    @classmethod
    def stall(cls, agent: str, *, at: int | Iterable[int] | None = None, times: int | None = None) -> Fault:
        """Never answer: only a timeout ends the request.

        Async clients: the request waits on the virtual loop, so ``asyncio.wait_for``, a Broadcast
        ``timeout=`` or the client's own read timeout (whichever comes first) ends it; the client timeout
        raises the stack's ``ReadTimeout`` (the SDKs retry it, then raise ``APITimeoutError``). Sync clients:
        the virtual clock advances by the client's read timeout, then ``ReadTimeout`` is raised. With no
        timeout at all, :class:`StalledRequestError` is raised (at once for sync clients, after
        :data:`STALL_LIMIT_S` virtual seconds for async ones).
        """
        return cls(agent=agent, kind=FaultKind.STALL, at=_indexes(at), times=times)

    # -- firing ----------------------------------------------------------------------------------------
    def details(self, out: Outgoing | None = None) -> dict[str, Any]:
        """The fields of the ``fault_injected`` decision (besides ``agent``, ``fault`` and ``call``)."""
        if self.kind is FaultKind.FAIL:
            error = self.error
            if isinstance(error, BaseException):
                return {"error": type(error).__name__, "message": str(error)}
            if isinstance(error, type):
                return {"error": error.__name__}
            return {"error": error}
        if self.kind is FaultKind.STATUS:
            return {"status": self.status_code, "retry_after": self.retry_after}
        if self.kind is FaultKind.DELAY:
            return {"seconds": self.seconds}
        return {"timeout": None if out is None else out.read_timeout}

    def exception(self, out: Outgoing) -> BaseException:
        """The exception a ``fail`` fault raises for ``out`` (in the request's own stack)."""
        error = self.error
        module = out.module
        if isinstance(error, BaseException):
            return error
        if isinstance(error, type):
            if issubclass(error, module.RequestError):
                return error(f"{error.__name__} (injected by pytest-agentflows)", request=out.request)  # type: ignore[call-arg]
            try:
                return error(f"{error.__name__} (injected by pytest-agentflows)")
            except TypeError:
                return error()
        if error == "timeout":
            return module.ReadTimeout("The read operation timed out (injected)", request=out.request)  # type: ignore[no-any-return]
        if error == "disconnect":
            return module.RemoteProtocolError(  # type: ignore[no-any-return]
                "Server disconnected without sending a response (injected)", request=out.request
            )
        return module.ConnectError("[Errno 111] Connection refused (injected)", request=out.request)  # type: ignore[no-any-return]

    def reply(self, out: Outgoing) -> Reply:
        """The error answer of a ``status`` fault for ``out``, in the provider's format."""
        from ._transport import error_reply

        assert self.status_code is not None
        return error_reply(out.provider, self.status_code, message=self.message, retry_after=self.retry_after)

    def __str__(self) -> str:
        where = "" if self.at is None else f", at={list(self.at)}"
        cap = "" if self.times is None else f", times={self.times}"
        detail = ", ".join(f"{k}={v!r}" for k, v in self.details().items() if k != "timeout")
        return f"{self.kind.value}({self.agent!r}{', ' + detail if detail else ''}{where}{cap})"


@dataclass(frozen=True)
class Injection:
    """What the faults do to one request: extra latency, then at most one terminal fault."""

    delay_s: float
    """Sum of the matching ``delay`` faults, virtual seconds."""
    fault: Fault | None
    """The fail / status / stall fault that fires, or ``None``."""
    call: int
    """Index of the request among the agent's model requests."""


@dataclass(eq=False)
class FaultPlan:
    """The faults of a flow (``agentflow.faults``). Methods return the plan, so calls chain.

    Args:
        flow: The flow whose requests get the faults (its decision log records them; any
            :class:`~pytest_agentflows.testing._host.FlowHost`). ``None``: a plan not bound to a flow yet.
    """

    flow: FlowHost | None = None
    _faults: list[Fault] = field(default_factory=list)
    _fired: list[int] = field(default_factory=list)
    _counts: dict[str | None, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- building --------------------------------------------------------------------------------------
    def add(self, *faults: Fault) -> FaultPlan:
        """Add faults (in order: the first matching non-delay fault of a request fires).

        Raises:
            TypeError: for something that is not a :class:`Fault`.
        """
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"FaultPlan.add() takes Fault objects, got {type(fault).__name__}")
        with self._lock:
            self._faults.extend(faults)
            self._fired.extend(0 for _ in faults)
        if faults and self.flow is not None and self.flow.active:
            self.flow.transport_hooks()  # an active flow gets its hooks now; one not yet active, when it is
        return self

    def fail(
        self,
        agent: str,
        error: str | BaseException | type[BaseException] = "connection",
        *,
        at: int | Iterable[int] | None = None,
        times: int | None = None,
    ) -> FaultPlan:
        """Add :meth:`Fault.fail`: raise ``error`` in the transport (default: a connection error)."""
        return self.add(Fault.fail(agent, error, at=at, times=times))

    def status(
        self,
        agent: str,
        status: int,
        *,
        retry_after: float | None = None,
        message: str | None = None,
        at: int | Iterable[int] | None = None,
        times: int | None = None,
    ) -> FaultPlan:
        """Add :meth:`Fault.status`: an HTTP error answer the SDK parses (and retries when it should)."""
        return self.add(
            Fault.status(agent, status, retry_after=retry_after, message=message, at=at, times=times)
        )

    def delay(
        self, agent: str, seconds: float, *, at: int | Iterable[int] | None = None, times: int | None = None
    ) -> FaultPlan:
        """Add :meth:`Fault.delay`: extra virtual latency."""
        return self.add(Fault.delay(agent, seconds, at=at, times=times))

    def stall(
        self, agent: str, *, at: int | Iterable[int] | None = None, times: int | None = None
    ) -> FaultPlan:
        """Add :meth:`Fault.stall`: the request never answers; only a timeout ends it."""
        return self.add(Fault.stall(agent, at=at, times=times))

    def clear(self) -> None:
        """Remove every fault (request counts are kept)."""
        with self._lock:
            self._faults.clear()
            self._fired.clear()

    # -- reading ---------------------------------------------------------------------------------------
    @property
    def faults(self) -> list[Fault]:
        """The faults, in the order added."""
        with self._lock:
            return list(self._faults)

    def fired(self, fault: Fault) -> int:
        """How many requests ``fault`` hit so far (the first fault equal to it)."""
        with self._lock:
            for index, candidate in enumerate(self._faults):
                if candidate == fault:
                    return self._fired[index]
        raise ValueError(f"{fault} is not in this plan")

    def requests(self, agent: str | None) -> int:
        """How many model requests ``agent`` made through the fault layer so far (retries included)."""
        with self._lock:
            return self._counts.get(agent, 0)

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[Fault]:
        return iter(self.faults)

    def __repr__(self) -> str:
        return f"FaultPlan([{', '.join(str(f) for f in self.faults)}])"

    # -- firing (called by the transport hooks) --------------------------------------------------------
    def _inject(self, out: Outgoing) -> Injection | None:
        """Count the request, pick the faults that hit it and record a ``fault_injected`` decision each."""
        with self._lock:
            call = self._counts.get(out.agent, 0)
            self._counts[out.agent] = call + 1
            delays: list[Fault] = []
            terminal: Fault | None = None
            for index, fault in enumerate(self._faults):
                if fault.agent not in ("*", out.agent):
                    continue
                if fault.at is not None and call not in fault.at:
                    continue
                if fault.times is not None and self._fired[index] >= fault.times:
                    continue
                if fault.kind is FaultKind.DELAY:
                    delays.append(fault)
                elif terminal is None:
                    terminal = fault
                else:
                    continue
                self._fired[index] += 1
        if not delays and terminal is None:
            return None
        if self.flow is not None:
            for fault in [*delays, *([terminal] if terminal is not None else [])]:
                self.flow.log.record(
                    "fault_injected", agent=out.agent, fault=fault.kind.value, call=call, **fault.details(out)
                )
        return Injection(delay_s=sum(f.seconds for f in delays), fault=terminal, call=call)


# -- the marker ---------------------------------------------------------------------------------------------
MARKER_KINDS = ("fail", "status", "delay", "stall")


def _entries(kind: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        yield from value.items()
    elif isinstance(value, str):
        yield value, None
    elif isinstance(value, Iterable):
        for agent in value:
            yield agent, None
    else:
        raise UsageError(
            f"agent_faults({kind}=...) takes a dict agent -> setting or a list of agents, got {value!r}"
        )


def faults_from_marker(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> list[Fault]:
    """The faults of ``@pytest.mark.agent_faults(*faults, fail=..., status=..., delay=..., stall=...)``.

    Positional arguments are :class:`Fault` objects. Keyword forms map an agent (or ``"*"``) to a setting:

    * ``fail={"billing": "connection"}`` (or ``"timeout"``, ``"disconnect"``, an exception) — a list of
      agents means ``"connection"``;
    * ``status={"search": 429}`` or ``{"search": {"status": 503, "retry_after": 2, "times": 2}}``;
    * ``delay={"writer": 8.0}`` or ``{"writer": {"seconds": 8.0, "at": 0}}``;
    * ``stall=["critic"]`` or ``{"critic": {"at": 1}}``.

    A dict setting gives the keyword arguments of the matching :class:`Fault` class method.

    Raises:
        UsageError: for an unknown keyword, a bad setting or a positional argument that is not a Fault.
    """
    faults: list[Fault] = []
    for arg in args:
        if not isinstance(arg, Fault):
            raise UsageError(
                f"agent_faults() positional arguments must be Fault objects (Fault.fail(...), ...), "
                f"got {arg!r}"
            )
        faults.append(arg)
    unknown = sorted(set(kwargs) - set(MARKER_KINDS))
    if unknown:
        raise UsageError(
            f"agent_faults() got unknown argument(s) {', '.join(unknown)}; valid: {', '.join(MARKER_KINDS)}"
        )
    primary: dict[str, str | None] = {"fail": "error", "status": "status", "delay": "seconds", "stall": None}
    for kind in MARKER_KINDS:
        if kind not in kwargs:
            continue
        make = getattr(Fault, kind)
        for agent, setting in _entries(kind, kwargs[kind]):
            options: dict[str, Any]
            if isinstance(setting, Mapping):
                options = dict(setting)
            elif setting is None:
                options = {}
            elif primary[kind] is None:
                raise UsageError(
                    f"agent_faults(stall=...) settings are dicts of at= / times=, got {setting!r}"
                )
            else:
                options = {str(primary[kind]): setting}
            try:
                faults.append(make(agent, **options))
            except TypeError as exc:
                raise UsageError(f"agent_faults({kind}={{{agent!r}: {setting!r}}}): {exc}") from None
    return faults
