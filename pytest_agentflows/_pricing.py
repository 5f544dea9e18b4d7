"""Prices of model calls in US dollars, from the ``genai-prices`` package.

``genai-prices`` (by Pydantic) ships a snapshot of per-model prices (per million tokens, with cache-read
and cache-write rates, tiers, and price changes over time). We use the snapshot bundled with the installed
version and never fetch updates, so a price only changes when the package is upgraded. It is imported
lazily: importing the plugin does not import it.

Prices in the snapshot can depend on when the request was made (dated price changes, DeepSeek's
off-peak hours), so the price of a call is computed at the time the call was *recorded* (its response's
``Date`` header), never at the wall-clock time the test runs: the same cassette always costs the same.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

__all__ = ["REFERENCE_TIME", "price_time_from_date_header", "price_usd"]

REFERENCE_TIME = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
"""Request time assumed for a call whose recording time is unknown (no ``Date`` header)."""


def price_time_from_date_header(value: str | None) -> datetime | None:
    """The time in an HTTP ``Date`` header (e.g. ``"Wed, 06 May 2026 03:12:57 GMT"``), or ``None``.

    Args:
        value: The header value, or ``None``. Unparsable values (e.g. redacted ones) give ``None``.
    """
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def price_usd(
    provider: str,
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
    api_url: str | None = None,
    at: datetime | None = None,
) -> float | None:
    """Price of one call in US dollars, from ``genai_prices.calc_price``.

    Args:
        provider: genai-prices provider id: ``"openai"``, ``"anthropic"``, … Used when ``api_url`` is
            not given or names no provider genai-prices knows (a local server, a proxy).
        model: Model name as the response gives it (``"gpt-4o-mini-2024-07-18"``); genai-prices matches
            dated and aliased names.
        input_tokens: Every billed input token, cache reads and writes included.
        output_tokens: Billed output tokens, reasoning tokens included.
        cache_read_tokens: Of ``input_tokens``, those read from the prompt cache (cheaper rate).
        cache_write_tokens: Of ``input_tokens``, those written to the prompt cache (Anthropic's rate).
        cache_write_1h_tokens: Of ``cache_write_tokens``, those written with Anthropic's 1-hour TTL
            (charged at the 1-hour cache-write rate; genai-prices < 0.1.0 has none and charges the
            5-minute rate).
        api_url: Request URL; when given, the provider is found from its host first (so Azure and
            OpenRouter calls get those providers' prices).
        at: When the request was made (timezone-aware, or naive UTC); ``None`` means
            :data:`REFERENCE_TIME`. Prices are looked up at this time, to the minute.

    Returns:
        The price rounded to 10 decimal places, or ``None`` when genai-prices knows no price for
        ``model`` at that provider.
    """
    when = at if at is not None else REFERENCE_TIME
    when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    api_base = None
    if api_url:
        parts = urlsplit(api_url)
        api_base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return _price(
        provider,
        model,
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        cache_write_1h_tokens,
        api_base,
        when.replace(second=0, microsecond=0),
    )


@functools.lru_cache(maxsize=4096)
def _price(
    provider: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    cache_write_1h_tokens: int,
    api_base: str | None,
    when: datetime,
) -> float | None:
    import genai_prices

    usage = genai_prices.Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
    )
    if cache_write_1h_tokens:
        usage.cache_write_1h_tokens = cache_write_1h_tokens
    if api_base:
        try:
            calc = genai_prices.calc_price(
                usage, model, provider_api_url=api_base, genai_request_timestamp=when
            )
        except LookupError:
            pass
        else:
            return float(round(calc.total_price, 10))
    try:
        calc = genai_prices.calc_price(usage, model, provider_id=provider, genai_request_timestamp=when)
    except LookupError:
        return None
    return float(round(calc.total_price, 10))
