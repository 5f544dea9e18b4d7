"""agentflow.faults: each fault kind on the httpx and httpx2 stacks, sync and async; SDK retries on virtual time."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import anthropic
import httpx
import openai
import pytest
from stacks import SDK_HTTP, STACKS

from pytest_agentflows import (
    Fault,
    FaultKind,
    Flow,
    ScriptedModel,
    StalledRequestError,
    UsageError,
)
from pytest_agentflows.model_server import LocalModelServer

pytest_plugins = ["pytester"]

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
MESSAGES: Any = [{"role": "user", "content": "look it up"}]
CHAT_URL = "https://api.openai.com/v1/chat/completions"
BODY = {"model": GPT, "messages": MESSAGES}

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
    ignore:unclosed <socket.socket:ResourceWarning
"""


def log(flow: Flow) -> list[Any]:
    """The flow's decisions, typed loosely (their extra fields read as attributes)."""
    return flow.decisions


def faults_of(flow: Flow) -> list[dict[str, Any]]:
    """The fault_injected decisions as dicts without seq, id and parent (structure, tested elsewhere)."""
    return [
        {k: v for k, v in d.model_dump().items() if k not in ("seq", "id", "parent")}
        for d in flow.decisions
        if d.kind == "fault_injected"
    ]


@pytest.fixture
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any real ``time.sleep`` fails the test: retry waits must be virtual (wall time is never asserted)."""

    real_sleep = time.sleep
    # threads already running (a framework's trace exporter started by an earlier test) keep real sleeps
    background = {t for t in threading.enumerate() if t is not threading.main_thread()}

    def forbidden(seconds: float) -> None:
        if threading.current_thread() in background:
            return real_sleep(seconds)
        raise AssertionError(f"a real time.sleep({seconds}) happened during a replayed flow")

    monkeypatch.setattr(time, "sleep", forbidden)


# -- every fault kind on both stacks, sync ---------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
class TestEachFaultSync:
    def script(self, scripted: ScriptedModel) -> None:
        scripted.strict = False
        scripted.openai(agent="a").reply("ok", latency=1.0)

    def post(self, flow: Flow, stack: ModuleType, **client: Any) -> Any:
        with flow.agent("a"), stack.Client(**client) as http:
            return http.post(CHAT_URL, json=BODY)

    def test_fail(self, agentflow: Flow, scripted_model: ScriptedModel, stack: ModuleType) -> None:
        self.script(scripted_model)
        agentflow.faults.fail("a", "connection")
        with pytest.raises(stack.ConnectError, match="injected"):
            self.post(agentflow, stack)
        assert agentflow.elapsed == 0.0 and agentflow.calls == []
        assert faults_of(agentflow) == [
            {
                "at": 0.0,
                "kind": "fault_injected",
                "agent": "a",
                "fault": "fail",
                "call": 0,
                "error": "connection",
            }
        ]

    def test_status(self, agentflow: Flow, scripted_model: ScriptedModel, stack: ModuleType) -> None:
        self.script(scripted_model)
        agentflow.faults.status("a", 503, retry_after=3)
        response = self.post(agentflow, stack)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "3"
        error = response.json()["error"]
        assert error["type"] == "server_error" and "injected" in error["message"]
        assert agentflow.calls == []  # an error answer is not a model call
        assert faults_of(agentflow)[0]["status"] == 503

    def test_delay(self, agentflow: Flow, scripted_model: ScriptedModel, stack: ModuleType) -> None:
        self.script(scripted_model)
        agentflow.faults.delay("a", 2.5)
        response = self.post(agentflow, stack)
        assert response.json()["choices"][0]["message"]["content"] == "ok"
        assert agentflow.elapsed == 3.5  # 2.5 s injected + 1 s scripted latency
        (call,) = agentflow.calls
        assert (call.started_at, call.latency_s) == (2.5, 1.0)

    def test_stall(self, agentflow: Flow, scripted_model: ScriptedModel, stack: ModuleType) -> None:
        self.script(scripted_model)
        agentflow.faults.stall("a")
        with pytest.raises(stack.ReadTimeout, match="injected stall"):
            self.post(agentflow, stack, timeout=7.0)
        assert agentflow.elapsed == 7.0  # the client's read timeout, on the virtual clock
        assert faults_of(agentflow)[0]["timeout"] == 7.0

    def test_stall_without_any_timeout(
        self, agentflow: Flow, scripted_model: ScriptedModel, stack: ModuleType
    ) -> None:
        self.script(scripted_model)
        agentflow.faults.stall("a")
        with pytest.raises(StalledRequestError, match="the sync call would hang forever"):
            self.post(agentflow, stack, timeout=None)


# -- every fault kind on both stacks, async --------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
class TestEachFaultAsync:
    def script(self, scripted: ScriptedModel) -> None:
        scripted.strict = False
        scripted.openai(agent="a").reply("ok", latency=1.0)

    async def post(self, flow: Flow, stack: ModuleType, **client: Any) -> Any:
        with flow.agent("a"):
            async with stack.AsyncClient(**client) as http:
                return await http.post(CHAT_URL, json=BODY)

    async def test_fail(self, agentflow: Flow, scripted_model: ScriptedModel, stack: ModuleType) -> None:
        self.script(scripted_model)
        agentflow.faults.fail("a", "disconnect")
        with pytest.raises(stack.RemoteProtocolError, match="Server disconnected"):
            await self.post(agentflow, stack)
        assert faults_of(agentflow)[0]["error"] == "disconnect"

    async def test_status(self, agentflow: Flow, scripted_model: ScriptedModel, stack: ModuleType) -> None:
        self.script(scripted_model)
        agentflow.faults.status("a", 429, retry_after=1.5)
        response = await self.post(agentflow, stack)
        assert (response.status_code, response.headers["retry-after"]) == (429, "1.5")
        assert response.json()["error"]["code"] == "rate_limit_exceeded"

    async def test_delay(self, agentflow: Flow, scripted_model: ScriptedModel, stack: ModuleType) -> None:
        self.script(scripted_model)
        agentflow.faults.delay("a", 4.0)
        with pytest.raises(asyncio.TimeoutError):  # the delay is loop time: a timeout around it fires
            await asyncio.wait_for(self.post(agentflow, stack), timeout=3.0)
        assert agentflow.elapsed == 3.0
        response = await self.post(agentflow, stack)
        assert response.status_code == 200
        assert agentflow.elapsed == 8.0  # 3 + 4 + 1

    async def test_stall(self, agentflow: Flow, scripted_model: ScriptedModel, stack: ModuleType) -> None:
        self.script(scripted_model)
        agentflow.faults.stall("a", times=1)
        with pytest.raises(stack.ReadTimeout):
            await self.post(agentflow, stack, timeout=12.0)
        assert agentflow.elapsed == 12.0
        with pytest.raises(asyncio.TimeoutError):  # no client timeout: only the caller's timeout ends it
            agentflow.faults.stall("a")
            await asyncio.wait_for(self.post(agentflow, stack, timeout=None), timeout=5.0)
        assert agentflow.elapsed == 17.0

    async def test_stall_nothing_ends(
        self, agentflow: Flow, scripted_model: ScriptedModel, stack: ModuleType
    ) -> None:
        self.script(scripted_model)
        agentflow.faults.stall("a")
        with pytest.raises(StalledRequestError, match="nothing timed it out in 86400 s"):
            await self.post(agentflow, stack, timeout=None)
        assert agentflow.elapsed == 86_400.0


# -- the SDKs' own retries, on virtual time -------------------------------------------------------------------


def test_openai_retries_429_after_retry_after_on_virtual_time(
    agentflow: Flow, scripted_model: ScriptedModel, no_real_sleep: None
) -> None:
    scripted_model.openai(agent="search").reply("found it", latency=0.0)
    agentflow.faults.status("search", 429, retry_after=2, times=2)
    with agentflow.agent("search"):
        reply = openai.OpenAI(api_key="k").chat.completions.create(model=GPT, messages=MESSAGES)
    assert reply.choices[0].message.content == "found it"
    attempts = [(d.kind, d.at, getattr(d, "call", None)) for d in agentflow.decisions]
    assert attempts == [("fault_injected", 0.0, 0), ("fault_injected", 2.0, 1), ("model_call", 4.0, None)]
    assert agentflow.elapsed == 2 + 2  # the sum of the retry-after waits
    assert agentflow.faults.requests("search") == 3


async def test_async_openai_retries_503_on_the_virtual_loop(
    agentflow: Flow, scripted_model: ScriptedModel, no_real_sleep: None
) -> None:
    scripted_model.openai(agent="search").reply("found it", latency=0.5)
    agentflow.faults.status("search", 503, retry_after=1.5, times=2)
    client = openai.AsyncOpenAI(api_key="k")
    try:
        with agentflow.agent("search"):
            reply = await client.chat.completions.create(model=GPT, messages=MESSAGES)
    finally:
        await client.close()
    assert reply.choices[0].message.content == "found it"
    assert [d.at for d in agentflow.decisions if d.kind == "fault_injected"] == [0.0, 1.5]
    assert agentflow.elapsed == 1.5 + 1.5 + 0.5


async def test_async_openai_backoff_between_two_loop_ticks_ends(
    agentflow: Flow, scripted_model: ScriptedModel, no_real_sleep: None
) -> None:
    """openai's jittered backoffs for agent "search" (0.385142..., 0.865263... s) fall between two ticks of
    the virtual loop; on looptime 0.7 (the py310 leg) such a timer froze the loop for ever."""
    loop = asyncio.get_running_loop()
    probe = loop.call_later(0.3851422, lambda: None)  # fail here, not hang below, if timers leave the ticks
    probe.cancel()
    assert 0 < probe.when() * 1e6 - round(probe.when() * 1e6) < 0.1  # due at a tick (just past it)
    scripted_model.openai(agent="search").reply("found it", latency=0.5)
    agentflow.faults.status("search", 500, times=2)
    client = openai.AsyncOpenAI(api_key="k", max_retries=2)
    try:
        with agentflow.agent("search"):
            reply = await client.chat.completions.create(model=GPT, messages=MESSAGES)
    finally:
        await client.close()
    assert reply.choices[0].message.content == "found it"
    at = [d.at for d in agentflow.decisions if d.kind == "fault_injected"]
    assert at == [0.0, 0.385143]  # each backoff ends at the next microsecond tick
    assert agentflow.elapsed == round(0.385143 + 0.865264 + 0.5, 9)


def test_anthropic_retries_529_and_gives_up_after_max_retries(
    agentflow: Flow, scripted_model: ScriptedModel, no_real_sleep: None
) -> None:
    scripted_model.strict = False
    scripted_model.anthropic(agent="critic").reply("never served")
    agentflow.faults.status("critic", 529, retry_after=0.5)
    with agentflow.agent("critic"), pytest.raises(anthropic.APIStatusError) as info:  # 0.x: OverloadedError
        anthropic.Anthropic(api_key="k", max_retries=3).messages.create(
            model=CLAUDE, max_tokens=9, messages=MESSAGES
        )
    assert info.value.status_code == 529
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert [d.call for d in log(agentflow)] == [0, 1, 2, 3]  # 1 attempt + 3 retries
    assert agentflow.elapsed == 3 * 0.5


async def test_async_anthropic_retry_after_429(
    agentflow: Flow, scripted_model: ScriptedModel, no_real_sleep: None
) -> None:
    scripted_model.anthropic(agent="critic").reply("fine", latency=1.0)
    agentflow.faults.status("critic", 429, retry_after=4, at=0)
    client = anthropic.AsyncAnthropic(api_key="k")
    try:
        with agentflow.agent("critic"):
            message = await client.messages.create(model=CLAUDE, max_tokens=9, messages=MESSAGES)
    finally:
        await client.close()
    assert message.content[0].text == "fine"  # type: ignore[union-attr]
    assert agentflow.elapsed == 5.0


def test_backoff_without_retry_after_is_deterministic(no_real_sleep: None) -> None:
    def run() -> tuple[float, list[float]]:
        flow = Flow(test_id="jitter")
        with flow.activate(), ScriptedModel(flow) as scripted:
            scripted.openai(agent="search").reply("ok")
            flow.faults.status("search", 500, times=2)
            with flow.agent("search"):
                openai.OpenAI(api_key="k").chat.completions.create(model=GPT, messages=MESSAGES)
        return flow.elapsed, [d.at for d in flow.decisions]

    first, second = run(), run()
    assert first == second
    elapsed, times = first
    assert 0.375 <= times[1] <= 0.5  # the SDK's own backoff: 0.5 s minus up to 25 % jitter
    assert round(elapsed, 6) == times[2] > times[1]


def test_connection_failure_is_retried_then_api_connection_error(
    agentflow: Flow, scripted_model: ScriptedModel, no_real_sleep: None
) -> None:
    agentflow.faults.fail("billing")
    with agentflow.agent("billing"), pytest.raises(openai.APIConnectionError):
        openai.OpenAI(api_key="k", max_retries=2).chat.completions.create(model=GPT, messages=MESSAGES)
    assert [(d.fault, d.call) for d in log(agentflow)] == [("fail", 0), ("fail", 1), ("fail", 2)]
    assert agentflow.elapsed > 0  # two backoff waits, virtual


def test_sync_sdk_stall_honours_the_client_timeout(
    agentflow: Flow, scripted_model: ScriptedModel, no_real_sleep: None
) -> None:
    scripted_model.openai(agent="slow").reply("finally", latency=1.0)
    agentflow.faults.stall("slow", times=2)
    with agentflow.agent("slow"):
        reply = openai.OpenAI(api_key="k", timeout=10, max_retries=2).chat.completions.create(
            model=GPT, messages=MESSAGES
        )
    assert reply.choices[0].message.content == "finally"
    stalls = [d for d in log(agentflow) if d.kind == "fault_injected"]
    assert [d.timeout for d in stalls] == [10.0, 10.0]
    assert 20 + 1 < agentflow.elapsed < 20 + 1 + 1.5  # two timeouts, two short backoffs, the answer


async def test_async_sdk_stall_ends_with_wait_for(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    agentflow.faults.stall("slow")
    client = openai.AsyncOpenAI(api_key="k")
    try:
        with agentflow.agent("slow"), pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.chat.completions.create(model=GPT, messages=MESSAGES), timeout=5)
    finally:
        await client.close()
    assert agentflow.elapsed == 5.0
    assert faults_of(agentflow)[0]["timeout"] == 600.0  # the SDK's default read timeout


def test_sdk_sleep_is_restored_after_the_flow() -> None:
    import openai._base_client as base

    flow = Flow()
    with flow.activate():
        assert vars(base)["time"] is not time
    assert vars(base)["time"] is time
    assert vars(base)["random"] is random.random


# -- selection: at, times, "*", several faults ----------------------------------------------------------------


def test_at_times_wildcard_and_composition(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    scripted_model.openai().reply("r1").reply("r2").reply("r3").reply("r4")
    agentflow.faults.delay("*", 1.0, times=3).status("a", 500, at=[1]).fail("b", RuntimeError("boom"), at=0)
    agentflow.faults.status("a", 400, at=1)  # shadowed: the first matching fault fires

    def post(agent: str) -> int:
        with agentflow.agent(agent), SDK_HTTP.Client() as http:
            return int(http.post(CHAT_URL, json=BODY).status_code)

    assert post("a") == 200  # a#0: delay only
    assert post("a") == 500  # a#1: delay + status
    with pytest.raises(RuntimeError, match="boom"):
        post("b")  # b#0: delay + the exception as given
    assert post("b") == 200  # b#1: nothing left (delay used 3 times)
    with SDK_HTTP.Client() as http:
        assert http.post(CHAT_URL, json=BODY).status_code == 200  # unnamed: "*" delay used up
    assert [(d.agent, d.fault, d.call) for d in log(agentflow) if d.kind == "fault_injected"] == [
        ("a", "delay", 0),
        ("a", "delay", 1),
        ("a", "status", 1),
        ("b", "delay", 0),
        ("b", "fail", 0),
    ]
    assert agentflow.faults.fired(Fault.status("a", 400, at=1)) == 0
    scripted_model.openai().reply("spare")  # r4 served to the unnamed request
    scripted_model.strict = False


def test_faults_ignore_non_model_requests(agentflow: Flow) -> None:
    agentflow.faults.fail("*")
    with httpx.Client() as http, pytest.raises(BaseException) as info:
        http.get("https://example.com/data")  # reaches the cassette, not the fault
    assert "unrecorded" in str(info.value)
    assert agentflow.decisions == []
    agentflow._cassette.misses.clear()


def test_custom_exception_class_and_status_message(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    agentflow.faults.fail("a", SDK_HTTP.ConnectTimeout, times=1).status("a", 418, message="teapot", at=1)
    with agentflow.agent("a"), SDK_HTTP.Client() as http:
        with pytest.raises(SDK_HTTP.ConnectTimeout, match="ConnectTimeout \\(injected"):
            http.post(CHAT_URL, json=BODY)
        response = http.post(CHAT_URL, json=BODY)
    assert response.json() == {
        "error": {"message": "teapot", "type": "invalid_request_error", "param": None, "code": None}
    }


def test_anthropic_error_format(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    agentflow.faults.status("*", 429, retry_after=7)
    with SDK_HTTP.Client() as http:
        response = http.post("https://api.anthropic.com/v1/messages", json={"model": CLAUDE, "messages": []})
    payload = json.loads(response.content)
    assert payload["type"] == "error" and payload["error"]["type"] == "rate_limit_error"
    assert response.headers["retry-after"] == "7" and response.headers["request-id"] == "req_injected"


# -- building faults --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Fault.fail("a", "explode"), "unknown error; valid: connection, timeout, disconnect"),
        (lambda: Fault.fail("a", 3), "needs an error name or an exception"),  # type: ignore[arg-type]
        (lambda: Fault.status("a", 200), "400..599"),
        (lambda: Fault.status("a", 429, retry_after=-1), "retry_after"),
        (lambda: Fault.delay("a", -2), "seconds must be a number >= 0"),
        (lambda: Fault.stall("", at=0), "needs an agent name"),
        (lambda: Fault.stall("a", at=-1), "request index"),
        (lambda: Fault.stall("a", times=0), "times="),
    ],
)
def test_fault_validation(make: Callable[[], Fault], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        make()


def test_fault_plan_api() -> None:
    plan = Flow().faults
    assert not plan
    plan.fail("a").delay("b", 2, at=[3, 1, 1]).stall("c", times=2)
    assert len(plan) == 3 and [f.kind for f in plan] == [FaultKind.FAIL, FaultKind.DELAY, FaultKind.STALL]
    assert plan.faults[1].at == (1, 3)
    assert (
        repr(plan)
        == "FaultPlan([fail('a', error='connection'), delay('b', seconds=2.0, at=[1, 3]), stall('c', times=2)])"
    )
    with pytest.raises(TypeError, match="takes Fault objects"):
        plan.add("fail")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not in this plan"):
        plan.fired(Fault.stall("z"))
    plan.clear()
    assert plan.faults == []


# -- the marker and cassettes, through inner pytest sessions ---------------------------------------------------


def test_marker_forms(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import httpx2, pytest
        from pytest_agentflows import Fault

        URL = "https://api.openai.com/v1/chat/completions"

        def post(agentflow, agent):
            with agentflow.agent(agent), httpx2.Client(timeout=3) as http:
                return http.post(URL, json={"model": "gpt-4o-mini", "messages": []})

        @pytest.mark.agent_faults(
            Fault.delay("writer", 1.0),
            fail={"billing": "timeout"},
            status={"search": {"status": 429, "retry_after": 2, "times": 1}, "other": 500},
            delay={"writer": 2},
            stall=["critic"],
        )
        def test_all(agentflow, scripted_model):
            scripted_model.openai().reply("a").reply("b")
            with pytest.raises(httpx2.ReadTimeout):
                post(agentflow, "billing")
            assert post(agentflow, "search").status_code == 429
            assert post(agentflow, "search").status_code == 200
            assert post(agentflow, "other").status_code == 500
            assert post(agentflow, "writer").status_code == 200
            with pytest.raises(httpx2.ReadTimeout):
                post(agentflow, "critic")
            assert agentflow.elapsed == 1.0 + 2 + 3
            assert [d.fault for d in agentflow.decisions if d.kind == "fault_injected"] == [
                "fail", "status", "status", "delay", "delay", "stall"]

        @pytest.mark.agent_faults(stall={"a": {"at": 1}})
        @pytest.mark.agent_faults(fail=["b"])
        def test_stacked(agentflow):
            # closest first: the decorator nearest the function comes first
            assert [str(f) for f in agentflow.faults] == ["fail('b', error='connection')", "stall('a', at=[1])"]

        @pytest.mark.agent_faults(explode={"a": 1})
        def test_bad_kind(agentflow):
            pass

        @pytest.mark.agent_faults(status={"a": 99})
        def test_bad_status(agentflow):
            pass

        @pytest.mark.agent_faults("nope")
        def test_bad_positional(agentflow):
            pass
        """.replace("httpx2", SDK_HTTP.__name__)
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--continue-on-collection-errors")
    result.assert_outcomes(passed=2, errors=3)  # collection errors: the misused tests never run
    result.stdout.fnmatch_lines(
        [
            "*test_bad_kind: @pytest.mark.agent_faults(explode={'a': 1}): got unknown argument(s) explode; "
            "valid: fail, status, delay, stall*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*test_bad_status: @pytest.mark.agent_faults(status={'a': 99}): Fault.status('a', 99)*400..599*"]
    )
    result.stdout.fnmatch_lines(["*positional arguments must be Fault objects*"])
    pytester.runpytest("--markers").stdout.fnmatch_lines(["@pytest.mark.agent_faults(*faults, fail=None,*"])


def test_faults_on_top_of_a_cassette(pytester: pytest.Pytester, model_server: LocalModelServer) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import os, pytest, openai

        def search(agentflow):
            client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k")
            with agentflow.agent("search"):
                return client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "find the invoice"}]
                ).choices[0].message.content

        @pytest.mark.agentflow(cassette="shared.yaml", latency="zero")
        def test_plain(agentflow):
            assert "find the invoice" in search(agentflow)

        @pytest.mark.agentflow(cassette="shared.yaml", latency="zero")
        @pytest.mark.agent_faults(status={"search": {"status": 503, "retry_after": 3, "times": 2}})
        def test_rate_limited(agentflow):
            assert "find the invoice" in search(agentflow)  # the recorded answer, on the third attempt
            assert [d.kind for d in agentflow.decisions] == ["fault_injected", "fault_injected", "model_call"]
            assert agentflow.elapsed == 6.0 and len(agentflow.calls) == 1
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "--record-agents", "-k", "plain").assert_outcomes(passed=1)
    served = len(model_server.requests)
    pytester.runpytest("-p", "no:cacheprovider", "-k", "rate_limited").assert_outcomes(passed=1)
    # recording with the fault: the injected errors never reach the server nor the cassette
    pytester.runpytest("-p", "no:cacheprovider", "--record-agents=all", "-k", "rate_limited").assert_outcomes(
        passed=1
    )
    assert len(model_server.requests) == served + 1
    pytester.runpytest("-p", "no:cacheprovider", "-k", "plain").assert_outcomes(passed=1)


def test_a_recorded_rate_limit_replays_with_a_virtual_retry_wait(
    pytester: pytest.Pytester, model_server: LocalModelServer
) -> None:
    """Not only injected faults: a 429 stored in a cassette makes the SDK wait on the virtual clock too."""
    import yaml

    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import os, threading, time, openai, pytest

        @pytest.mark.agentflow(latency="zero")
        def test_search(agentflow, monkeypatch):
            if not os.environ.get("RECORDING"):
                # threads already running (an earlier test's trace exporter) keep their real sleeps
                background, real_sleep = set(threading.enumerate()) - {threading.main_thread()}, time.sleep

                def forbidden(s):
                    if threading.current_thread() in background:
                        return real_sleep(s)
                    pytest.fail(f"real sleep({s})")

                monkeypatch.setattr(time, "sleep", forbidden)
            client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k")
            with agentflow.agent("search"):
                reply = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "find it"}]
                )
            assert "find it" in reply.choices[0].message.content
            assert agentflow.elapsed == float(os.environ.get("EXPECTED", "0"))
        """
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RECORDING", "1")
        pytester.runpytest("-p", "no:cacheprovider", "--record-agents").assert_outcomes(passed=1)
    cassette = pytester.path / "cassettes" / "test_a_recorded_rate_limit_replays_with_a_virtual_retry_wait"
    path = cassette / "test_search.yaml"
    data = yaml.safe_load(path.read_text())
    (ok,) = data["interactions"]
    limited = yaml.safe_load(yaml.safe_dump(ok))
    limited["response"]["status"] = {"code": 429, "message": "Too Many Requests"}
    limited["response"]["headers"]["retry-after"] = ["3"]
    limited["response"]["body"] = {"string": '{"error": {"message": "slow down", "type": "requests"}}'}
    data["interactions"] = [limited, ok]
    path.write_text(yaml.safe_dump(data))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EXPECTED", "3.0")
        pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
async def test_concurrent_first_requests_of_a_new_async_client_reach_the_transport_in_start_order(
    sdk: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK looks its platform up in a worker thread on a client's first request; threads finish in any
    order. Here a first lookup made in a worker thread ends only once the other agents' requests reached
    the transport, so without the inline lookup the first agent comes last (no real wait either way)."""
    module: Any = openai if sdk == "openai" else anthropic
    base_client = module._base_client
    real_get_platform = base_client.get_platform
    loop_thread = threading.get_ident()
    lookups: list[int] = []
    lookups_lock = threading.Lock()
    others_sent = threading.Event()

    def get_platform() -> Any:  # the SDK's name: only this lookup is made inline
        with lookups_lock:
            lookups.append(threading.get_ident())
            first = len(lookups) == 1
        if first and threading.get_ident() != loop_thread:
            others_sent.wait(timeout=10)  # set from the event loop; never reached with the inline lookup
        return real_get_platform()

    monkeypatch.setattr(base_client, "get_platform", get_platform)
    flow = Flow(test_id="platform")
    record = flow.log.record

    def noting_record(kind: str, **fields: Any) -> Any:
        decision = record(kind, **fields)
        if sum(d.kind == "fault_injected" for d in flow.log.decisions) == 2:
            others_sent.set()
        return decision

    monkeypatch.setattr(flow.log, "record", noting_record)
    with flow.activate(), ScriptedModel(flow):
        agents = ["first", "second", "third"]
        for agent in agents:
            flow.faults.fail(agent, error="connection")
        client: Any = (
            openai.AsyncOpenAI(api_key="k", max_retries=0)
            if sdk == "openai"
            else anthropic.AsyncAnthropic(api_key="k", max_retries=0)
        )

        async def ask(agent: str) -> None:
            with flow.agent(agent), pytest.raises(module.APIConnectionError):
                if sdk == "openai":
                    await client.chat.completions.create(model=GPT, messages=MESSAGES)
                else:
                    await client.messages.create(model=CLAUDE, max_tokens=9, messages=MESSAGES)

        try:
            await asyncio.gather(*(ask(agent) for agent in agents))
        finally:
            await client.close()
    assert [d.agent for d in log(flow) if d.kind == "fault_injected"] == agents
    assert set(lookups) == {threading.get_ident()}  # looked up on the event loop's thread, not a worker
    assert base_client.asyncify is not None and "inline" not in base_client.asyncify.__qualname__  # restored
