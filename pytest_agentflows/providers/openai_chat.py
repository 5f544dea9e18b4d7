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
"""

from __future__ import annotations

from typing import Any

from ._base import ParsedCall, as_int, url_path
from ._body import json_or_none
from ._sse import iter_json_events

__all__ = ["OpenAIChatAdapter"]


def _call(model: str | None, usage: Any, text: str | None) -> ParsedCall:
    if not isinstance(usage, dict):
        return ParsedCall(model=model, usage_reported=False, text=text)
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
    )


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
            request_json: The parsed request body (unused).
            body: Decoded response body.
            streamed: Whether ``body`` is an SSE stream.

        Returns:
            The call; ``None`` when the body has no ``choices`` (an error object, not a completion).
        """
        if streamed:
            return self._parse_stream(body)
        data = json_or_none(body)
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            return None
        usage = data.get("usage")
        choices = data["choices"]
        text = _message_text(choices[0].get("message")) if choices and isinstance(choices[0], dict) else None
        model = data.get("model") if isinstance(data.get("model"), str) else None
        return _call(model or None, usage, text)

    def _parse_stream(self, body: bytes) -> ParsedCall | None:
        model: str | None = None
        usage: dict[str, Any] | None = None
        parts: list[str] = []
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
                delta = choice.get("delta")
                if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                    parts.append(delta["content"])
        if not seen:
            return None
        return _call(model or None, usage, "".join(parts) if parts else None)
