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


def canonical_body(body: Any, ignore_keys: frozenset[str] = frozenset()) -> str:
    """Canonical text of a request body: sorted compact JSON when it parses, else the text itself."""
    text = body_text(body)
    if not text:
        return ""
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
