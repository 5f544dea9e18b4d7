"""An unmatched request never falls through to the network.

A real server listens on 127.0.0.1 and counts every TCP connection it accepts. Inner pytest sessions replay
(record mode ``none``, the default) with a cassette that does not match the request, or with no cassette file
at all, and send requests to that server through every client stack: the OpenAI and Anthropic SDKs (sync and
async), httpx, httpx2, requests, urllib (http.client), and aiohttp when it is installed. Every request must
fail with ``UnrecordedRequestError`` and the server must see zero connections.
"""

from __future__ import annotations

import importlib.util
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""

CLIENTS = """
import asyncio, json, os, urllib.request
import pytest

URL = os.environ["AF_COUNTING_URL"]
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "not recorded"}]}


def openai_sync():
    import openai
    openai.OpenAI(base_url=URL + "/v1", api_key="sk-test", max_retries=0).chat.completions.create(**BODY)


async def openai_async():
    import openai
    async with openai.AsyncOpenAI(base_url=URL + "/v1", api_key="sk-test", max_retries=0) as client:
        await client.chat.completions.create(**BODY)


def anthropic_sync():
    import anthropic
    anthropic.Anthropic(base_url=URL, api_key="sk-ant-test", max_retries=0).messages.create(
        model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "not recorded"}])


async def anthropic_async():
    import anthropic
    async with anthropic.AsyncAnthropic(base_url=URL, api_key="sk-ant-test", max_retries=0) as client:
        await client.messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "not recorded"}])


def httpx_sync():
    import httpx
    with httpx.Client() as client:
        client.post(URL + "/v1/chat/completions", json=BODY)


async def httpx_async():
    import httpx
    async with httpx.AsyncClient() as client:
        await client.post(URL + "/v1/chat/completions", json=BODY)


def httpx2_sync():
    import httpx2
    with httpx2.Client() as client:
        client.post(URL + "/v1/chat/completions", json=BODY)


async def httpx2_async():
    import httpx2
    async with httpx2.AsyncClient() as client:
        await client.post(URL + "/v1/chat/completions", json=BODY)


def requests_sync():
    import requests
    requests.post(URL + "/v1/chat/completions", json=BODY, timeout=5)


def urllib_sync():
    req = urllib.request.Request(URL + "/v1/chat/completions", data=json.dumps(BODY).encode(), method="POST")
    urllib.request.urlopen(req, timeout=5)


async def aiohttp_async():
    aiohttp = pytest.importorskip("aiohttp")
    async with aiohttp.ClientSession() as session:
        async with session.post(URL + "/v1/chat/completions", json=BODY) as response:
            await response.read()


SENDERS = [openai_sync, openai_async, anthropic_sync, anthropic_async, httpx_sync, httpx_async,
           httpx2_sync, httpx2_async, requests_sync, urllib_sync, aiohttp_async]
REPEATS = int(os.environ.get("AF_REPEATS", "1"))
CASES = [
    pytest.param(send, marks=pytest.mark.agentflow(cassette=cassette), id=f"{send.__name__}-{cassette}-{i}")
    for cassette in ("mismatch.yaml", "missing.yaml")
    for send in SENDERS
    for i in range(REPEATS)
]


@pytest.mark.parametrize("send", CASES)
async def test_unmatched(agentflow, send):
    if asyncio.iscoroutinefunction(send):
        await send()
    else:
        send()
"""


def _mismatch_cassette(url: str) -> str:
    """A valid cassette whose one interaction matches none of the requests above (other URL and body)."""
    return f"""interactions:
- request:
    body: '{{"recorded": true}}'
    headers: {{content-type: [application/json]}}
    method: POST
    uri: {url}/v1/recorded-elsewhere
  response:
    status: {{code: 200, message: OK}}
    headers: {{content-type: [application/json]}}
    body: {{string: '{{"ok": true}}'}}
version: 1
"""


class CountingServer:
    """Accepts TCP connections on 127.0.0.1, counts them, answers each with a small HTTP 200."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
                    )
                except OSError:
                    pass

    def __enter__(self) -> CountingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def counting_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingServer]:
    with CountingServer() as server:
        monkeypatch.setenv("AF_COUNTING_URL", server.url)
        yield server


def test_counting_server_counts(counting_server: CountingServer) -> None:
    """The probe works: a real request reaches it and is counted."""
    import httpx

    assert httpx.get(counting_server.url + "/probe").status_code == 200
    assert counting_server.connections == 1


def _run(
    pytester: pytest.Pytester,
    server: CountingServer,
    monkeypatch: pytest.MonkeyPatch,
    figures: Callable[..., None],
    repeats: int,
    *args: str,
) -> None:
    monkeypatch.setenv("AF_REPEATS", str(repeats))
    pytester.makeini(INI)
    pytester.makepyfile(test_clients=CLIENTS)
    cassettes = pytester.path / "cassettes" / "test_clients"
    cassettes.mkdir(parents=True)
    (cassettes / "mismatch.yaml").write_text(_mismatch_cassette(server.url))
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    aiohttp = importlib.util.find_spec("aiohttp") is not None
    senders, cases = 11 if aiohttp else 10, 2 * repeats
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == senders * cases, outcomes
    assert outcomes.get("skipped", 0) == (0 if aiohttp else cases), outcomes
    assert "passed" not in outcomes, outcomes
    text = result.stdout.str()
    # without httpx2 (the py310 leg) its two senders fail on the import, before any request
    reaching = senders - (0 if importlib.util.find_spec("httpx2") is not None else 2)
    assert text.count("unrecorded model request in test test_clients.py::test_unmatched[") >= reaching * cases
    assert "why:      the cassette file does not exist" in text
    assert "why:      no recorded interaction matches" in text
    assert not (cassettes / "missing.yaml").exists()  # replay never creates a cassette
    assert server.connections == 0
    figures(
        clients_tried=senders,
        clients_skipped_not_installed=0 if aiohttp else 1,
        requests_sent=senders * cases,
        unrecorded_request_errors=senders * cases,
        connections_reaching_server=server.connections,
    )


def test_unmatched_requests_never_reach_the_network(
    pytester: pytest.Pytester,
    counting_server: CountingServer,
    monkeypatch: pytest.MonkeyPatch,
    figures: Callable[..., None],
) -> None:
    _run(pytester, counting_server, monkeypatch, figures, 1)


@pytest.mark.stress
def test_unmatched_requests_never_reach_the_network_stress(
    pytester: pytest.Pytester,
    counting_server: CountingServer,
    monkeypatch: pytest.MonkeyPatch,
    figures: Callable[..., None],
) -> None:
    _run(pytester, counting_server, monkeypatch, figures, 25)
