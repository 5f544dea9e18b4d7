"""Decision-log snapshots: 1,000 snapshot assertions, ``decision_snapshot`` vs syrupy's default amber.

Run: ``python benchmarks/snapshots.py``. Generates 10 test modules of 100 tests; each test builds the
decision log of a small multi-agent flow (a route, three stages, a broadcast with one timeout, a supervisor
review: nine :class:`~pytest_agentflows.Decision` records) and asserts it against a snapshot, once with
``decision_snapshot`` (pytest-agentflows' YAML extension) and once with syrupy's ``snapshot`` (amber,
syrupy's default) on the very same list. Both suites are first written with ``--snapshot-update`` (timed
once), then the compare runs (``python -m pytest -q -p no:cacheprovider`` in a subprocess) alternate.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

MODULES, TESTS = 10, 100

_HELPER = """
from pytest_agentflows import Decision


def decisions(k):
    rows = [
        ("route", "router", {"chosen": ["billing", "technical", "account"][k % 3], "reason": f"ticket {k}"}),
        ("stage_complete", "research", {"tokens": 812 + k, "cost_usd": 0.000412}),
        ("stage_complete", "draft", {"tokens": 1430 + k, "cost_usd": 0.000861}),
        ("stage_complete", "edit", {"tokens": 602, "cost_usd": 0.000301}),
        ("agent_timeout", "slow", {"timeout": 10.0}),
        ("broadcast_complete", None, {"succeeded": ["fast", "analyst"], "failed": [], "timed_out": ["slow"]}),
        ("supervisor_review", "reviewer", {"iteration": 1, "approved": False, "critique_chars": 120 + k}),
        ("supervisor_review", "reviewer", {"iteration": 2, "approved": True, "critique_chars": 0}),
        ("model_call", "worker", {"model": "gpt-4o-mini", "input_tokens": 240, "output_tokens": 96 + k}),
    ]
    return [Decision(seq=i, at=round(2.5 * i, 3), kind=kind, agent=agent, **fields)
            for i, (kind, agent, fields) in enumerate(rows)]
"""


def generate(root: Path, fixture: str) -> Path:
    suite = root / fixture
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (suite / "flows.py").write_text(_HELPER, encoding="utf-8")
    (suite / "conftest.py").write_text("import sys, os\nsys.path.insert(0, os.path.dirname(__file__))\n")
    for m in range(MODULES):
        lines = ["from flows import decisions\n"]
        for t in range(TESTS):
            k = m * TESTS + t
            lines.append(f"\ndef test_flow_{t}({fixture}):\n    assert decisions({k}) == {fixture}\n")
        (suite / f"test_flows_{m:02d}.py").write_text("\n".join(lines), encoding="utf-8")
    return suite


def run_pytest(suite: Path, *extra: str) -> float:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:cassetter", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=suite, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or f"{MODULES * TESTS} passed" not in proc.stdout:
        raise SystemExit(f"{' '.join(cmd)} in {suite} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return elapsed


ROWS = (
    ("decision_snapshot (pytest-agentflows, YAML)", "decision_snapshot"),
    ("snapshot (syrupy amber)", "snapshot"),
)


def run(reps: int) -> str:
    with c.workdir("snapshots") as root:
        suites = [generate(root, fixture) for _, fixture in ROWS]
        update = [run_pytest(suite, "--snapshot-update") for suite in suites]
        sizes = [sum(f.stat().st_size for f in (s / "__snapshots__").iterdir()) for s in suites]
        for suite in suites:  # warm-up compare run
            run_pytest(suite)
        times: dict[int, list[float]] = {k: [] for k in range(len(ROWS))}
        for rep in range(reps):
            for k in c.rotated(list(range(len(ROWS))), rep):
                times[k].append(run_pytest(suites[k]))
    base = c.median(times[1])
    headers = [
        f"{MODULES * TESTS:,} snapshot assertions ({MODULES} modules)",
        "--snapshot-update (1 run)",
        "compare run (median)",
        "× amber",
        "snapshot files",
    ]
    rows = []
    for k, (label, _) in enumerate(ROWS):
        med = c.median(times[k])
        rows.append(
            [
                label,
                c.fmt_seconds(update[k]),
                c.fmt_seconds(med),
                c.fmt_ratio(med / base),
                f"{MODULES} files, {sizes[k] / 1024:.0f} KiB",
            ]
        )
    caption = (
        f"Decision-log snapshots: whole `pytest -q` session in a subprocess, {MODULES * TESTS:,} tests each "
        f"asserting a 9-decision log; compare runs are medians of {reps} interleaved runs. {c.machine()}."
    )
    return caption + "\n\n" + c.table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=3, help="compare runs of each variant (default 3)")
    args = parser.parse_args()
    print(run(args.reps))


if __name__ == "__main__":
    main()
