"""Virtual time: replaying a broadcast of asyncio model calls whose recorded latencies total 120 s.

Run: ``python benchmarks/virtual_time.py`` (``--agents 4,24``). N agents make one chat completion each
through ``openai.AsyncOpenAI``, concurrently; their recorded latencies run linearly from 0.4× to 1.6× of
120 s / N and add up to 120 s (the time the calls take one after another; a live concurrent run takes the
longest call). Two shapes by default: 4 agents (12-48 s) and 24 agents (2-8 s). The table gives the wall
time of one replay (cassette activation included), the flow's virtual elapsed time, the speed-up over the
120 s of recorded model time, and what virtual time itself costs: the wall time with recorded latency minus
the same replay with ``latency="zero"`` (no model time at all).

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

TOTAL_S = 120.0


def latency(k: int, agents: int) -> float:
    """Recorded latency of agent ``k`` of ``agents``: 0.4× .. 1.6× of 120 s / agents, adding up to 120 s."""
    mean = TOTAL_S / agents
    return round(0.4 * mean + 1.2 * mean * k / (agents - 1), 6)


async def _call(client: Any, k: int) -> str:
    reply = await client.chat.completions.create(**c.create_kwargs(k))
    return str(reply.choices[0].message.content)


class Runner:
    """One contender, in its own worker process."""

    def __init__(self, kind: str, path: str, agents: int) -> None:
        self.kind = kind
        self.path = path
        self.agents = agents
        import ssl

        # one TLS context for every run: a new client would load the CA bundle (~90 ms), which is the
        # SDK's set-up cost, not replay; no TLS connection is made (the cassette answers)
        self.ssl_context = ssl.create_default_context()
        self.run()  # warm-up: imports, first-call costs

    def run(self) -> tuple[float, float | None, bool]:
        """``(wall seconds, virtual elapsed seconds or None, all answers right)`` of one replay."""
        import openai

        agents = self.agents
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
                        base_url=c.BASE_URL, api_key="sk-bench", max_retries=0, http_client=self._http()
                    ) as client:

                        def agent(k: int) -> Any:
                            async def run(text: str) -> str:
                                return await _call(client, k)

                            return run

                        broadcast = Broadcast(
                            {f"agent_{k:02d}": agent(k) for k in range(agents)},
                            lambda results: "ok",
                            flow=flow,
                        )
                        result = await broadcast.run("go")
                        return list(result.data or [])

                results = asyncio.run(main())
            wall = time.perf_counter() - t0
            texts = {r.agent: r.text for r in results}
            ok = all(texts.get(f"agent_{k:02d}", "").startswith(c.answer_prefix(k)) for k in range(agents))
            return wall, flow.elapsed, ok
        import vcr

        with vcr.VCR(record_mode="none", match_on=["method", "uri", "body"]).use_cassette(self.path):

            async def gather() -> list[str]:
                async with openai.AsyncOpenAI(
                    base_url=c.BASE_URL, api_key="sk-bench", max_retries=0, http_client=self._http()
                ) as client:
                    return list(await asyncio.gather(*(_call(client, k) for k in range(agents))))

            texts_list = asyncio.run(gather())
        wall = time.perf_counter() - t0
        ok = all(t.startswith(c.answer_prefix(k)) for k, t in enumerate(texts_list))
        return wall, None, ok

    def _http(self) -> Any:
        import httpx2

        return httpx2.AsyncClient(verify=self.ssl_context)

    def close(self) -> None:
        pass


def runner(kind: str, path: str, agents: int) -> Runner:
    return Runner(kind, path, agents)


ROWS = (
    ("pytest-agentflows, Broadcast, latency='recorded'", "ours"),
    ("pytest-agentflows, Broadcast, latency='zero'", "ours_zero"),
    ("vcrpy, asyncio.gather (no model time)", "vcrpy"),
)


def run(reps: int, shapes: list[int]) -> str:
    walls: dict[tuple[int, str], list[float]] = {}
    virtual: dict[tuple[int, str], float | None] = {}
    right: dict[tuple[int, str], bool] = {}
    with c.workdir("virtual-time") as tmp:
        workers = []
        for agents in shapes:
            assert abs(sum(latency(k, agents) for k in range(agents)) - TOTAL_S) < 1e-6
            path = c.write_vcrpy_cassette(
                tmp / f"broadcast_{agents}.yaml", agents, latencies=lambda k, n=agents: latency(k, n)
            )
            for _, key in ROWS:
                w = c.Worker(f"{agents}:{key}", "virtual_time", "runner", key, str(path), agents)
                if w.error:
                    raise SystemExit(f"{w.name} failed to start:\n{w.error}")
                workers.append((agents, key, w))
                walls[agents, key], right[agents, key] = [], True
        for rep in range(reps):
            for agents, key, worker in c.rotated(workers, rep):
                wall, elapsed, ok = worker.call("run")
                walls[agents, key].append(wall)
                virtual[agents, key] = elapsed
                right[agents, key] = right[agents, key] and ok
        for _, _, w in workers:
            w.close()
    headers = [
        "broadcast replay (120 s of recorded latency)",
        "wall time",
        "virtual elapsed",
        "speed-up vs 120 s",
        "virtual-time cost",
        "right answers",
    ]
    rows = []
    for agents in shapes:
        mean = TOTAL_S / agents
        rows.append(
            [
                f"**{agents} agents** ({0.4 * mean:g}-{1.6 * mean:g} s each): recorded in series / live",
                f"120 s / {1.6 * mean:g} s",
                "-",
                "1×",
                "-",
                "-",
            ]
        )
        zero = c.median(walls[agents, "ours_zero"])
        for label, key in ROWS:
            wall = c.median(walls[agents, key])
            v = virtual.get((agents, key))
            rows.append(
                [
                    label,
                    c.fmt_seconds(wall),
                    "-" if v is None else f"{v:.3f} s",
                    f"{TOTAL_S / wall:,.0f}×",
                    c.fmt_seconds(wall - zero) if key == "ours" else "-",
                    "yes" if right[agents, key] else "NO",
                ]
            )
    caption = (
        f"Virtual time: one replay of a broadcast of {' or '.join(map(str, shapes))} concurrent AsyncOpenAI "
        f"calls whose recorded latencies add up to 120 s, cassette activation included; medians of {reps} "
        f"interleaved repetitions. Virtual-time cost = wall time with recorded latency - wall time with "
        f"latency='zero'. {c.machine()}."
    )
    return caption + "\n\n" + c.table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=15, help="repetitions (default 15)")
    parser.add_argument("--agents", default="4,24", help="broadcast sizes, comma-separated (default 4,24)")
    args = parser.parse_args()
    print(run(args.reps, [int(n) for n in args.agents.split(",")]))


if __name__ == "__main__":
    main()
