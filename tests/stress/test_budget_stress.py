"""BudgetPool under load from several threads, each running its own asyncio event loop.

Every loop runs many tasks that reserve a stage cap (``async with pool.acquire(...)``), commit spend, and
release: normally, after charging nothing, or by an exception; some nest a reservation in another. A
monitor thread samples the pool meanwhile. The pool must never hold or spend more than its caps, and its
totals must equal what the stages committed, to the token and (with amounts in whole micro-dollars) the
cent.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from pytest_agentflows.runtime._models import Usage
from pytest_agentflows.runtime.budget import BudgetExceeded, BudgetPool

CONCURRENT_STAGES = 16
"""Stages in flight at once on each loop (the rest wait on a semaphore)."""


class Boom(Exception):
    """A stage failing half-way: its reservation must be released, its committed spend kept."""


@dataclass
class Tally:
    """What the stages of one loop committed (each loop has its own: no lock needed)."""

    usd_micro: int = 0
    tokens: int = 0
    calls: int = 0
    refused: int = 0
    failed: int = 0
    per_agent_micro: dict[str, int] = field(default_factory=dict)

    def add(self, agent: str, micro: int, tokens: int) -> None:
        self.usd_micro += micro
        self.tokens += tokens
        self.calls += 1
        self.per_agent_micro[agent] = self.per_agent_micro.get(agent, 0) + micro


def _loop_worker(pool: BudgetPool, seed: int, stages: int, tally: Tally) -> None:
    rng = random.Random(seed)

    async def stage(i: int, gate: asyncio.Semaphore) -> None:
        async with gate:
            await one_stage()

    async def one_stage() -> None:
        agent = f"agent-{rng.randrange(6)}"
        max_micro = rng.randrange(1_000, 20_000)
        max_tokens = rng.randrange(500, 5_000)
        plan = rng.random()
        try:
            async with pool.acquire(max_usd=max_micro / 1e6, max_tokens=max_tokens, agent=agent):
                await asyncio.sleep(0)
                if plan < 0.1:
                    return  # release without spending
                if plan < 0.2:  # a nested stage drawing from this one
                    async with pool.acquire(max_usd=max_micro / 2e6, max_tokens=max_tokens // 2, agent=agent):
                        micro, tokens = max_micro // 3, max_tokens // 3
                        pool.charge(Usage(input_tokens=tokens, cost_usd=micro / 1e6), agent)
                        tally.add(agent, micro, tokens)
                        await asyncio.sleep(0)
                    return
                micro, tokens = rng.randrange(max_micro + 1), rng.randrange(max_tokens + 1)
                pool.charge(
                    Usage(input_tokens=tokens // 2, output_tokens=tokens - tokens // 2, cost_usd=micro / 1e6),
                    agent,
                )
                tally.add(agent, micro, tokens)
                await asyncio.sleep(0)
                if plan < 0.3:
                    raise Boom
        except BudgetExceeded as exc:
            assert exc.before_start
            tally.refused += 1
        except Boom:
            tally.failed += 1

    async def main() -> None:
        gate = asyncio.Semaphore(CONCURRENT_STAGES)
        await asyncio.gather(*(stage(i, gate) for i in range(stages)))

    loop = asyncio.new_event_loop()  # this thread's own loop
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def _stress(threads: int, stages_per_loop: int, seed: int) -> dict[str, int]:
    # about 4,200 micro-dollars and 1,200 tokens spent per stage on average: the caps run out at ~70 %
    stages = threads * stages_per_loop
    cap_usd, cap_tokens = 0.003 * stages, 900 * stages
    pool = BudgetPool(usd=cap_usd, tokens=cap_tokens)
    tallies = [Tally() for _ in range(threads)]
    overruns: list[str] = []
    done = threading.Event()

    def monitor() -> None:
        while not done.is_set():
            held_usd = pool.spent_usd + pool.reserved_usd
            held_tokens = pool.spent_tokens + pool.reserved_tokens
            if held_usd > cap_usd + 1e-9 or held_tokens > cap_tokens:
                overruns.append(f"{held_usd} USD, {held_tokens} tokens")
            time.sleep(0.0005)

    watcher = threading.Thread(target=monitor)
    watcher.start()
    workers = [
        threading.Thread(target=_loop_worker, args=(pool, seed * 1000 + k, stages_per_loop, tallies[k]))
        for k in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    watcher.join()

    committed_micro = sum(t.usd_micro for t in tallies)
    assert overruns == []
    assert not pool.exceeded
    pool.check()
    assert pool.reserved_usd == 0.0 and pool.reserved_tokens == 0
    assert pool.calls == sum(t.calls for t in tallies)
    assert pool.spent_tokens == sum(t.tokens for t in tallies)
    assert round(pool.spent_usd * 1e6) == committed_micro
    per_agent: dict[str, int] = {}
    for tally in tallies:
        for agent, micro in tally.per_agent_micro.items():
            per_agent[agent] = per_agent.get(agent, 0) + micro
    assert {a: round((u.cost_usd or 0.0) * 1e6) for a, u in pool.per_agent.items()} == per_agent
    refused = sum(t.refused for t in tallies)
    assert 0 < refused < stages // 2, "the caps must refuse some stages, late in the run"
    return {
        "threads": threads,
        "loops": threads,
        "reservations": stages,
        "refused": refused,
        "failed_stages_released": sum(t.failed for t in tallies),
        "committed_calls": pool.calls,
        "overruns": len(overruns),
    }


def test_budget_pool_across_event_loops(figures: Callable[..., None]) -> None:
    figures(**_stress(threads=4, stages_per_loop=500, seed=1))


@pytest.mark.stress
def test_budget_pool_across_event_loops_stress(figures: Callable[..., None]) -> None:
    results = [_stress(threads=8, stages_per_loop=5_000, seed=seed) for seed in range(5)]
    figures(**{key: sum(r[key] for r in results) if key != "threads" else 8 for key in results[0]}, runs=5)
