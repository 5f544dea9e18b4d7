"""Virtual time: replaying a broadcast of asyncio model calls whose recorded latencies total 120 s.

Run: ``python benchmarks/virtual_time.py``. Twenty-four agents make one chat completion each through
``openai.AsyncOpenAI``, concurrently; their recorded latencies run from 2 s to 8 s and add up to 120 s (the
time the calls take one after another; a live concurrent run takes 8 s, the longest call). The table gives
the wall time of one replay (cassette activation included), the flow's virtual elapsed time, and the
speed-up over the 120 s of recorded model time.

Rows: pytest-agentflows with ``Broadcast`` and recorded latency (every ``await`` of a model call takes its
recorded latency on the flow's virtual clock: the broadcast ends at 8 s of virtual time, in latency order,
without sleeping); the same with ``latency="zero"``; and vcrpy (``asyncio.gather`` of the same calls,
``match_on`` method+uri+body), which has no notion of model time at all.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

AGENTS = 24
TOTAL_S = 120.0


def latency(k: int) -> float:
    """Recorded latency of agent ``k``: 2 s .. 8 s, linearly; 24 of them add up to 120 s."""
    return round(2.0 + 6.0 * k / (AGENTS - 1), 6)


async def _call(client: Any, k: int) -> str:
    reply = await client.chat.completions.create(**c.create_kwargs(k))
    return str(reply.choices[0].message.content)


class Runner:
    """One contender, in its own worker process."""

    def __init__(self, kind: str, path: str) -> None:
        self.kind = kind
        self.path = path
        self.run()  # warm-up: imports, first-call costs

    def run(self) -> tuple[float, float | None, bool]:
        """``(wall seconds, virtual elapsed seconds or None, all answers right)`` of one replay."""
        import openai

        t0 = time.perf_counter()
        if self.kind in ("ours", "ours_zero"):
            from pytest_agentflows import Broadcast, Flow

            flow = Flow(
                cassette=self.path,
                record="none",
                latency="recorded" if self.kind == "ours" else "zero",
                test_id="benchmark",
            )
            with flow.activate():

                async def main() -> list[Any]:
                    async with openai.AsyncOpenAI(
                        base_url=c.BASE_URL, api_key="sk-bench", max_retries=0
                    ) as client:

                        def agent(k: int) -> Any:
                            async def run(text: str) -> str:
                                return await _call(client, k)

                            return run

                        broadcast = Broadcast(
                            {f"agent_{k:02d}": agent(k) for k in range(AGENTS)},
                            lambda results: "ok",
                            flow=flow,
                        )
                        result = await broadcast.run("go")
                        return list(result.data or [])

                results = asyncio.run(main())
            wall = time.perf_counter() - t0
            texts = {r.agent: r.text for r in results}
            ok = all(texts.get(f"agent_{k:02d}", "").startswith(c.answer_prefix(k)) for k in range(AGENTS))
            return wall, flow.elapsed, ok
        import vcr

        with vcr.VCR(record_mode="none", match_on=["method", "uri", "body"]).use_cassette(self.path):

            async def gather() -> list[str]:
                async with openai.AsyncOpenAI(
                    base_url=c.BASE_URL, api_key="sk-bench", max_retries=0
                ) as client:
                    return list(await asyncio.gather(*(_call(client, k) for k in range(AGENTS))))

            texts_list = asyncio.run(gather())
        wall = time.perf_counter() - t0
        ok = all(t.startswith(c.answer_prefix(k)) for k, t in enumerate(texts_list))
        return wall, None, ok

    def close(self) -> None:
        pass


def runner(kind: str, path: str) -> Runner:
    return Runner(kind, path)


ROWS = (
    ("pytest-agentflows, Broadcast, latency='recorded'", "ours"),
    ("pytest-agentflows, Broadcast, latency='zero'", "ours_zero"),
    ("vcrpy, asyncio.gather (no model time)", "vcrpy"),
)


def run(reps: int) -> str:
    assert abs(sum(latency(k) for k in range(AGENTS)) - TOTAL_S) < 1e-6
    with c.workdir("virtual-time") as tmp:
        path = c.write_vcrpy_cassette(tmp / "broadcast.yaml", AGENTS, latencies=latency)
        workers = [c.Worker(key, "virtual_time", "runner", key, str(path)) for _, key in ROWS]
        for w in workers:
            if w.error:
                raise SystemExit(f"{w.name} failed to start:\n{w.error}")
        walls: dict[str, list[float]] = {key: [] for _, key in ROWS}
        virtual: dict[str, float | None] = {}
        right: dict[str, bool] = {key: True for _, key in ROWS}
        for rep in range(reps):
            for worker in c.rotated(workers, rep):
                wall, elapsed, ok = worker.call("run")
                walls[worker.name].append(wall)
                virtual[worker.name] = elapsed
                right[worker.name] = right[worker.name] and ok
        for w in workers:
            w.close()
    headers = [
        "replay of 24 concurrent calls (120 s of recorded latency)",
        "wall time",
        "virtual elapsed",
        "speed-up vs 120 s",
        "right answers",
    ]
    rows = [["recorded: the calls one after another / live and concurrent", "120 s / 8 s", "-", "1×", "-"]]
    for label, key in ROWS:
        wall = c.median(walls[key])
        v = virtual.get(key)
        rows.append(
            [
                label,
                c.fmt_seconds(wall),
                "-" if v is None else f"{v:.3f} s",
                f"{TOTAL_S / wall:,.0f}×",
                "yes" if right[key] else "NO",
            ]
        )
    caption = (
        f"Virtual time: one replay of a broadcast of {AGENTS} AsyncOpenAI calls (recorded latencies 2-8 s, "
        f"120 s in total), cassette activation included; medians of {reps} interleaved repetitions. "
        f"{c.machine()}."
    )
    return caption + "\n\n" + c.table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=15, help="repetitions (default 15)")
    args = parser.parse_args()
    print(run(args.reps))


if __name__ == "__main__":
    main()
