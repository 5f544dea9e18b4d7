"""The provider-adapter protocol and the small helpers the adapters share."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..runtime._models import Message, ToolCall

__all__ = ["ParsedCall", "ProviderAdapter", "as_int", "url_path"]


@dataclass(frozen=True)
class ParsedCall:
    """What an adapter reads from one successful response, before pricing.

    Token counts follow the :class:`~pytest_agentflows.Usage` convention: ``input_tokens`` counts every
    billed input token, cache reads and writes included.
    """

    model: str | None
    """Model name as the response gives it (``None`` if the response names none)."""
    input_tokens: int = 0
    """Billed input tokens, cache reads and writes included."""
    output_tokens: int = 0
    """Billed output tokens (reasoning tokens included)."""
    cache_read_tokens: int = 0
    """Of ``input_tokens``, those read from the prompt cache."""
    cache_write_tokens: int = 0
    """Of ``input_tokens``, those written to the prompt cache."""
    cache_write_1h_tokens: int = 0
    """Of ``cache_write_tokens``, those written with Anthropic's 1-hour TTL (priced higher); pricing only."""
    usage_reported: bool = True
    """``False`` when the response carries no usage at all (e.g. a chat stream recorded without
    ``stream_options={"include_usage": True}``): the token counts are then 0 and the price unknown."""
    text: str | None = None
    """The assistant text of the response (text parts concatenated), ``None`` if there is none."""
    tool_calls: tuple[ToolCall, ...] = ()
    """The tool calls the response asks for, in order (``agent`` unset: the ledger sets it)."""
    finish_reason: str | None = None
    """The provider's own stop value (see :attr:`pytest_agentflows.ModelCall.finish_reason`)."""
    input_messages: tuple[Message, ...] = ()
    """The request's messages: system prompt first, tool results as role ``"tool"``."""


@runtime_checkable
class ProviderAdapter(Protocol):
    """Reads one wire API's responses into a :class:`ParsedCall`.

    Register an implementation with :func:`pytest_agentflows.providers.register_adapter`.
    """

    @property
    def name(self) -> str:
        """Adapter / API name stored in ``ModelCall.api``, e.g. ``"openai.chat"``."""
        ...

    @property
    def provider(self) -> str:
        """Provider family stored in ``ModelCall.provider`` and used for pricing, e.g. ``"openai"``."""
        ...

    def matches(self, method: str, url: str, request_json: Any) -> bool:
        """Whether this adapter reads the interaction.

        Args:
            method: HTTP method, upper case.
            url: Full request URL.
            request_json: The request body parsed as JSON, or ``None``.
        """
        ...

    def parse(self, request_json: Any, body: bytes, *, streamed: bool) -> ParsedCall | None:
        """Read a successful (2xx) response.

        Args:
            request_json: The request body parsed as JSON, or ``None``.
            body: The decoded response body (JSON, or the whole SSE stream when ``streamed``).
            streamed: Whether ``body`` is a server-sent-event stream.

        Returns:
            The call, or ``None`` when the body is not a response of this API.
        """
        ...


def as_int(value: Any) -> int:
    """A token count from JSON: non-negative ints (and integral floats) as int; anything else 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value.is_integer():
        return max(int(value), 0)
    return 0


@functools.lru_cache(maxsize=512)
def url_path(url: str) -> str:
    """The path of ``url`` without a trailing slash (``""`` for the root); memoised (a flow's model
    requests go to a handful of URLs, and every request is matched against every adapter)."""
    return urlsplit(url).path.rstrip("/")
