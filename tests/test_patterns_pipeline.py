"""Pipeline: stage chaining, stage_complete accounting, budget reservations and a clean halt."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pattern_flows as pf
import pytest

from pytest_agentflows import AgentResult, BudgetExceeded, Flow, Pipeline, Stage


@contextmanager
def replay(name: str, **kwargs: Any) -> Iterator[Flow]:
    flow = Flow(cassette=pf.cassette(name), test_id=name, **kwargs)
    with flow.activate():
        yield flow


def assert_stage_accounting(flow: Flow, stages: list[str]) -> None:
    done = flow.log.of_kind("stage_complete")
    assert [(d.agent, d.stage) for d in done] == [(s, s) for s in stages]  # type: ignore[attr-defined]
    by_agent = flow.usage_by_agent()
    for decision in done:
        usage = by_agent[decision.stage]  # type: ignore[attr-defined]
        assert decision.tokens == usage.total_tokens  # type: ignore[attr-defined]
        assert decision.cost_usd == pytest.approx(usage.cost_usd)  # type: ignore[attr-defined]


def test_each_stage_gets_the_previous_text_sync() -> None:
    with replay("pipeline_sync") as flow:
        pipeline = pf.pipeline(flow)
        result = pipeline.run_sync(pf.TOPIC)
    research, draft, edit = (stage.agent for stage in pipeline.stages)
    assert (
        isinstance(research, pf.ChatAgent)
        and isinstance(draft, pf.ChatAgent)
        and isinstance(edit, pf.ChatAgent)
    )
    assert research.inputs == [pf.TOPIC]
    assert draft.inputs == [f"[gpt-4o-mini] reply to: {pf.TOPIC}"]
    assert edit.inputs == [result.data[1].text]
    assert result.agent == "edit"
    assert [r.agent for r in result.data] == ["research", "draft", "edit"]
    assert result.text == result.data[-1].text
    assert result.usage == flow.usage
    assert [c.agent for c in flow.calls] == ["research", "draft", "edit"]
    assert_stage_accounting(flow, ["research", "draft", "edit"])
    assert [d.at for d in flow.log.of_kind("stage_complete")] == [4.0, 10.0, 13.0]
    assert flow.elapsed == 13.0
    assert flow.budget.reserved_usd == 0.0  # every reservation was released


async def test_async_pipeline_mixes_async_and_sync_stages() -> None:
    with replay("pipeline_async") as flow:
        result = await pf.pipeline(flow, asynchronous=True).run(pf.TOPIC)
        assert flow.clock.now() == 13.0
    assert [c.agent for c in flow.calls] == ["research", "draft", "edit"]
    assert [c.started_at for c in flow.calls] == [0.0, 4.0, 10.0]
    assert_stage_accounting(flow, ["research", "draft", "edit"])
    assert result.usage == flow.usage


def test_budget_exhaustion_halts_before_the_stage_makes_a_call() -> None:
    with replay("pipeline_halt", budget_usd=pf.PIPELINE_HALT_BUDGET) as flow:
        pipeline = pf.pipeline(flow)
        with pytest.raises(BudgetExceeded) as info:
            pipeline.run_sync(pf.TOPIC)
    error = info.value
    assert error.before_start and error.agent == "edit" and error.kind == "usd"
    assert error.requested == pf.PIPELINE_CAPS[2]
    # The ledger: the halted stage made no call; nothing was overspent.
    assert [c.agent for c in flow.calls] == ["research", "draft"]
    edit = pipeline.stages[2].agent
    assert isinstance(edit, pf.ChatAgent) and edit.inputs == []
    assert flow.usage.cost_usd is not None and flow.usage.cost_usd <= pf.PIPELINE_HALT_BUDGET
    assert flow.log.kinds() == [
        "model_call",
        "stage_complete",
        "model_call",
        "stage_complete",
        "pipeline_halted",
    ]
    halted = flow.decisions[-1]
    assert (halted.agent, halted.stage, halted.at) == ("edit", "edit", 10.0)  # type: ignore[attr-defined]
    assert halted.spent_usd == pytest.approx(flow.usage.cost_usd)  # type: ignore[attr-defined]
    assert halted.remaining_usd == pytest.approx(pf.PIPELINE_HALT_BUDGET - flow.usage.cost_usd)  # type: ignore[attr-defined]
    assert halted.reason == "reserving its max_usd=$0.0002 does not fit: $0.000179 of the $0.0002 budget left"  # type: ignore[attr-defined]


# -- plain agents --------------------------------------------------------------------------------------
def test_stage_shapes_and_validation() -> None:
    pipeline = Pipeline([Stage("a", str.upper), ("b", lambda t: t + "!"), ("c", lambda t: t * 2, 0.5)])
    assert [s.max_usd for s in pipeline.stages] == [None, None, 0.5]
    assert pipeline.run_sync("x").text == "X!X!"
    with pytest.raises(ValueError, match="at least one stage"):
        Pipeline([])
    with pytest.raises(ValueError, match="unique; repeated: a"):
        Pipeline([("a", str), ("a", str)])
    with pytest.raises(ValueError, match="max_usd must be a number >= 0"):
        Stage("a", str, max_usd=-1)
    with pytest.raises(TypeError, match="must be a Stage"):
        Pipeline(["a"])  # type: ignore[list-item]


def test_a_stage_with_no_cap_halts_when_nothing_is_left() -> None:
    pipeline = Pipeline([("only", lambda t: t)], flow=Flow(budget_usd=0.0))
    with pytest.raises(BudgetExceeded):
        pipeline.run_sync("x")
    (halted,) = pipeline.decisions
    assert halted.kind == "pipeline_halted"
    assert halted.reason == "reserving any amount does not fit: $0.00 of the $0.00 budget left"  # type: ignore[attr-defined]
    assert halted.remaining_usd == 0.0  # type: ignore[attr-defined]


def test_agent_supplied_usage_is_kept_when_no_model_call_was_measured() -> None:
    from pytest_agentflows import Usage

    def stage(text: str) -> AgentResult:
        return AgentResult(text=text, usage=Usage(input_tokens=3, output_tokens=4, cost_usd=0.01))

    pipeline = Pipeline([("a", stage)])
    result = pipeline.run_sync("x")
    assert result.usage.total_tokens == 7
    assert pipeline.decisions[0].tokens == 7  # type: ignore[attr-defined]
