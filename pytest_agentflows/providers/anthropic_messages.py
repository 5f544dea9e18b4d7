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

Content: ``input_messages`` are ``system`` (role ``system``) then the ``messages``; each ``tool_result``
block of a message is a role ``tool`` message (before the message's own text, as the API requires them
first). Tool calls are the response's ``tool_use`` blocks (``input`` as arguments); in a stream, each
``content_block_start`` of type ``tool_use`` joined with its ``input_json_delta`` fragments.
``finish_reason`` is ``stop_reason`` (``end_turn``, ``tool_use``, ``max_tokens``, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import ParsedCall, as_int, url_path
from ._body import json_or_none
from ._content import arguments_of, message, parts_text, tool_call
from ._sse import iter_json_events

if TYPE_CHECKING:
    from ..runtime._models import Message, ToolCall

__all__ = ["AnthropicMessagesAdapter"]

_COUNTS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def _call(
    model: Any,
    usage: dict[str, Any] | None,
    text: str | None,
    tools: tuple[ToolCall, ...] = (),
    finish: Any = None,
    messages: tuple[Message, ...] = (),
) -> ParsedCall:
    model_name = model if isinstance(model, str) and model else None
    finish_reason = finish if isinstance(finish, str) else None
    if usage is None:
        return ParsedCall(
            model=model_name,
            usage_reported=False,
            text=text,
            tool_calls=tools,
            finish_reason=finish_reason,
            input_messages=messages,
        )
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
        tool_calls=tools,
        finish_reason=finish_reason,
        input_messages=messages,
    )


def input_messages(request_json: Any) -> tuple[Message, ...]:
    """``system`` (role ``system``), then the ``messages``; ``tool_result`` blocks as role ``tool``."""
    if not isinstance(request_json, dict):
        return ()
    out: list[Message] = []
    system = parts_text(request_json.get("system"))
    if system:
        out.append(message("system", system))
    raw = request_json.get("messages")
    for msg in raw if isinstance(raw, list) else ():
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            continue
        content = msg.get("content")
        if isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        ):
            texts: list[str] = []
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    out.append(message("tool", parts_text(block.get("content"))))
                elif isinstance(block, dict) and isinstance(block.get("text"), str):
                    texts.append(block["text"])
            if texts:
                out.append(message(msg["role"], "\n".join(texts)))
        else:
            out.append(message(msg["role"], parts_text(content)))
    return tuple(out)


def _tool_uses(content: Any) -> tuple[ToolCall, ...]:
    return tuple(
        tool_call(block["name"], arguments_of(block.get("input")), block.get("id"))
        for block in content or ()
        if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("name"), str)
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
            request_json: The parsed request body (``system`` and ``messages`` become
                ``input_messages``).
            body: Decoded response body.
            streamed: Whether ``body`` is an SSE stream.

        Returns:
            The call; ``None`` when the body is not a message (e.g. an ``error`` object) or the stream has
            no ``message_start``.
        """
        if streamed:
            return self._parse_stream(body, request_json)
        data = json_or_none(body)
        if not isinstance(data, dict) or data.get("type") != "message":
            return None
        usage = data.get("usage")
        content = data.get("content")
        return _call(
            data.get("model"),
            usage if isinstance(usage, dict) else None,
            _content_text(content),
            _tool_uses(content),
            data.get("stop_reason"),
            input_messages(request_json),
        )

    def _parse_stream(self, body: bytes, request_json: Any) -> ParsedCall | None:
        model: Any = None
        usage: dict[str, Any] | None = None
        started = False
        parts: list[str] = []
        tools: dict[int, list[Any]] = {}  # block index -> [id, name, [partial_json fragments]]
        finish: Any = None
        for _event, data in iter_json_events(body):
            if not isinstance(data, dict):
                continue
            kind = data.get("type")
            if kind == "message_start" and isinstance(data.get("message"), dict):
                started = True
                message_start = data["message"]
                model = message_start.get("model")
                if isinstance(message_start.get("usage"), dict):
                    usage = dict(message_start["usage"])
            elif kind == "message_delta":
                delta = data.get("delta")
                if isinstance(delta, dict) and delta.get("stop_reason") is not None:
                    finish = delta["stop_reason"]
                if isinstance(data.get("usage"), dict):
                    usage = usage if usage is not None else {}
                    for key in _COUNTS:
                        if data["usage"].get(key) is not None:
                            usage[key] = data["usage"][key]
            elif kind == "content_block_start":
                block = data.get("content_block")
                if (
                    isinstance(block, dict)
                    and block.get("type") == "tool_use"
                    and isinstance(block.get("name"), str)
                ):
                    initial = block.get("input")
                    fragments = [] if not initial else [initial]
                    tools[_index(data, len(tools))] = [block.get("id"), block["name"], fragments]
            elif kind == "content_block_delta":
                delta = data.get("delta")
                if not isinstance(delta, dict):
                    continue
                if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                    parts.append(delta["text"])
                elif delta.get("type") == "input_json_delta" and isinstance(delta.get("partial_json"), str):
                    entry = tools.get(_index(data, -1))
                    if entry is not None:
                        entry[2].append(delta["partial_json"])
        if not started:
            return None
        calls = tuple(
            tool_call(name, _joined_input(fragments), call_id)
            for call_id, name, fragments in (tools[i] for i in sorted(tools))
        )
        return _call(
            model, usage, "".join(parts) if parts else None, calls, finish, input_messages(request_json)
        )


def _index(data: dict[str, Any], default: int) -> int:
    index = data.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else default


def _joined_input(fragments: list[Any]) -> dict[str, Any] | str:
    """The input of a streamed ``tool_use`` block: its ``partial_json`` fragments joined and parsed."""
    if len(fragments) == 1 and isinstance(fragments[0], dict):
        return fragments[0]
    return arguments_of("".join(f for f in fragments if isinstance(f, str)))
