"""Replay cost per request, by cassette size: pytest-agentflows vs vcrpy, cassetter, respx and the floor.

Run: ``python benchmarks/replay.py`` (``--sizes 10,100``, ``--quick`` for a smoke run). Prints one table:
the median wall time of one ``client.chat.completions.create(...)`` through the real openai SDK, its ratio
to the floor (an ``httpx2.MockTransport`` answering from a dict) measured in the same run, and the share
of answers that were the recorded answer to the request sent.

Method: for each size a cassette of that many chat completions with distinct request bodies is generated
into a temporary directory. Each contender runs in its own process (several of them patch httpx2), loads
its cassette once, warms up, then the parent asks every contender in turn to replay request ``i`` (a
seeded random permutation of the recorded requests; the order of the contenders rotates every
repetition). A cassette whose responses are used up is re-activated outside the timed region. See
``_contenders.py`` for each contender's exact set-up.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

CONTENDERS = (
    ("pytest-agentflows", "ours"),
    ("vcrpy, match_on method+uri+body", "vcrpy_body"),
    ("vcrpy, default match_on", "vcrpy_default"),
    ("cassetter 0.16, match_on method+uri+body", "cassetter_body"),
    ("respx, one route per interaction (content=)", "respx_routes"),
    ("respx, one route + dict side_effect", "respx_dict"),
    ("floor: httpx2.MockTransport + dict", "floor"),
)
# repetitions per size: vcrpy's body matching costs ~1 s per request at 10,000 interactions
REPS = {10: 300, 100: 200, 1_000: 80, 10_000: 12}
# respx registers routes in O(n²) (each new route is compared with every registered one): 10,000 routes
# take longer than the whole benchmark, so that contender stops at this size
RESPX_ROUTES_MAX = 2_000
WARMUP = 3


def run(sizes: list[int], reps: dict[int, int]) -> str:
    have_cassetter = c.cassetter_available()
    results: dict[str, dict[int, list[float]]] = {key: {} for _, key in CONTENDERS}
    correct: dict[str, list[bool]] = {key: [] for _, key in CONTENDERS}
    failures: dict[str, dict[int, str]] = {}
    registration = "not measured"
    with c.workdir("replay") as tmp:
        for n in sizes:
            t0 = time.perf_counter()
            path = c.write_vcrpy_cassette(tmp / f"flow_{n}.yaml", n)
            cpath = c.write_cassetter_cassette(tmp / f"flow_{n}.cassetter.yaml", n)
            workers = []
            for _, key in CONTENDERS:
                if key == "cassetter_body" and not have_cassetter:
                    continue
                if key == "respx_routes" and n > RESPX_ROUTES_MAX:
                    failures.setdefault(key, {})[n] = (
                        f"not run: registering routes is quadratic in their number ({registration})"
                    )
                    continue
                worker = c.Worker(key, "_contenders", key, str(path), str(cpath), n)
                if worker.error:
                    failures.setdefault(key, {})[n] = c.last_line(worker.error)
                    continue
                workers.append(worker)
            rng = random.Random(n)
            order = list(range(n))
            rng.shuffle(order)
            warm = [order[-1 - k % n] for k in range(WARMUP)]
            for worker in workers:
                for i in warm:
                    worker.call("request", i)
            times: dict[str, list[float]] = {w.name: [] for w in workers}
            for rep in range(reps[n]):
                i = order[rep % n]
                for worker in c.rotated(workers, rep):
                    seconds, ok = worker.call("request", i)
                    times[worker.name].append(seconds)
                    correct[worker.name].append(ok)
            for worker in workers:
                if worker.name == "respx_routes":
                    registration = f"{worker.call('setup'):.1f} s for {n:,} routes"
                worker.close()
                results[worker.name][n] = times[worker.name]
            print(
                f"  size {n:>6}: {reps[n]} repetitions in {time.perf_counter() - t0:.1f} s", file=sys.stderr
            )

    headers = ["contender (median per request)"]
    for n in sizes:
        headers += [f"{n:,}", "× floor"]
    headers.append("right answers")
    rows = []
    notes: list[str] = []
    floors = {n: c.median(results["floor"].get(n, [])) for n in sizes}
    for label, key in CONTENDERS:
        row: list[str] = [label]
        if key == "cassetter_body" and not have_cassetter:
            rows.append([f"{label}: not installed (pip install cassetter)"] + ["-"] * (2 * len(sizes) + 1))
            continue
        for n in sizes:
            if n in failures.get(key, {}):
                notes.append(f"[{len(notes) + 1}] {label}, {n:,} interactions: {failures[key][n]}")
                row += [f"fails [{len(notes)}]", "-"]
                continue
            med = c.median(results[key].get(n, []))
            row += [c.fmt_seconds(med), c.fmt_ratio(med / floors[n])]
        oks = correct[key]
        row.append(f"{100 * sum(oks) / len(oks):.0f}%" if oks else "-")
        rows.append(row)
    speedup = ["speed-up of pytest-agentflows over vcrpy (body)"]
    for n in sizes:
        speedup += [c.fmt_ratio(c.median(results["vcrpy_body"][n]) / c.median(results["ours"][n])), ""]
    speedup.append("")
    rows.append(speedup)
    caption = (
        f"Replay of one chat completion through openai {_version('openai')} (sync client), by cassette size. "
        f"Medians of {', '.join(f'{reps[n]} ({n:,})' for n in sizes)} interleaved repetitions; "
        f"vcrpy {_version('vcrpy')}, respx {_version('respx')}, "
        f"cassetter {_version('cassetter') if have_cassetter else 'not installed'}. {c.machine()}."
    )
    return caption + "\n\n" + c.table(headers, rows) + "".join(f"\n\n{note}" for note in notes)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10,100,1000,10000", help="comma-separated cassette sizes")
    parser.add_argument("--quick", action="store_true", help="few repetitions (a smoke run)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    reps = {n: (5 if args.quick else REPS.get(n, 20)) for n in sizes}
    print(run(sizes, reps))


if __name__ == "__main__":
    main()
