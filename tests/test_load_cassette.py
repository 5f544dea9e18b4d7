"""``load_cassette``: every format variant of the third-party fixtures, metadata, and corrupt input."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_agentflows.cassette._load import Cassette, load_cassette
from pytest_agentflows.errors import CassetteError
from pytest_agentflows.runtime._models import Usage

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "thirdparty"
CREW = "crewAIInc__crewAI/lib/crewai/tests/cassettes/"
PAI = "pydantic__pydantic-ai/tests/"
LLM = "simonw__llm/tests/cassettes/"
LLM_ANTHROPIC = "simonw__llm-anthropic/tests/cassettes/"
LANGCHAIN = "langchain-ai__langchain-aws/libs/aws/tests/cassettes/"

# file -> (interactions, [(index, api, model, streamed, input, output, cache read, cache write)])
# Token counts read by hand from each response's own usage fields (Anthropic input = input_tokens +
# cache_creation_input_tokens + cache_read_input_tokens; streams: the usage chunk / response.completed /
# message_start overridden by message_delta).
EXPECTED: dict[str, tuple[int, list[tuple[int, str, str, bool, int, int, int, int]]]] = {
    CREW + "test_usage_info_streaming_with_call.yaml": (
        1,
        [(0, "openai.chat", "gpt-4o-mini-2024-07-18", True, 12, 18, 0, 0)],
    ),
    CREW + "test_usage_info_non_streaming_with_call.yaml": (
        1,
        [(0, "openai.chat", "gpt-4o-mini-2024-07-18", False, 12, 15, 0, 0)],
    ),
    CREW + "llms/openai/test_openai_completions_cached_prompt_tokens_with_tools.yaml": (
        2,
        [
            (0, "openai.chat", "gpt-4.1-2025-04-14", False, 1187, 14, 1152, 0),
            (1, "openai.chat", "gpt-4.1-2025-04-14", False, 1187, 14, 1152, 0),
        ],
    ),
    CREW + "llms/azure/test_azure_streaming_completion.yaml": (
        1,
        [(0, "openai.chat", "gpt-4o-mini-2024-07-18", True, 9, 10, 0, 0)],
    ),
    CREW + "test_deepseek_r1_with_open_router.yaml": (
        1,
        [(0, "openai.chat", "deepseek/deepseek-r1", False, 10, 261, 0, 0)],
    ),
    CREW + "llms/openai/test_openai_responses_api_basic_call.yaml": (
        1,
        [(0, "openai.responses", "gpt-4o-mini-2024-07-18", False, 34, 2, 0, 0)],
    ),
    CREW + "llms/openai/test_openai_responses_api_streaming.yaml": (
        1,
        [(0, "openai.responses", "gpt-4o-mini-2024-07-18", True, 27, 8, 0, 0)],
    ),
    CREW + "llms/anthropic/test_anthropic_streaming_cached_prompt_tokens.yaml": (
        2,
        [
            (0, "anthropic.messages", "claude-sonnet-4-5-20250929", True, 1220, 4, 1217, 0),
            (1, "anthropic.messages", "claude-sonnet-4-5-20250929", True, 1220, 6, 1217, 0),
        ],
    ),
    CREW + "llms/anthropic/test_anthropic_async_multiple_calls.yaml": (
        4,
        [
            (0, "anthropic.messages", "claude-sonnet-4-20250514", False, 14, 13, 0, 0),
            (1, "anthropic.messages", "claude-sonnet-4-20250514", False, 14, 13, 0, 0),
            (2, "anthropic.messages", "claude-sonnet-4-20250514", False, 14, 11, 0, 0),
            (3, "anthropic.messages", "claude-sonnet-4-20250514", False, 14, 13, 0, 0),
        ],
    ),
    CREW + "test_crew_creation.yaml": (
        4,
        [
            (1, "openai.chat", "gpt-4o-2024-05-13", False, 220, 753, 0, 0),
            (3, "openai.chat", "gpt-4o-2024-05-13", False, 587, 586, 0, 0),
        ],
    ),
    CREW + "test_kickoff_for_each_multiple_inputs.yaml": (
        7,
        [
            (1, "openai.chat", "gpt-4.1-mini-2025-04-14", False, 176, 28, 0, 0),
            (4, "openai.chat", "gpt-4.1-mini-2025-04-14", False, 176, 27, 0, 0),
            (6, "openai.chat", "gpt-4.1-mini-2025-04-14", False, 176, 30, 0, 0),
        ],
    ),
    CREW + "agents/TestAgentA2AKickoff.test_agent_kickoff_delegates_to_a2a.yaml": (
        8,
        [
            (0, "openai.chat", "gpt-4.1-mini-2025-04-14", False, 274, 40, 0, 0),
            (2, "openai.chat", "gpt-4.1-mini-2025-04-14", False, 274, 40, 0, 0),
            (4, "openai.chat", "gpt-4.1-mini-2025-04-14", False, 274, 41, 0, 0),
            (6, "openai.chat", "gpt-4.1-mini-2025-04-14", False, 274, 40, 0, 0),
        ],
    ),
    LLM + "test_openai_responses/test_responses_basic_non_streaming.yaml": (
        1,
        [(0, "openai.responses", "gpt-5.5-2026-04-23", False, 11, 5, 0, 0)],
    ),
    LLM + "test_openai_responses/test_responses_basic_streaming.yaml": (
        1,
        [(0, "openai.responses", "gpt-5.5-2026-04-23", True, 11, 5, 0, 0)],
    ),
    LLM + "test_tools/test_tool_use_chain_of_two_calls.yaml": (
        3,
        [
            (0, "openai.chat", "gpt-4o-mini-2024-07-18", False, 92, 17, 0, 0),
            (1, "openai.chat", "gpt-4o-mini-2024-07-18", False, 118, 18, 0, 0),
            (2, "openai.chat", "gpt-4o-mini-2024-07-18", False, 146, 3, 0, 0),
        ],
    ),
    LLM_ANTHROPIC + "test_anthropic/test_prompt_with_prefill_and_stop_sequences.yaml": (
        1,
        [(0, "anthropic.messages", "claude-haiku-4-5-20251001", True, 16, 28, 0, 0)],
    ),
    LLM_ANTHROPIC + "test_anthropic/test_url_prompt.yaml": (
        3,
        [(2, "anthropic.messages", "claude-sonnet-4-5-20250929", True, 273, 206, 0, 0)],
    ),
    PAI + "models/cassettes/test_openai_responses/test_openai_responses_stream.yaml": (
        2,
        [
            (0, "openai.responses", "gpt-4o-2024-08-06", True, 255, 16, 0, 0),
            (1, "openai.responses", "gpt-4o-2024-08-06", True, 278, 9, 0, 0),
        ],
    ),
    PAI + "models/cassettes/test_openai_responses/test_openai_responses_model_http_error.yaml": (
        1,
        [],
    ),
    PAI + "models/cassettes/test_openai_responses/test_openai_conversation_id_tool_call_continuation.yaml": (
        4,
        [
            (1, "openai.responses", "gpt-4.1-2025-04-14", False, 57, 13, 0, 0),
            (2, "openai.responses", "gpt-4.1-2025-04-14", False, 88, 10, 0, 0),
        ],
    ),
    PAI + "models/cassettes/test_anthropic/test_anthropic_prompted_output.yaml": (
        2,
        [
            (0, "anthropic.messages", "claude-sonnet-4-5-20250929", False, 459, 38, 0, 0),
            (1, "anthropic.messages", "claude-sonnet-4-5-20250929", False, 510, 17, 0, 0),
        ],
    ),
    # message_start says input 2293; the final message_delta says 4714 (server tool use): the later wins
    PAI + "models/cassettes/test_anthropic/test_anthropic_code_execution_tool_stream.yaml": (
        1,
        [(0, "anthropic.messages", "claude-sonnet-4-6", True, 4714, 304, 0, 0)],
    ),
    PAI + "cassettes/test_temporal/test_multiple_agents.yaml": (
        4,
        [
            (0, "openai.chat", "gpt-4o-2024-08-06", False, 14, 8, 0, 0),
            (1, "openai.chat", "gpt-4o-2024-08-06", True, 364, 40, 0, 0),
            (2, "openai.chat", "gpt-4o-2024-08-06", True, 423, 15, 0, 0),
            (3, "openai.chat", "gpt-4o-2024-08-06", True, 448, 49, 0, 0),
        ],
    ),
    # AWS Bedrock Converse: not an OpenAI/Anthropic wire format, so no calls
    LANGCHAIN + "test_agent_loop[v1].yaml.gz": (2, []),
    LANGCHAIN + "test_agent_loop_streaming[v1].yaml.gz": (2, []),
}


def test_expected_table_lists_every_fixture() -> None:
    on_disk = {
        p.relative_to(FIXTURES).as_posix()
        for p in FIXTURES.rglob("*")
        if p.is_file() and p.name not in ("LICENSE", "README.md")
    }
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("rel", sorted(EXPECTED), ids=[Path(r).name for r in sorted(EXPECTED)])
def test_fixture_calls_carry_the_responses_own_usage(rel: str) -> None:
    n_interactions, expected = EXPECTED[rel]
    cassette = load_cassette(FIXTURES / rel)
    assert isinstance(cassette, Cassette)
    assert cassette.path == FIXTURES / rel
    assert len(cassette.interactions) == len(cassette) == n_interactions
    got = [
        (
            it.index,
            it.call.api,
            it.call.model,
            it.call.streamed,
            it.call.usage.input_tokens,
            it.call.usage.output_tokens,
            it.call.usage.cache_read_tokens,
            it.call.usage.cache_write_tokens,
        )
        for it in cassette.interactions
        if it.call is not None
    ]
    assert got == expected
    assert cassette.calls == [it.call for it in cassette.interactions if it.call is not None]
    for call in cassette.calls:
        assert call.provider == call.api.split(".")[0]
        assert call.agent is None and call.latency_s == 0.0  # third-party files carry no agentflows metadata
    total = cassette.usage
    assert total.input_tokens == sum(row[4] for row in expected)
    assert total.output_tokens == sum(row[5] for row in expected)


def test_usage_totals_and_prices() -> None:
    cassette = load_cassette(FIXTURES / CREW / "test_kickoff_for_each_multiple_inputs.yaml")
    costs = [c.usage.cost_usd for c in cassette.calls]
    assert all(isinstance(c, float) and c > 0 for c in costs)
    assert cassette.usage.cost_usd == pytest.approx(sum(c for c in costs if c is not None))
    assert load_cassette(FIXTURES / EMPTY_CALLS).usage == Usage(input_tokens=0, output_tokens=0, cost_usd=0.0)


EMPTY_CALLS = LANGCHAIN + "test_agent_loop[v1].yaml.gz"


def test_decoded_bodies_and_non_model_interactions() -> None:
    # gzip !!binary response body with Content-Encoding: gzip
    it = load_cassette(
        FIXTURES / LLM / "test_openai_responses/test_responses_basic_non_streaming.yaml"
    ).interactions[0]
    assert it.response_body.startswith(b"{")
    assert not any(k.lower() == "content-encoding" for k in it.response["headers"])
    assert it.response_json()["usage"]["input_tokens"] == 11
    assert it.text == "pong"
    # pydantic-ai parsed_body: no body key in the file, JSON bytes after loading
    it = load_cassette(
        FIXTURES / PAI / "models/cassettes/test_anthropic/test_anthropic_prompted_output.yaml"
    ).interactions[1]
    assert it.request_json()["model"] == "claude-sonnet-4-5"
    assert it.text == '{"city": "Mexico City", "country": "Mexico"}'
    # a non-2xx model response and a non-LLM endpoint are kept as interactions without a call
    http_error = load_cassette(
        FIXTURES / PAI / "models/cassettes/test_openai_responses/test_openai_responses_model_http_error.yaml"
    )
    assert (http_error.interactions[0].status, http_error.interactions[0].call, http_error.calls) == (
        400,
        None,
        [],
    )
    mixed = load_cassette(FIXTURES / LLM_ANTHROPIC / "test_anthropic/test_url_prompt.yaml")
    assert [(it.method, it.call is None) for it in mixed.interactions] == [
        ("HEAD", True),
        ("HEAD", True),
        ("POST", False),
    ]
    # binary (non UTF-8) request body: OTLP telemetry protobuf
    crew = load_cassette(FIXTURES / CREW / "test_crew_creation.yaml")
    telemetry = [it for it in crew.interactions if "telemetry" in it.uri]
    assert telemetry and all(isinstance(it.request_body, bytes) for it in telemetry)
    # langchain .yaml.gz: requests/responses lists, header values as plain strings
    lc = load_cassette(FIXTURES / EMPTY_CALLS)
    assert lc.interactions[1].response_json()["usage"]["outputTokens"] == 25
    assert lc.interactions[1].response["headers"]["Date"] == ["**REDACTED**"]


def test_repeated_identical_requests_keep_their_own_answers() -> None:
    cassette = load_cassette(FIXTURES / CREW / "llms/anthropic/test_anthropic_async_multiple_calls.yaml")
    first, _, third, _ = cassette.interactions
    assert first.request_body == third.request_body
    assert (first.text, third.text) == ("1 + 1 = 2", "1+1 = 2")
    assert [c.usage.output_tokens for c in cassette.calls] == [13, 13, 11, 13]


# ---------------------------------------------------------------------------- files written by the test

CHAT_RESPONSE = {
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2},
}


def _interaction(meta: dict[str, Any] | None = None, body: Any = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "status": {"code": 200, "message": "OK"},
        "headers": {"Content-Type": ["application/json"]},
        "body": {"string": json.dumps(CHAT_RESPONSE) if body is None else body},
    }
    if meta is not None:
        response["agentflows"] = meta
    return {
        "request": {
            "method": "POST",
            "uri": "https://api.openai.com/v1/chat/completions",
            "headers": {},
            "body": '{"model": "gpt-4o-mini"}',
        },
        "response": response,
    }


def _cassette(*interactions: dict[str, Any]) -> dict[str, Any]:
    return {"interactions": list(interactions), "version": 1}


def test_agentflows_metadata_gives_agent_and_latency(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    data = _cassette(
        _interaction({"agent": "researcher", "latency_s": 2.5}), _interaction({"agent": None, "latency_s": 1})
    )
    path.write_text(yaml.safe_dump(data))
    cassette = load_cassette(str(path))
    assert [(c.agent, c.latency_s) for c in cassette.calls] == [("researcher", 2.5), (None, 1.0)]
    assert [(it.agent, it.latency_s) for it in cassette.interactions] == [("researcher", 2.5), (None, 1.0)]
    assert cassette.usage.input_tokens == 10 and cassette.usage.output_tokens == 4


@pytest.mark.parametrize("name", ["c.json", "c.yaml.gz", "c.json.gz", "c.yml", "c.cassette"])
def test_json_yaml_and_gzip_files(tmp_path: Path, name: str) -> None:
    data = _cassette(_interaction({"agent": "a", "latency_s": 0.5}))
    text = json.dumps(data) if ".json" in name else yaml.safe_dump(data)
    raw = gzip.compress(text.encode()) if name.endswith(".gz") else text.encode()
    (tmp_path / name).write_bytes(raw)
    (call,) = load_cassette(tmp_path / name).calls
    assert (call.agent, call.model, call.usage.input_tokens) == ("a", "gpt-4o-mini-2024-07-18", 5)


URL = "https://api.openai.com/v1/chat/completions"


def test_old_httpx_format_and_gzip_binary_body(tmp_path: Path) -> None:
    gz = base64.encodebytes(gzip.compress(json.dumps(CHAT_RESPONSE).encode())).decode()
    body_yaml = "      string: !!binary |\n" + "".join(f"        {line}\n" for line in gz.splitlines())
    path = tmp_path / "old.yaml"
    path.write_text(
        "interactions:\n"
        f"- request: {{method: POST, uri: '{URL}', headers: {{}}, body: null}}\n"
        "  response:\n"
        "    status_code: 200\n"
        "    http_version: HTTP/1.1\n"
        "    headers: {}\n"
        f"    content: '{json.dumps(CHAT_RESPONSE)}'\n"
        f"- request: {{method: POST, uri: '{URL}', headers: {{}}, body: null}}\n"
        "  response:\n"
        "    status: {code: 200, message: OK}\n"
        "    headers: {Content-Encoding: [gzip]}\n"
        "    body:\n" + body_yaml + "version: 1\n"
    )
    cassette = load_cassette(path)
    assert [c.usage.total_tokens for c in cassette.calls] == [7, 7]


def test_empty_interactions_list(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("interactions: []\nversion: 1\n")
    cassette = load_cassette(path)
    assert (cassette.interactions, cassette.calls, cassette.usage.total_tokens) == ([], [], 0)


# ------------------------------------------------------------------------------------------- bad input


def _truncated_gzip_body() -> bytes:
    good, bad = _interaction(), _interaction()
    bad["response"]["headers"] = {"Content-Encoding": ["gzip"]}
    bad["response"]["body"] = {"string": gzip.compress(json.dumps(CHAT_RESPONSE).encode())[:20]}  # !!binary
    return yaml.safe_dump(_cassette(good, bad)).encode()


BAD_FILES: list[tuple[str, bytes, str, str]] = [
    ("invalid.yaml", b"interactions:\n- request: [unclosed\n", "line ", "invalid YAML"),
    ("list.yaml", b"- 1\n- 2\n", "top level", "found list"),
    ("scalar.json", b'"just a string"', "top level", "found str"),
    ("empty.yaml", b"", "", "the file is empty"),
    ("nointeractions.yaml", b"version: 1\nfoo: bar\n", "top level", "no 'interactions'"),
    ("interactions_dict.yaml", b"interactions: {a: 1}\n", "interactions", "expected a list"),
    ("item.yaml", b"interactions:\n- just text\n", "interactions[0]", "'request' and 'response'"),
    ("badjson.json", b'{"interactions": [}', "line 1, column 19", "invalid JSON"),
    ("python_tag.yaml", b"interactions: !!python/object:os.system {}\n", "line 1", "python object tags"),
    ("version.yaml", b"interactions: []\nversion: 2\n", "version", "version 2"),
    ("truncated.yaml.gz", gzip.compress(b"interactions: []\n")[:-6], "", "gzip file is truncated or corrupt"),
    ("notgzip.yaml.gz", b"interactions: []\n", "", "gzip file is truncated or corrupt"),
    (
        "lengths.yaml",
        b"requests: [{method: GET, uri: 'http://x'}]\nresponses: []\n",
        "requests/responses",
        "1 requests but 0 responses",
    ),
    (
        "status.yaml",
        b"interactions:\n- request: {method: GET, uri: 'http://x'}\n  response: {body: {string: ''}}\n",
        "interactions[0].response.status",
        "missing",
    ),
    (
        "langchain_status.yaml",
        b"requests: [{method: GET, uri: 'http://x'}]\nresponses: [{status: {code: x}}]\n",
        "responses[0].status.code",
        "HTTP status code",
    ),
    (
        "body_type.yaml",
        b"interactions:\n- request: {method: GET, uri: 'http://x', body: [1, 2]}\n"
        b"  response: {status: {code: 200}, body: {string: ''}}\n",
        "interactions[0].request.body",
        "found list",
    ),
    ("gzip_body.yaml", _truncated_gzip_body(), "interactions[1].response.body.string", "gzip body"),
    (
        "meta.yaml",
        yaml.safe_dump(_cassette(_interaction({"agent": "a", "latency_s": "slow"}))).encode(),
        "interactions[0].response.agentflows.latency_s",
        "non-negative number",
    ),
    (
        "meta_agent.yaml",
        yaml.safe_dump(_cassette(_interaction({"agent": 3, "latency_s": 1.0}))).encode(),
        "interactions[0].response.agentflows.agent",
        "string or null",
    ),
]


@pytest.mark.parametrize(("name", "raw", "where", "reason"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_unreadable_input_raises_cassette_error_naming_file_and_place(
    tmp_path: Path, name: str, raw: bytes, where: str, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(raw)
    with pytest.raises(CassetteError) as info:
        load_cassette(path)
    err = info.value
    assert err.path == str(path)
    assert err.where.startswith(where), err.where
    assert reason in err.reason
    message = str(err)
    assert str(path) in message and reason in message and "--record-agents" in message


def test_missing_file_raises_cassette_error(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="cannot open the file"):
        load_cassette(tmp_path / "nope.yaml")
