"""pytest-xdist: recording and replaying many flow tests sharing a cassette directory.

A serial recording and a ``-n 2``/``-n 4`` recording write byte-identical cassettes and decision snapshots;
replaying serially, with ``-n 2`` and with ``-n 4`` gives the same outcomes and changes no file. Two workers
recording into ONE cassette at the same time is detected and reported (CassetteConflictError), never merged.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from pytest_agentflows.errors import CassetteConflictError
from pytest_agentflows.model_server import LocalModelServer

# syrupy 7 locks amber writes by itself under xdist; syrupy 6 needs the (experimental) flag, and warns
LOCK = ("--snapshot-file-lock",) if int(version("syrupy").split(".")[0]) < 7 else ()

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
agentflows_cassette_dir = cassettes
filterwarnings =
    error
    ignore::DeprecationWarning
"""

MANY = """
import os, anthropic, openai, pytest

@pytest.mark.parametrize("n", range({tests}))
def test_flow(agentflow, decision_snapshot, n):
    agentflow.simulate_latency({{"planner": 1.5, "writer": 2.25}})
    oai = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
    ant = anthropic.Anthropic(base_url=os.environ["AF_ANTHROPIC_URL"], api_key="k", max_retries=0)
    with agentflow.agent("planner"):
        plan = oai.chat.completions.create(
            model="gpt-4o-mini", messages=[{{"role": "user", "content": f"plan task {{n}}"}}]
        ).choices[0].message.content
    with agentflow.agent("writer"):
        ant.messages.create(
            model="claude-3-5-haiku-latest", max_tokens=50, messages=[{{"role": "user", "content": plan}}]
        )
    agentflow.log.record("done", task=n, plan=plan)
    assert agentflow.decisions == decision_snapshot
    assert agentflow.elapsed == 3.75
"""


def _files(root: Path) -> dict[str, bytes]:
    """Every cassette and snapshot file under ``root``, by relative path (temporary files included).

    syrupy's own lock sidecar (``<file>.lock``: syrupy 6 leaves it behind under xdist) is not ours to compare.
    """
    out = {}
    for folder in ("cassettes", "__snapshots__"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and not path.name.endswith(".agentflows.lock"):
                out[str(path.relative_to(root))] = path.read_bytes()
    return out


def _mismatches(expected: dict[str, bytes], got: dict[str, bytes]) -> int:
    return sum(1 for name in expected.keys() | got.keys() if expected.get(name) != got.get(name))


def _xdist_matrix(
    pytester: pytest.Pytester,
    go_offline: Callable[[], None],
    *,
    tests: int,
    record_workers: list[str],
    replay_workers: list[str],
) -> dict[str, int]:
    pytester.makeini(INI)
    pytester.makepyfile(test_many=MANY.format(tests=tests))
    base = ("-p", "no:randomly", "-p", "no:cacheprovider")
    runs = mismatches = 0

    pytester.runpytest(*base, "-p", "no:xdist", "--record-agents=all", "--snapshot-update").assert_outcomes(
        passed=tests
    )
    runs += 1
    serial = _files(pytester.path)
    assert len([n for n in serial if n.startswith("cassettes")]) == tests
    for workers in record_workers:
        for folder in ("cassettes", "__snapshots__"):
            for path in (pytester.path / folder).rglob("*.*"):
                path.unlink()
        pytester.runpytest(
            *base, "-n", workers, *LOCK, "--record-agents=all", "--snapshot-update"
        ).assert_outcomes(passed=tests)
        runs += 1
        mismatches += _mismatches(serial, _files(pytester.path))

    go_offline()
    for workers in replay_workers:
        extra = ("-p", "no:xdist") if workers == "0" else ("-n", workers)
        result = pytester.runpytest(*base, *extra)
        result.assert_outcomes(passed=tests)
        result.stdout.fnmatch_lines(
            [f"agentflows: {tests} flows, {2 * tests} model calls ({2 * tests} replayed, 0*"]
        )
        runs += 1
        mismatches += _mismatches(serial, _files(pytester.path))
    return {"runs": runs, "tests": tests, "mismatches": mismatches}


def test_xdist_record_and_replay_match_a_serial_run(
    pytester: pytest.Pytester,
    model_server: LocalModelServer,
    go_offline: Callable[[], None],
    figures: Callable[..., None],
) -> None:
    result = _xdist_matrix(pytester, go_offline, tests=8, record_workers=["2"], replay_workers=["0"])
    assert result["mismatches"] == 0
    figures(**result)


@pytest.mark.stress
def test_xdist_record_and_replay_match_a_serial_run_stress(
    pytester: pytest.Pytester,
    model_server: LocalModelServer,
    go_offline: Callable[[], None],
    figures: Callable[..., None],
) -> None:
    result = _xdist_matrix(
        pytester, go_offline, tests=24, record_workers=["4", "2"], replay_workers=["0", "2", "4"]
    )
    assert result["mismatches"] == 0
    figures(**result)


SHARED = """
import os, time, openai, pytest

def ask(agentflow, prompt):
    client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    if os.environ.get("RENDEZVOUS"):  # both tests hold the loaded cassette before either saves
        open(f"arrived-{prompt}", "w").close()
        deadline = time.monotonic() + 180  # worker start-up can lag on a loaded machine
        while len([p for p in os.listdir(".") if p.startswith("arrived-")]) < 2:
            assert time.monotonic() < deadline, "the other test never ran: were both on one worker?"
            time.sleep(0.01)

@pytest.mark.agentflow(cassette="shared")
def test_alpha(agentflow):
    ask(agentflow, "alpha")

@pytest.mark.agentflow(cassette="shared")
def test_beta(agentflow):
    ask(agentflow, "beta")

def test_gamma(agentflow):  # fails while recording on a worker: the controller reports the discard
    client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "gamma"}])
    assert False
"""


def _prompts(path: Path) -> list[str]:
    return [i["request"]["body"] for i in yaml.safe_load(path.read_text())["interactions"]]


def test_two_workers_recording_one_cassette_is_reported_not_merged(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    model_server: LocalModelServer,
    go_offline: Callable[[], None],
    figures: Callable[..., None],
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_shared=SHARED)
    shared = pytester.path / "cassettes" / "test_shared" / "shared.yaml"

    monkeypatch.setenv("RENDEZVOUS", "1")
    result = pytester.runpytest("-p", "no:randomly", "-n", "2", "--record-agents=new")
    monkeypatch.delenv("RENDEZVOUS")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            f"*CassetteConflictError: cassette {shared} was written by another test or process while test "
            "test_shared.py::test_* was recording into it; its 1 recorded interaction(s) were NOT saved, so "
            "nothing was merged or overwritten. Two tests record into the same cassette at once: give them "
            "distinct cassette names (@pytest.mark.agentflow(cassette=...)) or record serially (`-n 0`)*"
        ]
    )
    gamma = pytester.path / "cassettes" / "test_shared" / "test_gamma.yaml"
    result.stdout.fnmatch_lines(
        [f"agentflows: test_shared.py::test_gamma failed (AssertionError): *; cassette {gamma} not created.*"]
    )
    prompts = _prompts(shared)
    assert len(prompts) == 1  # the first writer's file, whole; the second recording was not merged into it
    assert [p.name for p in shared.parent.iterdir()] == ["shared.yaml"]

    shared.unlink()  # sequential sharing in one process keeps working: both recordings end up in the file
    for path in pytester.path.glob("arrived-*"):
        path.unlink()
    pytester.runpytest("-p", "no:randomly", "-p", "no:xdist", "--record-agents=new").assert_outcomes(
        passed=2, failed=1
    )
    assert sorted("alpha" in p for p in _prompts(shared)) == [False, True]
    go_offline()
    pytester.runpytest("-p", "no:randomly", "-p", "no:xdist").assert_outcomes(passed=2, failed=1)
    figures(concurrent_writers=2, conflicts_reported=1, merged=0)


def test_guarded_persister_refuses_a_file_changed_since_it_loaded(tmp_path: Path) -> None:
    from vcr.persisters.filesystem import CassetteNotFoundError
    from vcr.serializers import yamlserializer

    from pytest_agentflows.cassette._store import GuardedPersister

    path = tmp_path / "shared.yaml"

    def cassette(prompt: str) -> dict[str, object]:
        request = {"method": "POST", "uri": "http://127.0.0.1/v1/chat", "body": prompt, "headers": {}}
        response = {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": "ok"}}
        from vcr.request import Request

        return {"requests": [Request._from_dict(request)], "responses": [response]}

    first, second = GuardedPersister("test_first"), GuardedPersister("test_second")
    for persister in (first, second):  # both find no file
        with pytest.raises(CassetteNotFoundError):
            persister.load_cassette(path, yamlserializer)
    first.save_cassette(path, cassette("one"), yamlserializer)
    saved = path.read_bytes()
    second.recorded = 1
    with pytest.raises(CassetteConflictError) as info:
        second.save_cassette(path, cassette("two"), yamlserializer)
    assert info.value.test == "test_second" and info.value.path == str(path)
    assert "test_second" in str(info.value) and "record serially" in str(info.value)
    assert path.read_bytes() == saved  # the first writer's file, untouched

    third = GuardedPersister("test_third")
    third.load_cassette(path, yamlserializer)
    stale = tmp_path / ".shared.yaml.k1ll3d.tmp"  # left by a writer killed mid-write
    stale.write_text("interactions:\n- request: {method: POS")
    tmp = tmp_path / "rewritten"
    tmp.write_bytes(saved)
    tmp.replace(path)  # the same content written again by someone else (new inode, new mtime): no loss
    third.save_cassette(path, cassette("three"), yamlserializer)
    assert b"three" in path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.yaml"]  # the stale temporary file is gone
