"""Server-sent-events reassembly for recorded streaming responses.

A recorded stream is the whole ``text/event-stream`` body in one piece (vcrpy reads it to the end before
storing it). These helpers split it back into events following the WHATWG rules: lines end in ``\\n``,
``\\r\\n`` or ``\\r``; a blank line ends an event; ``data:`` lines are joined with ``\\n``; one space after
the colon is dropped; lines starting with ``:`` are comments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_LINE_END = re.compile(r"\r\n|\r|\n")
_FIRST_FIELD = re.compile(r"(?:event|data|id|retry)[ \t]*:", re.ASCII)


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched server-sent event."""

    event: str | None
    """The ``event:`` field (e.g. ``"message_delta"``), or ``None`` when the event had none."""
    data: str
    """The ``data:`` lines of the event joined with ``\\n`` (``""`` when it had none)."""


def looks_like_sse(body: bytes | str) -> bool:
    """Whether ``body`` is an event stream: its first non-blank, non-comment line is an SSE field.

    Args:
        body: A decoded response body.

    Returns:
        ``True`` for ``data: …`` / ``event: …`` streams, ``False`` for JSON and anything else.
    """
    head = body[:2048]
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
    if text.lstrip()[:1] in ("{", "["):  # JSON (the usual non-stream body): no line of it is an SSE field
        return False
    for line in _LINE_END.split(text):
        stripped = line.strip()
        if not stripped or stripped.startswith(":"):
            continue
        return _FIRST_FIELD.match(stripped) is not None
    return False


def iter_events(body: bytes | str) -> Iterator[SSEEvent]:
    """Split an event-stream body into events.

    Args:
        body: The whole stream, bytes (UTF-8) or text.

    Yields:
        One :class:`SSEEvent` per event that has a ``data`` field, in stream order. A last event not
        followed by a blank line (a truncated recording) is yielded too.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    event: str | None = None
    data: list[str] = []
    has_data = False
    for line in _LINE_END.split(text):
        if not line:
            if has_data:
                yield SSEEvent(event, "\n".join(data))
            event, data, has_data = None, [], False
            continue
        if line.startswith(":"):
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
            has_data = True
        elif name == "event":
            event = value
    if has_data:
        yield SSEEvent(event, "\n".join(data))


def iter_json_events(body: bytes | str) -> Iterator[tuple[str | None, Any]]:
    """The events of a stream whose data is JSON, parsed.

    Args:
        body: The whole stream, bytes (UTF-8) or text.

    Yields:
        ``(event name or None, parsed JSON data)``; events whose data is not JSON (``[DONE]``, pings
        with empty data) are skipped.
    """
    for ev in iter_events(body):
        data = ev.data.strip()
        if not data or data == "[DONE]":
            continue
        try:
            parsed = json.loads(data)
        except ValueError:
            continue
        yield ev.event, parsed
