"""``--agentflows-baseline``: per flow and per agent cost regressions fail the flow, with a table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_agentflows.model_server import LocalModelServer
from pytest_agentflows.report import (
    BaselineMetrics,
    FlowBaseline,
    Tolerance,
    baseline_growths,
)

pytest_plugins = ["pytester"]

# The socket line: an SDK client an earlier test left to the garbage collector may be collected during an
# inner session; its ResourceWarning is ignored there as in this suite's own filters (pyproject.toml).
INI = """
[pytest]
addopts = -p no:randomly
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
    ignore:unclosed <socket.socket:ResourceWarning
"""

FLOWS = """
import os, openai, pytest

def ask(agentflow, agent, prompt):
    client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
    with agentflow.agent(agent):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    client.close()

def test_draft(agentflow):
    agentflow.simulate_latency(1.0)
    ask(agentflow, "planner", "plan the article outline now")
    ask(agentflow, "writer", WRITER_PROMPT)

def test_steady(agentflow):
    agentflow.simulate_latency(1.0)
    ask(agentflow, "planner", "plan a short note")
"""

SHORT = "write the article"
LONG = "write the article with care and with good detail"  # the server counts words: twice the tokens


def _flows(prompt: str) -> str:
    return FLOWS.replace("WRITER_PROMPT", repr(prompt))


@pytest.fixture
def project(pytester: pytest.Pytester, model_server: LocalModelServer) -> pytest.Pytester:
    """A suite recorded with the short writer prompt, its baseline written in the same run."""
    pytester.makeini(INI)
    pytester.makepyfile(test_flows=_flows(SHORT))
    result = pytester.runpytest(
        "--record-agents", "--agentflows-baseline=baseline.json", "--agentflows-baseline-update"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["agentflows: baseline *baseline.json written (2 flows updated)"])
    return pytester


def _rerecord_with_the_long_prompt(project: pytest.Pytester) -> None:
    project.makepyfile(test_flows=_flows(LONG))
    project.runpytest("--record-agents").assert_outcomes(passed=2)


def test_a_prompt_that_doubles_one_agents_tokens_fails_its_flow_with_the_per_agent_table(
    project: pytest.Pytester, go_offline: Callable[[], None]
) -> None:
    data = json.loads((project.path / "baseline.json").read_text())
    draft = data["flows"]["test_flows.py::test_draft"]
    assert set(draft["agents"]) == {"planner", "writer"}
    assert draft["flow"] == {"calls": 2, "tokens": 28, "cost_usd": draft["flow"]["cost_usd"], "seconds": 2.0}
    assert draft["agents"]["writer"]["tokens"] == 12 and draft["agents"]["writer"]["seconds"] == 1.0
    project.runpytest("--agentflows-baseline=baseline.json").assert_outcomes(passed=2)  # nothing grew

    _rerecord_with_the_long_prompt(project)
    go_offline()
    result = project.runpytest("--agentflows-baseline=baseline.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "agentflows baseline: test_flows.py::test_draft grew beyond the tolerance (10%) of *baseline.json:",
            "  agent   metric *baseline *now *change",
            "  (flow)  tokens *28 *40 *+42.9%",
            "  (flow)  USD *$0.0000* *$0.0000* *%",
            "  writer  tokens *12 *24 *+100.0%",
            "  writer  USD *$0.0000* *$0.0000* *%",
            "Fix: if the growth is intended, update the baseline with pytest --agentflows-baseline=baseline.json "
            "--agentflows-baseline-update and commit it.",
        ]
    )
    result.stdout.no_fnmatch_line("*planner  *")  # the planner did not grow
    result.stdout.fnmatch_lines(
        [
            "agentflows: baseline *baseline.json: 2 flows compared, 1 grew beyond the tolerance (10%):",
            "  test_flows.py::test_draft",
            "    writer  tokens *12 *24 *+100.0%",
        ]
    )
    # a tolerance that allows the growth passes; per-metric tolerances
    project.makeini(INI + "agentflows_baseline_tolerance = tokens=100%, usd=100%\n")
    project.runpytest("--agentflows-baseline=baseline.json").assert_outcomes(passed=2)
    # the intended change: update the baseline, then it passes
    project.runpytest("--agentflows-baseline=baseline.json", "--agentflows-baseline-update").assert_outcomes(
        passed=2
    )
    project.makeini(INI)
    project.runpytest("--agentflows-baseline=baseline.json").assert_outcomes(passed=2)


def test_baseline_under_xdist_and_the_github_job_summary(
    project: pytest.Pytester, go_offline: Callable[[], None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("xdist")
    _rerecord_with_the_long_prompt(project)
    go_offline()
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = project.runpytest_subprocess("-p", "xdist", "-n", "2", "--agentflows-baseline=baseline.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*agentflows baseline: test_flows.py::test_draft grew beyond the tolerance (10%)*",
            "agentflows: baseline *baseline.json: 2 flows compared, 1 grew beyond the tolerance (10%):",
        ]
    )
    text = summary.read_text()
    assert text.startswith("earlier step\n## agentflows\n")  # appended, as GitHub expects
    assert "**1 flow grew beyond the baseline** (`baseline.json`, tolerance 10%):" in text
    assert "| `test_flows.py::test_draft` | writer | tokens | 12 | 24 | +100.0% |" in text
    assert "| `test_flows.py::test_steady` | passed | 1 | " in text


def test_baseline_misuse_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest("--agentflows-baseline=missing.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*missing.json does not exist. Fix: write it once with pytest *--agentflows-baseline-update*"]
    )
    result = pytester.runpytest("--agentflows-baseline-update")
    result.stderr.fnmatch_lines(["*--agentflows-baseline-update needs the file to write*"])
    pytester.makeini(INI + "agentflows_baseline_tolerance = lots\n")
    result = pytester.runpytest("--agentflows-baseline=b.json", "--agentflows-baseline-update")
    result.stderr.fnmatch_lines(["*agentflows_baseline_tolerance = 'lots': 'lots' is not a percentage*"])


def test_growths_compare_totals_and_agents_and_never_fail_on_shrinking() -> None:
    before = FlowBaseline(
        flow=BaselineMetrics(calls=2, tokens=100, cost_usd=0.01, seconds=10.0),
        agents={"a": BaselineMetrics(calls=1, tokens=50, cost_usd=None, seconds=5.0)},
    )
    now = FlowBaseline(
        flow=BaselineMetrics(calls=2, tokens=105, cost_usd=0.005, seconds=12.0),
        agents={
            "a": BaselineMetrics(calls=1, tokens=40, cost_usd=0.1, seconds=5.0),
            "b": BaselineMetrics(calls=1, tokens=1, cost_usd=0.0, seconds=0.0),
        },
    )
    growths = baseline_growths("t", before, now, Tolerance.parse("10%, seconds=5%"))
    assert [(g.agent, g.metric, g.baseline, g.now, g.change is None) for g in growths] == [
        (None, "seconds", 10.0, 12.0, False),
        ("b", "calls", 0, 1, True),
        ("b", "tokens", 0, 1, True),
    ]
    assert Tolerance.parse("calls=0%, usd=5").describe() == "calls 0%, tokens 10%, USD 5%, virtual s 10%"
    with pytest.raises(ValueError, match="unknown metric 'latency'"):
        Tolerance.parse("latency=5%")
