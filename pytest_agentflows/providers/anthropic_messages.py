"""Anthropic Messages API (``POST …/v1/messages``, ``?beta=true`` included), streaming included.

Usage comes from the message's own ``usage`` object:

- ``input_tokens`` = ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens`` (Anthropic's
  ``input_tokens`` excludes the cached part; our ledger counts every billed input token);
- ``cache_write_tokens`` = ``cache_creation_input_tokens``; ``cache_read_tokens`` =
  ``cache_read_input_tokens``; the 1-hour-TTL part of the cache writes
  (``cache_creation.ephemeral_1h_input_tokens``) is passed to pricing, which charges it at its own rate;
- ``output_tokens`` = ``output_tokens``.

In a stream, ``message_start`` carries the initial usage (input and cache counts, a provisional
``output_tokens``) and each ``message_delta`` carries cumulative counts: its ``output_tokens`` is the
final total, and newer API versions repeat the input/cache counts there too. Any count a later event
gives replaces the earlier one.
"""

from __future__ import annotations

from typing import Any

from ._base import ParsedCall, as_int, url_path
from ._body import json_or_none
from ._sse import iter_json_events

__all__ = ["AnthropicMessagesAdapter"]

_COUNTS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def _call(model: Any, usage: dict[str, Any] | None, text: str | None) -> ParsedCall:
    model_name = model if isinstance(model, str) and model else None
    if usage is None:
        return ParsedCall(model=model_name, usage_reported=False, text=text)
    uncached = as_int(usage.get("input_tokens"))
    write = as_int(usage.get("cache_creation_input_tokens"))
    read = as_int(usage.get("cache_read_input_tokens"))
    split = usage.get("cache_creation")
    write_1h = as_int(split.get("ephemeral_1h_input_tokens")) if isinstance(split, dict) else 0
    return ParsedCall(
        model=model_name,
        input_tokens=uncached + write + read,
        output_tokens=as_int(usage.get("output_tokens")),
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=min(write_1h, write),
        text=text,
    )


def _content_text(content: Any) -> str | None:
    texts = [
        block["text"]
        for block in content or ()
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
    ]
    return "".join(texts) if texts else None


class AnthropicMessagesAdapter:
    """Adapter for the Messages API (``api="anthropic.messages"``, ``provider="anthropic"``)."""

    name = "anthropic.messages"
    provider = "anthropic"

    def matches(self, method: str, url: str, request_json: Any) -> bool:
        """``POST`` to a path ending in ``/v1/messages`` (any host; query such as ``?beta=true`` ignored).

        Args:
            method: HTTP method, upper case.
            url: Full request URL.
            request_json: The parsed request body (unused).
        """
        return method == "POST" and url_path(url).endswith("/v1/messages")

    def parse(self, request_json: Any, body: bytes, *, streamed: bool) -> ParsedCall | None:
        """Read a ``message`` object or a Messages event stream.

        Args:
            request_json: The parsed request body (unused).
            body: Decoded response body.
            streamed: Whether ``body`` is an SSE stream.

        Returns:
            The call; ``None`` when the body is not a message (e.g. an ``error`` object) or the stream has
            no ``message_start``.
        """
        if streamed:
            return self._parse_stream(body)
        data = json_or_none(body)
        if not isinstance(data, dict) or data.get("type") != "message":
            return None
        usage = data.get("usage")
        return _call(
            data.get("model"), usage if isinstance(usage, dict) else None, _content_text(data.get("content"))
        )

    def _parse_stream(self, body: bytes) -> ParsedCall | None:
        model: Any = None
        usage: dict[str, Any] | None = None
        started = False
        parts: list[str] = []
        for _event, data in iter_json_events(body):
            if not isinstance(data, dict):
                continue
            kind = data.get("type")
            if kind == "message_start" and isinstance(data.get("message"), dict):
                started = True
                message = data["message"]
                model = message.get("model")
                if isinstance(message.get("usage"), dict):
                    usage = dict(message["usage"])
            elif kind == "message_delta" and isinstance(data.get("usage"), dict):
                usage = usage if usage is not None else {}
                for key in _COUNTS:
                    if data["usage"].get(key) is not None:
                        usage[key] = data["usage"][key]
            elif kind == "content_block_delta":
                delta = data.get("delta")
                if (
                    isinstance(delta, dict)
                    and delta.get("type") == "text_delta"
                    and isinstance(delta.get("text"), str)
                ):
                    parts.append(delta["text"])
        if not started:
            return None
        return _call(model, usage, "".join(parts) if parts else None)
