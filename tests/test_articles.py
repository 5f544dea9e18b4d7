"""The source articles' code runs under test with only its imports changed.

Each inner test below ports one code example of the articles the product came from, in this project's own
words but with the article's APIs, call shapes and control flow; its docstring names the example. The
imports are the only change: ``agent_event_bus`` / ``token_budget_py`` / ``agent_decision_log`` become
``pytest_agentflows``. The suite is recorded once against the local model server
(``--record-agents --snapshot-update``), then replayed with the server gone: every test passes again from
its cassette, and its decision snapshot matches.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

# Loaded before the inner (in-process) sessions, which restore sys.modules after each run: a module first
# imported inside one would be imported again by the next, and the flow and the test would hold two copies.
import pytest_agentflows.flow
import pytest_agentflows.patterns
import pytest_agentflows.runtime.budget  # noqa: F401
from pytest_agentflows.model_server import LocalModelServer, Request, default_responder

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
    ignore:unclosed <socket.socket:ResourceWarning
"""

PLAN = [
    {
        "id": "research",
        "description": "Collect facts about the topic",
        "assigned_to": "researcher",
        "depends_on": [],
    },
    {"id": "outline", "description": "Outline the report", "assigned_to": "researcher", "depends_on": []},
    {
        "id": "draft",
        "description": "Write the report",
        "assigned_to": "writer",
        "depends_on": ["research", "outline"],
    },
    {"id": "review", "description": "Review the report", "assigned_to": "reviewer", "depends_on": ["draft"]},
]


def article_responder(request: Request) -> str:
    """Deterministic answers for the articles' agents, chosen from the system prompt."""
    system = request.system.lower()
    user = request.last_user_text.lower()
    if "planner" in system:
        return json.dumps(PLAN)
    if "voter" in system:
        return "reject" if "strict" in system else "approve"
    if "handoff" in system:
        confidence = 0.4 if "unclear" in user else 0.93
        return json.dumps({"intent": "refund", "confidence": confidence, "summary": user[:40]})
    if "peer" in system:
        return "LGTM" if "revised" in user else "Needs tests for the error path."
    if "flaky" in system:
        return "ok"
    return default_responder(request)


APP = '''
"""The articles' agents: objects with an async ``run`` returning ``.text`` and ``.tokens`` (real SDK)."""
import os
from dataclasses import dataclass

import openai


@dataclass
class AgentOutput:
    text: str
    tokens: int


class LLMAgent:
    def __init__(self, system, model="gpt-4o-mini"):
        self.system = system
        self.model = model

    async def run(self, prompt, budget=None):
        async with openai.AsyncOpenAI(
            base_url=os.environ["AF_OPENAI_URL"], api_key="sk-test-0000", max_retries=0
        ) as client:
            reply = await client.chat.completions.create(
                model=self.model,
                messages=[{"role": "system", "content": self.system}, {"role": "user", "content": str(prompt)}],
            )
        return AgentOutput(reply.choices[0].message.content or "", reply.usage.total_tokens)

    async def classify(self, text):
        return (await self.run(text)).text.strip()
'''

PORTED = r'''
import asyncio
import json
from dataclasses import dataclass

import pytest

from articles_app import LLMAgent
from pytest_agentflows import (
    BudgetExceeded,
    BudgetPool,
    CircuitBreaker,
    CircuitOpenError,
    Consensus,
    Deadline,
    DecisionLog,
    Event,
    EventBus,
    HandoffContract,
    Orchestrator,
    PlanError,
    Tracer,
    handoff,
)

router_model = LLMAgent("You classify support requests: answer billing, technical or general.")
code_review_agent = LLMAgent("You review code changes.")
summarizer_agent = LLMAgent("You summarize text.")
research_agent = LLMAgent("You research a topic.")
draft_agent = LLMAgent("You write reports.")
review_agent = LLMAgent("You are a strict review editor.")


# -- article 000: Four Patterns for Multi-Agent Python Systems -------------------------------------------
# --8<-- [start:router]
async def test_router_pattern(agentflow, decision_snapshot, tmp_path):
    """Ports article 000's Pattern 1 (Router): @bus.on handlers, log.record(decision="route"), bus.emit."""
    bus = EventBus()
    log = DecisionLog(path=tmp_path / "decisions.jsonl")

    @bus.on("intent:billing")
    async def handle_billing(event):
        result = await code_review_agent.run(event["payload"])
        return result

    @bus.on("intent:general")
    async def handle_general(event):
        result = await summarizer_agent.run(event["payload"])
        return result

    async def route_request(user_input):
        intent = await router_model.classify(user_input)
        log.record(decision="route", input=user_input, output=intent, reason="classifier confidence above 0.8")
        result = await bus.emit(f"intent:{intent}", payload=user_input)
        return result

    result = await route_request("I was charged twice on my invoice")
    assert result.text and [c.agent for c in agentflow.calls] == [None, "handle_billing"]
    assert agentflow.decisions == decision_snapshot
# --8<-- [end:router]


@dataclass
class PipelineResult:
    stage: str
    output: str
    tokens_used: int


# --8<-- [start:pipeline]
async def test_pipeline_pattern(agentflow, decision_snapshot):
    """Ports article 000's Pattern 2 (Pipeline): BudgetPool(usd=) with async acquire(max_usd=) per stage."""
    log = DecisionLog(path=None)

    async def run_pipeline(raw_input, budget_usd=0.10):
        pool = BudgetPool(usd=budget_usd)
        results = []
        async with pool.acquire(max_usd=0.04) as stage_budget:
            research_out = await research_agent.run(raw_input, budget=stage_budget)
        results.append(PipelineResult("research", research_out.text, research_out.tokens))
        log.record(decision="stage_complete", stage="research", tokens=research_out.tokens)
        async with pool.acquire(max_usd=0.04) as stage_budget:
            draft_out = await draft_agent.run(
                f"Research notes:\n{research_out.text}\n\nWrite a report.", budget=stage_budget
            )
        results.append(PipelineResult("draft", draft_out.text, draft_out.tokens))
        log.record(decision="stage_complete", stage="draft", tokens=draft_out.tokens)
        async with pool.acquire(max_usd=0.02) as stage_budget:
            review_out = await review_agent.run(draft_out.text, budget=stage_budget)
        results.append(PipelineResult("review", review_out.text, review_out.tokens))
        return results, pool

    results, pool = await run_pipeline("vector databases")
    assert [r.stage for r in results] == ["research", "draft", "review"]
    assert pool.spent_tokens == sum(r.tokens_used for r in results) == agentflow.budget.spent_tokens
    assert pool.spent_usd > 0
    assert agentflow.decisions == decision_snapshot
# --8<-- [end:pipeline]


# --8<-- [start:broadcast]
async def test_broadcast_pattern(agentflow, decision_snapshot):
    """Ports article 000's Pattern 3 (Broadcast): the same input to N agents with asyncio.gather, then merge."""
    bus = EventBus()
    log = DecisionLog()
    verifiers = {"facts": LLMAgent("You check facts."), "sources": LLMAgent("You check sources.")}

    @bus.on("broadcast:done")
    async def aggregate(event):
        return "\n".join(event["payload"])

    async def broadcast(question):
        answers = await asyncio.gather(*(agent.run(question) for agent in verifiers.values()), return_exceptions=True)
        valid = [a.text for a in answers if not isinstance(a, Exception)]
        log.record(decision="broadcast", agents=len(verifiers), valid=len(valid))
        return await bus.emit("broadcast:done", payload=valid)

    merged = await broadcast("Is the moon made of rock?")
    assert merged.count("reply to") == 2
    assert agentflow.decisions == decision_snapshot
# --8<-- [end:broadcast]


# --8<-- [start:supervisor]
async def test_supervisor_pattern(agentflow, decision_snapshot):
    """Ports article 000's Pattern 4 (Supervisor): a worker/reviewer loop under Deadline(seconds=120)."""
    log = DecisionLog()
    worker = LLMAgent("You write customer replies.")
    reviewer = LLMAgent("You review replies: answer APPROVED or a critique.")

    async def supervise(task, max_revisions=3):
        deadline = Deadline(seconds=120)
        draft = (await worker.run(task)).text
        for iteration in range(max_revisions):
            if deadline.expired():
                log.record(decision="supervisor_timeout", iteration=iteration)
                break
            review = (await reviewer.run(draft)).text
            approved = "APPROVED" in review
            log.record(decision="supervisor_review", iteration=iteration, approved=approved)
            if approved:
                return draft
            draft = (await worker.run(f"{task}\nRevised after: {review}")).text
        return draft

    assert await supervise("Apologise for the double charge")
    assert [d.approved for d in agentflow.log.of_kind("supervisor_review")] == [False, True]
    assert agentflow.decisions == decision_snapshot
# --8<-- [end:supervisor]


# --8<-- [start:quickstart]
def test_quick_start(agentflow, decision_snapshot):
    """Ports article 000's quick start: a DecisionLog audit record and a BudgetPool check, sync."""
    log = DecisionLog(path=None)
    pool = BudgetPool(usd=1.0, tokens=10_000)
    with pool.acquire(max_usd=0.01) as reservation:
        answer = asyncio.run(summarizer_agent.run("Summarize: agents need budgets."))
        log.record(decision="summarized", tokens=answer.tokens)
    assert reservation.spent_tokens == answer.tokens
    assert agentflow.decisions == decision_snapshot
# --8<-- [end:quickstart]


# -- article 003: orchestrator, registry, message bus, consensus, timeouts, breaker, sourcing, audit ------
# --8<-- [start:orchestrator]
async def test_orchestrator_and_code_review(agentflow, decision_snapshot):
    """Ports article 003's orchestrator and its code-review orchestrator: plan, workers, synthesis."""
    workers = {
        "researcher": LLMAgent("You research."),
        "writer": LLMAgent("You write."),
        "reviewer": LLMAgent("You are a code reviewer."),
    }
    orchestrator = Orchestrator(LLMAgent("You are the planner: answer a JSON plan."), workers)
    result = await orchestrator.run("Review pull request 42")
    assert list(result.data) == ["research", "outline", "draft", "review"]
    assert agentflow.decisions == decision_snapshot
# --8<-- [end:orchestrator]


# --8<-- [start:bus]
def test_registry_messages_and_message_bus(agentflow, decision_snapshot):
    """Ports article 003's agent registry messages and message bus: subscribe + publish(Event(...))."""
    bus = EventBus()
    inbox = []
    registry = {"summarizer": summarizer_agent}

    def on_task(event):
        agent = registry[event.payload["agent"]]
        out = asyncio.run(agent.run(event.payload["text"]))
        bus.publish(Event("task.completed", {"text": out.text}, event.payload["agent"]))

    bus.subscribe("task.assigned", on_task)
    bus.subscribe("task.completed", lambda event: inbox.append((event.source, event.payload["text"])))
    bus.publish(Event("task.assigned", {"agent": "summarizer", "text": "long text"}, "orchestrator"))
    assert inbox and inbox[0][0] == "summarizer"
    assert agentflow.decisions == decision_snapshot
# --8<-- [end:bus]


# --8<-- [start:consensus]
async def test_consensus_voting(agentflow, decision_snapshot):
    """Ports article 003's consensus: voters answer, the majority wins at required_agreement."""
    voters = {
        "a": LLMAgent("You are a voter."),
        "b": LLMAgent("You are a voter."),
        "c": LLMAgent("You are a strict voter."),
    }
    result = await Consensus(voters, required_agreement=0.5).run("Ship the release?")
    assert result.text == "approve" and result.data["reached"]
    assert agentflow.decisions == decision_snapshot
# --8<-- [end:consensus]


# --8<-- [start:timeout]
async def test_get_with_timeout(agentflow, decision_snapshot):
    """Ports article 003's get_with_timeout: asyncio.wait_for around an agent, a default when late."""
    async def get_with_timeout(agent, task, timeout=30.0, default=None):
        try:
            return (await asyncio.wait_for(agent.run(task), timeout=timeout)).text
        except asyncio.TimeoutError:
            return default

    assert await get_with_timeout(summarizer_agent, "quick one") is not None
    assert agentflow.decisions == decision_snapshot
# --8<-- [end:timeout]


# --8<-- [start:breaker]
async def test_circuit_breaker(agentflow, decision_snapshot):
    """Ports article 003's CircuitBreaker(failure_threshold=5, timeout_seconds=60) and call_async."""
    breaker = CircuitBreaker(failure_threshold=2, timeout_seconds=60)
    flaky = LLMAgent("You are a flaky agent.")

    async def broken(_):
        raise ConnectionError("upstream down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await breaker.call_async(broken, "x")
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError, match="open"):
        await breaker.call_async(flaky.run, "x")
    await asyncio.sleep(61)  # the recovery window passes on the flow clock (virtual: no wall time)
    assert (await breaker.call_async(flaky.run, "x")).text == "ok"
    assert breaker.state == "closed"
    assert breaker.failure_threshold == 2 and breaker.timeout_seconds == 60
    assert agentflow.decisions == decision_snapshot
# --8<-- [end:breaker]


# --8<-- [start:sourcing]
def test_event_sourcing_and_audit_log(agentflow, decision_snapshot, tmp_path):
    """Ports article 003's event sourcing (events replayed into state) and its JSONL audit log."""
    bus = EventBus()
    audit = DecisionLog(path=tmp_path / "audit.jsonl")
    events = []
    bus.subscribe("order.created", events.append)
    bus.subscribe("order.paid", events.append)
    bus.publish(Event("order.created", {"order": 1, "total": 30}, "shop"))
    bus.publish(Event("order.paid", {"order": 1}, "payments"))
    state = {}
    for event in events:
        state[event.payload["order"]] = event.type
    audit.record(decision="state_rebuilt", orders=len(state), last=state[1])
    assert state == {1: "order.paid"}
    assert agentflow.decisions == decision_snapshot
# --8<-- [end:sourcing]


# -- the sequel: plans with depends_on, handoff contracts, peer review, audit actions -------------------
# --8<-- [start:plan]
def test_plan_with_depends_on_runs_the_writer_after_its_dependencies(agentflow, decision_snapshot):
    """Ports the sequel's plan with depends_on: the writer runs after research and outline, run_sync."""
    workers = {"researcher": research_agent, "writer": draft_agent, "reviewer": review_agent}
    Orchestrator(LLMAgent("You are the planner."), workers).run_sync("a report on agents")
    done = [d.task for d in agentflow.log.of_kind("task_complete")]
    assert done.index("draft") > max(done.index("research"), done.index("outline"))
    assert done[-1] == "review"
    assert agentflow.decisions == decision_snapshot
# --8<-- [end:plan]


# --8<-- [start:cycle]
def test_a_plan_cycle_is_a_plan_error():
    """Ports the sequel's plan validation: a depends_on cycle names the tasks."""
    from pytest_agentflows.patterns.orchestrator import parse_plan

    plan = json.dumps([
        {"id": "a", "description": "", "assigned_to": "w", "depends_on": ["b"]},
        {"id": "b", "description": "", "assigned_to": "w", "depends_on": ["a"]},
    ])
    with pytest.raises(PlanError, match="cycle: a -> b -> a"):
        parse_plan(plan, {"w": None})
# --8<-- [end:cycle]


# --8<-- [start:handoff]
async def test_handoff_contract_specialist_routing_and_safe_handoff(agentflow, decision_snapshot):
    """Ports the sequel's handoff contract, specialist routing and safe_handoff with escalation."""
    schema = {
        "type": "object",
        "required": ["intent", "confidence"],
        "properties": {"intent": {"type": "string"}, "confidence": {"type": "number"}},
    }
    contract = HandoffContract("triage", "billing", schema, required_confidence=0.8)
    triage = LLMAgent("You prepare a handoff as JSON.")
    specialists = {"refund": LLMAgent("You are the billing specialist.")}
    escalated = []

    async def safe_handoff(ticket):
        payload = json.loads((await triage.run(ticket)).text)
        checked = handoff(contract, payload, escalate=lambda p: escalated.append(p) or None)
        if checked is None:
            return "escalated to a human"
        return (await specialists[checked["intent"]].run(checked["summary"])).text

    assert "reply to" in await safe_handoff("refund my duplicate charge")
    assert await safe_handoff("unclear request") == "escalated to a human"
    assert [d.valid for d in agentflow.log.of_kind("handoff")] == [True, False]
    assert agentflow.decisions == decision_snapshot
# --8<-- [end:handoff]


# --8<-- [start:peer]
async def test_peer_review_and_audit_actions(agentflow, decision_snapshot):
    """Ports the sequel's peer review loop and its audit actions with parent ids (spans as parents)."""
    tracer = Tracer()
    audit = DecisionLog()
    author = LLMAgent("You write code.")
    peer = LLMAgent("You are a peer reviewer.")
    with tracer.span("peer_review") as span:
        draft = (await author.run("implement retry")).text
        audit.record(decision="action", action="draft", by="author")
        review = (await peer.run(draft)).text
        span.add_event("reviewed", verdict=review[:20])
        audit.record(decision="action", action="review", by="peer")
        if review != "LGTM":
            draft = (await author.run(f"revised: {review}")).text
            audit.record(decision="action", action="revise", by="author")
        span.set_attribute("rounds", 2)
    actions = agentflow.log.of_kind("action")
    assert {a.parent for a in actions} == {span.id}
    assert agentflow.log.as_dicts() == decision_snapshot
# --8<-- [end:peer]
'''


@pytest.fixture
def article_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalModelServer]:
    with LocalModelServer(responder=article_responder) as server:
        monkeypatch.setenv("AF_OPENAI_URL", server.openai_base_url)
        yield server


def test_article_examples_record_then_replay_offline_with_snapshots(
    pytester: pytest.Pytester, article_server: LocalModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(articles_app=APP, test_ported_articles=PORTED)
    recorded = pytester.runpytest("--record-agents", "--snapshot-update", "-p", "no:randomly")
    recorded.assert_outcomes(passed=_count_tests())
    sent = len(article_server.requests)
    assert sent > 20
    monkeypatch.setenv("AF_OPENAI_URL", "http://127.0.0.1:9/v1")  # nothing listens: replay only
    replayed = pytester.runpytest("-p", "no:randomly")
    replayed.assert_outcomes(passed=_count_tests())
    replayed.stdout.fnmatch_lines(["*(34 replayed, 0 recorded)*"])
    # every test compared its decisions with the snapshot written while recording (a mismatch fails it)
    snapshots = (pytester.path / "__snapshots__" / "test_ported_articles.agentflows").read_text(
        encoding="utf-8"
    )
    assert snapshots.count("# name: test_") == _count_tests() - 1  # the PlanError test takes none
    assert len(article_server.requests) == sent


def _count_tests() -> int:
    return PORTED.count("\ndef test_") + PORTED.count("\nasync def test_")
