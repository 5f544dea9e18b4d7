"""Tool calls and message content: parsing for the three wire APIs, streamed and not, and real cassettes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_agentflows import Flow, Message, ToolCall, UsageError
from pytest_agentflows.cassette._load import load_cassette
from pytest_agentflows.cassette._recorder import Exchange
from pytest_agentflows.cassette._redact import Redactor
from pytest_agentflows.providers import parse_interaction

TOOL_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "toolcalls"
TOOL_CASSETTES = sorted(p for p in TOOL_FIXTURES.rglob("*.yaml") if p.is_file())

CHAT_URL = "https://api.openai.com/v1/chat/completions"
RESPONSES_URL = "https://api.openai.com/v1/responses"
MESSAGES_URL = "https://api.anthropic.com/v1/messages"


def _req(uri: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"method": "POST", "uri": uri, "headers": {}, "body": json.dumps(body)}


def _resp(body: Any, *, stream: bool = False) -> dict[str, Any]:
    if not isinstance(body, str):
        body = json.dumps(body)
    headers = {"content-type": ["text/event-stream" if stream else "application/json"]}
    return {"status": {"code": 200, "message": "OK"}, "headers": headers, "body": {"string": body}}


def _sse(*events: tuple[str | None, Any]) -> str:
    out = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {payload}\n\n")
    return "".join(out)


# ------------------------------------------------------------------------------------ chat completions
CHAT_REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You plan trips."},
        {"role": "user", "content": "Weather in Paris and Tokyo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "sunny"}]},
    ],
}
CHAT_TOOL_CALLS = [
    {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
    {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Tokyo"}'}},
]


def test_chat_completion_parallel_tool_calls_and_input_messages() -> None:
    body = {
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": CHAT_TOOL_CALLS},
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 12},
    }
    call = parse_interaction(_req(CHAT_URL, CHAT_REQUEST), _resp(body), agent="planner")
    assert call is not None
    assert call.tool_calls == [
        ToolCall("weather", {"city": "Paris"}, "call_a", "planner"),
        ToolCall("weather", {"city": "Tokyo"}, "call_b", "planner"),
    ]
    assert (call.finish_reason, call.output_text, call.usage_reported) == ("tool_calls", "", True)
    assert call.input_messages == [
        Message("system", "You plan trips."),
        Message("user", "Weather in Paris and Tokyo?"),
        Message("assistant", ""),
        Message("tool", "sunny"),
    ]
    assert call.input_text == "You plan trips.\nWeather in Paris and Tokyo?\n\nsunny"


def test_chat_stream_joins_tool_call_fragments_per_index() -> None:
    chunk = {"object": "chat.completion.chunk", "model": "gpt-4o-mini"}

    def delta(d: dict[str, Any], finish: str | None = None) -> tuple[None, dict[str, Any]]:
        return (None, {**chunk, "choices": [{"index": 0, "delta": d, "finish_reason": finish}]})

    frag = [
        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": ""}},
        {"index": 1, "id": "call_b", "type": "function", "function": {"name": "lookup", "arguments": ""}},
    ]
    body = _sse(
        delta({"role": "assistant", "content": None}),
        delta({"tool_calls": [frag[0]]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        delta({"tool_calls": [frag[1]]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]}),
        delta({"tool_calls": [{"index": 1, "function": {"arguments": "not json"}}]}),
        delta({}, "tool_calls"),
        (None, "[DONE]"),
    )
    call = parse_interaction(_req(CHAT_URL, {**CHAT_REQUEST, "stream": True}), _resp(body, stream=True))
    assert call is not None and call.streamed
    assert call.tool_calls == [
        ToolCall("weather", {"city": "Paris"}, "call_a"),
        ToolCall("lookup", "not json", "call_b"),
    ]
    assert call.finish_reason == "tool_calls"
    # a chat stream without stream_options.include_usage reports no usage
    assert call.usage_reported is False and call.usage.cost_usd is None


# ------------------------------------------------------------------------------------------- responses
RESPONSES_REQUEST = {
    "model": "gpt-4o",
    "instructions": "Answer with tools.",
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Capital of France?"}]},
        {"type": "function_call", "call_id": "call_0", "name": "lookup", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_0", "output": "France: Paris"},
    ],
}
FUNCTION_ITEM = {
    "type": "function_call",
    "id": "fc_1",
    "call_id": "call_1",
    "name": "get_capital",
    "arguments": '{"country": "France"}',
    "status": "completed",
}
RESPONSE = {
    "object": "response",
    "model": "gpt-4o-2024-08-06",
    "status": "completed",
    "output": [FUNCTION_ITEM],
    "usage": {"input_tokens": 40, "output_tokens": 9},
}


def test_responses_function_calls_streamed_and_not() -> None:
    expected = [ToolCall("get_capital", {"country": "France"}, "call_1", "geo")]
    messages = [
        Message("system", "Answer with tools."),
        Message("user", "Capital of France?"),
        Message("tool", "France: Paris"),
    ]
    call = parse_interaction(_req(RESPONSES_URL, RESPONSES_REQUEST), _resp(RESPONSE), agent="geo")
    assert call is not None
    assert (call.tool_calls, call.finish_reason, call.input_messages) == (expected, "tool_calls", messages)
    stream = _sse(
        (
            "response.created",
            {"type": "response.created", "response": {**RESPONSE, "output": [], "usage": None}},
        ),
        ("response.output_item.added", {"type": "response.output_item.added", "item": FUNCTION_ITEM}),
        ("response.function_call_arguments.delta", {"type": "response.function_call_arguments.delta"}),
        ("response.output_item.done", {"type": "response.output_item.done", "item": FUNCTION_ITEM}),
        ("response.completed", {"type": "response.completed", "response": RESPONSE}),
    )
    call = parse_interaction(
        _req(RESPONSES_URL, {**RESPONSES_REQUEST, "stream": True}), _resp(stream, stream=True), agent="geo"
    )
    assert call is not None and call.streamed
    assert (call.tool_calls, call.finish_reason, call.input_messages) == (expected, "tool_calls", messages)


def test_responses_finish_reason_is_stop_or_the_incomplete_reason() -> None:
    text_item = {"type": "message", "content": [{"type": "output_text", "text": "Paris"}]}
    done = {**RESPONSE, "output": [text_item]}
    call = parse_interaction(_req(RESPONSES_URL, {"model": "m", "input": "hi"}), _resp(done))
    assert call is not None
    assert (call.finish_reason, call.output_text, call.tool_calls) == ("stop", "Paris", [])
    assert call.input_messages == [Message("user", "hi")]
    cut = {**done, "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    call = parse_interaction(_req(RESPONSES_URL, {"model": "m", "input": "hi"}), _resp(cut))
    assert call is not None and call.finish_reason == "max_output_tokens"


# --------------------------------------------------------------------------------------------- anthropic
ANTHROPIC_REQUEST = {
    "model": "claude-sonnet-4-5",
    "system": [{"type": "text", "text": "You are a travel agent."}],
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_0", "name": "weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_0", "content": "18 C"},
                {"type": "text", "text": "And Rome?"},
            ],
        },
    ],
}
ANTHROPIC_MESSAGES = [
    Message("system", "You are a travel agent."),
    Message("user", "Weather in Paris?"),
    Message("assistant", "Checking."),
    Message("tool", "18 C"),
    Message("user", "And Rome?"),
]


def test_anthropic_tool_use_blocks_and_tool_results_streamed_and_not() -> None:
    message = {
        "type": "message",
        "model": "claude-sonnet-4-5-20250929",
        "content": [
            {"type": "text", "text": "Both at once."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Rome"}},
            {"type": "tool_use", "id": "toolu_2", "name": "clock", "input": {}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 80, "output_tokens": 20},
    }
    expected = [ToolCall("weather", {"city": "Rome"}, "toolu_1"), ToolCall("clock", {}, "toolu_2")]
    call = parse_interaction(_req(MESSAGES_URL, ANTHROPIC_REQUEST), _resp(message))
    assert call is not None
    assert (call.tool_calls, call.finish_reason, call.output_text) == (expected, "tool_use", "Both at once.")
    assert call.input_messages == ANTHROPIC_MESSAGES

    def block_delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    start = {**message, "content": [], "stop_reason": None}
    stream = _sse(
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        block_delta(0, {"type": "text_delta", "text": "Both at once."}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
            },
        ),
        block_delta(1, {"type": "input_json_delta", "partial_json": '{"ci'}),
        block_delta(1, {"type": "input_json_delta", "partial_json": 'ty": "Rome"}'}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "tool_use", "id": "toolu_2", "name": "clock", "input": {}},
            },
        ),
        block_delta(2, {"type": "input_json_delta", "partial_json": ""}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 20}},
        ),
        ("message_stop", {"type": "message_stop"}),
    )
    call = parse_interaction(
        _req(MESSAGES_URL, {**ANTHROPIC_REQUEST, "stream": True}), _resp(stream, stream=True)
    )
    assert call is not None and call.streamed
    assert (call.tool_calls, call.finish_reason, call.output_text) == (expected, "tool_use", "Both at once.")
    assert call.input_messages == ANTHROPIC_MESSAGES


# ------------------------------------------------------------------------------------------- redaction
def test_message_content_and_arguments_are_scrubbed_like_cassettes() -> None:
    secret = "sk-test-0123456789abcdef"
    redactor = Redactor(body_keys=["password"], environ={"MY_API_KEY": secret})
    request = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"use key {secret}"}],
    }
    tool_calls = [
        {
            "id": "c",
            "type": "function",
            "function": {
                "name": "login",
                "arguments": json.dumps({"user": "ann", "password": "hunter22", "k": secret}),
            },
        }
    ]
    body = {
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"content": f"ok {secret}", "tool_calls": tool_calls},
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
    }
    call = parse_interaction(_req(CHAT_URL, request), _resp(body), scrub=redactor.scrub_data)
    assert call is not None
    assert call.input_text == "use key <REDACTED:MY_API_KEY>"
    assert call.output_text == "ok <REDACTED:MY_API_KEY>"
    assert call.tool_calls[0].arguments == {
        "user": "ann",
        "password": "<REDACTED>",
        "k": "<REDACTED:MY_API_KEY>",
    }
    dumped = call.model_dump_json()
    assert secret not in dumped and "hunter22" not in dumped


# ------------------------------------------------------------------------ real third-party cassettes
def _raw_interactions(path: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    data = yaml.safe_load(raw)
    return [(i["request"], i["response"]) for i in data["interactions"]]


def _body(part: dict[str, Any]) -> Any:
    """The body of a raw request/response: pydantic-ai's ``parsed_body``, vcrpy's ``body``/``string``."""
    if "parsed_body" in part:
        return part["parsed_body"]
    body = part.get("body")
    if isinstance(body, dict):
        body = body.get("string")
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    if isinstance(body, str) and body.lstrip().startswith(("{", "[")):
        return json.loads(body)
    return body


def _data_lines(text: str) -> list[Any]:
    out = []
    for line in text.splitlines():
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            out.append(json.loads(line[5:].strip()))
    return out


def _args(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return raw
    return value if isinstance(value, dict) else raw


def _independent_tool_calls(uri: str, body: Any) -> list[tuple[str, Any]]:
    """Tool names and arguments read straight from a response body, without the package's adapters."""
    out: list[tuple[str, Any]] = []
    if isinstance(body, dict):  # JSON
        if "choices" in body:
            for tc in body["choices"][0]["message"].get("tool_calls") or []:
                out.append((tc["function"]["name"], _args(tc["function"]["arguments"])))
        elif uri.split("?")[0].endswith("/responses"):
            out += [
                (i["name"], _args(i["arguments"])) for i in body["output"] if i["type"] == "function_call"
            ]
        else:
            out += [(b["name"], _args(b["input"])) for b in body["content"] if b["type"] == "tool_use"]
        return out
    events = _data_lines(body)
    if uri.split("?")[0].endswith("/chat/completions"):
        calls: dict[int, list[Any]] = {}
        for ev in events:
            for choice in ev.get("choices") or []:
                for tc in (choice.get("delta") or {}).get("tool_calls") or []:
                    entry = calls.setdefault(tc["index"], ["", ""])
                    entry[0] = entry[0] or (tc.get("function") or {}).get("name") or ""
                    entry[1] += (tc.get("function") or {}).get("arguments") or ""
        return [(name, _args(args)) for name, args in (calls[i] for i in sorted(calls))]
    if uri.split("?")[0].endswith("/responses"):
        final = [e["response"] for e in events if e.get("type") == "response.completed"][-1]
        return [(i["name"], _args(i["arguments"])) for i in final["output"] if i["type"] == "function_call"]
    blocks: dict[int, list[Any]] = {}
    for ev in events:
        if ev.get("type") == "content_block_start" and ev["content_block"]["type"] == "tool_use":
            blocks[ev["index"]] = [ev["content_block"]["name"], ""]
        elif ev.get("type") == "content_block_delta" and ev["delta"]["type"] == "input_json_delta":
            blocks[ev["index"]][1] += ev["delta"]["partial_json"]
    return [(name, _args(args)) for name, args in (blocks[i] for i in sorted(blocks))]


def _is_model_call(request: dict[str, Any], response: dict[str, Any]) -> bool:
    path = request["uri"].split("?")[0]
    code = response.get("status", {}).get("code", 200)
    return 200 <= code < 300 and path.endswith(("/chat/completions", "/responses", "/v1/messages"))


@pytest.mark.parametrize("path", TOOL_CASSETTES, ids=lambda p: str(p.relative_to(TOOL_FIXTURES)))
def test_real_cassettes_yield_the_tool_calls_of_their_response_bodies(path: Path) -> None:
    expected = [
        _independent_tool_calls(req["uri"], _body(resp))
        for req, resp in _raw_interactions(path)
        if _is_model_call(req, resp)
    ]
    calls = load_cassette(path).calls
    assert [[(t.name, t.arguments) for t in call.tool_calls] for call in calls] == expected
    assert any(expected), "every cassette in fixtures/toolcalls holds at least one tool call"
    for call in calls:
        assert (call.finish_reason in ("tool_calls", "tool_use")) == bool(
            call.tool_calls
        ) or call.finish_reason is None


def test_real_cassettes_hold_68_tool_calls_from_crewai_and_pydantic_ai() -> None:
    counts: dict[str, int] = {}
    for path in TOOL_CASSETTES:
        owner = path.relative_to(TOOL_FIXTURES).parts[0]
        counts[owner] = counts.get(owner, 0) + sum(len(c.tool_calls) for c in load_cassette(path).calls)
    assert sum(counts.values()) == 68
    assert set(counts) == {"crewAIInc__crewAI", "pydantic__pydantic-ai"}


def test_tool_results_reach_the_next_calls_input_messages_in_a_real_cassette() -> None:
    path = (
        TOOL_FIXTURES
        / "crewAIInc__crewAI/lib/crewai/tests/cassettes/llms/anthropic/test_anthropic_function_calling.yaml"
    )
    first, second = load_cassette(path).calls
    assert [t.name for t in first.tool_calls] == ["get_weather"]
    tools = [m for m in second.input_messages if m.role == "tool"]
    assert len(tools) == 1 and tools[0].text
    assert tools[0].text in second.input_text


# ----------------------------------------------------------------------------- the flow's tool-call API
def _chat_exchange(agent: str | None, calls: list[tuple[str, Any]], *, prompt: str = "go") -> Exchange:
    tool_calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
        for i, (n, a) in enumerate(calls)
    ]
    body = {
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None if calls else "done",
                    "tool_calls": tool_calls or None,
                },
                "finish_reason": "tool_calls" if calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
    }
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}
    return Exchange(request=_req(CHAT_URL, request), response=_resp(body), agent=agent, latency_s=1.0)


def _flow(*exchanges: Exchange) -> Flow:
    flow = Flow(test_id="test_trip")
    for exchange in exchanges:
        flow.on_exchange(exchange)
    return flow


TRIP = (
    _chat_exchange("planner", [("search", {"q": "Rome", "n": 3}), ("weather", {"city": "Rome"})]),
    _chat_exchange("booker", [("book", {"hotel": "H1"})], prompt="Rome is sunny; book H1"),
    _chat_exchange("planner", []),
)


def test_flow_tool_calls_calls_of_and_tool_call_decisions() -> None:
    flow = _flow(*TRIP)
    assert [(t.agent, t.name, t.arguments) for t in flow.tool_calls] == [
        ("planner", "search", {"q": "Rome", "n": 3}),
        ("planner", "weather", {"city": "Rome"}),
        ("booker", "book", {"hotel": "H1"}),
    ]
    assert [c.finish_reason for c in flow.calls_of("planner")] == ["tool_calls", "stop"]
    assert flow.calls_of("booker")[0].input_text == "Rome is sunny; book H1"
    assert flow.calls_of(None) == []
    kinds = [(d.kind, d.agent, d.fields().get("tool")) for d in flow.decisions]
    assert kinds == [
        ("model_call", "planner", None),
        ("tool_call", "planner", "search"),
        ("tool_call", "planner", "weather"),
        ("model_call", "booker", None),
        ("tool_call", "booker", "book"),
        ("model_call", "planner", None),
    ]
    assert flow.decisions[1].arguments == {"q": "Rome", "n": 3}


PASSING: list[tuple[list[Any], dict[str, Any]]] = [
    (["search", "weather", "book"], {}),
    ([("search", {"q": "Rome", "n": 3}), ("weather", {"city": "Rome"}), ("book", {"hotel": "H1"})], {}),
    (
        [
            ToolCall("search", {"q": "Rome", "n": 3}),
            ToolCall("weather", {"city": "Rome"}, agent="planner"),
            "book",
        ],
        {},
    ),
    (["book", "weather", "search"], {"mode": "unordered"}),
    (["search", "weather", "book", "cancel"], {"mode": "subset"}),
    (["book", "search"], {"mode": "superset"}),
    ([("search", {"q": "x"}), ("weather", {}), ("book", {})], {"args": "ignore"}),
    ([("search", {"q": "Rome", "n": 3, "lang": "it"}), "weather", "book"], {"args": "subset"}),
    ([("search", {"q": "Rome"}), "weather", "book"], {"args": "superset"}),
    (["search", "weather"], {"agent": "planner"}),
    ([("book", {"hotel": "H1"})], {"agent": "booker"}),
]


@pytest.mark.parametrize(("expected", "options"), PASSING)
def test_assert_tool_calls_passes(expected: list[Any], options: dict[str, Any]) -> None:
    _flow(*TRIP).assert_tool_calls(expected, **options)


FAILING: list[tuple[list[Any], dict[str, Any], str]] = [
    (["weather", "search", "book"], {}, "call 1: expected weather (any arguments), got search"),
    (["search", "weather"], {}, "1 call(s) more than expected, from: book"),
    (["search", "weather", "book", "cancel"], {}, "1 expected call(s) never made, from: cancel"),
    ([("search", {"q": "Rome"}), "weather", "book"], {}, 'expected search {"q": "Rome"}, got search {"n": 3'),
    (["book", "weather"], {"mode": "unordered"}, "called but not expected: search"),
    (["book", "weather", "search", "cancel"], {"mode": "unordered"}, "expected but not called: cancel"),
    (["search", "book"], {"mode": "subset"}, "called but not expected: weather"),
    (["search", "cancel"], {"mode": "superset"}, "expected but not called: cancel (any arguments)"),
    ([("search", {"q": "Rome"}), "weather", "book"], {"args": "subset"}, 'expected search {"q": "Rome"}'),
    ([("search", {"q": "Paris"}), "weather", "book"], {"args": "superset"}, "got search"),
    ([ToolCall("search", {"q": "Rome", "n": 3}, agent="booker"), "weather", "book"], {}, "agent=booker"),
    (["book"], {"agent": "planner"}, "tool calls of agent 'planner' do not match"),
]


@pytest.mark.parametrize(("expected", "options", "why"), FAILING)
def test_assert_tool_calls_fails_with_expected_vs_actual_per_agent(
    expected: list[Any], options: dict[str, Any], why: str
) -> None:
    with pytest.raises(AssertionError) as info:
        _flow(*TRIP).assert_tool_calls(expected, **options)
    message = str(info.value)
    assert why in message
    assert message.startswith("test_trip: tool calls of ")
    assert f"expected ({len(expected)}):" in message
    assert "actual, per agent:" in message
    if "agent" not in options:
        assert (
            '  planner (2):\n    1. search {"n": 3, "q": "Rome"}\n    2. weather {"city": "Rome"}' in message
        )
        assert '  booker (1):\n    1. book {"hotel": "H1"}' in message


def test_assert_tool_calls_rejects_unknown_modes_and_shapes() -> None:
    flow = _flow(*TRIP)
    with pytest.raises(UsageError, match=r"mode='ordered'.*strict, unordered, subset, superset"):
        flow.assert_tool_calls(["search"], mode="ordered")
    with pytest.raises(UsageError, match=r"args='loose'.*exact, ignore, subset, superset"):
        flow.assert_tool_calls(["search"], args="loose")
    with pytest.raises(UsageError, match="expected item 1 is 42"):
        flow.assert_tool_calls(["search", 42])  # type: ignore[list-item]
    with pytest.raises(UsageError, match="takes a list of expected calls"):
        flow.assert_tool_calls("search")


def test_arguments_that_are_not_json_match_only_an_equal_string() -> None:
    exchange = _chat_exchange("a", [("run", {})])
    exchange.response["body"]["string"] = exchange.response["body"]["string"].replace('"{}"', '"not json"')
    flow = _flow(exchange)
    assert flow.tool_calls[0].arguments == "not json"
    flow.assert_tool_calls([("run", "not json")], args="subset")
    with pytest.raises(AssertionError, match="run 'not json'"):
        flow.assert_tool_calls([("run", {})])


# ------------------------------------------------------------------------------------ usage not reported
def _unreported_stream(agent: str) -> Exchange:
    chunk = {"object": "chat.completion.chunk", "model": "gpt-4o-mini"}
    body = _sse((None, {**chunk, "choices": [{"index": 0, "delta": {"content": "x"}}]}), (None, "[DONE]"))
    request = _req(CHAT_URL, {"model": "gpt-4o-mini", "messages": [], "stream": True})
    return Exchange(request=request, response=_resp(body, stream=True), agent=agent, latency_s=0.5)


@pytest.mark.parametrize("caps", [{"usd": 1.0}, {"tokens": 10_000}])
def test_budget_verdict_over_a_call_without_usage_names_the_call_and_the_fix(caps: dict[str, Any]) -> None:
    flow = _flow(TRIP[0], _unreported_stream("writer"))
    assert [c.usage_reported for c in flow.calls] == [True, False]
    with pytest.raises(AssertionError) as info:
        flow.assert_within_budget(**caps)
    message = str(info.value)
    assert "1 model call(s) reported no usage" in message
    assert "call 2: agent writer, openai.chat gpt-4o-mini, streamed" in message
    assert 'stream_options={"include_usage": True}' in message
    assert "genai-prices" not in message and "the price list is not the problem" in message
    _flow(TRIP[0]).assert_within_budget(**caps)  # calls with usage: the verdict passes
