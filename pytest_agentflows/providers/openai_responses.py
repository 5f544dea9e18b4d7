"""OpenAI Responses API (``POST …/responses``), streaming included.

Usage comes from the response object's own ``usage``:

- ``input_tokens`` = ``usage.input_tokens`` (cached tokens included, as OpenAI counts them);
- ``cache_read_tokens`` = ``usage.input_tokens_details.cached_tokens``;
- ``output_tokens`` = ``usage.output_tokens`` (reasoning tokens included).

A stream's usage is in the response carried by its terminal event: ``response.completed`` (or
``response.incomplete`` / ``response.failed``, which are billed too). A body without usage is read as a
call with 0 tokens and ``usage_reported=False`` (price unknown).

Content: ``input_messages`` are ``instructions`` (role ``system``) then the ``input`` items (a string is
one ``user`` message; ``function_call_output`` items are role ``tool``); tool calls are the output's
``function_call`` items (``call_id`` as id, ``arguments`` parsed as JSON), in a stream read from the
terminal response or else from the ``response.output_item.done`` events. ``finish_reason`` is
``tool_calls`` when the output holds ``function_call`` items, else ``stop`` (or the
``incomplete_details.reason`` of an incomplete response).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import ParsedCall, as_int, url_path
from ._body import json_or_none
from ._content import arguments_of, message, parts_text, tool_call
from ._sse import iter_json_events

if TYPE_CHECKING:
    from ..runtime._models import Message, ToolCall

__all__ = ["OpenAIResponsesAdapter"]

_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _output_text(response: dict[str, Any]) -> str | None:
    texts: list[str] = []
    for item in response.get("output") or ():
        if not isinstance(item, dict) or item.get("type") != "message":
            continue
        for part in item.get("content") or ():
            if (
                isinstance(part, dict)
                and part.get("type") == "output_text"
                and isinstance(part.get("text"), str)
            ):
                texts.append(part["text"])
    return "".join(texts) if texts else None


def _tool_calls(items: Any) -> tuple[ToolCall, ...]:
    return tuple(
        tool_call(item["name"], arguments_of(item.get("arguments")), item.get("call_id") or item.get("id"))
        for item in items or ()
        if isinstance(item, dict)
        and item.get("type") == "function_call"
        and isinstance(item.get("name"), str)
    )


def _finish(response: dict[str, Any], tools: tuple[ToolCall, ...]) -> str:
    if tools:
        return "tool_calls"
    details = response.get("incomplete_details")
    if response.get("status") == "incomplete" and isinstance(details, dict):
        reason = details.get("reason")
        if isinstance(reason, str) and reason:
            return reason
    return "stop"


def input_messages(request_json: Any) -> tuple[Message, ...]:
    """``instructions`` (role ``system``), then the ``input`` items; ``function_call_output`` as ``tool``."""
    if not isinstance(request_json, dict):
        return ()
    out: list[Message] = []
    instructions = request_json.get("instructions")
    if isinstance(instructions, str) and instructions:
        out.append(message("system", instructions))
    items = request_json.get("input")
    if isinstance(items, str):
        out.append(message("user", items))
        return tuple(out)
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("role"), str):
            out.append(message(item["role"], parts_text(item.get("content"))))
        elif item.get("type") == "function_call_output":
            out.append(message("tool", parts_text(item.get("output"))))
    return tuple(out)


def _call(
    response: dict[str, Any],
    model: str | None,
    text: str | None,
    tools: tuple[ToolCall, ...],
    messages: tuple[Message, ...],
) -> ParsedCall:
    usage = response.get("usage")
    finish = _finish(response, tools)
    if not isinstance(usage, dict):
        return ParsedCall(
            model=model,
            usage_reported=False,
            text=text,
            tool_calls=tools,
            finish_reason=finish,
            input_messages=messages,
        )
    details = usage.get("input_tokens_details")
    return ParsedCall(
        model=model,
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
        cache_read_tokens=as_int(details.get("cached_tokens")) if isinstance(details, dict) else 0,
        text=text,
        tool_calls=tools,
        finish_reason=finish,
        input_messages=messages,
    )


def _model(response: dict[str, Any]) -> str | None:
    model = response.get("model")
    return model if isinstance(model, str) and model else None


class OpenAIResponsesAdapter:
    """Adapter for the Responses API (``api="openai.responses"``, ``provider="openai"``)."""

    name = "openai.responses"
    provider = "openai"

    def matches(self, method: str, url: str, request_json: Any) -> bool:
        """``POST`` to a path ending in ``/responses`` (any host).

        Args:
            method: HTTP method, upper case.
            url: Full request URL.
            request_json: The parsed request body (unused).
        """
        return method == "POST" and url_path(url).endswith("/responses")

    def parse(self, request_json: Any, body: bytes, *, streamed: bool) -> ParsedCall | None:
        """Read a ``response`` object or a Responses event stream.

        Args:
            request_json: The parsed request body (``instructions`` and ``input`` become
                ``input_messages``).
            body: Decoded response body.
            streamed: Whether ``body`` is an SSE stream.

        Returns:
            The call; ``None`` when the body is not a response object (or a stream without any).
        """
        if streamed:
            return self._parse_stream(body, request_json)
        data = json_or_none(body)
        if not isinstance(data, dict) or not (data.get("object") == "response" or "output" in data):
            return None
        return _call(
            data,
            _model(data),
            _output_text(data),
            _tool_calls(data.get("output")),
            input_messages(request_json),
        )

    def _parse_stream(self, body: bytes, request_json: Any) -> ParsedCall | None:
        latest: dict[str, Any] | None = None
        final: dict[str, Any] | None = None
        deltas: list[str] = []
        done_items: list[Any] = []
        for _event, data in iter_json_events(body):
            if not isinstance(data, dict):
                continue
            kind = data.get("type")
            response = data.get("response")
            if isinstance(response, dict):
                latest = response
                if kind in _TERMINAL:
                    final = response
            elif kind == "response.output_text.delta" and isinstance(data.get("delta"), str):
                deltas.append(data["delta"])
            elif kind == "response.output_item.done":
                done_items.append(data.get("item"))
        if latest is None:
            return None
        response = final if final is not None else latest
        model = _model(response) or _model(latest)
        text = _output_text(response) or ("".join(deltas) if deltas else None)
        tools = _tool_calls(response.get("output")) or _tool_calls(done_items)
        return _call(response, model, text, tools, input_messages(request_json))
