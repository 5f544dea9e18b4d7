"""OpenAI chat completions (``POST …/chat/completions``), streaming included.

Any host serving this path is read the same way: api.openai.com, Azure OpenAI
(``/openai/deployments/<name>/chat/completions``), OpenRouter and other OpenAI-compatible services, a
local server (``http://127.0.0.1:PORT/v1/chat/completions``).

Usage comes from the response's own ``usage`` object:

- ``input_tokens`` = ``prompt_tokens`` (cached tokens included, as OpenAI counts them);
- ``cache_read_tokens`` = ``prompt_tokens_details.cached_tokens`` (or DeepSeek's
  ``prompt_cache_hit_tokens``);
- ``output_tokens`` = ``completion_tokens`` (reasoning tokens included).

A stream carries usage only in its last chunk, and only when the request asked for it
(``stream_options={"include_usage": True}``). A stream (or response) without any ``usage`` is still a
call, with 0 tokens and ``usage_reported=False``: its price is then unknown (``cost_usd=None``) rather
than a misleading $0, so a USD budget assertion on it fails loudly instead of passing.

Content: ``input_messages`` are the request's ``messages`` (role as sent, text parts joined with ``"\\n"``,
``tool`` messages are the tool results); the response's ``choices[0]``: ``message.content``,
``message.tool_calls`` (``function.arguments`` parsed as JSON; the legacy ``function_call`` too) and
``finish_reason``. In a stream the ``delta.tool_calls`` fragments are joined per ``index`` (parallel tool
calls), the argument fragments concatenated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import ParsedCall, as_int, url_path
from ._body import json_or_none
from ._content import arguments_of, message, parts_text, tool_call
from ._sse import iter_json_events

if TYPE_CHECKING:
    from ..runtime._models import Message, ToolCall

__all__ = ["OpenAIChatAdapter"]


def _call(
    model: str | None,
    usage: Any,
    text: str | None,
    tools: tuple[ToolCall, ...],
    finish: Any,
    messages: tuple[Message, ...],
) -> ParsedCall:
    finish_reason = finish if isinstance(finish, str) else None
    if not isinstance(usage, dict):
        return ParsedCall(
            model=model,
            usage_reported=False,
            text=text,
            tool_calls=tools,
            finish_reason=finish_reason,
            input_messages=messages,
        )
    details = usage.get("prompt_tokens_details")
    cached = as_int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    if not cached:
        cached = as_int(usage.get("prompt_cache_hit_tokens"))
    return ParsedCall(
        model=model,
        input_tokens=as_int(usage.get("prompt_tokens")),
        output_tokens=as_int(usage.get("completion_tokens")),
        cache_read_tokens=cached,
        text=text,
        tool_calls=tools,
        finish_reason=finish_reason,
        input_messages=messages,
    )


def input_messages(request_json: Any) -> tuple[Message, ...]:
    """The ``messages`` of a chat request (role as sent; text parts joined with ``"\\n"``)."""
    if not isinstance(request_json, dict):
        return ()
    raw = request_json.get("messages")
    if not isinstance(raw, list):
        return ()
    return tuple(
        message(m["role"], parts_text(m.get("content")))
        for m in raw
        if isinstance(m, dict) and isinstance(m.get("role"), str)
    )


def _tool_calls(msg: Any) -> tuple[ToolCall, ...]:
    if not isinstance(msg, dict):
        return ()
    out: list[ToolCall] = []
    for item in msg.get("tool_calls") or ():
        function = item.get("function") if isinstance(item, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            out.append(tool_call(function["name"], arguments_of(function.get("arguments")), item.get("id")))
    legacy = msg.get("function_call")
    if not out and isinstance(legacy, dict) and isinstance(legacy.get("name"), str):
        out.append(tool_call(legacy["name"], arguments_of(legacy.get("arguments")), None))
    return tuple(out)


def _message_text(message: Any) -> str | None:
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        texts: list[str] = [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
        return "".join(texts) if texts else None
    return None


class OpenAIChatAdapter:
    """Adapter for the chat completions API (``api="openai.chat"``, ``provider="openai"``)."""

    name = "openai.chat"
    provider = "openai"

    def matches(self, method: str, url: str, request_json: Any) -> bool:
        """``POST`` to a path ending in ``/chat/completions`` (any host).

        Args:
            method: HTTP method, upper case.
            url: Full request URL.
            request_json: The parsed request body (unused).
        """
        return method == "POST" and url_path(url).endswith("/chat/completions")

    def parse(self, request_json: Any, body: bytes, *, streamed: bool) -> ParsedCall | None:
        """Read a ``chat.completion`` object or a ``chat.completion.chunk`` stream.

        Args:
            request_json: The parsed request body (its ``messages`` become ``input_messages``).
            body: Decoded response body.
            streamed: Whether ``body`` is an SSE stream.

        Returns:
            The call; ``None`` when the body has no ``choices`` (an error object, not a completion).
        """
        if streamed:
            return self._parse_stream(body, request_json)
        data = json_or_none(body)
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            return None
        usage = data.get("usage")
        choices = data["choices"]
        first = choices[0] if choices and isinstance(choices[0], dict) else {}
        msg = first.get("message")
        model = data.get("model") if isinstance(data.get("model"), str) else None
        return _call(
            model or None,
            usage,
            _message_text(msg),
            _tool_calls(msg),
            first.get("finish_reason"),
            input_messages(request_json),
        )

    def _parse_stream(self, body: bytes, request_json: Any) -> ParsedCall | None:
        model: str | None = None
        usage: dict[str, Any] | None = None
        parts: list[str] = []
        calls: dict[int, list[Any]] = {}  # index -> [id, name, [argument fragments]]
        finish: Any = None
        seen = False
        for _event, chunk in iter_json_events(body):
            if not isinstance(chunk, dict):
                continue
            if "choices" in chunk or chunk.get("object") == "chat.completion.chunk":
                seen = True
            if not model and isinstance(chunk.get("model"), str):
                model = chunk["model"]
            if isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                if choice.get("finish_reason") is not None:
                    finish = choice["finish_reason"]
                delta = choice.get("delta")
                if not isinstance(delta, dict):
                    continue
                if isinstance(delta.get("content"), str):
                    parts.append(delta["content"])
                for frag in delta.get("tool_calls") or ():
                    if isinstance(frag, dict):
                        _add_fragment(calls, frag)
        if not seen:
            return None
        tools = tuple(
            tool_call(name, arguments_of("".join(args)), call_id)
            for call_id, name, args in (calls[i] for i in sorted(calls))
            if name
        )
        return _call(
            model or None,
            usage,
            "".join(parts) if parts else None,
            tools,
            finish,
            input_messages(request_json),
        )


def _add_fragment(calls: dict[int, list[Any]], frag: dict[str, Any]) -> None:
    index = frag.get("index")
    index = index if isinstance(index, int) else len(calls)
    entry = calls.setdefault(index, [None, "", []])
    if isinstance(frag.get("id"), str) and frag["id"]:
        entry[0] = entry[0] or frag["id"]
    function = frag.get("function")
    if isinstance(function, dict):
        if isinstance(function.get("name"), str) and not entry[1]:
            entry[1] = function["name"]
        if isinstance(function.get("arguments"), str):
            entry[2].append(function["arguments"])
