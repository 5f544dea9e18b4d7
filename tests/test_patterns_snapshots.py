"""Decision-log snapshots of the four patterns (``__snapshots__/test_patterns_snapshots.agentflows``).

Replayed from ``fixtures/cassettes/patterns``; refresh with ``pytest tests/test_patterns_snapshots.py
--snapshot-update`` after re-recording (``python tests/record_patterns.py``). Decisions carry virtual
timestamps only, and branches running in threads are committed in (virtual time, key) order, so the
snapshots are the same on every run.
"""

from __future__ import annotations

from typing import Any

import pattern_flows as pf
import pytest

from pytest_agentflows import BroadcastError, BudgetExceeded, Flow, RoutingError


def cassette(name: str) -> pytest.MarkDecorator:
    return pytest.mark.agentflow(cassette=pf.cassette(name))


@cassette("router_sync")
def test_router_sync(agentflow: Flow, decision_snapshot: Any) -> None:
    pf.router(agentflow).run_sync(pf.TICKET)
    assert agentflow.decisions == decision_snapshot


@cassette("router_async_fallback")
async def test_router_fallback_async(agentflow: Flow, decision_snapshot: Any) -> None:
    await pf.router(agentflow, asynchronous=True).run(pf.QUESTION)
    assert agentflow.decisions == decision_snapshot


@cassette("router_unknown")
def test_router_unknown(agentflow: Flow, decision_snapshot: Any) -> None:
    with pytest.raises(RoutingError):
        pf.router(agentflow, fallback=False).run_sync(pf.QUESTION)
    assert agentflow.decisions == decision_snapshot


@cassette("pipeline_sync")
def test_pipeline_sync(agentflow: Flow, decision_snapshot: Any) -> None:
    pf.pipeline(agentflow).run_sync(pf.TOPIC)
    assert agentflow.decisions == decision_snapshot


@cassette("pipeline_halt")
@pytest.mark.agent_budget(usd=pf.PIPELINE_HALT_BUDGET)
def test_pipeline_halted(agentflow: Flow, decision_snapshot: Any) -> None:
    with pytest.raises(BudgetExceeded):
        pf.pipeline(agentflow).run_sync(pf.TOPIC)
    assert agentflow.decisions == decision_snapshot


@cassette("broadcast_sync")
def test_broadcast_threads(agentflow: Flow, decision_snapshot: Any) -> None:
    pf.broadcast(agentflow).run_sync(pf.CLAIM)
    assert agentflow.decisions == decision_snapshot


@cassette("broadcast_failures_sync")
def test_broadcast_failures_threads(agentflow: Flow, decision_snapshot: Any) -> None:
    pf.broadcast_failures(agentflow).run_sync(pf.CLAIM)
    assert agentflow.decisions == decision_snapshot


@cassette("broadcast_failures_async")
async def test_broadcast_failures_async(agentflow: Flow, decision_snapshot: Any) -> None:
    await pf.broadcast_failures(agentflow, asynchronous=True).run(pf.CLAIM)
    assert agentflow.decisions == decision_snapshot


@cassette("broadcast_failures_async")
async def test_broadcast_error_async(agentflow: Flow, decision_snapshot: Any) -> None:
    with pytest.raises(BroadcastError):
        await pf.broadcast_failures(agentflow, asynchronous=True, min_successes=3).run(pf.CLAIM)
    assert agentflow.decisions == decision_snapshot


@cassette("supervisor_never_approves")
def test_supervisor_never_approves(agentflow: Flow, decision_snapshot: Any) -> None:
    pf.supervisor(agentflow).run_sync(pf.TOPIC)
    assert agentflow.decisions == decision_snapshot


@cassette("supervisor_approves_async")
async def test_supervisor_approves_async(agentflow: Flow, decision_snapshot: Any) -> None:
    await pf.supervisor(agentflow, asynchronous=True).run(pf.TOPIC)
    assert agentflow.decisions == decision_snapshot


@cassette("supervisor_deadline")
async def test_supervisor_deadline_async(agentflow: Flow, decision_snapshot: Any) -> None:
    await pf.supervisor(agentflow, asynchronous=True, deadline=120).run(pf.TOPIC)
    assert agentflow.decisions == decision_snapshot
