"""openai-agents: its agent runs, handoffs, function tools and guardrails, from its tracing processor API.

While a flow is active, a :class:`agents.tracing.TracingProcessor` is registered
(``agents.add_trace_processor``). The SDK calls it synchronously, in the task that runs the agent, when a
span starts and ends, so:

- an *agent span* (``AgentSpanData``) names the agent of every model call made until it ends (its name
  is the ``Agent(name=...)``); it is also an ``agent_run`` decision with the agent that handed off to it
  as ``parent_agent``;
- a *handoff span* is a ``handoff`` decision (``from_agent``, ``to_agent``);
- a *function span* (a function tool ran) is a ``tool_run`` decision (``agent``, ``tool``, ``error``);
- a *guardrail span* is a ``guardrail`` decision (``agent``, ``guardrail``, ``triggered``).

Streamed runs (``Runner.run_streamed``) emit the same spans. Tracing must be on (it is by default;
``OPENAI_AGENTS_DISABLE_TRACING=1`` or ``set_tracing_disabled(True)`` turn the spans, and so the names,
off). The processor is removed when the flow ends, after the SDK's exporters flushed the flow's spans
(answered locally, see :mod:`pytest_agentflows.cassette._telemetry`), so nothing is left for the
exporter to post after the session.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..runtime._context import current_agent
from ._runs import AgentRuns, subclass_of

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["install"]


def install(flow: Flow) -> Callable[[], None] | None:
    """Register a tracing processor feeding ``flow``; returns the function that removes it.

    Returns ``None`` when the imported ``agents`` module is not openai-agents (another package of that
    name) or has no tracing processor API.
    """
    agents = sys.modules.get("agents")
    tracing = sys.modules.get("agents.tracing")
    if agents is None or tracing is None or not hasattr(tracing, "TracingProcessor"):
        return None
    processor = subclass_of(tracing.TracingProcessor, _Processor, "AgentflowsTracingProcessor")(flow)
    tracing.add_trace_processor(processor)

    def uninstall() -> None:
        processor.active = False
        provider = tracing.get_trace_provider()
        # Export the flow's spans now, while telemetry is still answered locally: left for the exporter's
        # exit-time flush, they would be posted after the session, for real, with retries.
        with contextlib.suppress(Exception):
            provider.force_flush()
        multi = getattr(provider, "_multi_processor", None)
        current = getattr(multi, "_processors", None)
        if isinstance(current, tuple):  # no public getter: keep every other processor, drop ours
            tracing.set_trace_processors([p for p in current if p is not processor])

    return uninstall


class _Processor:
    """Turns openai-agents spans into agent names and decisions of one flow."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.active = True
        self._lock = threading.Lock()
        self._runs = AgentRuns(flow)
        self._last_handoff: dict[str, str] = {}
        """trace id -> the agent the last handoff went from (the ``parent_agent`` of the next agent run)."""

    # -- the TracingProcessor API ------------------------------------------------------------------------
    def on_trace_start(self, trace: Any) -> None:
        return None

    def on_trace_end(self, trace: Any) -> None:
        with self._lock:
            self._last_handoff.pop(getattr(trace, "trace_id", ""), None)

    def on_span_start(self, span: Any) -> None:
        if not self.active:
            return
        data = span.span_data
        if data.type == "agent":
            self._agent_started(span, str(data.name))

    def on_span_end(self, span: Any) -> None:
        if not self.active:
            return
        data = span.span_data
        kind = data.type
        if kind == "agent":
            self._agent_ended(span)
        elif kind == "handoff":
            source, target = data.from_agent, data.to_agent
            with self._lock:
                if source is not None:
                    self._last_handoff[span.trace_id] = str(source)
            self.flow.log.record("handoff", agent=source, from_agent=source, to_agent=target)
        elif kind == "function":
            error = span.error
            message = error.get("message") if isinstance(error, dict) else None
            self.flow.log.record("tool_run", agent=current_agent.get(), tool=data.name, error=message)
        elif kind == "guardrail":
            self.flow.log.record(
                "guardrail", agent=current_agent.get(), guardrail=data.name, triggered=bool(data.triggered)
            )

    def shutdown(self, timeout: float | None = None) -> None:
        self.active = False

    def force_flush(self) -> None:
        return None

    # -- agent runs ---------------------------------------------------------------------------------------
    def _agent_started(self, span: Any, name: str) -> None:
        with self._lock:
            parent = self._last_handoff.pop(span.trace_id, None)
        if parent is None:  # an agent run inside another agent (agents as tools, nested Runner.run)
            parent = current_agent.get()
        self._runs.start(span.span_id, name, parent)

    def _agent_ended(self, span: Any) -> None:
        self._runs.end(span.span_id)
