"""Coordination patterns, instrumented: router, pipeline, broadcast, supervisor, orchestrator, consensus,
event bus, handoff contracts and spans.

Each runs agents inside a :class:`~pytest_agentflows.Flow` (or a standalone runtime): it names the agent of
every model call, draws from the budget, honours deadlines on the virtual clock and records decisions.
Importable without pytest.
"""

from __future__ import annotations

from ._base import Agent, Pattern
from .broadcast import Broadcast
from .consensus import Consensus
from .events import Event, EventBus
from .handoff import HandoffContract, handoff
from .orchestrator import Orchestrator, Task
from .pipeline import Pipeline, Stage
from .router import Router
from .supervisor import Supervisor
from .tracer import Span, Tracer

__all__ = [
    "Agent",
    "Broadcast",
    "Consensus",
    "Event",
    "EventBus",
    "HandoffContract",
    "Orchestrator",
    "Pattern",
    "Pipeline",
    "Router",
    "Span",
    "Stage",
    "Supervisor",
    "Task",
    "Tracer",
    "handoff",
]
