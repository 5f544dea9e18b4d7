"""Tests of the deterministic local model server against the real OpenAI and Anthropic SDKs."""

from __future__ import annotations

import asyncio
import http.client
import inspect
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from pytest_agentflows.model_server import (
    FIXED_CREATED,
    REVIEW_CRITIQUE,
    TOKENS_PER_MESSAGE,
    LocalModelServer,
    Request,
    count_input_tokens,
    count_output_tokens,
    default_responder,
)

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"

# "be brief" (2 words) + "Hello there, dear friend" (4 words), each + TOKENS_PER_MESSAGE.
SYSTEM = "be brief"
USER = "Hello there, dear friend"
INPUT_TOKENS = (2 + TOKENS_PER_MESSAGE) + (4 + TOKENS_PER_MESSAGE)


def echo(model: str) -> str:
    return f"[{model}] reply to: {USER}"


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture(autouse=True)
def _close_loop_leaked_by_looptime(request: pytest.FixtureRequest) -> Iterator[None]:
    """Closes the event loop that looptime's ``pytest_pyfunc_call`` creates in *sync* tests.

    pytest-asyncio 1.x makes ``event_loop_policy`` an autouse fixture; looptime (a project dependency) then
    calls ``policy.get_event_loop()`` for every test, which in a sync test creates a loop nobody closes. The
    next async test replaces it and the garbage collector reports ``ResourceWarning: unclosed event loop``,
    an error under ``filterwarnings = error``. Harmless once the project closes that loop globally.
    """
    yield
    if inspect.iscoroutinefunction(request.function):
        return
    policy = asyncio.get_event_loop_policy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = policy.get_event_loop()
        except RuntimeError:
            return
    if not loop.is_running() and not loop.is_closed():
        loop.close()
        policy.set_event_loop(None)


@pytest.fixture
def server() -> Iterator[LocalModelServer]:
    with LocalModelServer() as srv:
        yield srv


@pytest.fixture
def oai(server: LocalModelServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
def ant(server: LocalModelServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0) as client:
        yield client


def chat_messages() -> list[Any]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]


def post(
    srv: LocalModelServer, path: str, body: bytes | dict[str, Any], **headers: str
) -> tuple[int, Any, bytes]:
    """A raw POST with the standard library: status, headers, body bytes (chunked bodies decoded)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", path, body=data, headers={"Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    events = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name, data = None, ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = line[len("data: ") :]
        events.append((name, data))
    return events


# -- default responder and counting -------------------------------------------------------------------------


def make_request(user: str, system: str = "", model: str = GPT) -> Request:
    messages = [("user", user)]
    return Request(
        api="openai.chat", model=model, system=system, messages=messages, last_user_text=user, json={}
    )


@pytest.mark.parametrize(
    ("system", "user", "expected"),
    [
        ("You are a strict reviewer.", "Revision 2: the plan, now with examples.", "APPROVED"),
        ("Review the draft.", "Here is the REVISED draft", "APPROVED"),
        ("You are a reviewer.", "First draft: we should ship it.", REVIEW_CRITIQUE),
        ("", "Classify this ticket: I was charged twice on my invoice", "billing"),
        ("You route support tickets.", "The app crashes with an error at login", "technical"),
        ("Routing agent", "Where is your office?", "general"),
        ("", "classify: billing or technical? the server shows an error", "technical"),
        ("", "classify: billing, technical", "billing"),  # tie -> earlier label
        ("", "Hello   there\n\tfriend", f"[{GPT}] reply to: Hello there friend"),
        ("", "x" * 100, f"[{GPT}] reply to: {'x' * 60}"),
        ("Be helpful", "", f"[{GPT}] reply to: "),
    ],
)
def test_default_responder_rules(system: str, user: str, expected: str) -> None:
    assert default_responder(make_request(user, system)) == expected


def test_counting_rules() -> None:
    request = Request(
        api="anthropic.messages",
        model=CLAUDE,
        system="one two three",
        messages=[("user", "a b"), ("assistant", ""), ("user", "c")],
        last_user_text="c",
        json={},
    )
    assert count_input_tokens(request) == (3 + 3) + (2 + 3) + (0 + 3) + (1 + 3)
    assert count_input_tokens(make_request("a b c")) == 3 + 3  # no system prompt: nothing added for it
    assert count_output_tokens("  APPROVED  ") == 1
    assert count_output_tokens("") == 0


# -- OpenAI Chat Completions ---------------------------------------------------------------------------------


def test_chat_completion(server: LocalModelServer, oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(model=GPT, messages=chat_messages())
    completion = raw.parse()
    assert completion.choices[0].message.content == echo(GPT)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.created == FIXED_CREATED
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == INPUT_TOKENS
    assert completion.usage.completion_tokens == words(echo(GPT))
    assert completion.usage.total_tokens == INPUT_TOKENS + words(echo(GPT))
    # Strict validation, not only the SDK's lenient construction.
    ChatCompletion.model_validate_json(raw.http_response.content)
    assert raw.headers["x-request-id"].startswith("req_local_")
    assert raw.headers["content-length"] == str(len(raw.http_response.content))
    assert raw.headers["content-type"] == "application/json"
    assert server.requests[-1].api == "openai.chat"


def test_chat_stream_with_usage(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model=GPT, messages=chat_messages(), stream=True, stream_options={"include_usage": True}
    )
    with stream:
        chunks = list(stream)
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == echo(GPT)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == INPUT_TOKENS
    assert chunks[-1].usage.completion_tokens == words(echo(GPT))
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_stream_without_usage_and_helper(oai: openai.OpenAI) -> None:
    with oai.chat.completions.create(model=GPT, messages=chat_messages(), stream=True) as stream:
        chunks = list(stream)
    assert all(c.usage is None and c.choices for c in chunks)
    with oai.chat.completions.stream(
        model=GPT, messages=chat_messages(), stream_options={"include_usage": True}
    ) as helper:
        final = helper.get_final_completion()
    assert final.choices[0].message.content == echo(GPT)
    assert final.usage is not None and final.usage.total_tokens == INPUT_TOKENS + words(echo(GPT))


def test_chat_request_parsing(server: LocalModelServer, oai: openai.OpenAI) -> None:
    oai.chat.completions.create(
        model=GPT,
        messages=[
            {"role": "developer", "content": "rule one"},
            {"role": "system", "content": [{"type": "text", "text": "rule two"}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": "part a"}, {"type": "text", "text": "part b"}],
            },
            {"role": "assistant", "content": "an answer"},
            {"role": "tool", "tool_call_id": "call_1", "content": "tool output"},
        ],
    )
    request = server.requests[-1]
    assert request.system == "rule one\nrule two"
    assert request.messages == [
        ("user", "part a\npart b"),
        ("assistant", "an answer"),
        ("tool", "tool output"),
    ]
    assert request.last_user_text == "part a\npart b"
    assert request.json["model"] == GPT
    assert not request.stream


# -- OpenAI Responses ----------------------------------------------------------------------------------------


def test_responses_create(server: LocalModelServer, oai: openai.OpenAI) -> None:
    raw = oai.responses.with_raw_response.create(model=GPT, instructions=SYSTEM, input=USER)
    response = raw.parse()
    assert response.output_text == echo(GPT)
    assert response.status == "completed"
    assert response.created_at == FIXED_CREATED
    assert response.usage is not None
    assert response.usage.input_tokens == INPUT_TOKENS
    assert response.usage.output_tokens == words(echo(GPT))
    assert response.usage.total_tokens == INPUT_TOKENS + words(echo(GPT))
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    Response.model_validate_json(raw.http_response.content)
    assert server.requests[-1].system == SYSTEM


def test_responses_stream(oai: openai.OpenAI) -> None:
    with oai.responses.create(model=GPT, instructions=SYSTEM, input=USER, stream=True) as stream:
        events = list(stream)
    adapter: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
    for event in events:
        adapter.validate_python(event.model_dump())
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == echo(GPT)
    assert len(deltas) == words(echo(GPT))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == echo(GPT)
    assert completed.response.usage is not None
    assert completed.response.usage.input_tokens == INPUT_TOKENS
    assert completed.response.usage.output_tokens == words(echo(GPT))


def test_responses_stream_helper_and_parsing(server: LocalModelServer, oai: openai.OpenAI) -> None:
    with oai.responses.stream(
        model=GPT,
        input=[
            {"role": "developer", "content": SYSTEM},
            {"role": "user", "content": [{"type": "input_text", "text": USER}]},
            {"type": "function_call_output", "call_id": "call_1", "output": "42"},
        ],
    ) as stream:
        final = stream.get_final_response()
    assert final.output_text == echo(GPT)
    request = server.requests[-1]
    assert request.api == "openai.responses" and request.stream
    assert request.system == SYSTEM
    assert request.messages == [("user", USER), ("tool", "42")]
    assert final.usage is not None and final.usage.input_tokens == INPUT_TOKENS + 1 + TOKENS_PER_MESSAGE


# -- Anthropic Messages --------------------------------------------------------------------------------------


def test_messages_create(server: LocalModelServer, ant: anthropic.Anthropic) -> None:
    raw = ant.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=100, system=SYSTEM, messages=[{"role": "user", "content": USER}]
    )
    message = raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == echo(CLAUDE)
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == INPUT_TOKENS
    assert message.usage.output_tokens == words(echo(CLAUDE))
    assert message.usage.cache_read_input_tokens == 0
    Message.model_validate_json(raw.http_response.content)
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    assert server.requests[-1].api == "anthropic.messages"


def test_messages_stream(ant: anthropic.Anthropic) -> None:
    stream = ant.messages.create(
        model=CLAUDE, max_tokens=100, system=SYSTEM, messages=[{"role": "user", "content": USER}], stream=True
    )
    with stream:
        events = list(stream)
    adapter: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)
    for event in events:
        adapter.validate_python(event.model_dump())
    types = [e.type for e in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = events[0]
    assert start.type == "message_start"
    assert start.message.usage.input_tokens == INPUT_TOKENS
    assert start.message.usage.output_tokens == 1
    text = "".join(
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == echo(CLAUDE)
    delta = events[-2]
    assert delta.type == "message_delta"
    assert delta.usage.output_tokens == words(echo(CLAUDE))
    assert delta.delta.stop_reason == "end_turn"


def test_messages_stream_helper_and_parsing(server: LocalModelServer, ant: anthropic.Anthropic) -> None:
    with ant.messages.stream(
        model=CLAUDE,
        max_tokens=100,
        system=[{"type": "text", "text": SYSTEM}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "earlier question"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_1", "name": "f", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "tu_1", "content": "result text"},
                    {"type": "text", "text": USER},
                ],
            },
        ],
    ) as stream:
        final = stream.get_final_message()
    assert (
        final.content[0].type == "text"
        and final.content[0].text == f"[{CLAUDE}] reply to: result text {USER}"
    )
    request = server.requests[-1]
    assert request.system == SYSTEM
    assert request.messages == [
        ("user", "earlier question"),
        ("assistant", ""),
        ("user", f"result text\n{USER}"),
    ]
    expected_input = (2 + 3) + (2 + 3) + (0 + 3) + (words(USER) + 2 + 3)
    assert final.usage.input_tokens == expected_input
    assert final.usage.output_tokens == words(final.content[0].text)


# -- async clients -------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_openai_chat_and_responses(server: LocalModelServer) -> None:
    async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0) as client:
        completion = await client.chat.completions.create(model=GPT, messages=chat_messages())
        assert completion.choices[0].message.content == echo(GPT)
        assert completion.usage is not None and completion.usage.prompt_tokens == INPUT_TOKENS

        stream = await client.chat.completions.create(
            model=GPT, messages=chat_messages(), stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == echo(GPT)
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == words(echo(GPT))

        response = await client.responses.create(model=GPT, instructions=SYSTEM, input=USER)
        assert response.output_text == echo(GPT)
        assert response.usage is not None and response.usage.input_tokens == INPUT_TOKENS

        events = [e async for e in await client.responses.create(model=GPT, input=USER, stream=True)]
        assert events[-1].type == "response.completed"
        assert events[-1].response.output_text == echo(GPT)

        async with client.responses.stream(model=GPT, input=USER) as helper:
            final = await helper.get_final_response()
        assert final.output_text == echo(GPT)


@pytest.mark.asyncio
async def test_async_anthropic_messages(server: LocalModelServer) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=server.anthropic_base_url, api_key="test", max_retries=0
    ) as client:
        message = await client.messages.create(
            model=CLAUDE, max_tokens=50, system=SYSTEM, messages=[{"role": "user", "content": USER}]
        )
        assert message.content[0].type == "text" and message.content[0].text == echo(CLAUDE)
        assert message.usage.input_tokens == INPUT_TOKENS

        stream = await client.messages.create(
            model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": USER}], stream=True
        )
        events = [e async for e in stream]
        assert [e.type for e in events][-1] == "message_stop"

        async with client.messages.stream(
            model=CLAUDE, max_tokens=50, system=SYSTEM, messages=[{"role": "user", "content": USER}]
        ) as helper:
            final = await helper.get_final_message()
        assert final.content[0].type == "text" and final.content[0].text == echo(CLAUDE)
        assert final.usage.output_tokens == words(echo(CLAUDE))


# -- determinism ---------------------------------------------------------------------------------------------

BODIES: list[tuple[str, dict[str, Any]]] = [
    ("/v1/chat/completions", {"model": GPT, "messages": chat_messages()}),
    (
        "/v1/chat/completions",
        {
            "model": GPT,
            "messages": chat_messages(),
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ),
    ("/v1/responses", {"model": GPT, "input": USER}),
    ("/v1/responses", {"model": GPT, "input": USER, "stream": True}),
    ("/v1/messages", {"model": CLAUDE, "max_tokens": 9, "messages": [{"role": "user", "content": USER}]}),
    (
        "/v1/messages",
        {"model": CLAUDE, "max_tokens": 9, "messages": [{"role": "user", "content": USER}], "stream": True},
    ),
]


@pytest.mark.parametrize(("path", "body"), BODIES)
def test_identical_requests_give_identical_bytes(path: str, body: dict[str, Any]) -> None:
    with LocalModelServer() as srv:
        first = post(srv, path, body)
        second = post(srv, path, body)
    with LocalModelServer() as other:  # another server, another port: still the same bytes
        third = post(other, path, body)
    assert first[0] == second[0] == third[0] == 200
    assert first[2] == second[2] == third[2]
    assert first[1].items() == second[1].items() == third[1].items()
    assert "Date" not in first[1]
    changed = post_changed(path, body)
    assert changed != first[2]


def post_changed(path: str, body: dict[str, Any]) -> bytes:
    with LocalModelServer() as srv:
        return post(srv, path, {**body, "temperature": 0.5})[2]


def test_stream_framing(server: LocalModelServer) -> None:
    status, headers, raw = post(server, *BODIES[1])
    assert status == 200
    assert headers["Transfer-Encoding"] == "chunked"
    assert headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(raw)
    assert events[-1] == (None, "[DONE]")
    assert all(json.loads(data)["object"] == "chat.completion.chunk" for _, data in events[:-1])

    _, _, raw = post(server, *BODIES[3])
    for name, data in sse_events(raw):
        assert name == json.loads(data)["type"]

    _, _, raw = post(server, *BODIES[5])
    names = [name for name, _ in sse_events(raw)]
    assert names[0] == "message_start" and names[-1] == "message_stop"


# -- script, responder, latency ------------------------------------------------------------------------------


def test_script_in_order_then_exhausted() -> None:
    with LocalModelServer(script=["first", "second reply", "third"]) as srv:
        with openai.OpenAI(base_url=srv.openai_base_url, api_key="test") as oai:
            completion = oai.chat.completions.create(model=GPT, messages=chat_messages())
            assert completion.choices[0].message.content == "first"
            assert completion.usage is not None and completion.usage.completion_tokens == 1
            assert oai.responses.create(model=GPT, input=USER).output_text == "second reply"
        with anthropic.Anthropic(base_url=srv.anthropic_base_url, api_key="test") as ant:
            message = ant.messages.create(
                model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
            assert message.content[0].type == "text" and message.content[0].text == "third"
            with pytest.raises(anthropic.InternalServerError, match="script exhausted") as ant_err:
                ant.messages.create(model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "x"}])
            assert ant_err.value.status_code == 500
            assert isinstance(ant_err.value.body, dict) and ant_err.value.body["type"] == "error"
        with openai.OpenAI(base_url=srv.openai_base_url, api_key="test") as oai:  # default retries
            with pytest.raises(openai.InternalServerError, match="all 3 scripted replies") as oai_err:
                oai.chat.completions.create(model=GPT, messages=chat_messages(), stream=True)
            assert oai_err.value.status_code == 500
            assert oai_err.value.response.headers["x-should-retry"] == "false"
        # x-should-retry: false -> the SDKs did not retry: 3 served + 2 refused requests in all.
        assert len(srv.requests) == 5


def test_custom_responder_and_errors() -> None:
    seen: list[Request] = []

    def responder(request: Request) -> str:
        seen.append(request)
        if "boom" in request.last_user_text:
            raise KeyError("boom")
        return f"{request.api}:{len(request.messages)}"

    with (
        LocalModelServer(responder=responder) as srv,
        openai.OpenAI(base_url=srv.openai_base_url, api_key="test") as oai,
    ):
        completion = oai.chat.completions.create(model=GPT, messages=chat_messages())
        assert completion.choices[0].message.content == "openai.chat:1"
        with pytest.raises(openai.InternalServerError, match="responder raised KeyError"):
            oai.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "boom"}])
    assert [r.last_user_text for r in seen] == [USER, "boom"]


def test_latency_is_real_seconds() -> None:
    latencies: list[str] = []

    def latency(request: Request) -> float:
        latencies.append(request.last_user_text)
        return 0.3 if request.last_user_text == "slow" else 0.0

    for srv_latency in (0.3, latency):
        with LocalModelServer(latency=srv_latency) as srv:
            status, _, _ = post(srv, "/v1/chat/completions", {"model": GPT, "messages": []})
            assert status == 200
            start = time.monotonic()
            status, _, _ = post(
                srv, "/v1/messages", {"model": CLAUDE, "messages": [{"role": "user", "content": "slow"}]}
            )
            assert status == 200
            # a lower bound only: time.sleep never returns early, so this cannot flake on a busy machine
            assert time.monotonic() - start >= 0.3
    assert latencies == ["", "slow"]


def test_stop_cuts_a_pending_latency_and_keepalive_connections() -> None:
    arrived = threading.Event()

    def latency(request: Request) -> float:
        arrived.set()  # the request is in the server, about to wait 30 s
        return 30.0

    srv = LocalModelServer(latency=latency).start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            post(srv, "/v1/chat/completions", {"model": GPT, "messages": []})
        except (OSError, http.client.HTTPException) as exc:
            errors.append(exc)

    idle = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    idle.connect()  # an open keep-alive connection the server must not wait for
    thread = threading.Thread(target=call)
    thread.start()
    assert arrived.wait(10)
    stopper = threading.Thread(target=srv.stop)
    stopper.start()
    stopper.join(10)  # a guard against a hang, not a timing assertion: stop() must not wait the 30 s
    assert not stopper.is_alive()
    thread.join(10)
    idle.close()
    assert not thread.is_alive()
    assert len(errors) == 1


# -- errors ------------------------------------------------------------------------------------------------


def test_unknown_path_is_404_in_each_format(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    with pytest.raises(openai.NotFoundError) as oai_err:
        oai.post("/nowhere", cast_to=object, body={})
    assert oai_err.value.status_code == 404
    assert isinstance(oai_err.value.body, dict) and oai_err.value.body["type"] == "invalid_request_error"
    with pytest.raises(anthropic.NotFoundError) as ant_err:
        ant.post("/v1/nowhere", cast_to=object, body={})
    body = ant_err.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "not_found_error"


def test_bad_requests(server: LocalModelServer) -> None:
    status, headers, raw = post(server, "/v1/chat/completions", b"{not json")
    assert status == 400
    assert json.loads(raw)["error"]["type"] == "invalid_request_error"
    assert headers["Content-Length"] == str(len(raw))
    status, _, raw = post(server, "/v1/messages", b"[1, 2]")
    assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"
    status, _, raw = post(server, "/v1/messages", {"messages": []})
    assert status == 400 and "model" in json.loads(raw)["error"]["message"]
    status, _, raw = post(server, "/v1/chat/completions", {"model": GPT})
    assert status == 400 and "messages" in json.loads(raw)["error"]["message"]
    status, _, raw = post(server, "/v2/other", {}, **{"anthropic-version": "2023-06-01"})
    assert status == 404 and json.loads(raw)["type"] == "error"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/v1/chat/completions")
        resp = conn.getresponse()
        assert resp.status == 405
        assert json.loads(resp.read())["error"]["code"] == "method_not_allowed"
        # The keep-alive connection still works after an error.
        conn.request("POST", "/v1/responses", body=json.dumps({"model": GPT, "input": "hi"}))
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["output"][0]["content"][0]["text"].endswith(
            "hi"
        )
    finally:
        conn.close()
    assert len(server.requests) == 1


def test_lifecycle_errors() -> None:
    srv = LocalModelServer()
    with pytest.raises(RuntimeError, match="not running"):
        _ = srv.url
    with pytest.raises(ValueError, match="not both"):
        LocalModelServer(responder=default_responder, script=["x"])
    with pytest.raises(ValueError, match="port"):
        LocalModelServer(port=70000)
    srv.stop()  # not running: nothing to do
    with srv:
        assert srv.openai_base_url == srv.url + "/v1"
        assert srv.anthropic_base_url == srv.url == f"http://127.0.0.1:{srv.port}"
        with pytest.raises(RuntimeError, match="already running"):
            srv.start()
    with srv:  # can be started again
        assert post(srv, "/v1/responses", {"model": GPT, "input": "again"})[0] == 200


def test_main_serves_in_the_foreground() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_agentflows.model_server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("LocalModelServer listening on http://127.0.0.1:")
        url = first.split()[-1]
        assert proc.stdout.readline().strip() == f"OPENAI_BASE_URL={url}/v1"
        assert proc.stdout.readline().strip() == f"ANTHROPIC_BASE_URL={url}"
        with openai.OpenAI(base_url=url + "/v1", api_key="test", max_retries=0) as oai:
            assert oai.responses.create(model=GPT, input="ping").output_text == f"[{GPT}] reply to: ping"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "POST /v1/responses" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
