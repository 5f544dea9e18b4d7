"""Outside a flow, or in an active flow with nothing to replay, real network waits stay real.

Before, a pattern made its event loop virtual even with no cassette: while a request to a server with
real latency was in flight, the loop had nothing to do but wait, so it jumped to the next timer and every
timeout fired at once (1,800 "seconds" after 0.55 s of real time). These tests talk to the local model
server with real latency and need every answer to arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest

from pytest_agentflows import Broadcast, Deadline, Flow, Supervisor
from pytest_agentflows.model_server import LocalModelServer

LATENCY = 0.2


@pytest.fixture
def slow_server() -> Iterator[LocalModelServer]:
    with LocalModelServer(latency=LATENCY) as server:
        yield server


def _agent(server: LocalModelServer, text: str):  # type: ignore[no-untyped-def]
    async def run(task: str) -> str:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as c:
            r = await c.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
            )
        return r.choices[0].message.content or ""

    return run


def _agents(server: LocalModelServer) -> dict[str, object]:
    return {name: _agent(server, f"{name} question") for name in ("docs", "tickets", "status")}


async def test_standalone_broadcast_waits_for_real_answers(slow_server: LocalModelServer) -> None:
    broadcast = Broadcast(
        _agents(slow_server), lambda results: "\n".join(r.text for r in results), timeout=30
    )
    result = await broadcast.run("outage?")
    assert sorted(r.agent for r in result.data) == ["docs", "status", "tickets"]
    assert broadcast.log.kinds() == ["broadcast_complete"]  # no agent_timeout
    assert len(slow_server.requests) == 3


def test_standalone_supervisor_with_a_deadline_run_sync(slow_server: LocalModelServer) -> None:
    supervisor = Supervisor(_agent(slow_server, "draft"), lambda text: "APPROVED", deadline=60)
    result = supervisor.run_sync("write a reply")
    assert result.text
    assert [d.kind for d in supervisor.decisions] == ["supervisor_review"]


async def test_user_timeouts_around_real_calls_do_not_fire_early(slow_server: LocalModelServer) -> None:
    ask = _agent(slow_server, "hello")
    answers = await asyncio.gather(*(asyncio.wait_for(ask("x"), timeout=30) for _ in range(3)))
    assert all(answers)


async def test_active_flow_without_cassette_or_script_runs_on_real_time(
    slow_server: LocalModelServer,
) -> None:
    flow = Flow()
    with flow.activate():
        assert flow.real_time
        deadline = Deadline(seconds=60)  # the flow clock: it never moves here, so never expires
        result = await Broadcast(_agents(slow_server), lambda rs: str(len(rs)), timeout=30).run("q")
        assert not deadline.expired()
    assert result.text == "3"
    assert "agent_timeout" not in flow.log.kinds()
    assert flow.clock.loop_attached is False
