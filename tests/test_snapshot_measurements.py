"""Decision snapshots keep structure and leave measurements out, unless a test or the ini asks for them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_agentflows import Decision
from pytest_agentflows.model_server import LocalModelServer
from pytest_agentflows.plugin.snapshot import MEASUREMENT_FIELDS, dump_decisions

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
    # the latency a recording stores stands in for a model that answers faster or slower on each run
    agentflow.simulate_latency(float(os.environ["AF_LATENCY"]))
    client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
    for agent, prompt in (("router", "classify billing"), ("billing", "answer the invoice question")):
        with agentflow.agent(agent):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    agentflow.log.record("route", agent="router", chosen="billing")
    agentflow.log.record("stage_complete", agent="billing", stage="billing", tokens=12, cost_usd=0.25)
    client.close()

def test_structure(agentflow, decision_snapshot):
    run(agentflow)
    assert agentflow.decisions == decision_snapshot

@pytest.mark.agentflow(snapshot_measurements=True)
def test_measured(agentflow, decision_snapshot):
    run(agentflow)
    assert agentflow.decisions == decision_snapshot
"""


def _snapshot(pytester: pytest.Pytester) -> str:
    return (pytester.path / "__snapshots__" / "test_flow.agentflows").read_text()


def _sections(text: str) -> dict[str, str]:
    """The snapshots of an amber file by test name."""
    return {part.split("\n", 1)[0]: part for part in text.split("# name: ")[1:]}


def test_re_recording_an_unchanged_flow_leaves_structure_snapshots_unchanged(
    pytester: pytest.Pytester,
    model_server: LocalModelServer,
    go_offline: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_flow=FLOW)
    monkeypatch.setenv("AF_LATENCY", "0.5")
    pytester.runpytest("--record-agents", "--snapshot-update").assert_outcomes(passed=2)
    first = _snapshot(pytester)
    cassette = pytester.path / "cassettes" / "test_flow" / "test_structure.yaml"
    recorded = cassette.read_text()
    structure, measured = _sections(first)["test_structure"], _sections(first)["test_measured"]
    assert (
        "kind: model_call" in structure and "chosen: billing" in structure and "stage: billing" in structure
    )
    for field in ("at:", "latency_s:", "input_tokens:", "output_tokens:", "cost_usd:", "tokens:"):
        assert field not in structure, field
        assert field in measured, field  # the opted-in test keeps them
    assert "latency_s: 0.5" in measured

    # the model now answers in 0.9 s: re-record everything, as a team does after any change
    monkeypatch.setenv("AF_LATENCY", "0.9")
    result = pytester.runpytest("--record-agents=all")
    result.assert_outcomes(passed=1, failed=1)  # only the test that opted into measurements churns
    result.stdout.fnmatch_lines(["*test_measured*", "*-   at: 0.5", "*+   at: 0.9"])
    result.stdout.no_fnmatch_line("*never replayed*")  # =all rewrites the cassettes: nothing left unused
    assert _snapshot(pytester) == first
    assert cassette.read_text() != recorded  # re-recorded (and saved: the test passed)
    go_offline()
    pytester.runpytest().assert_outcomes(passed=2)  # the new recording replays against the same snapshot


def test_ini_keeps_measurements_and_the_marker_overrides_it(
    pytester: pytest.Pytester, model_server: LocalModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI + "agentflows_snapshot_measurements = true\n")
    pytester.makepyfile(
        test_flow=FLOW.replace(
            "def test_structure(", "@pytest.mark.agentflow(snapshot_measurements=False)\ndef test_structure("
        ).replace("@pytest.mark.agentflow(snapshot_measurements=True)\n", "")
    )
    monkeypatch.setenv("AF_LATENCY", "0.5")
    pytester.runpytest("--record-agents", "--snapshot-update").assert_outcomes(passed=2)
    sections = _sections(_snapshot(pytester))
    structure, measured = sections["test_structure"], sections["test_measured"]
    assert "at:" not in structure and "latency_s:" not in structure
    assert "at: 0.5" in measured and "latency_s: 0.5" in measured


def test_a_misused_snapshot_measurements_argument_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_bad="""
        import pytest
        @pytest.mark.agentflow(snapshot_measurements="yes")
        def test_bad(agentflow, decision_snapshot):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*snapshot_measurements must be True or False, got 'yes'*"])


def test_measurement_fields_are_dropped_in_the_same_key_order() -> None:
    decisions = [
        Decision(
            seq=0,
            at=1.5,
            kind="model_call",
            agent="router",
            model="m",
            input_tokens=3,
            output_tokens=1,
            cost_usd=0.1,
            latency_s=1.5,
            cancelled=True,
        ),
        Decision(seq=1, at=1.5, kind="route", agent="router", chosen="billing", reason="r"),
    ]
    assert dump_decisions(decisions, measurements=False) == (
        "- seq: 0\n  kind: model_call\n  agent: router\n  cancelled: true\n  model: m\n"
        "- seq: 1\n  kind: route\n  agent: router\n  chosen: billing\n  reason: r\n"
    )
    full = dump_decisions(decisions)
    assert full.index("at: 1.5") < full.index("kind: model_call")  # the measured layout is unchanged
    # structural fields new decisions may carry (ids, parents, tool names) are never measurements
    assert not MEASUREMENT_FIELDS & {"id", "parent", "tool", "arguments", "chosen", "approved", "error"}
