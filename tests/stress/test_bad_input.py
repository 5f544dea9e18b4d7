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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_agentflows.cassette._load import load_cassette
from pytest_agentflows.errors import CassetteError, UnrecordedRequestError
from pytest_agentflows.flow import Flow

from cassette_strategies import cassette_files, damaged_files, real_files, wrong_documents

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

