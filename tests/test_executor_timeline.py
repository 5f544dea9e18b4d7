"""Work awaited in a thread (``asyncio.to_thread``, ``loop.run_in_executor``) runs on the caller's timeline.

CrewAI runs each LLM call through ``asyncio.to_thread``: sequential calls must add up (1 s + 2 s = 3 s),
only concurrent ones overlap, and decision times never run backwards.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import openai
import pytest

from pytest_agentflows import Flow, ScriptedModel, VirtualClock


def _run(clock: VirtualClock, main: Any) -> Any:
    with clock.executor_timeline():
        return asyncio.run(main())


def test_sequential_awaited_threads_add_up() -> None:
    clock = VirtualClock()

    async def main() -> float:
        await asyncio.to_thread(clock.advance, 1.0)
        await asyncio.to_thread(clock.advance, 2.0)
        return clock.now()

    assert _run(clock, main) == 3.0
    assert clock.elapsed == 3.0


def test_concurrent_awaited_threads_overlap() -> None:
    clock = VirtualClock()

    async def main() -> float:
        await asyncio.gather(asyncio.to_thread(clock.advance, 1.0), asyncio.to_thread(clock.advance, 2.0))
        return clock.now()

    assert _run(clock, main) == 2.0
    assert clock.elapsed == 2.0


def test_run_in_executor_and_the_loop_time_before_it() -> None:
    """A thread starts at the caller's time, loop time included (after a virtual ``asyncio.sleep``)."""
    clock = VirtualClock()

    async def main() -> tuple[float, float, float]:
        clock.attach_loop()
        await asyncio.sleep(5)
        started = await asyncio.to_thread(clock.now)
        ended = await asyncio.get_running_loop().run_in_executor(None, clock.advance, 1.5)
        return started, ended, clock.now()

    assert _run(clock, main) == (5.0, 6.5, 6.5)


def test_a_reused_pool_thread_starts_at_the_callers_time() -> None:
    """Plain ``run_in_executor`` (no context copy) on one reused thread: each job starts at the caller's time."""
    clock = VirtualClock()

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            first = await loop.run_in_executor(pool, clock.advance, 1.0)
            second = await loop.run_in_executor(pool, clock.advance, 1.0)
        return [first, second, clock.now()]

    assert _run(clock, main) == [1.0, 2.0, 2.0]


def _double(x: int) -> int:
    return 2 * x


def test_a_process_pool_is_left_alone() -> None:
    clock = VirtualClock()

    async def main() -> int:
        with concurrent.futures.ProcessPoolExecutor(max_workers=1) as pool:
            result: int = await asyncio.get_running_loop().run_in_executor(pool, _double, 21)
            return result

    assert _run(clock, main) == 42


def test_a_failing_thread_still_took_its_time() -> None:
    clock = VirtualClock()

    def slow_then_fail() -> None:
        clock.advance(4.0)
        raise RuntimeError("the tool failed")

    async def main() -> float:
        with pytest.raises(RuntimeError, match="the tool failed"):
            await asyncio.to_thread(slow_then_fail)
        return clock.now()

    assert _run(clock, main) == 4.0


def test_the_loop_class_is_restored_and_nested_timelines_use_the_innermost_clock() -> None:
    original = asyncio.BaseEventLoop.run_in_executor
    outer, inner = VirtualClock(), VirtualClock()
    with outer.executor_timeline(), inner.executor_timeline():

        async def main() -> None:
            await asyncio.to_thread(inner.advance, 2.0)

        asyncio.run(main())
    assert asyncio.BaseEventLoop.run_in_executor is original
    assert (outer.elapsed, inner.elapsed) == (0.0, 2.0)


def _ask(agentflow: Flow, agent: str) -> None:
    with agentflow.agent(agent), openai.OpenAI(api_key="sk-test") as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


async def test_sdk_calls_in_to_thread_are_sequential_in_a_flow(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    """The CrewAI shape: each sync LLM call awaited through ``asyncio.to_thread``."""
    scripted_model.openai("researcher").reply("notes", latency=1.0)
    scripted_model.openai("writer").reply("draft", latency=2.0)
    await asyncio.to_thread(_ask, agentflow, "researcher")
    await asyncio.to_thread(_ask, agentflow, "writer")
    assert agentflow.elapsed == 3.0
    calls = [(d.agent, d.at) for d in agentflow.decisions if d.kind == "model_call"]
    assert calls == [("researcher", 1.0), ("writer", 3.0)]
    assert [(c.agent, c.started_at) for c in agentflow.calls] == [("researcher", 0.0), ("writer", 1.0)]


async def test_gathered_sdk_calls_in_threads_overlap_in_a_flow(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    scripted_model.openai("a").reply("x", latency=1.0)
    scripted_model.openai("b").reply("y", latency=2.0)
    await asyncio.gather(asyncio.to_thread(_ask, agentflow, "a"), asyncio.to_thread(_ask, agentflow, "b"))
    assert agentflow.elapsed == 2.0


async def test_agent_and_current_agent_name_calls_without_the_fixture(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    """``pytest_agentflows.agent`` is the fixture-free ``Flow.agent``: context manager, decorator, threads."""
    from pytest_agentflows import agent, current_agent

    scripted_model.openai("planner").reply("plan")
    scripted_model.openai("coder").reply("code")
    seen: list[str | None] = []

    @agent("coder")
    async def code() -> None:
        seen.append(current_agent())
        await asyncio.to_thread(_ask_unnamed)

    with agent("planner"):
        seen.append(current_agent())
        await asyncio.to_thread(_ask_unnamed)
    await code()
    seen.append(current_agent())
    assert seen == ["planner", "coder", None]
    assert [c.agent for c in agentflow.calls] == ["planner", "coder"]


def _ask_unnamed() -> None:
    with openai.OpenAI(api_key="sk-test") as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
