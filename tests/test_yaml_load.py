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
