"""Is this checkout faster than another revision? Paired runs of the generated suite, side by side.

Run: ``python benchmarks/compare.py --base REV [--tests 500] [--reps 6] [--cold]``. Generates the suite of
``suite.py`` (``--tests`` flow tests of 4 openai chat completions each) once, puts revision ``REV`` of this
repository in a temporary ``git worktree``, and runs the suite with each plugin (this checkout, and
``REV`` put first on ``PYTHONPATH``) as whole ``python -m pytest -q`` sessions.

On a shared 2-core VM the same session varies by ±5% from one run to the next (the host's other load),
more than most changes are worth. So the two sessions of each pair run **at the same time**, each pinned
to its own CPU (swapped every pair): whatever slows the machine slows both. The table gives each pair's
difference in milliseconds per test, and their median; with one CPU the pairs run one after the other.

Each variant keeps its own pytest cache directory and bytecode (written by a warm-up session), so with
``--cold`` off both replay with their parse caches warm, as a second local run does; ``--cold`` runs
without pytest's cache (every cassette parsed), as a CI job that does not keep ``.pytest_cache``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import suite

REPO = Path(__file__).resolve().parent.parent


def _session(
    base: Path, name: str, plugin_path: str | None, cpu: int | None, cold: bool
) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:looptime_plugin"]
    key = suite.slug(name)
    cmd += ["-p", "no:cacheprovider"] if cold else ["-o", f"cache_dir=.cache-{key}"]
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("OPENAI_API_KEY", None)
    env["PYTHONPYCACHEPREFIX"] = str(base.parent / f"pycache-{key}")
    if plugin_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (plugin_path, env.get("PYTHONPATH")) if p)

    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return subprocess.Popen(
        [*cmd, "tests"],
        cwd=base,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=pin,
    )


def _timed(procs: list[subprocess.Popen[str]], tests: int) -> list[float]:
    """Wait for ``procs`` (started together); the wall seconds of each.

    One thread per session reads its output to the end (so no pipe fills up) and notes when it ended.
    """
    start = time.perf_counter()
    results: list[tuple[float, str, str]] = [(0.0, "", "")] * len(procs)

    def wait(i: int) -> None:
        out, err = procs[i].communicate()
        results[i] = (time.perf_counter(), out, err)

    threads = [threading.Thread(target=wait, args=(i,)) for i in range(len(procs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for proc, (_end, out, err) in zip(procs, results, strict=True):
        if proc.returncode != 0 or f"{tests} passed" not in out:
            raise SystemExit(f"a session failed:\n{out[-3000:]}\n{err[-2000:]}")
    return [end - start for end, _out, _err in results]


def compare(base_rev: str, tests: int, reps: int, cold: bool) -> str:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    paired = len(cpus) >= 2
    with tempfile.TemporaryDirectory(prefix="agentflows-compare-") as tmp:
        root = Path(tmp)
        old = root / "base"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(old), base_rev], check=True
        )
        try:
            base = suite.generate(root / "suite", "pytest-agentflows", tests)
            variants = {"this checkout": None, base_rev: str(old)}
            for name, path in variants.items():  # warm-up: bytecode, parse caches
                _timed([_session(base, name, path, None, cold)], tests)
            diffs: list[float] = []
            lines = []
            for rep in range(reps):
                order = list(variants.items()) if rep % 2 == 0 else list(variants.items())[::-1]
                if paired:
                    procs = [
                        _session(base, name, path, cpus[i], cold) for i, (name, path) in enumerate(order)
                    ]
                    walls = dict(zip([n for n, _ in order], _timed(procs, tests), strict=True))
                else:
                    walls = {n: _timed([_session(base, n, p, None, cold)], tests)[0] for n, p in order}
                new, ref = walls["this checkout"], walls[base_rev]
                diffs.append((new - ref) * 1000 / tests)
                lines.append(f"| {rep + 1} | {new:.2f} s | {ref:.2f} s | {diffs[-1]:+.2f} ms |")
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False)
    how = "at the same time, one CPU each" if paired else "one after the other (one CPU)"
    return "\n".join(
        [
            f"{tests} flow tests x 4 calls, {'cold (no pytest cache)' if cold else 'parse cache warm'}; "
            f"each pair run {how}. Python {sys.version.split()[0]}, {os.cpu_count()} CPUs.",
            "",
            f"| pair | this checkout | {base_rev} | difference per test |",
            "|-----:|--------------:|------:|--------------------:|",
            *lines,
            "",
            f"Median difference: **{statistics.median(diffs):+.2f} ms per test** "
            "(negative: this checkout is faster).",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare this checkout with")
    parser.add_argument("--tests", type=int, default=500)
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument(
        "--cold", action="store_true", help="run without pytest's cache (every cassette parsed)"
    )
    args = parser.parse_args()
    print(compare(args.base, args.tests, args.reps, args.cold))


if __name__ == "__main__":
    main()
