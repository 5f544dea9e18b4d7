"""CrewAI: agent roles, delegation and tool usage, from CrewAI's own event stream.

CrewAI emits an event for every agent execution, tool usage and LLM call
(``crewai.events.crewai_event_bus``). Its bus runs ordinary handlers later, on a thread pool, so they can
neither name the model calls of the thread that is running the agent nor keep the flow's decisions in
order. This adapter uses the bus's *stream sinks* instead (``crewai.events.stream_context``, the API
CrewAI's own ``stream=True`` is built on): a sink is scoped to a context (a context variable, so it follows
threads and tasks started inside the flow, and no other flow sees it), and the bus calls it synchronously,
in the thread that emits the event, before any handler. While a flow is active:

- an *agent execution* (``AgentExecutionStartedEvent``, one per task an agent executes, and per
  ``Agent.kickoff()`` through ``LiteAgentExecutionStartedEvent``) names the agent of every model call
  made until it completes or fails (the agent's ``role``), also in the threads CrewAI runs its LLM calls
  and tools in (``asyncio.to_thread``, thread pools: they run in copies of that context). It is an
  ``agent_run`` decision, whose ``parent_agent`` is the agent whose run was open around it (the
  delegating agent), else ``None``;
- an agent execution started by CrewAI's delegation tools ("Delegate work to coworker", "Ask question
  to coworker", which the manager agent of a hierarchical crew uses too) is first a ``handoff`` decision
  (``from_agent``: the delegating agent, ``to_agent``: the coworker's role);
- a *tool usage* that ended (``ToolUsageFinishedEvent`` or ``ToolUsageErrorEvent``) is a ``tool_run``
  decision (``agent``, ``tool``: CrewAI's tool name, ``error``: the error, or the failure a tool
  reported, else ``None``).

When the flow ends the sink is removed, the bus's pending handlers are waited for and CrewAI's anonymous
telemetry buffer is exported while telemetry is still answered locally (see
:mod:`pytest_agentflows.cassette._telemetry`), so nothing is left to post, for real, when the process
exits. CrewAI's telemetry stays on (``CREWAI_DISABLE_TELEMETRY`` / ``OTEL_SDK_DISABLED`` are the user's).

An ``LLM.call()`` that your own code makes outside any agent execution is not an agent's: name it with
``pytest_agentflows.agent(...)``.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from ..runtime._context import current_agent
from ._runs import AgentRuns

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["DELEGATION_TOOLS", "install"]

DELEGATION_TOOLS: frozenset[str] = frozenset(
    {
        "Delegate work to coworker",
        "Ask question to coworker",
        "delegate_work_to_coworker",
        "ask_question_to_coworker",
    }
)
"""CrewAI's delegation tools, by their name and their sanitised name: an agent run inside one is a handoff."""

FLUSH_SECONDS = 5.0
"""How long, at most, the flow's end waits for the event bus's pending handlers (real seconds)."""

_Delegation = tuple[object, str | None, Any]
_delegating: contextvars.ContextVar[_Delegation | None] = contextvars.ContextVar(
    "agentflows_crewai_delegating", default=None
)
"""While a delegation tool runs in this context: (the sink, the delegating agent, the value before)."""


def install(flow: Flow) -> Callable[[], None] | None:
    """Add a stream sink feeding ``flow`` to CrewAI's event bus, for the calling context and its children.

    Returns the function that removes it, or ``None`` when the imported ``crewai`` has no stream sinks
    (CrewAI before 1.x, or another package of that name).
    """
    stream: Any = sys.modules.get("crewai.events.stream_context")  # loaded by CrewAI's event bus
    if stream is None or not callable(getattr(stream, "add_stream_sink", None)):
        return None
    sink = _Sink(flow)
    token = stream.add_stream_sink(sink)

    def uninstall() -> None:
        sink.active = False
        try:
            stream.reset_stream_sinks(token)
        except ValueError:  # ended in another context than it started: drop ours, keep the others
            sinks = stream._stream_sinks
            sinks.set(tuple(s for s in sinks.get() if s is not sink))
        sink.close()
        _flush_crewai()

    return uninstall


def _flush_crewai() -> None:
    """Run the bus's pending handlers, then export CrewAI's telemetry buffer (answered locally)."""
    bus_module = sys.modules.get("crewai.events.event_bus")
    bus = getattr(bus_module, "crewai_event_bus", None)
    if bus is not None:
        with contextlib.suppress(Exception):
            bus.flush(timeout=FLUSH_SECONDS)
    telemetry_module = sys.modules.get("crewai.telemetry.telemetry")
    telemetry = getattr(getattr(telemetry_module, "Telemetry", None), "_instance", None)
    provider = getattr(telemetry, "provider", None)
    if getattr(telemetry, "ready", False) and provider is not None:
        with contextlib.suppress(Exception):
            provider.force_flush()


class _Sink:
    """Turns CrewAI events into agent names and decisions of one flow. Called as ``sink(source, event)``."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.active = True
        self._runs = AgentRuns(flow)
        self._lock = threading.Lock()
        self._open: set[Hashable] = set()

    def __call__(self, source: Any, event: Any) -> None:
        if not self.active:
            return
        kind = getattr(event, "type", None)
        if kind == "agent_execution_started":
            self._started(_run_key(event), _role(event.agent))
        elif kind == "lite_agent_execution_started":
            self._started(_lite_key(event), _lite_role(event))
        elif kind in ("agent_execution_completed", "agent_execution_error"):
            self._ended(_run_key(event))
        elif kind in ("lite_agent_execution_completed", "lite_agent_execution_error"):
            self._ended(_lite_key(event))
        elif kind == "tool_usage_started":
            self._tool_started(event)
        elif kind in ("tool_usage_finished", "tool_usage_error"):
            self._tool_ended(event, kind)

    def close(self) -> None:
        """The flow ended: runs still open (an exception CrewAI let through) are closed."""
        with self._lock:
            keys, self._open = list(self._open), set()
        for key in keys:
            self._runs.end(key)

    # -- agent runs ---------------------------------------------------------------------------------------
    def _started(self, key: Hashable, agent: str | None) -> None:
        if agent is None:
            return
        parent = current_agent.get()
        delegation = _delegating.get()
        if delegation is not None and delegation[0] is self:
            source = delegation[1] if delegation[1] is not None else parent
            self.flow.log.record("handoff", agent=source, from_agent=source, to_agent=agent)
            parent = source
        with self._lock:
            self._open.add(key)
        self._runs.start(key, agent, parent)

    def _ended(self, key: Hashable) -> None:
        with self._lock:
            self._open.discard(key)
        self._runs.end(key)

    # -- tools --------------------------------------------------------------------------------------------
    def _tool_started(self, event: Any) -> None:
        if str(event.tool_name) in DELEGATION_TOOLS:  # the coworker's run starts in this context
            _delegating.set((self, _agent_of(event), _delegating.get()))

    def _tool_ended(self, event: Any, kind: str) -> None:
        tool = str(event.tool_name)
        delegation = _delegating.get()
        if tool in DELEGATION_TOOLS and delegation is not None and delegation[0] is self:
            _delegating.set(delegation[2])
        if kind == "tool_usage_error":
            error: str | None = str(event.error)
        else:
            failure = getattr(event, "failure", None)
            error = str(failure.message) if failure is not None else None
        self.flow.log.record("tool_run", agent=_agent_of(event), tool=tool, error=error)


def _role(agent: Any) -> str | None:
    role = getattr(agent, "role", None)
    return str(role).strip() or None if role is not None else None


def _lite_role(event: Any) -> str | None:
    info = getattr(event, "agent_info", None)
    role = info.get("role") if isinstance(info, dict) else None
    return str(role).strip() or None if role is not None else None


def _run_key(event: Any) -> Hashable:
    return ("task", id(event.agent), id(event.task))


def _lite_key(event: Any) -> Hashable:
    info = getattr(event, "agent_info", None)
    ident = info.get("id") if isinstance(info, dict) else None
    return ("lite", str(ident) if ident is not None else _lite_role(event))


def _agent_of(event: Any) -> str | None:
    role = getattr(event, "agent_role", None)
    if isinstance(role, str) and role.strip():
        return role.strip()
    return current_agent.get()
