"""What every integration shares: agent runs that name the calls inside them, and processor classes.

A framework reports an agent run's start and end through its own callback API, in the context (task or
thread) that runs the agent. :class:`AgentRuns` sets the flow's agent name there (so every model call
made inside is that agent's) and records the ``agent_run`` decision; at the end it puts the previous name
back.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Hashable
from typing import TYPE_CHECKING

from ..runtime._context import current_agent

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["AgentRuns", "subclass_of"]

_CLASSES: dict[tuple[int, type], type] = {}


def subclass_of(base: type, mixin: type, name: str) -> type:
    """``type(name, (mixin, base), {})``, made once per ``base`` (a framework's processor interface)."""
    key = (id(base), mixin)
    cls = _CLASSES.get(key)
    if cls is None:
        cls = _CLASSES[key] = type(name, (mixin, base), {})
    return cls


class AgentRuns:
    """The open agent runs of one flow, keyed by the framework's span id.

    Args:
        flow: The flow whose log gets the ``agent_run`` decisions.
    """

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self._lock = threading.Lock()
        self._open: dict[Hashable, tuple[contextvars.Token[str | None], str | None]] = {}

    def start(self, key: Hashable, agent: str, parent: str | None) -> None:
        """An agent run began in the calling context: name its calls ``agent``, record ``agent_run``."""
        before = current_agent.get()
        token = current_agent.set(agent)
        with self._lock:
            self._open[key] = (token, before)
        self.flow.log.record("agent_run", agent=agent, parent_agent=parent)

    def end(self, key: Hashable) -> bool:
        """The run ``key`` ended: the agent name in effect before it is back. ``False`` for an unknown key."""
        with self._lock:
            entry = self._open.pop(key, None)
        if entry is None:
            return False
        token, before = entry
        try:
            current_agent.reset(token)
        except ValueError:  # ended in another context than it started: put the name back as it was
            current_agent.set(before)
        return True
