"""Lazy accounting of replayed model calls: the same ledger, budget and decision log as accounting at once.

``Flow.on_exchange`` moves the clock at once but leaves a replayed exchange unparsed until the ledger, the
budget or the decision log is next read or written (or the flow deactivates). These tests compare a flow
that defers with one that cannot (a JSONL decision log makes a flow account every call at once), check
that every read settles, that settling never borrows the reader's context (a reservation, a hold, an
agent), that a body that cannot be decoded still raises, and that threads lose or reorder nothing.
"""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from pytest_agentflows import CassetteError, Flow
from pytest_agentflows.cassette._recorder import Exchange
from pytest_agentflows.flow import _UNPRICED
from pytest_agentflows.providers import Priced
from pytest_agentflows.report import row_data
from pytest_agentflows.runtime._context import Scope
from pytest_agentflows.runtime.budget import UNATTRIBUTED

CHAT_URL = "https://api.openai.com/v1/chat/completions"


def _exchange(
    agent: str | None, tools: list[tuple[str, Any]] = (), *, prompt: str = "go", **kw: Any
) -> Exchange:  # type: ignore[assignment]
    tool_calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
        for i, (n, a) in enumerate(tools)
    ]
    body = {
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None if tools else f"done: {prompt}",
                    "tool_calls": tool_calls or None,
                },
                "finish_reason": "tool_calls" if tools else "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
    }
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}
    return Exchange(
        request={"method": "POST", "uri": CHAT_URL, "headers": {}, "body": json.dumps(request)},
        response={
            "status": {"code": 200, "message": "OK"},
            "headers": {"content-type": ["application/json"]},
            "body": {"string": json.dumps(body)},
        },
        agent=agent,
        latency_s=kw.pop("latency_s", 1.25),
        **kw,
    )


def _undecodable(agent: str) -> Exchange:
    """An exchange whose response says gzip but holds gzip's magic bytes, then garbage."""
    bad = _exchange(agent, prompt="bad")
    assert bad.response is not None
    bad.response["headers"]["content-encoding"] = ["gzip"]
    bad.response["body"]["string"] = b"\x1f\x8b" + b"not gzip at all"
    return bad


def _script(flow: Flow) -> None:
    """Calls in agent runs and spans, tool calls, decisions between calls, a non-model exchange."""
    with flow.agent("planner"):
        flow.on_exchange(_exchange("planner", [("search", {"q": "Rome"}), ("weather", {"city": "Rome"})]))
        flow.log.record("route", chosen="booker")
    with flow.agent("booker"), Scope("booking"):
        flow.on_exchange(_exchange("booker", [("book", {"hotel": "H1"})], prompt="book H1"))
        flow.on_exchange(
            Exchange(
                request={"method": "GET", "uri": "https://example.com/weather", "headers": {}, "body": None},
                response={"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": "{}"}},
                latency_s=0.5,
            )
        )
        flow.on_exchange(_exchange("booker", prompt="confirm"))
    flow.on_exchange(_exchange(None, prompt="summary"))
    flow.log.record("verdict", ok=True)
    flow.on_exchange(_exchange("planner", prompt="after the verdict"))


def _state(flow: Flow) -> dict[str, Any]:
    return {
        "decisions": flow.log.as_dicts(),
        "calls": [c.model_dump() for c in flow.calls],
        "per_agent": {a: u.model_dump() for a, u in flow.budget.per_agent.items()},
        "spent": (flow.budget.spent_usd, flow.budget.spent_tokens, flow.budget.calls),
        "elapsed": flow.elapsed,
    }


def test_deferred_accounting_gives_what_accounting_at_once_gives(tmp_path: Path) -> None:
    lazy = Flow(test_id="t")
    eager = Flow(test_id="t", log_path=tmp_path / "decisions.jsonl")  # a JSONL log: every call at once
    with lazy.activate():  # active: scope ids come from the flow
        _script(lazy)
        assert lazy._pending, "replayed exchanges should wait to be accounted"
    with eager.activate():
        _script(eager)
        assert not eager._pending
    got, want = _state(lazy), _state(eager)
    assert got == want
    kinds = [(d["kind"], d["agent"], d.get("tool"), d["parent"]) for d in got["decisions"]]
    assert kinds == [
        ("model_call", "planner", None, "planner#1"),
        ("tool_call", "planner", "search", "planner#1"),
        ("tool_call", "planner", "weather", "planner#1"),
        ("route", "planner", None, "planner#1"),
        ("model_call", "booker", None, "booker#1/booking#1"),
        ("tool_call", "booker", "book", "booker#1/booking#1"),
        ("model_call", "booker", None, "booker#1/booking#1"),
        ("model_call", None, None, None),
        ("verdict", None, None, None),
        ("model_call", "planner", None, None),
    ]
    assert [d["at"] for d in got["decisions"] if d["kind"] == "model_call"] == [1.25, 2.5, 4.25, 5.5, 6.75]
    assert [c["id"] for c in got["calls"]] == [
        "planner#1/call#1",
        "booker#1/booking#1/call#1",
        "booker#1/booking#1/call#2",
        "call#1",
        "call#2",
    ]


@pytest.mark.parametrize(
    "read",
    [
        lambda f: f.budget.spent_tokens == 15,
        lambda f: f.budget.per_agent["writer"].output_tokens == 5,
        lambda f: f.budget.usage.input_tokens == 10,
        lambda f: len(f.log) == 1,
        lambda f: [d.kind for d in f.decisions] == ["model_call"],
        lambda f: f.log.record("next").seq == 1,
        lambda f: [c.agent for c in f.calls] == ["writer"],
        lambda f: f.replayed_calls == 1,
    ],
    ids=["spent", "per_agent", "usage", "len", "decisions", "record", "calls", "replayed_calls"],
)
def test_every_read_or_write_settles_the_pending_calls(read: Any) -> None:
    flow = Flow(test_id="t")
    flow.on_exchange(_exchange("writer"))
    assert flow._pending
    assert read(flow)
    assert not flow._pending


def test_a_call_settled_inside_a_reservation_an_agent_or_a_hold_belongs_where_it_was_made() -> None:
    flow = Flow(test_id="t")
    flow.on_exchange(_exchange(None, prompt="outside"))
    with flow.agent("critic"), flow.budget.acquire(max_tokens=1_000, agent="review") as stage:
        with flow.log.hold() as held:
            flow.log.record("held_here")
            calls = flow.calls  # settles the call made before any of these contexts
        assert stage.spent_tokens == 0  # made outside the reservation: not charged to it
    assert [c.agent for c in calls] == [None]
    assert list(flow.budget.per_agent) == [UNATTRIBUTED]  # not the reader's agent
    assert [d.kind for d in held] == ["held_here"]
    assert [(d.kind, d.agent, d.parent) for d in flow.decisions] == [("model_call", None, None)]


def test_calls_in_a_reservation_or_under_a_cap_are_accounted_at_once() -> None:
    flow = Flow(test_id="t")
    with flow.budget.acquire(max_tokens=1_000, agent="stage") as stage:
        flow.on_exchange(_exchange("writer"))
        assert not flow._pending
        assert stage.spent_tokens == 15
    capped = Flow(test_id="t", budget_tokens=20)
    capped.on_exchange(_exchange("writer"))
    assert not capped._pending
    capped.on_exchange(_exchange("writer"))
    assert capped.budget.exceeded


def test_a_body_that_cannot_be_decoded_raises_when_settled_and_loses_no_other_call() -> None:
    flow = Flow(cassette=None, test_id="tests/test_x.py::test_bad")
    flow.on_exchange(_exchange("a", prompt="first"))
    bad = _undecodable("b")
    flow.on_exchange(bad)
    flow.on_exchange(_exchange("c", prompt="third"))
    with pytest.raises(CassetteError, match="gzip body does not decompress"):
        _ = flow.calls
    assert [c.agent for c in flow.calls] == ["a", "c"]  # the bad one dropped, nothing else lost
    assert [d.agent for d in flow.decisions] == ["a", "c"]


def test_a_gzip_body_that_decodes_is_accounted_lazily_too() -> None:
    flow = Flow(test_id="t")
    exchange = _exchange("a")
    assert exchange.response is not None
    exchange.response["headers"]["content-encoding"] = ["gzip"]
    exchange.response["body"]["string"] = gzip.compress(exchange.response["body"]["string"].encode())
    flow.on_exchange(exchange)
    assert flow.calls[0].usage.output_tokens == 5


def test_threads_replaying_while_others_read_lose_and_reorder_nothing() -> None:
    flow = Flow(test_id="t")
    per_thread, threads_n = 40, 6
    errors: list[BaseException] = []
    stop = threading.Event()

    def replay(k: int) -> None:
        try:
            for i in range(per_thread):
                flow.on_exchange(_exchange(f"agent{k}", prompt=f"{k}-{i}", latency_s=0.0))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        while not stop.is_set():
            _ = flow.budget.spent_tokens, len(flow.log), flow.calls

    reader = threading.Thread(target=read)
    reader.start()
    workers = [threading.Thread(target=replay, args=(k,)) for k in range(threads_n)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    reader.join()
    assert not errors
    calls, decisions = flow.calls, flow.decisions
    assert len(calls) == len(decisions) == flow.budget.calls == per_thread * threads_n
    assert [d.seq for d in decisions] == list(range(per_thread * threads_n))
    for k in range(threads_n):  # each thread's calls in its own order, ids numbered in that order
        mine = [c for c in calls if c.agent == f"agent{k}"]
        assert [c.output_text for c in mine] == [f"done: {k}-{i}" for i in range(per_thread)]
    assert (
        [d.id for d in decisions] == [c.id for c in calls] == [f"call#{n}" for n in range(1, len(calls) + 1)]
    )


def test_deactivating_prices_the_pending_calls_and_the_next_read_settles_them() -> None:
    flow = Flow(test_id="t")
    with flow.activate():
        flow.on_exchange(_exchange("a"))
        assert flow._pending[0].priced is _UNPRICED
    (entry,) = flow._pending  # read and priced once, at deactivation; no ledger entry or decision yet
    assert isinstance(entry.priced, Priced)
    assert (entry.priced.model, entry.priced.usage.input_tokens, entry.priced.usage.output_tokens) == (
        "gpt-4o-mini-2024-07-18",
        10,
        5,
    )
    assert not flow._calls and not flow.log._decisions
    assert [d.kind for d in flow.decisions] == ["model_call"]
    assert not flow._pending
    assert flow.calls[0].usage == entry.priced.usage


def test_a_body_that_cannot_be_decoded_fails_the_deactivation_and_loses_no_other_call() -> None:
    flow = Flow(test_id="t")
    bad = _undecodable("b")
    with pytest.raises(CassetteError, match="gzip body does not decompress"), flow.activate():
        flow.on_exchange(_exchange("a"))
        flow.on_exchange(bad)
        flow.on_exchange(_exchange("c"))
    assert [c.agent for c in flow.calls] == ["a", "c"]


@pytest.mark.parametrize("record_model_calls", [True, False])
def test_the_report_row_of_an_unsettled_flow_is_the_row_of_the_flow_accounted_at_once(
    tmp_path: Path, record_model_calls: bool
) -> None:
    lazy = Flow(test_id="t", record_model_calls=record_model_calls)
    eager = Flow(test_id="t", log_path=tmp_path / "decisions.jsonl", record_model_calls=record_model_calls)
    for flow in (lazy, eager):
        with flow.activate():
            _script(flow)
            flow.on_exchange(_exchange("critic", [("lookup", {"id": 7})], prompt="check"))
    pending = len(lazy._pending)  # the calls after the script's last decision
    assert pending == 2 and not eager._pending
    row = row_data("tests/test_x.py::test_t", lazy)
    assert len(lazy._pending) == pending, "the report reads deferred calls without settling them"
    want = row_data("tests/test_x.py::test_t", eager)
    assert row == want
    assert row["calls"] == 6 and row["input_tokens"] == 60
    spans = [span["tool_calls"] for span in row["spans"]]
    assert spans == [["search", "weather"], ["book"], [], [], [], ["lookup"]]
    assert row["decisions"] == (
        {"model_call": 6, "route": 1, "tool_call": 4, "verdict": 1}
        if record_model_calls
        else {"route": 1, "tool_call": 4, "verdict": 1}
    )
    assert row_data("tests/test_x.py::test_t", lazy) == row  # and once settled, the same row
    _ = lazy.calls
    assert not lazy._pending
    assert row_data("tests/test_x.py::test_t", lazy) == row


def test_an_error_leaving_the_flow_is_not_masked_by_a_ledger_error() -> None:
    flow = Flow(test_id="t")
    bad = _undecodable("b")
    with pytest.raises(KeyError, match="the test's own error"), flow.activate():
        flow.on_exchange(bad)
        raise KeyError("the test's own error")
    with pytest.raises(CassetteError, match="gzip body does not decompress"):
        _ = flow.calls  # the next read still reports it
