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
_sessions: list[dict[str, set[str]]] = []
"""Per open session: cassette real path -> the tests (node ids) whose ``all`` recording saved it."""


def begin() -> None:
    """Open a recording session: no cassette is rewritten in it yet."""
    with _lock:
        _sessions.append({})


def end() -> None:
    """Close the innermost recording session (a no-op when none is open)."""
    with _lock:
        if _sessions:
            _sessions.pop()


def rewritten(path: str | os.PathLike[str], test: str) -> bool:
    """Whether an ``all`` recording of another test than ``test`` saved ``path`` in the open session.

    The same test recording again (a rerun, or one standalone flow after another) rewrites afresh.
    """
    with _lock:
        if not _sessions:
            return False
        return bool(_sessions[-1].get(os.path.realpath(path), set()) - {test})


def note_rewritten(path: str | os.PathLike[str], test: str) -> None:
    """Remember that the ``all`` recording of ``test`` saved ``path`` (a no-op outside a session)."""
    with _lock:
        if _sessions:
            _sessions[-1].setdefault(os.path.realpath(path), set()).add(test)
