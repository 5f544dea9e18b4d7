"""Broadcast: overlap on the virtual clock, completion order, failures, timeouts, min_successes, determinism."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pattern_flows as pf
import pytest

from pytest_agentflows import AgentResult, Broadcast, BroadcastError, Flow

# Recorded latencies 5, 8 and 10 s; the agents dict lists the critic first.
ORDER = ["analyst", "researcher", "critic"]


@contextmanager
def replay(name: str) -> Iterator[Flow]:
    flow = Flow(cassette=pf.cassette(name), test_id=name)
    with flow.activate():
        yield flow


def test_parallel_calls_overlap_and_complete_in_latency_order_sync() -> None:
    with replay("broadcast_sync") as flow:
        result = pf.broadcast(flow).run_sync(pf.CLAIM)
    assert sum(c.latency_s for c in flow.calls) == 23.0  # > 20 s of latency in total ...
    assert flow.elapsed == 10.0  # ... replays in the slowest branch's time
    assert flow.clock.now() == 10.0
    assert sorted((c.agent, c.started_at) for c in flow.calls) == [(k, 0.0) for k in sorted(ORDER)]
    assert [r.agent for r in result.data] == ORDER
    assert result.text.splitlines() == [f"{key}=[gpt-4o-mini] reply to: {pf.CLAIM}" for key in ORDER]
    assert result.agent == "aggregate"
    assert [(d.kind, d.agent, d.at) for d in flow.decisions] == [
        ("model_call", "analyst", 5.0),
        ("model_call", "researcher", 8.0),
        ("model_call", "critic", 10.0),
        ("broadcast_complete", None, 10.0),
    ]
    assert flow.decisions[-1].succeeded == ORDER  # type: ignore[attr-defined]
    assert result.usage == flow.usage


async def test_parallel_calls_overlap_and_complete_in_latency_order_async() -> None:
    with replay("broadcast_async") as flow:
        result = await pf.broadcast(flow, asynchronous=True).run(pf.CLAIM)
        assert flow.clock.now() == 12.0  # 10 s for the slowest branch, then 2 s for the synthesizer
    assert [(c.agent, c.started_at) for c in flow.calls] == [
        ("analyst", 0.0),
        ("researcher", 0.0),
        ("critic", 0.0),
        ("aggregate", 10.0),
    ]
    assert flow.elapsed == 12.0
    assert [r.agent for r in result.data] == ORDER
    synthesizer_input = f"analyst=[gpt-4o-mini] reply to: {pf.CLAIM}"
    assert result.text == f"[gpt-4o-mini] reply to: {synthesizer_input}"[:84]
    assert result.usage == flow.usage


def test_failure_and_late_arrival_sync() -> None:
    with replay("broadcast_failures_sync") as flow:
        broadcast = pf.broadcast_failures(flow)
        result = broadcast.run_sync(pf.CLAIM)
    assert [r.agent for r in result.data] == ["fast"]
    assert flow.clock.now() == 10.0  # the pattern went on at start + timeout
    assert flow.elapsed == 30.0  # the late thread's call could not be cancelled: it ran to its end
    kinds = [(d.kind, d.agent, d.at) for d in flow.decisions]
    assert kinds == [
        ("agent_failed", "broken", 2.0),
        ("model_call", "fast", 3.0),
        ("model_call", "slow", 30.0),
        ("agent_timeout", "slow", 10.0),
        ("broadcast_complete", None, 10.0),
    ]
    failed = flow.decisions[0]
    assert failed.error == "InternalServerError"  # type: ignore[attr-defined]
    assert "the broken checker is down" in failed.message  # type: ignore[attr-defined]
    assert flow.decisions[3].timeout == 10.0  # type: ignore[attr-defined]
    summary = flow.decisions[-1]
    assert (summary.succeeded, summary.failed, summary.timed_out) == (["fast"], ["broken"], ["slow"])  # type: ignore[attr-defined]


async def test_failure_late_arrival_and_user_wait_for_async() -> None:
    with replay("broadcast_failures_async") as flow:
        result = await pf.broadcast_failures(flow, asynchronous=True).run(pf.CLAIM)
        assert flow.clock.now() == 10.0
    assert flow.elapsed == 10.0  # the late call was cancelled at the timeout
    assert [r.agent for r in result.data] == ["fast"]
    assert [(d.kind, d.agent, d.at) for d in flow.decisions] == [
        ("agent_failed", "broken", 2.0),
        ("model_call", "fast", 3.0),
        ("model_call", "impatient", 5.0),  # cancelled by the agent's own asyncio.wait_for(timeout=5)
        ("agent_failed", "impatient", 5.0),
        ("model_call", "slow", 10.0),  # cancelled by the broadcast's timeout
        ("agent_timeout", "slow", 10.0),
        ("broadcast_complete", None, 10.0),
    ]
    assert flow.decisions[2].cancelled is True  # type: ignore[attr-defined]
    assert flow.decisions[3].error == "TimeoutError"  # type: ignore[attr-defined]
    assert flow.decisions[-1].failed == ["broken", "impatient"]  # type: ignore[attr-defined]


async def test_user_wait_for_times_out_on_recorded_latency() -> None:
    agent = pf.AsyncChatAgent("You are the impatient checker. Check the claim.", timeout=5)
    with replay("broadcast_failures_async") as flow:
        # The loop becomes virtual at a pattern's run() or the first async model call; this timeout starts
        # before either, so make it virtual first.
        assert flow.clock.attach_loop()
        started = time.perf_counter()
        with flow.agent("impatient"), pytest.raises(asyncio.TimeoutError):
            await agent.run(pf.CLAIM)  # recorded latency 8 s > 5 s
        assert flow.clock.now() == 5.0
        assert time.perf_counter() - started < 5.0  # virtual: no real waiting
    assert flow.elapsed == 5.0
    (call,) = flow.log.of_kind("model_call")
    assert call.cancelled is True and call.at == 5.0  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_too_few_successes_raise_broadcast_error_listing_every_failure(mode: str) -> None:
    name = f"broadcast_failures_{mode}"
    with replay(name) as flow:
        broadcast = pf.broadcast_failures(flow, asynchronous=mode == "async", min_successes=2)
        with pytest.raises(BroadcastError) as info:
            broadcast.run_sync(pf.CLAIM)
    error = info.value
    assert error.succeeded == ["fast"] and error.min_successes == 2
    assert error.failures["broken"].startswith("InternalServerError: Error code: 500")
    assert error.failures["slow"] == "timed out after 10 s (virtual)"
    message = str(error)
    assert "broadcast got 1 valid result(s) ('fast') but needs min_successes=2" in message
    assert "  broken: InternalServerError" in message and "  slow: timed out after 10 s" in message
    if mode == "async":
        assert error.failures["impatient"] == "TimeoutError: "
    assert flow.log.kinds()[-1] == "broadcast_complete"  # recorded before raising


def test_decisions_from_threads_are_stable_across_runs() -> None:
    seen = set()
    for _ in range(5):
        with replay("broadcast_failures_sync") as flow:
            pf.broadcast_failures(flow).run_sync(pf.CLAIM)
        seen.add(repr(flow.log.as_dicts()))
    assert len(seen) == 1


# -- plain agents (simulated latency) ------------------------------------------------------------------
def sync_agent(flow: Flow, seconds: float, name: str, *, fail: bool = False, jitter: bool = False) -> Any:
    def agent(text: str) -> str:
        if jitter:
            time.sleep(random.random() / 100)  # shuffle the threads' wall-clock order
        flow.log.record("note", step="start")
        flow.clock.advance(seconds)
        flow.log.record("note", step="end")
        if fail:
            raise ValueError(f"{name} failed")
        return f"{name}:{text}"

    return agent


def async_agent(flow: Flow, seconds: float, name: str) -> Any:
    async def agent(text: str) -> str:
        await flow.clock.sleep(seconds)
        return f"{name}:{text}"

    return agent


def test_thread_decisions_are_committed_in_virtual_time_then_key_order() -> None:
    for _ in range(3):
        flow = Flow()
        agents = {k: sync_agent(flow, s, k, jitter=True) for k, s in (("b", 2.0), ("a", 2.0), ("c", 1.0))}
        Broadcast(agents, pf.joined, flow=flow).run_sync("q")
        assert [(d.at, d.agent, d.step) for d in flow.decisions[:-1]] == [  # type: ignore[attr-defined]
            (0.0, "a", "start"),
            (0.0, "b", "start"),
            (0.0, "c", "start"),
            (1.0, "c", "end"),
            (2.0, "a", "end"),
            (2.0, "b", "end"),
        ]
        assert flow.decisions[-1].succeeded == ["c", "a", "b"]  # type: ignore[attr-defined]


async def test_sync_agents_overlap_in_an_async_broadcast() -> None:
    flow = Flow()
    agents = {
        "slow": sync_agent(flow, 30.0, "slow"),
        "fails": sync_agent(flow, 2.0, "fails", fail=True),
        "fast": async_agent(flow, 5.0, "fast"),
        "mid": sync_agent(flow, 8.0, "mid"),
    }
    result = await Broadcast(agents, pf.joined, timeout=10, flow=flow).run("q")
    assert flow.clock.now() == 10.0
    assert [r.agent for r in result.data] == ["fast", "mid"]
    assert [(d.kind, d.agent, d.at) for d in flow.decisions if d.kind != "note"] == [
        ("agent_failed", "fails", 2.0),
        ("agent_timeout", "slow", 10.0),
        ("broadcast_complete", None, 10.0),
    ]


def test_async_agents_in_run_sync_use_an_event_loop() -> None:
    flow = Flow()
    broadcast = Broadcast(
        {"x": async_agent(flow, 3.0, "x"), "y": async_agent(flow, 1.0, "y")}, pf.joined, flow=flow
    )
    result = broadcast.run_sync("q")
    assert result.text == "y=y:q\nx=x:q"
    assert flow.clock.now() == 3.0 and flow.elapsed == 3.0


def test_nested_broadcast_in_a_thread_commits_once_in_order() -> None:
    flow = Flow()
    inner = Broadcast(
        {"i2": sync_agent(flow, 2.0, "i2"), "i1": sync_agent(flow, 1.0, "i1")}, pf.joined, flow=flow
    )
    outer = Broadcast({"inner": inner, "solo": sync_agent(flow, 1.5, "solo")}, pf.joined, flow=flow)
    result = outer.run_sync("q")
    assert [r.agent for r in result.data] == ["solo", "aggregate"]
    ats = [d.at for d in flow.decisions]
    assert ats == sorted(ats)
    assert [d.seq for d in flow.decisions] == list(range(len(flow.decisions)))
    assert flow.clock.now() == 2.0


def test_fatal_errors_are_not_agent_failures() -> None:
    class Stop(BaseException):
        pass

    def stop(text: str) -> str:
        raise Stop

    with pytest.raises(Stop):
        Broadcast({"a": stop, "b": str}, pf.joined).run_sync("q")

    async def astop(text: str) -> str:
        raise Stop

    with pytest.raises(Stop):
        asyncio.run(Broadcast({"a": astop, "b": str}, pf.joined).run("q"))


def test_aggregate_may_return_an_agent_result_with_its_own_data() -> None:
    def vote(results: list[AgentResult]) -> AgentResult:
        return AgentResult(text="yes", data={"votes": len(results)})

    result = Broadcast({"a": str, "b": str}, vote, min_successes=2).run_sync("q")
    assert (result.text, result.agent, result.data) == ("yes", "aggregate", {"votes": 2})


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Broadcast({}, pf.joined)
    with pytest.raises(ValueError, match="between 0 and the number of agents"):
        Broadcast({"a": str}, pf.joined, min_successes=2)
    with pytest.raises(ValueError, match="timeout"):
        Broadcast({"a": str}, pf.joined, timeout=0)
    with pytest.raises(ValueError, match="non-empty strings"):
        Broadcast({"": str}, pf.joined)


def test_decision_log_hold_and_commit(tmp_path: Any) -> None:
    from pytest_agentflows import DecisionLog

    log = DecisionLog(tmp_path / "log.jsonl")
    log.record("before")
    with log.hold() as outer:
        held = log.record("held", x=1)
        with log.hold() as inner:
            log.record("inner")
        assert [d.kind for d in inner] == ["inner"]
        log.commit(reversed(inner))  # handed on to the enclosing hold
    assert held.seq == -1 and [d.kind for d in outer] == ["held", "inner"]
    assert log.kinds() == ["before"]  # nothing held reached the log (or the file)
    committed = log.commit(outer)
    assert [(d.seq, d.kind) for d in committed] == [(1, "held"), (2, "inner")]
    assert committed[0].x == 1  # type: ignore[attr-defined]
    assert [d.kind for d in DecisionLog.read_jsonl(tmp_path / "log.jsonl")] == ["before", "held", "inner"]
