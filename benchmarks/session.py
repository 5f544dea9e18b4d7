"""Session overhead: what installing pytest-agentflows costs a suite that does not use it.

Run: ``python benchmarks/session.py``. Generates 2,000 trivial tests (20 modules of 100) in a temporary
directory and runs ``python -m pytest -q -p no:cacheprovider`` over them in a subprocess, with the plugin
(as installed: the ``pytest11`` entry point) and with ``-p no:agentflows``, alternating, and prints one
table of medians. Every other installed plugin loads in both runs (cassetter's, if installed, is disabled
in both so that an optional benchmark dependency does not blur the comparison).
"""

from __future__ import annotations

import argparse
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


def run_pytest(root: Path, extra: list[str]) -> float:
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
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or f"{MODULES * TESTS} passed" not in proc.stdout:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


ROWS = (("pytest, plugin installed and active", []), ("pytest -p no:agentflows", ["-p", "no:agentflows"]))


def run(reps: int) -> str:
    with c.workdir("session") as root:
        generate(root)
        for _, extra in ROWS:  # warm the file system cache and the bytecode caches
            run_pytest(root, extra)
        times: dict[int, list[float]] = {k: [] for k in range(len(ROWS))}
        for rep in range(reps):
            for k in c.rotated(list(range(len(ROWS))), rep):
                times[k].append(run_pytest(root, ROWS[k][1]))
    base = c.median(times[1])
    rows = []
    for k, (label, _) in enumerate(ROWS):
        med = c.median(times[k])
        rows.append(
            [
                label,
                c.fmt_seconds(med),
                c.fmt_ratio(med / base),
                f"{(med - base) * 1e3:+.0f} ms",
                f"{(med - base) / (MODULES * TESTS) * 1e6:+.0f} µs",
            ]
        )
    headers = [
        f"{MODULES * TESTS:,} trivial tests, whole session",
        "wall time",
        "ratio",
        "difference",
        "per test",
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
