"""The httpx/httpx2 replay path: answers straight from the index, exactly as vcrpy's stub would.

``FlowCassette.replay_direct`` serves a recorded response without vcrpy's request conversion. These tests
replay one cassette through ``Flow`` and through plain vcrpy (body matching) and compare what the client
receives (status, reason phrase, every header in order, body), for sync and async clients of httpx and
httpx2; check that a hit never reaches vcrpy's request stub and that a miss still does (and raises the
same :class:`UnrecordedRequestError`).
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from stacks import HAS_HTTPX2

from pytest_agentflows import Flow, UnrecordedRequestError

URL = "https://api.example.com/v1/echo"
STACKS = ["httpx", *(["httpx2"] if HAS_HTTPX2 else [])]


def _interaction(body: str, code: int, message: str, answer: str) -> dict[str, Any]:
    return {
        "request": {
            "method": "POST",
            "uri": URL,
            "headers": {"content-type": ["application/json"]},
            "body": body,
        },
        "response": {
            "agentflows": {"agent": "echo", "latency_s": 1.5},
            "status": {"code": code, "message": message},
            "headers": {
                "content-type": ["application/json"],
                "x-multi": ["first", "second"],
                "X-Mixed-Case": ["kept"],
            },
            "body": {"string": answer},
        },
    }


def _cassette(path: Path) -> Path:
    interactions = [
        _interaction('{"q": 1}', 200, "OK", '{"a": "one"}'),
        _interaction('{"q": 2}', 201, "Created", '{"a": "two"}'),
        _interaction('{"q": 1}', 200, "", '{"a": "one again"}'),  # same request: next in recorded order
        _interaction('{"q": 3}', 404, "Not Found", '{"error": "nope"}'),
    ]
    path.write_text(yaml.safe_dump({"interactions": interactions, "version": 1}), encoding="utf-8")
    return path


BODIES = [b'{"q": 1}', b'{"q": 2}', b'{"q": 1}', b'{"q": 3}']


def _seen(response: Any) -> tuple[Any, ...]:
    return (
        response.status_code,
        response.reason_phrase,
        [(k.lower(), v) for k, v in response.headers.multi_items()],
        response.content,
    )


def _spy_on_vcrpy_stub(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs of the requests that reach vcrpy's httpx request stub from now on."""
    from vcr.stubs import httpx_stubs

    calls: list[str] = []
    real = httpx_stubs._vcr_request

    def spy(cassette: Any, real_request: Any, *args: Any) -> Any:
        calls.append(str(real_request.url))
        return real(cassette, real_request, *args)

    monkeypatch.setattr(httpx_stubs, "_vcr_request", spy)
    return calls


def _send_all(stack: str, asynchronous: bool) -> list[tuple[Any, ...]]:
    module = importlib.import_module(stack)
    if not asynchronous:
        with module.Client() as client:
            return [_seen(client.post(URL, content=body)) for body in BODIES]

    async def run() -> list[tuple[Any, ...]]:
        async with module.AsyncClient() as client:
            return [_seen(await client.post(URL, content=body)) for body in BODIES]

    return asyncio.run(run())


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("stack", STACKS)
def test_replay_matches_vcrpy_byte_for_byte(
    tmp_path: Path, stack: str, asynchronous: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vcr

    path = _cassette(tmp_path / "echo.yaml")
    with vcr.VCR(record_mode="none", match_on=["method", "uri", "body"]).use_cassette(str(path)):
        want = _send_all(stack, asynchronous)

    stub_calls = _spy_on_vcrpy_stub(monkeypatch)
    flow = Flow(cassette=path, record="none", test_id="test_replay_direct")
    with flow.activate():
        got = _send_all(stack, asynchronous)

    assert got == want
    assert [g[0] for g in got] == [200, 201, 200, 404]
    assert got[0][3] == b'{"a": "one"}' and got[2][3] == b'{"a": "one again"}'  # recorded order
    assert got[1][1] == "Created" and got[2][1] == "OK"  # an empty message: httpx's default phrase
    assert stub_calls == []  # every answer came from the index, not through vcrpy's stub
    assert flow.elapsed == pytest.approx(6.0)  # 4 calls of 1.5 s each, one after the other


@pytest.mark.parametrize("stack", STACKS)
def test_a_miss_goes_through_vcrpy_and_raises_unrecorded(
    tmp_path: Path, stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub_calls = _spy_on_vcrpy_stub(monkeypatch)
    module = importlib.import_module(stack)
    flow = Flow(cassette=_cassette(tmp_path / "echo.yaml"), record="none", test_id="test_miss")
    with flow.activate(), module.Client() as client:
        assert client.post(URL, content=b'{"q": 2}').status_code == 201
        with pytest.raises(UnrecordedRequestError) as caught:
            client.post(URL, content=b'{"q": 2}')  # its one recorded response is used up
    assert stub_calls == [URL]
    assert "every recorded response to this request was already used" in str(caught.value)


def test_an_old_httpx_layout_response_is_served_by_vcrpy(tmp_path: Path) -> None:
    """vcrpy's pre-8 httpx layout (``status_code``/``content``) is built by vcrpy's own function."""
    import httpx

    path = tmp_path / "old.yaml"
    interaction = {
        "request": {"method": "GET", "uri": URL, "headers": {}, "body": None},
        "response": {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": "new"}},
    }
    path.write_text(yaml.safe_dump({"interactions": [interaction], "version": 1}), encoding="utf-8")
    flow = Flow(cassette=path, record="none", test_id="test_old")
    with flow.activate():
        cassette = flow._cassette
        assert cassette is not None
        cassette.data[0][1]["status_code"] = 200  # what an old cassette's response dict carries
        cassette.data[0][1]["content"] = "old"
        with httpx.Client() as client:
            response = client.get(URL)
    assert response.status_code == 200
    assert response.content == b"old"  # vcrpy's own reading of the old layout


@pytest.mark.parametrize("stack", STACKS)
def test_threads_replaying_one_request_get_each_recorded_response_once(tmp_path: Path, stack: str) -> None:
    """Identical requests from many threads at once: every recorded response is served exactly once."""
    import threading

    count = 64
    interactions = [_interaction('{"q": "same"}', 200, "OK", f'{{"n": {n}}}') for n in range(count)]
    path = tmp_path / "same.yaml"
    path.write_text(yaml.safe_dump({"interactions": interactions, "version": 1}), encoding="utf-8")
    module = importlib.import_module(stack)
    got: list[bytes] = []
    barrier = threading.Barrier(8)

    def worker(client: Any) -> None:
        barrier.wait()
        for _ in range(count // 8):
            got.append(client.post(URL, content=b'{"q": "same"}').content)

    flow = Flow(cassette=path, record="none", test_id="test_threads")
    with flow.activate(), module.Client() as client:
        threads = [threading.Thread(target=worker, args=(client,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(got) == sorted(f'{{"n": {n}}}'.encode() for n in range(count))
    cassette = flow._cassette
    assert cassette is not None
    assert cassette.replayed_count == count
    assert sorted(cassette.play_counts.values()) == [1] * count


def _count_index_keys(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs whose index key is computed from now on (a replay in recorded order computes none)."""
    from pytest_agentflows.cassette import _recorder

    computed: list[str] = []
    real = _recorder.request_key

    def counting(method: str, uri: str, *args: Any, **kwargs: Any) -> Any:
        computed.append(uri)
        return real(method, uri, *args, **kwargs)

    monkeypatch.setattr(_recorder, "request_key", counting)
    return computed


@pytest.mark.parametrize("stack", STACKS)
def test_a_replay_in_recorded_order_computes_no_index_key(
    tmp_path: Path, stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    computed = _count_index_keys(monkeypatch)
    module = importlib.import_module(stack)
    flow = Flow(cassette=_cassette(tmp_path / "echo.yaml"), record="none", test_id="test_in_order")
    with flow.activate(), module.Client() as client:
        got = [client.post(URL, content=body).content for body in BODIES[:2]]
        assert computed == []  # each request was the next interaction's own: taken without a key
        cassette = flow._cassette
        assert cassette is not None and cassette._queues is None
        got.append(client.post(URL, content=BODIES[3]).content)  # out of order: the index is built
        assert len(computed) == 4  # the loaded interactions' keys (the live one is a stored request's)
        got.append(client.post(URL, content=BODIES[2]).content)
    assert got == [b'{"a": "one"}', b'{"a": "two"}', b'{"error": "nope"}', b'{"a": "one again"}']
    assert sorted(cassette.play_counts.values()) == [1] * 4


@pytest.mark.parametrize("stack", STACKS)
def test_an_earlier_interaction_matching_the_same_request_is_still_replayed_first(
    tmp_path: Path, stack: str
) -> None:
    """Matching is on the normalised body: ``{"q":1}`` recorded first answers a request sent as
    ``{"q": 1}`` (the later interaction's very bytes) first, as it did before requests were taken in order."""
    path = tmp_path / "spacing.yaml"
    interactions = [
        _interaction('{"q":1}', 200, "OK", '{"a": "compact"}'),
        _interaction('{"q": 1}', 200, "OK", '{"a": "spaced"}'),
    ]
    path.write_text(yaml.safe_dump({"interactions": interactions, "version": 1}), encoding="utf-8")
    module = importlib.import_module(stack)
    flow = Flow(cassette=path, record="none", test_id="test_spacing")
    with flow.activate(), module.Client() as client:
        got = [client.post(URL, content=b'{"q": 1}').content for _ in range(2)]
    assert got == [b'{"a": "compact"}', b'{"a": "spaced"}']
