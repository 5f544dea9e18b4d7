"""Provider adapters, SSE reassembly, body decoding and pricing; replay through the official SDKs."""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import subprocess
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import anthropic
import openai
import pytest
from packaging.version import Version
from stacks import ANTHROPIC_HTTP, OPENAI_HTTP

from pytest_agentflows import providers
from pytest_agentflows.cassette._load import Interaction, load_cassette
from pytest_agentflows.providers import (
    BodyError,
    ParsedCall,
    ProviderAdapter,
    find_adapter,
    parse_interaction,
    register_adapter,
    response_text,
)
from pytest_agentflows.providers._pricing import REFERENCE_TIME, price_time_from_date_header, price_usd
from pytest_agentflows.providers._sse import iter_events, iter_json_events, looks_like_sse

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "thirdparty"
CASSETTES = sorted(
    p for p in FIXTURES.rglob("*") if p.is_file() and p.name.endswith((".yaml", ".yml", ".json", ".yaml.gz"))
)

# ---------------------------------------------------------------------------------------------- helpers


def _req(uri: str, body: Any = None, method: str = "POST") -> dict[str, Any]:
    if isinstance(body, dict | list):
        body = json.dumps(body)
    return {"method": method, "uri": uri, "headers": {}, "body": body}


def _resp(body: Any, *, code: int = 200, headers: dict[str, list[str]] | None = None) -> dict[str, Any]:
    if isinstance(body, dict | list):
        body = json.dumps(body)
    return {"status": {"code": code, "message": "OK"}, "headers": headers or {}, "body": {"string": body}}


def _sse(*events: tuple[str | None, Any]) -> str:
    out = []
    for name, data in events:
        if name:
            out.append(f"event: {name}\n")
        out.append(f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n")
    return "".join(out)


CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"}
    ],
    "usage": {
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "total_tokens": 1100,
        "prompt_tokens_details": {"cached_tokens": 200},
    },
}
OPENAI_URL = "https://api.openai.com/v1/chat/completions"
ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"


# ------------------------------------------------------------------------------------------------- SSE


def test_sse_events_follow_the_whatwg_rules() -> None:
    body = 'event: a\r\ndata: {"x": 1}\r\n\r\n: a comment\ndata:line1\ndata: line2\n\nevent: b\rdata: tail'
    events = list(iter_events(body))
    assert [(e.event, e.data) for e in events] == [("a", '{"x": 1}'), (None, "line1\nline2"), ("b", "tail")]


def test_sse_json_events_skip_done_and_non_json() -> None:
    body = b'data: {"a": 1}\n\nevent: ping\ndata: \n\ndata: [DONE]\n\ndata: not json\n\n'
    assert list(iter_json_events(body)) == [(None, {"a": 1})]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'data: {"a": 1}\n\n', True),
        (b"\n: keep-alive\nevent: message_start\ndata: {}\n\n", True),
        (b'{"data": 1}', False),
        (b"", False),
        (b"\x00\x01binary", False),
    ],
)
def test_looks_like_sse(body: bytes, expected: bool) -> None:
    assert looks_like_sse(body) is expected


# --------------------------------------------------------------------------------------------- adapters


def test_chat_completion_usage_counts_cached_tokens_in_input() -> None:
    call = parse_interaction(
        _req(OPENAI_URL, {"model": "gpt-4o-mini"}), _resp(CHAT), agent="writer", latency_s=1.5
    )
    assert call is not None
    assert (call.provider, call.api, call.model, call.streamed) == (
        "openai",
        "openai.chat",
        "gpt-4o-mini-2024-07-18",
        False,
    )
    assert (call.agent, call.latency_s) == ("writer", 1.5)
    assert (call.usage.input_tokens, call.usage.output_tokens, call.usage.cache_read_tokens) == (
        1000,
        100,
        200,
    )
    assert call.usage.cache_write_tokens == 0
    assert call.usage.cost_usd is not None and call.usage.cost_usd > 0


def test_chat_stream_takes_usage_from_the_usage_chunk() -> None:
    chunk = {"object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18", "usage": None}
    body = _sse(
        (None, {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}),
        (None, {**chunk, "choices": [{"index": 0, "delta": {"content": "lo"}}]}),
        (None, {**chunk, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}),
        (None, "[DONE]"),
    )
    req, resp = (
        _req(OPENAI_URL, {"stream": True}),
        _resp(body, headers={"Content-Type": ["text/event-stream"]}),
    )
    call = parse_interaction(req, resp)
    assert call is not None and call.streamed
    assert (call.usage.input_tokens, call.usage.output_tokens) == (7, 2)
    assert response_text(req, resp) == "Hello"


def test_chat_stream_without_usage_is_a_call_with_unknown_price() -> None:
    chunk = {"object": "chat.completion.chunk", "model": "gpt-4o-mini"}
    body = _sse((None, {**chunk, "choices": [{"index": 0, "delta": {"content": "x"}}]}), (None, "[DONE]"))
    call = parse_interaction(_req(OPENAI_URL, {"stream": True}), _resp(body))
    assert call is not None and call.streamed
    assert (call.usage.input_tokens, call.usage.output_tokens, call.usage.cost_usd) == (0, 0, None)


def test_responses_api_non_streaming_and_streaming() -> None:
    response = {
        "object": "response",
        "model": "gpt-4o-2024-08-06",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "Paris"}]}],
        "usage": {"input_tokens": 50, "output_tokens": 5, "input_tokens_details": {"cached_tokens": 20}},
    }
    url = "https://api.openai.com/v1/responses"
    call = parse_interaction(_req(url), _resp(response))
    assert call is not None and (call.api, call.streamed) == ("openai.responses", False)
    assert (call.usage.input_tokens, call.usage.output_tokens, call.usage.cache_read_tokens) == (50, 5, 20)
    stream = _sse(
        ("response.created", {"type": "response.created", "response": {**response, "usage": None}}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "Paris"}),
        ("response.completed", {"type": "response.completed", "response": response}),
    )
    call = parse_interaction(_req(url), _resp(stream))
    assert call is not None and call.streamed
    assert (call.usage.input_tokens, call.usage.output_tokens, call.model) == (50, 5, "gpt-4o-2024-08-06")
    assert response_text(_req(url), _resp(stream)) == "Paris"


def test_anthropic_input_tokens_include_cache_writes_and_reads() -> None:
    message = {
        "type": "message",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hi"}],
        "usage": {
            "input_tokens": 10,
            "output_tokens": 20,
            "cache_creation_input_tokens": 300,
            "cache_read_input_tokens": 4000,
        },
    }
    call = parse_interaction(_req(ANTHROPIC_URL + "?beta=true"), _resp(message))
    assert call is not None and (call.provider, call.api) == ("anthropic", "anthropic.messages")
    u = call.usage
    assert (u.input_tokens, u.output_tokens, u.cache_write_tokens, u.cache_read_tokens) == (
        4310,
        20,
        300,
        4000,
    )


@pytest.mark.skipif(
    Version(importlib.metadata.version("genai-prices")) < Version("0.1.0"),
    reason="genai-prices < 0.1.0 has no 1-hour cache-write rate (it charges them at the 5-minute rate)",
)
def test_anthropic_one_hour_cache_writes_are_priced_at_their_own_rate() -> None:
    usage = {"input_tokens": 10, "output_tokens": 20, "cache_creation_input_tokens": 1000}
    five_min = {
        **usage,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 0},
    }
    one_hour = {
        **usage,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1000},
    }
    message = {"type": "message", "model": "claude-sonnet-4-5-20250929", "content": []}
    a = parse_interaction(_req(ANTHROPIC_URL), _resp({**message, "usage": five_min}))
    b = parse_interaction(_req(ANTHROPIC_URL), _resp({**message, "usage": one_hour}))
    assert a is not None and b is not None
    assert a.usage.model_dump(exclude={"cost_usd"}) == b.usage.model_dump(exclude={"cost_usd"})
    assert a.usage.cost_usd is not None and b.usage.cost_usd is not None
    assert b.usage.cost_usd > a.usage.cost_usd
    expected = price_usd(
        "anthropic",
        "claude-sonnet-4-5-20250929",
        input_tokens=1010,
        output_tokens=20,
        cache_write_tokens=1000,
        cache_write_1h_tokens=1000,
    )
    assert b.usage.cost_usd == expected


def test_anthropic_stream_message_delta_overrides_start_counts() -> None:
    start_usage = {"input_tokens": 100, "output_tokens": 1, "cache_read_input_tokens": 50}
    body = _sse(
        ("message_start", {"type": "message_start", "message": {"model": "claude-x", "usage": start_usage}}),
        (
            "content_block_delta",
            {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "A"}},
        ),
        ("ping", {"type": "ping"}),
        ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 40, "input_tokens": 180}}),
        ("message_stop", {"type": "message_stop"}),
    )
    call = parse_interaction(_req(ANTHROPIC_URL), _resp(body))
    assert call is not None and call.streamed
    # input 180 (from message_delta) + cache read 50 (kept from message_start); output the delta's total
    assert (call.usage.input_tokens, call.usage.output_tokens, call.usage.cache_read_tokens) == (230, 40, 50)


@pytest.mark.parametrize(
    ("uri", "api"),
    [
        ("http://127.0.0.1:8765/v1/chat/completions", "openai.chat"),
        (
            "https://res.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21",
            "openai.chat",
        ),
        ("https://openrouter.ai/api/v1/chat/completions", "openai.chat"),
        ("http://localhost:11434/v1/responses/", "openai.responses"),
        ("https://api.anthropic.com/v1/messages?beta=true", "anthropic.messages"),
        ("http://localhost:4000/anthropic/v1/messages", "anthropic.messages"),
    ],
)
def test_adapters_match_by_path_on_any_host(uri: str, api: str) -> None:
    adapter = find_adapter("post", uri)
    assert adapter is not None and adapter.name == api


@pytest.mark.parametrize(
    ("method", "uri"),
    [
        ("GET", "https://api.openai.com/v1/chat/completions"),
        ("POST", "https://api.openai.com/v1/conversations"),
        ("POST", "https://api.openai.com/v1/threads/t1/messages"),
        ("POST", "https://api.anthropic.com/v1/messages/count_tokens"),
        ("POST", "https://generativelanguage.googleapis.com/v1beta/models/gemini:generateContent"),
        ("GET", "https://static.example.com/image.jpg"),
    ],
)
def test_non_model_requests_are_not_matched(method: str, uri: str) -> None:
    assert find_adapter(method, uri) is None


def test_local_openai_compatible_server_is_read_as_openai_without_a_price() -> None:
    body = {**CHAT, "model": "llama3.2"}
    call = parse_interaction(_req("http://127.0.0.1:43210/v1/chat/completions"), _resp(body))
    assert call is not None and (call.provider, call.model) == ("openai", "llama3.2")
    assert call.usage.input_tokens == 1000 and call.usage.cost_usd is None


def test_non_2xx_and_error_bodies_are_not_calls() -> None:
    assert parse_interaction(_req(OPENAI_URL), _resp({"error": {"message": "bad"}}, code=400)) is None
    assert parse_interaction(_req(OPENAI_URL), _resp({"error": {"message": "bad"}})) is None
    assert parse_interaction(_req(ANTHROPIC_URL), _resp({"type": "error", "error": {}})) is None
    assert parse_interaction(_req(ANTHROPIC_URL), _resp("data: {}\n\n")) is None
    assert response_text(_req(OPENAI_URL), _resp(CHAT, code=500)) is None


def test_model_falls_back_to_the_request_model() -> None:
    body = {k: v for k, v in CHAT.items() if k != "model"}
    call = parse_interaction(_req(OPENAI_URL, {"model": "gpt-4o-mini"}), _resp(body))
    assert call is not None and call.model == "gpt-4o-mini"


# -------------------------------------------------------------------------------------- body variants


def test_body_variants_all_give_the_same_call() -> None:
    text = json.dumps(CHAT)
    expected = parse_interaction(_req(OPENAI_URL, "{}"), _resp(text))
    assert expected is not None
    variants: list[tuple[dict[str, Any], dict[str, Any]]] = [
        (_req(OPENAI_URL, b"{}"), _resp(text.encode())),
        (_req(OPENAI_URL, None), {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": text}),
        (
            _req(OPENAI_URL),
            _resp(
                gzip.compress(text.encode()), headers={"Content-Encoding": ["gzip"], "Content-Length": ["9"]}
            ),
        ),
        (
            {"method": "POST", "uri": OPENAI_URL, "headers": {}, "parsed_body": {"model": "m"}},
            {"status": {"code": 200, "message": "OK"}, "headers": {}, "parsed_body": CHAT},
        ),
        # vcrpy's old httpx format
        (_req(OPENAI_URL), {"status_code": 200, "http_version": "HTTP/1.1", "headers": {}, "content": text}),
        # header values as plain strings (langchain's serializer); gzip header kept on a decoded body
        (_req(OPENAI_URL), _resp(text, headers={"content-encoding": "gzip"})),  # type: ignore[dict-item]
    ]
    for request, response in variants:
        assert parse_interaction(request, response) == expected


def test_brotli_body_is_decoded_only_when_brotli_is_importable() -> None:
    try:
        import brotli
    except ImportError:  # left compressed: no adapter reads it, and it is not an error
        resp = _resp(b"\x1b\x00\xf8compressed", headers={"Content-Encoding": ["br"]})
        assert parse_interaction(_req(OPENAI_URL), resp) is None
    else:  # pragma: no cover - brotli is not a dependency
        resp = _resp(brotli.compress(json.dumps(CHAT).encode()), headers={"Content-Encoding": ["br"]})
        assert parse_interaction(_req(OPENAI_URL), resp) is not None


@pytest.mark.parametrize(
    ("request_dict", "response_dict", "where"),
    [
        (
            _req(OPENAI_URL),
            _resp(b"\x1f\x8b\x08\x00trunc", headers={"Content-Encoding": ["gzip"]}),
            "response.body",
        ),
        (_req(OPENAI_URL), {"headers": {}, "body": {"string": "{}"}}, "response.status"),
        (
            _req(OPENAI_URL),
            {"status": {"code": "two hundred"}, "body": {"string": ""}},
            "response.status.code",
        ),
        ({"method": "POST", "headers": {}}, _resp("{}"), "request.uri"),
        (_req(OPENAI_URL, 42), _resp("{}"), "request.body"),
        (_req(OPENAI_URL), _resp("{}", headers=["x"]), "response.headers"),  # type: ignore[arg-type]
    ],
)
def test_malformed_interactions_raise_body_error(
    request_dict: dict[str, Any], response_dict: dict[str, Any], where: str
) -> None:
    with pytest.raises(BodyError) as info:
        parse_interaction(request_dict, response_dict)
    assert info.value.where.startswith(where)
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------------------------- pricing


def test_price_matches_genai_prices_and_cache_reads_are_cheaper() -> None:
    import genai_prices

    at = datetime(2026, 5, 6, 3, 12, tzinfo=timezone.utc)
    usage = genai_prices.Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=200)
    expected = genai_prices.calc_price(usage, "gpt-4o-mini", provider_id="openai", genai_request_timestamp=at)
    got = price_usd(
        "openai", "gpt-4o-mini", input_tokens=1000, output_tokens=100, cache_read_tokens=200, at=at
    )
    assert got == float(round(expected.total_price, 10))
    uncached = price_usd("openai", "gpt-4o-mini", input_tokens=1000, output_tokens=100, at=at)
    assert uncached is not None and got is not None and got < uncached


def test_price_of_unknown_model_is_none() -> None:
    assert price_usd("openai", "no-such-model-xyz", input_tokens=10, output_tokens=1) is None
    assert price_usd("no-such-provider", "gpt-4o", input_tokens=10, output_tokens=1) is None


def test_price_provider_comes_from_the_url_first() -> None:
    kwargs: dict[str, Any] = {"input_tokens": 1000, "output_tokens": 1000}
    openrouter = price_usd(
        "openai", "deepseek/deepseek-r1", api_url="https://openrouter.ai/api/v1/chat/completions", **kwargs
    )
    assert openrouter is not None
    assert price_usd("openai", "deepseek/deepseek-r1", **kwargs) is None
    local = price_usd("openai", "gpt-4o-mini", api_url="http://127.0.0.1:9/v1/chat/completions", **kwargs)
    assert local == price_usd("openai", "gpt-4o-mini", **kwargs)


def test_call_is_priced_at_the_recorded_date_not_the_wall_clock() -> None:
    date = "Wed, 06 May 2026 03:12:57 GMT"
    call = parse_interaction(_req(OPENAI_URL), _resp(CHAT, headers={"Date": [date]}))
    assert call is not None
    at = price_time_from_date_header(date)
    assert at == datetime(2026, 5, 6, 3, 12, 57, tzinfo=timezone.utc)
    expected = price_usd(
        "openai", "gpt-4o-mini-2024-07-18", input_tokens=1000, output_tokens=100, cache_read_tokens=200, at=at
    )
    assert call.usage.cost_usd == expected
    assert price_time_from_date_header("**REDACTED**") is None
    assert price_time_from_date_header(None) is None
    assert REFERENCE_TIME.tzinfo is not None


def test_importing_the_adapters_does_not_import_genai_prices() -> None:
    code = (
        "import sys, pytest_agentflows.providers, pytest_agentflows.cassette._load;"
        "import pytest_agentflows.providers._pricing;"
        "assert 'genai_prices' not in sys.modules, 'genai_prices imported eagerly'"
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


# -------------------------------------------------------------------------------------------- registry


class _EchoAdapter:
    name = "echo.v1"
    provider = "echo"

    def matches(self, method: str, url: str, request_json: Any) -> bool:
        return url.endswith("/echo")

    def parse(self, request_json: Any, body: bytes, *, streamed: bool) -> ParsedCall | None:
        data = json.loads(body)
        return ParsedCall(
            model=data["model"], input_tokens=data["in"], output_tokens=data["out"], text="echo"
        )


def test_register_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "_ADAPTERS", list(providers.adapters()))
    adapter = _EchoAdapter()
    assert isinstance(adapter, ProviderAdapter)
    register_adapter(adapter)
    assert providers.adapters()[0] is adapter
    req, resp = _req("http://localhost/echo"), _resp({"model": "e1", "in": 3, "out": 4})
    call = parse_interaction(req, resp)
    assert call is not None and (call.provider, call.api, call.model, call.usage.total_tokens) == (
        "echo",
        "echo.v1",
        "e1",
        7,
    )
    assert call.usage.cost_usd is None
    assert response_text(req, resp) == "echo"
    with pytest.raises(TypeError):
        register_adapter(object())  # type: ignore[arg-type]


# ------------------------------------------------------------------ replay through the official SDKs

_DROP = {"content-encoding", "content-length", "transfer-encoding"}


def _sdk_usage(it: Interaction) -> tuple[str | None, tuple[int, int, int, int] | None]:
    """Serve the recorded response to the official SDK; return its model and usage in ledger terms."""
    assert it.call is not None
    stack = ANTHROPIC_HTTP if it.call.api.startswith("anthropic") else OPENAI_HTTP  # what the SDK sends with
    sent: list[Any] = []
    with stack.Client(
        transport=stack.MockTransport(lambda request: _serve(stack, it, request, sent))
    ) as http:
        result = _ask_sdk(it, http)
    path = urlsplit(it.uri).path.rstrip("/")
    assert len(sent) == 1 and sent[0].url.path.rstrip("/") == path
    return result


def _serve(stack: ModuleType, it: Interaction, request: Any, sent: list[Any]) -> Any:
    """The recorded response, as the server sent it (decoded body, so no content-encoding)."""
    assert it.call is not None
    sent.append(request)
    headers = [(k, v) for k, vs in it.response["headers"].items() if k.lower() not in _DROP for v in vs]
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("content-type", "text/event-stream" if it.call.streamed else "application/json"))
    return stack.Response(it.status, headers=headers, content=it.response_body)


def _ask_sdk(it: Interaction, http: Any) -> tuple[str | None, tuple[int, int, int, int] | None]:
    call = it.call
    assert call is not None
    req = it.request_json() or {}
    assert req.get("stream", False) == call.streamed, "the request's stream flag disagrees with the body"
    parts = urlsplit(it.uri)
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    model = req.get("model", "unknown")
    if call.api == "anthropic.messages":
        client = anthropic.Anthropic(
            base_url=origin + path.removesuffix("/v1/messages"),
            api_key="test",
            http_client=http,
            max_retries=0,
        )
        kwargs: dict[str, Any] = {
            "model": model,
            "max_tokens": req.get("max_tokens", 1024),
            "messages": req.get("messages", []),
        }
        with warnings.catch_warnings():  # "The model … is deprecated"
            warnings.simplefilter("ignore", DeprecationWarning)
            if call.streamed:
                with client.messages.stream(**kwargs) as stream:
                    message = stream.get_final_message()
            else:
                message = client.messages.create(**kwargs)
        u = message.usage
        write, read = u.cache_creation_input_tokens or 0, u.cache_read_input_tokens or 0
        result = message.model, (u.input_tokens + write + read, u.output_tokens, read, write)
    elif call.api == "openai.responses":
        client_oa = openai.OpenAI(
            base_url=origin + path.removesuffix("/responses"), api_key="test", http_client=http, max_retries=0
        )
        if call.streamed:
            final = None
            for event in client_oa.responses.create(model=model, input=req.get("input", ""), stream=True):
                if event.type in ("response.completed", "response.incomplete", "response.failed"):
                    final = event.response
            assert final is not None
            response = final
        else:
            response = client_oa.responses.create(model=model, input=req.get("input", ""))
        ru = response.usage
        assert ru is not None
        cached = ru.input_tokens_details.cached_tokens if ru.input_tokens_details else 0
        result = response.model, (ru.input_tokens, ru.output_tokens, cached or 0, 0)
    else:
        client_oa = openai.OpenAI(
            base_url=origin + path.removesuffix("/chat/completions"),
            api_key="test",
            http_client=http,
            max_retries=0,
        )
        messages = req.get("messages", [])
        if call.streamed:
            usage, chunk_model = None, None
            for chunk in client_oa.chat.completions.create(model=model, messages=messages, stream=True):
                chunk_model = chunk_model or chunk.model or None
                usage = chunk.usage or usage
            got_model: str | None = chunk_model
        else:
            completion = client_oa.chat.completions.create(model=model, messages=messages)
            usage, got_model = completion.usage, completion.model
        if usage is None:
            return got_model, None
        details = usage.prompt_tokens_details
        cached = (details.cached_tokens if details else 0) or 0
        result = got_model, (usage.prompt_tokens, usage.completion_tokens, cached, 0)
    return result


@pytest.mark.parametrize("path", CASSETTES, ids=[p.name for p in CASSETTES])
def test_official_sdks_parse_the_same_usage_as_the_ledger(path: Path) -> None:
    cassette = load_cassette(path)
    for it in cassette.interactions:
        if it.call is None:
            continue
        model, usage = _sdk_usage(it)
        u = it.call.usage
        assert usage == (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens), it.index
        assert model == it.call.model, it.index


def test_fixture_set_covers_every_api_and_streaming_mode() -> None:
    seen = {(c.api, c.streamed) for p in CASSETTES for c in load_cassette(p).calls}
    apis = ("openai.chat", "openai.responses", "anthropic.messages")
    assert seen == {(api, streamed) for api in apis for streamed in (False, True)}


def test_an_interaction_already_in_normal_form_is_taken_as_it_is_and_others_are_normalised() -> None:
    """A replayed interaction is stored in normal form: the ledger reads it without copying it again.

    Anything else (a compressed body, a lower-case method, a text body, a header given as one string)
    still goes through the normalisation, and both give the same call.
    """
    from pytest_agentflows.providers._body import normalise_request, normalise_response

    body = json.dumps({"model": "gpt-4o-mini", "choices": [{"message": {"content": "hi"}}]}).encode()
    stored_response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {"Content-Type": ["application/json"]},
        "body": {"string": body},
        "agentflows": {"agent": "writer", "latency_s": 0.5},
    }
    stored_request = {"method": "POST", "uri": OPENAI_URL, "headers": {}, "body": b"{}"}
    assert normalise_response(stored_response) is stored_response
    assert normalise_request(stored_request) is stored_request

    gzipped = {
        **stored_response,
        "headers": {"Content-Type": ["application/json"], "Content-Encoding": ["gzip"]},
        "body": {"string": gzip.compress(body)},
    }
    decoded = normalise_response(gzipped)
    assert decoded is not gzipped
    assert decoded["body"]["string"] == body
    assert "Content-Encoding" not in decoded["headers"]
    for variant in (
        {**stored_request, "method": "post"},
        {**stored_request, "body": "{}"},
        {**stored_request, "headers": {"Content-Type": "application/json"}},
    ):
        normal = normalise_request(variant)
        assert normal is not variant
        assert (normal["method"], normal["body"]) == ("POST", b"{}")
    one_string = {**stored_response, "headers": {"Content-Type": "application/json"}}
    assert normalise_response(one_string) is not one_string
    assert normalise_response(one_string)["headers"] == {"Content-Type": ["application/json"]}
    calls = [
        providers.call_from_normalised(normalise_request(stored_request), normalise_response(r))
        for r in (stored_response, gzipped, one_string)
    ]
    assert calls[0] is not None and calls[0].output_text == "hi"
    assert calls[0] == calls[1] == calls[2]
