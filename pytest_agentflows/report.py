"""Report data for flow tests (pure; rendering is called by the plugin)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from .flow import Flow


class AgentSpend(BaseModel):
    """Usage of one agent in one flow."""

    agent: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None


class FlowRow(BaseModel):
    """One flow test's totals."""

    test: str
    """pytest node id."""
    outcome: str = "passed"
    """``passed``, ``failed`` or ``error``."""
    calls: int = 0
    replayed: int = 0
    recorded: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    """US dollars (genai-prices); ``None`` when a model has no known price."""
    elapsed_s: float = 0.0
    """Virtual seconds."""
    budget_usd: float | None = None
    budget_tokens: int | None = None
    deadline_s: float | None = None
    agents: list[AgentSpend] = Field(default_factory=list)

    @classmethod
    def from_flow(cls, test: str, flow: Flow) -> FlowRow:
        """Summarise ``flow`` for test ``test``."""
        usage = flow.usage
        per_agent: dict[str, list[object]] = {}
        for call in flow.calls:
            per_agent.setdefault(call.agent or "(none)", []).append(call)
        agents = []
        for name, usage_a in flow.usage_by_agent().items():
            agents.append(
                AgentSpend(
                    agent=name,
                    calls=len(per_agent.get(name, [])),
                    input_tokens=usage_a.input_tokens,
                    output_tokens=usage_a.output_tokens,
                    cost_usd=usage_a.cost_usd,
                )
            )
        return cls(
            test=test,
            calls=len(flow.calls),
            replayed=flow.replayed_calls,
            recorded=flow.recorded_calls,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=usage.cost_usd,
            elapsed_s=round(flow.elapsed, 6),
            budget_usd=flow.budget.usd,
            budget_tokens=flow.budget.tokens,
            deadline_s=flow.deadline.seconds if flow.deadline is not None else None,
            agents=agents,
        )


def _usd(value: float | None) -> str:
    return "$?" if value is None else f"${value:.4f}"


def summary_line(rows: list[FlowRow]) -> str:
    """The one-line total printed at the end of any session in which a flow ran."""
    calls = sum(r.calls for r in rows)
    replayed = sum(r.replayed for r in rows)
    recorded = sum(r.recorded for r in rows)
    tin = sum(r.input_tokens for r in rows)
    tout = sum(r.output_tokens for r in rows)
    costs = [r.cost_usd for r in rows]
    cost = None if any(c is None for c in costs) else sum(c for c in costs if c is not None)
    virtual = sum(r.elapsed_s for r in rows)
    flows = "flow" if len(rows) == 1 else "flows"
    return (
        f"agentflows: {len(rows)} {flows}, {calls} model calls ({replayed} replayed, {recorded} recorded), "
        f"{tin:,} input + {tout:,} output tokens, {_usd(cost)}, {virtual:.1f} s virtual"
    )
