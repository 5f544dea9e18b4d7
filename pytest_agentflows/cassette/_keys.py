"""Canonical request keys for replay matching, and the nearest-request diff for misses.

A request key is ``(method, url, body)``: the URL without secret query parameters, with sorted query and
loopback hosts' ports dropped (a local model server gets a new port on every run); the body as canonical
JSON (sorted keys, compact) when it is JSON, otherwise its raw text. Headers never take part: SDKs put
versions, retry counts and platform details there.

A JSON body is normalised first (:func:`normalise_json`), so what frameworks change on every run does not
break matching: UUID-shaped strings are numbered by first appearance (``uuid-1``, ``uuid-2``, ...), a
``tools`` / ``functions`` list compares in any order, and JSON paths given with ``match_ignore``
(``messages.*.tool_call_id``) are left out.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"})

RequestKey = tuple[str, str, str]


def body_text(body: Any) -> str:
    """A request/response body (bytes, str, None) as text (UTF-8, undecodable bytes escaped)."""
    if body is None:
        return ""
    if isinstance(body, bytes | bytearray):
        return bytes(body).decode("utf-8", errors="backslashreplace")
    return str(body)


def canonical_url(uri: str, secret_query: Iterable[str] = ()) -> str:
    """``uri`` with secret query parameters removed, the query sorted and loopback ports dropped."""
    return _canonical_url(uri, frozenset(k.lower() for k in secret_query))


@functools.lru_cache(maxsize=1024)
def _canonical_url(uri: str, secret: frozenset[str]) -> str:
    # cached: a flow sends few distinct URLs, and a cassette stores few (one per endpoint)
    parts = urlsplit(uri)
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in secret
    )
    host = (parts.hostname or "").lower()
    netloc = host if host in LOOPBACK else parts.netloc.lower().rsplit("@", 1)[-1]
    if host in LOOPBACK:
        netloc = "localhost"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", urlencode(query), ""))


UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
"""A UUID in any of its usual spellings (``uuid4()``, hex digits in 8-4-4-4-12 groups)."""
TOOL_LISTS = frozenset({"tools", "functions"})
"""Keys whose list values are tool definitions: compared in any order."""


def parse_path(path: str) -> tuple[str, ...]:
    """``"messages.*.tool_call_id"`` -> ``("messages", "*", "tool_call_id")``.

    Raises:
        ValueError: for an empty path or an empty segment (``"a..b"``).
    """
    parts = tuple(path.split(".")) if isinstance(path, str) else ()
    if not parts or any(not part for part in parts):
        raise ValueError(
            f"a match_ignore path must be dot-separated JSON keys, list indexes or '*', got {path!r} "
            "(e.g. 'messages.*.tool_call_id')"
        )
    return parts


@dataclass
class Normalised:
    """What :func:`normalise_json` changed in one body (for the miss message)."""

    uuids: int = 0
    """UUID-shaped strings numbered."""
    tool_lists: int = 0
    """Tool lists put in a fixed order."""
    ignored: list[str] = field(default_factory=list)
    """``match_ignore`` paths that matched something."""

    def describe(self) -> str:
        """One line, ``""`` when nothing changed."""
        parts = []
        if self.uuids:
            parts.append(f"{self.uuids} UUID(s) numbered by first appearance")
        if self.tool_lists:
            parts.append("tool lists compared in any order")
        if self.ignored:
            parts.append(f"match_ignore left out {', '.join(self.ignored)}")
        return "; ".join(parts)


def normalise_json(
    data: Any, ignore: Iterable[tuple[str, ...]] = (), report: Normalised | None = None
) -> Any:
    """``data`` (a parsed JSON body) with what changes on every run made stable (module docstring).

    Args:
        data: The parsed body; not modified.
        ignore: Parsed ``match_ignore`` paths (:func:`parse_path`); ``*`` matches any key or index.
        report: Filled with what was changed, if given.
    """
    for path in ignore:
        data, hit = _without(data, path)
        if hit and report is not None:
            report.ignored.append(".".join(path))
    data = _order_tools(data, report)
    numbers: dict[str, str] = {}
    data = _number_uuids(data, numbers)
    if report is not None:
        report.uuids = len(numbers)
    return data


def _without(data: Any, path: tuple[str, ...]) -> tuple[Any, bool]:
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        keys = list(data) if head == "*" else [head] if head in data else []
        if not keys:
            return data, False
        out, hit = dict(data), False
        for key in keys:
            if rest:
                out[key], found = _without(data[key], rest)
                hit = hit or found
            else:
                del out[key]
                hit = True
        return out, hit
    if isinstance(data, list):
        if head == "*":
            indexes = range(len(data))
        elif head.isdigit() and int(head) < len(data):
            indexes = range(int(head), int(head) + 1)
        else:
            return data, False
        items, hit = list(data), False
        for i in indexes:
            if rest:
                items[i], found = _without(data[i], rest)
                hit = hit or found
            else:
                items[i] = None  # keep the other indexes where they were
                hit = True
        return items, hit
    return data, False


def _order_tools(data: Any, report: Normalised | None) -> Any:
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            value = _order_tools(value, report)
            if key in TOOL_LISTS and isinstance(value, list) and len(value) > 1:
                ordered = sorted(value, key=lambda item: json.dumps(item, sort_keys=True, ensure_ascii=False))
                if ordered != value and report is not None:
                    report.tool_lists += 1
                value = ordered
            out[key] = value
        return out
    if isinstance(data, list):
        return [_order_tools(item, report) for item in data]
    return data


def _number_uuids(data: Any, numbers: dict[str, str]) -> Any:
    """UUIDs numbered in the order a sorted-key walk meets them (the order the canonical text shows)."""
    if isinstance(data, str):
        if UUID.search(data) is None:
            return data
        return UUID.sub(lambda m: numbers.setdefault(m.group(0).lower(), f"uuid-{len(numbers) + 1}"), data)
    if isinstance(data, dict):
        return {_number_uuids(k, numbers): _number_uuids(data[k], numbers) for k in sorted(data)}
    if isinstance(data, list):
        return [_number_uuids(item, numbers) for item in data]
    return data


def normalisation_note(body: Any, ignore_paths: tuple[tuple[str, ...], ...] = ()) -> str:
    """What matching normalised in ``body`` (a request body), as one line; ``""`` for nothing or no JSON."""
    text = body_text(body)
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return ""
    report = Normalised()
    normalise_json(data, ignore_paths, report)
    return report.describe()


def canonical_body(
    body: Any,
    ignore_keys: frozenset[str] = frozenset(),
    ignore_paths: tuple[tuple[str, ...], ...] = (),
) -> str:
    """Canonical text of a request body: sorted compact JSON of :func:`normalise_json`'s result when it
    parses, else the text itself."""
    text = body_text(body)
    if not text:
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if ignore_keys and isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in ignore_keys}
    if ignore_paths or UUID.search(text) is not None or '"tools"' in text or '"functions"' in text:
        data = normalise_json(data, ignore_paths)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(
    method: str,
    uri: str,
    body: Any,
    *,
    secret_query: Iterable[str] = (),
    ignore_body_keys: frozenset[str] = frozenset(),
    ignore_paths: tuple[tuple[str, ...], ...] = (),
) -> RequestKey:
    """The replay key of a request (see the module docstring)."""
    return (
        method.upper(),
        canonical_url(uri, secret_query),
        canonical_body(body, ignore_body_keys, ignore_paths),
    )


def _pretty(canonical: str) -> list[str]:
    try:
        return json.dumps(json.loads(canonical), indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    except ValueError:
        return canonical.splitlines()


def nearest_diff(key: RequestKey, recorded: Iterable[RequestKey], *, max_lines: int = 60) -> str:
    """Unified diff from the most similar recorded request body to ``key``'s body ("" if none recorded).

    Candidates with the same method and URL are preferred; similarity is difflib's ratio. Only called on
    the miss path, so its cost never touches a successful replay.
    """
    candidates = list(dict.fromkeys(recorded))
    if not candidates:
        return ""
    same_url = [c for c in candidates if c[0] == key[0] and c[1] == key[1]]
    pool = same_url or candidates
    best = max(pool, key=lambda c: difflib.SequenceMatcher(None, c[2], key[2], autojunk=False).ratio())
    old, new = _pretty(best[2]), _pretty(key[2])
    header = [] if best[1] == key[1] else [f"(nearest recorded request: {best[0]} {best[1]})"]
    diff = list(difflib.unified_diff(old, new, "recorded", "sent", n=2, lineterm=""))
    if not diff:
        diff = [
            "(bodies are identical: every recorded response to this request was already used;"
            " the flow made this request more often than when it was recorded)"
        ]
    if len(diff) > max_lines:
        diff = [*diff[:max_lines], f"... ({len(diff) - max_lines} more diff lines)"]
    return "\n".join(header + diff)
