"""The per-test object tying cassette, clock, budget, deadline, decision log and ledger together."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from .cassette._modes import RecordMode
from .cassette._redact import Redactor
from .errors import UnrecordedRequestError, UsageError
from .providers import Priced, _call_of, _priced
from .providers._body import normalise_request, normalise_response
from .runtime._binding import bind
from .runtime._context import (
    AgentScope,
    IdSource,
    current_agent,
    current_flow,
    current_scope,
    inherit_context_in_threads,
)
from .runtime._models import Decision, ModelCall, ToolCall, Usage
from .runtime._sdk_waits import patch_loaded_sdks, sdk_safe, virtual_sdk_waits
from .runtime.budget import (
    UNATTRIBUTED,
    BudgetExceeded,
    BudgetPool,
    PriceUnknownError,
    charge_enclosing,
    current_reservation,
    refusal,
)
from .runtime.clock import VirtualClock
from .runtime.deadline import Deadline
from .runtime.decisions import FLOAT_DIGITS, DecisionLog
from .testing.faults import FaultPlan

if TYPE_CHECKING:
    from .cassette._recorder import CassetteUsage, Exchange
    from .testing._transport import FlowTransport

__all__ = ["Flow"]


class Flow:
    """One multi-agent flow under test: its virtual clock, budget, deadline, decision log and ledger.

    The ``agentflow`` fixture builds one per test and activates its cassette; outside pytest, build one
    yourself and use ``with flow.activate(): ...``.

    Args:
        cassette: Cassette file to replay/record (vcrpy YAML), or ``None`` for no HTTP interception.
        record: Record mode (``"none"``, ``"new"``, ``"all"`` or a :class:`RecordMode`).
        budget_usd: USD cap of the flow's :class:`BudgetPool` (``None``: no cap).
        budget_tokens: Token cap (input + output) of the budget pool (``None``: no cap).
        deadline_s: Virtual seconds the flow may take (``None``: no deadline).
        latency: ``"recorded"`` (replay charges each call's recorded latency) or ``"zero"``.
        redactor: Secret scrubbing for cassettes (default: the built-in list).
        test_id: Name used in error messages (the pytest node id).
        log_path: Optional JSONL file the decision log appends to.
        record_model_calls: Whether each model call also appears in the decision log as ``model_call``.
        save_on_failure: Save what the flow recorded even when it failed (see :meth:`mark_failed`); by
            default a failed recording leaves the cassette file as it was.
        match_ignore: JSON paths of request bodies left out of matching (``"messages.*.tool_call_id"``;
            ``*`` matches any key or list index), beside the built-in normalisation: UUID-shaped strings
            numbered by first appearance, tool lists compared in any order.
        prune_unused: With ``record="new"``, a flow that ends without failing drops from its cassette the
            recorded interactions it never replayed (for a cassette only this flow uses: a re-recorded
            test keeps exactly what its run used). Default ``False``: they stay (and are reported).

    Raises:
        UsageError: for an unknown record mode or latency mode, or a malformed ``match_ignore`` path.
    """

    def __init__(
        self,
        *,
        cassette: str | os.PathLike[str] | None = None,
        record: str | RecordMode | None = None,
        budget_usd: float | None = None,
        budget_tokens: int | None = None,
        deadline_s: float | None = None,
        latency: str = "recorded",
        redactor: Redactor | None = None,
        test_id: str = "flow",
        log_path: str | os.PathLike[str] | None = None,
        record_model_calls: bool = True,
        save_on_failure: bool = False,
        match_ignore: tuple[str, ...] | list[str] = (),
        prune_unused: bool = False,
    ) -> None:
        if latency not in ("recorded", "zero"):
            raise UsageError(f"{test_id}: latency must be 'recorded' or 'zero', got {latency!r}")
        self.test_id = test_id
        self.cassette_path = Path(cassette) if cassette is not None else None
        self.record_mode = RecordMode.parse(record, where=test_id)
        self.latency_mode = latency
        self.redactor = redactor or Redactor()
        self.clock = VirtualClock()
        """The flow's :class:`VirtualClock` (virtual seconds since the flow started)."""
        # nothing to replay: the event loop stays real. (The flow's parts refer to it weakly: a finished
        # flow is then freed at once by reference counting, not left to the garbage collector's next full
        # pass with its cassette and ledger; see tests/test_session_memory.py.)
        self.clock._real_time = _probe(weakref.ref(self))
        self.budget = BudgetPool(usd=budget_usd, tokens=budget_tokens)
        """The flow's :class:`BudgetPool`; every model call is charged to it."""
        self.deadline: Deadline | None = (
            Deadline(deadline_s, clock=self.clock) if deadline_s is not None else None
        )
        """The flow's :class:`Deadline` on its clock, or ``None``."""
        self.log = DecisionLog(log_path, clock=self.clock, scrub=self.redactor.scrub_value)
        self.log._forward = False  # a flow's own log: never copied into another (enclosing) flow's
        """The flow's :class:`DecisionLog` (``agentflow.log.record("route", chosen=...)``)."""
        self.ids = IdSource()
        """Deterministic ids of the flow's scopes, decisions and model calls (``id`` / ``parent``)."""
        self.refusals: list[BudgetExceeded] = []
        """Model requests refused before they were sent because a budget cap was already spent."""
        self.record_model_calls = record_model_calls
        self.save_on_failure = save_on_failure
        self.match_ignore: tuple[str, ...] = tuple(match_ignore)
        """JSON paths of request bodies left out of matching."""
        from .cassette._keys import parse_path

        for path in self.match_ignore:
            try:
                parse_path(path)
            except ValueError as exc:
                raise UsageError(f"{test_id}: {exc}") from None
        self.discarded: tuple[str, int] | None = None
        """``(reason, interactions)`` when a failed recording was not saved to the cassette, else ``None``."""
        self.prune_unused = prune_unused
        self.cassette_usage: CassetteUsage | None = None
        """After the flow deactivated: which recorded interactions it replayed, recorded and pruned."""
        self._simulated: Callable[[str | None], float | None] | None = None
        self._calls: list[ModelCall] = []
        self._lock = threading.Lock()
        self._pending: list[_Exchanged] = []  # replayed exchanges not accounted yet (see on_exchange)
        self._settling = threading.RLock()
        self._settling_now = False
        # every read or write of the log or the budget first settles the pending exchanges
        settle = weakref.WeakMethod(self._settle)
        self.log._lock = _Settling(self.log._lock, settle)
        self.budget._lock = _Settling(self.budget._lock, settle)
        self._cassette: Any = None
        self.misses: list[UnrecordedRequestError] = []
        """Every request that had no recorded response (also those the flow's code swallowed)."""
        self.faults: FaultPlan = FaultPlan(self)
        """The flow's :class:`~pytest_agentflows.FaultPlan` (``agentflow.faults.status("search", 429)``)."""
        self._extra_misses: list[UnrecordedRequestError] = []
        self._stack: ExitStack | None = None
        self._hooks: FlowTransport | None = None

    # -- activation --------------------------------------------------------------------------------------
    @contextmanager
    def activate(self) -> Iterator[Flow]:
        """Intercept HTTP traffic into the cassette (if any) and propagate agent names into threads.

        Raises:
            CassetteError: when the cassette exists but cannot be read (the file is left untouched).
        """
        from .cassette._telemetry import telemetry_guard

        if self.faults.flow is None:
            self.faults.flow = self
        with ExitStack() as stack:
            stack.callback(self._deactivated)
            stack.push(self._settle_at_exit)  # the ledger is complete once the flow has ended
            stack.callback(telemetry_guard.hold())  # framework telemetry: answered here, never recorded
            stack.callback(_reset_flow, current_flow.set(self))
            stack.enter_context(inherit_context_in_threads())
            stack.enter_context(bind(self))  # app-made BudgetPool/Deadline/DecisionLog/patterns bind to it
            if self.cassette_path is not None:
                from .cassette._recorder import Recorder

                recorder = Recorder(
                    path=str(self.cassette_path),
                    mode=self.record_mode,
                    listener=self,
                    clock=self.clock,
                    test_id=self.test_id,
                    redactor=self.redactor,
                    save_on_failure=self.save_on_failure,
                    match_ignore=self.match_ignore,
                    prune=self.prune_unused,
                )
                stack.callback(self._note_discarded, recorder)
                self._cassette = stack.enter_context(recorder)
            stack.callback(self._collect_misses)
            stack.enter_context(virtual_sdk_waits(self))
            stack.enter_context(self.clock.executor_timeline())
            self._stack = stack
            if self.faults:
                self.transport_hooks()
            try:
                yield self
            finally:
                self.clock.detach_loop()

    def mark_failed(self, reason: str) -> None:
        """Say that the code using this flow failed: its recording is then not saved when it deactivates.

        The cassette file keeps its previous content (or is not created), unless the flow was built with
        ``save_on_failure=True``. An exception escaping ``with flow.activate():`` has the same effect; the
        ``agentflow`` fixture calls this when its test fails, errors, is skipped or is interrupted.

        Args:
            reason: Why, for the report (e.g. ``"failed (AssertionError)"``).
        """
        if self._cassette is not None and not self.save_on_failure:
            self._cassette.discard_reason = reason

    def _note_discarded(self, recorder: Any) -> None:
        cassette = recorder.cassette
        if cassette is not None:
            self.cassette_usage = cassette.usage()
        if cassette is not None and cassette.discarded:
            self.discarded = (cassette.discard_reason or "failed", cassette.discarded)

    def _collect_misses(self) -> None:
        self.misses = self.pending_misses()

    def _deactivated(self) -> None:
        self._stack = None
        self._hooks = None
        if self.faults.flow is self:
            self.faults.flow = None  # bound again by activate(): an ended flow holds no cycle through it

    def pending_misses(self) -> list[UnrecordedRequestError]:
        """The requests that had no recorded (or scripted) answer so far, in order."""
        misses = list(self._cassette.misses) if self._cassette is not None else []
        return misses + self._extra_misses

    # -- transport hooks (faults, scripted models) -------------------------------------------------------
    def transport_hooks(self) -> FlowTransport:
        """The flow's transport hooks (faults, scripted model), installed on first use while it is active.

        Raises:
            UsageError: when the flow is not active (``with flow.activate(): ...``).
        """
        if self._hooks is None:
            if self._stack is None:
                raise UsageError(
                    f"{self.test_id}: the flow is not active; use `with flow.activate(): ...` (the agentflow "
                    "fixture does it for you) before scripting models"
                )
            from .testing._transport import FlowTransport

            self._hooks = self._stack.enter_context(FlowTransport(self))
        return self._hooks

    @property
    def active(self) -> bool:
        """Whether the flow is active (inside ``with flow.activate():``)."""
        return self._stack is not None

    @property
    def real_time(self) -> bool:
        """Whether model calls take real time: an active flow with no cassette, no scripted model and no
        faults (nothing is replayed or made up, so waits are real waits and no event loop is made
        virtual). A flow that is not active keeps its virtual clock for code that moves it explicitly."""
        return self.active and self.cassette_path is None and self._hooks is None and not self.faults

    def check_request(self) -> None:
        """Refuse a model request before it is sent when a budget cap that applies is already spent.

        Called by the cassette and the transport hooks for every model request (replayed, recorded or
        scripted). Checks the flow's pool, and every reservation active in the calling context with its
        pool (the app's own ``BudgetPool.acquire`` blocks included): spend >= cap refuses.

        Raises:
            BudgetExceeded: with ``refused=True`` and the spend per agent; nothing was sent.
        """
        error = refusal(self.budget)
        if error is None:
            return
        with self._lock:
            self.refusals.append(error)
        self.log.record(
            "budget_refused",
            kind_of_cap=error.kind,
            limit=error.limit,
            spent=error.spent,
            cap_of=error.cap_of,
        )
        raise sdk_safe(error)

    @property
    def recording(self) -> bool:
        """Whether the flow records from the network: a cassette in record mode ``new`` or ``all``."""
        return self.cassette_path is not None and self.record_mode is not RecordMode.NONE

    def record_miss(self, error: UnrecordedRequestError) -> None:
        """Note a request nothing answered (e.g. an unscripted one): the test fails at teardown.

        The ``agentflow`` fixture fails the test for every miss, also one the flow's code caught.

        Args:
            error: The error raised to the code that made the request.
        """
        self._extra_misses.append(error)

    @property
    def recorded_interactions(self) -> int:
        """HTTP interactions recorded from the network into the cassette so far (0 when only replaying)."""
        return int(getattr(self._cassette, "recorded_count", 0) or 0)

    @property
    def replayed_calls(self) -> int:
        """Model calls served from the cassette so far."""
        return sum(1 for c in self.calls if c.replayed)

    @property
    def recorded_calls(self) -> int:
        """Model calls recorded from the network so far."""
        return sum(1 for c in self.calls if not c.replayed)

    # -- ledger ------------------------------------------------------------------------------------------
    def on_exchange(self, exchange: Exchange) -> None:
        """Account one HTTP exchange (called by the cassette): clock, ledger, budget, decision log.

        The clock moves at once. A replayed exchange whose accounting nothing needs yet (no budget cap,
        no reservation or held decisions in the calling context, no JSONL log) is accounted lazily: the
        ledger, the budget and the decision log settle it, in call order, on their next read or write, so
        replaying a call parses no body. When the flow deactivates without an error, its pending calls are
        read and priced (a body that cannot be decoded fails there), which is all the report needs of
        them; they are settled only if something reads the ledger, the budget or the log afterwards. The
        result is the same as accounting at once: ids, ``at`` times, agents and order are captured now.
        """
        patch_loaded_sdks()  # an SDK imported after activation: its retry waits become virtual too
        latency = self.effective_latency(exchange.latency_s)
        started = exchange.started_at
        if exchange.charge_clock:
            started = self.clock.now()
            self.clock.advance(latency)
        if exchange.request is None or exchange.response is None:
            return
        entry = _Exchanged(exchange, latency, started, current_scope.get(), self.clock.now())
        if (
            exchange.replayed
            and self.log.path is None
            and self.budget.cap_usd is None
            and self.budget.cap_tokens is None
            and current_reservation.get() is None
            and not self.log._holding()
        ):
            with self._lock:
                self._pending.append(entry)
            return
        self._settle()
        self._account(entry, deferred=False)

    def _settle(self) -> None:
        """Account the exchanges :meth:`on_exchange` deferred, in order (a no-op when there are none).

        Raises:
            CassetteError: a deferred exchange's body cannot be decoded (that exchange is dropped; the
                ones after it stay pending).
        """
        if not self._pending and not self._settling_now:
            return
        with self._settling:  # one thread settles; the others wait, so nothing overtakes a pending call
            if self._settling_now:  # called back from the accounting below: the loop goes on
                return
            self._settling_now = True
            try:
                while True:
                    with self._lock:
                        batch, self._pending = self._pending, []
                    if not batch:
                        return
                    for i, entry in enumerate(batch):
                        try:
                            self._account(entry, deferred=True)
                        except BaseException:
                            with self._lock:
                                self._pending[:0] = batch[i + 1 :]
                            raise
            finally:
                self._settling_now = False

    def _settle_at_exit(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # Not while an exception leaves the block (a body error must not be masked by a ledger error; the
        # next read settles), nor for a flow left active and collected (GeneratorExit, at interpreter exit).
        # The deferred exchanges are only read and priced here (an undecodable body still fails the block);
        # their ledger entries and decisions are built by the next read, if any: the report needs none.
        if exc_type is None:
            self._price_pending()

    def _price_pending(self) -> list[_Exchanged]:
        """Read and price every deferred exchange (each once); the pending ones, in order.

        Raises:
            CassetteError: a deferred exchange's body cannot be decoded (that exchange is dropped).
        """
        with self._lock:
            pending = list(self._pending)
        for entry in pending:
            if entry.priced is _UNPRICED:
                try:
                    self._priced(entry)
                except BaseException:
                    with self._lock:
                        if entry in self._pending:
                            self._pending.remove(entry)
                    raise
        return pending

    def _priced(self, entry: _Exchanged) -> Priced | None:
        """``entry``'s exchange read by its provider adapter and priced (once), ``None`` if no model call.

        Raises:
            CassetteError: its body cannot be decoded; the message names the cassette and the field.
        """
        if entry.priced is not _UNPRICED:
            return cast("Priced | None", entry.priced)
        exchange = entry.exchange
        assert exchange.request is not None and exchange.response is not None
        try:
            found = _priced(normalise_request(exchange.request), normalise_response(exchange.response))
        except ValueError as exc:  # providers.BodyError: a body that cannot be decoded
            from .errors import CassetteError

            where = getattr(exc, "where", "")
            raise CassetteError(str(self.cassette_path or "(no cassette)"), where, str(exc)) from exc
        entry.priced = found
        return found

    def _call_facts(self) -> list[CallFacts]:
        """What the report reads of every model call, in ledger order (as :attr:`calls`).

        Deferred exchanges are read and priced (once), not settled: no :class:`ModelCall`, budget charge
        or decision is built for them, so summarising a test that never read its ledger stays cheap.

        Raises:
            CassetteError: a deferred exchange's body cannot be decoded.
        """
        self._price_pending()
        with self._lock:  # both lists in one snapshot
            settled, pending = list(self._calls), list(self._pending)
        facts = [CallFacts.of(call) for call in settled]
        for entry in pending:
            priced = entry.priced
            if isinstance(priced, Priced):
                facts.append(CallFacts.deferred(entry.exchange, priced, entry.latency, entry.started))
        indexed = sorted(
            enumerate(facts), key=lambda ic: (round(ic[1].started_at + ic[1].latency_s, 6), ic[0])
        )
        return [fact for _, fact in indexed]

    def _decision_kinds(self) -> Counter[str]:
        """How many decisions of each kind the log has, counting those deferred exchanges will add."""
        pending = self._price_pending()
        with self.log._lock._inner if isinstance(self.log._lock, _Settling) else self.log._lock:
            kinds = Counter(d.kind for d in self.log._decisions)
        for entry in pending:
            priced = entry.priced
            if isinstance(priced, Priced):
                if self.record_model_calls:
                    kinds["model_call"] += 1
                if priced.parsed.tool_calls:
                    kinds["tool_call"] += len(priced.parsed.tool_calls)
        return kinds

    def _account(self, entry: _Exchanged, *, deferred: bool) -> None:
        """Parse one exchange into the ledger, charge the budget and log its decisions.

        ``deferred``: settled later (:meth:`_settle`), so nothing is read from the calling context: the
        budget is charged outside any reservation and the decisions bypass holds, with the ``at``,
        ``parent`` and agent captured when the exchange happened.
        """
        exchange, parent = entry.exchange, entry.parent

        def ledger_fields() -> dict[str, Any]:  # only for a model call: an id is a counter
            return {
                "replayed": exchange.replayed,
                "started_at": round(entry.started, 6),
                "id": self.ids.next_id("call", parent),
                "parent": parent,
            }

        priced = self._priced(entry)
        if priced is None:
            return
        call = _call_of(
            priced,
            exchange.agent,
            entry.latency,
            self.redactor.scrub_data if self.redactor.scrubs_data else None,
            ledger_fields,
        )
        if not deferred:
            self.add_call(call)
        else:
            with self._lock:
                self._calls.append(call)
            # no cap applies (else the call was not deferred): an unknown price costs nothing here
            self.budget._charge(call.usage, call.agent or UNATTRIBUTED, call.model, None)
        at = round(entry.at, FLOAT_DIGITS) + 0.0
        if self.record_model_calls:
            fields: dict[str, Any] = {
                "model": call.model,
                "input_tokens": call.usage.input_tokens,
                "output_tokens": call.usage.output_tokens,
                "cost_usd": call.usage.cost_usd,
                "latency_s": call.latency_s,
            }
            if exchange.cancelled:
                fields["cancelled"] = True
            if deferred:
                self.log._append("model_call", call.agent, fields, call.id, parent, at=at, hold=False)
            else:
                self.log._record("model_call", {"agent": call.agent, **fields}, id=call.id)
        for tool in call.tool_calls:
            if deferred:
                tool_fields = {"tool": tool.name, "arguments": tool.arguments}
                tool_id = self.ids.next_id("tool_call", parent)
                self.log._append("tool_call", tool.agent, tool_fields, tool_id, parent, at=at, hold=False)
            else:
                self.log.record("tool_call", agent=tool.agent, tool=tool.name, arguments=tool.arguments)

    def effective_latency(self, latency_s: float) -> float:
        """The virtual seconds a call of recorded/measured ``latency_s`` takes (0 with ``latency="zero"``)."""
        return latency_s if self.latency_mode == "recorded" else 0.0

    def simulate_latency(self, profile: Mapping[str, float] | Callable[[str | None], float] | float) -> None:
        """While recording, store and charge ``profile``'s latency instead of the measured one.

        For recording against a local or fake model server, which answers in milliseconds: the cassette
        then holds realistic latencies (seconds), deadlines and timeouts decide the same way while
        recording and on every replay, and snapshots updated while recording pass on replay.

        Args:
            profile: Seconds per call: one number for every call, a mapping ``agent name -> seconds``
                (agents not in it keep their measured latency), or a function of the agent name
                (``None`` for calls made outside any agent).

        Raises:
            UsageError: when a latency is negative.
        """
        if isinstance(profile, int | float):
            seconds = float(profile)
            self._simulated = lambda _agent: seconds
        elif isinstance(profile, Mapping):
            table = dict(profile)
            self._simulated = lambda agent: table.get(agent) if agent is not None else None
        else:
            self._simulated = profile

    def recording_latency(self, agent: str | None, measured_s: float) -> float:
        """Latency (seconds) stored for a call recorded now: the simulated one if set, else ``measured_s``."""
        simulated = self._simulated(agent) if self._simulated is not None else None
        if simulated is None:
            return measured_s
        if simulated < 0:
            raise UsageError(
                f"{self.test_id}: simulated latency for agent {agent!r} is negative: {simulated}"
            )
        return round(float(simulated), 6)

    def add_call(self, call: ModelCall) -> None:
        """Add a model call made outside any cassette (e.g. a scripted model) to the ledger and budget."""
        self._settle()
        with self._lock:
            self._calls.append(call)
        # An unknown price under a USD cap: the verdict (assert_within_budget) names the model and the fix.
        with contextlib.suppress(PriceUnknownError):
            self.budget.charge(call.usage, agent=call.agent, model=call.model)
        # the app's own pools: calls inside their acquire() blocks count there too
        charge_enclosing(call.usage, call.agent, model=call.model, exclude=self.budget)

    @property
    def calls(self) -> list[ModelCall]:
        """The ledger: every model call of the flow, in order of virtual completion time.

        Calls that end at the same virtual time keep the order in which they were accounted, so
        concurrent branches in threads give the same ledger on every run. Replayed calls are parsed
        here (or by the next read of the budget or decision log) when they were accounted lazily (see
        :meth:`on_exchange`).

        Raises:
            CassetteError: a replayed response's body cannot be decoded (e.g. corrupt gzip data); the
                message names the cassette and the field. The other calls are kept.
        """
        self._settle()
        with self._lock:
            indexed = list(enumerate(self._calls))
        indexed.sort(key=lambda ic: (round(ic[1].started_at + ic[1].latency_s, 6), ic[0]))
        return [call for _, call in indexed]

    @property
    def usage(self) -> Usage:
        """Total usage over the flow (``cost_usd`` is ``None`` if any call's model has no known price)."""
        total = Usage()
        for call in self.calls:
            total = total + call.usage
        return total

    def usage_by_agent(self) -> dict[str, Usage]:
        """Usage per agent name, sorted; calls outside any agent under ``budget.UNATTRIBUTED``."""
        out: dict[str, Usage] = {}
        for call in self.calls:
            key = call.agent or UNATTRIBUTED
            out[key] = out.get(key, Usage()) + call.usage
        return dict(sorted(out.items()))

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Every tool call the flow's models asked for, in ledger order (then the order of each response);
        each one's ``agent`` is the agent of the model call that asked for it."""
        return [tool for call in self.calls for tool in call.tool_calls]

    def calls_of(self, agent: str | None) -> list[ModelCall]:
        """The model calls made by ``agent`` (``None``: calls made outside any agent), in ledger order.

        Use it to check what an agent was given: ``agentflow.calls_of("writer")[0].input_text``.
        """
        return [call for call in self.calls if call.agent == agent]

    @property
    def decisions(self) -> list[Decision]:
        """The decision log's entries, in order."""
        return self.log.decisions

    @property
    def elapsed(self) -> float:
        """Virtual seconds the flow took so far (model latency only; concurrent calls overlap)."""
        return self.clock.elapsed

    # -- agents ------------------------------------------------------------------------------------------
    def agent(self, name: str) -> AgentScope:
        """Attribute model calls made inside to agent ``name``.

        Use as ``with agentflow.agent("router"): ...``, ``async with``, or as a decorator. The name follows
        ``asyncio`` tasks and threads started inside.
        """
        return AgentScope(name)

    @property
    def current_agent(self) -> str | None:
        """The agent name in effect for the caller."""
        return current_agent.get()

    # -- assertions --------------------------------------------------------------------------------------
    def spend_table(self) -> str:
        """Spend per agent as aligned text lines (used in failure messages)."""
        rows = []
        for agent, usage in self.usage_by_agent().items():
            cost = "unknown price" if usage.cost_usd is None else f"${usage.cost_usd:.6f}"
            rows.append(f"  {agent:<20} {usage.input_tokens:>8} in {usage.output_tokens:>8} out  {cost}")
        return "\n".join(rows) or "  (no model calls)"

    def assert_within_budget(self, usd: float | None = None, tokens: int | None = None) -> None:
        """Fail unless total spend is within ``usd`` (US dollars) and ``tokens`` (input + output).

        Raises:
            AssertionError: when over a cap (the message gives spend per agent), or when a cap is set and
                a model call reported no usage (``ModelCall.usage_reported`` is ``False``: a chat stream
                without ``stream_options={"include_usage": True}``), so its tokens and price are unknown;
                the message names each such call and the fix.
            UsageError: when ``usd`` is set but a call's model has no known price (genai-prices).
        """
        __tracebackhide__ = True  # pytest shows the caller's line and the message, not this body
        if usd is not None or tokens is not None:
            self._check_usage_reported()
        usage = self.usage
        problems = []
        if usd is not None:
            if usage.cost_usd is None:
                unknown = sorted({c.model for c in self.calls if c.usage.cost_usd is None})
                raise UsageError(
                    f"{self.test_id}: cannot check a USD budget: genai-prices has no price for model(s) "
                    f"{', '.join(unknown)}. Use a token budget (agent_budget(tokens=...)) for them, or "
                    "update genai-prices (`pip install -U genai-prices`)."
                )
            if usage.cost_usd > usd + 1e-12:
                problems.append(f"spent ${usage.cost_usd:.6f} of a ${usd:.6f} budget")
        if tokens is not None and usage.total_tokens > tokens:
            problems.append(f"used {usage.total_tokens} tokens of a {tokens}-token budget")
        if problems:
            raise AssertionError(
                f"{self.test_id}: agent budget exceeded: {'; '.join(problems)}.\n"
                f"Spend per agent:\n{self.spend_table()}"
            )

    def _check_usage_reported(self) -> None:
        blind = [(i, c) for i, c in enumerate(self.calls) if not c.usage_reported]
        if not blind:
            return
        rows = "\n".join(
            f"  call {i + 1}: agent {c.agent or UNATTRIBUTED}, {c.api or c.provider} {c.model}"
            + (", streamed" if c.streamed else "")
            for i, c in blind
        )
        raise AssertionError(
            f"{self.test_id}: cannot check the agent budget: {len(blind)} model call(s) reported no usage, "
            "so their tokens and price are unknown (the response carried no usage; the price list is not "
            f"the problem):\n{rows}\n"
            "Fix: ask the API for usage. For a chat completions stream pass "
            'stream_options={"include_usage": True} to client.chat.completions.create(..., stream=True), '
            "then re-record the cassette (pytest --record-agents=all)."
        )

    def assert_tool_calls(
        self,
        expected: Sequence[str | tuple[str, dict[str, Any] | str] | ToolCall],
        *,
        agent: str | None = None,
        mode: str = "strict",
        args: str = "exact",
    ) -> None:
        """Fail unless the flow's tool calls (of ``agent``, or of every agent) match ``expected``.

        The modes are LangChain agentevals' trajectory-match terms, read as *actual relative to expected*:
        ``mode="strict"`` same calls in the same order; ``"unordered"`` same calls in any order;
        ``"subset"`` the agent called nothing beyond the expected calls; ``"superset"`` it called at least
        them. ``args="exact"`` equal arguments; ``"ignore"`` names only; ``"subset"`` each actual argument
        object is contained in the expected one; ``"superset"`` the actual arguments contain the expected
        keys and values (top-level keys compared).

        Args:
            expected: Tool names (any arguments), ``(name, arguments)`` pairs, or :class:`ToolCall` s (an
                ``id`` / ``agent`` of ``None`` matches any).
            agent: Only the tool calls asked for by this agent's model calls (``None``: all of them).
            mode: ``"strict"`` | ``"unordered"`` | ``"subset"`` | ``"superset"``.
            args: ``"exact"`` | ``"ignore"`` | ``"subset"`` | ``"superset"``.

        Raises:
            AssertionError: on a mismatch; the message shows why, the expected calls and the actual calls
                per agent.
            UsageError: for an unknown ``mode`` / ``args`` or an expected item of another shape.
        """
        from .runtime import _trajectory as tr

        if mode not in tr.MODES:
            raise UsageError(
                f"{self.test_id}: assert_tool_calls(mode={mode!r}): use one of {', '.join(tr.MODES)}"
            )
        if args not in tr.ARG_MODES:
            raise UsageError(
                f"{self.test_id}: assert_tool_calls(args={args!r}): use one of {', '.join(tr.ARG_MODES)}"
            )
        wanted = tr.expected_calls(expected, self.test_id)
        every = self.tool_calls
        actual = every if agent is None else [t for t in every if t.agent == agent]
        why = tr.mismatch(wanted, actual, mode, args)
        if why is None:
            return
        scope = "every agent" if agent is None else f"agent {agent!r}"
        lines = [
            f"{self.test_id}: tool calls of {scope} do not match (mode={mode!r}, args={args!r})",
            "why: " + why.replace("\n", "\n     "),
            f"expected ({len(wanted)}):",
            *(f"  {i + 1}. {e.describe()}" for i, e in enumerate(wanted)),
            "actual, per agent:",
        ]
        by_agent: dict[str, list[ToolCall]] = {}
        for tool in actual:
            by_agent.setdefault(tool.agent or UNATTRIBUTED, []).append(tool)
        for name, tools in by_agent.items():
            lines.append(f"  {name} ({len(tools)}):")
            lines += [f"    {i + 1}. {tr.describe(t)}" for i, t in enumerate(tools)]
        if not by_agent:
            lines.append("  (no tool calls)")
        raise AssertionError("\n".join(lines))

    def assert_deadline(self, seconds: float) -> None:
        """Fail when the flow's virtual elapsed time exceeds ``seconds``.

        Raises:
            AssertionError: with elapsed vs deadline and the slowest calls.
        """
        __tracebackhide__ = True
        elapsed = self.elapsed
        if elapsed > seconds + 1e-9:
            slow = sorted(self.calls, key=lambda c: -c.latency_s)[:3]
            detail = "\n".join(
                f"  {c.agent or '(none)':<20} {c.model:<28} {c.latency_s:8.3f} s" for c in slow
            )
            raise AssertionError(
                f"{self.test_id}: agent deadline exceeded: the flow took {elapsed:.3f} s of virtual time, "
                f"deadline {seconds:g} s.\nSlowest model calls:\n{detail or '  (none)'}"
            )

    def __repr__(self) -> str:
        return f"Flow({self.test_id!r}, calls={len(self.calls)}, elapsed={self.elapsed:.3f}s)"


def _reset_flow(token: Any) -> None:
    try:
        current_flow.reset(token)
    except ValueError:  # left in another context than the one it was entered in
        current_flow.set(None)


_UNPRICED = object()


class CallFacts(NamedTuple):
    """What the report reads of one model call (the :class:`ModelCall` fields of the same names)."""

    agent: str | None
    provider: str
    model: str
    usage: Usage
    started_at: float
    latency_s: float
    streamed: bool
    replayed: bool
    tool_names: tuple[str, ...]
    usage_reported: bool

    @classmethod
    def of(cls, call: ModelCall) -> CallFacts:
        """The facts of a call in the ledger."""
        return cls(
            call.agent,
            call.provider,
            call.model,
            call.usage,
            call.started_at,
            call.latency_s,
            call.streamed,
            call.replayed,
            tuple(t.name for t in call.tool_calls),
            call.usage_reported,
        )

    @classmethod
    def deferred(cls, exchange: Exchange, priced: Priced, latency: float, started: float) -> CallFacts:
        """The facts of a deferred exchange: those of the :class:`ModelCall` settling it would build."""
        return cls(
            exchange.agent,
            priced.adapter.provider,
            priced.model,
            priced.usage,
            round(started, 6),
            latency,
            priced.streamed,
            exchange.replayed,
            tuple(t.name for t in priced.parsed.tool_calls),
            priced.parsed.usage_reported,
        )


class _Exchanged:
    """An exchange as :meth:`Flow.on_exchange` saw it: what accounting it later needs of that moment."""

    __slots__ = ("at", "exchange", "latency", "parent", "priced", "started")

    def __init__(self, exchange: Exchange, latency: float, started: float, parent: str | None, at: float):
        self.priced: Priced | object | None = _UNPRICED
        """The exchange read and priced (:meth:`Flow._priced`), ``None`` if no model call; ``_UNPRICED``."""
        self.exchange = exchange
        self.latency = latency
        """Virtual seconds charged."""
        self.started = started
        """Virtual time the request was sent."""
        self.parent = parent
        """The scope the call was made in."""
        self.at = at
        """Virtual time it completed (the ``at`` of its decisions)."""


def _probe(flow: weakref.ref[Flow]) -> Callable[[], bool]:
    """The clock's real-time probe of ``flow``: its ``real_time``, ``False`` once the flow is gone."""

    def real_time() -> bool:
        alive = flow()
        return alive is not None and alive.real_time

    return real_time


class _Settling:
    """A lock that first settles a flow's deferred exchanges (the flow's log and budget locks)."""

    __slots__ = ("_inner", "_settle")

    def __init__(self, inner: Any, settle: weakref.WeakMethod[Callable[[], None]]) -> None:
        self._inner = inner
        self._settle = settle

    def __enter__(self) -> Any:
        settle = self._settle()
        if settle is not None:
            settle()  # before taking the lock: settling takes it too
        return self._inner.__enter__()

    def __exit__(self, *exc: object) -> Any:
        return self._inner.__exit__(*exc)
