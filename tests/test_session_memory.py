"""A finished flow test keeps nothing of its flow alive: later tests' garbage collections stay cheap."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

INI = """
[pytest]
addopts = -p no:randomly
asyncio_default_fixture_loop_scope = function
"""

TESTS = """
import gc, sys, weakref

FLOWS = []

def test_routes(agentflow):
    agentflow.log.record("route", to="billing")
    FLOWS.append(weakref.ref(agentflow))

def test_fails(agentflow):
    FLOWS.append(weakref.ref(agentflow))
    assert agentflow.calls == ["a call"]

def test_zz_the_flows_are_gone():
    sys.last_type = sys.last_value = sys.last_traceback = None  # pytest's own hold on the last failure
    if hasattr(sys, "last_exc"):
        sys.last_exc = None
    gc.collect()
    alive = [ref() for ref in FLOWS if ref() is not None]
    assert len(FLOWS) == 2
    assert alive == [], [type(r).__name__ for flow in alive for r in gc.get_referrers(flow)]
"""


def test_the_items_of_finished_flow_tests_do_not_hold_their_flows(pytester: pytest.Pytester) -> None:
    """pytest keeps every item (and its stash) until the session ends; a flow holds its cassette's
    interactions, ledger and decision log. Kept by the item, 500 flows made every later gen-2 garbage
    collection walk them all (+0.3 s over a 500-test suite, benchmarks/suite.py)."""
    pytester.makeini(INI)
    pytester.makepyfile(test_flows=TESTS)
    result = pytester.runpytest_subprocess()  # in-process, pytester records every hook call (and its frames)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_flows.py::test_fails - AssertionError*"])


ROW_TESTS = """
import gc

from pytest_agentflows import report

def test_a(agentflow):
    agentflow.log.record("route", to="billing")

def test_b(agentflow):
    agentflow.log.record("route", to="sales")

def test_zz_no_row_objects_are_alive():
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, (report.FlowRow, report.Span, report.AgentSpend))]
    assert alive == []
"""


def test_the_report_rows_of_finished_flows_are_kept_as_text(pytester: pytest.Pytester) -> None:
    """Each flow test's report row (with its spans and per-agent spend, ~30 tracked objects) is kept as
    JSON text until the session's end reads it; the summary line and the reports are unchanged."""
    pytester.makeini(INI)
    pytester.makepyfile(test_rows=ROW_TESTS)
    result = pytester.runpytest_subprocess("--agentflows-report", "--agentflows-json=report.json")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["agentflows: 2 flows, 0 model calls (0 replayed, 0 recorded), *"])
    result.stdout.fnmatch_lines(["*test_rows.py::test_a*", "*test_rows.py::test_b*"])  # the table
    from pytest_agentflows.report import AgentflowsReport

    written = AgentflowsReport.model_validate_json((pytester.path / "report.json").read_text())
    assert [row.test for row in written.rows] == ["test_rows.py::test_a", "test_rows.py::test_b"]
    assert written.totals.flows == 2


def test_row_totals_add_up_as_the_rows() -> None:
    from pytest_agentflows.plugin._rows import FlowRows
    from pytest_agentflows.report import FlowRow, summary_line

    rows = [
        FlowRow(
            test="t::a",
            outcome="passed",
            calls=3,
            replayed=3,
            input_tokens=10,
            output_tokens=4,
            cost_usd=0.1,
            elapsed_s=1.25,
        ),
        FlowRow(
            test="t::b",
            outcome="failed",
            calls=1,
            recorded=1,
            input_tokens=7,
            output_tokens=2,
            cost_usd=0.2,
            elapsed_s=0.5,
        ),
    ]
    stored = FlowRows()
    stored.add(rows[0])
    stored.add_json(rows[1].model_dump_json())
    assert len(stored) == 2 and stored.rows() == rows
    assert summary_line(stored.totals()) == summary_line(rows)
    stored.add(FlowRow(test="t::c", outcome="passed", cost_usd=None))
    assert summary_line(stored.totals()) == summary_line(stored.rows())
    assert "tokens, $?," in summary_line(stored.totals())  # one unknown price: the total is unknown


FREED_TESTS = """
import gc, weakref

import httpx
import pytest
import yaml

FLOWS = []


@pytest.mark.agentflow(cassette="replayed.yaml")
def test_replays(agentflow):
    gc.disable()  # re-enabled below: only reference counting may free the flow
    first = yaml.safe_load(open(agentflow.cassette_path))["interactions"][0]["request"]
    httpx.post(first["uri"], content=first["body"], headers={"content-type": "application/json"})
    assert len(agentflow.calls) == 1
    FLOWS.append(weakref.ref(agentflow))


def test_zz_the_flow_was_freed_without_the_garbage_collector():
    try:
        assert len(FLOWS) == 1 and FLOWS[0]() is None
    finally:
        gc.enable()
"""


def test_a_finished_flow_is_freed_by_reference_counting(pytester: pytest.Pytester) -> None:
    """A flow's parts (clock, log and budget locks, fault plan, cassette) hold no reference cycle through
    it once it ended: its cassette, ledger and log are freed when its test's report is made, not left, as
    cyclic garbage, for the next full garbage collection (+0.2 ms per test over a 500-test suite)."""
    pytester.makeini(INI)
    pytester.makepyfile(test_freed=FREED_TESTS)
    source = Path(__file__).parent.parent / "fixtures/cassettes/patterns/router_async_fallback.yaml"
    (pytester.path / "cassettes" / "test_freed").mkdir(parents=True)
    shutil.copy(source, pytester.path / "cassettes" / "test_freed" / "replayed.yaml")
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)
