"""The cassette YAML fast path reads exactly what PyYAML's safe loader reads, or steps aside.

Generated data is dumped as vcrpy dumps cassettes (its ``_CassetteDumper``: block style, width 80, ASCII
with escapes) and by ``yaml.safe_dump`` at other widths and with Unicode, then read back by
:func:`pytest_agentflows.cassette._yaml_load.load` and by ``yaml.load(..., CSafeLoader)``: the two must give
the same data with the same types (``1`` is not ``True`` is not ``1.0``), or the fast path must raise
``Unsupported``. Mutated texts (characters deleted, inserted, lines re-indented) check the other half:
where PyYAML refuses a text, the fast path never returns data for it.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_yaml_fast import _KEY, _SCALAR

from pytest_agentflows.cassette._yaml_load import Unsupported, load

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ROOT = Path(__file__).resolve().parent.parent

_DATA = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEY, inner, max_size=4)),
    max_leaves=25,
)
_DOC = st.dictionaries(_KEY, _DATA, min_size=1, max_size=5)
_STYLES = st.sampled_from(["vcrpy", "safe-20", "safe-80-unicode", "safe-wide", "vcrpy-list"])


def _typed(value: Any) -> Any:
    """``value`` with every scalar tagged by its type, NaN made comparable."""
    if isinstance(value, dict):
        return ("dict", [(_typed(k), _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


def _dump(data: Any, style: str) -> str:
    from vcr.serializers import yamlserializer

    if style == "vcrpy":
        return str(yamlserializer.serialize(data))
    if style == "vcrpy-list":
        return str(yamlserializer.serialize({"interactions": [data, data], "version": 1}))
    width = {"safe-20": 20, "safe-80-unicode": 80, "safe-wide": 10_000}[style]
    return str(
        yaml.safe_dump(data, width=width, allow_unicode=style.endswith("unicode"), default_flow_style=False)
    )


def _same_or_unsupported(text: str) -> bool:
    """Whether the fast path read ``text`` (True) or stepped aside (False); fails on any difference."""
    try:
        want: Any = _typed(yaml.load(text, Loader=LOADER))
    except (yaml.YAMLError, ValueError) as exc:  # PyYAML refuses it: the fast path must not read it
        want = exc
    try:
        got = load(text)
    except Unsupported:
        return False
    assert not isinstance(want, BaseException), f"PyYAML refuses this text ({want}); the fast path read it"
    assert _typed(got) == want
    return True


_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "derandomize": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


def _round_trip(doc: dict[Any, Any], style: str) -> None:
    _same_or_unsupported(_dump(doc, style))


@settings(max_examples=300, **_SETTINGS)
@given(_DOC, _STYLES)
def test_reads_what_pyyaml_reads(doc: dict[Any, Any], style: str) -> None:
    _round_trip(doc, style)


@pytest.mark.stress
@settings(max_examples=5000, **_SETTINGS)
@given(_DOC, _STYLES)
def test_reads_what_pyyaml_reads_stress(doc: dict[Any, Any], style: str) -> None:
    _round_trip(doc, style)


def _mutations(text: str, rng: random.Random, count: int) -> list[str]:
    out = []
    pieces = [" ", "  ", "\n", ":", ": ", "- ", "'", '"', "#", "\\", "|", "{", "?", "x", "&a", "*a"]
    for _ in range(count):
        chars = list(text)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(chars) + 1)
            op = rng.random()
            if op < 0.4 and chars:
                del chars[min(pos, len(chars) - 1)]
            elif op < 0.8:
                chars[pos:pos] = rng.choice(pieces)
            else:  # re-indent one line
                lines = "".join(chars).split("\n")
                k = rng.randrange(len(lines))
                lines[k] = (
                    (" " * rng.choice([1, 2, 3])) + lines[k] if rng.random() < 0.5 else lines[k].lstrip()
                )
                chars = list("\n".join(lines))
        out.append("".join(chars))
    return out


@settings(max_examples=60, **_SETTINGS)
@given(_DOC, _STYLES, st.randoms(use_true_random=False))
def test_mutated_texts_read_as_pyyaml_or_step_aside(
    doc: dict[Any, Any], style: str, rng: random.Random
) -> None:
    _mutated(doc, style, rng)


def _mutated(doc: dict[Any, Any], style: str, rng: random.Random) -> None:
    for text in _mutations(_dump(doc, style), rng, 8):
        _same_or_unsupported(text)


@pytest.mark.stress
@settings(max_examples=1500, **_SETTINGS)
@given(_DOC, _STYLES, st.randoms(use_true_random=False))
def test_mutated_texts_read_as_pyyaml_or_step_aside_stress(
    doc: dict[Any, Any], style: str, rng: random.Random
) -> None:
    _mutated(doc, style, rng)


def test_every_committed_cassette_of_ours_takes_the_fast_path() -> None:
    """The fast path is the path: each cassette the example suite recorded is read by it, as PyYAML reads it."""
    paths = sorted((ROOT / "docs" / "examples" / "cassettes").rglob("*.yaml"))
    assert len(paths) >= 10
    for path in paths:
        assert _same_or_unsupported(path.read_text(encoding="utf-8")), path


def test_third_party_cassettes_read_the_same_either_way() -> None:
    """Other projects' cassettes (``!!binary`` bodies, literal blocks, ...): read alike, or left to PyYAML."""
    paths = sorted((ROOT / "fixtures").rglob("*.yaml"))
    assert paths
    fast = sum(_same_or_unsupported(p.read_text(encoding="utf-8")) for p in paths)
    assert fast >= len(paths) // 2  # most of them are plain vcrpy layout


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a: !!binary aGk=\n", "tag"),
        ("a: &x 1\nb: *x\n", "anchor"),
        ("a: |\n  text\n", "literal block"),
        ("a: {b: 1}\n", "flow mapping"),
        ("--- \na: 1\n", "document marker"),
        ("a: 1 # note\n", "comment"),
        ("a:\n\tb: 1\n", "tab"),
        ("<<: {}\n", "merge key"),
        ("? a\n: 1\n", "complex key"),
    ],
)
def test_steps_aside_on_yaml_it_does_not_read(text: str, reason: str) -> None:
    with pytest.raises(Unsupported):
        load(text)


_HEADERS = "  headers:\n    accept:\n    - application/json\n    content-length:\n    - '1170'\n    date:\n    - Wed, 01 Jan 2025 00:00:00 GMT\n"
_INLINE = "  status:\n    code: 200\n    message: OK\n"
_FOLDED = '  body: \'{"a":"one two\n    three four",\n    "b":1}\'\n'


@pytest.mark.parametrize(
    "text",
    [
        # entry runs: header runs (name: then a one-item list) and key: value runs, and their edges
        "r:\n" + _HEADERS + _INLINE,
        "- " + _HEADERS[2:] + "- " + _INLINE[2:],
        "r:\n" + _HEADERS + "    x:\n    - a: b\n",  # ': ' in a value
        "r:\n" + _HEADERS + "    x:\n    - a #b\n",  # a comment
        "r:\n" + _HEADERS + "    x:\n    - a#b\n    y: c:d\n",
        "r:\n" + _HEADERS + "    x:\n    - 'it''s'\n    y: '''q'''\n    z: ''\n",  # '' escapes
        "r:\n" + _HEADERS + "    x:\n    - 'a'b'\n",
        "r:\n" + _HEADERS + "    x:\n    - a\n      b\n",  # continued on the next line
        "r:\n" + _HEADERS + "    x:\n    - a\n     b\n",
        "r:\n" + _HEADERS + "    x:\n    - a\n\n    y: b\n",  # a blank line after it
        "r:\n" + _HEADERS + "    x:\n    - a  \n    y: b  \n",  # trailing spaces
        "r:\n" + _HEADERS + "    x:\n    - a\n    - b\n",  # a list of two items
        "r:\n" + _HEADERS + "    x:\n    -  a\n    y:  b\n",
        "r:\n" + _HEADERS + "    x:\n    - a:\n    y: b:\n",
        "r:\n" + _HEADERS + "    x:\n    - yes\n    null:\n    - 0x1f\n    true: 2025-01-01\n    on: ~\n",
        "r:\n" + _HEADERS + "    x:\n    - -1\n    y: -1\n    z: '-1'\n",
        "r:\n" + _HEADERS + "    x:\n  - a\n",
        "r:\n" + _HEADERS + "  - a\n",
        "r:\n" + _HEADERS + "    x:\n    - a\n  y: b\n- c\n",
        "r:\n" + _HEADERS + "    x:\n    - a",  # no final line break
        "r:\n" + _HEADERS + "    x:\n    - a  ",
        "r:\n" + _HEADERS + "    x:\n    - a\n  \n \n",
        "r:\n" + _HEADERS.replace("\n", "\r\n"),  # CRLF
        "r:\n" + _HEADERS.replace("- application", "-\tapplication"),  # a tab
        "r:\n" + _HEADERS.replace("    date:", "    date: "),
        "r:\n" + _HEADERS.replace("'1170'", "'11''70'  "),
        "r:\n" + _INLINE + "    x: a\n      b\n",
        "r:\n" + _INLINE + "    x: 'a'\n      b\n",
        "r:\n" + _INLINE + "    x: a\n    - b\n",
        "r:\n" + _INLINE + "    x: a\n\n",
        "r:\n" + _INLINE + '    x: {}\n    y: []\n    z: "q"\n',
        # folded single-quoted scalars and their edges
        "r:\n" + _FOLDED,
        "r:\n" + _FOLDED.replace("two\n", "two  \n"),  # spaces before a line break
        "r:\n" + _FOLDED.replace('four",\n', 'four",\n\n'),  # a blank line inside
        "r:\n" + _FOLDED.replace('four",\n', 'four",\n      \n'),
        "r:\n" + _FOLDED.replace('four",\n', 'four",\n\n\n'),
        "r:\n" + _FOLDED.replace("    three", "  three"),  # not indented deeper
        "r:\n" + _FOLDED.replace("    three", "   three"),
        "r:\n" + _FOLDED.replace("    three", "         three"),
        "r:\n" + _FOLDED.replace("one two", "it''s two"),
        "r:\n" + _FOLDED.replace("one two\n", "one two''\n"),
        "r:\n" + _FOLDED.replace("one two\n", "one two'\n"),
        "r:\n" + _FOLDED.replace("1}'\n", "1}'  \n"),
        "r:\n" + _FOLDED.replace("1}'\n", "1}' x\n"),
        "r:\n" + _FOLDED.replace("1}'\n", "1}\n    '\n"),
        "r:\n" + _FOLDED.replace("1}'\n", "1}\n  '\n"),
        "r:\n" + _FOLDED.replace("1}'\n", "1}'"),
        "r:\n" + _FOLDED.replace("'{", "'\n    {"),
        "r:\n" + _FOLDED.replace("'{", "'   \n    {"),
        "r:\n" + _FOLDED.replace("'{", "' {"),
        "r:\n" + _FOLDED + "  x: 'a\n\n    b'\n",
        "r:\n" + _FOLDED.replace("\n", "\r\n"),
        "r:\n" + _FOLDED.replace("three", "\tthree"),
        "r:\n" + _FOLDED.replace("three", "thr\u00e9e \u3000x\n    \u00a0y"),
    ],
)
def test_fast_paths_at_their_edges_read_as_pyyaml_or_step_aside(text: str) -> None:
    """Entry runs and folded single-quoted scalars (whole-text fast paths), and texts just outside them."""
    _same_or_unsupported(text)
    for cut in range(1, len(text)):  # every prefix, and the text with each one character deleted
        _same_or_unsupported(text[:cut])
        _same_or_unsupported(text[: cut - 1] + text[cut:])


@pytest.mark.parametrize(
    "text", ["r:\n" + _HEADERS + _INLINE, "r:\n" + _FOLDED, "- " + _HEADERS[2:] + _INLINE]
)
def test_the_usual_shapes_take_the_fast_path(text: str) -> None:
    assert _same_or_unsupported(text)
