"""Multipart uploads replay, and secrets are scrubbed from bytes whatever their encoding (issue 16, 2-3).

The real openai SDK uploads a file (``files.create``) and transcribes audio
(``audio.transcriptions.create``) against a tiny local server; each request is ``multipart/form-data``
with a boundary httpx draws at random. Recorded once, replayed offline with a new client (a new boundary).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from pytest_agentflows import Flow, UnrecordedRequestError
from pytest_agentflows.cassette._keys import MULTIPART_BOUNDARY, canonical_body
from pytest_agentflows.cassette._redact import Redactor

KEY = "sk-multipart-canary-4f1b9a7c2d"
AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt \xff\xfe\x00\x01" + KEY.encode() + b"\x00\x80\xff"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path.endswith("/files"):
            answer = {
                "id": "file-abc123",
                "object": "file",
                "bytes": 42,
                "created_at": 1700000000,
                "filename": "data.jsonl",
                "purpose": "batch",
                "status": "processed",
            }
        else:
            answer = {"text": "hello from the recording"}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextlib.contextmanager
def _server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _calls(base: str) -> tuple[str, str]:
    client = openai.OpenAI(base_url=base, api_key=KEY, max_retries=0)
    try:
        uploaded = client.files.create(file=("data.jsonl", b'{"a": 1}\n'), purpose="batch")
        text = client.audio.transcriptions.create(model="whisper-1", file=("hello.wav", AUDIO))
    finally:
        client.close()
    return uploaded.id, text.text


def test_multipart_uploads_record_then_replay(tmp_path: Path) -> None:
    """Before: the replay missed both requests (the random boundary was part of the matched body)."""
    cassette = tmp_path / "multipart.yaml"
    with _server() as base, Flow(cassette=str(cassette), record="new", test_id="t").activate():
        recorded = _calls(base)
    assert recorded == ("file-abc123", "hello from the recording")
    flow = Flow(cassette=str(cassette), record="none", test_id="t")
    with flow.activate():
        replayed = _calls("http://127.0.0.1:9/v1")  # a closed port: only the cassette can answer
    assert replayed == recorded and not flow.misses


def test_multipart_boundary_normalised_in_the_key() -> None:
    one = b'--abc123\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--abc123--\r\n'
    two = one.replace(b"abc123", b"f00dfeed")
    assert canonical_body(one) == canonical_body(two)
    assert f"--{MULTIPART_BOUNDARY}--" in canonical_body(one)
    assert canonical_body(b"--not a multipart body") == "--not a multipart body"


def test_binary_multipart_part_is_scrubbed_in_the_cassette(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a body that is not UTF-8 (a binary file part) was stored as it was, key included."""
    cassette = tmp_path / "multipart.yaml"
    with _server() as base, Flow(cassette=str(cassette), record="new", test_id="t").activate():
        _calls(base)
    raw = cassette.read_bytes()
    data = yaml.safe_load(raw)  # !!binary bodies are bytes again
    bodies = [i["request"]["body"] for i in data["interactions"]]
    assert all(isinstance(b, bytes | str) for b in bodies)
    blob = b"".join(b if isinstance(b, bytes) else b.encode() for b in bodies)
    assert KEY.encode() not in blob and KEY.encode() not in raw
    assert b"<REDACTED>" in blob  # the Authorization key was learned, then masked inside the audio part


def test_multipart_miss_diff_never_prints_the_key(tmp_path: Path) -> None:
    """Before: the diff of a binary multipart miss printed the key (terminal and junit)."""
    cassette = tmp_path / "multipart.yaml"
    with _server() as base, Flow(cassette=str(cassette), record="new", test_id="t").activate():
        _calls(base)
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key=KEY, max_retries=0)
    flow = Flow(cassette=str(cassette), record="none", test_id="t")
    try:
        with flow.activate(), pytest.raises(UnrecordedRequestError) as err:
            client.audio.transcriptions.create(model="whisper-1", file=("hello.wav", AUDIO + b"\xfe more"))
    finally:
        client.close()
    assert "more" in err.value.diff and KEY not in str(err.value)


@pytest.mark.parametrize(
    "body",
    [
        ("caf\xe9 " + KEY).encode("latin-1"),  # latin-1 text
        b"\x89PNG\r\n\x1a\n\x00\xff" + KEY.encode() + b"\x00",  # binary
    ],
    ids=["latin-1", "binary"],
)
def test_bytes_in_any_encoding_are_scrubbed(body: bytes) -> None:
    redactor = Redactor(environ={"FOO_API_KEY": KEY})
    scrubbed = redactor.scrub_body(body)
    assert isinstance(scrubbed, bytes) and KEY.encode() not in scrubbed
    assert b"<REDACTED:FOO_API_KEY>" in scrubbed and redactor.report.env_values == 1


def test_reason_phrase_is_scrubbed() -> None:
    redactor = Redactor(environ={"FOO_API_KEY": KEY})
    response = redactor.response(
        {"status": {"code": 401, "message": f"Bad key {KEY}"}, "headers": {}, "body": {"string": b""}}
    )
    assert response["status"]["message"] == "Bad key <REDACTED:FOO_API_KEY>"


def test_redact_check_finds_secrets_in_binary_bodies_and_reason_phrases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: ``agentflows redact --check`` reported such a file clean (exit 0)."""
    from vcr.serializers import yamlserializer

    from pytest_agentflows.cli import main

    monkeypatch.setenv("FOO_API_KEY", KEY)
    interaction = {
        "request": {"method": "POST", "uri": "https://api.example.com/v1/x", "headers": {}, "body": AUDIO},
        "response": {
            "status": {"code": 401, "message": f"Bad key {KEY}"},
            "headers": {},
            "body": {"string": ("caf\xe9 " + KEY).encode("latin-1")},
        },
    }
    path = tmp_path / "c.yaml"
    path.write_text(yamlserializer.serialize({"interactions": [interaction], "version": 1}))
    assert main(["redact", "--check", str(path)]) == 1
    assert "3 secret environment values" in capsys.readouterr().out
    assert main(["redact", str(path)]) == 0
    assert KEY.encode() not in path.read_bytes() and os.environ["FOO_API_KEY"] == KEY
    assert b"Bad key <REDACTED:FOO_API_KEY>" in path.read_bytes()
