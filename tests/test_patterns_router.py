"""Router: classification, routing, fallback and RoutingError; replayed from cassettes and with plain agents."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager

import pattern_flows as pf
import pytest

from pytest_agentflows import AgentResult, Flow, Router, RoutingError, UsageError


@contextmanager
def replay(name: str) -> Iterator[Flow]:
    flow = Flow(cassette=pf.cassette(name), test_id=name)
    with flow.activate():
        yield flow


def test_routes_to_the_classified_specialist_sync() -> None:
    with replay("router_sync") as flow:
        router = pf.router(flow)
        result = router.run_sync(pf.TICKET)
    assert result.agent == "billing"
    assert result.text == f"[gpt-4o-mini] reply to: {pf.TICKET}"
    assert [c.agent for c in flow.calls] == ["router", "billing"]
    assert result.usage == flow.usage
    route = flow.log.of_kind("route")
    assert [(d.agent, d.chosen, d.output, d.at) for d in route] == [("router", "billing", "billing", 0.6)]  # type: ignore[attr-defined]
    assert route[0].reason == "classifier answered 'billing'"  # type: ignore[attr-defined]
    assert flow.log.kinds() == ["model_call", "route", "model_call"]
    assert flow.elapsed == 3.0
    billing = router.routes["billing"]
    assert isinstance(billing, pf.ChatAgent) and billing.inputs == [pf.TICKET]


async def test_unknown_route_goes_to_the_fallback_async() -> None:
    with replay("router_async_fallback") as flow:
        result = await pf.router(flow, asynchronous=True).run(pf.QUESTION)
        assert flow.elapsed == 2.0
    assert result.agent == "fallback"
    assert [c.agent for c in flow.calls] == ["router", "fallback"]
    (route,) = flow.log.of_kind("route")
    assert route.chosen == "fallback"  # type: ignore[attr-defined]
    assert route.output == "general"  # type: ignore[attr-defined]
    assert route.reason == (  # type: ignore[attr-defined]
        "classifier answered 'general', which is not a route (known: billing, technical); using the fallback"
    )


def test_unknown_route_without_fallback_raises() -> None:
    with replay("router_unknown") as flow:
        router = pf.router(flow, fallback=False)
        with pytest.raises(RoutingError) as info:
            router.run_sync(pf.QUESTION)
    error = info.value
    assert error.output == "general"
    assert error.routes == ["billing", "technical"]
    assert "answered 'general', which is not a route; known routes: 'billing', 'technical'" in str(error)
    assert "fallback=" in str(error)
    assert [c.agent for c in flow.calls] == ["router"]
    (route,) = flow.log.of_kind("route")
    assert route.chosen is None  # type: ignore[attr-defined]
    assert route.reason.endswith("no fallback")  # type: ignore[attr-defined]
    assert pickle.loads(pickle.dumps(error)).routes == ["billing", "technical"]


# -- plain agents --------------------------------------------------------------------------------------
def test_matching_strips_and_ignores_case_and_fallback_may_be_a_route_key() -> None:
    router = Router(lambda q: "  Billing\n", {"billing": lambda q: "B", "general": lambda q: "G"})
    assert router.run_sync("q").agent == "billing"
    router = Router(lambda q: '"Billing."', {"billing": lambda q: "B", "general": lambda q: "G"})
    assert router.run_sync("q").agent == "billing"
    assert router.decisions[0].output == '"Billing."'  # type: ignore[attr-defined]
    router = Router(
        lambda q: "refunds", {"billing": lambda q: "B", "general": lambda q: "G"}, fallback="general"
    )
    result = router.run_sync("q")
    assert (result.text, result.agent) == ("G", "general")
    assert router.decisions[-1].chosen == "general"  # type: ignore[attr-defined]


def test_agents_run_under_their_names_and_get_the_input() -> None:
    from pytest_agentflows.runtime._context import current_agent

    seen: list[tuple[str | None, str]] = []

    def classify(q: str) -> AgentResult:
        seen.append((current_agent.get(), q))
        return AgentResult(text="tech")

    class Tech:
        def run(self, q: str) -> str:
            seen.append((current_agent.get(), q))
            return "fixed"

    router = Router(classify, {"tech": Tech()})
    assert router.run_sync("it crashes").text == "fixed"
    assert seen == [("router", "it crashes"), ("tech", "it crashes")]
    assert router.flow is None and router.log.kinds() == ["route"]


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError, match="at least one route"):
        Router(lambda q: "x", {})
    with pytest.raises(ValueError, match="names no route; known routes: a"):
        Router(lambda q: "x", {"a": lambda q: "A"}, fallback="b")
    with pytest.raises(ValueError, match="non-empty strings"):
        Router(lambda q: "x", {"": lambda q: "A"})


def test_bad_agent_return_value_is_named() -> None:
    router = Router(lambda q: 42, {"a": lambda q: "A"})
    with pytest.raises(
        TypeError, match="agent 'router' returned int; an agent must return a str, an AgentResult"
    ):
        router.run_sync("q")


async def test_run_sync_inside_a_running_loop_says_to_await_run() -> None:
    router = Router(lambda q: "a", {"a": lambda q: "A"})
    with pytest.raises(
        UsageError, match=r"Router.run_sync\(\) was called from a running event loop.*await router.run"
    ):
        router.run_sync("q")
    assert (await router.run("q")).text == "A"
