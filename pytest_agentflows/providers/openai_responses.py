"""OpenAI Responses API (``POST …/responses``), streaming included.

Usage comes from the response object's own ``usage``:

- ``input_tokens`` = ``usage.input_tokens`` (cached tokens included, as OpenAI counts them);
- ``cache_read_tokens`` = ``usage.input_tokens_details.cached_tokens``;
- ``output_tokens`` = ``usage.output_tokens`` (reasoning tokens included).

A stream's usage is in the response carried by its terminal event: ``response.completed`` (or
``response.incomplete`` / ``response.failed``, which are billed too). A body without usage is read as a
call with 0 tokens and ``usage_reported=False`` (price unknown).
"""

from __future__ import annotations

from typing import Any

from ._base import ParsedCall, as_int, url_path
from ._body import json_or_none
from ._sse import iter_json_events

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


def _call(response: dict[str, Any], model: str | None, text: str | None) -> ParsedCall:
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return ParsedCall(model=model, usage_reported=False, text=text)
    details = usage.get("input_tokens_details")
    return ParsedCall(
        model=model,
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
        cache_read_tokens=as_int(details.get("cached_tokens")) if isinstance(details, dict) else 0,
        text=text,
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
            request_json: The parsed request body (unused).
            body: Decoded response body.
            streamed: Whether ``body`` is an SSE stream.

        Returns:
            The call; ``None`` when the body is not a response object (or a stream without any).
        """
        if streamed:
            return self._parse_stream(body)
        data = json_or_none(body)
        if not isinstance(data, dict) or not (data.get("object") == "response" or "output" in data):
            return None
        return _call(data, _model(data), _output_text(data))

    def _parse_stream(self, body: bytes) -> ParsedCall | None:
        latest: dict[str, Any] | None = None
        final: dict[str, Any] | None = None
        deltas: list[str] = []
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
        if latest is None:
            return None
        response = final if final is not None else latest
        model = _model(response) or _model(latest)
        text = _output_text(response) or ("".join(deltas) if deltas else None)
        return _call(response, model, text)
