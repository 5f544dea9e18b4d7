"""Prices from cached per-model rates are exactly genai-prices' prices.

``_pricing._price`` asks genai-prices once per model price and then prices further calls of that model
with rates derived from genai-prices itself (see ``_pricing._Rates``). These tests compare every result
with a direct ``genai_prices.calc_price`` call: over a sample of every provider's models (all of them with
``--stress``), at several request times (dated price changes, DeepSeek's off-peak hours), for token
counts from 0 to millions.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone

import genai_prices
import pytest
from genai_prices import data_snapshot
from genai_prices.types import ModelPrice, TieredPrices

from pytest_agentflows.providers import _pricing

WHEN = [
    datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc),
    datetime(2025, 3, 10, 17, 30, tzinfo=timezone.utc),  # DeepSeek's off-peak hours
    datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc),
]


def _models() -> list[tuple[str, str]]:
    snapshot = data_snapshot.get_snapshot()
    return [(provider.id, model.id) for provider in snapshot.providers for model in provider.models]


def _usages(rng: random.Random, k: int) -> list[tuple[int, int, int, int, int]]:
    out = [(0, 0, 0, 0, 0), (1, 0, 0, 0, 0), (0, 1, 0, 0, 0)]
    while len(out) < k:
        scale = rng.choice([10, 1_000, 100_000, 3_000_000])
        inp = rng.randrange(scale)
        read = rng.randrange(inp + 1) if rng.random() < 0.5 else 0
        write = rng.randrange(inp - read + 1) if rng.random() < 0.5 else 0
        write_1h = rng.randrange(write + 1) if write and rng.random() < 0.5 else 0
        out.append((inp, rng.randrange(scale), read, write, write_1h))
    return out


def _exact(provider: str, model: str, usage: tuple[int, ...], when: datetime) -> float | None:
    inp, out, read, write, write_1h = usage
    priced = genai_prices.Usage(
        input_tokens=inp, output_tokens=out, cache_read_tokens=read, cache_write_tokens=write
    )
    if write_1h:
        priced.cache_write_1h_tokens = write_1h
    try:
        calc = genai_prices.calc_price(priced, model, provider_id=provider, genai_request_timestamp=when)
    except LookupError:
        return None
    return float(round(calc.total_price, 10))


def _rates(provider: str, model: str, when: datetime) -> object:
    """The cached rates that price ``model`` at ``when``: its time-independent ones, else that minute's."""
    return _pricing._rates_by_key.get((provider, model, None, None)) or _pricing._rates_by_key.get(
        (provider, model, None, when)
    )


def _fresh() -> None:
    _pricing._rates_by_key.clear()
    _pricing._rates_by_price.clear()
    _pricing._calc.cache_clear()


def test_rates_price_exactly_as_genai_prices(request: pytest.FixtureRequest) -> None:
    rng = random.Random(20261123)
    models = _models()
    assert len(models) > 500  # the bundled snapshot, not an empty one
    if not request.config.getoption("--stress"):
        models = rng.sample(models, 250)
    _fresh()
    checked = fast = 0
    for provider, model in models:
        for when in WHEN:
            for usage in _usages(rng, 6):
                used_rates = _rates(provider, model, when) is not None
                got = _pricing._price(provider, model, *usage, None, when)
                want = _exact(provider, model, usage, when)
                assert got == want, (provider, model, usage, when)
                checked += 1
                fast += used_rates
    # many calls were priced from rates (not: the first call of each model and time, tiered prices,
    # model ids genai-prices does not find at that provider)
    assert fast > checked // 3


def test_tiered_prices_are_always_computed_by_genai_prices() -> None:
    snapshot = data_snapshot.get_snapshot()
    tiered = [
        (provider.id, model.id)
        for provider in snapshot.providers
        for model in provider.models
        if isinstance(model.prices, ModelPrice)
        and any(isinstance(v, TieredPrices) for v in vars(model.prices).values())
    ]
    assert tiered, "the snapshot has tiered prices (e.g. long-context rates)"
    _fresh()
    when = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    priced = 0
    for provider, model in tiered[:40]:
        for usage in [(1_000, 10, 0, 0, 0), (900_000, 10, 0, 0, 0), (1_500, 20, 0, 0, 0)]:
            got = _pricing._price(provider, model, *usage, None, when)
            assert got == _exact(provider, model, usage, when)
            priced += got is not None
        assert _rates(provider, model, when) is None  # never rates
    assert priced >= 30


def test_irregular_usage_is_computed_by_genai_prices() -> None:
    """Cache reads beyond the input tokens: whatever genai-prices says (a price or an error), we say."""
    _fresh()
    when = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert _pricing._price("openai", "gpt-4o-mini", 100, 10, 0, 0, 0, None, when) is not None
    assert _rates("openai", "gpt-4o-mini", when) is not None
    irregular = (10, 10, 50, 0, 0)
    try:
        want: object = _exact("openai", "gpt-4o-mini", irregular, when)
    except Exception as exc:  # genai-prices refuses it: so must we
        with pytest.raises(type(exc)):
            _pricing._price("openai", "gpt-4o-mini", *irregular, None, when)
    else:
        assert _pricing._price("openai", "gpt-4o-mini", *irregular, None, when) == want


def test_price_by_api_url_uses_that_providers_rates() -> None:
    _fresh()
    when = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    for usage in [(100, 10, 0, 0, 0), (5_000, 300, 1_000, 0, 0), (77, 3, 0, 0, 0)]:
        got = _pricing.price_usd(
            "openai",
            "gpt-4o-mini",
            input_tokens=usage[0],
            output_tokens=usage[1],
            cache_read_tokens=usage[2],
            api_url="https://api.openai.com/v1/chat/completions",
            at=when,
        )
        assert got == _exact("openai", "gpt-4o-mini", usage, when)
        assert got is not None and got > 0


def test_a_model_with_one_price_is_priced_from_rates_at_any_time() -> None:
    """Each recorded response has its own ``Date``: a model whose price never changed asks genai-prices once,
    a model with time-dependent prices (DeepSeek's off-peak hours) once per minute, and both stay exact."""
    _fresh()
    times = [datetime(2026, 1, 1, 12, minute, tzinfo=timezone.utc) for minute in range(5)]
    for when in times:
        assert _pricing._price("openai", "gpt-4o-mini", 1_000, 100, 0, 0, 0, None, when) == _exact(
            "openai", "gpt-4o-mini", (1_000, 100, 0, 0, 0), when
        )
    assert _pricing._calc.cache_info().misses == 1 + 6  # the first call, then the rates (6 points)
    assert ("openai", "gpt-4o-mini", None, None) in _pricing._rates_by_key

    _fresh()
    peak, off_peak = (
        datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc),
        datetime(2025, 3, 10, 17, 30, tzinfo=timezone.utc),
    )
    for when in (peak, off_peak):
        got = _pricing._price("deepseek", "deepseek-chat", 1_000, 100, 0, 0, 0, None, when)
        assert got == _exact("deepseek", "deepseek-chat", (1_000, 100, 0, 0, 0), when)
    assert ("deepseek", "deepseek-chat", None, None) not in _pricing._rates_by_key
    assert _pricing._price("deepseek", "deepseek-chat", 1_000, 100, 0, 0, 0, None, peak) != _pricing._price(
        "deepseek", "deepseek-chat", 1_000, 100, 0, 0, 0, None, off_peak
    )
