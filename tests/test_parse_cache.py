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
    fmt, digest, sha, size, kept, keys = marshal.loads(blob)
    entry.write_bytes(marshal.dumps((fmt, b"another parser", sha, size, kept, keys)))
    assert cache.get(str(SOURCE), raw) is None
    entry.write_bytes(marshal.dumps((fmt, digest, sha, size, kept[:-3], keys)))  # its data cut short
    assert cache.get(str(SOURCE), raw) is None
    entry.write_bytes(marshal.dumps((fmt, digest, sha, size, kept, keys)))
    assert cache.get(str(SOURCE), raw) == data
    entry.write_bytes(marshal.dumps(["not", "an", "entry"]))
    assert cache.get(str(SOURCE), raw) is None


def test_keys_are_kept_for_the_bytes_and_settings_they_were_made_for(tmp_path: Path) -> None:
    raw = SOURCE.read_bytes()
    path = str(SOURCE)
    data = parse_cassette(raw.decode(), path)
    cache = ParseCache(tmp_path)
    settings = (("api_key",), ())
    keys = [("POST", "https://x/v1/chat/completions", '{"a":1}')]
    assert cache.keys(path, settings, 1) is None  # nothing loaded from this path yet
    cache.put_keys(path, settings, keys)
    assert not list(tmp_path.iterdir())  # keys belong to loaded bytes: none known yet
    assert cache.get(path, raw) is None
    cache.put(path, raw, data)  # (a miss: parsed and kept) the bytes are known from here on
    assert cache.keys(path, settings, 1) is None
    cache.put_keys(path, settings, keys)

    fresh = ParseCache(tmp_path)  # another session
    assert fresh.keys(path, settings, 1) is None  # load the file first
    assert fresh.get(path, raw) == data
    assert fresh.keys(path, settings, 1) == keys  # ... then its keys are taken
    assert fresh.keys(path, settings, 2) is None  # another number of requests
    other = (("api_key",), (("messages",),))  # other match_ignore paths: computed, kept beside
    assert fresh.keys(path, other, 1) is None
    fresh.put_keys(path, other, [("POST", "u", "b")])
    again = ParseCache(tmp_path)
    assert again.get(path, raw) == data
    assert again.keys(path, settings, 1) == keys and again.keys(path, other, 1) == [("POST", "u", "b")]
    assert again.keys(str(tmp_path / "other.yaml"), settings, 1) is None  # another cassette's
    assert again.get(path, raw + b"\n") is None  # the file changed: its keys were made for other bytes
    assert again.keys(path, settings, 1) is None

    entry = next(tmp_path.glob("*.marshal"))
    fmt, digest, sha, size, blob, (_keys_digest, kept) = marshal.loads(entry.read_bytes())
    entry.write_bytes(marshal.dumps((fmt, digest, sha, size, blob, (b"other key code", kept))))
    stale = ParseCache(tmp_path)
    assert stale.get(path, raw) == data and stale.keys(path, settings, 1) is None


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
    fmt, digest, sha, size, blob, keys = marshal.loads(entry.read_bytes())
    data = marshal.loads(blob)
    body = data["interactions"][0]["response"]["body"]
    body["string"] = body["string"].replace(original, "FROM THE CACHE")
    entry.write_bytes(marshal.dumps((fmt, digest, sha, size, marshal.dumps(data), keys)))
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


def _keys_entry(pytester: pytest.Pytester) -> Path:
    (entry,) = (pytester.path / ".pytest_cache" / "d" / "agentflows-parsed").glob("*.marshal")
    return entry


def _replace_keys(entry: Path) -> None:
    """Make every kept key one no request has: a replay that uses them misses."""
    fmt, digest, sha, size, blob, (keys_digest, kept) = marshal.loads(entry.read_bytes())
    assert kept  # (keys were kept)
    kept = {
        settings: [(method, url + "?kept-key", body) for method, url, body in keys]
        for settings, keys in kept.items()
    }
    entry.write_bytes(marshal.dumps((fmt, digest, sha, size, blob, (keys_digest, kept))))


def test_a_session_uses_the_replay_keys_an_earlier_one_kept(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    # the body sent as other bytes with the same JSON: matched through the replay keys, not the bytes
    pytester.makepyfile(
        test_cached=TEST.replace(
            'content=first["body"]', 'content=json.dumps(json.loads(first["body"]), indent=1)'
        ).replace("import httpx", "import json\nimport httpx")
    )
    cassette = pytester.path / "cassettes" / "test_cached" / "replayed.yaml"
    cassette.parent.mkdir(parents=True)
    shutil.copy(SOURCE, cassette)
    pytester.runpytest_subprocess("-s").assert_outcomes(passed=1)

    _replace_keys(_keys_entry(pytester))  # the kept keys are used: the request no longer matches
    missed = pytester.runpytest_subprocess("-s")
    missed.assert_outcomes(failed=1)
    missed.stdout.fnmatch_lines(["*UnrecordedRequestError*"])

    # other match_ignore paths: other keys, computed again (and kept for these settings)
    pytester.makeini(INI + "agentflows_match_ignore = metadata\n")
    pytester.runpytest_subprocess("-s").assert_outcomes(passed=1)

    # a redaction setting that makes the hooks rewrite loaded requests: keys never taken from the cache
    _replace_keys(_keys_entry(pytester))
    pytester.makeini(INI + "agentflows_match_ignore = metadata\nagentflows_redact_headers = x-team-token\n")
    pytester.runpytest_subprocess("-s").assert_outcomes(passed=1)


CONFTEST = """
import sys

def pytest_sessionfinish(session):
    print("GENAI_PRICES_LOADED", "genai_prices" in sys.modules)
"""


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
    loaded, spend = _spend(pytester.runpytest_subprocess("-s"))
    assert loaded and spend.startswith("$")
    kept = pytester.path / ".pytest_cache" / "v" / "agentflows" / "price-rates"
    assert '"gpt-4o-mini' in kept.read_text()
    assert _spend(pytester.runpytest_subprocess("-s")) == (False, spend)

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
