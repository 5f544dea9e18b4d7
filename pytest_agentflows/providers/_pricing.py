"""Prices of model calls in US dollars, from the ``genai-prices`` package.

``genai-prices`` (by Pydantic) ships a snapshot of per-model prices (per million tokens, with cache-read
and cache-write rates, tiers, and price changes over time). We use the snapshot bundled with the installed
version and never fetch updates, so a price only changes when the package is upgraded. It is imported
lazily: importing the plugin does not import it.

Prices in the snapshot can depend on when the request was made (dated price changes, DeepSeek's
off-peak hours), so the price of a call is computed at the time the call was *recorded* (its response's
``Date`` header), never at the wall-clock time the test runs: the same cassette always costs the same.

Speed: genai-prices' exact calculation costs ~0.1–0.3 ms per call. The first call of a model (per provider,
API URL and minute) is priced by genai-prices; the price it used is then turned into per-token rates by
asking genai-prices for the price of a few fixed usages (:class:`_Rates`), and later calls of that model
are priced from those rates in exact decimal arithmetic: the same number genai-prices returns
(``tests/test_pricing_rates.py`` compares them over every model of the bundled snapshot). Tiered prices
(a different rate past an input-token threshold) and usages genai-prices might refuse (cache reads beyond
the input tokens) are always priced by genai-prices itself. The rates of models with one price at all times
can be kept between sessions (:func:`kept_rates`, :func:`use_kept_rates`; the plugin keeps them in pytest's
cache for the installed genai-prices snapshot, :func:`rates_identity`), so a later session prices them
without loading genai-prices' data.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
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
    return _parse_date(value)


@functools.lru_cache(maxsize=1024)
def _parse_date(value: str) -> datetime | None:
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
    api_base = _api_base(api_url) if api_url else None
    usage = (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens)
    timeless = _timeless_price(provider, model, api_base, usage)  # most models: no time to work out
    if timeless is not None:
        return timeless
    when = at if at is not None else REFERENCE_TIME
    when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
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


@functools.lru_cache(maxsize=256)
def _api_base(api_url: str) -> str:
    """``scheme://host/path`` of a request URL (no query): what genai-prices matches providers on."""
    parts = urlsplit(api_url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


_BASE = (1000, 1000, 100, 100, 10)
"""A usage inside every price's linear region (input, output, cache read, cache write, cache write 1h)."""


class _Rates:
    """The price of a non-tiered model price as ``base + Σ rate_k × (usage_k - _BASE_k)``, in exact decimals.

    genai-prices prices a call as ``Σ price_per_unit × count / per`` over counts that are differences of
    the usage fields (uncached input = input - cache reads - cache writes, …): an affine function of the
    usage unless a price is tiered (the rate changes past an input-token threshold) — those never get here.
    The base value and each rate come from genai-prices itself (``calc_price`` at ``_BASE`` and at
    ``_BASE`` plus one token of each kind), so the sum is the exact decimal genai-prices would return.
    """

    __slots__ = ("base", "rates")

    def __init__(self, base: Decimal, rates: tuple[Decimal, ...]) -> None:
        self.base = base
        self.rates = rates

    def price(self, usage: tuple[int, int, int, int, int]) -> float:
        total = self.base
        for rate, count, base in zip(self.rates, usage, _BASE, strict=True):
            if rate:
                total += rate * (count - base)
        return float(round(total, 10))


_rates_by_price: dict[int, tuple[Any, _Rates | None]] = {}
"""id(genai-prices ModelPrice) -> (that ModelPrice, kept alive so its id stays unique; its rates or None)."""
_rates_by_key: dict[tuple[str, str, str | None, datetime | None], _Rates | None] = {}
"""(provider, model, api base, minute) -> rates of the price in force then (None: tiered, price exactly);
minute ``None`` for a model whose genai-prices entry has one price for all times (no start dates, no
time-of-day prices): every recorded call then reuses them, whatever its ``Date``."""


def kept_rates() -> list[list[str | None]]:
    """The per-token rates worked out in this process for models with one price at all times, as plain data
    (``[provider, model, api base or None, base, rate, …]``, decimals as text) for :func:`use_kept_rates`
    in a later session: a session whose calls all have kept rates never imports genai-prices (whose bundled
    snapshot takes ~40 ms to load)."""
    return [
        [provider, model, api_base, str(rates.base), *map(str, rates.rates)]
        for (provider, model, api_base, minute), rates in _rates_by_key.items()
        if minute is None and rates is not None
    ]


def use_kept_rates(rows: Any) -> int:
    """Take the rates of :func:`kept_rates` (from an earlier session with the same :func:`rates_identity`).

    Rows that are not of that shape are skipped; a model already known here keeps its rates.

    Returns:
        How many rows were taken.
    """
    taken = 0
    if not isinstance(rows, list):
        return 0
    for row in rows:
        if not (
            isinstance(row, list)
            and len(row) == 4 + len(_BASE)
            and all(isinstance(v, str) for v in row[:2] + row[3:])
            and (row[2] is None or isinstance(row[2], str))
        ):
            continue
        key = (row[0], row[1], row[2], None)
        if key in _rates_by_key or len(_rates_by_key) >= 4096:
            continue
        try:
            base, *rates = (Decimal(v) for v in row[3:])
        except ArithmeticError:  # decimal.InvalidOperation: not a number
            continue
        _rates_by_key[key] = _Rates(base, tuple(rates))
        taken += 1
    return taken


@functools.cache
def rates_identity() -> str | None:
    """What kept rates depend on: the installed genai-prices snapshot (its data file's size and modification
    time, found without importing the package) and this module's source; ``None`` when not found."""
    import hashlib
    import importlib.util
    import os

    try:
        spec = importlib.util.find_spec("genai_prices")
        if spec is None or not spec.submodule_search_locations:
            return None
        data = os.stat(os.path.join(next(iter(spec.submodule_search_locations)), "data.py"))
        with open(__file__, "rb") as fh:
            source = hashlib.sha1(fh.read(), usedforsecurity=False).hexdigest()
    except (ImportError, ValueError, OSError):
        return None
    return f"{data.st_size}/{data.st_mtime_ns}/{source}"


def _timeless_price(
    provider: str, model: str, api_base: str | None, usage: tuple[int, int, int, int, int]
) -> float | None:
    """The price from the rates of a model with one price whatever the time (most), if already known."""
    if not _regular(usage):
        return None
    rates = _rates_by_key.get((provider, model, api_base, None))
    return None if rates is None else rates.price(usage)


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
    usage = (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens)
    timeless = _timeless_price(provider, model, api_base, usage)
    if timeless is not None:
        return timeless
    if _regular(usage):
        rates = _rates_by_key.get((provider, model, api_base, when))
        if rates is not None:
            return rates.price(usage)
    found = _calc(provider, model, usage, api_base, when)
    if found is None:
        return None
    total, model_price, timeless = found
    key = (provider, model, api_base, None if timeless else when)
    if key not in _rates_by_key and len(_rates_by_key) < 4096:
        _rates_by_key[key] = _rates_of(provider, model, api_base, when, model_price)
    return float(round(total, 10))


def _regular(usage: tuple[int, int, int, int, int]) -> bool:
    """Counts genai-prices splits without surprises: cache reads and writes within the input tokens."""
    inp, _out, read, write, write_1h = usage
    return min(usage) >= 0 and read + write <= inp and write_1h <= write


def _rates_of(
    provider: str, model: str, api_base: str | None, when: datetime, model_price: Any
) -> _Rates | None:
    """Rates of ``model_price`` (the price genai-prices used), or ``None`` when it is tiered or unknown."""
    from genai_prices.types import TieredPrices

    if model_price is None:
        return None
    cached = _rates_by_price.get(id(model_price))
    if cached is not None and cached[0] is model_price:
        return cached[1]
    rates: _Rates | None = None
    values = vars(model_price).values() if hasattr(model_price, "__dict__") else None
    if values is not None and not any(isinstance(v, TieredPrices) for v in values):
        points = [_BASE] + [
            tuple(b + (1 if i == k else 0) for i, b in enumerate(_BASE)) for k in range(len(_BASE))
        ]
        totals = [_calc(provider, model, point, api_base, when) for point in points]
        if all(t is not None and t[1] is model_price for t in totals):
            base = totals[0][0]  # type: ignore[index]
            rates = _Rates(base, tuple(t[0] - base for t in totals[1:]))  # type: ignore[index]
    _rates_by_price[id(model_price)] = (model_price, rates)
    return rates


@functools.lru_cache(maxsize=4096)
def _calc(
    provider: str,
    model: str,
    usage: tuple[int, ...],
    api_base: str | None,
    when: datetime,
) -> tuple[Decimal, Any, bool] | None:
    """genai-prices' exact price of ``usage``, the ``ModelPrice`` it used and whether the model has that one
    price at all times (its entry's ``prices`` is one ``ModelPrice``, not conditional ones); ``None`` if it
    knows no price."""
    import genai_prices

    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens = usage
    priced = genai_prices.Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
    )
    if cache_write_1h_tokens:
        priced.cache_write_1h_tokens = cache_write_1h_tokens
    if api_base:
        try:
            calc = genai_prices.calc_price(
                priced, model, provider_api_url=api_base, genai_request_timestamp=when
            )
        except LookupError:
            pass
        else:
            return _found(calc)
    try:
        calc = genai_prices.calc_price(priced, model, provider_id=provider, genai_request_timestamp=when)
    except LookupError:
        return None
    return _found(calc)


def _found(calc: Any) -> tuple[Decimal, Any, bool]:
    model_price = getattr(calc, "model_price", None)
    prices = getattr(getattr(calc, "model", None), "prices", None)
    return calc.total_price, model_price, prices is not None and prices is model_price
