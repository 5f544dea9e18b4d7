"""Objects the app creates inside an active flow bind to it; spent budgets refuse requests before sending.

The articles' code builds its own ``BudgetPool``, ``Deadline`` and ``DecisionLog``: inside the
``agentflow`` fixture they charge, time and record into the test's flow, with only imports changed.
"""

from __future__ import annotations

import json
import pathlib

import anthropic
import openai
import pytest

from pytest_agentflows import (
    BudgetExceeded,
    BudgetPool,
    Deadline,
    DecisionLog,
    Flow,
    ScriptedModel,
)

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"


def ask(text: str = "hi") -> str:
    client = openai.OpenAI(api_key="sk-test")
    try:
        reply = client.chat.completions.create(model=GPT, messages=[{"role": "user", "content": text}])
    finally:
        client.close()
    return reply.choices[0].message.content or ""


async def ask_async(text: str = "hi") -> str:
    async with openai.AsyncOpenAI(api_key="sk-test") as client:
        reply = await client.chat.completions.create(model=GPT, messages=[{"role": "user", "content": text}])
    return reply.choices[0].message.content or ""


def test_app_pool_reservation_pool_and_flow_are_charged(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    scripted_model.openai(agent="writer").reply("draft", input_tokens=20, output_tokens=10)
    scripted_model.openai().reply("outside", input_tokens=5, output_tokens=5)
    pool = BudgetPool(usd=1.0, tokens=1_000)
    with agentflow.agent("writer"), pool.acquire(max_usd=0.5) as reservation:
        assert ask() == "draft"
    ask()  # outside the acquire block: the flow's spend only
    assert (reservation.spent_tokens, pool.spent_tokens) == (30, 30)
    assert reservation.spent_usd == pool.spent_usd > 0.0
    assert agentflow.budget.spent_tokens == 40
    assert list(pool.per_agent) == ["writer"]


async def test_app_pool_async_acquire(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    scripted_model.openai().reply("a", input_tokens=7, output_tokens=3)
    pool = BudgetPool(tokens=100)
    async with pool.acquire(max_tokens=50) as reservation:
        await ask_async()
    assert (reservation.spent_tokens, pool.spent_tokens, agentflow.budget.spent_tokens) == (10, 10, 10)


def test_deadline_without_clock_runs_on_the_flow_clock(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    scripted_model.openai().reply("slow", latency=3.0)
    deadline = Deadline(seconds=2)
    assert deadline.clock is agentflow.clock
    assert not deadline.expired()
    ask()
    assert deadline.expired()  # 3 virtual seconds passed, no wall time
    assert deadline.remaining() == 0.0


def test_app_decision_log_records_into_the_flow(
    agentflow: Flow, scripted_model: ScriptedModel, tmp_path: pathlib.Path
) -> None:
    scripted_model.openai(agent="router").reply("billing", latency=1.5)
    log = DecisionLog(path=tmp_path / "decisions.jsonl")
    with agentflow.agent("router"):
        intent = ask("where is my refund")
        mine = log.record(decision="route", input="where is my refund", output=intent, reason="invoice")
    shared = agentflow.log.of_kind("route")[0]
    assert (shared.agent, shared.at, shared.input, shared.output) == (  # type: ignore[attr-defined]
        "router",
        1.5,
        "where is my refund",
        "billing",
    )
    assert (mine.at, mine.id, mine.parent) == (shared.at, shared.id, shared.parent)
    assert shared.parent == "router#1" and shared.id == "router#1/route#1"
    line = json.loads((tmp_path / "decisions.jsonl").read_text(encoding="utf-8"))
    assert (line["kind"], line["at"], line["reason"]) == ("route", 1.5, "invoice")


def test_reserved_field_names_are_refused_clearly(agentflow: Flow) -> None:
    log = DecisionLog()
    with pytest.raises(ValueError, match=r"field name\(s\) id, parent are reserved .* rename them"):
        log.record(decision="audit", id="a-1", parent="root")
    with pytest.raises(ValueError, match="seq"):
        log.record("audit", seq=3)
    assert agentflow.decisions == []  # nothing half-recorded


def test_ids_and_parents_of_calls_and_decisions(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    scripted_model.openai().reply("x").reply("y")
    with agentflow.agent("planner"):
        ask()
        with agentflow.agent("writer"):
            ask()
    first, second = agentflow.calls
    assert (first.id, first.parent) == ("planner#1/call#1", "planner#1")
    assert (second.id, second.parent) == ("planner#1/writer#1/call#1", "planner#1/writer#1")
    assert [(d.id, d.parent) for d in agentflow.decisions] == [
        (first.id, first.parent),
        (second.id, second.parent),
    ]


# -- a spent budget refuses the next request before it is sent ---------------------------------------------


def test_spent_reservation_refuses_the_next_request(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    script = scripted_model.openai(agent="looper")
    script.reply("one", input_tokens=20, output_tokens=10).reply("two", input_tokens=20, output_tokens=10)
    pool = BudgetPool(tokens=50)
    calls = 0
    with agentflow.agent("looper"), pool.acquire() as reservation, pytest.raises(BudgetExceeded) as caught:
        while True:  # runaway code: only the budget stops it
            ask()
            calls += 1
    assert calls == 2  # the call crossing the cap (60 >= 50) is charged, the next one refused
    assert len(scripted_model.requests) == 2  # nothing was sent for the refused one
    assert (reservation.spent_tokens, pool.spent_tokens) == (60, 60)
    error = caught.value
    assert error.refused and error.kind == "tokens" and error.agent == "looper"
    assert "refused before it was sent" in str(error) and "looper:" in str(error)
    assert agentflow.refusals == [error] or agentflow.refusals[0].args == error.args
    assert agentflow.log.kinds()[-1] == "budget_refused"


def test_anthropic_sdk_neither_wraps_nor_retries_a_refusal(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    scripted_model.anthropic().reply("only", input_tokens=40, output_tokens=20)
    pool = BudgetPool(tokens=50)
    client = anthropic.Anthropic(api_key="sk-ant-test", max_retries=3)
    try:
        with pool.acquire():
            client.messages.create(model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": "a"}])
            with pytest.raises(BudgetExceeded) as caught:
                client.messages.create(
                    model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": "b"}]
                )
    finally:
        client.close()
    assert caught.value.refused
    assert len(agentflow.refusals) == 1  # one attempt: no SDK retry
    assert agentflow.elapsed == 0.0  # and no retry backoff either


def test_flow_cap_already_spent_refuses(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    scripted_model.openai().reply("a", input_tokens=3, output_tokens=2)
    agentflow.budget.cap_tokens = 5  # spent exactly: "already spent" is spend >= cap
    ask()
    with pytest.raises(BudgetExceeded, match="already spent"):
        ask()


def test_outside_a_flow_nothing_binds() -> None:
    deadline = Deadline(seconds=60)
    assert type(deadline.clock).__name__ == "RealClock"
    log = DecisionLog()
    assert log.record(decision="route", chosen="x").at == 0.0
    pool = BudgetPool(usd=1.0)
    with pool.acquire(max_usd=0.1) as reservation:
        pass
    assert reservation.spent_usd == pool.spent_usd == 0.0
