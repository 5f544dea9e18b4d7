"""Resilience patterns on the virtual clock: circuit breaker, retry with fallback, degradation, default on timeout."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from pytest_agentflows import (
    AgentResult,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    DecisionLog,
    Flow,
    ScriptedModel,
    UnrecordedRequestError,
    VirtualClock,
    with_fallback,
)

pytest_plugins = ["pytester"]

GPT = "gpt-4o-mini"

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""


class Flaky:
    """A sync agent that fails while ``failing`` is true; counts its calls."""

    def __init__(self) -> None:
        self.failing = True
        self.calls = 0

    def __call__(self, question: str) -> str:
        self.calls += 1
        if self.failing:
            raise ConnectionError(f"down (call {self.calls})")
        return f"answer to {question}"


def kind(log: DecisionLog, name: str) -> list[Any]:
    """The decisions of one kind, typed loosely (their extra fields read as attributes)."""
    return log.of_kind(name)


def states(log: DecisionLog) -> list[tuple[float, str, str]]:
    return [(d.at, d.previous, d.state) for d in kind(log, "circuit_state")]


# -- circuit breaker ---------------------------------------------------------------------------------------------


def test_circuit_breaker_closed_open_half_open_closed_on_virtual_time() -> None:
    clock = VirtualClock()
    log = DecisionLog(clock=clock)
    breaker = CircuitBreaker("billing", failure_threshold=2, reset_timeout=30, clock=clock, log=log)
    flaky = Flaky()
    agent = breaker(flaky)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            agent("q")
        clock.advance(5)
    assert breaker.state is CircuitState.OPEN and flaky.calls == 2
    with pytest.raises(CircuitOpenError) as info:
        agent("q")  # refused without calling the agent
    assert flaky.calls == 2 and info.value.retry_at == 35.0
    assert "circuit 'billing' is open" in str(info.value) and "from t=35 s" in str(info.value)
    clock.advance(24)  # t=34: still open
    with pytest.raises(CircuitOpenError):
        agent("q")
    clock.advance(1)  # t=35: the next call is the half-open trial
    assert breaker.state.value == "half_open"
    with pytest.raises(ConnectionError):
        agent("q")  # the trial fails: open again for 30 s
    assert breaker.state is CircuitState.OPEN
    clock.advance(30)
    flaky.failing = False
    assert agent("q") == "answer to q"
    assert breaker.state.value == "closed" and breaker.failure_count == 0
    assert states(log) == [
        (5.0, "closed", "open"),
        (35.0, "open", "half_open"),
        (35.0, "half_open", "open"),
        (65.0, "open", "half_open"),
        (65.0, "half_open", "closed"),
    ]
    assert {d.agent for d in log} == {"billing"}


def test_success_resets_the_count_and_non_failures_are_not_counted() -> None:
    breaker = CircuitBreaker("x", failure_threshold=2, failures=(ConnectionError,))
    flaky = Flaky()
    agent = breaker.wrap(flaky)
    with pytest.raises(ConnectionError):
        agent("q")
    flaky.failing = False
    agent("q")
    assert breaker.failure_count == 0

    def wrong(_: str) -> str:
        raise ValueError("a bug, not an outage")

    guarded = breaker(wrong)
    for _ in range(3):
        with pytest.raises(ValueError):
            guarded("q")
    assert breaker.state is CircuitState.CLOSED
    breaker.reset()
    assert breaker.log.decisions == []  # reset of a closed circuit records nothing
    assert repr(breaker) == "CircuitBreaker('x', state=closed, failures=0)"


async def test_async_agent_and_single_half_open_trial() -> None:
    clock = VirtualClock()
    breaker = CircuitBreaker("search", failure_threshold=1, reset_timeout=10, clock=clock)
    clock.attach_loop()
    release = asyncio.Event()
    failing = True

    async def search(question: str) -> str:
        if failing:
            raise TimeoutError("slow backend")
        await release.wait()
        return "results"

    agent = breaker(search)
    assert asyncio.iscoroutinefunction(agent)
    with pytest.raises(TimeoutError):
        await agent("q")
    await asyncio.sleep(10)
    failing = False
    trial = asyncio.create_task(agent("q"))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError, match="its trial call is still running"):
        await agent("q")  # only one trial at a time
    release.set()
    assert await trial == "results"
    assert breaker.state is CircuitState.CLOSED
    clock.detach_loop()


def test_breaker_keeps_the_agent_kind_for_run_and_run_sync_objects() -> None:
    class Both:
        async def run(self, question: str) -> str:
            return "async"

        def run_sync(self, question: str) -> str:
            return "sync"

    guarded = CircuitBreaker("both")(Both())
    assert guarded.run_sync("q") == "sync"
    assert asyncio.run(guarded.run("q")) == "async"
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError, match="timeout_seconds"):
        CircuitBreaker("x", reset_timeout=0)


def test_circuit_transitions_snapshot(pytester: pytest.Pytester) -> None:
    """A breaker around a real SDK agent, failing by injected 500s, snapshot-tested on the virtual clock."""
    pytester.makeini(INI)
    pytester.makepyfile(
        test_breaker="""
        import openai
        import pytest
        from pytest_agentflows import CircuitBreaker, CircuitOpenError

        @pytest.mark.agentflow(snapshot_measurements=True)  # the transitions' virtual times are the point
        def test_breaker(agentflow, scripted_model, decision_snapshot):
            agentflow.faults.status("billing", 500, times=3)
            scripted_model.openai(agent="billing").reply("refund issued", latency=1.0).reply("done", latency=1.0)
            client = openai.OpenAI(api_key="k", max_retries=0)
            breaker = CircuitBreaker("billing", failure_threshold=3, reset_timeout=30, flow=agentflow)

            @breaker
            def billing(question):
                reply = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
                )
                return reply.choices[0].message.content

            outcomes = []
            for _ in range(7):  # a user request every 10 s of virtual time
                with agentflow.agent("billing"):
                    try:
                        outcomes.append(billing("refund please"))
                    except (openai.InternalServerError, CircuitOpenError) as exc:
                        outcomes.append(type(exc).__name__)
                agentflow.clock.advance(10)
            assert outcomes == ["InternalServerError"] * 3 + ["CircuitOpenError"] * 2 + ["refund issued", "done"]
            assert agentflow.decisions == decision_snapshot
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "--snapshot-update").assert_outcomes(passed=1)
    text = (pytester.path / "__snapshots__" / "test_breaker.agentflows").read_text()
    assert text.count("kind: circuit_state") == 3
    for state in ("state: open", "state: half_open", "state: closed"):
        assert state in text
    assert "at: 20.0\n    kind: circuit_state" in text and "at: 50.0\n    kind: circuit_state" in text
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


# -- retry with fallback -----------------------------------------------------------------------------------------


def test_with_fallback_retries_then_falls_back_sync(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    agentflow.faults.fail("billing")
    scripted_model.openai(agent="billing.fallback").reply("Please try again later.", latency=0.5)
    client = openai.OpenAI(api_key="k", max_retries=0)

    def ask(question: str) -> str:
        reply = client.chat.completions.create(model=GPT, messages=[{"role": "user", "content": question}])
        return reply.choices[0].message.content or ""

    billing = with_fallback(ask, ask, retries=2, backoff=1.0, flow=agentflow)
    with agentflow.agent("billing"):
        assert billing("refund?") == "Please try again later."
    kinds = [(d.kind, d.agent, d.at) for d in agentflow.decisions]
    assert kinds == [
        ("fault_injected", "billing", 0.0),
        ("agent_retry", "billing", 0.0),
        ("fault_injected", "billing", 1.0),
        ("agent_retry", "billing", 1.0),
        ("fault_injected", "billing", 2.0),
        ("fallback_used", "billing", 2.0),
        ("model_call", "billing.fallback", 2.5),
    ]
    used = kind(agentflow.log, "fallback_used")[0]
    assert (used.fallback, used.attempts, used.error) == ("billing.fallback", 3, "APIConnectionError")
    assert [c.agent for c in agentflow.calls] == ["billing.fallback"]


async def test_with_fallback_async_success_on_retry_and_canned_fallback(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    agentflow.faults.status("search", 503, at=0)
    scripted_model.openai(agent="search").reply("found", latency=2.0)
    client = openai.AsyncOpenAI(api_key="k", max_retries=0)

    async def search(question: str) -> str:
        reply = await client.chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": question}]
        )
        return reply.choices[0].message.content or ""

    try:
        agent = with_fallback(search, lambda _: "no results", retries=1, backoff=3.0, flow=agentflow)
        with agentflow.agent("search"):
            assert await agent("q") == "found"
        assert [d.kind for d in agentflow.decisions] == ["fault_injected", "agent_retry", "model_call"]
        assert agentflow.elapsed == 5.0  # backoff 3 s on the virtual loop, then 2 s latency
        agentflow.faults.fail("search")
        with agentflow.agent("search"):
            assert await agent("q") == "no results"
        assert kind(agentflow.log, "fallback_used")[0].fallback == "search.fallback"
    finally:
        await client.close()


def test_with_fallback_lets_base_exceptions_through_and_validates() -> None:
    def missing(_: str) -> str:
        raise UnrecordedRequestError(test="t", cassette="c", agent=None, method="POST", url="u")

    agent = with_fallback(missing, lambda _: "never", retries=3)
    with pytest.raises(UnrecordedRequestError):
        agent("q")
    with pytest.raises(ValueError, match="retries"):
        with_fallback(missing, missing, retries=-1)
    with pytest.raises(ValueError, match="backoff"):
        with_fallback(missing, missing, backoff=-1)

    async def fallback(_: str) -> str:
        return "async fallback"

    mixed = with_fallback(Flaky(), fallback, fallback_name="canned")
    assert asyncio.run(mixed("q")) == "async fallback"  # an async fallback makes the agent async


def test_breaker_and_fallback_compose_in_a_router(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    from pytest_agentflows import Router

    scripted_model.openai(agent="router").reply("billing").reply("billing").reply("billing")
    flaky = Flaky()
    breaker = CircuitBreaker("billing", failure_threshold=1, reset_timeout=60, flow=agentflow)
    billing = with_fallback(breaker(flaky), lambda _: "a human will call you", flow=agentflow)
    client = openai.OpenAI(api_key="k")

    def classify(question: str) -> str:
        reply = client.chat.completions.create(model=GPT, messages=[{"role": "user", "content": question}])
        return reply.choices[0].message.content or ""

    router = Router(classify, {"billing": billing}, flow=agentflow)
    results: list[AgentResult] = [router.run_sync("refund") for _ in range(3)]
    assert [r.text for r in results] == ["a human will call you"] * 3
    assert flaky.calls == 1  # the first attempt fails and opens the circuit; every later one is refused
    errors = [d.error for d in kind(agentflow.log, "agent_retry")]
    assert errors == ["ConnectionError", "CircuitOpenError", "CircuitOpenError"]


# -- graceful degradation in a broadcast, default result on timeout ---------------------------------------------


BROADCAST = """
import asyncio, openai, pytest
from pytest_agentflows import Broadcast

def sync_agent(client):
    def agent(question):
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
        return reply.choices[0].message.content
    return agent

def async_agent(client):
    async def agent(question):
        reply = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
        return reply.choices[0].message.content
    return agent

def combine(results):
    return " | ".join(f"{r.agent}: {r.text}" for r in results)

@pytest.mark.agent_faults(fail=["failing"], stall=["stalled"])
async def test_async_degrades(agentflow, scripted_model, agent_broadcast, decision_snapshot):
    scripted_model.openai(agent="slow").reply("slow but sure", latency=8.0)
    client = openai.AsyncOpenAI(api_key="k")
    agent = async_agent(client)
    broadcast = agent_broadcast(
        {"failing": agent, "stalled": agent, "slow": agent}, aggregate=combine, min_successes=1, timeout=10
    )
    try:
        result = await broadcast.run("what happened?")
    finally:
        await client.close()
    assert result.text == "slow: slow but sure"
    assert agentflow.elapsed == 10.0
    assert agentflow.decisions == decision_snapshot

@pytest.mark.agent_faults(fail=["failing"], stall=["stalled"])
def test_sync_degrades(agentflow, scripted_model, agent_broadcast, decision_snapshot):
    scripted_model.openai(agent="slow").reply("slow but sure", latency=8.0)
    agent = sync_agent(openai.OpenAI(api_key="k", timeout=30))
    broadcast = agent_broadcast(
        {"failing": agent, "stalled": agent, "slow": agent}, aggregate=combine, min_successes=1, timeout=10
    )
    assert broadcast.run_sync("what happened?").text == "slow: slow but sure"
    assert agentflow.decisions == decision_snapshot

@pytest.mark.agent_faults(fail=["failing"], stall=["stalled"])
async def test_too_few_successes(agentflow, scripted_model, agent_broadcast):
    from pytest_agentflows import BroadcastError
    scripted_model.openai(agent="slow").reply("slow but sure", latency=8.0)
    client = openai.AsyncOpenAI(api_key="k")
    agent = async_agent(client)
    broadcast = agent_broadcast(
        {"failing": agent, "stalled": agent, "slow": agent}, aggregate=combine, min_successes=2, timeout=10
    )
    try:
        with pytest.raises(BroadcastError) as info:
            await broadcast.run("what happened?")
    finally:
        await client.close()
    assert info.value.failures == {
        "failing": "APIConnectionError: Connection error.",
        "stalled": "timed out after 10 s (virtual)",
    }
"""


def test_broadcast_with_failing_stalled_and_slow_agents_snapshots_stably(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_degrade=BROADCAST)
    pytester.runpytest("-p", "no:cacheprovider", "--snapshot-update").assert_outcomes(passed=3)
    text = (pytester.path / "__snapshots__" / "test_degrade.agentflows").read_text()
    for expected in ("kind: fault_injected", "kind: agent_failed", "kind: agent_timeout", "fault: stall"):
        assert expected in text
    for _ in range(2):
        pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=3)
    assert (pytester.path / "__snapshots__" / "test_degrade.agentflows").read_text() == text


async def get_with_timeout(coro: Any, timeout: float, default: Any) -> Any:
    """The source article's recipe: an agent's answer, or ``default`` when it takes longer than ``timeout``."""
    try:
        return await asyncio.wait_for(coro, timeout=timeout)
    except asyncio.TimeoutError:
        return default


async def test_get_with_timeout_recipe(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    scripted_model.openai(agent="fast").reply("fresh data", latency=2.0)
    agentflow.faults.stall("stuck")
    client = openai.AsyncOpenAI(api_key="k")

    async def ask(agent: str) -> str:
        with agentflow.agent(agent):
            reply = await client.chat.completions.create(
                model=GPT, messages=[{"role": "user", "content": "q"}]
            )
        return reply.choices[0].message.content or ""

    try:
        fast, stuck = await asyncio.gather(
            get_with_timeout(ask("fast"), 5, "cached data"), get_with_timeout(ask("stuck"), 5, "cached data")
        )
    finally:
        await client.close()
    assert (fast, stuck) == ("fresh data", "cached data")
    assert agentflow.elapsed == 5.0  # the stalled call was cut at the timeout, in no wall time
