"""The scripted_model fixture: real wire formats, per-agent scripts, ledger, virtual latency, clear misses."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from typing import Any

import anthropic
import httpx
import openai
import pytest
from stacks import SDK_HTTP, httpx2, needs_httpx2

from pytest_agentflows import (
    Flow,
    ScriptedModel,
    UnrecordedRequestError,
    UnscriptedRequestError,
    UsageError,
)

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
MESSAGES: Any = [{"role": "user", "content": "where is my refund"}]
OPENAI_URL = "https://api.openai.com/v1/chat/completions"


def oai(**kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", **kwargs)  # type: ignore[arg-type]


def claude(**kwargs: object) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test", **kwargs)  # type: ignore[arg-type]


def ask(agentflow: Flow, agent: str, text: str = "hi") -> str:
    with agentflow.agent(agent):
        reply = oai().chat.completions.create(model=GPT, messages=[{"role": "user", "content": text}])
    return reply.choices[0].message.content or ""


# -- wire formats through the real SDKs (on the stack they are built on) ------------------------------------


def test_openai_chat_reply_usage_latency_and_ledger(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    scripted_model.openai(agent="router").reply("billing", input_tokens=120, output_tokens=1, latency=0.4)
    with agentflow.agent("router"):
        reply = oai().chat.completions.create(model=GPT, messages=MESSAGES)
    assert reply.choices[0].message.content == "billing"
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (120, 1)
    (call,) = agentflow.calls
    assert (call.agent, call.provider, call.api, call.model) == ("router", "openai", "openai.chat", GPT)
    assert (call.usage.input_tokens, call.usage.output_tokens, call.latency_s) == (120, 1, 0.4)
    assert call.usage.cost_usd is not None and call.usage.cost_usd > 0
    assert agentflow.elapsed == 0.4
    (decision,) = agentflow.decisions
    assert (decision.kind, decision.agent, decision.at) == ("model_call", "router", 0.4)
    (served,) = scripted_model.requests
    assert served.agent == "router" and served.request.last_user_text == "where is my refund"
    assert scripted_model.router.routes["openai.chat"].call_count == 1


def test_openai_chat_stream_and_responses_api(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    script = scripted_model.openai(agent="writer")
    script.reply("a streamed haiku", output_tokens=3, latency=1.0).reply("plain answer", latency=2.0)
    script.reply("streamed responses", latency=0.5)
    with agentflow.agent("writer"):
        stream = oai().chat.completions.create(
            model=GPT, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        response = oai().responses.create(model=GPT, input="research it")
        events = [e.type for e in oai().responses.create(model=GPT, input="stream it", stream=True)]
    assert text == "a streamed haiku"
    assert response.output_text == "plain answer"
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert [(c.api, c.streamed, c.latency_s) for c in agentflow.calls] == [
        ("openai.chat", True, 1.0),
        ("openai.responses", False, 2.0),
        ("openai.responses", True, 0.5),
    ]
    assert agentflow.calls[0].usage.output_tokens == 3
    assert agentflow.elapsed == 3.5


def test_anthropic_messages_plain_and_stream(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    scripted_model.anthropic(agent="critic").reply(
        "Looks good.", input_tokens=50, output_tokens=3, latency=1.5
    )
    scripted_model.anthropic(agent="critic").reply("Streamed critique here", model="claude-sonnet-4-5")
    with agentflow.agent("critic"):
        message = claude().messages.create(model=CLAUDE, max_tokens=50, messages=MESSAGES)
        with claude().messages.stream(model=CLAUDE, max_tokens=50, messages=MESSAGES) as stream:
            streamed = stream.get_final_text()
    assert message.content[0].text == "Looks good."  # type: ignore[union-attr]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (50, 3)
    assert streamed == "Streamed critique here"
    first, second = agentflow.calls
    assert (first.provider, first.api, first.usage.input_tokens, first.latency_s) == (
        "anthropic",
        "anthropic.messages",
        50,
        1.5,
    )
    assert second.streamed and second.model == "claude-sonnet-4-5"


def test_replies_per_agent_in_order_with_a_catch_all(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    scripted_model.openai(agent="router").reply("billing").reply("technical")
    scripted_model.openai().reply("anyone")
    assert ask(agentflow, "router") == "billing"
    assert ask(agentflow, "writer") == "anyone"  # no script of its own: the agent=None script
    assert ask(agentflow, "router") == "technical"
    assert [s.describe() for s in scripted_model.scripts] == [
        "openai(agent='router'): 2 of 2 replies served",
        "openai(agent=None): 1 of 1 replies served",
    ]
    assert [c.agent for c in agentflow.calls] == ["router", "writer", "router"]


def test_scripts_are_per_provider(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    scripted_model.openai(agent="a").reply("from openai")
    scripted_model.anthropic(agent="a").reply("from anthropic")
    with agentflow.agent("a"):
        text = claude().messages.create(model=CLAUDE, max_tokens=9, messages=MESSAGES).content[0].text  # type: ignore[union-attr]
    assert text == "from anthropic"
    assert ask(agentflow, "a") == "from openai"


async def test_async_calls_overlap_on_the_virtual_loop(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    for agent, latency in (("slow", 10.0), ("fast", 5.0), ("mid", 8.0)):
        scripted_model.openai(agent=agent).reply(f"{agent} answer", latency=latency)
    client = openai.AsyncOpenAI(api_key="sk-test")
    done: list[str] = []

    async def run(agent: str) -> None:
        with agentflow.agent(agent):
            await client.chat.completions.create(model=GPT, messages=MESSAGES)
        done.append(agent)

    try:
        await asyncio.gather(run("slow"), run("fast"), run("mid"))
    finally:
        await client.close()
    assert done == ["fast", "mid", "slow"]  # completion order = latency order
    assert agentflow.elapsed == 10.0  # 5, 8 and 10 s in parallel take 10 s
    assert [(d.agent, d.at) for d in agentflow.decisions] == [("fast", 5.0), ("mid", 8.0), ("slow", 10.0)]
    assert [c.started_at for c in agentflow.calls] == [0.0, 0.0, 0.0]


async def test_async_anthropic_stream_and_wait_for(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    scripted_model.anthropic(agent="critic").reply("too slow", latency=30.0)
    scripted_model.anthropic(agent="critic").reply("in time", latency=2.0)
    client = anthropic.AsyncAnthropic(api_key="sk-ant-test")

    async def critique() -> str:
        with agentflow.agent("critic"):
            async with client.messages.stream(model=CLAUDE, max_tokens=9, messages=MESSAGES) as stream:
                return await stream.get_final_text()

    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(critique(), timeout=5)
        assert agentflow.elapsed == 5.0  # the timeout fired at 5 s of virtual time
        assert await critique() == "in time"
    finally:
        await client.close()
    assert agentflow.elapsed == 7.0
    cancelled, ok = agentflow.decisions
    assert cancelled.fields().get("cancelled") is True and "cancelled" not in ok.fields()


# -- the httpx stack (openai <= 2 is built on it): raw clients -------------------------------------------------


@needs_httpx2
def test_raw_httpx_and_httpx2_clients(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    scripted_model.openai(agent="a").reply("via httpx", latency=1.0)
    scripted_model.openai(agent="b").reply("via httpx2", latency=2.0)
    body = {"model": GPT, "messages": MESSAGES}
    with agentflow.agent("a"), httpx.Client() as client:
        first = client.post(OPENAI_URL, json=body)
    with agentflow.agent("b"), httpx2.Client() as client2:
        second = client2.post(OPENAI_URL, json=body)
    assert first.json()["choices"][0]["message"]["content"] == "via httpx"
    assert second.json()["choices"][0]["message"]["content"] == "via httpx2"
    assert first.headers["x-request-id"].startswith("req_local_")
    assert [(c.agent, c.latency_s) for c in agentflow.calls] == [("a", 1.0), ("b", 2.0)]
    assert agentflow.elapsed == 3.0


@needs_httpx2
async def test_raw_async_httpx_and_httpx2_clients(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    scripted_model.anthropic().reply("async httpx", latency=4.0).reply("async httpx2", latency=1.0)
    body = {"model": CLAUDE, "max_tokens": 9, "messages": MESSAGES}
    url = "https://api.anthropic.com/v1/messages"
    async with httpx.AsyncClient() as client, httpx2.AsyncClient() as client2:
        first, second = await asyncio.gather(client.post(url, json=body), client2.post(url, json=body))
    assert first.json()["content"][0]["text"] == "async httpx"
    assert second.json()["content"][0]["text"] == "async httpx2"
    assert agentflow.elapsed == 4.0  # overlapping


def test_latency_zero_marker(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import pytest, openai

        @pytest.mark.agentflow(latency="zero")
        def test_zero(agentflow, scripted_model):
            scripted_model.openai().reply("x", latency=9)
            openai.OpenAI(api_key="k").chat.completions.create(model="gpt-4o-mini", messages=[])
            assert agentflow.elapsed == 0.0 and agentflow.calls[0].latency_s == 0.0
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


# -- misses ---------------------------------------------------------------------------------------------------


def test_unscripted_agent_raises_a_clear_unrecorded_request_error(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    scripted_model.openai(agent="router").reply("billing")
    assert ask(agentflow, "router") == "billing"
    with pytest.raises(UnscriptedRequestError) as info:
        ask(agentflow, "writer")
    error = info.value
    assert isinstance(error, UnrecordedRequestError)  # one error type for "nothing to answer with"
    assert (error.agent, error.method, error.url) == ("writer", "POST", OPENAI_URL)
    message = str(error)
    assert "test_unscripted_agent_raises_a_clear_unrecorded_request_error" in message
    assert "no openai reply is scripted for agent 'writer'" in message
    assert "openai(agent='router'): 1 of 1 replies served" in message
    assert "scripted_model.openai(agent='writer').reply(" in message
    assert agentflow.pending_misses() == [error]
    agentflow._extra_misses.clear()  # handled here on purpose


def test_used_up_script_is_a_miss_too(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    scripted_model.anthropic(agent="critic").reply("once")
    with agentflow.agent("critic"):
        claude().messages.create(model=CLAUDE, max_tokens=9, messages=MESSAGES)
        with pytest.raises(UnscriptedRequestError, match="is used up: all 1 replies were served"):
            claude(max_retries=5).messages.create(model=CLAUDE, max_tokens=9, messages=MESSAGES)
    assert len(agentflow.pending_misses()) == 1  # no SDK retry of the miss (a BaseException)
    agentflow._extra_misses.clear()


def test_non_model_requests_pass_through_to_the_cassette(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    with httpx.Client() as client, pytest.raises(UnrecordedRequestError) as info:
        client.get("https://example.com/weather")
    assert not isinstance(info.value, UnscriptedRequestError)  # the cassette answered: nothing recorded
    assert "cassette file does not exist" in str(info.value)
    agentflow._cassette.misses.clear()


def test_swallowed_miss_still_fails_and_unused_replies_fail_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import openai

        def call(agentflow, agent):
            with agentflow.agent(agent):
                openai.OpenAI(api_key="k").chat.completions.create(model="gpt-4o-mini", messages=[])

        def swallow(agentflow):  # app code that catches everything (the test function catching it is fine)
            try:
                call(agentflow, "nobody")
            except Exception:
                pass

        def test_swallowed(agentflow, scripted_model):
            swallow(agentflow)

        def test_unused(agentflow, scripted_model):
            scripted_model.openai(agent="a").reply("used").reply("never")
            call(agentflow, "a")

        def test_unused_allowed(agentflow, scripted_model):
            scripted_model.strict = False
            scripted_model.openai(agent="a").reply("never")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*unscripted model request in test *::test_swallowed"])
    result.stdout.fnmatch_lines(
        ["*scripted replies were never requested:*", "*openai(agent='a'): 1 of 2 replies served*"]
    )


# -- core API, validation, imports ----------------------------------------------------------------------------


def test_core_api_without_pytest_fixtures() -> None:
    flow = Flow(test_id="standalone")
    with pytest.raises(UsageError, match="the flow is not active"):
        ScriptedModel(flow).__enter__()
    with flow.activate(), ScriptedModel(flow) as model:
        model.openai(agent="a").reply("hello", latency=2.0)
        assert ask(flow, "a") == "hello"
        with pytest.raises(UsageError, match="already has an active scripted model"), ScriptedModel(flow):
            pass
    assert flow.elapsed == 2.0 and len(flow.calls) == 1
    assert flow._hooks is None  # the transport hooks are gone with the flow
    assert SDK_HTTP.HTTPTransport.handle_request.__module__ == f"{SDK_HTTP.__name__}._transports.default"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_tokens": -1}, "input_tokens"),
        ({"output_tokens": 1.5}, "output_tokens"),
        ({"latency": -0.1}, "latency"),
    ],
)
def test_reply_validation(kwargs: dict[str, object], match: str) -> None:
    model = ScriptedModel(Flow())
    with pytest.raises(UsageError, match=match):
        model.openai().reply("x", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="reply text"):
        model.openai().reply(42)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="non-empty str"):
        model.anthropic(agent="")


def test_importing_the_plugin_imports_no_respx_or_sdk() -> None:
    code = textwrap.dedent(
        """
        import sys
        import pytest_agentflows, pytest_agentflows.plugin
        heavy = [m for m in ("respx", "httpx", "httpx2", "vcr", "openai", "anthropic") if m in sys.modules]
        print(heavy)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
