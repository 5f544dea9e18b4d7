"""Bad input, clear errors: broken cassettes raise ``CassetteError`` naming the file and the place, never
another exception, through both loading paths (the public ``load_cassette`` and the ``agentflow`` fixture's
vcrpy replay); a broken decision-snapshot file gives a clear error naming it (or a clean mismatch).

The fuzz is seeded (``derandomize=True``, no example database): CI runs the same examples every time. The
light versions run in the default suite; ``--stress`` runs thousands of examples.
"""

from __future__ import annotations

import collections
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cassette_strategies import cassette_files, damaged_files, real_files, wrong_documents
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_agentflows.cassette._load import load_cassette
from pytest_agentflows.errors import CassetteError, UnrecordedRequestError
from pytest_agentflows.flow import Flow

LIGHT, HEAVY = 150, 3000

# a CassetteError may lack a place only when the whole file is the problem
NO_PLACE_REASONS = (
    "the gzip file is truncated or corrupt",
    "the file is gzip-compressed",
    "the file is empty",
    "invalid JSON (nested too deeply)",
    "invalid YAML (nested too deeply)",
)


class Tally:
    """Outcomes of a fuzz run: counts by outcome and by exception type, and the message checks."""

    def __init__(self) -> None:
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.with_place = 0
        self.without_place: collections.Counter[str] = collections.Counter()
        self.replayed = 0

    def cassette_error(self, error: CassetteError, path: Path) -> None:
        self.outcomes["CassetteError"] += 1
        message = str(error)
        assert str(path) in message, message
        assert message.startswith(f"cannot read cassette {path}"), message
        assert "\n" not in message, message
        if error.where:
            assert f" at {error.where}: " in message
            self.with_place += 1
        else:
            assert error.reason.startswith(NO_PLACE_REASONS), message
            self.without_place[error.reason.split(" (")[0]] += 1

    def figures(self, target: str) -> dict[str, Any]:
        other = sum(n for kind, n in self.outcomes.items() if kind not in ("loaded", "CassetteError"))
        return {
            f"{target}_examples": sum(self.outcomes.values()),
            f"{target}_loaded": self.outcomes["loaded"],
            f"{target}_cassette_errors": self.outcomes["CassetteError"],
            f"{target}_other_exceptions": other,
            f"{target}_errors_naming_file": self.outcomes["CassetteError"],
            f"{target}_errors_with_place": self.with_place,
            f"{target}_errors_whole_file": dict(self.without_place),
        }


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="agentflows-fuzz-") as tmp:
        yield Path(tmp)


def _run_fuzz(
    examples: int,
    files: st.SearchStrategy[tuple[str, bytes]],
    scratch: Path,
    load: Callable[[Path], None],
    tally: Tally | None = None,
) -> Tally:
    tally = tally or Tally()

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(files)
    def check(case: tuple[str, bytes]) -> None:
        name, raw = case
        path = scratch / name
        path.write_bytes(raw)
        try:
            load(path)
        except CassetteError as error:
            tally.cassette_error(error, path)
        except Exception as error:
            tally.outcomes[type(error).__name__] += 1
            raise
        else:
            tally.outcomes["loaded"] += 1
        finally:
            path.unlink()

    check()
    assert set(tally.outcomes) <= {"loaded", "CassetteError"}, tally.outcomes
    return tally


def _public_load(path: Path) -> None:
    cassette = load_cassette(path)
    for interaction in cassette.interactions:  # every accessor works on what loaded
        interaction.request_json()
        interaction.response_json()
        _ = interaction.text, interaction.status, interaction.method, interaction.uri
    _ = cassette.usage


def _replay_load(tally: Tally) -> Callable[[Path], None]:
    """The fixture's path: a replay-only Flow activates the cassette; then every loaded request is sent."""

    def load(path: Path) -> None:
        flow = Flow(cassette=path, record="none", test_id="tests/test_x.py::test_fuzz", latency="zero")
        with flow.activate(), httpx.Client() as client:
            cassette = flow._cassette
            assert cassette is not None
            for request, _ in list(cassette.data):
                try:
                    sent = client.build_request(request.method, request.uri, content=request.body)
                except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError):
                    continue  # no client could send this request: it can only stay unmatched
                try:
                    client.send(sent).read()
                except UnrecordedRequestError:
                    pass  # a clean miss (e.g. the same request twice)
                except (httpx.UnsupportedProtocol, httpx.InvalidURL):
                    continue
                else:
                    tally.replayed += 1
            flow.misses.clear()

    return load


def test_a_content_encoding_the_body_does_not_have_replays(tmp_path: Path) -> None:
    """Found by the stress fuzz: ``Content-Encoding: [gzip, gzip]`` over a plain body (vcrpy removes one
    value and keeps the other); the header must go, or the client fails to decode the replayed body."""
    body = '{"id": "x", "object": "chat.completion", "choices": []}'
    path = tmp_path / "double_gzip.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "interactions": [
                    {
                        "request": {
                            "method": "POST",
                            "uri": "http://127.0.0.1:9/v1/x",
                            "body": "{}",
                            "headers": {},
                        },
                        "response": {
                            "status": {"code": 200, "message": "OK"},
                            "headers": {
                                "Content-Encoding": ["gzip", "gzip"],
                                "content-type": ["application/json"],
                            },
                            "body": {"string": body},
                        },
                    }
                ],
            }
        )
    )
    tally = Tally()
    _replay_load(tally)(path)
    assert tally.replayed == 1


def _figures_for(tally: Tally, target: str) -> dict[str, Any]:
    values = tally.figures(target)
    if tally.replayed:
        values[f"{target}_interactions_replayed"] = tally.replayed
    return values


# -- the public loader ------------------------------------------------------------------------------------


def test_load_cassette_fuzz_light(scratch: Path, figures: Callable[..., None]) -> None:
    tally = _run_fuzz(LIGHT, cassette_files, scratch, _public_load)
    figures(**_figures_for(tally, "load_cassette"))
    assert tally.outcomes["CassetteError"] > LIGHT // 3 and tally.outcomes["loaded"] > 0


@pytest.mark.stress
@pytest.mark.parametrize("kind", ["wrong_documents", "damaged_files"])
def test_load_cassette_fuzz_stress(scratch: Path, figures: Callable[..., None], kind: str) -> None:
    files = wrong_documents() if kind == "wrong_documents" else damaged_files()
    tally = _run_fuzz(HEAVY, files, scratch, _public_load)
    figures(**_figures_for(tally, f"load_cassette_{kind}"))
    assert tally.outcomes["CassetteError"] > HEAVY // 3


# -- the agentflow fixture's replay path (vcrpy) ----------------------------------------------------------


def test_replay_load_fuzz_light(scratch: Path, figures: Callable[..., None]) -> None:
    tally = Tally()
    _run_fuzz(LIGHT, cassette_files, scratch, _replay_load(tally), tally)
    figures(**_figures_for(tally, "replay"))
    assert tally.outcomes["CassetteError"] > LIGHT // 3 and tally.replayed > 0


@pytest.mark.stress
@pytest.mark.parametrize("kind", ["wrong_documents", "damaged_files"])
def test_replay_load_fuzz_stress(scratch: Path, figures: Callable[..., None], kind: str) -> None:
    files = wrong_documents() if kind == "wrong_documents" else damaged_files()
    tally = Tally()
    _run_fuzz(HEAVY, files, scratch, _replay_load(tally), tally)
    figures(**_figures_for(tally, f"replay_{kind}"))
    assert tally.outcomes["CassetteError"] > HEAVY // 3 and tally.replayed > 0


def test_real_cassettes_still_load(figures: Callable[..., None]) -> None:
    """The stricter replay checks refuse none of the real cassettes the fuzz starts from."""
    replayable = [p for p in real_files() if p.suffix == ".yaml" and "requests:" not in p.read_text()[:200]]
    for path in replayable:
        flow = Flow(cassette=path, record="none", test_id="t")
        with flow.activate():
            assert flow._cassette is not None and len(flow._cassette.data) > 0, path
    for path in real_files():
        assert len(load_cassette(path)) > 0
    figures(real_cassettes_replay_loaded=len(replayable), real_cassettes_public_loaded=len(real_files()))


# -- the decision-snapshot reader -------------------------------------------------------------------------

SNAPSHOT = Path(__file__).resolve().parents[1] / "__snapshots__" / "test_patterns_snapshots.agentflows"


@st.composite
def snapshot_files(draw: st.DrawFn) -> bytes:
    """A real decision-snapshot file, damaged: truncated, bytes flipped or inserted, markers moved or emptied."""
    raw = SNAPSHOT.read_bytes()
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "marker", "lines", "bytes"]))
    if kind == "truncate":
        return raw[: draw(st.integers(0, len(raw)))]
    if kind == "flip":
        buf = bytearray(raw)
        for _ in range(draw(st.integers(1, 8))):
            buf[draw(st.integers(0, len(buf) - 1))] ^= draw(st.integers(1, 255))
        return bytes(buf)
    if kind == "insert":
        at = draw(st.integers(0, len(raw)))
        junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\x00", b"\r", b"\r\n# name:\n", b"\n# ---\n"]))
        return raw[:at] + junk + raw[at:]
    lines = raw.split(b"\n")
    if kind == "marker":
        marker = draw(
            st.sampled_from(
                [b"# serializer version: 1", b"# serializer version: 9", b"# name:", b"# name", b"# ---"]
            )
        )
        lines.insert(draw(st.integers(0, len(lines))), marker)
        return b"\n".join(lines)
    if kind == "lines":
        picked = draw(st.lists(st.sampled_from(lines), max_size=30))
        return b"\n".join(picked)
    return draw(st.binary(max_size=400))


def _snapshot_names() -> list[str]:
    return [
        line.removeprefix("# name: ").strip()
        for line in SNAPSHOT.read_text().splitlines()
        if line.startswith("# name: ")
    ]


def _run_snapshot_fuzz(examples: int, scratch: Path) -> collections.Counter[str]:
    from syrupy.exceptions import TaintedSnapshotError

    from pytest_agentflows.errors import SnapshotFileError
    from pytest_agentflows.plugin.snapshot import DecisionLogExtension

    names = _snapshot_names()
    outcomes: collections.Counter[str] = collections.Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(snapshot_files(), st.sampled_from(names))
    def check(raw: bytes, name: str) -> None:
        path = scratch / "test_module.agentflows"
        path.write_bytes(raw)
        extension = DecisionLogExtension()
        try:
            # syrupy's end-of-session read (unused-snapshot report, merge on write) never raises
            extension.read_snapshot_collection(snapshot_location=str(path))
            # the assertion's read: data, nothing (missing), "needs regenerating", or our error
            data = extension.read_snapshot_data_from_location(str(path), name, f"fuzz-{outcomes.total()}")
        except TaintedSnapshotError:
            outcomes["needs regenerating (syrupy)"] += 1
        except SnapshotFileError as error:
            message = str(error)
            assert message.startswith(f"cannot read snapshot file {path} at line "), message
            assert "\n" not in message and "--snapshot-update" in message
            outcomes["SnapshotFileError"] += 1
        except Exception as error:
            outcomes[type(error).__name__] += 1
            raise
        else:
            outcomes["missing (clean)" if data is None else "read (compared as text)"] += 1
        finally:
            path.unlink()

    check()
    return outcomes


def _snapshot_figures(outcomes: collections.Counter[str], prefix: str) -> dict[str, Any]:
    allowed = {
        "needs regenerating (syrupy)",
        "SnapshotFileError",
        "missing (clean)",
        "read (compared as text)",
    }
    assert set(outcomes) <= allowed, outcomes
    return {
        f"{prefix}_examples": outcomes.total(),
        f"{prefix}_outcomes": dict(sorted(outcomes.items())),
        f"{prefix}_other_exceptions": sum(n for k, n in outcomes.items() if k not in allowed),
    }


def test_snapshot_reader_fuzz_light(scratch: Path, figures: Callable[..., None]) -> None:
    outcomes = _run_snapshot_fuzz(LIGHT, scratch)
    figures(**_snapshot_figures(outcomes, "snapshot_reader"))
    assert outcomes["SnapshotFileError"] > 0


@pytest.mark.stress
def test_snapshot_reader_fuzz_stress(scratch: Path, figures: Callable[..., None]) -> None:
    outcomes = _run_snapshot_fuzz(HEAVY, scratch)
    figures(**_snapshot_figures(outcomes, "snapshot_reader_stress"))
    assert outcomes["SnapshotFileError"] > 0


# -- corrupt files during a pytest run: what the test report shows ----------------------------------------

RUN_INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""

GOOD_INTERACTION = """interactions:
- request:
    body: '{"q": 1}'
    headers: {content-type: [application/json]}
    method: POST
    uri: http://127.0.0.1:9/v1/chat/completions
  response:
    status: {code: STATUS, message: OK}
    headers: {content-type: [application/json]}
    body: {string: '{}'}
version: 1
"""

# test name -> (cassette bytes, the place the message must name)
CORRUPT_RUN: dict[str, tuple[bytes, str]] = {
    "test_yaml_syntax": (b"interactions:\n- request: {method: POST, uri: [unclosed\n", "line 3, column 1"),
    "test_wrong_type": (
        GOOD_INTERACTION.replace("STATUS", "'abc'").encode(),
        "interactions[0].response.status.code",
    ),
    "test_not_utf8": (GOOD_INTERACTION.replace("STATUS", "200").encode().replace(b"OK", b"O\xff"), "byte "),
    "test_version": (
        GOOD_INTERACTION.replace("STATUS", "200").replace("version: 1", "version: 7").encode(),
        "version",
    ),
    "test_not_a_list": (b"interactions: {a: 1}\n", "top level"),
}


def test_corrupt_files_in_a_pytest_run(pytester: pytest.Pytester, figures: Callable[..., None]) -> None:
    """The report shows one CassetteError line naming the file and the place (no vcrpy/yaml traceback),
    and a corrupt decision snapshot fails its assertion with a SnapshotFileError naming the file and line."""
    pytester.makeini(RUN_INI)
    body = "\n\n".join(
        f"def {name}(agentflow):\n    raise AssertionError('must not run')" for name in CORRUPT_RUN
    )
    snapshot_test = "def test_snapshot(agentflow, decision_snapshot):\n    assert agentflow.decisions == decision_snapshot"
    pytester.makepyfile(test_corrupt=body + "\n\n\n" + snapshot_test + "\n")
    cassettes = pytester.path / "cassettes" / "test_corrupt"
    cassettes.mkdir(parents=True)
    for name, (raw, _) in CORRUPT_RUN.items():
        (cassettes / f"{name}.yaml").write_bytes(raw)
    snapshots = pytester.path / "__snapshots__"
    snapshots.mkdir()
    (snapshots / "test_corrupt.agentflows").write_bytes(
        b"# serializer version: 1\n# name: test_snapshot\n  []\n\xff\xfe\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=len(CORRUPT_RUN), failed=1)
    out = result.stdout.str()
    errors = out[out.index("= ERRORS =") : out.index("= FAILURES =")]
    for frame in ("vcr/", "yaml/", "_recorder.py", "_store.py", "Traceback", "During handling"):
        assert frame not in errors, frame
    for name, (_, place) in CORRUPT_RUN.items():
        path = cassettes / f"{name}.yaml"
        # in the ERRORS section (the short summary repeats it, untruncated when CI is set)
        lines = [
            line
            for line in errors.splitlines()
            if f"CassetteError: cannot read cassette {path} at {place}" in line
        ]
        assert len(lines) == 1, (name, place)
        assert (cassettes / f"{name}.yaml").read_bytes() == CORRUPT_RUN[name][0]  # left untouched
    snap = snapshots / "test_corrupt.agentflows"
    # syrupy shows a read error first, then its traceback (as for any error while reading a snapshot)
    result.stdout.fnmatch_lines(
        [
            "E       assert [[]+ received[]] == [[]- snapshot[]]",
            f"E         pytest_agentflows.errors.SnapshotFileError: cannot read snapshot file {snap} at line 4, "
            "byte 51: not UTF-8 text (invalid start byte)*--snapshot-update`.",
        ]
    )
    assert "INTERNALERROR" not in out
    # the fix the message gives works: delete the snapshot file, then --snapshot-update writes it again
    snap.unlink()
    pytester.runpytest("-p", "no:cacheprovider", "--snapshot-update", "-k", "snapshot").assert_outcomes(
        passed=1
    )
    pytester.runpytest("-p", "no:cacheprovider", "-k", "snapshot").assert_outcomes(passed=1)
    figures(corrupt_files_in_a_run=len(CORRUPT_RUN) + 1, reported_with_file_and_place=len(CORRUPT_RUN) + 1)
