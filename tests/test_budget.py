"""BudgetPool: caps, reserve-then-commit stage caps, concurrency, errors."""

from __future__ import annotations

import asyncio
import contextvars
import pickle
import random
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from pytest_agentflows.runtime._context import AgentScope
from pytest_agentflows.runtime._models import Usage
from pytest_agentflows.runtime.budget import (
    UNATTRIBUTED,
    BudgetExceeded,
    BudgetPool,
    PriceUnknownError,
    Reservation,
    current_reservation,
)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a private event loop.

    Not ``asyncio.run``/pytest-asyncio: with looptime's pytest plugin active, those orphan the loop that
    plugin creates for the test, and its ResourceWarning fails a later test under ``filterwarnings=error``.
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def usage(usd: float | None = 0.0, inp: int = 0, out: int = 0) -> Usage:
    return Usage(input_tokens=inp, output_tokens=out, cost_usd=usd)


# -- caps ------------------------------------------------------------------------------------------------
def test_no_caps_records_spend() -> None:
    pool = BudgetPool()
    assert pool.charge(usage(0.5, 100, 20), "a") is True
    assert pool.spent_usd == 0.5
    assert pool.spent_tokens == 120
    assert pool.remaining_usd is None
    assert pool.remaining_tokens is None
    assert pool.usd is None and pool.tokens is None
    assert not pool.exceeded
    pool.check()


def test_usd_cap_charge_over_records_and_flags() -> None:
    pool = BudgetPool(usd=0.10)
    assert pool.charge(usage(0.06), "a") is True
    assert pool.remaining_usd == pytest.approx(0.04)
    assert pool.charge(usage(0.07), "b") is False  # the money is gone: still recorded
    assert pool.spent_usd == pytest.approx(0.13)
    assert pool.exceeded
    assert pool.remaining_usd == 0.0
    with pytest.raises(BudgetExceeded) as info:
        pool.check()
    err = info.value
    assert err.kind == "usd"
    assert err.limit == 0.10
    assert err.spent == pytest.approx(0.13)
    assert err.requested == pytest.approx(0.07)
    assert err.agent == "b"
    assert set(err.per_agent) == {"a", "b"}
    assert not err.before_start


def test_exactly_at_cap_is_within() -> None:
    pool = BudgetPool(usd=0.3)
    for _ in range(3):
        assert pool.charge(usage(0.1))  # 0.1 + 0.1 + 0.1 != 0.3 in floats
    assert not pool.exceeded
    pool.check()


def test_token_cap() -> None:
    pool = BudgetPool(tokens=1000)
    assert pool.charge(usage(None, 400, 100))  # unknown price is fine without a USD cap
    assert pool.remaining_tokens == 500
    assert not pool.charge(usage(None, 500, 1))
    with pytest.raises(BudgetExceeded) as info:
        pool.check()
    assert info.value.kind == "tokens"
    assert info.value.limit == 1000
    assert info.value.spent == 1001
    assert "token budget exceeded" in str(info.value)
    assert "@pytest.mark.agent_budget(tokens=...)" in str(info.value)
    assert pool.usage.cost_usd is None


@pytest.mark.parametrize(
    ("usd", "tokens"), [(-1.0, None), (None, -5), ("1", None), (None, 1.5), (True, None)]
)
def test_invalid_caps(usd: object, tokens: object) -> None:
    with pytest.raises(ValueError, match="BudgetPool"):
        BudgetPool(usd=usd, tokens=tokens)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="acquire"):
        BudgetPool().acquire(max_usd=usd, max_tokens=tokens)  # type: ignore[arg-type]


# -- per agent -------------------------------------------------------------------------------------------
def test_per_agent_breakdown_sorted_and_attributed() -> None:
    pool = BudgetPool()
    pool.charge(usage(0.02, 10, 5), "writer")
    pool.charge(usage(0.01, 1, 1))  # no agent
    with AgentScope("classifier"):
        pool.charge(usage(0.03, 100, 3))
    pool.charge(usage(0.04, 10, 5), "writer")
    with pool.acquire(agent="stage-x"):
        pool.charge(usage(0.05, 2, 2))
    per = pool.per_agent
    assert list(per) == sorted(per)
    assert per["writer"] == usage(0.06, 20, 10)
    assert per["classifier"] == usage(0.03, 100, 3)
    assert per[UNATTRIBUTED] == usage(0.01, 1, 1)
    assert per["stage-x"].cost_usd == 0.05
    assert pool.calls == 5
    assert pool.usage.total_tokens == 20 + 10 + 2 + 103 + 4


def test_explicit_agent_wins_over_reservation_and_context() -> None:
    pool = BudgetPool()
    with AgentScope("ctx"), pool.acquire(agent="stage") as r:
        pool.charge(usage(0.01), "explicit")
        r.charge(usage(0.01))
    assert set(pool.per_agent) == {"explicit", "stage"}


# -- reservations ----------------------------------------------------------------------------------------
def test_reservation_reserves_and_release_returns_unspent() -> None:
    pool = BudgetPool(usd=1.0)
    with pool.acquire(max_usd=0.4, agent="s") as r:
        assert isinstance(r, Reservation) and r.active
        assert current_reservation.get() is r
        assert pool.reserved_usd == pytest.approx(0.4)
        assert pool.remaining_usd == pytest.approx(0.6)
        pool.charge(usage(0.1))
        assert r.spent_usd == pytest.approx(0.1)
        assert r.remaining_usd == pytest.approx(0.3)
        assert pool.spent_usd == pytest.approx(0.1)
        assert pool.reserved_usd == pytest.approx(0.3)  # the spent part moved from reserved to spent
        assert pool.remaining_usd == pytest.approx(0.6)
    assert not r.active
    assert current_reservation.get() is None
    assert pool.reserved_usd == 0.0
    assert pool.spent_usd == pytest.approx(0.1)
    assert pool.remaining_usd == pytest.approx(0.9)


def test_stage_that_does_not_fit_raises_before_spending() -> None:
    pool = BudgetPool(usd=0.10)
    pool.charge(usage(0.07), "classify")
    ran = False
    with pytest.raises(BudgetExceeded) as info, pool.acquire(max_usd=0.05, agent="draft"):
        ran = True
    assert not ran
    err = info.value
    assert err.before_start
    assert err.kind == "usd"
    assert err.agent == "draft"
    assert err.limit == 0.10
    assert err.spent == pytest.approx(0.07)
    assert err.requested == 0.05
    assert pool.spent_usd == pytest.approx(0.07)
    assert pool.reserved_usd == 0.0
    assert current_reservation.get() is None


def test_reserved_by_others_counts() -> None:
    pool = BudgetPool(usd=1.0)

    def elsewhere(max_usd: float) -> BudgetExceeded | None:
        # A sibling stage: a fresh context, so not nested in the reservation held below.
        try:
            with pool.acquire(max_usd=max_usd, agent="b"):
                assert pool.remaining_usd == pytest.approx(1.0 - 0.7 - max_usd)
        except BudgetExceeded as exc:
            return exc
        return None

    with pool.acquire(max_usd=0.7, agent="a"):
        err = contextvars.Context().run(elsewhere, 0.4)
        assert err is not None
        assert err.reserved == pytest.approx(0.7)
        assert "$0.70 reserved by running stages" in str(err)
        assert contextvars.Context().run(elsewhere, 0.3) is None
    assert pool.remaining_usd == 1.0


def test_acquire_without_max_needs_something_left() -> None:
    pool = BudgetPool(usd=0.1, tokens=100)
    with pool.acquire(agent="free") as r:
        assert r.max_usd is None and r.remaining_usd is None
        pool.charge(usage(0.1, 10))
    with pytest.raises(BudgetExceeded) as info, pool.acquire(agent="next"):
        pass
    assert info.value.kind == "usd"
    assert info.value.requested == 0


def test_token_reservation() -> None:
    pool = BudgetPool(tokens=1000)
    with pool.acquire(max_tokens=600, agent="a") as r:
        assert pool.reserved_tokens == 600
        assert pool.remaining_tokens == 400
        pool.charge(usage(None, 100, 50))
        assert r.spent_tokens == 150
        assert r.remaining_tokens == 450
        assert pool.reserved_tokens == 450
        with pytest.raises(BudgetExceeded) as info, pool.acquire(max_tokens=500, agent="b"):
            pass
        assert info.value.kind == "tokens"
    assert pool.reserved_tokens == 0
    assert pool.remaining_tokens == 850


def test_reservation_own_cap_check() -> None:
    pool = BudgetPool(usd=10.0)
    with pool.acquire(max_usd=0.05, agent="summarize") as r:
        assert r.charge(usage(0.04)) is True
        r.check()
        assert r.charge(usage(0.03)) is False
        assert r.exceeded
        assert not pool.exceeded
        with pytest.raises(BudgetExceeded) as info:
            r.check()
    err = info.value
    assert err.cap_of == "summarize"
    assert err.limit == 0.05
    assert err.spent == pytest.approx(0.07)
    assert "max_usd=$0.05 of stage 'summarize'" in str(err)
    assert "raise the max_usd of stage 'summarize'" in str(err)
    # Overspend is committed in full; the reservation's hold never goes negative.
    assert pool.spent_usd == pytest.approx(0.07)
    assert pool.reserved_usd == 0.0


def test_reservation_check_also_checks_pool() -> None:
    pool = BudgetPool(usd=0.05)
    with pool.acquire(agent="s") as r:
        pool.charge(usage(0.06))
        with pytest.raises(BudgetExceeded) as info:
            r.check()
    assert info.value.cap_of is None


def test_reservation_single_use_and_inactive_charge() -> None:
    pool = BudgetPool()
    r = pool.acquire(max_usd=1)
    with pytest.raises(RuntimeError, match="not active"):
        r.charge(usage(0.1))
    with r:
        pass
    with pytest.raises(RuntimeError, match="only once"), r:
        pass
    with pytest.raises(RuntimeError, match="not active"):
        r.charge(usage(0.1))


def test_exception_inside_releases() -> None:
    pool = BudgetPool(usd=1.0)
    with pytest.raises(KeyError), pool.acquire(max_usd=0.5):
        pool.charge(usage(0.2))
        raise KeyError("boom")
    assert pool.reserved_usd == 0.0
    assert pool.spent_usd == pytest.approx(0.2)
    assert current_reservation.get() is None


def test_nested_reservation_draws_from_outer() -> None:
    pool = BudgetPool(usd=1.0)
    with pool.acquire(max_usd=1.0, agent="pipeline") as outer:
        assert pool.reserved_usd == 1.0
        with pool.acquire(max_usd=0.6, agent="stage1") as inner:  # fits in the outer, not pool-counted twice
            pool.charge(usage(0.5))
            assert inner.spent_usd == outer.spent_usd == pytest.approx(0.5)
            assert pool.reserved_usd == pytest.approx(0.5)
        with pytest.raises(BudgetExceeded) as info, pool.acquire(max_usd=0.6, agent="stage2"):
            pass
        assert info.value.cap_of == "pipeline"
        assert "of stage 'pipeline'" in str(info.value)
        with pool.acquire(max_usd=0.5, agent="stage2"):
            pass
    assert pool.reserved_usd == 0.0
    assert pool.spent_usd == pytest.approx(0.5)


def test_nested_inner_holds_in_pool_when_outer_has_no_usd_cap() -> None:
    pool = BudgetPool(usd=1.0)
    with pool.acquire(max_tokens=100, agent="outer"), pool.acquire(max_usd=0.4, agent="inner"):
        assert pool.reserved_usd == pytest.approx(0.4)
        assert pool.reserved_tokens == 0  # the pool has no token cap: nothing to hold
    assert pool.reserved_usd == 0.0


def test_reservations_of_two_pools_do_not_mix() -> None:
    a, b = BudgetPool(usd=1.0), BudgetPool(usd=1.0)
    with a.acquire(max_usd=0.5, agent="ra") as ra, b.acquire(max_usd=0.5, agent="rb") as rb:
        a.charge(usage(0.1))
        b.charge(usage(0.2))
    assert ra.spent_usd == pytest.approx(0.1)
    assert rb.spent_usd == pytest.approx(0.2)
    assert a.per_agent == {"ra": usage(0.1)}


def test_async_reservation() -> None:
    async def main() -> None:
        pool = BudgetPool(usd=1.0)
        async with pool.acquire(max_usd=0.5, agent="async-stage") as r:
            assert current_reservation.get() is r
            await asyncio.sleep(0)
            pool.charge(usage(0.2))
            assert pool.reserved_usd == pytest.approx(0.3)
        assert current_reservation.get() is None
        assert pool.reserved_usd == 0.0
        assert pool.per_agent == {"async-stage": usage(0.2)}
        with pytest.raises(BudgetExceeded):
            async with pool.acquire(max_usd=0.9):
                pass

    run(main())


def test_async_tasks_see_their_own_reservation() -> None:
    pool = BudgetPool()

    async def stage(name: str, cost: float) -> float:
        async with pool.acquire(agent=name) as r:
            await asyncio.sleep(0)
            pool.charge(usage(cost))
            await asyncio.sleep(0)
            return r.spent_usd

    async def main() -> list[float]:
        return await asyncio.gather(*(stage(f"s{i}", i / 100) for i in range(10)))

    spent = run(main())
    assert spent == [pytest.approx(i / 100) for i in range(10)]
    assert pool.per_agent["s3"].cost_usd == pytest.approx(0.03)


# -- unknown prices --------------------------------------------------------------------------------------
def test_unknown_price_with_usd_cap_raises_after_recording_tokens() -> None:
    pool = BudgetPool(usd=1.0)
    with pytest.raises(PriceUnknownError) as info:
        pool.charge(usage(None, 10, 5), "writer", model="mystery-model-1")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.model == "mystery-model-1"
    assert err.agent == "writer"
    message = str(err)
    assert "genai-prices has no price for model 'mystery-model-1'" in message
    assert "agent_budget(tokens=...)" in message
    assert pool.spent_tokens == 15
    assert pool.spent_usd == 0.0


def test_unknown_price_under_stage_usd_cap_raises() -> None:
    pool = BudgetPool(tokens=100)
    with pytest.raises(PriceUnknownError), pool.acquire(max_usd=0.5) as r:
        r.charge(usage(None, 1, 1))
    with pool.acquire(max_tokens=10) as r:
        r.charge(usage(None, 1, 1))  # no USD cap anywhere: fine


# -- messages --------------------------------------------------------------------------------------------
def test_before_start_message_names_everything() -> None:
    pool = BudgetPool(usd=0.10)
    pool.charge(usage(0.03, 1200, 300), "classify")
    pool.charge(usage(0.0456789, 2000, 100), "research")
    with pytest.raises(BudgetExceeded) as info, pool.acquire(max_usd=0.05, agent="draft"):
        pass
    message = str(info.value)
    assert message.splitlines() == [
        "USD budget exceeded: agent 'draft' did not start (no model call made): it reserves up to $0.05 "
        "but only $0.024321 of the $0.10 USD budget is left ($0.075679 spent, $0.00 reserved by running "
        "stages).",
        "Spend per agent:",
        "  classify: $0.03 (1,200 input + 300 output tokens)",
        "  research: $0.045679 (2,000 input + 100 output tokens)",
        "Fix: raise the cap in @pytest.mark.agent_budget(usd=...) (or BudgetPool(usd=...)), "
        "or lower the stage's max_usd.",
    ]


def test_after_charge_message() -> None:
    pool = BudgetPool(usd=1)
    pool.charge(usage(1.5, 10, 10), "big")
    with pytest.raises(BudgetExceeded) as info:
        pool.check()
    message = str(info.value)
    assert message.startswith(
        "USD budget exceeded: $1.50 spent against the $1.00 USD budget "
        "(the last call by agent 'big' cost $1.50)."
    )
    assert "Spend per agent:\n  big: $1.50" in message


def test_message_without_any_spend() -> None:
    pool = BudgetPool(usd=0.01)
    with pytest.raises(BudgetExceeded) as info, pool.acquire(max_usd=0.02):
        pass
    assert "a stage with no agent name did not start" in str(info.value)
    assert "Spend per agent: none recorded." in str(info.value)


def test_errors_pickle() -> None:
    pool = BudgetPool(usd=0.01)
    pool.charge(usage(0.02), "a")
    with pytest.raises(BudgetExceeded) as info:
        pool.check()
    err = info.value
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err)
    assert copy.per_agent == err.per_agent
    price = pickle.loads(pickle.dumps(PriceUnknownError("m", "a")))
    assert str(price) == str(PriceUnknownError("m", "a"))


def test_repr() -> None:
    pool = BudgetPool(usd=1.0)
    assert repr(pool) == "BudgetPool(usd=1.0, tokens=None, spent_usd=0.0, spent_tokens=0)"
    assert "agent='x'" in repr(pool.acquire(max_usd=0.1, agent="x"))


# -- concurrency -----------------------------------------------------------------------------------------
N = 1000
CAP = 5.0


def _plan(seed: int) -> list[tuple[float, float]]:
    """(max_usd, actual cost <= max_usd) for each of N stages, deterministic."""
    rng = random.Random(seed)
    plan = []
    for _ in range(N):
        max_usd = round(rng.uniform(0.001, 0.02), 6)
        plan.append((max_usd, round(max_usd * rng.uniform(0.0, 1.0), 6)))
    return plan


def _check_totals(pool: BudgetPool, results: list[float | None]) -> None:
    successes = [r for r in results if r is not None]
    failures = [r for r in results if r is None]
    assert len(successes) + len(failures) == N
    assert successes, "some stages must fit"
    assert failures, "the cap must be tight enough to refuse some stages"
    assert pool.spent_usd <= CAP
    assert pool.spent_usd == pytest.approx(sum(successes))
    assert pool.calls == len(successes)
    assert pool.reserved_usd == 0.0
    assert not pool.exceeded
    pool.check()
    assert sum(u.cost_usd or 0.0 for u in pool.per_agent.values()) == pytest.approx(pool.spent_usd)


def test_thousand_concurrent_reservations_from_threads() -> None:
    pool = BudgetPool(usd=CAP)
    plan = _plan(seed=1234)
    barrier = threading.Barrier(16)
    over_seen: list[float] = []

    def stage(i: int) -> float | None:
        if i < 16:
            barrier.wait()  # make the first wave really start together
        max_usd, cost = plan[i]
        try:
            with pool.acquire(max_usd=max_usd, agent=f"agent-{i % 7}") as r:
                # Invariant: committed + held never exceeds the cap.
                total = pool.spent_usd + pool.reserved_usd
                if total > CAP + 1e-9:
                    over_seen.append(total)
                assert pool.charge(usage(cost, 10, 1)) is True
                r.check()
                return cost
        except BudgetExceeded as exc:
            assert exc.before_start
            return None

    with ThreadPoolExecutor(max_workers=16) as ex:
        results = list(ex.map(stage, range(N)))
    assert not over_seen
    _check_totals(pool, results)
    assert set(pool.per_agent) == {f"agent-{k}" for k in range(7)}


def test_thousand_concurrent_reservations_from_tasks() -> None:
    pool = BudgetPool(usd=CAP)
    plan = _plan(seed=99)

    async def stage(i: int) -> float | None:
        max_usd, cost = plan[i]
        try:
            async with pool.acquire(max_usd=max_usd, agent=f"agent-{i % 5}"):
                await asyncio.sleep(0)  # interleave with the other tasks while holding the reservation
                assert pool.spent_usd + pool.reserved_usd <= CAP + 1e-9
                pool.charge(usage(cost, 10, 1))
                await asyncio.sleep(0)
                return cost
        except BudgetExceeded:
            return None

    async def main() -> list[float | None]:
        return await asyncio.gather(*(stage(i) for i in range(N)))

    _check_totals(pool, run(main()))


def test_concurrent_unreserved_charges_are_all_counted() -> None:
    pool = BudgetPool(usd=1.0, tokens=10**9)

    def work(i: int) -> None:
        for _ in range(100):
            pool.charge(usage(0.001, 1, 1), f"a{i % 4}")

    with ThreadPoolExecutor(max_workers=8) as ex:
        list(ex.map(work, range(20)))
    assert pool.calls == 2000
    assert pool.spent_tokens == 4000
    assert pool.spent_usd == pytest.approx(2.0)
    assert pool.exceeded


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_totals_per_pool_agent_and_stage_equal_the_sum_of_the_charged_usages(seed: int) -> None:
    """The pool keeps running totals in plain numbers; they must be what adding the ``Usage`` objects
    gives, cost rounding and an unknown price (``None`` from then on) included."""
    from functools import reduce

    rng = random.Random(seed)
    pool = BudgetPool()
    charged: dict[str, list[Usage]] = {}
    in_order: list[Usage] = []

    def charge(i: int) -> Usage:
        usage = Usage(
            input_tokens=rng.randrange(5000),
            output_tokens=rng.randrange(800),
            cost_usd=None if i == 140 else rng.random() / 997,  # an unknown price: None from then on
            cache_read_tokens=rng.randrange(100),
            cache_write_tokens=rng.randrange(50),
        )
        agent = rng.choice(["planner", "writer", "critic"])
        pool.charge(usage, agent=agent)
        charged.setdefault(agent, []).append(usage)
        in_order.append(usage)
        return usage

    for i in range(150):
        charge(i)
    with pool.acquire(agent="stage") as stage:  # charges in its block count there too
        staged = [charge(i) for i in range(150)]
        assert stage.usage == reduce(lambda a, b: a + b, staged, Usage())
    assert pool.usage == reduce(lambda a, b: a + b, in_order, Usage())
    assert pool.per_agent == {a: reduce(lambda x, y: x + y, charged[a], Usage()) for a in sorted(charged)}
    assert list(pool.per_agent) == ["critic", "planner", "writer"]
