"""Tool calls end to end: the real OpenAI and Anthropic SDKs against the scripted model and the model server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from pytest_agentflows import Flow, Message, ScriptedModel, ToolCall
from pytest_agentflows.model_server import (
    REVIEW_CRITIQUE,
    LocalModelServer,
    Request,
    default_responder,
    load_responder,
    load_script,
    main,
    schema_arguments,
)

pytest_plugins = ["pytester"]

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
}
CHAT_TOOLS: Any = [{"type": "function", "function": {"name": "weather", "parameters": WEATHER}}]
RESPONSES_TOOLS: Any = [{"type": "function", "name": "weather", "parameters": WEATHER}]
ANTHROPIC_TOOLS: Any = [{"name": "weather", "input_schema": WEATHER}]


def oai(**kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", max_retries=0, **kwargs)


def claude(**kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test", max_retries=0, **kwargs)


# ----------------------------------------------------------------------------- scripted tool calls, by API
@pytest.mark.parametrize("stream", [False, True])
def test_chat_tool_call_then_tool_result_in_the_next_input(
    agentflow: Flow, scripted_model: ScriptedModel, stream: bool
) -> None:
    script = scripted_model.openai(agent="planner")
    script.tool_call("weather", {"city": "Paris", "unit": "c"}, id="call_w1", latency=0.5).reply(
        "Sunny, 21 C."
    )
    messages: Any = [{"role": "system", "content": "Plan trips."}, {"role": "user", "content": "Paris?"}]
    options: Any = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    with agentflow.agent("planner"), oai() as client:
        first = client.chat.completions.create(model=GPT, messages=messages, tools=CHAT_TOOLS, **options)
        if stream:
            chunks = list(first)
            frags = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
            arguments = "".join(f.function.arguments or "" for f in frags if f.function)
            assert (frags[0].id, frags[0].function and frags[0].function.name) == ("call_w1", "weather")
            finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
            assert finish == ["tool_calls"]
        else:
            (call,) = first.choices[0].message.tool_calls or []
            assert call.type == "function"
            arguments = call.function.arguments
            assert first.choices[0].finish_reason == "tool_calls"
        assert json.loads(arguments) == {"city": "Paris", "unit": "c"}
        messages += [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_w1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_w1", "content": "21 C, sunny"},
        ]
        client.chat.completions.create(model=GPT, messages=messages, tools=CHAT_TOOLS)
    assert agentflow.tool_calls == [ToolCall("weather", {"city": "Paris", "unit": "c"}, "call_w1", "planner")]
    first_call, second_call = agentflow.calls_of("planner")
    assert (first_call.finish_reason, first_call.streamed, first_call.usage_reported) == (
        "tool_calls",
        stream,
        True,
    )
    assert (second_call.finish_reason, second_call.output_text, second_call.tool_calls) == (
        "stop",
        "Sunny, 21 C.",
        [],
    )
    assert second_call.input_messages[-1] == Message("tool", "21 C, sunny")
    assert [d.kind for d in agentflow.decisions] == ["model_call", "tool_call", "model_call"]
    assert agentflow.decisions[1].fields() == {"tool": "weather", "arguments": {"city": "Paris", "unit": "c"}}
    agentflow.assert_tool_calls([("weather", {"city": "Paris"})], agent="planner", args="superset")


@pytest.mark.parametrize("stream", [False, True])
def test_responses_function_call(agentflow: Flow, scripted_model: ScriptedModel, stream: bool) -> None:
    scripted_model.openai(agent="geo").tool_call("weather", {"city": "Rome", "unit": "c"}).reply("Warm.")
    with agentflow.agent("geo"), oai() as client:
        if stream:
            with client.responses.stream(model=GPT, input="Rome?", tools=RESPONSES_TOOLS) as events:
                response = events.get_final_response()
        else:
            response = client.responses.create(model=GPT, input="Rome?", tools=RESPONSES_TOOLS)
        (item,) = response.output
        assert item.type == "function_call"
        assert (item.name, json.loads(item.arguments)) == ("weather", {"city": "Rome", "unit": "c"})
        follow_up: Any = [
            {"role": "user", "content": "Rome?"},
            {
                "type": "function_call",
                "call_id": item.call_id,
                "name": item.name,
                "arguments": item.arguments,
            },
            {"type": "function_call_output", "call_id": item.call_id, "output": "30 C"},
        ]
        assert (
            client.responses.create(model=GPT, input=follow_up, tools=RESPONSES_TOOLS).output_text == "Warm."
        )
    first, second = agentflow.calls
    assert (first.finish_reason, first.streamed) == ("tool_calls", stream)
    assert first.tool_calls == [ToolCall("weather", {"city": "Rome", "unit": "c"}, item.call_id, "geo")]
    assert second.input_messages == [Message("user", "Rome?"), Message("tool", "30 C")]
    assert second.finish_reason == "stop"


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_tool_use_and_tool_result(
    agentflow: Flow, scripted_model: ScriptedModel, stream: bool
) -> None:
    scripted_model.anthropic(agent="travel").tool_call("weather", {"city": "Oslo", "unit": "c"}).reply(
        "Cold."
    )
    messages: Any = [{"role": "user", "content": "Oslo?"}]
    with agentflow.agent("travel"), claude() as client:
        if stream:
            with client.messages.stream(
                model=CLAUDE, max_tokens=100, messages=messages, tools=ANTHROPIC_TOOLS
            ) as s:
                message = s.get_final_message()
        else:
            message = client.messages.create(
                model=CLAUDE, max_tokens=100, messages=messages, tools=ANTHROPIC_TOOLS
            )
        assert message.stop_reason == "tool_use"
        (block,) = message.content
        assert block.type == "tool_use" and (block.name, block.input) == (
            "weather",
            {"city": "Oslo", "unit": "c"},
        )
        messages += [
            {"role": "assistant", "content": [block.model_dump()]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "-3 C"}],
            },
        ]
        reply = client.messages.create(model=CLAUDE, max_tokens=100, messages=messages, tools=ANTHROPIC_TOOLS)
        assert reply.content[0].type == "text" and reply.content[0].text == "Cold."
    first, second = agentflow.calls
    assert first.tool_calls == [ToolCall("weather", {"city": "Oslo", "unit": "c"}, block.id, "travel")]
    assert (first.finish_reason, first.streamed, second.finish_reason) == ("tool_use", stream, "end_turn")
    assert second.input_messages == [
        Message("user", "Oslo?"),
        Message("assistant", ""),
        Message("tool", "-3 C"),
    ]


def test_tool_call_validation(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    from pytest_agentflows import UsageError

    script = scripted_model.openai(agent="x")
    with pytest.raises(UsageError, match="needs the tool name"):
        script.tool_call("")
    with pytest.raises(UsageError, match="must be a dict"):
        script.tool_call("t", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"tool_call\(latency=...\) must be seconds"):
        script.tool_call("t", latency=-1)
    assert script.replies == []


# ----------------------------------------------------------------------------------------- context passing
def test_context_passing_between_agents_is_assertable(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    scripted_model.openai(agent="researcher").tool_call("search", {"q": "refund policy"}).reply(
        "Refunds take 5-10 business days."
    )
    scripted_model.openai(agent="writer").reply("Dear customer, your refund takes 5-10 business days.")
    with oai() as client:
        with agentflow.agent("researcher"):
            msgs: Any = [{"role": "user", "content": "Find the refund policy"}]
            call = client.chat.completions.create(model=GPT, messages=msgs).choices[0].message.tool_calls
            assert call is not None
            msgs += [
                {"role": "assistant", "content": None, "tool_calls": [call[0].model_dump()]},
                {"role": "tool", "tool_call_id": call[0].id, "content": "policy: 5-10 business days"},
            ]
            notes = client.chat.completions.create(model=GPT, messages=msgs).choices[0].message.content
        with agentflow.agent("writer"):
            client.chat.completions.create(
                model=GPT, messages=[{"role": "user", "content": f"Write from: {notes}"}]
            )
    (writer,) = agentflow.calls_of("writer")
    researcher_out = agentflow.calls_of("researcher")[-1].output_text
    assert researcher_out in writer.input_text  # the writer was given what the researcher found
    agentflow.assert_tool_calls(["search"], agent="researcher")
    agentflow.assert_tool_calls([], agent="writer")


# ------------------------------------------------------------------------------------------- model server
def test_server_responder_returns_parallel_tool_calls(tmp_path: Path) -> None:
    def responder(request: Request) -> Any:
        if not request.called_tools:
            return [ToolCall("weather", {"city": "Paris"}), ToolCall("weather", {"city": "Tokyo"}, "call_t")]
        return "both sunny"

    flow = Flow(cassette=tmp_path / "parallel.yaml", record="new", test_id="parallel")
    with (
        LocalModelServer(responder=responder) as server,
        flow.activate(),
        oai(base_url=server.openai_base_url) as c,
    ):
        stream = c.chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": "x"}], tools=CHAT_TOOLS, stream=True
        )
        frags = [tc for chunk in stream if chunk.choices for tc in (chunk.choices[0].delta.tool_calls or [])]
        assert sorted({f.index for f in frags}) == [0, 1]
    assert [(t.name, t.arguments, t.id) for t in flow.tool_calls] == [
        ("weather", {"city": "Paris"}, flow.tool_calls[0].id),
        ("weather", {"city": "Tokyo"}, "call_t"),
    ]
    assert flow.tool_calls[0].id and flow.tool_calls[0].id.startswith("call_local")
    assert flow.calls[0].usage_reported is False  # a chat stream without include_usage


def test_default_responder_calls_each_offered_tool_once_then_answers(tmp_path: Path) -> None:
    """Record an agent loop with the server (no API key), then replay it with the server stopped."""
    cassette = tmp_path / "loop.yaml"

    def run(flow: Flow, base_url: str) -> list[str]:
        tools: Any = [
            *ANTHROPIC_TOOLS,
            {"name": "clock", "input_schema": {"type": "object", "properties": {}}},
        ]
        messages: Any = [{"role": "user", "content": "Weather in Oslo?"}]
        seen = []
        with flow.activate(), flow.agent("travel"), claude(base_url=base_url) as client:
            while True:
                msg = client.messages.create(model=CLAUDE, max_tokens=100, messages=messages, tools=tools)
                if msg.stop_reason != "tool_use":
                    seen.append(msg.content[0].text)  # type: ignore[union-attr]
                    return seen
                uses = [b for b in msg.content if b.type == "tool_use"]
                seen += [b.name for b in uses]
                messages += [
                    {"role": "assistant", "content": [b.model_dump() for b in msg.content]},
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": b.id, "content": "ok"} for b in uses
                        ],
                    },
                ]

    with LocalModelServer() as server:
        recorded = run(Flow(cassette=cassette, record="new", test_id="rec"), server.anthropic_base_url)
        base = server.anthropic_base_url
    assert recorded == ["weather", "clock", f"[{CLAUDE}] reply to: Weather in Oslo?"]
    replay = Flow(cassette=cassette, record="none", test_id="replay")
    assert run(replay, base) == recorded  # the server is stopped: answers come from the cassette
    assert replay.replayed_calls == 2 and replay.recorded_calls == 0
    assert [(t.name, t.arguments) for t in replay.tool_calls] == [
        ("weather", {"city": "<city>", "unit": "c"}),
        ("clock", {}),
    ]
    assert [d.kind for d in replay.decisions] == ["model_call", "tool_call", "tool_call", "model_call"]


def test_schema_arguments_fill_required_properties_deterministically() -> None:
    schema = {
        "type": "object",
        "properties": {
            "q": {"type": "string"},
            "n": {"type": "integer"},
            "x": {"type": "number"},
            "flag": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "mode": {"enum": ["fast", "slow"]},
            "opt": {"type": ["null", "integer"]},
            "nested": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            "skipped": {"type": "string"},
        },
        "required": ["q", "n", "x", "flag", "tags", "mode", "opt", "nested"],
    }
    expected = {
        "q": "<q>",
        "n": 1,
        "x": 1.5,
        "flag": True,
        "tags": ["<tags>"],
        "mode": "fast",
        "opt": 1,
        "nested": {"a": "<a>"},
    }
    assert schema_arguments(schema) == expected
    assert schema_arguments({"type": "object", "properties": {"a": {"type": "string"}}}) == {}


def _request(system: str, user: str) -> Request:
    return Request(
        api="openai.chat", model=GPT, system=system, messages=[("user", user)], last_user_text=user, json={}
    )


@pytest.mark.parametrize(
    ("system", "user", "expected"),
    [
        # a classifier whose labels include code_review is not a reviewer
        (
            "Classify the request. Labels: code_review, billing, technical, general.",
            "My invoice is wrong",
            "billing",
        ),
        ("You route tickets to: code_review | general", "hello", "general"),
        # a reviewer prompt holding "REVISION NEEDED" does not approve at once
        ("You are a reviewer. Answer APPROVED or REVISION NEEDED.", "Draft: ship it", REVIEW_CRITIQUE),
        ("You review drafts.", "Reply APPROVED or REVISION NEEDED.\n\nDraft:\nship it", REVIEW_CRITIQUE),
        ("You review drafts.", "Reply APPROVED or REVISION NEEDED.\n\nRevised draft:\nship it", "APPROVED"),
        # the user's text never changes the role
        (
            "You are a helpful writer.",
            "please review and classify this",
            f"[{GPT}] reply to: please review and classify this",
        ),
        ("You are a reviewer; classify each draft as APPROVED or REVISE.", "Draft: x", REVIEW_CRITIQUE),
    ],
)
def test_default_rules_look_at_the_role_of_the_prompt(system: str, user: str, expected: str) -> None:
    assert default_responder(_request(system, user)) == expected


# ---------------------------------------------------------------------------------------- command line
def test_script_file_and_responder_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(
        textwrap.dedent(
            """
            - {tool: search, arguments: {q: refunds}, id: call_1}
            - [{tool: weather, arguments: {city: Paris}}, {tool: clock}]
            - The refund takes 5 days.
            - {reply: Done.}
            """
        )
    )
    assert load_script(str(script)) == [
        ToolCall("search", {"q": "refunds"}, "call_1"),
        [ToolCall("weather", {"city": "Paris"}), ToolCall("clock", {})],
        "The refund takes 5 days.",
        "Done.",
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {tool: search, argument: {q: x}}\n")
    with pytest.raises(ValueError, match=r"bad.yaml, item 0: a tool call is a mapping with `tool`"):
        load_script(str(bad))
    (tmp_path / "my_responders.py").write_text("def always(request):\n    return 'fixed'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_responder("my_responders:always")(_request("", "x")) == "fixed"
    for spec, why in [("nocolon", "use module:function"), ("my_responders:nope", "no callable 'nope'")]:
        with pytest.raises(ValueError, match=why):
            load_responder(spec)
    with pytest.raises(SystemExit) as info:
        main(["--script", str(bad)])
    assert info.value.code == 2


def test_main_serves_a_script_file_with_tool_calls(tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text("- {tool: search, arguments: {q: refunds}}\n- All done.\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_agentflows.model_server", "--port", "0", "--script", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        with oai(base_url=url + "/v1") as client:
            first = client.responses.create(model=GPT, input="refunds?")
            assert [(i.type, getattr(i, "name", None)) for i in first.output] == [("function_call", "search")]
            assert client.responses.create(model=GPT, input="again").output_text == "All done."
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


# ----------------------------------------------------------------------------- usage-not-reported verdict
INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""


def test_budget_marker_over_a_stream_without_usage_fails_naming_the_call(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import openai, pytest

        @pytest.mark.agent_budget(tokens=1000)
        def test_stream(agentflow, scripted_model):
            scripted_model.openai(agent="writer").reply("a b c")
            with agentflow.agent("writer"), openai.OpenAI(api_key="sk-test") as client:
                stream = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
                )
                assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "a b c"
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*cannot check the agent budget: 1 model call(s) reported no usage*",
            "*call 1: agent writer, openai.chat gpt-4o-mini, streamed*",
            '*stream_options={"include_usage": True}*',
        ]
    )


# ------------------------------------------------------------------------------- inspect and the HTML report
def test_inspect_and_timeline_mark_tool_calls_and_calls_without_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_agentflows.cli import main as cli
    from pytest_agentflows.plugin._report_render import timeline_svg
    from pytest_agentflows.report import FlowRow

    cassette = tmp_path / "turns.yaml"
    flow = Flow(cassette=cassette, record="new", test_id="turns")
    with LocalModelServer() as server, flow.activate(), oai(base_url=server.openai_base_url) as client:
        with flow.agent("planner"):
            msgs: Any = [{"role": "user", "content": "Paris?"}]
            client.chat.completions.create(model=GPT, messages=msgs, tools=CHAT_TOOLS)  # a tool-call turn
        with flow.agent("writer"):
            list(client.chat.completions.create(model=GPT, messages=msgs, stream=True))  # no usage
    assert cli(["inspect", str(cassette)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].split()[1:3] == ["planner", "openai"]
    assert out[3] == '      tool call: weather {"city": "<city>", "unit": "c"}'
    assert out[4].split()[1] == "writer" and out[4].split()[6] == "no-usage"
    assert out[-1].endswith(", 1 tool calls")

    row = FlowRow.from_flow("turns", flow)
    assert [(s.tool_calls, s.usage_reported) for s in row.spans] == [(["weather"], True), ([], False)]
    svg = timeline_svg(row)
    assert svg.count('class="call tool"') == 1 and svg.count('class="tool-mark"') == 1
    assert svg.count('class="call nousage"') == 1
    assert "tool calls: weather" in svg and "usage not reported (tokens and price unknown)" in svg


def test_server_answers_500_for_an_anthropic_tool_call_without_a_json_object() -> None:
    with (
        LocalModelServer(responder=lambda request: ToolCall("run", "not json")) as server,
        claude(base_url=server.anthropic_base_url) as client,
        pytest.raises(anthropic.InternalServerError, match="tool_use input must be a JSON object"),
    ):
        client.messages.create(model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with (
        LocalModelServer(responder=lambda request: 42) as server,  # type: ignore[arg-type,return-value]
        oai(base_url=server.openai_base_url) as c,
        pytest.raises(openai.InternalServerError, match="expected str, ToolCall or a list of ToolCall"),
    ):
        c.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "x"}])
