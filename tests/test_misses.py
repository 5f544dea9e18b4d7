"""Misses: an ordinary Exception that cannot hide, handled only by the test function, blamed on the flow
that made it; short failure reports for misses, verdicts and cassettes that cannot be saved."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pytest_agentflows import Broadcast, Flow, UnrecordedRequestError
from pytest_agentflows.model_server import LocalModelServer
from pytest_agentflows.patterns.resilience import CircuitBreaker, with_fallback

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    return pytester


@pytest.fixture
def offline(project: pytest.Pytester, go_offline: Callable[[], None]) -> pytest.Pytester:
    go_offline()
    return project


def _ask(url: str) -> str:
    return httpx.post(url, json={"q": "anything"}).text


def test_a_miss_is_an_ordinary_exception() -> None:
    assert issubclass(UnrecordedRequestError, Exception)


HANDLED = """
import os, anthropic, openai, pytest
from pytest_agentflows import UnrecordedRequestError

def test_openai_miss_expected(agentflow):
    client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=2)
    with pytest.raises(UnrecordedRequestError, match="unrecorded model request"):
        client.models.list()
    client.close()
    assert len(agentflow.pending_misses()) == 1  # not retried by the SDK

def test_anthropic_miss_expected(agentflow):
    client = anthropic.Anthropic(base_url=os.environ["AF_ANTHROPIC_URL"], api_key="k", max_retries=2)
    with pytest.raises(UnrecordedRequestError):  # not wrapped in APIConnectionError, not retried
        client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    client.close()
    assert len(agentflow.pending_misses()) == 1

async def test_async_anthropic_miss_caught_in_the_test(agentflow):
    client = anthropic.AsyncAnthropic(base_url=os.environ["AF_ANTHROPIC_URL"], api_key="k", max_retries=2)
    try:
        await client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    except UnrecordedRequestError as exc:
        assert "why:" in str(exc)
    finally:
        await client.close()
    assert len(agentflow.pending_misses()) == 1

def app(client):  # app code that swallows every error
    try:
        client.models.list()
    except Exception:
        return "fallback answer"

def test_swallowed_by_the_app(agentflow):
    client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
    assert app(client) == "fallback answer"
    client.close()
"""


def test_a_miss_caught_by_the_test_is_handled_one_swallowed_by_the_app_fails(
    offline: pytest.Pytester,
) -> None:
    offline.makepyfile(test_handled=HANDLED)
    result = offline.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_swallowed_by_the_app _*",
            "E   *UnrecordedRequestError: unrecorded model request in test test_handled.py::test_swallowed_by_the_app",
            "*caught by code other than the test function, so the test fails anyway*",
        ]
    )


THREADS = """
import os, threading, httpx

go, done, caught = threading.Event(), threading.Event(), []

def test_a_leaves_a_thread_behind(agentflow):
    def exporter():  # a background exporter: it outlives the test and posts later
        go.wait(30)
        try:
            httpx.post(os.environ["AF_URL"] + "/v1/export", json={"spans": []})
        except Exception as exc:
            caught.append(exc)
        done.set()
    threading.Thread(target=exporter, daemon=True).start()

def test_b_innocent(agentflow):
    go.set()
    assert done.wait(30)
    assert [type(e).__name__ for e in caught] == ["UnrecordedRequestError"]
    assert "test_a_leaves_a_thread_behind" in str(caught[0])
    assert "outlived its test" in str(caught[0])
    assert agentflow.pending_misses() == []
"""


POOL = """
import os, httpx, pytest
from concurrent.futures import ThreadPoolExecutor

POOL = ThreadPoolExecutor(max_workers=1)  # module-level: its worker thread starts in the first test

def ask(url):
    return httpx.post(url + "/v1/chat/completions", json={"model": "m", "messages": []}).status_code

@pytest.mark.agentflow(cassette="pool.yaml")
def test_a_starts_the_worker(agentflow):
    POOL.submit(ask, os.environ["AF_OPENAI_URL"]).result()

@pytest.mark.agentflow(cassette="pool.yaml")
def test_b_reuses_it(agentflow):
    POOL.submit(ask, os.environ["AF_OPENAI_URL"]).result()
    assert not agentflow.pending_misses()
"""


def test_an_executor_worker_started_in_one_test_serves_the_next(
    project: pytest.Pytester, model_server: LocalModelServer, go_offline: Callable[[], None]
) -> None:
    project.makepyfile(test_pool=POOL)
    project.runpytest("-p", "no:randomly", "--record-agents").assert_outcomes(passed=2)
    go_offline()
    project.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_a_late_thread_miss_is_not_blamed_on_the_next_test(offline: pytest.Pytester) -> None:
    offline.makepyfile(test_threads=THREADS)
    result = offline.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_patterns_never_count_a_miss_as_an_agent_failure(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/v1/chat/completions"
    flow = Flow(cassette=tmp_path / "none.yaml", test_id="patterns")
    with flow.activate():
        broadcast = Broadcast(
            {"a": lambda x: "ok", "b": lambda x: _ask(url)}, aggregate=lambda rs: "x", flow=flow
        )
        with pytest.raises(UnrecordedRequestError):
            broadcast.run_sync("go")
        agent = with_fallback(lambda x: _ask(url), lambda x: "fallback", retries=2, flow=flow)
        with pytest.raises(UnrecordedRequestError):
            agent("go")
        breaker = CircuitBreaker("guard", failure_threshold=1, flow=flow)
        with pytest.raises(UnrecordedRequestError):
            breaker.call(lambda x: _ask(url), "go")
        assert breaker.failure_count == 0 and breaker.state.value == "closed"
    kinds = [d.kind for d in flow.decisions]
    assert "agent_failed" not in kinds and "agent_retry" not in kinds and "fallback_used" not in kinds
    assert len(flow.misses) == 3


def test_a_miss_report_stops_at_the_users_code(offline: pytest.Pytester) -> None:
    offline.makepyfile(
        test_short="""
import os, openai

def summarize(client):
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

def test_miss(agentflow):
    client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
    with client:
        summarize(client)
"""
    )
    result = offline.runpytest()
    result.assert_outcomes(failed=1)
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "_ test_miss _" in line)
    message = next(i for i, line in enumerate(lines) if "unrecorded model request in test" in line)
    assert message - start < 25, "\n".join(lines[start:message])
    text = "\n".join(lines)
    assert "vcr/stubs" not in text and "httpx" not in text.replace("httpx2", "")
    result.stdout.fnmatch_lines(["*summarize(client)*", "*return client.chat.completions.create(*"])


def test_a_budget_verdict_shows_no_plugin_frames(
    project: pytest.Pytester, model_server: LocalModelServer
) -> None:
    project.makepyfile(
        test_verdict_frames="""
import os, openai, pytest

@pytest.mark.agent_budget(tokens=5)
def test_over(agentflow):
    with openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0) as client:
        with agentflow.agent("writer"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "write a lot"}])

def test_explicit(agentflow):
    with openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "write a lot"}])
    agentflow.assert_within_budget(tokens=5)
"""
    )
    result = project.runpytest(
        "-p", "no:randomly", "--record-agents", "-o", "agentflows_save_on_failure=true"
    )
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    for internal in ("def assert_within_budget", "usage = self.usage", "def _verdicts", "pluggy/"):
        assert internal not in text
    result.stdout.fnmatch_lines(
        [
            "E   AssertionError: test_verdict_frames.py::test_over: agent budget exceeded: used * tokens of a 5-token budget.",
            "*agentflow.assert_within_budget(tokens=5)",
            "E   *AssertionError: test_verdict_frames.py::test_explicit: agent budget exceeded*",
        ]
    )


def test_agent_deadline_zero_is_a_collection_error(offline: pytest.Pytester) -> None:
    offline.makepyfile(
        test_zero="""
import pytest

@pytest.mark.agent_deadline(0)
def test_x(agentflow):
    raise AssertionError("must not run")
"""
    )
    result = offline.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*test_zero.py::test_x: @pytest.mark.agent_deadline(0): *> 0*Fix: e.g.*"])
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*must not run*")


def test_a_json_cassette_that_cannot_hold_a_body_is_a_one_line_error(
    project: pytest.Pytester, model_server: LocalModelServer
) -> None:
    project.makepyfile(
        test_binary="""
import os, httpx, pytest

@pytest.mark.agentflow(cassette="binary.json")
def test_upload(agentflow):
    httpx.post(os.environ["AF_URL"] + "/upload", content=b"\\xff\\xfe\\x00 secret-ish bytes \\x80")
"""
    )
    result = project.runpytest("--record-agents")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*CassetteSaveError: cannot save the recording to cassette *binary.json at "
            "interactions[[]0[]].request.body: it cannot be written in JSON*YAML cassette*"
        ]
    )
    text = result.stdout.str()
    assert "cassette_dict" not in text and "Does this HTTP interaction contain binary data" not in text
    assert not (project.path / "cassettes" / "test_binary" / "binary.json").exists()
