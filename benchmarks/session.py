"""Session overhead: what installing pytest-agentflows costs a suite that does not use it.

Run: ``python benchmarks/session.py``. Generates 2,000 trivial tests (20 modules of 100) in a temporary
directory and runs ``python -m pytest -q -p no:cacheprovider`` over them in a subprocess, with the plugin
(as installed: the ``pytest11`` entry point) and with ``-p no:agentflows``, alternating, and prints one
table of medians of wall time and of the child's CPU time (user + system, from ``getrusage``: on a busy
shared machine CPU time is the steadier of the two), plus one deterministic figure: the number of Python
function calls in each session, counted once under ``cProfile`` (the same code path gives the same count,
whatever else the machine is doing). Every other installed plugin loads in both runs
(cassetter's, if installed, is disabled in both so that an optional benchmark dependency does not blur the
comparison), except looptime's pytest plugin, which ours switches off: the baseline switches it off too.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

MODULES, TESTS = 20, 100


def generate(root: Path) -> Path:
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    tests = root / "tests"
    tests.mkdir()
    for m in range(MODULES):
        body = [f"def test_{t}():\n    assert {t} + 1 == {t + 1}\n" for t in range(TESTS)]
        (tests / f"test_mod_{m:02d}.py").write_text("\n\n".join(body), encoding="utf-8")
    return tests


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def count_calls(root: Path, extra: list[str]) -> int:
    """Python function calls of one session, counted by ``cProfile`` (deterministic)."""
    import pstats

    out = root / "session.prof"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    proc = subprocess.run([*cmd, "-p", "no:cassetter", *extra, "tests"], cwd=root, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]!r}")
    stats = pstats.Stats(str(out))
    return sum(row[1] for row in stats.stats.values())  # type: ignore[attr-defined]


def run_pytest(root: Path, extra: list[str]) -> tuple[float, float]:
    """``(wall seconds, CPU seconds)`` of one session."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:cassetter",
        *extra,
        "tests",
    ]
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if proc.returncode != 0 or f"{MODULES * TESTS} passed" not in proc.stdout:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed, cpu


ROWS = (
    ("pytest, plugin installed and active", []),
    ("pytest -p no:agentflows -p no:looptime_plugin", ["-p", "no:agentflows", "-p", "no:looptime_plugin"]),
)
"""Both rows run without looptime's own pytest plugin: ours unregisters it (it calls ``get_event_loop()``
in every test), so a baseline that kept it on would charge its cost to the baseline and show the plugin
as faster than not having it."""


def run(reps: int) -> str:
    with c.workdir("session") as root:
        generate(root)
        for _, extra in ROWS:  # warm the file system cache and the bytecode caches
            run_pytest(root, extra)
        walls: dict[int, list[float]] = {k: [] for k in range(len(ROWS))}
        cpus: dict[int, list[float]] = {k: [] for k in range(len(ROWS))}
        for rep in range(reps):
            for k in c.rotated(list(range(len(ROWS))), rep):
                wall, cpu = run_pytest(root, ROWS[k][1])
                walls[k].append(wall)
                cpus[k].append(cpu)
        calls = [count_calls(root, extra) for _, extra in ROWS]
    n = MODULES * TESTS
    wall_base, cpu_base = c.median(walls[1]), c.median(cpus[1])
    rows = []
    for k, (label, _) in enumerate(ROWS):
        wall, cpu = c.median(walls[k]), c.median(cpus[k])
        rows.append(
            [
                label,
                c.fmt_seconds(wall),
                c.fmt_ratio(wall / wall_base),
                c.fmt_seconds(cpu),
                c.fmt_ratio(cpu / cpu_base),
                f"{(cpu - cpu_base) / n * 1e6:+.0f} µs",
                f"{calls[k]:,}",
                f"{(calls[k] / calls[1] - 1) * 100:+.2f}%",
            ]
        )
    headers = [
        f"{n:,} trivial tests, whole session",
        "wall time",
        "ratio",
        "CPU time",
        "ratio",
        "CPU per test",
        "Python calls",
        "calls vs -p no:agentflows",
    ]
    caption = (
        f"Session overhead: `python -m pytest -q` in a subprocess over {MODULES * TESTS:,} tests that use no "
        f"fixture of ours; medians of {reps} interleaved runs. {c.machine()}."
    )
    return caption + "\n\n" + c.table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=5, help="runs of each variant (default 5)")
    args = parser.parse_args()
    print(run(args.reps))


if __name__ == "__main__":
    main()
