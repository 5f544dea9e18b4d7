"""A failing, erroring or interrupted test never replaces its cassette, unless the user asks."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
import yaml

from pytest_agentflows import Flow
from pytest_agentflows.model_server import LocalModelServer

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""

FLOW = """
import os, openai, pytest

def test_flow(agentflow):
    client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
    for prompt in os.environ["PROMPTS"].split(","):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    end = os.environ.get("END", "pass")
    if end == "fail":
        assert False, "the flow's answer is wrong"
    if end == "interrupt":
        raise KeyboardInterrupt
    if end == "skip":
        pytest.skip("not today")
"""


@pytest.fixture
def project(pytester: pytest.Pytester, model_server: LocalModelServer) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makepyfile(test_flow=FLOW)
    return pytester


def _cassette(project: pytest.Pytester) -> Path:
    return project.path / "cassettes" / "test_flow" / "test_flow.yaml"


def _prompts(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text())
    return [i["request"]["body"] for i in data["interactions"]]


def test_failing_test_in_record_all_keeps_the_good_cassette(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTS", "good one,good two")
    project.runpytest("--record-agents=all").assert_outcomes(passed=1)
    path = _cassette(project)
    good = path.read_bytes()

    monkeypatch.setenv("PROMPTS", "partial")
    for end, outcome, why in (
        ("fail", {"failed": 1}, "failed (AssertionError)"),
        ("skip", {"skipped": 1}, "was skipped"),
    ):
        monkeypatch.setenv("END", end)
        result = project.runpytest("--record-agents=all")
        result.assert_outcomes(**outcome)
        assert path.read_bytes() == good  # not replaced, not truncated to the partial recording
        result.stdout.fnmatch_lines(
            [
                f"agentflows: test_flow.py::test_flow {why}: its 1 recorded interaction(s) were not saved; "
                f"cassette {path} kept as it was. To save a failing test's recording, set ini "
                "agentflows_save_on_failure = true or @pytest.mark.agentflow(save_on_failure=True)."
            ]
        )
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left

    monkeypatch.setenv("END", "fail")  # the user asks: the failing recording replaces the cassette
    result = project.runpytest("--record-agents=all", "-o", "agentflows_save_on_failure=true")
    result.assert_outcomes(failed=1)
    assert "were not saved" not in result.stdout.str()
    assert len(_prompts(path)) == 1 and "partial" in _prompts(path)[0]


def test_failing_test_in_record_new_adds_nothing_and_creates_nothing(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _cassette(project)
    monkeypatch.setenv("PROMPTS", "one")
    monkeypatch.setenv("END", "fail")
    result = project.runpytest("--record-agents=new")
    result.assert_outcomes(failed=1)
    assert not path.exists()
    result.stdout.fnmatch_lines(["*its 1 recorded interaction(s) were not saved; cassette * not created.*"])

    monkeypatch.setenv("END", "pass")
    project.runpytest("--record-agents=new").assert_outcomes(passed=1)
    good = path.read_bytes()
    monkeypatch.setenv("PROMPTS", "one,two")
    monkeypatch.setenv("END", "fail")
    project.runpytest("--record-agents=new").assert_outcomes(failed=1)
    assert path.read_bytes() == good  # "two" was recorded by a failing test: not added


def test_interrupted_recording_keeps_the_cassette(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTS", "good")
    project.runpytest("--record-agents=all").assert_outcomes(passed=1)
    path = _cassette(project)
    good = path.read_bytes()
    monkeypatch.setenv("PROMPTS", "half,done")
    monkeypatch.setenv("END", "interrupt")
    result = project.runpytest("--record-agents=all", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert path.read_bytes() == good
    result.stdout.fnmatch_lines(
        ["*test_flow.py::test_flow was interrupted (KeyboardInterrupt): its 2 recorded*"]
    )


def test_marker_save_on_failure_and_bad_value(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(
        test_marked="""
        import os, openai, pytest

        @pytest.mark.agentflow(save_on_failure=True)
        def test_kept(agentflow):
            openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "kept"}])
            assert False

        @pytest.mark.agentflow(save_on_failure="yes")
        def test_bad(agentflow):
            pass
        """
    )
    # a bad value is a one-line collection error; the other test still runs
    result = project.runpytest("--record-agents=all", "--continue-on-collection-errors", "test_marked.py")
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_bad: @pytest.mark.agentflow(save_on_failure='yes'): save_on_failure must be True or False*"]
    )
    kept = project.path / "cassettes" / "test_marked" / "test_kept.yaml"
    assert "kept" in _prompts(kept)[0]


def test_flow_outside_pytest_discards_on_exception(tmp_path: Path, model_server: LocalModelServer) -> None:
    path = tmp_path / "flow.yaml"

    def run(prompt: str, *, fail: bool, save_on_failure: bool = False) -> Flow:
        flow = Flow(cassette=path, record="all", save_on_failure=save_on_failure)
        with pytest.raises(RuntimeError) if fail else _nothing(), flow.activate():
            client = openai.OpenAI(base_url=model_server.openai_base_url, api_key="k", max_retries=0)
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
            )
            if fail:
                raise RuntimeError("boom")
        return flow

    assert run("first", fail=False).discarded is None
    good = path.read_bytes()
    flow = run("second", fail=True)
    assert flow.discarded == ("RuntimeError raised while recording", 1)
    assert path.read_bytes() == good
    assert run("third", fail=True, save_on_failure=True).discarded is None
    assert "third" in _prompts(path)[0]


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
