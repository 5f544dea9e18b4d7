"""Budget and deadline markers, and decision-log snapshots, through real inner pytest sessions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml

from pytest_agentflows.model_server import LocalModelServer

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""

FLOW = """
import os, openai, pytest

def run(agentflow):
    client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
    for agent, prompt in (("planner", "plan the trip"), ("writer", "write the long itinerary please")):
        with agentflow.agent(agent):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])

@pytest.mark.agent_budget(usd=1.0, tokens=10_000)
def test_within_budget(agentflow):
    run(agentflow)

@pytest.mark.agent_budget(tokens=20)
def test_over_token_budget(agentflow):
    run(agentflow)

@pytest.mark.agent_budget(usd=0.000001)
def test_over_usd_budget(agentflow):
    run(agentflow)

@pytest.mark.agent_deadline(60)
def test_within_deadline(agentflow):
    run(agentflow)

@pytest.mark.agent_deadline(seconds=10)
def test_over_deadline(agentflow):
    run(agentflow)

def test_explicit_assertions(agentflow):
    run(agentflow)
    agentflow.assert_within_budget(tokens=10_000)
    agentflow.assert_deadline(60)
    with pytest.raises(AssertionError, match="agent deadline exceeded"):
        agentflow.assert_deadline(0)
"""


def _set_latency(path: object, seconds: float) -> None:
    data = yaml.safe_load(path.read_text())  # type: ignore[attr-defined]
    for interaction in data["interactions"]:
        interaction["response"]["agentflows"]["latency_s"] = seconds
    path.write_text(yaml.safe_dump(data, sort_keys=False))  # type: ignore[attr-defined]


def test_budget_and_deadline_markers(
    pytester: pytest.Pytester, model_server: LocalModelServer, go_offline: Callable[[], None]
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_flow=FLOW)
    pytester.runpytest("--record-agents", "-k", "within or explicit").assert_outcomes(passed=3)
    # the over-budget tests fail while recording: save their recordings anyway
    pytester.runpytest(
        "--record-agents", "-k", "over", "-o", "agentflows_save_on_failure=true"
    ).assert_outcomes(failed=2, passed=1)
    for path in (pytester.path / "cassettes" / "test_flow").iterdir():
        _set_latency(path, 7.5)  # two sequential calls: 15 s of virtual time
    go_offline()
    result = pytester.runpytest("-rf")
    result.assert_outcomes(passed=3, failed=3)
    result.stdout.fnmatch_lines_random(
        [
            "*test_over_token_budget*agent budget exceeded: used 2? tokens of a 20-token budget*",
            # the first call crosses the $0.000001 cap: the second is refused before it is sent
            "*USD budget exceeded: a model request by agent 'writer' was refused before it was sent*",
            "*test_over_deadline*agent deadline exceeded: the flow took 15.000 s of virtual time, deadline 10 s*",
        ]
    )
    # spend per agent in the budget failure
    result.stdout.fnmatch_lines(
        ["*Spend per agent:*", "*planner * in * out  $0.0000*", "*writer * in * out*"]
    )


def test_marker_typos_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_typo="""
        import pytest
        @pytest.mark.agent_budget(dollars=1)
        def test_typo(agentflow):
            pass

        @pytest.mark.agent_deadline(-5)
        def test_negative(agentflow):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines_random(
        [
            "*@pytest.mark.agent_budget(dollars=1): unknown argument(s) dollars; valid: usd, tokens*",
            "*@pytest.mark.agent_deadline(-5): seconds must be a number >= 0 (virtual seconds), got -5*",
        ]
    )


SNAP = """
import os, openai

def test_flow(agentflow, decision_snapshot):
    client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
    with agentflow.agent("router"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "classify billing"}])
    agentflow.log.record("route", chosen=CHOSEN, reason="keyword match")
    assert agentflow.decisions == decision_snapshot

def test_other(agentflow, decision_snapshot):
    agentflow.log.record("stage_complete", agent="draft", tokens=12, cost_usd=0.0001234567)
    assert agentflow.decisions == decision_snapshot
"""


def test_decision_snapshot_written_then_diffed(
    pytester: pytest.Pytester, model_server: LocalModelServer, go_offline: Callable[[], None]
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_snap=SNAP.replace("CHOSEN", '"billing"'))
    result = pytester.runpytest("--record-agents", "--snapshot-update")
    result.assert_outcomes(passed=2)
    # (under xdist syrupy also leaves a ``.lock`` file beside it)
    snapshots = [p for p in (pytester.path / "__snapshots__").iterdir() if p.suffix != ".lock"]
    assert [p.name for p in snapshots] == ["test_snap.agentflows"]  # one file per module
    text = snapshots[0].read_text()
    assert "# name: test_flow" in text and "# name: test_other" in text
    assert "chosen: billing" in text and "kind: model_call" in text and "agent: router" in text
    assert "cost_usd" not in text and "at:" not in text  # measurements are left out by default
    go_offline()
    pytester.runpytest().assert_outcomes(passed=2)  # replay reproduces the snapshot exactly

    pytester.makepyfile(test_snap=SNAP.replace("CHOSEN", '"technical"'))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*- *chosen: billing*", "*+ *chosen: technical*"])
    assert snapshots[0].read_text() == text  # a failing comparison never rewrites the snapshot


def test_snapshot_is_deterministic_yaml_with_fixed_key_order() -> None:
    from pytest_agentflows import Decision
    from pytest_agentflows.plugin.snapshot import dump_decisions

    decisions = [
        Decision(seq=0, at=1.23456789, kind="route", agent=None, reason="r", chosen="billing"),
        Decision(seq=1, at=2.0, kind="stage_complete", agent="draft", tokens=3, cost_usd=1 / 3),
    ]
    text = dump_decisions(decisions)
    assert text == (
        "- seq: 0\n  at: 1.234568\n  kind: route\n  agent: null\n  chosen: billing\n  reason: r\n"
        "- seq: 1\n  at: 2.0\n  kind: stage_complete\n  agent: draft\n  cost_usd: 0.333333\n  tokens: 3\n"
    )
