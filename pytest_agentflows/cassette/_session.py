"""Which cassettes the running recording session has rewritten (``--record-agents=all``).

A cassette several tests share is rewritten by the first of them in a session and merged by the later
ones (see ``docs/recording.md``, "Shared cassettes"). The pytest plugin opens a session at its start and
closes it at its end; outside one (a :class:`~pytest_agentflows.Flow` used on its own), every ``all`` use of
a cassette rewrites it afresh. Sessions nest (pytester runs a session inside a session): a stack.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_sessions: list[set[str]] = []


def begin() -> None:
    """Open a recording session: no cassette is rewritten in it yet."""
    with _lock:
        _sessions.append(set())


def end() -> None:
    """Close the innermost recording session (a no-op when none is open)."""
    with _lock:
        if _sessions:
            _sessions.pop()


def rewritten(path: str | os.PathLike[str]) -> bool:
    """Whether an earlier ``all`` recording of the open session saved ``path``."""
    with _lock:
        return bool(_sessions) and os.path.realpath(path) in _sessions[-1]


def note_rewritten(path: str | os.PathLike[str]) -> None:
    """Remember that an ``all`` recording saved ``path`` (a no-op outside a session)."""
    with _lock:
        if _sessions:
            _sessions[-1].add(os.path.realpath(path))
