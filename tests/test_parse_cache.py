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


CONFTEST = """
import sys

def pytest_sessionfinish(session):
    print("GENAI_PRICES_LOADED", "genai_prices" in sys.modules)
    print("YAML_READER_LOADED", "pytest_agentflows.cassette._yaml_load" in sys.modules)
"""


def _yaml_reader_loaded(result: pytest.RunResult) -> bool:
    (loaded,) = [line.split()[-1] for line in result.outlines if "YAML_READER_LOADED" in line]
    return loaded == "True"


def _spend(result: pytest.RunResult) -> tuple[bool, str]:
    """(genai-prices imported, the summary line's spend) of a session of the project below."""
    (loaded,) = [line.split()[-1] for line in result.outlines if "GENAI_PRICES_LOADED" in line]
    (summary,) = [line for line in result.outlines if line.startswith("agentflows: 1 flow,")]
    return loaded == "True", summary.split(", ")[-2]


def test_a_session_prices_calls_with_the_rates_an_earlier_one_worked_out(pytester: pytest.Pytester) -> None:
    """genai-prices' bundled snapshot takes ~40 ms to load: a session whose models all have rates kept by an
    earlier one (for the same installed snapshot) never loads it, and prices every call the same."""
    _project(pytester)
    pytester.makeconftest(CONFTEST)
    first = pytester.runpytest_subprocess("-s")
    loaded, spend = _spend(first)
    assert loaded and spend.startswith("$") and _yaml_reader_loaded(first)
    kept = pytester.path / ".pytest_cache" / "v" / "agentflows" / "price-rates"
    assert '"gpt-4o-mini' in kept.read_text()
    second = pytester.runpytest_subprocess("-s")
    assert _spend(second) == (False, spend)
    assert not _yaml_reader_loaded(second)  # (nor the YAML reader: the cassette came from the parse cache)

    text = kept.read_text()
    kept.write_text(text.replace('"identity": "', '"identity": "another snapshot '))  # genai-prices upgraded
    assert _spend(pytester.runpytest_subprocess("-s")) == (True, spend)
    assert kept.read_text() == text  # worked out again, kept for the installed snapshot

    kept.write_text(text[: len(text) // 2])  # a broken file: priced by genai-prices, never an error
    assert _spend(pytester.runpytest_subprocess("-s")) == (True, spend)
    assert _spend(pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")) == (True, spend)


def test_kept_rates_are_taken_only_in_their_shape() -> None:
    from pytest_agentflows.providers import _pricing

    saved = dict(_pricing._rates_by_key)
    try:
        _pricing._rates_by_key.clear()
        good = ["openai", "m-kept", None, "0.001", "1E-7", "6E-7", "-7.5E-8", "0", "0"]
        bad = [["openai", "m"], ["openai", "m", None, "x", "1", "1", "1", "1", "1"], "row", [1] * 9]
        assert _pricing.use_kept_rates([*bad, good]) == 1
        assert _pricing.use_kept_rates("not a list") == 0
        usage = {"input_tokens": 1000, "output_tokens": 1000, "cache_read_tokens": 100}
        usage |= {"cache_write_tokens": 100, "cache_write_1h_tokens": 10}  # (the base usage of the rates)
        assert _pricing.price_usd("openai", "m-kept", **usage) == 0.001
        usage["output_tokens"] += 10  # 10 tokens more at 6E-7 each
        assert _pricing.price_usd("openai", "m-kept", **usage) == 0.001006
        assert _pricing.kept_rates() == [
            ["openai", "m-kept", None, "0.001", "1E-7", "6E-7", "-7.5E-8", "0", "0"]
        ]
    finally:
        _pricing._rates_by_key.clear()
        _pricing._rates_by_key.update(saved)
