"""Cassettes and decision snapshots never drift apart: a recording test's snapshots are written right after
its cassette is saved, and dropped when it is not (a failed save, a killed run)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_agentflows.model_server import LocalModelServer

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
# the runs below differ by their latencies only: keep them in the snapshots to tell the runs apart
agentflows_snapshot_measurements = true
filterwarnings =
    error
    ignore::DeprecationWarning
"""

FLOWS = """
import os, signal, openai

def ask(agentflow, agent, prompt):
    agentflow.simulate_latency(float(os.environ.get("AF_LATENCY", "1.5")))  # what a recording measured
    with agentflow.agent(agent), openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0) as c:
        c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    agentflow.log.record("route", chosen=agent)

def test_1_first(agentflow, decision_snapshot):
    ask(agentflow, "first", "PROMPT")
    assert agentflow.decisions == decision_snapshot

def test_2_second(agentflow, decision_snapshot):
    ask(agentflow, "second", "PROMPT")
    assert agentflow.decisions == decision_snapshot
    if os.environ.get("AF_KILL"):
        os.kill(os.getpid(), signal.SIGKILL)
"""

DISK_FULL = """
import errno, os
import pytest
from pytest_agentflows.cassette import _store

@pytest.fixture(autouse=True)
def disk_full_for_second(request, monkeypatch):
    if "second" in request.node.name:
        real = _store._write_locked
        def full(target, data):
            if target.suffix == ".yaml":
                raise OSError(errno.ENOSPC, "No space left on device")
            real(target, data)
        monkeypatch.setattr(_store, "_write_locked", full)
"""


def _snapshot_text(pytester: pytest.Pytester) -> str:
    path = pytester.path / "__snapshots__" / "test_flows.agentflows"
    return path.read_text() if path.exists() else ""


def test_a_failed_cassette_save_keeps_the_old_snapshot(
    pytester: pytest.Pytester,
    model_server: LocalModelServer,
    go_offline: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_flows=FLOWS.replace("PROMPT", "question"))
    pytester.runpytest("--record-agents=all", "--snapshot-update").assert_outcomes(passed=2)
    before = _snapshot_text(pytester)
    assert "test_2_second" in before and "latency_s: 1.5" in before
    # re-record: the model is slower now, and the second test's cassette cannot be written (disk full)
    monkeypatch.setenv("AF_LATENCY", "4.25")
    pytester.makeconftest(DISK_FULL)
    result = pytester.runpytest("-p", "no:randomly", "--record-agents=all", "--snapshot-update")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*CassetteSaveError: cannot save the recording to cassette *test_2_second.yaml: writing the file failed*"
        ]
    )
    after = _snapshot_text(pytester)
    second = after[after.index("# name: test_2_second") :]
    assert "latency_s: 1.5" in second and "4.25" not in second  # its old snapshot, like its old cassette
    assert "latency_s: 4.25" in after[: after.index("# name: test_2_second")]  # the first test: both new
    (pytester.path / "conftest.py").unlink()
    go_offline()
    pytester.runpytest().assert_outcomes(passed=2)


def test_a_killed_recording_run_leaves_pairs_that_replay(
    pytester: pytest.Pytester,
    model_server: LocalModelServer,
    go_offline: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_flows=FLOWS.replace("PROMPT", "question"))
    monkeypatch.setenv("AF_KILL", "1")
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--record-agents=all", "--snapshot-update")
    assert result.ret == -9
    monkeypatch.delenv("AF_KILL")
    assert "test_1_first" in _snapshot_text(pytester)  # written with its cassette, before the kill
    go_offline()
    pytester.runpytest("-k", "test_1").assert_outcomes(passed=1, deselected=1)
