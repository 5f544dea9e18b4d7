"""Secrets never reach a file we write: a matrix of canaries, one per channel, through real recordings.

Each channel gets its own random canary (``sk-canary-<hex>``). An inner pytest session (pytester) records
with the real openai / anthropic SDKs, httpx and requests against the local model server and a tiny local
"edge" server (401 errors echoing the key, ``Set-Cookie``, gzip bodies, odd-case secret response headers,
an httpbin-like header echo), writes the JSON/HTML reports, the terminal report, a junit XML file, a log
file and a decision snapshot; a second session replays offline, one of its requests unrecorded (our
``UnrecordedRequestError`` prints a body diff). Then every file under the inner directory, the captured
output of both sessions and of ``agentflows inspect`` / ``agentflows redact --check`` are searched for
each canary, raw and encoded (URL-quoted, base64): zero hits.

Out of scope (documented in docs/recording.md): what pytest itself prints of a user's own failing
assertion (the ``user_owned`` canary is the positive control: it must show up in pytest's output and
junit XML, and nowhere of ours), and DEBUG/INFO logs of httpx/openai that a user routes to a file.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus

import pytest
import yaml

from pytest_agentflows.cli import main as agentflows_cli
from pytest_agentflows.model_server import LocalModelServer

pytest_plugins = ["pytester"]

CHANNELS = (
    "bearer",  # Authorization: Bearer (openai SDK api_key)
    "x_api_key",  # x-api-key (anthropic SDK api_key)
    "api_key_header",  # api-key (Azure style, requests)
    "query_key",  # ?key= (openai SDK default_query)
    "query_api_key",  # ?api_key= (httpx)
    "cookie",  # Cookie request header (httpx cookie jar)
    "set_cookie",  # Set-Cookie response header, sent back as Cookie
    "openai_org",  # OpenAI-Organization
    "openai_project",  # OpenAI-Project
    "anthropic_header",  # anthropic-admin-api-key
    "ini_header",  # X-Team-Secret, listed in ini agentflows_redact_headers
    "body_key",  # a JSON body key listed in ini agentflows_redact_body_keys (known by no other rule)
    "request_body_echo",  # the bearer key echoed in the JSON request body (metadata, system message)
    "response_echo",  # the bearer key echoed back in the response body
    "error_401",  # 401 error body "Incorrect API key provided: <key>", then logged as a decision
    "error_401_masked",  # 401 error body with a partially masked key (sk-can***abcd)
    "env_api_key",  # FOO_API_KEY's value in a request header and body
    "env_token",  # FOO_TOKEN's value in a URL query and echoed in a response
    "env_set_in_test",  # LATE_API_KEY set by the test body itself (monkeypatch), then sent
    "basic_auth_url",  # http://user:<key>@host/ (httpx and requests)
    "sse_stream",  # the key in a streamed (SSE) response
    "gzip_response",  # a gzip-compressed response body holding the key
    "odd_case_header",  # X-API-KEY / AuThOrIzAtIoN request headers
    "odd_case_response_header",  # OpenAI-ORGANIZATION / X-Api-KEY (and a plain X-Echo) response headers
    "echoed_headers",  # an httpbin-like endpoint echoing the request headers in its JSON body
    "miss_diff",  # the key in the body of an unrecorded request (UnrecordedRequestError's diff)
    "async_bearer",  # AsyncOpenAI: the async recording path, the key echoed back
    "goog_api_key",  # x-goog-api-key
    # issue 16
    "ocp_apim",  # Ocp-Apim-Subscription-Key (Azure API Management), no env variable names it
    "amz_token",  # X-Amz-Security-Token (AWS session credentials)
    "x_auth_token",  # x-auth-token
    "query_apikey",  # ?apikey=
    "query_sig",  # ?sig= (Azure shared access signature)
    "latin1_body",  # a latin-1 (not UTF-8) request body and response body holding the bearer key
    "binary_multipart",  # openai files.create / audio.transcriptions.create: the key in a binary part
    "reason_phrase",  # the HTTP reason phrase quoting the key
    "miss_url_key",  # ?key= on an unrecorded request: pytest's frames show the request's URL
    "miss_url_password",  # http://user:<password>@host on an unrecorded request
    "multipart_miss",  # the key in a binary multipart part of an unrecorded request (the miss diff)
)
USER_OWNED = "user_owned"  # in a user's failing assertion: pytest prints it, we must not store it

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
agentflows_redact_headers = x-team-secret
agentflows_redact_body_keys = customer_ref
"""

# The inner test module reads its canaries from AF_CANARIES (a name no secret rule matches), so neither its
# source nor pytest's tracebacks of it hold a canary: every hit found later was written by someone else.
INNER = """
import json, os
from urllib.parse import quote
import anthropic, httpx, openai, pytest, requests

C = json.loads(os.environ["AF_CANARIES"])
OAI, ANT, EDGE = os.environ["AF_OPENAI_URL"], os.environ["AF_ANTHROPIC_URL"], os.environ["AF_EDGE_URL"]
PHASE = os.environ["AF_PHASE"]
# JSON cassettes cannot hold bodies that are not UTF-8 (vcrpy's JSON serializer): text forms there
BINARY = os.environ["AF_BINARY"] == "1"
BIN = b"RIFF\\xff\\xfe\\x00 " if BINARY else b"RIFF text "
MSG = [{"role": "user", "content": "hello"}]
RAW = {"model": "gpt-4o-mini", "messages": MSG}


CLIENTS = []


@pytest.fixture(autouse=True)
def close_clients():
    yield
    while CLIENTS:
        CLIENTS.pop().close()


def oai(key="sk-test-plain-0000", base=OAI, **kw):
    CLIENTS.append(openai.OpenAI(base_url=base, api_key=key, max_retries=0, **kw))
    return CLIENTS[-1]


def test_sdk_headers(agentflow):
    with agentflow.agent("openai"):
        oai(C["bearer"], organization=C["openai_org"], project=C["openai_project"],
            default_headers={"X-Team-Secret": C["ini_header"], "x-goog-api-key": C["goog_api_key"]},
            default_query={"key": C["query_key"]}).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with agentflow.agent("claude"):
        CLIENTS.append(anthropic.Anthropic(base_url=ANT, api_key=C["x_api_key"], max_retries=0,
                                           default_headers={"anthropic-admin-api-key": C["anthropic_header"]}))
        CLIENTS[-1].messages.create(model="claude-3-5-haiku-latest", max_tokens=50, messages=MSG)
    assert len(agentflow.calls) == 2


def test_raw_clients(agentflow):
    requests.post(OAI + "/chat/completions", headers={"api-key": C["api_key_header"]}, json=RAW)
    with httpx.Client(cookies={"session": C["cookie"]}) as client:
        client.post(OAI + "/chat/completions?api_key=" + C["query_api_key"], json=RAW)
    requests.post(OAI + "/chat/completions", json=RAW,
                  headers={"X-API-KEY": C["odd_case_header"], "AuThOrIzAtIoN": "Bearer " + C["odd_case_header"]})
    url = f"http://user:{quote(C['basic_auth_url'], safe='')}@{OAI.split('://', 1)[1]}/chat/completions"
    httpx.post(url, json=RAW)
    requests.post(url, json=RAW)
    httpx.post(OAI + "/chat/completions", json={**RAW, "customer_ref": C["body_key"]})
    assert len(agentflow.calls) == 6


def test_echoes(agentflow):
    key = C["request_body_echo"]
    oai(key).chat.completions.create(
        model="gpt-4o-mini", user=key, metadata={"api_key_used": key},
        messages=[{"role": "system", "content": "you were called with " + key}, *MSG])
    key = C["response_echo"]
    reply = oai(key).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "k " + key}])
    assert key in reply.choices[0].message.content or PHASE == "replay"
    key = C["sse_stream"]
    stream = oai(key).chat.completions.create(model="gpt-4o-mini", stream=True,
                                              messages=[{"role": "user", "content": "s " + key}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert len(agentflow.calls) == 3


def test_env_values(agentflow, monkeypatch):
    foo_key, foo_token = os.environ["FOO_API_KEY"], os.environ["FOO_TOKEN"]
    oai().chat.completions.create(model="gpt-4o-mini", extra_headers={"x-foo-id": foo_key},
                                  messages=[{"role": "user", "content": "e " + foo_token}])
    httpx.post(OAI + "/chat/completions?session=" + foo_token,
               json={**RAW, "metadata": {"k": foo_key}})
    monkeypatch.setenv("LATE_API_KEY", C["env_set_in_test"])
    oai().chat.completions.create(model="gpt-4o-mini",
                                  messages=[{"role": "user", "content": "l " + os.environ["LATE_API_KEY"]}])
    assert len(agentflow.calls) == 3


def test_edge(agentflow, decision_snapshot):
    with pytest.raises(openai.AuthenticationError) as err:
        oai(C["error_401"], base=EDGE + "/401/v1").chat.completions.create(model="gpt-4o-mini", messages=MSG)
    agentflow.log.record("auth_failed", message=str(err.value))  # the SDK's message quotes the key
    with pytest.raises(openai.AuthenticationError):
        oai(C["error_401_masked"], base=EDGE + "/401m/v1").chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with httpx.Client() as client:
        client.get(EDGE + "/cookie")  # Set-Cookie: sid=<canary>
        client.get(EDGE + "/whoami")  # ... sent back as Cookie
    zipped = httpx.post(EDGE + "/gzip", headers={"x-api-key": C["gzip_response"]})
    assert zipped.json()["echo"]
    httpx.get(EDGE + "/headers", headers={"x-api-key": C["odd_case_response_header"]})
    echoed = httpx.get(EDGE + "/anything", headers={"Authorization": "Bearer " + C["echoed_headers"]})
    assert echoed.json()["headers"]
    assert agentflow.decisions == decision_snapshot


async def test_async(agentflow):
    key = C["async_bearer"]
    client = openai.AsyncOpenAI(base_url=OAI, api_key=key, max_retries=0)
    try:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a " + key}])
    finally:
        await client.close()
    assert len(agentflow.calls) == 1


def test_miss(agentflow):
    key = C["miss_diff"]
    word = "first" if PHASE == "record" else "second"
    oai(key).chat.completions.create(model="gpt-4o-mini", metadata={"key": key},
                                     messages=[{"role": "user", "content": word + " " + key}])


def test_new_names(agentflow):
    headers = {"Ocp-Apim-Subscription-Key": C["ocp_apim"], "X-Amz-Security-Token": C["amz_token"],
               "x-auth-token": C["x_auth_token"]}
    params = {"apikey": C["query_apikey"], "sig": C["query_sig"], "mode": "fast"}
    assert httpx.post(OAI + "/chat/completions", headers=headers, params=params, json=RAW).status_code == 200
    key, charset = C["latin1_body"], "latin-1" if BINARY else "utf-8"
    answer = httpx.post(EDGE + "/latin1", content=("caf\\xe9 " + key).encode(charset),
                        headers={"Authorization": "Bearer " + key, "Content-Type": "text/plain; charset=" + charset})
    assert answer.status_code == 200
    assert httpx.get(EDGE + "/reason", headers={"x-api-key": C["reason_phrase"]}).status_code == 403
    key = C["binary_multipart"]
    client = oai(key, base=EDGE + "/mp/v1")
    assert client.files.create(file=("data.bin", BIN + key.encode()), purpose="batch").id
    assert client.audio.transcriptions.create(model="whisper-1", file=("a.wav", BIN + key.encode())).text


def test_miss_in_url(agentflow):
    base = "http://user:" + quote(C["miss_url_password"], safe="") + "@" + OAI.split("://", 1)[1]
    word = "first" if PHASE == "record" else "second"
    oai(base=base, default_query={"key": C["miss_url_key"]}).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": word}])


def test_multipart_miss(agentflow):
    key = C["multipart_miss"]
    word = b"first" if PHASE == "record" else b"second"
    oai(key, base=EDGE + "/mp/v1").audio.transcriptions.create(
        model="whisper-1", file=("a.wav", BIN + word + b" " + key.encode()))


def test_user_failure(agentflow):
    assert PHASE == "never", "the user's own message quotes " + C["user_owned"]
"""

PASSING = (
    "test_sdk_headers",
    "test_raw_clients",
    "test_echoes",
    "test_env_values",
    "test_edge",
    "test_async",
    "test_new_names",
)
MISSES = ("test_miss", "test_miss_in_url", "test_multipart_miss")
"""Inner tests that record in the first session and miss in the second."""


CANARY_STYLES: dict[str, Callable[[], str]] = {  # each under 56 characters: the echo keeps 60
    "hex": lambda: f"sk-canary-{secrets.token_hex(12)}",
    "project": lambda: f"sk-proj-canary{secrets.token_urlsafe(24)}",  # '-' and '_'
    # standard base64 ('+', '/', '='): URL-quoted in queries and paths
    "base64": lambda: "cAnArY" + base64.b64encode(secrets.token_bytes(19)).decode(),
    "uuid": lambda: "ca1a2b3c-{}-4{}a-8{}b-{}".format(*(secrets.token_hex(n) for n in (2, 1, 1, 6))),
    "jwt": lambda: f"eyJhbGciOiJIUzI1NiJ9.{secrets.token_urlsafe(12)}.{secrets.token_urlsafe(8)}",
}


def make_canaries(names: tuple[str, ...], offset: int = 0) -> dict[str, str]:
    """One fresh canary per name, the styles of :data:`CANARY_STYLES` taken in turn from ``offset``."""
    styles = list(CANARY_STYLES.values())
    return {name: styles[(i + offset) % len(styles)]() for i, name in enumerate(names)}


# -- a tiny local edge server: what the model server cannot be made to answer -----------------------------
class _EdgeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    canaries: ClassVar[dict[str, str]] = {}

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        self.send_response(status)
        for name, value in [("Content-Type", "application/json"), *headers]:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _bearer(self) -> str:
        return (self.headers.get("Authorization") or "").removeprefix("Bearer ")

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        c = self.canaries
        if path.startswith(("/401/", "/401m/")):
            key = self._bearer()
            shown = key if path.startswith("/401/") else f"{key[:6]}{'*' * 20}{key[-4:]}"
            error = {
                "message": f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
            self._send(401, json.dumps({"error": error}).encode(), [("x-should-retry", "false")])
        elif path == "/cookie":
            self._send(200, b'{"ok": true}', [("Set-Cookie", f"sid={c['set_cookie']}; Path=/; HttpOnly")])
        elif path == "/gzip":
            body = gzip.compress(json.dumps({"echo": self.headers.get("x-api-key")}).encode())
            self._send(200, body, [("Content-Encoding", "gzip")])
        elif path == "/latin1":  # a text body echoing the bearer key, in the request's charset
            charset = (self.headers.get("Content-Type") or "").rpartition("charset=")[2] or "utf-8"
            self._send(
                200, ("r\xe9ponse " + self._bearer()).encode(charset), [("Content-Type", "text/plain")]
            )
        elif path == "/reason":
            self.send_response(403, f"Forbidden for {self.headers.get('x-api-key')}")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
        elif path.endswith("/files"):
            answer = {
                "id": "file-1",
                "object": "file",
                "bytes": 3,
                "created_at": 1,
                "filename": "data.bin",
                "purpose": "batch",
                "status": "processed",
            }
            self._send(200, json.dumps(answer).encode())
        elif path.endswith("/audio/transcriptions"):
            self._send(200, b'{"text": "transcribed"}')
        elif path == "/headers":
            key = self.headers.get("x-api-key") or ""
            self._send(200, b"{}", [("OpenAI-ORGANIZATION", key), ("X-Api-KEY", key), ("X-Echo", key)])
        else:  # /anything, /whoami: httpbin-like, the request headers echoed in the body
            self._send(200, json.dumps({"headers": dict(self.headers.items())}).encode())

    do_GET = do_POST = _handle


@contextlib.contextmanager
def edge_server(canaries: dict[str, str]) -> Iterator[str]:
    """A local HTTP server on 127.0.0.1 for the channels the model server cannot produce; yields its URL."""
    handler = type("Edge", (_EdgeHandler,), {"canaries": canaries})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# -- searching ---------------------------------------------------------------------------------------------
def forms(canary: str) -> dict[str, str]:
    """The canary as it could be written: raw, URL-quoted, base64 (alone and as basic-auth ``user:key``)."""
    return {
        "raw": canary,
        "url": quote(canary, safe=""),
        "url_path": quote(canary),
        "url_plus": quote_plus(canary),
        "base64": base64.b64encode(canary.encode()).decode(),
        "base64_basic": base64.b64encode(f"user:{canary}".encode()).decode(),
    }


def _decoded_bodies(path: Path) -> Iterator[str]:
    """Bodies of a cassette file decoded (base64 YAML binaries, gzip) so a hidden canary is seen too."""
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=yaml.Loader)
    except Exception:
        return
    if not isinstance(data, dict):
        return
    for item in data.get("interactions") or []:
        for part in (item.get("request") or {}, item.get("response") or {}):
            body = part.get("body")
            if isinstance(body, dict):
                body = body.get("string")
            if isinstance(body, bytes):
                with contextlib.suppress(OSError, EOFError):
                    body = gzip.decompress(body)
                yield body.decode("utf-8", errors="replace")


def scan(texts: dict[str, str], canaries: dict[str, str]) -> list[tuple[str, str, str]]:
    """``(where, channel, form)`` of every canary occurrence in ``texts`` (``where -> text``)."""
    hits = []
    for where, text in texts.items():
        for channel, canary in canaries.items():
            seen = set()
            for form, value in forms(canary).items():
                if value not in seen and value in text:
                    hits.append((where, channel, form))
                seen.add(value)
    return hits


def written_texts(root: Path) -> dict[str, str]:
    """Every file under ``root`` (decoded cassette bodies too), by path relative to ``root``."""
    texts = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        rel = str(path.relative_to(root))
        texts[rel] = path.read_bytes().decode("utf-8", errors="replace")
        if "cassettes" in path.parts:
            for i, body in enumerate(_decoded_bodies(path)):
                texts[f"{rel}#body{i}"] = body
    return texts


def _cli(*argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        agentflows_cli(list(argv))
    return out.getvalue() + err.getvalue()


# -- the matrix --------------------------------------------------------------------------------------------
def run_matrix(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    go_offline: Callable[[], None],
    *,
    cassette_format: str = "yaml",
    offset: int = 0,
) -> dict[str, Any]:
    """Record, then replay offline, one inner session each; return what was searched and found.

    Channel ``i`` gets a canary of style ``(i + offset) % len(CANARY_STYLES)``.
    """
    canaries = make_canaries((*CHANNELS, USER_OWNED), offset)
    for old in pytester.path.iterdir():  # a fresh directory for each round
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    pytester.makeini(INI + f"agentflows_cassette_format = {cassette_format}\n")
    pytester.makepyfile(test_inner=INNER)
    monkeypatch.setenv("AF_CANARIES", json.dumps(canaries))
    monkeypatch.setenv("AF_BINARY", "1" if cassette_format == "yaml" else "0")
    monkeypatch.setenv("FOO_API_KEY", canaries["env_api_key"])
    monkeypatch.setenv("FOO_TOKEN", canaries["env_token"])
    monkeypatch.delenv("LATE_API_KEY", raising=False)
    outputs: dict[str, str] = {}
    common = ("--agentflows-report", "--agentflows-json=report.json", "--agentflows-html=report.html")
    with LocalModelServer() as server, edge_server(canaries) as edge:
        monkeypatch.setenv("AF_OPENAI_URL", server.openai_base_url)
        monkeypatch.setenv("AF_ANTHROPIC_URL", server.anthropic_base_url)
        monkeypatch.setenv("AF_EDGE_URL", edge)
        monkeypatch.setenv("AF_PHASE", "record")
        recorded = pytester.runpytest(
            "--record-agents", "--snapshot-update", *common, "--junitxml=junit-record.xml",
            "--log-file=inner.log",
        )  # fmt: skip
    outputs["stdout:record"] = recorded.stdout.str() + recorded.stderr.str()
    recorded.assert_outcomes(
        passed=len(PASSING) + len(MISSES), failed=1
    )  # the misses record; the user's fails
    go_offline()
    monkeypatch.setenv("AF_EDGE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AF_PHASE", "replay")
    replayed = pytester.runpytest(*common, "--junitxml=junit-replay.xml", "-o", "log_file=inner.log")
    outputs["stdout:replay"] = replayed.stdout.str() + replayed.stderr.str()
    replayed.assert_outcomes(passed=len(PASSING), failed=len(MISSES) + 1)  # misses: unrecorded; the user's
    assert "unrecorded model request in test test_inner.py::test_miss" in outputs["stdout:replay"]
    assert "nearest recorded request body" in outputs["stdout:replay"]
    assert '"content": "second <REDACTED>"' in outputs["stdout:replay"]  # the diff masks the key

    cassettes = sorted(str(p) for p in (pytester.path / "cassettes").rglob(f"*.{cassette_format}"))
    assert len(cassettes) == len(PASSING) + len(MISSES), cassettes
    outputs["agentflows inspect"] = _cli("inspect", *cassettes)
    outputs["agentflows redact --check"] = _cli(
        "redact", "--check", "--header", "x-team-secret", "--body-key", "customer_ref", *cassettes
    )
    assert f"{len(cassettes)} files, 0 would change" in outputs["agentflows redact --check"]

    texts = "".join(Path(c).read_text() for c in cassettes)
    assert "<REDACTED:FOO_API_KEY>" in texts and "<REDACTED:FOO_TOKEN>" in texts  # env values: named
    assert "<REDACTED:LATE_API_KEY>" in texts  # a variable the test set itself

    files = written_texts(pytester.path)
    ours = {k: v for k, v in files.items() if not Path(k.split("#")[0]).name.startswith("junit-")}
    junit = {k: v for k, v in files.items() if k not in ours}
    # Positive control: the scanner does find a canary where one is written (pytest's own output and
    # junit XML of the user's failing assertion, out of our hands), so zero hits elsewhere means something.
    user = {USER_OWNED: canaries.pop(USER_OWNED)}
    assert scan(outputs, user) and scan(junit, user)
    hits = scan(ours, {**canaries, **user}) + scan(junit, canaries) + scan(outputs, canaries)
    return {
        "canaries": len(canaries),
        "forms": len(forms("x")),
        "files": len([k for k in files if "#" not in k]),
        "texts": len(files) + len(outputs),
        "hits": hits,
    }


def test_secret_matrix_light(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    go_offline: Callable[[], None],
    figures: Callable[..., None],
) -> None:
    """One canary per channel, recorded and replayed once (YAML cassettes): zero hits anywhere we write."""
    found = run_matrix(pytester, monkeypatch, go_offline)
    figures(
        canaries_tried=found["canaries"],
        channels=len(CHANNELS),
        forms_per_canary=found["forms"],
        files_scanned=found["files"],
        texts_scanned=found["texts"],
        hits=len(found["hits"]),
    )
    assert found["hits"] == [], "\n".join(map(str, found["hits"]))


@pytest.mark.stress
@pytest.mark.parametrize("cassette_format", ["yaml", "json"])
def test_secret_matrix_stress(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    go_offline: Callable[[], None],
    figures: Callable[..., None],
    cassette_format: str,
) -> None:
    """Every channel meets every canary style (one round per style), in YAML and JSON cassettes."""
    canaries = files = texts = 0
    hits: list[tuple[str, str, str]] = []
    for offset in range(len(CANARY_STYLES)):
        found = run_matrix(pytester, monkeypatch, go_offline, cassette_format=cassette_format, offset=offset)
        canaries += found["canaries"]
        files += found["files"]
        texts += found["texts"]
        hits += found["hits"]
    figures(
        cassette_format=cassette_format,
        rounds=len(CANARY_STYLES),
        canaries_tried=canaries,
        channels=len(CHANNELS),
        canary_styles=len(CANARY_STYLES),
        forms_per_canary=len(forms("x")),
        files_scanned=files,
        texts_scanned=texts,
        hits=len(hits),
    )
    assert hits == [], "\n".join(map(str, hits))


# -- focused tests: one per leak the matrix found ----------------------------------------------------------
def _vcr_request(uri: str, body: str, headers: dict[str, str]) -> Any:
    from vcr.request import Request

    return Request("POST", uri, body.encode(), headers)


def test_secret_header_values_are_masked_where_echoed() -> None:
    """A key sent in a secret header is masked in request and response bodies and other headers."""
    from pytest_agentflows.cassette._redact import Redactor

    key, cookie = _canary(), _canary()
    redactor = Redactor(environ={})
    stored = redactor.request(
        _vcr_request(
            "http://127.0.0.1/v1/chat/completions",
            json.dumps({"metadata": {"key": key}}),
            {"Authorization": f"Bearer {key}", "x-trace": key, "Cookie": f"a=1; session={cookie}"},
        )
    )
    response = redactor.response(
        {
            "status": {"code": 401, "message": "Unauthorized"},
            "headers": {"x-echo": [cookie]},
            "body": {"string": f"Incorrect API key provided: {key}".encode()},
        }
    )
    text = json.dumps([stored._to_dict(), response], default=str)
    assert key not in text and cookie not in text
    assert json.loads(stored.body)["metadata"]["key"] == "<REDACTED>"
    assert stored.headers["x-trace"] == "<REDACTED>"
    assert response["body"]["string"] == b"Incorrect API key provided: <REDACTED>"
    assert redactor.report.echoed_values == 4 and redactor.report.headers == 2


def _canary() -> str:
    return CANARY_STYLES["hex"]()


def test_set_cookie_and_basic_auth_values_are_learned() -> None:
    from pytest_agentflows.cassette._redact import header_secret_values

    user_pass = base64.b64encode(b"someuser:basic-password-1234").decode()
    assert "basic-password-1234" in header_secret_values("Authorization", f"Basic {user_pass}")
    assert header_secret_values("set-cookie", "sid=cookie-value-5678; Path=/; HttpOnly") == [
        "cookie-value-5678"
    ]
    assert header_secret_values("Cookie", "a=1; session=cookie-value-9abc") == ["cookie-value-9abc"]
    assert header_secret_values("authorization", "Bearer sk-token-12345678") == ["sk-token-12345678"]
    assert header_secret_values("x-api-key", "short") == []  # under 8 characters: not searched for


def test_url_credentials_removed_and_masked_elsewhere() -> None:
    from pytest_agentflows.cassette._redact import Redactor

    key = "p+ss/" + _canary()  # URL-quoted in the URL
    redactor = Redactor(environ={})
    uri = redactor.scrub_url(f"http://user:{quote(key, safe='')}@127.0.0.1:8080/v1/x?a=1")
    assert uri == "http://127.0.0.1:8080/v1/x?a=1"
    assert redactor.scrub_text(f"echo {key} {quote(key, safe='')}") == "echo <REDACTED> <REDACTED>"
    assert redactor.report.url_credentials == 1


def test_encoded_env_values_are_masked() -> None:
    """A secret with URL-reserved characters is masked URL-quoted too (a query, a path, a form body)."""
    from pytest_agentflows.cassette._redact import Redactor

    value = "abc+def/ghi=jkl"
    redactor = Redactor(environ={"FOO_TOKEN": value})
    uri = redactor.scrub_url(f"http://h/x/{quote(value, safe='')}?session={quote_plus(value)}")
    assert value not in uri and quote(value, safe="") not in uri and quote_plus(value) not in uri
    assert redactor.scrub_text(json.dumps(value).replace("/", "\\/")) == '"<REDACTED:FOO_TOKEN>"'


def test_env_secret_set_after_the_redactor_was_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that sets ``*_API_KEY`` itself (after the flow fixture built the redactor) is covered."""
    from pytest_agentflows.cassette._redact import Redactor

    monkeypatch.delenv("LATE_API_KEY", raising=False)
    redactor = Redactor()
    key = _canary()
    monkeypatch.setenv("LATE_API_KEY", key)
    assert redactor.refresh_env()  # a flow cassette calls it for each new live request
    assert not redactor.refresh_env()  # nothing changed since
    assert redactor.scrub_body(key.encode()) == b"<REDACTED:LATE_API_KEY>"


def test_decisions_are_scrubbed_by_the_flow() -> None:
    """A decision quoting a secret (an API error message) never reaches the log or its snapshot."""
    from pytest_agentflows import Flow
    from pytest_agentflows.cassette._redact import Redactor

    key = _canary()
    flow = Flow(redactor=Redactor(environ={"FOO_API_KEY": key}))
    decision = flow.log.record(
        "auth_failed", message=f"Incorrect API key provided: {key}", nested=[{"k": key}]
    )
    assert decision.fields() == {
        "message": "Incorrect API key provided: <REDACTED:FOO_API_KEY>",
        "nested": [{"k": "<REDACTED:FOO_API_KEY>"}],
    }


def _write_cassette(
    path: Path, uri: str, headers: dict[str, list[str]], body: str, response_body: str
) -> None:
    from vcr.serializers import yamlserializer

    interaction = {
        "request": {"method": "POST", "uri": uri, "body": body, "headers": headers},
        "response": {
            "status": {"code": 401, "message": "Unauthorized"},
            "headers": {"content-type": ["application/json"]},
            "body": {"string": response_body},
        },
    }
    path.write_text(yamlserializer.serialize({"interactions": [interaction], "version": 1}))


def test_inspect_never_prints_url_credentials(tmp_path: Path) -> None:
    """``agentflows inspect`` of a cassette recorded by something else: no ``user:password@``."""
    key = _canary()
    path = tmp_path / "raw.yaml"
    _write_cassette(path, f"https://user:{key}@api.example.com/v1/chat/completions", {}, "{}", "{}")
    out = _cli("inspect", str(path))
    assert "POST api.example.com/v1/chat/completions 401" in out and key not in out


def test_cli_redact_masks_echoed_header_values(tmp_path: Path) -> None:
    """``agentflows redact`` learns every secret header first, then masks its echoes in all bodies."""
    key = _canary()
    path = tmp_path / "raw.yaml"
    error = json.dumps({"error": {"message": f"Incorrect API key provided: {key}"}})
    _write_cassette(path, "https://api.example.com/v1/x", {"Authorization": [f"Bearer {key}"]}, key, error)
    out = _cli("redact", str(path))
    assert "1 header, 2 echoed secret values" in out and key not in out
    assert key not in path.read_text()
