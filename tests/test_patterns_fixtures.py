"""The pattern fixtures (agent_router, agent_pipeline, agent_broadcast, agent_supervisor) in a real pytest run.

The inner sessions replay the committed cassettes of ``fixtures/cassettes/patterns`` (see
``record_patterns.py``), so nothing here needs a network or a model server.
"""

from __future__ import annotations

from pathlib import Path

import pattern_flows as pf
import pytest

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
"""

HEADER = f"""
import asyncio
import pytest
import pattern_flows as pf
from pytest_agentflows import BudgetExceeded, Pipeline, Router

def cassette(name):
    return pytest.mark.agentflow(cassette=pf.cassette(name))

HALT_BUDGET = {pf.PIPELINE_HALT_BUDGET!r}
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.syspathinsert(Path(__file__).parent)
    return pytester


def test_factories_bind_the_test_flow(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_pf_flows=HEADER
        + """
@cassette("router_sync")
def test_router(agentflow, agent_router):
    router = agent_router(
        pf.ChatAgent(pf.CLASSIFY),
        {"billing": pf.ChatAgent("You are the billing specialist."),
         "technical": pf.ChatAgent("You are the technical specialist.")},
        fallback=pf.ChatAgent("You are the general assistant."),
    )
    assert isinstance(router, Router) and router.flow is agentflow
    assert router.run_sync(pf.TICKET).agent == "billing"
    assert [c.agent for c in agentflow.calls] == ["router", "billing"]
    assert agentflow.log.kinds() == ["model_call", "route", "model_call"]
    assert agentflow.elapsed == 3.0

@cassette("pipeline_sync")
def test_pipeline(agentflow, agent_pipeline):
    caps = pf.PIPELINE_CAPS
    pipeline = agent_pipeline([
        ("research", pf.ChatAgent("You are a researcher. List the key facts."), caps[0]),
        ("draft", pf.ChatAgent("You are a writer. Turn the notes into a short report."), caps[1]),
        ("edit", pf.ChatAgent("You are an editor. Polish the report."), caps[2]),
    ])
    assert isinstance(pipeline, Pipeline) and pipeline.budget is agentflow.budget
    pipeline.run_sync(pf.TOPIC)
    assert [d.stage for d in agentflow.log.of_kind("stage_complete")] == ["research", "draft", "edit"]

@cassette("broadcast_async")
async def test_broadcast(agentflow, agent_broadcast):
    agents = {k: pf.AsyncChatAgent(f"You are the {k}. Check the claim.") for k in ("critic", "analyst", "researcher")}
    synthesizer = pf.AsyncChatAgent("You are the synthesizer. Merge the verdicts.")

    async def merge(results):
        return await synthesizer.run(pf.joined(results))

    result = await agent_broadcast(agents, merge).run(pf.CLAIM)
    assert [r.agent for r in result.data] == ["analyst", "researcher", "critic"]
    assert agentflow.elapsed == 12.0

@cassette("supervisor_never_approves")
def test_supervisor(agentflow, agent_supervisor):
    supervisor = agent_supervisor(pf.ChatAgent("You are a technical writer."), pf.ChatAgent(pf.REVIEWER))
    result = supervisor.run_sync(pf.TOPIC)
    assert result.data["stopped"] == "max_revisions"
    assert agentflow.log.kinds().count("supervisor_review") == 3
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["agentflows: 4 flows, 16 model calls (16 replayed, 0 recorded)*"])


def test_agent_budget_marker_halts_a_pipeline_before_the_call(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_pf_budget=HEADER
        + """
def pipeline(agent_pipeline):
    caps = pf.PIPELINE_CAPS
    return agent_pipeline([
        ("research", pf.ChatAgent("You are a researcher. List the key facts."), caps[0]),
        ("draft", pf.ChatAgent("You are a writer. Turn the notes into a short report."), caps[1]),
        ("edit", pf.ChatAgent("You are an editor. Polish the report."), caps[2]),
    ])

@cassette("pipeline_halt")
@pytest.mark.agent_budget(usd=HALT_BUDGET)
def test_halt_is_caught(agentflow, agent_pipeline):
    with pytest.raises(BudgetExceeded):
        pipeline(agent_pipeline).run_sync(pf.TOPIC)
    assert [c.agent for c in agentflow.calls] == ["research", "draft"]
    assert agentflow.decisions[-1].kind == "pipeline_halted"

@cassette("pipeline_halt")
@pytest.mark.agent_budget(usd=HALT_BUDGET)
def test_halt_fails_the_test(agentflow, agent_pipeline):
    pipeline(agent_pipeline).run_sync(pf.TOPIC)
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*BudgetExceeded: USD budget exceeded: agent 'edit' did not start (no model call made)*",
        ]
    )


def test_agent_deadline_marker_stops_a_supervisor_in_time(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_pf_deadline=HEADER
        + """
@cassette("supervisor_deadline")
@pytest.mark.agent_deadline(120)
async def test_supervisor_keeps_the_flow_deadline(agentflow, agent_supervisor):
    supervisor = agent_supervisor(pf.AsyncChatAgent("You are a technical writer."), pf.AsyncChatAgent(pf.REVIEWER))
    result = await supervisor.run(pf.TOPIC)
    assert result.data["stopped"] == "deadline"
    assert agentflow.decisions[-1].kind == "supervisor_timeout"

@cassette("supervisor_deadline")
@pytest.mark.agent_deadline(120)
def test_sync_supervisor_overruns(agentflow, agent_supervisor):
    supervisor = agent_supervisor(pf.ChatAgent("You are a technical writer."), pf.ChatAgent(pf.REVIEWER))
    supervisor.run_sync(pf.TOPIC)  # the 130 s revision cannot be cut: the flow ends at 180 s
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*agent deadline exceeded: the flow took 180.000 s of virtual time, deadline 120 s*"]
    )


def test_run_sync_in_an_async_test_says_to_await(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_pf_loop=HEADER
        + """
async def test_wrong_call(agent_router):
    agent_router(lambda q: "a", {"a": lambda q: "A"}).run_sync("q")
"""
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*UsageError: Router.run_sync() was called from a running event loop*Use `await router.run(...)`*"]
    )


SNAPSHOTS = (
    HEADER
    + """
@cassette("broadcast_failures_sync")
def test_threads(agentflow, agent_broadcast, decision_snapshot):
    agents = {k: pf.ChatAgent(f"You are the {k} checker. Check the claim.") for k in ("broken", "fast", "slow")}
    agent_broadcast(agents, pf.joined, timeout=10).run_sync(pf.CLAIM)
    assert agentflow.decisions == decision_snapshot

@cassette("supervisor_deadline")
async def test_deadline(agentflow, agent_supervisor, decision_snapshot):
    writer, reviewer = pf.AsyncChatAgent("You are a technical writer."), pf.AsyncChatAgent(pf.REVIEWER)
    await agent_supervisor(writer, reviewer, deadline=120).run(pf.TOPIC)
    assert agentflow.decisions == decision_snapshot
"""
)


def test_decision_snapshots_are_written_once_and_stable(project: pytest.Pytester) -> None:
    project.makepyfile(test_pf_snap=SNAPSHOTS)
    project.runpytest("--snapshot-update").assert_outcomes(passed=2)
    files = sorted((project.path / "__snapshots__").glob("*.agentflows"))  # (+ a .lock under xdist)
    assert [f.name for f in files] == ["test_pf_snap.agentflows"]
    (snapshot,) = files
    first = snapshot.read_text()
    assert "kind: agent_timeout" in first and "kind: supervisor_timeout" in first
    for _ in range(3):
        project.runpytest().assert_outcomes(passed=2)
    assert snapshot.read_text() == first
    # A changed flow shows syrupy's diff.
    project.makepyfile(test_pf_snap=SNAPSHOTS.replace("timeout=10", "timeout=20"))
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*-   timeout: 10.0", "*+   timeout: 20.0"])
