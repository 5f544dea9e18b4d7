"""Recorded interactions no replay used: reported per cassette, strict mode, pruned by ``--record-agents``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pytest_agentflows.model_server import LocalModelServer
from pytest_agentflows.report import CassetteUse, unused_interactions

pytest_plugins = ["pytester"]

INI = """
[pytest]
addopts = -p no:randomly
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""

FLOW = """
import os, openai, pytest

def ask(agentflow, agent, prompt):
    client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
    with agentflow.agent(agent):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    client.close()

def test_flow(agentflow):
    ask(agentflow, "writer", WRITER_PROMPT)
    ask(agentflow, "critic", "critique the draft")
"""


def _flow(prompt: str) -> str:
    return FLOW.replace("WRITER_PROMPT", repr(prompt))


def _prompts(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text())
    return [i["request"]["body"] for i in data["interactions"]]


def test_a_replay_reports_interactions_it_never_used_and_strict_mode_fails_the_run(
    pytester: pytest.Pytester, model_server: LocalModelServer, go_offline: Callable[[], None]
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_flow=_flow("write the draft"))
    result = pytester.runpytest("--record-agents")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*never replayed*")
    go_offline()
    # the critic is no longer asked: its recorded interaction is stale
    pytester.makepyfile(test_flow=_flow("write the draft").replace('    ask(agentflow, "critic"', "    # "))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "agentflows: 1 recorded interaction never replayed, in 1 cassette. Fix: re-record the test with "
            "--record-agents*",
            "  cassettes/test_flow/test_flow.yaml: 1 of 2 unused: interactions[[]1] POST http://127.0.0.1:*/v1/"
            "chat/completions",
        ]
    )
    pytester.makeini(INI + "agentflows_unused_interactions = fail\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*the run fails on them (ini agentflows_unused_interactions = fail)*"])
    pytester.makeini(INI + "agentflows_unused_interactions = ignore\n")
    result = pytester.runpytest()
    assert result.ret == 0
    result.stdout.no_fnmatch_line("*never replayed*")


def test_re_recording_drops_what_the_test_no_longer_uses(
    pytester: pytest.Pytester, model_server: LocalModelServer, go_offline: Callable[[], None]
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_flow=_flow("write the draft"))
    pytester.runpytest("--record-agents").assert_outcomes(passed=1)
    cassette = pytester.path / "cassettes" / "test_flow" / "test_flow.yaml"
    assert len(_prompts(cassette)) == 2

    # a prompt change: --record-agents records the new request and drops the old one
    pytester.makepyfile(test_flow=_flow("write a shorter draft"))
    result = pytester.runpytest("--record-agents")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "agentflows: dropped 1 recorded interaction the re-recorded tests no longer used, from 1 cassette:",
            "  cassettes/test_flow/test_flow.yaml: 1 dropped",
        ]
    )
    prompts = _prompts(cassette)
    assert len(prompts) == 2
    assert any("write a shorter draft" in p for p in prompts)
    assert not any("write the draft" in p for p in prompts)
    go_offline()
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*never replayed*")


def test_a_failed_re_recording_prunes_nothing(
    pytester: pytest.Pytester, model_server: LocalModelServer
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_flow=_flow("write the draft"))
    pytester.runpytest("--record-agents").assert_outcomes(passed=1)
    cassette = pytester.path / "cassettes" / "test_flow" / "test_flow.yaml"
    before = cassette.read_text()
    pytester.makepyfile(
        test_flow=_flow("write the draft").replace('    ask(agentflow, "critic"', "    1/0 # ")
    )
    result = pytester.runpytest("--record-agents")
    result.assert_outcomes(failed=1)
    result.stdout.no_fnmatch_line("*dropped*")
    result.stdout.no_fnmatch_line("*never replayed*")  # a failed test's use is not judged
    assert cassette.read_text() == before


SHARED = """
import os, openai, pytest

def ask(prompt):
    client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    client.close()

@pytest.mark.agentflow(cassette="shared.yaml")
def test_one(agentflow):
    ask(os.environ.get("AF_PROMPT", "one"))

@pytest.mark.agentflow(cassette="shared.yaml")
def test_two(agentflow):
    ask("two")
"""


def test_a_shared_cassette_counts_every_test_and_is_never_pruned(
    pytester: pytest.Pytester, model_server: LocalModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_shared=SHARED)
    result = pytester.runpytest("--record-agents=new")
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*never replayed*")  # each test used the other's interaction? no: its own
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*never replayed*")
    monkeypatch.setenv("AF_PROMPT", "uno")
    result = pytester.runpytest("--record-agents=new")
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*dropped*")  # another test may need what this one no longer uses
    result.stdout.fnmatch_lines(
        ["  cassettes/test_shared/shared.yaml: 1 of 3 unused: interactions[[]0] POST *"]
    )
    cassette = pytester.path / "cassettes" / "test_shared" / "shared.yaml"
    assert len(_prompts(cassette)) == 3


def test_xdist_workers_send_cassette_use_to_the_controller(
    pytester: pytest.Pytester, model_server: LocalModelServer, go_offline: Callable[[], None]
) -> None:
    pytest.importorskip("xdist")
    pytester.makeini(INI)
    pytester.makepyfile(test_shared=SHARED)
    pytester.runpytest("--record-agents=new").assert_outcomes(passed=2)
    go_offline()
    # test_one and test_two run on different workers: together they use the whole cassette
    result = pytester.runpytest_subprocess(
        "-p", "xdist", "-n", "2", "-o", "agentflows_unused_interactions=fail"
    )
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    result = pytester.runpytest_subprocess(
        "-p", "xdist", "-n", "2", "-k", "one", "-o", "agentflows_unused_interactions=fail"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["  cassettes/test_shared/shared.yaml: 1 of 2 unused: interactions[[]1] POST *"]
    )


def test_unused_interactions_adds_up_uses_of_one_cassette() -> None:
    uses = [
        CassetteUse(path="c.yaml", loaded=0, recorded=2),  # recorded positions 0 and 1
        CassetteUse(path="c.yaml", loaded=2, unused={0: "POST a", 1: "POST b"}, recorded=1),
        CassetteUse(path="d.yaml", loaded=2, unused={1: "POST d"}, complete=False),
        CassetteUse(path="e.yaml", loaded=3, unused={0: "POST e0", 2: "POST e2"}),
        CassetteUse(path="e.yaml", loaded=3, unused={1: "POST e1", 2: "POST e2"}),
    ]
    found = unused_interactions(uses)
    assert [(u.path, u.interactions, u.unused) for u in found] == [("e.yaml", 3, {2: "POST e2"})]
