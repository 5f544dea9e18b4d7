"""The decision-log YAML fast path writes exactly what ``yaml.safe_dump`` writes."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_agentflows import Decision
from pytest_agentflows.plugin._yaml_fast import DUMP_OPTIONS, Fallback, dump, fast_safe_dump
from pytest_agentflows.plugin.snapshot import decision_dict

# strings that exercise every style decision: plain, folded plain, YAML 1.1 look-alikes (quoted), ": " and
# " #" (quoted), quotes inside, long runs past the width, odd spaces, non-ASCII, control characters
_WORDS = st.sampled_from(
    [
        "route",
        "billing",
        "gpt-4o-mini",
        "yes",
        "No",
        "null",
        "~",
        "1.5",
        "12:30",
        "2024-01-01",
        "0x1F",
        "on",
        "a: b",
        "a:b",
        "a #b",
        "a#b",
        "-a",
        "- a",
        "'q'",
        'say "hi"',
        "it's",
        "",
        " ",
        "x  y",
        "é日本",
        "\t",
        "\x85",
        "\u2028",
        "[a]",
        "{b}",
        "*star",
        "&anchor",
        "!tag",
        "%pct",
        "@at",
        "`tick`",
        "|",
        ">",
        "?",
        ":",
    ]
)
_TEXT = st.one_of(
    _WORDS,
    st.lists(_WORDS, min_size=1, max_size=40).map(" ".join),
    st.text(max_size=130),
)
_SCALAR = st.one_of(
    _TEXT,
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
)
_KEY = st.one_of(_WORDS, st.from_regex(r"[a-z_]{1,12}", fullmatch=True), st.text(max_size=140))
_VALUE = st.one_of(
    _SCALAR,
    st.lists(_SCALAR, max_size=4),
    st.dictionaries(_KEY, _SCALAR, max_size=3),
    st.lists(st.lists(_SCALAR, max_size=2), max_size=2),
)
_LOG = st.lists(st.dictionaries(_KEY, _VALUE, min_size=1, max_size=6), min_size=1, max_size=4)


def _check(items: list[dict[str, Any]]) -> None:
    expected = yaml.safe_dump(items, **DUMP_OPTIONS)
    assert dump(items) == expected
    with contextlib.suppress(Fallback):
        assert fast_safe_dump(items) == expected


_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "derandomize": True,
    "suppress_health_check": [HealthCheck.too_slow],
}


@settings(max_examples=150, **_SETTINGS)
@given(_LOG)
def test_fast_path_writes_pyyaml_bytes(items: list[dict[str, Any]]) -> None:
    _check(items)


@pytest.mark.stress
@settings(max_examples=5000, **_SETTINGS)
@given(_LOG)
def test_fast_path_writes_pyyaml_bytes_stress(items: list[dict[str, Any]]) -> None:
    _check(items)


def test_a_realistic_log_takes_the_fast_path() -> None:
    decisions = [
        Decision(
            seq=0,
            at=0.8,
            kind="route",
            agent="router",
            chosen="billing",
            reason="classifier answered 'billing'",
        ),
        Decision(
            seq=1,
            at=4.4,
            kind="model_call",
            agent="billing",
            model="gpt-4o-mini",
            input_tokens=38,
            output_tokens=38,
            cost_usd=2.9e-05,
            latency_s=3.6,
        ),
        Decision(
            seq=2,
            at=9.0,
            kind="agent_failed",
            agent="status",
            error="Error code: 500 - responder raised RuntimeError: status page backend overloaded "
            "during the outage and then some more words to pass the width of a line",
        ),
        Decision(
            seq=3,
            at=10.0,
            kind="broadcast_complete",
            agent=None,
            succeeded=["fast", "analyst"],
            failed=[],
            timed_out=["slow"],
            scores={"fast": 0.5},
        ),
    ]
    items = [decision_dict(d) for d in decisions]
    text = fast_safe_dump(items)  # no Fallback
    assert text == yaml.safe_dump(items, **DUMP_OPTIONS)
    assert "\n    during the outage" in text or "\n    " in text  # the long error was folded like PyYAML


@pytest.mark.parametrize("items", [[], [{}], [{"k": float("nan")}], [{"k": [[1]]}], [{"x" * 200: 1}]])
def test_shapes_it_does_not_promise_fall_back(items: list[dict[str, Any]]) -> None:
    with pytest.raises(Fallback):
        fast_safe_dump(items)
    assert dump(items) == yaml.safe_dump(items, **DUMP_OPTIONS)
