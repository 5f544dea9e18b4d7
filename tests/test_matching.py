"""Request matching that survives frameworks: UUIDs numbered, tool lists in any order, match_ignore paths."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from pytest_agentflows import Flow, UsageError
from pytest_agentflows.cassette._keys import UUID, canonical_body, has_uuid, normalisation_note, parse_path
from pytest_agentflows.model_server import LocalModelServer

pytest_plugins = ["pytester"]

A = "3f2b8c1e-9d4a-4e6b-8f0a-1c2d3e4f5a6b"
B = "7e6d5c4b-3a29-4181-9706-5f4e3d2c1b0a"
C = "0a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d"


def _body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def test_uuids_are_numbered_by_first_appearance() -> None:
    first = _body(messages=[{"role": "tool", "tool_call_id": f"call_{A}"}, {"id": B}], run=A)
    second = _body(messages=[{"role": "tool", "tool_call_id": f"call_{C}"}, {"id": B.upper()}], run=C)
    assert canonical_body(first) == canonical_body(second)
    # the structure of the ids still counts: one id used twice is not two different ids
    assert canonical_body(_body(a=A, b=A)) != canonical_body(_body(a=A, b=B))


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(
    st.lists(
        st.sampled_from(["-", "a", "F", "0", "9", "g", " ", "--", "deadbeef", "-0000", "-1234567890ab"]),
        max_size=40,
    ).map("".join)
)
def test_has_uuid_answers_as_the_uuid_pattern(text: str) -> None:
    # the fast check (hyphen first) must agree with the plain pattern on hex runs, hyphens and near misses
    assert has_uuid(text) is (UUID.search(text) is not None)
    embedded = f"{text}{A}{text}"
    assert has_uuid(embedded) and UUID.search(embedded) is not None


def test_tool_lists_compare_in_any_order() -> None:
    tools = [
        {"type": "function", "function": {"name": n}} for n in ("search", "lookup", "transfer_to_billing")
    ]
    assert canonical_body(_body(model="m", tools=tools)) == canonical_body(
        _body(model="m", tools=tools[::-1])
    )
    assert canonical_body(_body(functions=["b", "a"])) == canonical_body(_body(functions=["a", "b"]))
    # other lists keep their order: messages are a conversation
    assert canonical_body(_body(messages=["a", "b"])) != canonical_body(_body(messages=["b", "a"]))


def test_match_ignore_paths_with_wildcards() -> None:
    paths = (parse_path("messages.*.name"), parse_path("user"))
    first = _body(messages=[{"role": "user", "name": "x1"}, {"role": "user", "name": "x2"}], user="u-1")
    second = _body(messages=[{"role": "user", "name": "y1"}, {"role": "user", "name": "y2"}], user="u-2")
    assert canonical_body(first, ignore_paths=paths) == canonical_body(second, ignore_paths=paths)
    assert canonical_body(first) != canonical_body(second)
    with pytest.raises(ValueError, match="dot-separated"):
        parse_path("messages..name")


def test_the_note_names_what_was_normalised() -> None:
    tools = [{"name": "b"}, {"name": "a"}]
    note = normalisation_note(_body(id=A, tools=tools, user="u"), (parse_path("user"),))
    assert (
        note
        == "1 UUID(s) numbered by first appearance; tool lists compared in any order; match_ignore left out user"
    )
    assert normalisation_note(b"not json") == ""


def test_a_bad_match_ignore_path_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="match_ignore path"):
        Flow(match_ignore=["a..b"])


INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""

# What langgraph-supervisor and friends send: a uuid4() tool_call_id and a tool list in set order.
FLOWS = """
import os
import random
import uuid

import openai
import pytest

TOOLS = {"transfer_to_research", "transfer_to_math", "search", "lookup_invoice", "calculator"}


def ask(agentflow, **extra):
    client = openai.OpenAI(api_key="sk-test", base_url=os.environ["AF_OPENAI_URL"])
    call_id = f"call_{uuid.uuid4()}"
    with agentflow.agent("supervisor"):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "user", "content": "who handles this?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": "search", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": call_id, "content": "found"},
            ],
            tools=[{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in TOOLS],
            **extra,
        )
    client.close()


def test_supervisor(agentflow):
    ask(agentflow)


@pytest.mark.agentflow(match_ignore=["user"])
def test_random_user(agentflow):
    ask(agentflow, user=f"session-{random.random()}")
"""


def test_framework_noise_replays_under_other_hash_seeds(
    pytester: pytest.Pytester,
    model_server: LocalModelServer,
    monkeypatch: pytest.MonkeyPatch,
    go_offline: Callable[[], None],
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_noise=FLOWS)
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    pytester.runpytest_subprocess("--record-agents", "-p", "no:randomly").assert_outcomes(passed=2)
    go_offline()
    for seed in ("1", "2", "3"):
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_without_match_ignore_the_miss_diff_says_what_was_normalised(
    pytester: pytest.Pytester,
    model_server: LocalModelServer,
    monkeypatch: pytest.MonkeyPatch,
    go_offline: Callable[[], None],
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_noise=FLOWS.replace('@pytest.mark.agentflow(match_ignore=["user"])\n', ""))
    pytester.runpytest_subprocess(
        "--record-agents", "-p", "no:randomly", "-k", "random_user"
    ).assert_outcomes(passed=1)
    go_offline()
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-k", "random_user")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*compared after normalising: 1 UUID(s) numbered by first appearance; tool lists compared in any order*",
            '*-  "user": "session-*',
        ]
    )


def test_a_json_body_given_as_an_object_matches_its_recorded_text(tmp_path: Any) -> None:
    """vcrpy's aiohttp stub hands a ``json=`` body over as the object itself (aiohttp sends its JSON text):
    it matches the recorded text, and a miss with such a body is an ordinary miss, not a TypeError."""
    import yaml
    from vcr.request import Request

    from pytest_agentflows import UnrecordedRequestError

    url = "https://api.example.com/v1/echo"
    path = tmp_path / "c.yaml"
    interaction = {
        "request": {"method": "POST", "uri": url, "headers": {}, "body": '{"q": 1, "tags": ["a"]}'},
        "response": {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": "one"}},
    }
    path.write_text(yaml.safe_dump({"interactions": [interaction], "version": 1}), encoding="utf-8")
    with Flow(cassette=str(path), record="none").activate() as flow:
        cassette = flow._cassette
        assert cassette.can_play_response_for(Request("POST", url, {"tags": ["a"], "q": 1}, {}))
        assert cassette.play_response(Request("POST", url, {"tags": ["a"], "q": 1}, {}))["body"] == {
            "string": b"one"
        }
        with pytest.raises(UnrecordedRequestError, match="no recorded interaction matches"):
            cassette.play_response(Request("POST", url, {"q": 2}, {}))
        flow.misses.clear()  # the miss above was expected
