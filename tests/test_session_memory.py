"""A finished flow test keeps nothing of its flow alive: later tests' garbage collections stay cheap."""

from __future__ import annotations

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
