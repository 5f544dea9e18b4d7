"""Canonical request keys for replay matching, and the nearest-request diff for misses.

A request key is ``(method, url, body)``: the URL without secret query parameters, with sorted query and
loopback hosts' ports dropped (a local model server gets a new port on every run); the body as canonical
JSON (sorted keys, compact) when it is JSON, otherwise its raw text. Headers never take part: SDKs put
versions, retry counts and platform details there.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterable
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


def canonical_body(body: Any, ignore_keys: frozenset[str] = frozenset()) -> str:
    """Canonical text of a request body: sorted compact JSON when it parses, a multipart body with its
    boundary normalised (:func:`normalise_multipart`), else the text itself."""
    text = body_text(body)
    if not text:
        return ""
    if text.startswith("--"):
        return normalise_multipart(text)
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if ignore_keys and isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in ignore_keys}
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(
    method: str,
    uri: str,
    body: Any,
    *,
    secret_query: Iterable[str] = (),
    ignore_body_keys: frozenset[str] = frozenset(),
) -> RequestKey:
    """The replay key of a request (see the module docstring)."""
    return (method.upper(), canonical_url(uri, secret_query), canonical_body(body, ignore_body_keys))


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
    diff = list(difflib.unified_diff(old, new, "recorded", "sent", n=2, lineterm=""))
    if not diff:
        diff = [
            "(bodies are identical: every recorded response to this request was already used;"
            " the flow made this request more often than when it was recorded)"
        ]
    if len(diff) > max_lines:
        diff = [*diff[:max_lines], f"... ({len(diff) - max_lines} more diff lines)"]
    return "\n".join(header + _clip_lines(diff))
