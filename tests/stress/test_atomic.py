"""Atomic, lossless writes: a recording session SIGKILLed at random points never loses a cassette.

Each round runs a real recording pytest session (``--record-agents=all --snapshot-update`` with a JSON
report) against the LocalModelServer in a child process and kills it with SIGKILL after a seeded random
delay. Every cassette and the JSON report must then be byte-identical to the last complete version, or be a
complete new version (all interactions of the killed round): never partial. The decision-snapshot file is
always complete, and each test's snapshot moves only with its cassette (written right after it is saved):
it may lag its cassette by the kill, never lead it.
Temporary files a kill leaves behind (``.<name>.<random>.tmp``, ``<file>.agentflows.tmp``) must be ignored
by the loaders and removed by the next save.

Children are forked from a warm ``multiprocessing`` forkserver (pytest, the SDKs and vcrpy pre-imported),
so a round costs a fraction of a second instead of an interpreter start.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from syrupy.extensions.amber.serializer import AmberDataSerializer

from pytest_agentflows import load_cassette
from pytest_agentflows.model_server import LocalModelServer

TESTS = 3
CALLS = 6
FILLER = 6_000  # words per prompt: large cassettes, so their writes take a measurable share of a round

INNER_TESTS = """
import os, openai, pytest

RUN = os.environ["RUN_ID"]
FILLER = " ".join("w%d" % i for i in range({filler}))

@pytest.mark.parametrize("n", range({tests}))
def test_big(agentflow, decision_snapshot, n):
    open("started", "a").close()
    agentflow.simulate_latency(0.5)
    client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
    for k in range({calls}):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{{"role": "user", "content": f"run {{RUN}} test {{n}} call {{k}} {{FILLER}}"}}],
        )
    agentflow.log.record("done", run=RUN, payload=FILLER[:4000])
    assert agentflow.decisions == decision_snapshot
"""

RUNNER = """
import os, sys
os.chdir({root!r})
log = os.open("session.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.dup2(log, 1)
os.dup2(log, 2)
os.environ["AF_OPENAI_URL"] = {url!r}
os.environ["RUN_ID"] = open("run_id").read()
import pytest
sys.exit(pytest.main(["-q", "--assert=plain", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist",
    "-p", "no:hypothesispytest",
    "--record-agents=all", "--snapshot-update", "--agentflows-json", "report.json", "test_big.py"]))
"""

PRELOAD = [
    "pytest",
    "openai",
    "httpx",
    "yaml",
    "vcr",
    "vcr.cassette",
    "vcr.patch",
    "syrupy",
    "syrupy.extensions.amber",
    "pytest_agentflows.plugin",
    "pytest_agentflows.flow",
    "pytest_agentflows.cassette._recorder",
    "pytest_agentflows.plugin.snapshot",
    "pytest_agentflows.report",
]


class KillHarness:
    """The inner project, its last complete files, and the checks after each kill."""

    def __init__(self, root: Path, server: LocalModelServer) -> None:
        self.root = root
        (root / "pytest.ini").write_text("[pytest]\nagentflows_cassette_dir = cassettes\n")
        (root / "test_big.py").write_text(INNER_TESTS.format(tests=TESTS, calls=CALLS, filler=FILLER))
        (root / "runner.py").write_text(RUNNER.format(root=str(root), url=server.openai_base_url))
        self.cassettes = [root / "cassettes" / "test_big" / f"test_big[{n}].yaml" for n in range(TESTS)]
        self.snapshot = root / "__snapshots__" / "test_big.agentflows"
        self.report = root / "report.json"
        self.known: dict[Path, bytes] = {}
        self.counts = dict.fromkeys(
            ("cassettes_intact", "cassettes_new", "snapshots_intact", "snapshots_new", "reports_checked"), 0
        )
        self.lost: list[str] = []
        self.snapshot_runs: dict[int, str] = {}
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        self.ctx = ctx

    def start(self, run_id: str) -> Any:
        (self.root / "run_id").write_text(run_id)
        (self.root / "started").unlink(missing_ok=True)
        import runpy

        process = self.ctx.Process(target=runpy.run_path, args=(str(self.root / "runner.py"),))
        process.start()
        return process

    def run_complete(self, run_id: str) -> float:
        """Run a whole session; return the seconds from the first test's start to the end."""
        process = self.start(run_id)
        started = self.wait_started(process)
        process.join(120)
        assert process.exitcode == 0, (self.root / "session.log").read_text()
        self.check(run_id, expect_new=True)
        return time.monotonic() - started

    def wait_started(self, process: Any) -> float:
        deadline = time.monotonic() + 60
        while not (self.root / "started").exists():
            assert process.is_alive() or process.exitcode is None, (self.root / "session.log").read_text()
            assert time.monotonic() < deadline, "the inner session never started"
            time.sleep(0.005)
        return time.monotonic()

    def wait_for_temp_file(self, process: Any, deadline: float) -> None:
        """Poll (about every millisecond) until a write's temporary file exists or the session ends."""
        folders = [self.root / "cassettes" / "test_big", self.snapshot.parent, self.root]
        while process.is_alive() and time.monotonic() < deadline:
            for folder in folders:
                if folder.is_dir() and any(p.name.endswith(".tmp") for p in folder.iterdir()):
                    return
            time.sleep(0.001)

    def temp_files(self) -> list[Path]:
        return [p for p in self.root.rglob("*.tmp") if p.is_file()]

    def check(self, run_id: str, *, expect_new: bool = False) -> None:
        """Every file is the last complete version or a complete version of ``run_id``."""
        for path in self.cassettes:
            self._check_file(path, run_id, self._cassette_complete, "cassettes", expect_new)
        self._check_snapshot(run_id, expect_new)
        if self.report.exists():
            try:
                data = json.loads(self.report.read_bytes())
                assert len(data["rows"]) == TESTS
                self.counts["reports_checked"] += 1
            except Exception as exc:  # a truncated report
                self.lost.append(f"{self.report}: {type(exc).__name__}: {exc}")

    def _check_file(
        self, path: Path, run_id: str, complete: Callable[[Path, str], bool], kind: str, expect_new: bool
    ) -> None:
        if not path.exists():
            if path in self.known:
                self.lost.append(f"{path}: deleted")
            return
        data = path.read_bytes()
        if data == self.known.get(path) and not expect_new:
            self.counts[f"{kind}_intact"] += 1
            return
        try:
            ok = complete(path, run_id)
        except Exception as exc:
            ok, why = False, f"{type(exc).__name__}: {exc}"
        else:
            why = "not a complete version of this round"
        if ok:
            self.counts[f"{kind}_new"] += 1
            self.known[path] = data
        else:
            self.lost.append(f"{path}: {why}")

    @staticmethod
    def _cassette_complete(path: Path, run_id: str) -> bool:
        cassette = load_cassette(path)
        bodies = [i.request["body"] or b"" for i in cassette.interactions]
        return len(bodies) == CALLS and all(f"run {run_id} ".encode() in b for b in bodies)

    def _check_snapshot(self, run_id: str, expect_new: bool) -> None:
        """The snapshot file is complete, and each test's snapshot moves only with its cassette.

        A recording test's snapshot is written right after its cassette is saved: a kill may land between
        the two (the cassette is then ahead), but a snapshot is never of a run its cassette is not.
        """
        path = self.snapshot
        if not path.exists():
            if path in self.known:
                self.lost.append(f"{path}: deleted")
            return
        data = path.read_bytes()
        if data == self.known.get(path) and not expect_new:
            self.counts["snapshots_intact"] += 1
            return
        try:
            runs = self._snapshot_runs(path)
        except Exception as exc:
            self.lost.append(f"{path}: {type(exc).__name__}: {exc}")
            return
        for n, run in runs.items():
            cassette_run = self._cassette_run(self.cassettes[n])
            if expect_new and run != run_id:
                self.lost.append(f"{path}: test {n} has run {run}, not {run_id}")
            elif run != cassette_run and run != self.snapshot_runs.get(n):
                self.lost.append(
                    f"{path}: test {n}'s snapshot is of run {run}, its cassette of {cassette_run}"
                )
            elif run != cassette_run:
                self.counts["cassette_ahead_of_snapshot"] = (
                    self.counts.get("cassette_ahead_of_snapshot", 0) + 1
                )
        self.snapshot_runs = runs
        self.counts["snapshots_new"] += 1
        self.known[path] = data

    @staticmethod
    def _snapshot_runs(path: Path) -> dict[int, str]:
        collection = AmberDataSerializer.read_file(str(path))
        snapshots = sorted(collection, key=lambda s: s.name)
        if collection.tainted or len(snapshots) != TESTS:
            raise AssertionError(f"{len(snapshots)} snapshots (tainted: {collection.tainted})")
        runs = {}
        for n, snapshot in enumerate(snapshots):
            done = yaml.safe_load(str(snapshot.data))[-1]
            if done["kind"] != "done" or len(done["payload"]) != 4000:
                raise AssertionError(f"snapshot {snapshot.name} is not complete")
            runs[n] = done["run"]
        return runs

    @staticmethod
    def _cassette_run(path: Path) -> str | None:
        if not path.exists():
            return None
        body = load_cassette(path).interactions[0].request["body"] or b""
        text = body.decode() if isinstance(body, bytes) else str(body)
        return text.split("run ", 1)[1].split(" ", 1)[0]


def _kill_rounds(
    tmp_path: Path, server: LocalModelServer, kills: int, seed: int, figures: Callable[..., None]
) -> None:
    harness = KillHarness(tmp_path, server)
    window = harness.run_complete("base")  # seconds from the first test's start to the session's end
    rng = random.Random(seed)
    mid_write = killed = snapshot_mid_write = 0
    for round_no in range(kills):
        run_id = f"k{round_no}"
        process = harness.start(run_id)
        harness.wait_started(process)
        before = set(harness.temp_files())
        if round_no % 2:  # aim at a write: kill as soon as a temporary file shows, plus 0-5 ms
            harness.wait_for_temp_file(process, deadline=time.monotonic() + window * 2)
            time.sleep(rng.uniform(0, 0.005))
        else:  # anywhere in the session
            time.sleep(rng.uniform(0, window * 1.1))
        process.kill()  # SIGKILL
        process.join(30)
        killed += process.exitcode == -signal.SIGKILL
        new_temp_files = set(harness.temp_files()) - before
        if new_temp_files:
            mid_write += 1  # a new temporary file exists: the kill landed inside a write
            snapshot_mid_write += any(p.parent == harness.snapshot.parent for p in new_temp_files)
        harness.check(run_id)
    stale = len(harness.temp_files())
    harness.run_complete("final")  # stale temporary files are ignored, then removed by the next save
    assert harness.lost == []
    assert harness.temp_files() == []
    figures(
        rounds=kills,
        kills=killed,
        kills_mid_write=mid_write,
        kills_mid_snapshot_write=snapshot_mid_write,
        stale_temp_files_before_final_run=stale,
        cassettes_intact=harness.counts["cassettes_intact"],
        cassettes_complete_new=harness.counts["cassettes_new"],
        snapshot_files_intact=harness.counts["snapshots_intact"],
        snapshots_behind_their_cassette=harness.counts.get("cassette_ahead_of_snapshot", 0),
        snapshot_files_complete_new=harness.counts["snapshots_new"],
        json_reports_valid=harness.counts["reports_checked"],
        lost=len(harness.lost),
    )


def test_sigkill_during_recording_never_loses_a_file(
    tmp_path: Path, model_server: LocalModelServer, figures: Callable[..., None]
) -> None:
    _kill_rounds(tmp_path, model_server, kills=10, seed=7, figures=figures)


@pytest.mark.stress
def test_sigkill_during_recording_never_loses_a_file_stress(
    tmp_path: Path, model_server: LocalModelServer, figures: Callable[..., None]
) -> None:
    _kill_rounds(tmp_path, model_server, kills=200, seed=2024, figures=figures)


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("the serializer died half-way through the file")


def test_snapshot_file_write_is_atomic_without_xdist(tmp_path: Path) -> None:
    from syrupy.data import Snapshot, SnapshotCollection

    from pytest_agentflows.plugin.snapshot import AtomicAmberSerializer

    target = tmp_path / "test_mod.agentflows"
    good = SnapshotCollection(location=str(target))
    good.add(Snapshot(name="test_a", data="- kind: route\n"))
    AtomicAmberSerializer.write_file(good, merge=True, file_lock=False)  # as in a run without xdist
    before = target.read_bytes()
    assert b"test_a" in before

    broken = SnapshotCollection(location=str(target))
    broken.add(Snapshot(name="test_b", data="- kind: done\n"))
    broken.add(Snapshot(name="test_c", data=_Unprintable()))
    with pytest.raises(RuntimeError, match="half-way"):
        AtomicAmberSerializer.write_file(broken, merge=True, file_lock=False)
    assert target.read_bytes() == before  # syrupy alone would have truncated the file here
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test_mod.agentflows"]
