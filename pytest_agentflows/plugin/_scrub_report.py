"""Secrets never reach what pytest prints or reports of a flow test's failure (issue 16, item 4).

pytest's long traceback shows each frame's source and its arguments: a frame of an SDK or of vcrpy holds
the live request, whose ``repr`` is its URL, with a ``?key=`` query parameter or ``user:password@``. The
plugin's own frames are hidden (``__tracebackhide__``); what is left is scrubbed here, after pytest built
the report and before anything prints or serialises it (terminal, ``--junitxml``, pytest-xdist): every
string of the report's ``longrepr`` goes through the flow's redactor
(:meth:`~pytest_agentflows.cassette._redact.Redactor.scrub_report_text`: the secrets the flow saw, secret
environment values, URL credentials, secret query parameters).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

__all__ = ["scrub_report"]


def scrub_report(report: pytest.TestReport, scrub: Callable[[str], str]) -> None:
    """Scrub every string of ``report.longrepr`` in place (a string longrepr is replaced)."""
    longrepr = report.longrepr
    if longrepr is None:
        return
    if isinstance(longrepr, str):
        report.longrepr = scrub(longrepr)
        return
    report.longrepr = _scrub(longrepr, scrub, set())


def _scrub(value: Any, scrub: Callable[[str], str], seen: set[int]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if value is None or isinstance(value, int | float | bool | bytes):
        return value
    if id(value) in seen:
        return value
    seen.add(id(value))
    if isinstance(value, list):
        value[:] = [_scrub(v, scrub, seen) for v in value]
        return value
    if isinstance(value, tuple):
        return type(value)(_scrub(v, scrub, seen) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            old = getattr(value, f.name, None)
            new = _scrub(old, scrub, seen)
            if new is not old:
                object.__setattr__(value, f.name, new)
        return value
    return value
