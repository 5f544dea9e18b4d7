"""Parsed cassettes are kept in pytest's cache directory and used again only for the same bytes
(``cassette/_parsed.py``): the YAML reader is most of what a replay costs."""

from __future__ import annotations

import marshal
import shutil
from pathlib import Path

import pytest

from pytest_agentflows.cassette import _parsed
from pytest_agentflows.cassette._parsed import ParseCache
from pytest_agentflows.cassette._store import AtomicPersister, parse_cassette

pytest_plugins = ["pytester"]

SOURCE = Path(__file__).parent.parent / "fixtures/cassettes/patterns/router_async_fallback.yaml"


def test_an_entry_is_used_for_the_same_bytes_only(tmp_path: Path) -> None:
    raw = SOURCE.read_bytes()
    data = parse_cassette(raw.decode(), str(SOURCE))
    cache = ParseCache(tmp_path / "parsed")
    assert cache.get(str(SOURCE), raw) is None  # nothing yet
    cache.put(str(SOURCE), raw, data)
    assert cache.get(str(SOURCE), raw) == data
    assert cache.get(str(SOURCE), raw + b"\n") is None  # other bytes: parsed again
    assert cache.get(str(tmp_path / "other.yaml"), raw) is None  # entries are per file
    assert (cache.hits, cache.misses) == (1, 3)


def test_bad_or_foreign_entries_are_misses_not_errors(tmp_path: Path) -> None:
    raw = SOURCE.read_bytes()
    data = parse_cassette(raw.decode(), str(SOURCE))
    cache = ParseCache(tmp_path)
    cache.put(str(SOURCE), raw, data)
    (entry,) = tmp_path.glob("*.marshal")
    blob = entry.read_bytes()
    entry.write_bytes(blob[: len(blob) // 2])  # truncated
    assert cache.get(str(SOURCE), raw) is None
    fmt, _digest, sha, size, kept = marshal.loads(blob)
    entry.write_bytes(marshal.dumps((fmt, b"another parser", sha, size, kept)))
    assert cache.get(str(SOURCE), raw) is None
    entry.write_bytes(marshal.dumps(["not", "an", "entry"]))
    assert cache.get(str(SOURCE), raw) is None


def test_what_marshal_cannot_hold_is_not_kept(tmp_path: Path) -> None:
    import datetime

    cache = ParseCache(tmp_path / "parsed")
    cache.put("x.yaml", b"x", {"recorded_at": datetime.date(2025, 1, 1)})  # a YAML timestamp
    assert not (tmp_path / "parsed").exists() or not list((tmp_path / "parsed").iterdir())
    blocked = tmp_path / "file"
    blocked.write_text("a file where the directory should be")
    ParseCache(blocked).put("x.yaml", b"x", {"a": 1})  # not writable: silently nothing


def test_the_persister_reads_through_the_active_cache(tmp_path: Path) -> None:
    raw = SOURCE.read_bytes()
    cache = ParseCache(tmp_path)
    _parsed.use(cache)
    try:
        first = AtomicPersister.parse_bytes(raw, str(SOURCE))
        second = AtomicPersister.parse_bytes(raw, str(SOURCE))
    finally:
        _parsed.use(None)
    assert (cache.hits, cache.misses) == (1, 1)
    assert [r._to_dict() for r in first[0]] == [r._to_dict() for r in second[0]]
    assert first[1] == second[1]  # the responses, bodies as bytes in both


INI = """
[pytest]
addopts = -p no:randomly
asyncio_default_fixture_loop_scope = function
"""

TEST = """
import httpx
import pytest
import yaml


@pytest.mark.agentflow(cassette="replayed.yaml")
def test_replays(agentflow):
    first = yaml.safe_load(open(agentflow.cassette_path))["interactions"][0]["request"]
    reply = httpx.post(first["uri"], content=first["body"], headers={"content-type": "application/json"})
    print("REPLY", reply.json()["choices"][0]["message"]["content"])
"""


def _reply(result: pytest.RunResult) -> str:
    (line,) = [line for line in result.outlines if "REPLY " in line]
    return line.split("REPLY ", 1)[1].strip()


def _project(pytester: pytest.Pytester) -> Path:
    """A project with one flow test replaying a copy of ``SOURCE``; the copy's path."""
    pytester.makeini(INI)
    pytester.makepyfile(test_cached=TEST)
    cassette = pytester.path / "cassettes" / "test_cached" / "replayed.yaml"
    cassette.parent.mkdir(parents=True)
    shutil.copy(SOURCE, cassette)
    return cassette


def test_a_session_uses_the_entry_an_earlier_one_wrote(pytester: pytest.Pytester) -> None:
    cassette = _project(pytester)

    first = pytester.runpytest_subprocess("-s")
    first.assert_outcomes(passed=1)
    original = _reply(first)
    (entry,) = (pytester.path / ".pytest_cache" / "d" / "agentflows-parsed").glob("*.marshal")

    # an entry for these very bytes is taken as it is: edit its reply to see that it is read
    fmt, digest, sha, size, data = marshal.loads(entry.read_bytes())
    body = data["interactions"][0]["response"]["body"]
    body["string"] = body["string"].replace(original, "FROM THE CACHE")
    entry.write_bytes(marshal.dumps((fmt, digest, sha, size, data)))
    second = pytester.runpytest_subprocess("-s")
    second.assert_outcomes(passed=1)
    assert _reply(second) == "FROM THE CACHE"

    # the cassette changed (one byte more): parsed again, the entry replaced
    cassette.write_bytes(cassette.read_bytes() + b"\n")
    third = pytester.runpytest_subprocess("-s")
    assert _reply(third) == original
    assert marshal.loads(entry.read_bytes())[2] != sha


def test_no_cache_without_pytests_cacheprovider(pytester: pytest.Pytester) -> None:
    _project(pytester)
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / ".pytest_cache").exists()
