"""Cassette load: time and peak memory to open a 1,000- and a 10,000-interaction cassette.

Run: ``python benchmarks/load.py`` (``--sizes 1000`` for a shorter run). Prints one table: median wall time
to activate and deactivate each cassette with no request (ours builds its replay index then), the ratio to
pytest-agentflows, and, for the largest size, the peak memory of one load in a fresh process: Python
allocations traced by ``tracemalloc`` and the growth of the process's peak RSS (which also counts native
heaps such as cassetter's Rust one).

Reference rows: parsing the YAML file alone with vcrpy's loader (PyYAML + libyaml, what every
vcrpy-format loader pays), and ``json.loads`` of the same cassette written as JSON, which
pytest-agentflows also reads (``<test>.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

ROWS = (
    ("pytest-agentflows (YAML cassette)", "ours", "yaml"),
    ("vcrpy, match_on method+uri+body", "vcrpy", "yaml"),
    ("cassetter 0.16 (its own YAML format)", "cassetter", "cassetter"),
    ("pytest-agentflows (same cassette as .json)", "ours", "json"),
    ("reference: YAML parse alone (vcrpy's loader)", "yaml", "yaml"),
    ("reference: json.loads alone", "json", "json"),
)
REPS = {1_000: 5, 10_000: 1}  # a 10,000-interaction YAML cassette takes PyYAML 10-30 s


def _mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def run(sizes: list[int], reps: dict[int, int], memory: bool) -> str:
    have_cassetter = c.cassetter_available()
    rows_used = [r for r in ROWS if r[1] != "cassetter" or have_cassetter]
    times: dict[tuple[str, str], dict[int, list[float]]] = {(k, f): {} for _, k, f in rows_used}
    mem: dict[tuple[str, str], tuple[int, int]] = {}
    failures: dict[tuple[str, str], dict[int, str]] = {}
    files: dict[tuple[int, str], Path] = {}
    with c.workdir("load") as tmp:
        for n in sizes:
            t0 = time.perf_counter()
            yaml_path = c.write_vcrpy_cassette(tmp / f"flow_{n}.yaml", n)
            json_path = tmp / f"flow_{n}.json"
            from vcr.serializers import yamlserializer

            json_path.write_text(
                json.dumps(yamlserializer.deserialize(yaml_path.read_text(encoding="utf-8")))
            )
            files[n, "yaml"], files[n, "json"] = yaml_path, json_path
            if have_cassetter:
                files[n, "cassetter"] = c.write_cassetter_cassette(tmp / f"flow_{n}.cassetter.yaml", n)
            workers = [c.Worker(f"{k}/{f}", "_contenders", "loader", k, f) for _, k, f in rows_used]
            for worker in workers:
                if worker.error:
                    raise SystemExit(f"{worker.name} failed to start:\n{worker.error}")
            for rep in range(reps[n]):
                for (_, kind, fmt), worker in c.rotated(list(zip(rows_used, workers, strict=True)), rep):
                    if n in failures.get((kind, fmt), {}):
                        continue
                    try:
                        seconds = worker.call("load", str(files[n, fmt]))
                    except RuntimeError as exc:
                        failures.setdefault((kind, fmt), {})[n] = c.last_line(str(exc))
                        continue
                    times[kind, fmt].setdefault(n, []).append(seconds)
            for worker in workers:
                worker.close()
            print(
                f"  size {n:>6}: {reps[n]} repetitions in {time.perf_counter() - t0:.1f} s", file=sys.stderr
            )
        if memory:
            n = max(sizes)
            for _, kind, fmt in rows_used:  # a fresh process each: peak RSS is a high-water mark
                if n in failures.get((kind, fmt), {}):
                    continue
                worker = c.Worker(f"{kind}/{fmt}", "_contenders", "loader", kind, fmt)
                mem[kind, fmt] = tuple(worker.call("memory", str(files[n, fmt])))  # type: ignore[assignment]
                worker.close()

    headers = ["contender"]
    for n in sizes:
        headers += [f"load {n:,}", "× ours"]
    if memory:
        headers += [f"peak traced memory ({max(sizes):,})", "peak RSS growth"]
    rows = []
    notes: list[str] = []
    for label, kind, fmt in ROWS:
        if (kind, fmt) not in times:
            rows.append([f"{label}: not installed (pip install cassetter)"] + ["-"] * (len(headers) - 1))
            continue
        row = [label]
        for n in sizes:
            if n in failures.get((kind, fmt), {}):
                notes.append(f"[{len(notes) + 1}] {label}, {n:,} interactions: {failures[kind, fmt][n]}")
                row += [f"fails [{len(notes)}]", "-"]
                continue
            med = c.median(times[kind, fmt][n])
            row += [c.fmt_seconds(med), c.fmt_ratio(med / c.median(times["ours", "yaml"][n]))]
        if memory and (kind, fmt) in mem:
            traced, rss = mem[kind, fmt]
            row += [_mib(traced) + (" (Rust heap not traced)" if kind == "cassetter" else ""), _mib(rss)]
        elif memory:
            row += ["-", "-"]
        rows.append(row)
    caption = (
        f"Cassette load (activate + deactivate, no request), medians of "
        f"{', '.join(f'{reps[n]} ({n:,})' for n in sizes)} interleaved repetitions; generated "
        f"chat-completion interactions of ~3.7 KB each (YAML). {c.machine()}."
    )
    return caption + "\n\n" + c.table(headers, rows) + "".join(f"\n\n{note}" for note in notes)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated cassette sizes")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--quick", action="store_true", help="one repetition per size (a smoke run)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    reps = {n: (1 if args.quick else REPS.get(n, 3)) for n in sizes}
    print(run(sizes, reps, memory=not args.no_memory))


if __name__ == "__main__":
    main()
