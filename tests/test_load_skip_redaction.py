"""Loading a cassette this plugin wrote does not scrub it again (unless extra redaction is configured)."""

from __future__ import annotations

from pathlib import Path

import yaml

from pytest_agentflows import VirtualClock
from pytest_agentflows.cassette._modes import RecordMode
from pytest_agentflows.cassette._recorder import Recorder
from pytest_agentflows.cassette._redact import Redactor


class _Listener:
    def on_exchange(self, exchange: object) -> None:
        pass

    def recording_latency(self, agent: str | None, measured: float) -> float:
        return measured


def _cassette(path: Path, *, ours: bool) -> Path:
    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {"content-type": ["application/json"], "x-team": ["blue-team-0001"]},
        "body": {"string": '{"ok": true}'},
    }
    if ours:
        response["agentflows"] = {"agent": "a", "latency_s": 1.0}
    interaction = {
        "request": {
            "method": "POST",
            "uri": "https://api.example.com/v1/x",
            "headers": {"x-team": ["blue-team-0001"], "x-api-key": ["sk-planted-0001"]},
            "body": '{"q": 1}',
        },
        "response": response,
    }
    path.write_text(yaml.safe_dump({"interactions": [interaction], "version": 1}))
    return path


def _load(path: Path, redactor: Redactor) -> int:
    with Recorder(str(path), RecordMode.NONE, _Listener(), VirtualClock(), redactor=redactor) as cassette:
        assert len(cassette.data) == 1
    return redactor.report.headers


def test_our_cassette_is_not_scrubbed_again_with_builtin_settings(tmp_path: Path) -> None:
    # x-api-key is on the built-in list: scrubbing on load would count it
    assert _load(_cassette(tmp_path / "ours.yaml", ours=True), Redactor()) == 0
    assert _load(_cassette(tmp_path / "foreign.yaml", ours=False), Redactor()) == 1


def test_a_foreign_cassette_goes_through_the_hooks(tmp_path: Path) -> None:
    redactor = Redactor(headers=["x-team"])
    assert _load(_cassette(tmp_path / "foreign.yaml", ours=False), redactor) == 3


def test_extra_settings_scrub_our_cassettes_too(tmp_path: Path) -> None:
    redactor = Redactor(headers=["x-team"])
    assert not redactor.builtin_only
    assert Redactor().builtin_only
    assert _load(_cassette(tmp_path / "ours.yaml", ours=True), redactor) == 3
