"""EventBus, Tracer, Orchestrator, Consensus and handoff contracts: behaviour, decisions, errors."""

from __future__ import annotations

import asyncio
import json
import pathlib
from typing import Any

import pytest

from pytest_agentflows import (
    BudgetExceeded,
    Consensus,
    Event,
    EventBus,
    EventLoopError,
    Flow,
    HandoffContract,
    HandoffError,
    Orchestrator,
    PlanError,
    ScriptedModel,
    Tracer,
    handoff,
)

# -- EventBus ----------------------------------------------------------------------------------------------


async def test_emit_returns_the_handler_value_and_records_structure(agentflow: Flow) -> None:
    bus = EventBus()

    @bus.on("intent:summarize")
    async def handle_summarize(event: Event) -> str:
        return f"summary of {event['payload']}"

    assert await bus.emit("intent:summarize", payload="a long text") == "summary of a long text"
    assert await bus.emit("nobody:listens") is None
    emitted, handled, unheard = agentflow.decisions
    assert (emitted.kind, emitted.handlers, emitted.parent) == (  # type: ignore[attr-defined]
        "event_emitted",
        ["handle_summarize"],
        None,
    )
    assert (handled.kind, handled.agent, handled.parent) == (
        "event_handled",
        "handle_summarize",
        "handle_summarize#1",
    )
    assert unheard.handlers == []  # type: ignore[attr-defined]


async def test_a_feedback_loop_ends_in_event_loop_error_not_recursion(agentflow: Flow) -> None:
    bus = EventBus(max_events=1000)

    @bus.on("ping")
    async def ping(event: Event) -> Any:
        return await bus.emit("pong")

    @bus.on("pong")
    async def pong(event: Event) -> Any:
        return await bus.emit("ping")

    with pytest.raises(EventLoopError, match=r"over max_events=1000.*ping -> pong -> ping"):
        await bus.emit("ping")
    assert bus.events == 1000


def test_publish_queues_nested_events_and_keeps_going_after_a_handler_error(agentflow: Flow) -> None:
    bus = EventBus(max_events=50)
    seen: list[str] = []

    def relay(event: Event) -> None:
        seen.append(f"{event.type}<-{event.source}")
        bus.publish(Event("b", event.payload, "relay"))

    def boom(event: Event) -> None:
        raise ValueError("bad payload")

    bus.subscribe("a", boom)
    bus.subscribe("a", relay)
    bus.subscribe("b", seen.append)
    bus.publish(Event("a", {"n": 1}, "test"))
    assert seen[0] == "a<-test" and isinstance(seen[1], Event) and seen[1].source == "relay"
    failed = agentflow.log.of_kind("event_failed")
    assert [(d.agent, d.error, d.message) for d in failed] == [("boom", "ValueError", "bad payload")]  # type: ignore[attr-defined]
    with pytest.raises(EventLoopError):  # sync loops are counted too: no RecursionError

        def again(event: Event) -> None:
            bus.publish(Event("loop", None, "again"))

        bus.subscribe("loop", again)
        bus.publish(Event("loop", None, "test"))


async def test_emit_reraises_other_errors_after_event_failed(agentflow: Flow) -> None:
    bus = EventBus()

    @bus.on("x")
    def broken(event: Event) -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        await bus.emit("x")
    assert agentflow.log.kinds() == ["event_emitted", "event_failed"]


def test_event_shape_and_bad_input() -> None:
    event = Event("t", {"k": 1}, "src")
    assert (event.type, event["k"], event["source"], event.get("nope", 0)) == ("t", 1, "src", 0)
    with pytest.raises(ValueError, match="max_events"):
        EventBus(max_events=0)
    with pytest.raises(TypeError, match="publish\\(\\) takes an Event"):
        EventBus().publish("t")  # type: ignore[arg-type]


def test_agent_event_bus_fixture_binds_to_the_flow(agentflow: Flow, agent_event_bus: Any) -> None:
    bus = agent_event_bus(max_events=3)
    bus.subscribe("t", lambda event: None)
    bus.publish(Event("t"))
    assert bus.max_events == 3 and agentflow.log.kinds() == ["event_emitted", "event_handled"]


# -- Orchestrator -----------------------------------------------------------------------------------------


def _plan(*tasks: tuple[str, str, list[str]]) -> str:
    return json.dumps(
        [{"id": i, "description": f"do {i}", "assigned_to": w, "depends_on": d} for i, w, d in tasks]
    )


async def test_orchestrator_runs_independent_tasks_concurrently_and_in_dependency_order(
    agentflow: Flow, agent_orchestrator: Any
) -> None:
    async def slow(text: str) -> str:
        await asyncio.sleep(5)  # virtual seconds on the flow's loop
        return text.splitlines()[0]

    async def writer(text: str) -> str:
        assert "[a] do a" in text and "[b] do b" in text  # gets its dependencies' results
        await asyncio.sleep(1)
        return "report"

    planner = lambda task: _plan(("a", "research", []), ("b", "research", []), ("w", "writer", ["a", "b"]))  # noqa: E731
    result = await agent_orchestrator(planner, {"research": slow, "writer": writer}).run("topic")
    assert result.text == "report" and result.data == {"a": "do a", "b": "do b", "w": "report"}
    assert agentflow.elapsed == 6.0  # a and b overlapped (5 s), then w (1 s)
    done = agentflow.log.of_kind("task_complete")
    assert [(d.task, d.at, d.parent) for d in done] == [  # type: ignore[attr-defined]
        ("a", 5.0, "task:a#1"),
        ("b", 5.0, "task:b#1"),
        ("w", 6.0, "task:w#1"),
    ]


@pytest.mark.parametrize(
    ("plan", "match"),
    [
        (
            _plan(("a", "w", ["b"]), ("b", "w", ["c"]), ("c", "w", ["a"])),
            r"cycle: a -> b -> c -> a .*'a', 'b', 'c'",
        ),
        (_plan(("a", "ghost", [])), r"unknown worker\(s\) 'ghost'"),
        (_plan(("a", "w", ["zz"])), r"unknown task\(s\) 'zz'"),
        ("not json", "not JSON"),
    ],
)
def test_bad_plans_are_plan_errors_before_any_worker_runs(plan: str, match: str) -> None:
    ran: list[str] = []
    orchestrator = Orchestrator(lambda task: plan, {"w": ran.append})
    with pytest.raises(PlanError, match=match):
        orchestrator.run_sync("x")
    assert ran == []


def test_a_failed_task_stops_its_dependents(agentflow: Flow) -> None:
    def broken(text: str) -> str:
        raise RuntimeError("worker crashed")

    plan = _plan(("a", "bad", []), ("b", "ok", ["a"]))
    with pytest.raises(RuntimeError, match="worker crashed"):
        Orchestrator(lambda t: plan, {"bad": broken, "ok": lambda t: "fine"}).run_sync("x")
    assert agentflow.log.kinds() == ["plan", "task_failed"]


# -- Consensus ------------------------------------------------------------------------------------------


def test_consensus_majority_and_threshold(agentflow: Flow, agent_consensus: Any) -> None:
    voters = {"a": lambda q: "Approve.", "b": lambda q: "approve", "c": lambda q: "reject"}
    result = agent_consensus(voters, required_agreement=0.5).run_sync("ship?")
    assert (result.text, result.data["reached"], result.data["agreement"]) == ("Approve.", True, 0.666667)
    strict = Consensus(voters, required_agreement=0.9).run_sync("ship?")
    assert strict.data["reached"] is False
    assert agentflow.log.kinds() == ["vote", "vote", "vote", "consensus"] * 2
    with pytest.raises(ValueError, match="required_agreement"):
        Consensus(voters, required_agreement=0)


# -- handoff contracts -------------------------------------------------------------------------------------

SCHEMA = {"type": "object", "required": ["intent"], "properties": {"intent": {"type": "string"}}}


def test_handoff_valid_escalated_and_refused(agentflow: Flow) -> None:
    contract = HandoffContract("triage", "billing", SCHEMA, required_confidence=0.8)
    good = {"intent": "refund", "confidence": 0.9}
    assert handoff(contract, good) is good
    assert handoff(contract, {"intent": 3, "confidence": 0.2}, escalate=lambda p: "human") == "human"
    with pytest.raises(HandoffError, match=r"schema: \(root\): 'intent' is a required property"):
        handoff(contract, {"confidence": 0.95})
    decisions = agentflow.log.of_kind("handoff")
    assert [(d.valid, d.escalated) for d in decisions] == [(True, False), (False, True), (False, False)]  # type: ignore[attr-defined]
    assert decisions[1].problems == [  # type: ignore[attr-defined]
        "schema: intent: 3 is not of type 'string'",
        "confidence: 0.2 is below the required 0.8",
    ]


def test_a_bad_schema_is_refused_when_the_contract_is_made() -> None:
    import jsonschema

    with pytest.raises(jsonschema.SchemaError):
        HandoffContract("a", "b", {"type": "no-such-type"})


# -- Tracer ------------------------------------------------------------------------------------------------


def test_spans_are_decisions_parents_and_jsonl(
    agentflow: Flow, scripted_model: ScriptedModel, tmp_path: pathlib.Path
) -> None:
    import openai

    scripted_model.openai().reply("planned", latency=2.0)
    tracer = Tracer(export_path=tmp_path / "traces.jsonl")
    with tracer.span("plan") as span:
        span.set_attribute("tasks", 3)
        with openai.OpenAI(api_key="sk-test") as client:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "p"}])
        span.add_event("planned", model="gpt-4o-mini")
    (call,) = agentflow.calls
    assert call.parent == span.id == "plan#1"
    decision = agentflow.log.of_kind("span")[0]
    assert (decision.span, decision.duration, decision.attributes) == ("plan", 2.0, {"tasks": 3})  # type: ignore[attr-defined]
    assert decision.events == [{"name": "planned", "at": 2.0, "model": "gpt-4o-mini"}]  # type: ignore[attr-defined]
    line = json.loads((tmp_path / "traces.jsonl").read_text(encoding="utf-8"))
    assert (line["span"], line["id"], line["duration"]) == ("plan", "plan#1", 2.0)


def test_budget_errors_in_a_handler_reach_the_outermost_publisher(agentflow: Flow) -> None:
    bus = EventBus()

    def spender(event: Event) -> None:
        raise BudgetExceeded("tokens", 10, 12, 2, "spender", refused=True)

    bus.subscribe("go", spender)
    with pytest.raises(BudgetExceeded):
        bus.publish(Event("go"))
    assert "event_failed" not in agentflow.log.kinds()
