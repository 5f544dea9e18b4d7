"""DecisionLog: the JSONL decision-log API, seq/at/agent, plain data, thread safety."""

from __future__ import annotations

import dataclasses
import enum
import json
import pathlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import BaseModel

from pytest_agentflows.runtime._context import AgentScope
from pytest_agentflows.runtime._models import Decision
from pytest_agentflows.runtime.clock import VirtualClock
from pytest_agentflows.runtime.decisions import DecisionLog, to_plain


def test_article_api_without_clock() -> None:
    log = DecisionLog()
    d = log.record("route", chosen="billing", reason="invoice question")
    assert isinstance(d, Decision)
    assert (d.seq, d.at, d.kind, d.agent) == (0, 0.0, "route", None)
    assert d.chosen == "billing"  # type: ignore[attr-defined]
    assert d.reason == "invoice question"  # type: ignore[attr-defined]
    assert d.fields() == {"chosen": "billing", "reason": "invoice question"}
    assert log.record("stage_complete").seq == 1
    assert len(log) == 2


def test_at_from_clock_rounded() -> None:
    clock = VirtualClock()
    log = DecisionLog(clock=clock)
    clock.advance(1.23456789)
    assert log.record("a").at == 1.234568
    clock.advance(0.5)
    assert log.record("b").at == 1.734568


def test_agent_from_context_and_override() -> None:
    log = DecisionLog()
    with AgentScope("router"):
        assert log.record("route").agent == "router"
        assert log.record("route", agent="explicit").agent == "explicit"
        assert log.record("route", agent=None).agent is None
    assert log.record("x").agent is None
    assert "agent" not in log.decisions[1].fields()


def test_reserved_names_and_bad_kind() -> None:
    log = DecisionLog()
    with pytest.raises(ValueError, match="seq, at are reserved"):
        log.record("x", seq=1, at=2)
    with pytest.raises(TypeError, match="non-empty str"):
        log.record("")
    assert len(log) == 0


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: float


class Model(BaseModel):
    name: str
    tags: tuple[str, ...]


def test_extra_fields_become_plain_data() -> None:
    log = DecisionLog()
    d = log.record(
        "mixed",
        model=Model(name="m", tags=("a", "b")),
        point=Point(1, 2.5),
        tags={"b", "a", "c"},
        pair=(1, 2),
        color=Color.RED,
        path=pathlib.PurePosixPath("/tmp/x"),
        nested={"p": [Point(0, 0.0)], 3: frozenset({2, 1})},
        raw=b"bytes",
    )
    assert d.fields() == {
        "model": {"name": "m", "tags": ["a", "b"]},
        "point": {"x": 1, "y": 2.5},
        "tags": ["a", "b", "c"],
        "pair": [1, 2],
        "color": "red",
        "path": "/tmp/x",
        "nested": {"p": [{"x": 0, "y": 0.0}], "3": [1, 2]},
        "raw": "bytes",
    }
    json.dumps(log.as_dicts())  # all JSON-serialisable


def test_to_plain_mixed_set_is_deterministic() -> None:
    assert to_plain({3, "a", 1}) == to_plain({"a", 1, 3}) == [1, 3, "a"]


def test_as_dicts_order_and_rounding() -> None:
    clock = VirtualClock()
    log = DecisionLog(clock=clock)
    clock.advance(0.1)
    with AgentScope("pipeline"):
        log.record("stage_complete", tokens=120, cost_usd=0.000123456789, ratio=[1 / 3], zebra=1, apple=2)
    [row] = log.as_dicts()
    assert list(row) == [
        *("seq", "at", "kind", "agent", "id", "parent"),
        *("tokens", "cost_usd", "ratio", "zebra", "apple"),
    ]
    parent = row["parent"]  # the agent run's scope (numbered process-wide outside a flow)
    assert parent.startswith("pipeline#")
    assert row == {
        "seq": 0,
        "at": 0.1,
        "kind": "stage_complete",
        "agent": "pipeline",
        "id": f"{parent}/stage_complete#1",
        "parent": parent,
        "tokens": 120,
        "cost_usd": 0.000123,
        "ratio": [0.333333],
        "zebra": 1,
        "apple": 2,
    }


def test_jsonl_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "audit" / "decisions.jsonl"
    clock = VirtualClock()
    log = DecisionLog(path, clock=clock)
    log.record("route", chosen="billing", reason="invoice", agent="router")
    # flushed at once: readable before anything else happens
    assert path.read_text(encoding="utf-8").count("\n") == 1
    clock.advance(2.5)
    log.record("stage_complete", tokens=10, items=("é", 1.0000001))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            **{"seq": 0, "at": 0.0, "kind": "route", "agent": "router", "id": "route#1", "parent": None},
            **{"chosen": "billing", "reason": "invoice"},
        },
        {
            **{"seq": 1, "at": 2.5, "kind": "stage_complete", "agent": None},
            **{"id": "stage_complete#1", "parent": None, "tokens": 10, "items": ["é", 1.0]},
        },
    ]
    assert list(json.loads(lines[0])) == ["seq", "at", "kind", "agent", "id", "parent", "chosen", "reason"]
    assert "é" in lines[1]  # not \u-escaped
    # appended, never truncated
    DecisionLog(str(path)).record("again")
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3

    back = DecisionLog.read_jsonl(path)
    assert [d.kind for d in back] == ["route", "stage_complete", "again"]
    assert back[0].chosen == "billing"  # type: ignore[attr-defined]
    assert back[1].model_dump() == {
        "seq": 1,
        "at": 2.5,
        "kind": "stage_complete",
        "agent": None,
        "id": "stage_complete#1",
        "parent": None,
        "tokens": 10,
        "items": ["é", 1.0],
    }


def test_read_jsonl_errors(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"seq": 0, "at": 0, "kind": "a"}\n\n[1]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:3: expected a JSON object, got list"):
        DecisionLog.read_jsonl(path)
    path.write_text("{nope\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not valid JSON"):
        DecisionLog.read_jsonl(path)
    path.write_text('{"seq": 0}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not a decision"):
        DecisionLog.read_jsonl(path)


def test_views() -> None:
    log = DecisionLog()
    for kind in ["route", "stage_complete", "route", "agent_failed"]:
        log.record(kind)
    assert log.kinds() == ["route", "stage_complete", "route", "agent_failed"]
    assert [d.seq for d in log.of_kind("route")] == [0, 2]
    assert [d.seq for d in log] == [0, 1, 2, 3]
    copy = log.decisions
    copy.clear()
    assert len(log) == 4
    assert repr(log) == "DecisionLog(4 decisions)"


def test_seq_is_thread_safe(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "log.jsonl"
    log = DecisionLog(path)
    threads, per_thread = 16, 200
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        barrier.wait()
        with AgentScope(f"agent-{t}"):
            for i in range(per_thread):
                log.record("tick", i=i)

    with ThreadPoolExecutor(max_workers=threads) as ex:
        list(ex.map(work, range(threads)))
    decisions = log.decisions
    assert [d.seq for d in decisions] == list(range(threads * per_thread))
    # each thread's own records stay in order, with its own agent name
    for t in range(threads):
        mine = [d.i for d in decisions if d.agent == f"agent-{t}"]  # type: ignore[attr-defined]
        assert mine == list(range(per_thread))
    # the file is in seq order, one complete line per decision
    assert [d.seq for d in DecisionLog.read_jsonl(path)] == list(range(threads * per_thread))
