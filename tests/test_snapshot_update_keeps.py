"""``--snapshot-update`` never deletes the snapshot of a test that failed or errored before asserting it."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""

TESTS = """
import os, pytest

@pytest.fixture
def broken():
    if os.environ.get("AF_BREAK"):
        raise RuntimeError("fixture broke")

def test_fails_before_asserting(agentflow, decision_snapshot):
    agentflow.log.record("route", chosen="billing")
    if os.environ.get("AF_BREAK"):
        raise RuntimeError("boom")
    assert agentflow.decisions == decision_snapshot

def test_errors_in_setup(broken, agentflow, decision_snapshot):
    agentflow.log.record("route", chosen="technical")
    assert agentflow.decisions == decision_snapshot

def test_passes(agentflow, decision_snapshot):
    agentflow.log.record("route", chosen="general")
    assert agentflow.decisions == decision_snapshot
"""


def _names(pytester: pytest.Pytester) -> list[str]:
    text = (pytester.path / "__snapshots__" / "test_keep.agentflows").read_text()
    return [line.removeprefix("# name: ") for line in text.splitlines() if line.startswith("# name: ")]


def test_snapshot_update_keeps_the_snapshots_of_failed_and_errored_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the inner session is a whole session, even when this test runs on an xdist worker (syrupy reads it)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makeini(INI)
    pytester.makepyfile(test_keep=TESTS)
    pytester.runpytest("--snapshot-update").assert_outcomes(passed=3)
    names = _names(pytester)
    assert names == ["test_errors_in_setup", "test_fails_before_asserting", "test_passes"]
    before = (pytester.path / "__snapshots__" / "test_keep.agentflows").read_text()

    monkeypatch.setenv("AF_BREAK", "1")
    result = pytester.runpytest("--snapshot-update")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.no_fnmatch_line("*deleted*")
    assert (pytester.path / "__snapshots__" / "test_keep.agentflows").read_text() == before

    # a snapshot no test uses any more is still deleted, as syrupy does
    pytester.makepyfile(test_keep=TESTS.replace("def test_passes(", "def test_renamed("))
    monkeypatch.delenv("AF_BREAK")
    result = pytester.runpytest("--snapshot-update")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*1 unused snapshot deleted*"])
    assert _names(pytester) == ["test_errors_in_setup", "test_fails_before_asserting", "test_renamed"]
