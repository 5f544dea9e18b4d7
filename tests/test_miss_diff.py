"""The nearest-request diff of a miss is bounded whatever the cassette (issue 16, item 1).

No test here measures time (``benchmarks/miss.py`` prints the figures); instead each checks the work the
diff does: what difflib is given to align, how many candidates are scored, that the right one wins.
"""

from __future__ import annotations

import difflib
import json
import random
from typing import Any

import pytest

from pytest_agentflows.cassette import _keys
from pytest_agentflows.cassette._keys import (
    MAX_DIFF_LINES_IN,
    MAX_LINE_CHARS,
    nearest_diff,
    request_key,
)

URL = "https://api.openai.com/v1/chat/completions"
WORDS = [
    "agent",
    "plan",
    "route",
    "tool",
    "call",
    "budget",
    "deadline",
    "cassette",
    "replay",
    "token",
    "usage",
    "span",
]


def _body(seed: int, size: int) -> str:
    rng = random.Random(seed)
    text = " ".join(rng.choice(WORDS) + str(rng.randrange(1000)) for _ in range(size // 8))[:size]
    return json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})


def _changed(body: str) -> str:
    data = json.loads(body)
    text = data["messages"][0]["content"]
    data["messages"][0]["content"] = text[:-40] + " CHANGED " + text[-31:]
    return json.dumps(data)


class _Spy:
    """Records the longest sequence any ``difflib.SequenceMatcher`` was asked to align."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.longest = 0
        real = difflib.SequenceMatcher
        spy = self

        class Counting(real):  # type: ignore[misc, valid-type]
            def set_seqs(self, a: Any, b: Any) -> None:
                spy.longest = max(spy.longest, len(a), len(b))
                super().set_seqs(a, b)

        monkeypatch.setattr(difflib, "SequenceMatcher", Counting)


def test_miss_against_large_bodies_never_aligns_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    """10 x 20 KB recorded bodies: difflib only ever aligns capped lists of lines, not 20 KB strings.

    Before: ``SequenceMatcher(None, body, body).ratio()`` over every recorded body (quadratic in the body
    size: 195 s for this cassette).
    """
    recorded = [request_key("POST", URL, _body(i, 20_000)) for i in range(10)]
    sent = request_key("POST", URL, _changed(_body(4, 20_000)))
    spy = _Spy(monkeypatch)
    diff = nearest_diff(sent, recorded)
    assert spy.longest <= MAX_DIFF_LINES_IN + 1
    assert "CHANGED" in diff  # the nearest body (seed 4) was found: the diff is one changed line


def test_the_nearest_body_wins_among_many_of_the_same_size() -> None:
    """1,000 bodies of the same length and URL: the pre-selection still keeps the one that differs least."""
    recorded = [request_key("POST", URL, _body(i, 2_000)) for i in range(1_000)]
    sent = request_key("POST", URL, _changed(_body(617, 2_000)))
    diff = nearest_diff(sent, recorded)
    minus = [line for line in diff.splitlines() if line[:1] == "-" and not line.startswith("---")]
    plus = [line for line in diff.splitlines() if line[:1] == "+" and not line.startswith("+++")]
    assert len(minus) == len(plus) == 1  # one line differs: the content, shown around the change
    assert "CHANGED" in plus[0] and "CHANGED" not in minus[0]


def test_long_lines_are_shown_around_their_difference() -> None:
    recorded = [request_key("POST", URL, _body(1, 50_000))]
    diff = nearest_diff(request_key("POST", URL, _changed(_body(1, 50_000))), recorded)
    lines = diff.splitlines()
    assert max(len(line) for line in lines) <= MAX_LINE_CHARS + 40
    assert any("CHANGED" in line for line in lines)


def test_candidates_scored_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    scored: list[int] = []
    real = _keys._tokens
    monkeypatch.setattr(_keys, "_tokens", lambda text: scored.append(len(text)) or real(text))
    recorded = [request_key("POST", URL, _body(i, 500)) for i in range(500)]
    nearest_diff(request_key("POST", URL, _changed(_body(3, 500))), recorded)
    assert len(scored) <= _keys.MAX_DIFF_CANDIDATES + 1
