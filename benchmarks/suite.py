"""Suite-scale speed: a generated suite of 500 flow tests replayed by us, by pytest-recording, and the floor.

Run: ``python benchmarks/suite.py [--tests 500] [--reps 3]``. Generates ``--tests`` tests (10 modules),
each making 4 chat completions with the real ``openai`` SDK (distinct multi-agent prompts, realistic
response bodies and headers; see ``_common.py``), in three variants over the same per-test cassettes
(``cassettes/<module>/<test>.yaml``, the convention both plugins share):

* **pytest-agentflows**: ``def test_x(agentflow)``, replay only (the default);
* **pytest-recording / vcrpy**: ``@pytest.mark.vcr`` with ``--record-mode=none`` (vcrpy's default
  matching, which ignores the body: the 4 requests are told apart by order only);
* **floor**: the same SDK client (the SDK's default, as in the other two) with its transport's
  ``handle_request`` answering from memory: the recorded bodies and headers, no cassette, no plugin. What
  the SDK itself costs, client construction included (the default client loads the CA bundle: ~26 ms per
  client, one client per module; until 2026-12-05 the floor used an ``httpx2.MockTransport`` client,
  which skips that and answered with one header, so 0.5 ms per test of the SDK was counted as ours).

Each variant is a whole ``python -m pytest -q`` session in a subprocess, all three interleaved in one run
(rotated each repetition); the table gives medians of wall time and of the child's CPU time, and the
per-test overhead over the floor. pytest-recording is used when importable; ``--recording-path DIR`` adds
a directory holding it (``pip install --target DIR --no-deps pytest-recording``) to that variant only, so
it never loads in the other sessions. Every session runs with ``-p no:randomly -p no:cacheprovider`` (but
one row of ours: with pytest's cache, which the warm-up session filled, cassettes are not parsed again) and
without looptime's pytest plugin (ours switches it off; the others would otherwise pay for it), and with
bytecode for every module, ours included (``PYTHONPYCACHEPREFIX`` in the run's directory, written by the
warm-up sessions): until 2026-12-05 an editable checkout under ``PYTHONDONTWRITEBYTECODE=1`` compiled this
package's ~70 modules from source in every session (~0.15 ms per test of 500), while the SDK, vcrpy and
pytest-recording were read from the bytecode pip wrote when it installed them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

MODULES = 10
CALLS = 4

HEAD = """\
import json, os
import openai

KWARGS = json.loads({kwargs!r})
"""

OURS = (
    HEAD
    + """
CLIENT = openai.OpenAI(base_url={base!r}, api_key="sk-bench-0000", max_retries=0)

def run():
    for kwargs in KWARGS:
        CLIENT.chat.completions.create(**kwargs)
"""
)

FLOOR = (
    HEAD
    + """
import httpx2

ANSWERS = {{body: answer.encode() for body, answer in json.loads({answers!r}).items()}}
HEADERS = json.loads({headers!r})

def handle_request(transport, request):  # the SDK's own client and transport, answered from memory
    body = request.read().decode()
    return httpx2.Response(200, content=ANSWERS[body], headers=HEADERS[body])

httpx2.HTTPTransport.handle_request = handle_request

CLIENT = openai.OpenAI(base_url={base!r}, api_key="sk-bench-0000", max_retries=0)

def run():
    for kwargs in KWARGS:
        CLIENT.chat.completions.create(**kwargs)
"""
)

WARM = "pytest-agentflows (parse cache warm)"
"""Ours with pytest's cacheprovider on, as a team runs it: cassettes parsed by an earlier session are read
from ``.pytest_cache`` (the cold row runs with ``-p no:cacheprovider``, so every cassette is parsed)."""

TEST = {
    "pytest-agentflows": "def test_{n}(agentflow):\n    run()\n",
    WARM: "def test_{n}(agentflow):\n    run()\n",
    "pytest-recording / vcrpy": "@pytest.mark.vcr\ndef test_{n}():\n    run()\n",
    "floor (SDK + in-memory transport)": "def test_{n}():\n    run()\n",
}


def slug(name: str) -> str:
    """``name`` as a directory name: each character other than a letter or digit becomes ``-``."""
    return "".join(ch if ch.isalnum() else "-" for ch in name)


def generate(root: Path, variant: str, tests: int) -> Path:
    """The suite of ``variant`` under ``root / <slug>``; its cassettes are written next to each module."""
    base = root / slug(variant.split(" /")[0])
    (base / "tests").mkdir(parents=True)
    (base / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    kwargs = json.dumps([c.create_kwargs(i) for i in range(CALLS)])
    answers = json.dumps({c.request_body(i).decode(): c.response_body(i).decode() for i in range(CALLS)})
    headers = json.dumps({c.request_body(i).decode(): c.response_headers(i) for i in range(CALLS)})
    per_module = tests // MODULES
    for m in range(MODULES):
        name = f"test_mod_{m:02d}"
        if variant.startswith("floor"):
            head = FLOOR.format(kwargs=kwargs, answers=answers, headers=headers, base=c.BASE_URL)
        else:
            head = OURS.format(kwargs=kwargs, base=c.BASE_URL)
        body = [head, "import pytest\n"]
        for t in range(per_module):
            body.append(TEST[variant].format(n=t))
            if not variant.startswith("floor"):
                c.write_vcrpy_cassette(base / "tests" / "cassettes" / name / f"test_{t}.yaml", CALLS)
        (base / "tests" / f"{name}.py").write_text("\n".join(body), encoding="utf-8")
    return base


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def session(base: Path, variant: str, tests: int, recording_path: str | None) -> tuple[float, float]:
    """``(wall seconds, CPU seconds)`` of one whole session of ``variant``."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:looptime_plugin"]
    if variant != WARM:
        cmd += ["-p", "no:cacheprovider"]
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)
    # Bytecode for every module, as installed packages have it (pip compiles at install): the warm-up
    # session writes what is missing (this checkout's own modules, under PYTHONDONTWRITEBYTECODE=1 in CI
    # otherwise compiled from source by every session) to a cache of the run's own.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(base.parent / "pycache")
    if variant.startswith("pytest-recording"):
        cmd += ["-p", "no:agentflows", "--record-mode=none"]
        if recording_path:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (recording_path, env.get("PYTHONPATH")) if p)
    elif variant.startswith("floor"):
        cmd += ["-p", "no:agentflows"]
    cmd.append("tests")
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=base, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if proc.returncode != 0 or f"{tests} passed" not in proc.stdout:
        raise SystemExit(f"{variant}: {' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return wall, cpu


def recording_available(recording_path: str | None) -> bool:
    env = dict(os.environ)
    if recording_path:
        env["PYTHONPATH"] = recording_path
    proc = subprocess.run([sys.executable, "-c", "import pytest_recording"], env=env, capture_output=True)
    return proc.returncode == 0


def run(tests: int, reps: int, recording_path: str | None) -> str:
    variants = list(TEST)
    if not recording_available(recording_path):
        print(
            "pytest-recording is not importable: its row is left out (see --recording-path)", file=sys.stderr
        )
        variants.remove("pytest-recording / vcrpy")
    with c.workdir("suite") as root:
        bases = {v: generate(root, v, tests) for v in variants}
        for v in variants:  # warm the file system and bytecode caches
            session(bases[v], v, tests, recording_path)
        walls: dict[str, list[float]] = {v: [] for v in variants}
        cpus: dict[str, list[float]] = {v: [] for v in variants}
        for rep in range(reps):
            for v in c.rotated(variants, rep):
                wall, cpu = session(bases[v], v, tests, recording_path)
                walls[v].append(wall)
                cpus[v].append(cpu)
    floor = variants[-1]
    wall0, cpu0 = c.median(walls[floor]), c.median(cpus[floor])
    rows = []
    for v in variants:
        wall, cpu = c.median(walls[v]), c.median(cpus[v])
        rows.append(
            [
                v,
                c.fmt_seconds(wall),
                c.fmt_ratio(wall / wall0),
                c.fmt_seconds(cpu),
                f"{(wall - wall0) / tests * 1e3:+.2f} ms",
                f"{(cpu - cpu0) / tests * 1e3:+.2f} ms",
            ]
        )
    headers = [
        f"{tests} flow tests x {CALLS} calls, whole session",
        "wall time",
        "× floor",
        "CPU time",
        "wall per test over floor",
        "CPU per test over floor",
    ]
    caption = (
        f"Suite-scale replay: `python -m pytest -q` in a subprocess over {tests} generated tests of {CALLS} "
        f"openai chat completions each ({tests * CALLS:,} calls, one cassette per test); medians of {reps} "
        f"interleaved runs. {c.machine()}."
    )
    return caption + "\n\n" + c.table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tests", type=int, default=500, help="flow tests (default 500, a multiple of 10)")
    parser.add_argument("--reps", type=int, default=3, help="runs of each variant (default 3)")
    parser.add_argument(
        "--recording-path",
        default=os.environ.get("AGENTFLOWS_BENCH_RECORDING_PATH"),
        help="a directory holding pytest-recording, added to that variant's PYTHONPATH only",
    )
    args = parser.parse_args()
    print(run(args.tests, args.reps, args.recording_path))


if __name__ == "__main__":
    main()
