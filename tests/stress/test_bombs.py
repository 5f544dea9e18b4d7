"""Bombs: compression and YAML-alias bombs are refused with a CassetteError naming the file, on every path.

Each bomb goes through the public loader (``load_cassette``), the ``agentflow`` fixture's replay
(``Flow(...).activate()``), ``agentflows inspect`` and ``agentflows redact --check`` (exit 2, the message
naming the file); the figures record each bomb's size on disk, what it would expand to, the seconds each
path took and the growth of the process's peak RSS (none of them asserted: the refusals are).

Light (every run): an 80 MiB gzip body, a ``.yaml.gz`` of 300 MiB, a deflate body, a billion-laughs
cassette of 10**9 strings. ``--stress``: the sizes of the report (a 1.5 MB gzip body of 1.5 GiB, a 1 MB
``.yaml.gz`` of 1 GiB, billion laughs of 10**12).
"""

from __future__ import annotations

import contextlib
import io
import resource
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from vcr.serializers import yamlserializer

from pytest_agentflows import CassetteError, Flow
from pytest_agentflows.cassette._load import load_cassette
from pytest_agentflows.cli import main as agentflows_cli

URL = "https://api.openai.com/v1/chat/completions"


def _compressed_zeros(mebibytes: int, wbits: int) -> bytes:
    engine = zlib.compressobj(9, zlib.DEFLATED, wbits)
    chunk = bytes(2**20)
    return b"".join([*(engine.compress(chunk) for _ in range(mebibytes)), engine.flush()])


def _body_bomb(path: Path, mebibytes: int, coding: str) -> Path:
    body = _compressed_zeros(mebibytes, 31 if coding == "gzip" else 15)
    interaction = {
        "request": {"method": "POST", "uri": URL, "body": "{}", "headers": {}},
        "response": {
            "status": {"code": 200, "message": "OK"},
            "headers": {"Content-Encoding": [coding]},
            "body": {"string": body},
        },
    }
    path.write_text(yamlserializer.serialize({"interactions": [interaction], "version": 1}))
    return path


def _file_bomb(path: Path, mebibytes: int) -> Path:
    path.write_bytes(_compressed_zeros(mebibytes, 31))
    return path


def _laughs(path: Path, levels: int) -> Path:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, levels)]
    lines += [
        "interactions:",
        f"- request: {{method: POST, uri: '{URL}', body: null, headers: {{x: *l{levels - 1}}}}}",
        "  response: {status: {code: 200, message: OK}, headers: {}, body: {string: ''}}",
        "version: 1",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = agentflows_cli(list(argv))
    return status, out.getvalue() + err.getvalue()


def _replay(path: Path) -> None:
    with Flow(cassette=str(path), record="none").activate():
        pass


def _refused_everywhere(path: Path, marker: str, redact_decodes: bool = True) -> dict[str, float]:
    """Run the four paths on ``path``; each must refuse it naming the file. Returns seconds per path.

    ``agentflows redact`` looks inside gzip bodies only (it leaves a deflate body as it is, undecoded):
    with ``redact_decodes=False`` it must just not crash.
    """
    seconds: dict[str, float] = {}
    for name, run in (("load_cassette", load_cassette), ("fixture_replay", _replay)):
        t0 = time.perf_counter()
        with pytest.raises(CassetteError) as err:
            run(path)
        seconds[name] = round(time.perf_counter() - t0, 3)
        # the fixture replays no .gz file: it refuses one before reading it (nothing to decompress)
        refusal = "is gzip-compressed" if name == "fixture_replay" and path.suffix == ".gz" else marker
        assert err.value.path == str(path) and refusal in err.value.reason, err.value
    for name, argv in (("inspect", ["inspect"]), ("redact_check", ["redact", "--check"])):
        t0 = time.perf_counter()
        status, text = _cli(*argv, str(path))
        seconds[name] = round(time.perf_counter() - t0, 3)
        if name == "redact_check" and not redact_decodes:
            assert status == 0 and "Traceback" not in text, text
            continue
        assert status == 2 and str(path) in text and marker in text and "Traceback" not in text, text
    return seconds


def _run(tmp_path: Path, figures: Callable[..., None], sizes: dict[str, int]) -> None:
    bombs = {
        "gzip_body": (_body_bomb(tmp_path / "gzip.yaml", sizes["gzip_body"], "gzip"), "decompresses to more"),
        "deflate_body": (
            _body_bomb(tmp_path / "deflate.yaml", sizes["deflate_body"], "deflate"),
            "decompresses to more",
        ),
        "yaml_gz": (_file_bomb(tmp_path / "file.yaml.gz", sizes["yaml_gz"]), "decompresses to more"),
        "billion_laughs": (_laughs(tmp_path / "laughs.yaml", sizes["laugh_levels"]), "billion laughs"),
    }
    for name, (path, marker) in bombs.items():
        before = _peak_rss_mib()
        seconds = _refused_everywhere(path, marker, redact_decodes=name != "deflate_body")
        expands = f"10**{sizes['laugh_levels']} strings" if name == "billion_laughs" else f"{sizes[name]} MiB"
        found = {
            "file_bytes": path.stat().st_size,
            "expands_to": expands,
            **{f"s_{k}": v for k, v in seconds.items()},
            "peak_rss_growth_mib": round(_peak_rss_mib() - before, 1),
            "refused_paths": len(seconds),
        }
        figures(**{f"{name}.{k}": v for k, v in found.items()})
        path.unlink()


def test_bombs_light(tmp_path: Path, figures: Callable[..., None]) -> None:
    _run(tmp_path, figures, {"gzip_body": 80, "deflate_body": 80, "yaml_gz": 300, "laugh_levels": 9})


@pytest.mark.stress
def test_bombs_stress(tmp_path: Path, figures: Callable[..., None]) -> None:
    _run(tmp_path, figures, {"gzip_body": 1536, "deflate_body": 1536, "yaml_gz": 1024, "laugh_levels": 12})
