"""Compression bombs and alias bombs raise CassetteError naming the file (issue 16, item 6).

A gzip-bomb response body, a ``.yaml.gz`` cassette that decompresses to gigabytes and a "billion laughs"
YAML cassette are refused while loading, through the public loader, the ``agentflow`` fixture's replay
and the ``agentflows`` command (exit 2, the documented status for an unreadable file), instead of taking
gigabytes and minutes, or ending in a bare ``MemoryError``.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pytest
from vcr.serializers import yamlserializer

from pytest_agentflows import CassetteError, Flow
from pytest_agentflows.cassette import _store
from pytest_agentflows.cassette._load import load_cassette
from pytest_agentflows.cli import main
from pytest_agentflows.providers import _body

URL = "https://api.openai.com/v1/chat/completions"


def gzip_zeros(megabytes: int) -> bytes:
    """``megabytes`` MiB of zeros, gzip-compressed (about 1/1000 of that), without holding them."""
    engine = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(2**20)
    return b"".join([*(engine.compress(chunk) for _ in range(megabytes)), engine.flush()])


def billion_laughs(levels: int = 9) -> str:
    """A ~750-byte cassette whose aliases expand to 10**levels strings."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]")
    lines += [
        "interactions:",
        f"- request: {{method: POST, uri: '{URL}', body: null, headers: {{x: *l{levels - 1}}}}}",
        "  response: {status: {code: 200, message: OK}, headers: {}, body: {string: ''}}",
        "version: 1",
    ]
    return "\n".join(lines) + "\n"


def _write(path: Path, body: bytes, headers: dict[str, list[str]]) -> Path:
    interaction = {
        "request": {"method": "POST", "uri": URL, "body": "{}", "headers": {}},
        "response": {"status": {"code": 200, "message": "OK"}, "headers": headers, "body": {"string": body}},
    }
    path.write_text(yamlserializer.serialize({"interactions": [interaction], "version": 1}))
    return path


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Limits of 4 MiB (bodies) and 8 MiB (files): the same code paths with bombs that build quickly."""
    monkeypatch.setattr(_body, "MAX_DECODED_BODY_BYTES", 4 * 2**20)
    monkeypatch.setattr(_store, "MAX_DECOMPRESSED_CASSETTE_BYTES", 8 * 2**20)
    import pytest_agentflows.cassette._load as load_module

    monkeypatch.setattr(load_module, "MAX_DECOMPRESSED_CASSETTE_BYTES", 8 * 2**20)


def test_gzip_bomb_body_is_refused_by_the_loader(tmp_path: Path) -> None:
    """A real one: 80 MiB of zeros in 80 KB of gzip; decompression stops at the 64 MiB limit."""
    path = _write(tmp_path / "bomb.yaml", gzip_zeros(80), {"Content-Encoding": ["gzip"]})
    with pytest.raises(CassetteError) as err:
        load_cassette(path)
    assert err.value.path == str(path)
    assert err.value.where == "interactions[0].response.body.string"
    assert "decompresses to more than 64 MiB" in err.value.reason


def test_gzip_bomb_body_is_refused_by_the_fixture_replay(tmp_path: Path, small_limits: None) -> None:
    """Before: vcrpy's decode_response inflated it while the cassette loaded, used or not."""
    path = _write(tmp_path / "bomb.yaml", gzip_zeros(6), {"Content-Encoding": ["gzip"]})
    with pytest.raises(CassetteError) as err, Flow(cassette=str(path), record="none").activate():
        pass
    assert err.value.path == str(path) and "decompresses to more than 4 MiB" in err.value.reason


def test_deflate_bomb_body_is_refused(tmp_path: Path, small_limits: None) -> None:
    body = zlib.compress(bytes(6 * 2**20), 9)
    path = _write(tmp_path / "bomb.yaml", body, {"Content-Encoding": ["deflate"]})
    with pytest.raises(CassetteError, match="decompresses to more than 4 MiB"):
        load_cassette(path)


def test_yaml_gz_bomb_is_refused(tmp_path: Path, small_limits: None) -> None:
    path = tmp_path / "bomb.yaml.gz"
    path.write_bytes(gzip_zeros(10))
    with pytest.raises(CassetteError) as err:
        load_cassette(path)
    assert err.value.path == str(path) and "the file decompresses to more than 8 MiB" in err.value.reason
    assert main(["inspect", str(path)]) == 2
    assert main(["redact", "--check", str(path)]) == 2


def test_bounded_gunzip_matches_gzip_for_ordinary_data() -> None:
    data = b"hello " * 1000
    two_members = gzip.compress(data) + gzip.compress(b"more")
    assert _body.gunzip_bounded(two_members, 10**6) == gzip.decompress(two_members)
    with pytest.raises(EOFError):
        _body.gunzip_bounded(gzip.compress(data)[:-10], 10**6)
    with pytest.raises(_body.TooLarge):
        _body.gunzip_bounded(gzip.compress(data), 5999)


def test_billion_laughs_is_refused_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: 75 s, then a bare MemoryError (``inspect`` / ``redact`` exited 1 with a traceback)."""
    text = billion_laughs()
    assert len(text) < 1000
    path = tmp_path / "laughs.yaml"
    path.write_text(text)
    with pytest.raises(CassetteError) as err:
        load_cassette(path)
    assert err.value.path == str(path) and "billion laughs" in err.value.reason
    with (
        pytest.raises(CassetteError, match="billion laughs"),
        Flow(cassette=str(path), record="none").activate(),
    ):
        pass
    capsys.readouterr()
    assert main(["inspect", str(path)]) == 2
    assert main(["redact", "--check", str(path)]) == 2
    assert main(["redact", str(path)]) == 2
    err_text = capsys.readouterr().err
    assert err_text.count(str(path)) == 3 and "billion laughs" in err_text and "Traceback" not in err_text
    assert path.read_text() == text  # untouched


def test_shared_anchors_of_an_ordinary_cassette_still_load(tmp_path: Path) -> None:
    """PyYAML writes an anchor for an object that appears twice: that is no bomb."""
    headers = {"content-type": ["application/json"]}
    interactions = [
        {
            "request": {"method": "POST", "uri": URL, "body": "{}", "headers": headers},
            "response": {
                "status": {"code": 200, "message": "OK"},
                "headers": headers,
                "body": {"string": "{}"},
            },
        }
    ] * 3
    path = tmp_path / "shared.yaml"
    path.write_text(yamlserializer.serialize({"interactions": interactions, "version": 1}))
    assert "&id" in path.read_text()
    assert len(load_cassette(path)) == 3
