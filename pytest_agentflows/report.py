"""Report data for flow tests: one :class:`FlowRow` per test, session totals, the JSON report model.

Pure data (no pytest): the plugin builds a row from each test's :class:`~pytest_agentflows.Flow` at
teardown, ships rows from pytest-xdist workers to the controller as JSON, and renders them with
:mod:`pytest_agentflows._report_render` (terminal table, HTML page). ``--agentflows-json=PATH`` writes an
:class:`AgentflowsReport`; its JSON Schema is ``AgentflowsReport.model_json_schema()``.

Units everywhere: US dollars (prices from genai-prices), tokens (input and output as billed), and virtual
seconds (the flow clock: recorded model latency, never wall time). Nothing here reads the wall clock, so
a replayed session yields the same report byte for byte.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from .runtime.budget import UNATTRIBUTED, _Tally

if TYPE_CHECKING:
    from .flow import CallFacts, Flow
    from .runtime._models import ModelCall

__all__ = [
    "SCHEMA_VERSION",
    "AgentSpend",
    "AgentflowsReport",
    "Baseline",
    "BaselineMetrics",
    "CassetteUse",
    "FlowBaseline",
    "FlowRow",
    "Growth",
    "SessionTotals",
    "Span",
    "Tolerance",
    "UnusedInteractions",
    "agent_order",
    "baseline_growths",
    "build_report",
    "mermaid_gantt",
    "summary_line",
    "unused_interactions",
    "usd_text",
]

SCHEMA_VERSION = 1
"""Version of the JSON report layout; bumped on any incompatible change."""

NO_AGENT = UNATTRIBUTED  # the budget pool's label too, so every message names it alike
"""Agent name shown for model calls made outside any agent scope."""

_DIGITS = 6  # decimal places kept for virtual seconds (microseconds)
_USD_DIGITS = 12  # decimal places kept for US dollars (float noise cut off, as Usage.__add__ does)

Outcome = Literal["passed", "failed", "error", "skipped"]


class _Documented(BaseModel):
    """A report model whose JSON Schema describes each field with the field's attribute docstring.

    What pydantic's ``use_attribute_docstrings`` gives, without its cost: pydantic reads each class's
    source when the class is created (20-40 ms per pytest process, which imports this module with the first
    flow test); here the docstrings are read only when a schema is asked for.
    """

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """pydantic's JSON Schema, each field of the report models described by its docstring."""
        schema = super().model_json_schema(*args, **kwargs)
        models = {model.__name__: model for model in _Documented.__subclasses__()}
        for name, part in [(cls.__name__, schema), *schema.get("$defs", {}).items()]:
            model = models.get(name.removesuffix("-Input").removesuffix("-Output"))
            if model is None:
                continue
            docs = _attribute_docstrings(model)
            for field, prop in part.get("properties", {}).items():
                if field in docs and "description" not in prop:
                    prop["description"] = docs[field]
        return schema


@functools.cache
def _attribute_docstrings(model: type) -> dict[str, str]:
    """``{field: docstring}``: the string literal right below each annotated field in ``model``'s source."""
    import ast
    import inspect
    import textwrap

    body = ast.parse(textwrap.dedent(inspect.getsource(model))).body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    for node, after in zip(body.body, body.body[1:], strict=False):  # each statement and the next
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


class AgentSpend(_Documented):
    """Spend of one agent in one flow."""

    model_config = ConfigDict(frozen=True)

    agent: str
    """Agent name (``"(no agent)"`` for calls made outside any agent scope)."""
    calls: int
    """Model calls the agent made."""
    input_tokens: int
    """Billed input tokens of those calls."""
    output_tokens: int
    """Billed output tokens of those calls."""
    cost_usd: float | None
    """US dollars (genai-prices); ``None`` when a model of the agent has no known price."""


class Span(_Documented):
    """One model call on the flow's timeline (the bars of the Gantt chart)."""

    model_config = ConfigDict(frozen=True)

    index: int
    """Position of the call in the flow's ledger (completion order), from 0."""
    agent: str
    """Agent that made the call (``"(no agent)"`` outside any agent scope)."""
    provider: str
    """Wire API family: ``"openai"``, ``"anthropic"``, …"""
    model: str
    """Model name as the response gives it."""
    start_s: float
    """Virtual seconds since the flow started at which the call began."""
    end_s: float
    """Virtual seconds at which the response was complete (``start_s + latency``)."""
    input_tokens: int
    """Billed input tokens."""
    output_tokens: int
    """Billed output tokens."""
    cost_usd: float | None
    """US dollars; ``None`` when the model has no known price."""
    streamed: bool
    """Whether the response was a server-sent-event stream."""
    replayed: bool
    """``True`` when served from the cassette, ``False`` when recorded from the network in this run."""
    tool_calls: list[str] = Field(default_factory=list)
    """Names of the tool calls the response asked for, in order (a tool-call turn when not empty)."""
    usage_reported: bool = True
    """``False`` when the response carried no usage (tokens 0, price unknown; see ``ModelCall``)."""

    @property
    def latency_s(self) -> float:
        """Virtual seconds the call took."""
        return round(self.end_s - self.start_s, _DIGITS)

    @classmethod
    def from_call(cls, index: int, call: ModelCall) -> Span:
        """The span of ``call``, the ``index``-th call of a flow."""
        from .flow import CallFacts

        return cls(**_span_data(index, CallFacts.of(call)))


def _span_data(index: int, call: CallFacts) -> dict[str, Any]:
    """The fields of :meth:`Span.from_call`'s span as plain data."""
    start = round(call.started_at, _DIGITS)
    usage = call.usage
    return {
        "index": index,
        "agent": call.agent or NO_AGENT,
        "provider": call.provider,
        "model": call.model,
        "start_s": start,
        "end_s": round(start + call.latency_s, _DIGITS),
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": usage.cost_usd,
        "streamed": call.streamed,
        "replayed": call.replayed,
        "tool_calls": list(call.tool_names),
        "usage_reported": call.usage_reported,
    }


class FlowRow(_Documented):
    """One flow test: totals, caps and margins, spend per agent, timeline and decision counts."""

    test: str
    """pytest node id."""
    outcome: Outcome = "passed"
    """``passed``; ``failed`` (the test body or a budget/deadline verdict failed); ``error`` (setup or
    teardown failed); ``skipped``."""
    calls: int = 0
    """Model calls of the flow."""
    replayed: int = 0
    """Of ``calls``, those served from the cassette."""
    recorded: int = 0
    """Of ``calls``, those recorded from the network in this run."""
    input_tokens: int = 0
    """Billed input tokens, all calls."""
    output_tokens: int = 0
    """Billed output tokens, all calls."""
    cost_usd: float | None = 0.0
    """US dollars (genai-prices); ``None`` when a model has no known price."""
    elapsed_s: float = 0.0
    """Virtual seconds the flow took (concurrent calls overlap)."""
    budget_usd: float | None = None
    """USD cap of the flow's budget (``agent_budget(usd=...)``), ``None`` without one."""
    budget_tokens: int | None = None
    """Token cap (input + output) of the flow's budget, ``None`` without one."""
    deadline_s: float | None = None
    """Deadline in virtual seconds (``agent_deadline(seconds)``), ``None`` without one."""
    budget_margin_usd: float | None = None
    """``budget_usd - cost_usd`` in US dollars (negative: over budget); ``None`` without a USD cap or when
    the cost is unknown."""
    budget_margin_tokens: int | None = None
    """``budget_tokens - (input_tokens + output_tokens)`` (negative: over budget); ``None`` without a cap."""
    deadline_margin_s: float | None = None
    """``deadline_s - elapsed_s`` in virtual seconds (negative: late); ``None`` without a deadline."""
    agents: list[AgentSpend] = Field(default_factory=list)
    """Spend per agent, sorted by agent name."""
    spans: list[Span] = Field(default_factory=list)
    """The model calls on the virtual timeline, in ledger (completion) order."""
    decisions: dict[str, int] = Field(default_factory=dict)
    """Decision-log entries per kind (``route``, ``stage_complete``, ``model_call``, …), sorted by kind."""
    mermaid: str = ""
    """The flow's timeline as a Mermaid Gantt chart (one section per agent, one bar per model call)."""

    @property
    def total_tokens(self) -> int:
        """``input_tokens + output_tokens``."""
        return self.input_tokens + self.output_tokens

    @classmethod
    def from_flow(cls, test: str, flow: Flow, outcome: Outcome = "passed", *, chart: bool = True) -> FlowRow:
        """Summarise ``flow``, the flow of test ``test``.

        Args:
            test: The pytest node id.
            flow: The test's flow (read only).
            outcome: The test's outcome.
            chart: Compute the Mermaid chart now; ``False`` leaves it to :func:`build_report` (the plugin
                builds a row for every flow test, and most sessions write no report file).
        """
        row = cls.model_validate(row_data(test, flow, outcome))
        return row.model_copy(update={"mermaid": mermaid_gantt(row)}) if chart else row

    def with_margins(self, *, chart: bool = True) -> FlowRow:
        """A copy with the budget and deadline margins and (``chart``) the Mermaid chart computed."""
        update = _margins(
            self.budget_usd,
            self.cost_usd,
            self.budget_tokens,
            self.total_tokens,
            self.deadline_s,
            self.elapsed_s,
        )
        row = self.model_copy(update=update)
        return row.model_copy(update={"mermaid": mermaid_gantt(row)}) if chart else row


def _margins(
    budget_usd: float | None,
    cost_usd: float | None,
    budget_tokens: int | None,
    total_tokens: int,
    deadline_s: float | None,
    elapsed_s: float,
) -> dict[str, Any]:
    """``budget_margin_usd``, ``budget_margin_tokens`` and ``deadline_margin_s`` of a row's figures."""
    usd = None
    if budget_usd is not None and cost_usd is not None:
        usd = round(budget_usd - cost_usd, _USD_DIGITS)
    return {
        "budget_margin_usd": usd,
        "budget_margin_tokens": None if budget_tokens is None else budget_tokens - total_tokens,
        "deadline_margin_s": None if deadline_s is None else round(deadline_s - elapsed_s, _DIGITS),
    }


def row_data(test: str, flow: Flow, outcome: Outcome = "passed") -> dict[str, Any]:
    """The fields of ``FlowRow.from_flow(test, flow, outcome, chart=False)`` as plain JSON data.

    What the plugin keeps of each flow test (as JSON text, see ``plugin/_rows.py``): built from plain dicts,
    with no model objects, since it runs once per flow test. ``FlowRow.model_validate`` reads it back.

    Args:
        test: The pytest node id.
        flow: The test's flow (read only).
        outcome: The test's outcome.

    Returns:
        A dict with every :class:`FlowRow` field, in declaration order (``mermaid`` empty); ``agents`` and
        ``spans`` as lists of dicts of :class:`AgentSpend` and :class:`Span` fields.
    """
    # one read of the ledger (deferred calls priced, not settled): totals, spend per agent, spans in one pass
    calls = flow._call_facts()
    total = _Tally()
    by_agent: dict[str, _Tally] = {}
    count: Counter[str] = Counter()
    replayed = 0
    spans: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        usage = call.usage
        total.add(usage)
        name = call.agent or NO_AGENT
        tally = by_agent.get(name)
        if tally is None:
            tally = by_agent[name] = _Tally()
        tally.add(usage)
        count[name] += 1
        replayed += call.replayed
        spans.append(_span_data(index, call))
    agents = [
        {
            "agent": name,
            "calls": count[name],
            "input_tokens": tally.input,
            "output_tokens": tally.output,
            "cost_usd": tally.cost,
        }
        for name, tally in sorted(by_agent.items())
    ]
    elapsed = round(flow.elapsed, _DIGITS)
    budget_usd, budget_tokens = flow.budget.usd, flow.budget.tokens
    deadline_s = flow.deadline.seconds if flow.deadline is not None else None
    return {
        "test": test,
        "outcome": outcome,
        "calls": len(calls),
        "replayed": replayed,
        "recorded": len(calls) - replayed,
        "input_tokens": total.input,
        "output_tokens": total.output,
        "cost_usd": total.cost,
        "elapsed_s": elapsed,
        "budget_usd": budget_usd,
        "budget_tokens": budget_tokens,
        "deadline_s": deadline_s,
        **_margins(budget_usd, total.cost, budget_tokens, total.input + total.output, deadline_s, elapsed),
        "agents": agents,
        "spans": spans,
        "decisions": dict(sorted(flow._decision_kinds().items())),
        "mermaid": "",
    }


class RowFigures(Protocol):
    """What the session totals read of a row: a :class:`FlowRow`, or the plugin's compact copy of one."""

    @property
    def outcome(self) -> str: ...
    @property
    def calls(self) -> int: ...
    @property
    def replayed(self) -> int: ...
    @property
    def recorded(self) -> int: ...
    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cost_usd(self) -> float | None: ...
    @property
    def elapsed_s(self) -> float: ...


class SessionTotals(_Documented):
    """Totals over every flow test of the session."""

    flows: int = 0
    """Flow tests (tests that used the ``agentflow`` fixture)."""
    passed: int = 0
    """Flow tests that passed."""
    failed: int = 0
    """Flow tests that failed or errored."""
    calls: int = 0
    """Model calls."""
    replayed: int = 0
    """Model calls served from cassettes."""
    recorded: int = 0
    """Model calls recorded from the network."""
    input_tokens: int = 0
    """Billed input tokens."""
    output_tokens: int = 0
    """Billed output tokens."""
    cost_usd: float | None = 0.0
    """US dollars; ``None`` when any flow's cost is unknown."""
    elapsed_s: float = 0.0
    """Sum of the flows' virtual seconds."""

    @classmethod
    def from_rows(cls, rows: Iterable[RowFigures]) -> SessionTotals:
        """Add up ``rows`` (:class:`FlowRow` objects, or anything with their figures)."""
        rows = list(rows)
        costs = [r.cost_usd for r in rows]
        cost = None if any(c is None for c in costs) else round(sum(c for c in costs if c is not None), 12)
        return cls(
            flows=len(rows),
            passed=sum(1 for r in rows if r.outcome == "passed"),
            failed=sum(1 for r in rows if r.outcome in ("failed", "error")),
            calls=sum(r.calls for r in rows),
            replayed=sum(r.replayed for r in rows),
            recorded=sum(r.recorded for r in rows),
            input_tokens=sum(r.input_tokens for r in rows),
            output_tokens=sum(r.output_tokens for r in rows),
            cost_usd=cost,
            elapsed_s=round(sum(r.elapsed_s for r in rows), _DIGITS),
        )


class AgentflowsReport(_Documented):
    """The JSON report of a test session (``pytest --agentflows-json=PATH``).

    Deterministic for a replayed session: rows are sorted by test id and no wall-clock time is stored.
    The JSON Schema, with a description per field, is ``AgentflowsReport.model_json_schema()``.
    """

    schema_version: int = SCHEMA_VERSION
    """Layout version of this document (currently 1); readers should refuse versions they do not know."""
    totals: SessionTotals = Field(default_factory=SessionTotals)
    """Totals over all rows."""
    rows: list[FlowRow] = Field(default_factory=list)
    """One row per flow test, sorted by test id."""


def build_report(rows: Sequence[FlowRow]) -> AgentflowsReport:
    """The session report for ``rows`` (any order; sorted by test id, stable for repeated ids)."""
    ordered = [
        r if r.mermaid else r.model_copy(update={"mermaid": mermaid_gantt(r)})
        for r in sorted(rows, key=lambda r: r.test)
    ]
    return AgentflowsReport(totals=SessionTotals.from_rows(ordered), rows=ordered)


def usd_text(value: float | None) -> str:
    """US dollars for the summary line: ``$0.0184``; below a cent six decimals (``$0.000014``), so a small
    spend never reads as ``$0.0000``; ``$0.00`` for nothing, ``$?`` when a price is unknown."""
    if value is None:
        return "$?"
    if value == 0:
        return "$0.00"
    if abs(value) < 0.000001:
        return "<$0.000001" if value > 0 else f"${value:.6f}"
    if abs(value) < 0.01:
        return f"${value:.6f}"
    return f"${value:.4f}"


def summary_line(rows: Sequence[RowFigures]) -> str:
    """The one-line total printed at the end of any session in which a flow ran."""
    t = SessionTotals.from_rows(rows)
    flows = "flow" if t.flows == 1 else "flows"
    calls = "model call" if t.calls == 1 else "model calls"
    return (
        f"agentflows: {t.flows} {flows}, {t.calls} {calls} "
        f"({t.replayed} replayed, {t.recorded} recorded), "
        f"{t.input_tokens:,} input + {t.output_tokens:,} output tokens, {usd_text(t.cost_usd)}, "
        f"{t.elapsed_s:.1f} s virtual"
    )


# -- cost baseline (models without use_attribute_docstrings: it costs import time in every flow session) --
BASELINE_SCHEMA_VERSION = 1
"""Layout version of the baseline file."""

METRICS = ("calls", "tokens", "cost_usd", "seconds")
"""The measurements a baseline keeps, per flow and per agent."""


class BaselineMetrics(BaseModel):
    """What a flow, or one agent of it, used: model calls, tokens, US dollars, virtual seconds."""

    model_config = ConfigDict(frozen=True)

    calls: int = 0
    """Model calls."""
    tokens: int = 0
    """Billed input + output tokens."""
    cost_usd: float | None = 0.0
    """US dollars (genai-prices); ``None`` when a model has no known price (then not compared)."""
    seconds: float = 0.0
    """Virtual seconds: the flow's elapsed time; for an agent, the sum of its calls' latencies."""


class FlowBaseline(BaseModel):
    """The baseline of one flow test: its totals and each agent's."""

    model_config = ConfigDict(frozen=True)

    flow: BaselineMetrics = Field(default_factory=BaselineMetrics)
    """Totals of the flow."""
    agents: dict[str, BaselineMetrics] = Field(default_factory=dict)
    """Per agent (``"(no agent)"`` for calls outside any agent scope), sorted by name."""

    @classmethod
    def from_row(cls, row: FlowRow) -> FlowBaseline:
        """The baseline entry of a report row."""
        latency: dict[str, float] = {}
        for span in row.spans:
            latency[span.agent] = latency.get(span.agent, 0.0) + span.latency_s
        agents = {
            a.agent: BaselineMetrics(
                calls=a.calls,
                tokens=a.input_tokens + a.output_tokens,
                cost_usd=a.cost_usd,
                seconds=round(latency.get(a.agent, 0.0), _DIGITS),
            )
            for a in sorted(row.agents, key=lambda a: a.agent)
        }
        total = BaselineMetrics(
            calls=row.calls, tokens=row.total_tokens, cost_usd=row.cost_usd, seconds=row.elapsed_s
        )
        return cls(flow=total, agents=agents)


class Baseline(BaseModel):
    """The file of ``--agentflows-baseline=FILE``: per flow test, what it used when the file was written."""

    model_config = ConfigDict()

    schema_version: int = BASELINE_SCHEMA_VERSION
    """Layout version (currently 1)."""
    flows: dict[str, FlowBaseline] = Field(default_factory=dict)
    """By pytest node id, sorted."""

    def updated(self, rows: Iterable[FlowRow]) -> Baseline:
        """A copy with the entries of ``rows`` that passed replaced or added; other entries are kept."""
        flows = dict(self.flows)
        for row in rows:
            if row.outcome == "passed":
                flows[row.test] = FlowBaseline.from_row(row)
        return Baseline(flows=dict(sorted(flows.items())))


class Tolerance(BaseModel):
    """How much each metric may grow over the baseline before a flow fails, as a fraction (0.1 = 10%)."""

    model_config = ConfigDict(frozen=True)

    calls: float = 0.1
    """Model calls."""
    tokens: float = 0.1
    """Tokens."""
    cost_usd: float = 0.1
    """US dollars."""
    seconds: float = 0.1
    """Virtual seconds."""

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        """Read ini ``agentflows_baseline_tolerance``: ``"10%"`` for every metric, or per metric.

        Per metric: ``"tokens=5%, usd=10%, calls=0%, seconds=20%"``; a bare percentage in the list sets
        the others (default 10%). Metric names: ``calls``, ``tokens``, ``usd`` (or ``cost_usd``),
        ``seconds``.

        Raises:
            ValueError: for an unknown metric or a value that is not a percentage >= 0, naming it.
        """
        default = 0.1
        values: dict[str, float] = {}
        for part in (p.strip() for p in text.replace("\n", ",").split(",")):
            if not part:
                continue
            name, eq, value = part.rpartition("=")
            fraction = _percent(value)
            if not eq:
                default = fraction
                continue
            key = {"usd": "cost_usd"}.get(name.strip().lower(), name.strip().lower())
            if key not in METRICS:
                raise ValueError(f"unknown metric {name.strip()!r} (valid: calls, tokens, usd, seconds)")
            values[key] = fraction
        return cls(**{m: values.get(m, default) for m in METRICS})

    def describe(self) -> str:
        """``"10%"`` when all metrics share one value, else ``"calls 0%, tokens 5%, ..."``."""
        shown = {m: f"{getattr(self, m) * 100:g}%" for m in METRICS}
        if len(set(shown.values())) == 1:
            return shown["calls"]
        return ", ".join(f"{_METRIC_NAMES[m]} {v}" for m, v in shown.items())


_METRIC_NAMES = {"calls": "calls", "tokens": "tokens", "cost_usd": "USD", "seconds": "virtual s"}


def _percent(text: str) -> float:
    raw = text.strip().removesuffix("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a percentage (write e.g. 10%)") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{text.strip()!r} must be a percentage >= 0")
    return value / 100


class Growth(BaseModel):
    """One metric of a flow (or of one of its agents) that grew beyond the tolerance."""

    model_config = ConfigDict(frozen=True)

    test: str
    """pytest node id."""
    agent: str | None
    """The agent, or ``None`` for the flow's totals."""
    metric: str
    """``calls``, ``tokens``, ``cost_usd`` or ``seconds``."""
    baseline: float
    """The value in the baseline file (0 for an agent the baseline does not have)."""
    now: float
    """The value in this run."""

    @property
    def change(self) -> float | None:
        """``now / baseline - 1`` (1.0 = +100%); ``None`` when the baseline value is 0."""
        return None if not self.baseline else self.now / self.baseline - 1


def baseline_growths(
    test: str, baseline: FlowBaseline, now: FlowBaseline, tolerance: Tolerance
) -> list[Growth]:
    """The metrics of ``now`` that exceed ``baseline`` by more than ``tolerance``: flow totals, then agents.

    An agent the baseline does not know counts from 0 (any use is growth); an unknown price is not
    compared. Shrinking is never a failure.
    """
    out: list[Growth] = []
    scopes: list[tuple[str | None, BaselineMetrics, BaselineMetrics]] = [(None, baseline.flow, now.flow)]
    for name in sorted(now.agents):
        scopes.append((name, baseline.agents.get(name, BaselineMetrics()), now.agents[name]))
    for agent, old, new in scopes:
        for metric in METRICS:
            before, after = getattr(old, metric), getattr(new, metric)
            if before is None or after is None:
                continue
            limit = before * (1 + getattr(tolerance, metric))
            if after > limit + 1e-12 and after > before:
                out.append(Growth(test=test, agent=agent, metric=metric, baseline=before, now=after))
    return out


# -- unused recorded interactions ---------------------------------------------------------------------
class CassetteUse(BaseModel):
    """How one flow test used its cassette (sent from pytest-xdist workers as JSON)."""

    model_config = ConfigDict(frozen=True)

    path: str
    """The cassette file."""
    loaded: int
    """Interactions in the file when the flow started."""
    unused: dict[int, str] = Field(default_factory=dict)
    """Loaded interactions the flow never replayed: position in the file -> ``"METHOD URL"``."""
    recorded: int = 0
    """Interactions the flow recorded and saved."""
    pruned: int = 0
    """Loaded interactions dropped from the file because the flow no longer used them."""
    complete: bool = True
    """The test passed: what it did not use, it does not need (a failed test's use is not judged)."""


class UnusedInteractions(BaseModel):
    """The interactions of one cassette that no flow of the session replayed, or that were pruned."""

    model_config = ConfigDict(frozen=True)

    path: str
    """The cassette file."""
    interactions: int
    """Interactions in the file."""
    unused: dict[int, str] = Field(default_factory=dict)
    """Position in the file -> ``"METHOD URL"`` of each interaction no flow replayed."""
    pruned: int = 0
    """Interactions dropped from the file in this session (``--record-agents`` on a test's own cassette)."""


def unused_interactions(uses: Iterable[CassetteUse]) -> list[UnusedInteractions]:
    """Per cassette, the recorded interactions that no flow test of the session replayed (sorted by path).

    A cassette is judged only when every test that used it passed. Several tests sharing one cassette
    count together: an interaction is unused when none of them replayed it. A cassette whose file
    changed positions during the session (pruned) reports what was pruned instead.
    """
    by_path: dict[str, list[CassetteUse]] = {}
    for use in uses:
        by_path.setdefault(use.path, []).append(use)
    out = []
    for path in sorted(by_path):
        group = by_path[path]
        pruned = sum(u.pruned for u in group)
        if pruned:
            out.append(
                UnusedInteractions(path=path, interactions=max(u.loaded for u in group), pruned=pruned)
            )
            continue
        if not all(u.complete for u in group):
            continue
        used: set[int] = set()
        for use in group:
            used.update(i for i in range(use.loaded) if i not in use.unused)
            used.update(range(use.loaded, use.loaded + use.recorded))  # saved after the loaded ones
        unused = {i: d for use in group for i, d in use.unused.items() if i not in used}
        if unused:
            total = max(u.loaded + u.recorded for u in group)
            out.append(UnusedInteractions(path=path, interactions=total, unused=dict(sorted(unused.items()))))
    return out


# -- Mermaid -------------------------------------------------------------------------------------------
_MERMAID_UNSAFE = str.maketrans(dict.fromkeys(":;#%<>\n\r", " "))
"""Characters Mermaid reads as syntax (task metadata, entities, comments, HTML) in titles and names."""


def _mermaid_text(text: str) -> str:
    return " ".join(text.translate(_MERMAID_UNSAFE).split()) or "-"


def agent_order(spans: Sequence[Span]) -> list[str]:
    """Agents of ``spans`` in order of their first call's start (then by name)."""
    first: dict[str, float] = {}
    for span in spans:
        first[span.agent] = min(first.get(span.agent, span.start_s), span.start_s)
    return sorted(first, key=lambda a: (first[a], a))


def mermaid_gantt(row: FlowRow) -> str:
    """The flow's timeline as Mermaid Gantt source.

    Task times are virtual milliseconds since the flow started (``dateFormat x``): Mermaid parses dates
    strictly, and its ``X`` format (seconds) accepts whole seconds only. The axis is labelled in seconds
    (``axisFormat %s``, or ``%s.%L`` for flows shorter than 10 s). One ``section`` per agent, in order of
    first call; one task per model call from its start to its end, so calls that ran concurrently overlap.
    """
    end = max([row.elapsed_s, *(s.end_s for s in row.spans)])
    lines = [
        "gantt",
        f"    title {_mermaid_text(row.test)}",
        "    dateFormat x",
        f"    axisFormat {'%s' if end >= 10 else '%s.%L'}",
        "    todayMarker off",
    ]
    for agent in agent_order(row.spans):
        lines.append(f"    section {_mermaid_text(agent)}")
        for span in row.spans:
            if span.agent == agent:
                name = _mermaid_text(f"{span.model} {span.input_tokens}+{span.output_tokens} tok")
                start, stop = round(span.start_s * 1000), round(span.end_s * 1000)
                lines.append(f"    {name} :c{span.index}, {start}, {stop}")
    return "\n".join(lines) + "\n"
