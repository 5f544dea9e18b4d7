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

from ..providers._body import parse_json

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


MULTIPART_BOUNDARY = "agentflows-boundary"
"""What every multipart boundary becomes in a request key (clients draw a random one per request)."""
_MULTIPART_START = re.compile(r"--([0-9A-Za-z'()+_,./:=?-]{1,70})\r?\n")


def normalise_multipart(text: str) -> str:
    """``text`` with its multipart boundary replaced by :data:`MULTIPART_BOUNDARY`, else ``text`` itself.

    A ``multipart/form-data`` body (an OpenAI ``files.create`` or ``audio.transcriptions.create`` upload)
    starts with ``--<boundary>`` and ends with ``--<boundary>--``; httpx, requests and aiohttp draw the
    boundary at random for every request, so it cannot take part in matching. The body alone tells: the
    ``Content-Type`` header (which names the boundary too) never takes part in a key.
    """
    match = _MULTIPART_START.match(text)
    if match is None:
        return text
    boundary = match.group(1)
    if not text.rstrip("\r\n").endswith(f"--{boundary}--"):
        return text
    return text.replace(f"--{boundary}", f"--{MULTIPART_BOUNDARY}")


UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
"""A UUID in any of its usual spellings (``uuid4()``, hex digits in 8-4-4-4-12 groups)."""
_UUID_TAIL = re.compile(r"-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


def has_uuid(text: str) -> bool:
    """Whether ``text`` contains a :data:`UUID`; the same answer as ``UUID.search(text) is not None``.

    ``UUID.search`` tries a match at every hex digit of the text (~10 us for a 1 KB prompt); a pattern
    that starts with the ``-`` is searched for that character first, then the 8 digits before it checked.
    """
    found = _UUID_TAIL.search(text)
    while found is not None:
        start = found.start()
        if start >= 8 and _HEX8.fullmatch(text, start - 8, start):
            return True
        found = _UUID_TAIL.search(text, start + 1)
    return False


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
        if not has_uuid(data):
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
    parses, a multipart body with its boundary normalised (:func:`normalise_multipart`), else the text."""
    text = body_text(body)
    if not text:
        return ""
    if text.startswith("--"):
        return normalise_multipart(text)
    try:
        data = parse_json(text)
    except ValueError:
        return text
    if ignore_keys and isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in ignore_keys}
    if ignore_paths or has_uuid(text) or '"tools"' in text or '"functions"' in text:
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


MAX_DIFF_CANDIDATES = 16
"""At most this many recorded requests (those sharing the longest start and end with the sent body) are
scored against a miss."""
MAX_SCORED_CHARS = 32_768
"""Characters of each body a similarity score reads (the rest counts through the length only)."""
MAX_DIFF_LINES_IN = 400
"""Lines of each side the unified diff compares (a longer body is cut, with a note)."""
MAX_LINE_CHARS = 240
"""Characters shown of one diff line; a longer line is shown around its first difference."""
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _tokens(text: str) -> frozenset[str]:
    return frozenset(_TOKEN.findall(text[:MAX_SCORED_CHARS]))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard index of two token sets, 0.0 to 1.0: linear in their sizes (no alignment)."""
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix of ``a`` and ``b``, by bisection on slice equality (C comparisons)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def shared_ends(a: str, b: str) -> int:
    """Characters ``a`` and ``b`` share at their start plus at their end (a cheap closeness)."""
    head = _common_prefix(a, b)
    return head + _common_prefix(a[head:][::-1], b[head:][::-1])


def _pretty(canonical: str) -> list[str]:
    try:
        lines = json.dumps(json.loads(canonical), indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    except ValueError:
        lines = canonical.splitlines()
    if len(lines) > MAX_DIFF_LINES_IN:
        lines = [
            *lines[:MAX_DIFF_LINES_IN],
            f"... ({len(lines) - MAX_DIFF_LINES_IN} more lines not compared)",
        ]
    return lines


def _clip(line: str, at: int) -> str:
    """``line`` cut to :data:`MAX_LINE_CHARS`, showing the part from a little before index ``at``."""
    if len(line) <= MAX_LINE_CHARS:
        return line
    start = max(0, min(at - MAX_LINE_CHARS // 3, len(line) - MAX_LINE_CHARS))
    head = f"...({start} chars) " if start else ""
    end = start + MAX_LINE_CHARS
    tail = f" ...({len(line) - end} chars)" if end < len(line) else ""
    return f"{line[:1]}{head}{line[max(start, 1) : end]}{tail}"


def _clip_lines(diff: list[str]) -> list[str]:
    """Long ``-``/``+`` lines cut around where they differ from their counterpart."""
    out = []
    for i, line in enumerate(diff):
        if len(line) <= MAX_LINE_CHARS:
            out.append(line)
            continue
        other = next(
            (d for d in diff[i + 1 : i + 3] + diff[max(0, i - 2) : i] if d[:1] in "-+" and d[:1] != line[:1]),
            "",
        )
        common = _common_prefix(line[1:], other[1:]) + 1 if other else 0
        out.append(_clip(line, common))
    return out


def nearest_diff(key: RequestKey, recorded: Iterable[RequestKey], *, max_lines: int = 60) -> str:
    """Unified diff from the most similar recorded request body to ``key``'s body ("" if none recorded).

    Bounded whatever the cassette (a miss costs milliseconds): candidates with the same method and URL
    are preferred; of those the :data:`MAX_DIFF_CANDIDATES` closest in body length are scored by a
    linear token similarity (:func:`similarity`, on the first :data:`MAX_SCORED_CHARS` characters); the
    diff of the best one compares at most :data:`MAX_DIFF_LINES_IN` lines a side, line by line, and long
    lines are shown around their first difference. Only called on the miss path, so its cost never
    touches a successful replay.
    """
    candidates = list(dict.fromkeys(recorded))
    if not candidates:
        return ""
    same_url = [c for c in candidates if c[0] == key[0] and c[1] == key[1]]
    pool = same_url or candidates
    if len(pool) > MAX_DIFF_CANDIDATES:  # pre-selection: the longest shared start and end (C-speed)
        pool = sorted(pool, key=lambda c: -shared_ends(c[2], key[2]))[:MAX_DIFF_CANDIDATES]
    if len(pool) == 1:
        best = pool[0]
    else:
        sent = _tokens(key[2])
        best = max(pool, key=lambda c: (similarity(_tokens(c[2]), sent), shared_ends(c[2], key[2])))
    old, new = _pretty(best[2]), _pretty(key[2])
    header = [] if best[1] == key[1] else [f"(nearest recorded request: {best[0]} {best[1]})"]
    diff = _clip_lines(list(difflib.unified_diff(old, new, "recorded", "sent", n=2, lineterm="")))
    if not diff and best[:2] == key[:2]:
        diff = [
            "(bodies are identical: every recorded response to this request was already used;"
            " the flow made this request more often than when it was recorded)"
        ]
    elif not diff:
        diff = [
            f"(bodies are identical; only the method or URL differs: sent {key[0]} {key[1]}, recorded "
            f"{best[0]} {best[1]}. If the host changed, point the client at the recorded one (e.g. "
            "OPENAI_BASE_URL, ANTHROPIC_BASE_URL), or re-record with --record-agents)"
        ]
    if len(diff) > max_lines:
        diff = [*diff[:max_lines], f"... ({len(diff) - max_lines} more diff lines)"]
    return "\n".join(header + diff)
