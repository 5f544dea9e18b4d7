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


class _Base:
    inherited = "base"


class _Child(_Base):
    own = "child"


def _state(target: Any, name: str) -> tuple[Any, Any]:
    return target.__dict__.get(name, "<absent>"), getattr(target, name, "<absent>")


@pytest.mark.parametrize(
    ("target", "name"),
    [(_Child, "own"), (_Child, "inherited"), (http.client, "HTTPConnection")],
    ids=["own class attribute", "inherited class attribute", "module attribute"],
)
def test_a_patch_is_entered_and_undone_as_mock_patch_does(target: Any, name: str) -> None:
    from unittest import mock

    from pytest_agentflows.cassette._patches import _Patch

    before = _state(target, name)
    seen = []
    for patcher in (
        mock.patch.object(target, name, "new"),
        _Patch.of(mock.patch.object(target, name, "new")),
    ):
        with patcher:
            seen.append(_state(target, name))
        seen.append(_state(target, name))
    assert seen[:2] == seen[2:]  # the same during and after as mock.patch
    assert seen[0] == ("new", "new") and seen[1] == before
    assert isinstance(_Patch.of(mock.patch.object(target, name, "new")), _Patch)
    assert not isinstance(_Patch.of(mock.patch.object(target, name)), _Patch)  # a MagicMock: mock does it


def test_a_patch_of_a_missing_attribute_fails_as_mock_patch_does() -> None:
    from unittest import mock

    from pytest_agentflows.cassette._patches import _Patch

    for patcher in (
        mock.patch.object(_Child, "missing", 1),
        _Patch.of(mock.patch.object(_Child, "missing", 1)),
    ):
        with pytest.raises(AttributeError, match="does not have the attribute 'missing'"), patcher:
            pass
    assert "missing" not in _Child.__dict__


def test_every_vcrpy_patch_is_in_place_during_a_flow_and_undone_after(tmp_path: Path) -> None:
    from pytest_agentflows.cassette import _patches

    with Flow(cassette=_cassette(tmp_path / "warm.yaml", ["warm"]), record="none").activate():
        assert _urllib_post() == "warm"
    fast = [p for built in _patches._built.values() for p in built if isinstance(p, _patches._Patch)]
    assert len(fast) >= 20  # vcrpy's patchers of http.client, urllib3/requests, httpx (and httpx2)
    before = [_state(p.target, p.attribute) for p in fast]
    last = {(id(p.target), p.attribute): p.new for p in fast}  # vcrpy patches a few attributes twice
    with Flow(cassette=_cassette(tmp_path / "c.yaml", ["x"]), record="none").activate():
        during = [getattr(p.target, p.attribute) for p in fast]
    for p, value in zip(
        fast, during, strict=True
    ):  # vcrpy's stub, or the replay wrapper around it (httpx transports)
        assert value is last[id(p.target), p.attribute] or value.__qualname__.startswith("Recorder.")
    assert all(new is not old for new, (_, old) in zip(during, before, strict=True))
    assert [_state(p.target, p.attribute) for p in fast] == before
