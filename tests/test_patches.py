"""vcrpy's patchers are built once per process and follow the active cassette (``cassette/_patches.py``).

Replays through vcrpy's own stubs (``http.client`` here: ``urllib.request``) and through the httpx replay
path, in flows one after the other and in a flow inside a flow; the patched classes are the originals
again once every flow has ended.
"""

from __future__ import annotations

import http.client
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pytest_agentflows import Flow

URL = "http://api.example.com/v1/echo"


def _cassette(path: Path, answers: list[str]) -> str:
    interactions = [
        {
            "request": {"method": "POST", "uri": URL, "headers": {}, "body": '{"q": 1}'},
            "response": {
                "status": {"code": 200, "message": "OK"},
                "headers": {"content-type": ["application/json"]},
                "body": {"string": answer},
            },
        }
        for answer in answers
    ]
    path.write_text(yaml.safe_dump({"interactions": interactions, "version": 1}), encoding="utf-8")
    return str(path)


def _urllib_post() -> str:
    request = urllib.request.Request(URL, data=b'{"q": 1}', method="POST")
    with urllib.request.urlopen(request) as response:
        return str(response.read().decode())


def _httpx_post() -> str:
    with httpx.Client() as client:
        return client.post(URL, content=b'{"q": 1}').text


def test_flows_one_after_another_reuse_the_patchers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vcr.patch import CassettePatcherBuilder

    with Flow(cassette=_cassette(tmp_path / "warm.yaml", ["warm"]), record="none").activate():
        assert _urllib_post() == "warm"
    builds: list[Any] = []
    real_build = CassettePatcherBuilder.build
    monkeypatch.setattr(CassettePatcherBuilder, "build", lambda self: builds.append(self) or real_build(self))

    for n in range(3):
        path = _cassette(tmp_path / f"c{n}.yaml", [f"urllib {n}", f"httpx {n}"])
        with Flow(cassette=path, record="none").activate() as flow:
            assert _urllib_post() == f"urllib {n}"  # vcrpy's stub, through the stand-in cassette
            assert _httpx_post() == f"httpx {n}"
        assert flow.replayed_calls == 0  # not model calls: nothing in the ledger
    assert builds == []  # vcrpy built no patchers for these three activations


def test_a_flow_inside_a_flow_replays_from_its_own_cassette(tmp_path: Path) -> None:
    original = http.client.HTTPConnection
    outer = _cassette(tmp_path / "outer.yaml", ["outer 1", "outer 2", "outer 3", "outer 4"])
    inner = _cassette(tmp_path / "inner.yaml", ["inner 1", "inner 2"])
    with Flow(cassette=outer, record="none").activate():
        assert _urllib_post() == "outer 1"
        with Flow(cassette=inner, record="none").activate():
            assert _urllib_post() == "inner 1"
            assert _httpx_post() == "inner 2"
        assert _urllib_post() == "outer 2"
        assert _httpx_post() == "outer 3"
    assert http.client.HTTPConnection is original
    assert httpx.HTTPTransport.handle_request.__module__ == "httpx._transports.default"
