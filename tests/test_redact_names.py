"""Secrets under other common names are never stored, even when no environment variable holds them
(issue 16, item 5): ``Ocp-Apim-Subscription-Key`` (Azure API Management), ``X-Amz-Security-Token`` (AWS
session credentials), ``x-auth-token`` headers; ``apikey`` and ``sig`` (Azure SAS) query parameters."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pytest_agentflows import Flow
from pytest_agentflows.cassette._redact import BUILTIN_HEADERS, BUILTIN_QUERY
from pytest_agentflows.model_server import LocalModelServer

HEADERS = {
    "Ocp-Apim-Subscription-Key": "apim-canary-1a2b3c4d5e",
    "X-Amz-Security-Token": "amz-canary-FwoGZXIvYXdzEJr",
    "x-auth-token": "auth-canary-77aa88bb99",
}
QUERY = {"apikey": "apikey-canary-0f0e0d", "sig": "sig-canary%2Bq3r4s5t6"}


def test_the_names_are_built_in() -> None:
    assert {name.lower() for name in HEADERS} <= BUILTIN_HEADERS
    assert set(QUERY) <= BUILTIN_QUERY


def test_recording_stores_none_of_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: all five values were written to the cassette (no env variable names them)."""
    for name in list(__import__("os").environ):
        if name.endswith(("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")):
            monkeypatch.delenv(name)
    cassette = tmp_path / "names.yaml"
    with LocalModelServer() as server:
        query = "&".join(f"{k}={v}" for k, v in QUERY.items())
        url = f"{server.openai_base_url}/chat/completions?{query}&mode=fast"
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        with Flow(cassette=str(cassette), record="new", test_id="t").activate():
            assert httpx.post(url, headers=HEADERS, json=body).status_code == 200
    text = cassette.read_text()
    for value in [*HEADERS.values(), *QUERY.values(), "sig-canary"]:
        assert value not in text
    assert "mode=fast" in text  # other query parameters are kept
    flow = Flow(cassette=str(cassette), record="none", test_id="t")
    with flow.activate():  # the scrubbed request still matches: the key ignores the removed values
        assert httpx.post(url, headers=HEADERS, json=body).status_code == 200
    assert not flow.misses


def test_pytests_per_phase_variable_is_not_an_environment_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest sets PYTEST_CURRENT_TEST for every phase of every test: the redactor of each flow (and each
    new live request) must not decode and scan the whole environment again for that, and a real change
    is still seen."""
    from pytest_agentflows.cassette._redact import Redactor

    monkeypatch.delenv("LATE_API_KEY", raising=False)
    monkeypatch.setenv("EARLY_API_KEY", "early-canary-1a2b3c4d5e")
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/test_x.py::test_a (setup)")
    redactor = Redactor()
    assert redactor._env  # (a non-empty tuple: the identity below means "not read again")
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/test_x.py::test_a (call)")
    assert not redactor.refresh_env()
    later = Redactor()  # the next test's flow: the environment read before is taken as it is
    assert later._env is redactor._env
    monkeypatch.setenv("LATE_API_KEY", "late-canary-5e6f7a8b9c")
    assert redactor.refresh_env()
    assert redactor.scrub_text("key late-canary-5e6f7a8b9c") == "key <REDACTED:LATE_API_KEY>"
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    assert not redactor.refresh_env()  # (nor is its removal)
    assert Redactor().scrub_text("late-canary-5e6f7a8b9c") == "<REDACTED:LATE_API_KEY>"  # the next flow's
    monkeypatch.setenv("LATE_API_KEY", "late-canary-0f1e2d3c4b")  # a new value of a known variable
    assert redactor.refresh_env()
    assert Redactor().scrub_text("late-canary-0f1e2d3c4b") == "<REDACTED:LATE_API_KEY>"


def test_a_later_redactor_still_learns_the_secret_headers_of_requests_seen_before() -> None:
    """The header pairs one flow found not secret are skipped by the next flow's redactor, but each
    redactor learns the secret values (an API key) itself: the next test's flow masks them too."""
    from vcr.request import Request

    from pytest_agentflows.cassette._redact import Redactor

    headers = {"Authorization": "Bearer sk-learned-9f8e7d6c5b", "X-Trace": "plain-value-1234"}
    request = Request("POST", "https://api.example.com/v1/x", b"{}", headers)
    first, second = Redactor(), Redactor()
    assert first.learn(request) and first.scrub_text("sk-learned-9f8e7d6c5b") == "<REDACTED>"
    assert second.scrub_text("sk-learned-9f8e7d6c5b") == "sk-learned-9f8e7d6c5b"  # nothing learned yet
    assert second.learn(request) and second.scrub_text("sk-learned-9f8e7d6c5b") == "<REDACTED>"
    assert not second.learn(request)  # nothing new the second time
    assert second.scrub_text("plain-value-1234") == "plain-value-1234"
    strict = Redactor(headers=["X-Trace"])  # other settings: the pair is a secret for this one
    assert strict.learn(request) and strict.scrub_text("plain-value-1234") == "<REDACTED>"
