"""A fast path for ``yaml.safe_dump`` of decision logs that writes exactly the same bytes.

PyYAML's emitter is pure Python (libyaml's C emitter escapes and folds strings differently, so switching
would change stored snapshots and tie them to libyaml being installed). Decision logs have one shape: a
list of mappings whose values are scalars, lists of scalars or small mappings. :func:`fast_safe_dump`
writes that shape directly and asks PyYAML's own code everything that decides the bytes: the resolver
(would ``yes`` / ``1.5`` / ``12:30`` read back as a string?) and the emitter's ``analyze_scalar`` (plain,
single-quoted or double-quoted?). It reproduces line folding at ``width`` for plain and single-quoted
scalars, and gives up (:class:`Fallback`) on everything else: double-quoted strings, nested lists,
non-finite floats, long keys. ``tests/test_yaml_fast.py`` compares it with PyYAML on generated data.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import yaml

__all__ = ["DUMP_OPTIONS", "Fallback", "dump", "fast_safe_dump"]

WIDTH = 100
DUMP_OPTIONS: dict[str, Any] = {
    "sort_keys": False,
    "allow_unicode": True,
    "default_flow_style": False,
    "width": WIDTH,
}
_RESOLVER = yaml.resolver.Resolver()
_EMITTER = yaml.emitter.Emitter(io.StringIO(), allow_unicode=True, width=WIDTH)
_STR_TAG = "tag:yaml.org,2002:str"
_MAX_KEY = 64  # PyYAML writes keys over 128 characters as complex "? key" entries


class Fallback(Exception):
    """The fast path does not promise PyYAML's bytes for this data."""


@functools.lru_cache(maxsize=8192)
def _style(text: str) -> str:
    """PyYAML's choice for a str value in block context: ``""`` plain, ``"'"`` single, ``'"'`` double."""
    analysis = _EMITTER.analyze_scalar(text)
    implicit = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == _STR_TAG  # type: ignore[no-untyped-call]
    if implicit and analysis.allow_block_plain and not analysis.multiline:
        return ""
    if analysis.allow_single_quoted and not analysis.multiline:
        return "'"
    return '"'


def _plain(text: str, column: int, indent: int | None) -> str:
    # Emitter.write_plain: a single space becomes a line break once the column has passed the width
    if column + len(text) <= WIDTH:
        return text
    if indent is None:
        raise Fallback
    out = []
    for k, word in enumerate(text.split(" ")):
        if k:
            if column > WIDTH:
                out.append("\n" + " " * indent)
                column = indent
            else:
                out.append(" ")
                column += 1
        out.append(word)
        column += len(word)
    return "".join(out)


def _single_quoted(text: str, column: int, indent: int | None) -> str:
    # Emitter.write_single_quoted, without line breaks (the text has none: analyze_scalar said so)
    out = ["'"]
    column += 1
    spaces = False
    start = end = 0
    size = len(text)
    while end <= size:
        ch = text[end] if end < size else None
        if spaces:
            if ch != " ":
                if start + 1 == end and column > WIDTH and start != 0 and end != size:
                    if indent is None:
                        raise Fallback
                    out.append("\n" + " " * indent)
                    column = indent
                else:
                    out.append(text[start:end])
                    column += end - start
                start = end
        elif (ch is None or ch in " '") and start < end:
            out.append(text[start:end])
            column += end - start
            start = end
        if ch == "'":
            out.append("''")
            column += 2
            start = end + 1
        if ch is not None:
            spaces = ch == " "
        end += 1
    out.append("'")
    return "".join(out)


def _scalar(value: Any, column: int, indent: int | None) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise Fallback
        text = repr(value).lower()  # SafeRepresenter.represent_float
        return text.replace("e", ".0e", 1) if "." not in text and "e" in text else text
    if isinstance(value, str):
        style = _style(value)
        if style == "":
            return _plain(value, column, indent)
        if style == "'":
            return _single_quoted(value, column, indent)
    raise Fallback


def _mapping(data: dict[str, Any], indent: int, first_prefix: str, out: list[str]) -> None:
    pad = " " * indent
    prefix = first_prefix
    for key, value in data.items():
        if not (isinstance(key, str) and 0 < len(key) <= _MAX_KEY and _style(key) == ""):
            raise Fallback
        head = f"{prefix}{key}:"
        prefix = pad
        if isinstance(value, dict):
            if not value:
                out.append(f"{head} {{}}")
                continue
            out.append(head)
            _mapping(value, indent + 2, " " * (indent + 2), out)
        elif isinstance(value, list):
            if not value:
                out.append(f"{head} []")
                continue
            out.append(head)
            for item in value:
                if isinstance(item, dict | list):
                    raise Fallback
                out.append(f"{pad}- {_scalar(item, indent + 2, None)}")
        else:
            out.append(f"{head} {_scalar(value, len(head) + 1, indent + 2)}")


def fast_safe_dump(items: list[dict[str, Any]]) -> str:
    """``yaml.safe_dump(items, **DUMP_OPTIONS)`` for a non-empty list of non-empty mappings.

    Raises:
        Fallback: the data has a shape or a string this path does not write byte-for-byte like PyYAML.
    """
    if not items:
        raise Fallback
    out: list[str] = []
    for item in items:
        if not isinstance(item, dict) or not item:
            raise Fallback
        _mapping(item, 2, "- ", out)
    out.append("")
    return "\n".join(out)


def dump(items: list[dict[str, Any]]) -> str:
    """The YAML text ``yaml.safe_dump(items, **DUMP_OPTIONS)`` writes, by the fast path when it can."""
    try:
        return fast_safe_dump(items)
    except Fallback:
        return str(yaml.safe_dump(items, **DUMP_OPTIONS))
