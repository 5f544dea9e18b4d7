"""Figures for docs/reliability.md: each reliability test reports what it tried through ``figures``.

``pytest tests/stress --stress --stress-figures=figures.json`` runs the heavy versions and writes every
figure; the terminal summary prints them as a table. Without ``--stress`` the light versions of the same
checks run in the normal suite and still report (smaller) figures.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_FIGURES: dict[str, dict[str, Any]] = {}


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``figures(**values)``: record named figures (ints, floats, strings) under the current test's name."""

    def record(**values: Any) -> None:
        _FIGURES.setdefault(request.node.nodeid, {}).update(values)

    return record


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: hand the figures to the controller
        workeroutput["agentflows_stress_figures"] = json.dumps(_FIGURES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    raw = getattr(node, "workeroutput", {}).get("agentflows_stress_figures")
    if raw:
        for nodeid, values in json.loads(raw).items():
            _FIGURES.setdefault(nodeid, {}).update(values)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for nodeid, values in sorted(_FIGURES.items()):
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        terminalreporter.write_line(f"{nodeid}: {shown}")
    target = config.getoption("--stress-figures")
    if target:
        path = Path(target)
        fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as fh:
            json.dump(_FIGURES, fh, indent=2, sort_keys=True)
        os.replace(tmp, path)
