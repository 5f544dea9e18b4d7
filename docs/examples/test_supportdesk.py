"""The support desk under test: all four patterns, happy paths and failure modes, replayed offline.

``pytest docs/examples`` replays ``cassettes/test_supportdesk/<test>.yaml`` (no network, no API key) and
compares each decision log with ``__snapshots__/test_supportdesk.agentflows``.
``pytest docs/examples --record-agents=all`` re-records them (see ``conftest.py``).
"""

from __future__ import annotations

import pytest
from supportdesk import REPLY_DEADLINE_S, STAGE_MAX_USD, SupportDesk, merge_findings, reply_task

from pytest_agentflows import BroadcastError, BudgetExceeded, Flow, RoutingError

BILLING_TICKET = (
    "Hi, I was charged twice for my March invoice INV-2041. Can you refund the duplicate payment?"
)
OUTAGE_TICKET = (
    "Since this morning your API returns a 502 error and our login page times out. Is there an outage?"
)
SALES_TICKET = "We would like a quote for 50 more seats on the Enterprise plan."
ARTICLE_TOPIC = "Refunds for duplicate charges"

BILLING_NOTES = "Cause: a retried card payment charged the invoice twice. Fix: refund the duplicate charge."
BILLING_FINDINGS = "[docs] Duplicate card charges are refunded to the original payment method in 5-10 days."


def kinds(flow: Flow, *skip: str) -> list[str]:
    """The decision kinds of ``flow``, in order, without model calls and ``skip``."""
    return [d.kind for d in flow.decisions if d.kind not in ("model_call", *skip)]


# -- triage: Router ---------------------------------------------------------------------------------------
# --8<-- [start:triage]
def test_triage_sends_a_billing_ticket_to_billing(
    desk: SupportDesk, agentflow: Flow, decision_snapshot
) -> None:
    result = desk.triage().run_sync(BILLING_TICKET)

    assert result.agent == "billing"
    assert "refund the duplicate charge" in result.text
    assert [c.agent for c in agentflow.calls] == ["router", "billing"]
    (route,) = agentflow.log.of_kind("route")
    assert (route.chosen, route.output) == ("billing", "billing")
    assert agentflow.elapsed == pytest.approx(0.8 + 3.6)  # recorded latencies, no real waiting
    assert agentflow.decisions == decision_snapshot
    # --8<-- [end:triage]


@pytest.mark.asyncio
async def test_an_unknown_queue_falls_back_to_general(
    desk: SupportDesk, agentflow: Flow, decision_snapshot
) -> None:
    result = await desk.triage().run(SALES_TICKET)

    assert result.agent == "general"
    (route,) = agentflow.log.of_kind("route")
    assert route.output == "sales"  # the classifier invented a queue...
    assert route.chosen == "general"  # ...so the router used its fallback
    assert "using the fallback" in route.reason
    assert agentflow.decisions == decision_snapshot


def test_without_fallback_an_unknown_queue_is_a_routing_error(
    agent_router, desk: SupportDesk, agentflow: Flow
) -> None:
    router = agent_router(desk.classifier, {"billing": desk.specialists["billing"]})

    with pytest.raises(RoutingError, match="answered 'sales'"):
        router.run_sync(SALES_TICKET)
    assert [c.agent for c in agentflow.calls] == ["router"]  # no specialist was paid for


# -- knowledge search: Broadcast --------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_knowledge_search_asks_three_bases_in_parallel(
    desk: SupportDesk, agentflow: Flow, decision_snapshot
) -> None:
    result = await desk.knowledge_search().run(BILLING_TICKET)

    # completion order: status 1.1 s, docs 2.2 s, tickets 5.4 s
    assert [r.agent for r in result.data] == ["status", "docs", "tickets"]
    assert result.text.startswith("[status] Status page: all systems operational")
    assert agentflow.elapsed == pytest.approx(5.4)  # parallel: the slowest base, not the sum
    assert agentflow.decisions == decision_snapshot


def test_a_failing_knowledge_base_is_skipped(desk: SupportDesk, agentflow: Flow, decision_snapshot) -> None:
    # During an outage the status page itself answers HTTP 500 (recorded in the cassette, replayed as such).
    result = desk.knowledge_search().run_sync(OUTAGE_TICKET)

    (failed,) = agentflow.log.of_kind("agent_failed")
    assert (failed.agent, failed.error) == ("status", "InternalServerError")
    assert [r.agent for r in result.data] == ["docs", "tickets"]
    (summary,) = agentflow.log.of_kind("broadcast_complete")
    assert (summary.succeeded, summary.failed, summary.timed_out) == (["docs", "tickets"], ["status"], [])
    assert agentflow.decisions == decision_snapshot


# --8<-- [start:late]
@pytest.mark.asyncio
async def test_a_late_knowledge_base_is_dropped_at_the_timeout(
    agent_broadcast, desk: SupportDesk, agentflow: Flow, decision_snapshot
) -> None:
    # A stricter 4 s timeout: past tickets (5.4 s) arrive too late, the status page fails, docs answers.
    search = agent_broadcast(desk.knowledge_bases, merge_findings, timeout=4.0)

    result = await search.run(OUTAGE_TICKET)

    assert [r.agent for r in result.data] == ["docs"]
    (late,) = agentflow.log.of_kind("agent_timeout")
    assert (late.agent, late.timeout) == ("tickets", 4.0)
    assert agentflow.elapsed == pytest.approx(4.0)  # the broadcast stopped waiting at its timeout
    assert agentflow.decisions == decision_snapshot
    # --8<-- [end:late]


@pytest.mark.asyncio
async def test_too_few_answers_are_a_broadcast_error(desk: SupportDesk, agentflow: Flow) -> None:
    search = desk.knowledge_search(timeout=4.0, min_successes=2)

    with pytest.raises(BroadcastError) as info:
        await search.run(OUTAGE_TICKET)

    message = str(info.value)
    assert "status" in message and "InternalServerError" in message
    assert "tickets" in message and "timed out after 4 s" in message


# -- customer reply: Supervisor ---------------------------------------------------------------------------
TASK = reply_task(BILLING_TICKET, BILLING_NOTES, BILLING_FINDINGS)


@pytest.mark.asyncio
async def test_the_reviewer_approves_the_revised_reply(
    desk: SupportDesk, agentflow: Flow, decision_snapshot
) -> None:
    result = await desk.reply_writer().run(TASK)

    assert result.data == {"approved": True, "reviews": 2, "revisions": 1, "stopped": "approved"}
    assert "5 to 10 business days" in result.text  # the revision addressed the critique
    reviews = agentflow.log.of_kind("supervisor_review")
    assert [d.approved for d in reviews] == [False, True]
    assert {c.provider for c in agentflow.calls if c.agent == "reviewer"} == {
        "anthropic"
    }  # QA runs on Claude
    assert agentflow.elapsed == pytest.approx(24 + 10 + 24 + 10)
    assert agentflow.decisions == decision_snapshot


# --8<-- [start:deadline]
@pytest.mark.asyncio
@pytest.mark.agent_deadline(REPLY_DEADLINE_S)
async def test_a_reviewer_who_never_approves_hits_the_deadline(
    strict_desk: SupportDesk, agentflow: Flow, decision_snapshot
) -> None:
    result = await strict_desk.reply_writer().run(TASK)

    assert result.data == {"approved": False, "reviews": 3, "revisions": 2, "stopped": "deadline"}
    (timeout,) = agentflow.log.of_kind("supervisor_timeout")
    assert (timeout.step, timeout.iteration, timeout.deadline_s) == ("revision", 3, REPLY_DEADLINE_S)
    assert timeout.at == pytest.approx(REPLY_DEADLINE_S)  # cut mid-call, exactly at the deadline
    assert agentflow.elapsed == pytest.approx(REPLY_DEADLINE_S)
    assert agentflow.decisions == decision_snapshot
    # --8<-- [end:deadline]


def test_a_reviewer_who_never_approves_stops_at_max_revisions(
    agent_supervisor, strict_desk: SupportDesk, agentflow: Flow, decision_snapshot
) -> None:
    supervisor = agent_supervisor(strict_desk.writer, strict_desk.reviewer, max_revisions=2)

    result = supervisor.run_sync(TASK)

    assert result.data == {"approved": False, "reviews": 2, "revisions": 2, "stopped": "max_revisions"}
    assert kinds(agentflow) == ["supervisor_review", "supervisor_review", "supervisor_max_revisions"]
    assert agentflow.elapsed == pytest.approx(24 + 10 + 24 + 10 + 24)
    assert agentflow.decisions == decision_snapshot


# -- help-center article: Pipeline ------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.agent_budget(usd=0.01)
async def test_the_article_pipeline_runs_within_its_stage_budgets(
    desk: SupportDesk, agentflow: Flow, decision_snapshot
) -> None:
    article = await desk.write_article(ARTICLE_TOPIC)

    assert article.startswith("How refunds for duplicate charges work")
    stages = agentflow.log.of_kind("stage_complete")
    assert [d.stage for d in stages] == ["research", "draft", "review"]
    for stage in stages:
        assert stage.cost_usd <= STAGE_MAX_USD[stage.stage]
    assert agentflow.decisions == decision_snapshot


# --8<-- [start:halt]
@pytest.mark.asyncio
@pytest.mark.agent_budget(usd=0.004)
async def test_a_tight_budget_halts_the_pipeline_before_the_draft(
    desk: SupportDesk, agentflow: Flow, decision_snapshot
) -> None:
    # research reserves $0.001 and spends a fraction; the draft stage's $0.005 reservation cannot fit.
    with pytest.raises(BudgetExceeded):
        await desk.write_article(ARTICLE_TOPIC)

    (halted,) = agentflow.log.of_kind("pipeline_halted")
    assert halted.stage == "draft"
    assert [c.agent for c in agentflow.calls] == ["research"]  # halted before the draft made any call
    assert agentflow.usage.cost_usd < 0.004  # never overspends: the agent_budget verdict passes too
    assert agentflow.decisions == decision_snapshot
    # --8<-- [end:halt]


def test_pipeline_fixture_with_plain_tuples_runs_sync(
    agent_pipeline, desk: SupportDesk, agentflow: Flow
) -> None:
    pipeline = agent_pipeline([("research", desk.researcher, 0.001), ("draft", desk.article_writer, 0.005)])

    result = pipeline.run_sync(ARTICLE_TOPIC)

    assert [r.agent for r in result.data] == ["research", "draft"]
    assert result.usage == agentflow.usage
    assert agentflow.elapsed == pytest.approx(6.5 + 14.0)


# -- the whole ticket: Router + Broadcast + Supervisor ----------------------------------------------------
# --8<-- [start:e2e]
@pytest.mark.asyncio
@pytest.mark.agent_budget(usd=0.01)
@pytest.mark.agent_deadline(90)
async def test_a_billing_ticket_end_to_end(desk: SupportDesk, agentflow: Flow, decision_snapshot) -> None:
    resolution = await desk.handle(BILLING_TICKET)

    assert resolution.queue == "billing"
    assert resolution.approved
    assert resolution.reply.startswith("Hi there,")
    assert kinds(agentflow) == [
        "route",
        "broadcast_complete",
        "supervisor_review",
        "supervisor_review",
    ]
    assert {c.provider for c in agentflow.calls} == {"openai", "anthropic"}
    assert agentflow.decisions == decision_snapshot
    # --8<-- [end:e2e]


@pytest.mark.asyncio
@pytest.mark.agent_deadline(90)
async def test_an_outage_ticket_end_to_end(desk: SupportDesk, agentflow: Flow, decision_snapshot) -> None:
    resolution = await desk.handle(OUTAGE_TICKET)

    assert resolution.queue == "technical"
    assert resolution.approved
    assert "[status]" not in resolution.findings  # the status page was down; the reply went out anyway
    assert agentflow.decisions == decision_snapshot


# -- plain SDK calls inside a flow ------------------------------------------------------------------------
def test_calls_outside_patterns_are_named_with_agentflow_agent(desk: SupportDesk, agentflow: Flow) -> None:
    with agentflow.agent("spam-filter"):
        label = desk.classifier.run_sync(BILLING_TICKET)

    assert label == "billing"
    (call,) = agentflow.calls
    assert (call.agent, call.provider, call.model) == ("spam-filter", "openai", "gpt-4o-mini")
    assert call.usage.input_tokens > 0 and call.usage.cost_usd is not None
    agentflow.assert_within_budget(usd=0.0001, tokens=200)


# -- a tool-using agent -----------------------------------------------------------------------------------
ORDER_TICKET = "Hello, where is my order A1001? I ordered two licence keys last week."


# --8<-- [start:tools]
def test_the_order_agent_looks_the_order_up_with_a_tool(
    desk: SupportDesk, agentflow: Flow, decision_snapshot
) -> None:
    with agentflow.agent("orders"):
        answer = desk.order_agent.run_sync(ORDER_TICKET)

    assert "arriving 5 December" in answer
    agentflow.assert_tool_calls([("lookup_order", {"order_id": "A1001"})], agent="orders")
    asked, answered = agentflow.calls_of("orders")
    assert (asked.finish_reason, answered.finish_reason) == ("tool_calls", "stop")
    # the tool's result is what the model was given on its second call
    assert answered.input_messages[-1].role == "tool"
    assert "arriving 5 December" in answered.input_messages[-1].text
    assert agentflow.decisions == decision_snapshot
    # --8<-- [end:tools]
