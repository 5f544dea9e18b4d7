"""OpenTelemetry GenAI spans: agent runs and tool runs of any instrumented framework.

Frameworks instrumented with the OpenTelemetry GenAI semantic conventions (pydantic-ai's
``instrument=True``, smolagents and others through OpenInference, ...) open an ``invoke_agent`` span per
agent run and an ``execute_tool`` span per tool run, with ``gen_ai.agent.name`` / ``gen_ai.tool.name``
attributes. While a flow is active, a span processor on the global SDK ``TracerProvider`` (set by
``logfire.configure()`` or ``opentelemetry.trace.set_tracer_provider(TracerProvider())``) turns them into:

- the agent of every model call made inside an agent run span (the span's ``gen_ai.agent.name``), and an
  ``agent_run`` decision (``agent``, ``parent_agent``: the enclosing agent run's agent);
- a ``tool_run`` decision per tool span (``agent``, ``tool``, ``error``: the span's error description).

With no SDK tracer provider (OpenTelemetry's default no-op one), spans are not recorded and nothing is
named: configure one in a fixture or ``conftest.py``. The processor is removed when the flow ends.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..runtime._context import current_agent
from ._runs import AgentRuns, subclass_of

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["install"]

AGENT_NAME = "gen_ai.agent.name"
OPERATION = "gen_ai.operation.name"
TOOL_NAME = "gen_ai.tool.name"


def install(flow: Flow) -> Callable[[], None] | None:
    """Add a span processor feeding ``flow`` to the global SDK tracer provider; returns its removal.

    Returns ``None`` when the global tracer provider is not an SDK one (nothing would reach a processor).
    """
    trace = sys.modules.get("opentelemetry.trace")
    sdk = sys.modules.get("opentelemetry.sdk.trace")
    if trace is None or sdk is None:
        return None
    provider = trace.get_tracer_provider()
    if not isinstance(provider, sdk.TracerProvider):
        return None
    processor = subclass_of(sdk.SpanProcessor, _Processor, "AgentflowsSpanProcessor")(flow)
    provider.add_span_processor(processor)

    def uninstall() -> None:
        processor.active = False
        multi: Any = getattr(provider, "_active_span_processor", None)
        lock = getattr(multi, "_lock", None)
        if isinstance(getattr(multi, "_span_processors", None), tuple) and lock is not None:
            with lock:  # no public removal: drop ours, keep the others
                multi._span_processors = tuple(p for p in multi._span_processors if p is not processor)

    return uninstall


class _Processor:
    """Turns GenAI spans into agent names and decisions of one flow."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.active = True
        self._runs = AgentRuns(flow)

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if not self.active:
            return
        attributes = span.attributes or {}
        name = attributes.get(AGENT_NAME)
        if attributes.get(OPERATION) == "invoke_agent" and isinstance(name, str) and name:
            self._runs.start(span.context.span_id, name, parent=current_agent.get())

    def on_end(self, span: Any) -> None:
        if not self.active:
            return
        if self._runs.end(span.context.span_id):
            return
        attributes = span.attributes or {}
        tool = attributes.get(TOOL_NAME)
        if attributes.get(OPERATION) == "execute_tool" and isinstance(tool, str):
            status = span.status
            error = status.description if not status.is_ok and status.description else None
            if error is None and not status.is_ok:
                error = "error"
            agent = attributes.get(AGENT_NAME) or current_agent.get()
            self.flow.log.record("tool_run", agent=agent, tool=tool, error=error)

    def shutdown(self) -> None:
        self.active = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
