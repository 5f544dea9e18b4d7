"""Provider adapters: turn recorded HTTP interactions with LLM APIs into :class:`ModelCall` records.

One adapter per wire API, found by HTTP method and URL path (any host, so Azure, OpenAI-compatible
services and local servers are read too):

- ``POST …/chat/completions`` → :class:`OpenAIChatAdapter`: ``api="openai.chat"``, ``provider="openai"``;
- ``POST …/responses`` → :class:`OpenAIResponsesAdapter`: ``api="openai.responses"``, ``provider="openai"``;
- ``POST …/v1/messages`` → :class:`AnthropicMessagesAdapter`: ``api="anthropic.messages"``,
  ``provider="anthropic"``.

Token counts are the response's own usage fields (see each adapter module); the price comes from
``genai-prices`` (:func:`pytest_agentflows.providers._pricing.price_usd`) at the response's ``Date``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..runtime._models import Message, ModelCall, Usage
from ._base import ParsedCall, ProviderAdapter
from ._body import BodyError, json_or_none, normalise_request, normalise_response
from ._pricing import price_time_from_date_header, price_usd
from ._sse import looks_like_sse
from .anthropic_messages import AnthropicMessagesAdapter
from .openai_chat import OpenAIChatAdapter
from .openai_responses import OpenAIResponsesAdapter

__all__ = [
    "AnthropicMessagesAdapter",
    "BodyError",
    "OpenAIChatAdapter",
    "OpenAIResponsesAdapter",
    "ParsedCall",
    "ProviderAdapter",
    "adapters",
    "call_from_normalised",
    "find_adapter",
    "parse_interaction",
    "parse_normalised",
    "register_adapter",
    "response_text",
]

_ADAPTERS: list[ProviderAdapter] = [
    OpenAIChatAdapter(),
    OpenAIResponsesAdapter(),
    AnthropicMessagesAdapter(),
]


def adapters() -> tuple[ProviderAdapter, ...]:
    """The registered adapters, in the order they are tried."""
    return tuple(_ADAPTERS)


def register_adapter(adapter: ProviderAdapter, *, first: bool = True) -> None:
    """Add an adapter to the registry.

    Args:
        adapter: Any object implementing :class:`ProviderAdapter`.
        first: Try it before the built-in adapters (default), so it can take over a path they read.

    Raises:
        TypeError: ``adapter`` does not implement the protocol.
    """
    if not isinstance(adapter, ProviderAdapter):
        raise TypeError(f"{adapter!r} does not implement ProviderAdapter (name, provider, matches, parse)")
    if first:
        _ADAPTERS.insert(0, adapter)
    else:
        _ADAPTERS.append(adapter)


def find_adapter(method: str, url: str, request_json: Any = None) -> ProviderAdapter | None:
    """The first registered adapter that reads ``method url``, or ``None``.

    Args:
        method: HTTP method (any case).
        url: Full request URL.
        request_json: The request body parsed as JSON, or ``None``.
    """
    upper = method.upper()
    for adapter in _ADAPTERS:
        if adapter.matches(upper, url, request_json):
            return adapter
    return None


_PARSE_HEADERS = {len(name): name for name in ("content-encoding", "content-type", "date")}
"""The response headers :func:`_parse` reads, by length (all three differ): a header of another length is
not lower-cased to find out it is none of them."""


def _first_values(headers: Mapping[str, list[str]]) -> dict[str, str]:
    """``{lower-case name: first value}`` of the normalised headers :func:`_parse` reads (one pass)."""
    first: dict[str, str] = {}
    wanted = _PARSE_HEADERS
    for key, values in headers.items():
        name = wanted.get(len(key))
        if name is not None and values and key.lower() == name:
            first.setdefault(name, values[0])  # the first of two spellings, as header_value
    return first


def parse_normalised(
    request: Mapping[str, Any], response: Mapping[str, Any]
) -> tuple[ProviderAdapter, ParsedCall, bool] | None:
    """Adapter, parsed call and streamed flag of a normalised interaction, before pricing.

    Args:
        request: Normalised request dict (:func:`pytest_agentflows.providers._body.normalise_request`).
        response: Normalised response dict (:func:`pytest_agentflows.providers._body.normalise_response`).

    Returns:
        ``None`` for a non-2xx status, a request no adapter matches, a body still compressed (``br``
        without ``brotli``) or a body the adapter does not recognise.
    """
    found = _parse(request, response)
    return None if found is None else found[:3]


def _parse(
    request: Mapping[str, Any], response: Mapping[str, Any]
) -> tuple[ProviderAdapter, ParsedCall, bool, Any, str | None] | None:
    """:func:`parse_normalised`, plus the request body parsed as JSON and the ``Date`` header."""
    code = response["status"]["code"]
    if not 200 <= code < 300:
        return None
    request_json = json_or_none(request["body"])
    adapter = find_adapter(request["method"], request["uri"], request_json)
    if adapter is None:
        return None
    headers = _first_values(response["headers"])
    if headers.get("content-encoding") not in (None, "", "identity"):
        return None  # could not be decoded
    body: bytes = response["body"]["string"]
    streamed = "text/event-stream" in headers.get("content-type", "").lower() or looks_like_sse(body)
    parsed = adapter.parse(request_json, body, streamed=streamed)
    if parsed is None:
        return None
    return adapter, parsed, streamed, request_json, headers.get("date")


def call_from_normalised(
    request: Mapping[str, Any],
    response: Mapping[str, Any],
    *,
    agent: str | None = None,
    latency_s: float = 0.0,
    scrub: Callable[[Any], Any] | None = None,
) -> ModelCall | None:
    """:func:`parse_interaction` for dicts already in normal form (as :class:`Interaction` holds them).

    Args:
        request: Normalised request dict.
        response: Normalised response dict.
        agent: Agent name to record on the call (and on its tool calls).
        latency_s: Recorded latency in seconds.
        scrub: Applied to every message text, the output text and each tool call's arguments (the
            flow's ``Redactor.scrub_data``), or ``None``.

    Returns:
        The call, or ``None`` (see :func:`parse_normalised`).
    """
    return _model_call(request, response, agent, latency_s, scrub, None)


class Priced:
    """One model call read from an interaction and priced, before it becomes a :class:`ModelCall`.

    What the report needs of a call (provider, model, usage, tool names) is here, so a flow can summarise a
    replayed call without building its ledger entry (see ``Flow.on_exchange``).

    Args:
        adapter: The adapter that read the interaction (its ``provider`` and ``name`` go into the call).
        parsed: What the adapter read from the request and response bodies.
        streamed: Whether the response was a server-sent-event stream.
        model: The model name (see :attr:`model`).
        usage: Tokens and price (see :attr:`usage`).
    """

    __slots__ = ("adapter", "model", "parsed", "streamed", "usage")

    def __init__(
        self, adapter: ProviderAdapter, parsed: ParsedCall, streamed: bool, model: str, usage: Usage
    ):
        self.adapter = adapter
        self.parsed = parsed
        self.streamed = streamed
        self.model = model
        """The response's model name, else the request's, else ``"unknown"``."""
        self.usage = usage
        """Token counts and USD (``genai-prices`` at the response's ``Date``; ``None`` when unknown)."""


def _priced(request: Mapping[str, Any], response: Mapping[str, Any]) -> Priced | None:
    """The interaction read by its adapter and priced, or ``None`` (see :func:`parse_normalised`)."""
    found = _parse(request, response)
    if found is None:
        return None
    adapter, parsed, streamed, request_json, date = found
    model = parsed.model
    if model is None and isinstance(request_json, dict) and isinstance(request_json.get("model"), str):
        model = request_json["model"]
    model = model or "unknown"
    cost: float | None = None
    if parsed.usage_reported:
        cost = price_usd(
            adapter.provider,
            model,
            input_tokens=parsed.input_tokens,
            output_tokens=parsed.output_tokens,
            cache_read_tokens=parsed.cache_read_tokens,
            cache_write_tokens=parsed.cache_write_tokens,
            cache_write_1h_tokens=parsed.cache_write_1h_tokens,
            api_url=request["uri"],
            at=price_time_from_date_header(date),
        )
    usage = Usage(
        input_tokens=parsed.input_tokens,
        output_tokens=parsed.output_tokens,
        cost_usd=cost,
        cache_read_tokens=parsed.cache_read_tokens,
        cache_write_tokens=parsed.cache_write_tokens,
    )
    return Priced(adapter, parsed, streamed, model, usage)


def _model_call(
    request: Mapping[str, Any],
    response: Mapping[str, Any],
    agent: str | None,
    latency_s: float,
    scrub: Callable[[Any], Any] | None,
    ledger_fields: Callable[[], Mapping[str, Any]] | None,
) -> ModelCall | None:
    """:func:`call_from_normalised`; ``ledger_fields()`` (called only for a model call) adds fields."""
    priced = _priced(request, response)
    return None if priced is None else _call_of(priced, agent, latency_s, scrub, ledger_fields)


def _call_of(
    priced: Priced,
    agent: str | None,
    latency_s: float,
    scrub: Callable[[Any], Any] | None,
    ledger_fields: Callable[[], Mapping[str, Any]] | None,
) -> ModelCall:
    """The :class:`ModelCall` of a priced interaction; ``ledger_fields()`` adds fields."""
    parsed = priced.parsed
    messages = parsed.input_messages
    tools = parsed.tool_calls
    text = parsed.text or ""
    if scrub is not None:
        messages = tuple(_scrubbed(m, scrub) for m in messages)
        text = scrub(text)
        tools = tuple(t.model_copy(update={"arguments": scrub(t.arguments)}) for t in tools)
    if agent is not None:
        tools = tuple(t.model_copy(update={"agent": agent}) for t in tools)
    return ModelCall(
        agent=agent,
        provider=priced.adapter.provider,
        model=priced.model,
        usage=priced.usage,
        latency_s=latency_s,
        streamed=priced.streamed,
        api=priced.adapter.name,
        input_messages=list(messages),
        output_text=text,
        tool_calls=list(tools),
        finish_reason=parsed.finish_reason,
        usage_reported=parsed.usage_reported,
        **(ledger_fields() if ledger_fields is not None else {}),
    )


def _scrubbed(message: Message, scrub: Callable[[Any], Any]) -> Message:
    text = scrub(message.text)
    return message if text is message.text else Message(role=message.role, text=text)


def parse_interaction(
    request: Mapping[str, Any],
    response: Mapping[str, Any],
    *,
    agent: str | None = None,
    latency_s: float = 0.0,
    scrub: Callable[[Any], Any] | None = None,
) -> ModelCall | None:
    """The :class:`ModelCall` of one recorded interaction, or ``None`` when it is not a model call.

    Args:
        request: vcrpy request dict: ``{"method": str, "uri": str, "headers": {name: [value]},
            "body": str | bytes | None}`` (pydantic-ai's ``parsed_body`` mapping is accepted too).
        response: vcrpy response dict: ``{"status": {"code": int, "message": str},
            "headers": {name: [value]}, "body": {"string": str | bytes}}``; gzip/deflate (and ``br`` with
            ``brotli`` installed) bodies are decoded according to ``Content-Encoding``.
        agent: Agent name to record on the call (and on its tool calls).
        latency_s: Recorded latency in seconds.
        scrub: Applied to every message text, the output text and each tool call's arguments, or
            ``None`` (see :func:`call_from_normalised`).

    Returns:
        The call: provider, model as the response names it, usage from the response's own usage fields
        (``Usage.input_tokens`` includes cached tokens), price from genai-prices (``None`` if unknown, or
        if the response reported no usage). ``None`` for a non-2xx status, a request no adapter reads,
        or a body that is not a response of the matched API.

    Raises:
        BodyError: (a ``ValueError``) a field has the wrong type or a compressed body does not
            decompress; ``.where`` names the field.
    """
    return call_from_normalised(
        normalise_request(request),
        normalise_response(response),
        agent=agent,
        latency_s=latency_s,
        scrub=scrub,
    )


def response_text(request: Mapping[str, Any], response: Mapping[str, Any]) -> str | None:
    """The assistant text of a recorded model call (text parts concatenated, streams reassembled).

    Args:
        request: vcrpy request dict (as for :func:`parse_interaction`).
        response: vcrpy response dict.

    Returns:
        The text, or ``None`` when the interaction is not a successful model call or has no text
        (e.g. only tool calls).

    Raises:
        BodyError: as :func:`parse_interaction`.
    """
    found = parse_normalised(normalise_request(request), normalise_response(response))
    return None if found is None else found[1].text
