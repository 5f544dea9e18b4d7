"""pytest-agentflows: snapshot and regression testing of multi-agent LLM systems.

Record real model traffic once (``pytest --record-agents``), replay it offline with token/USD/latency
accounting, budgets and deadlines on a virtual clock, and decision-log snapshots.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cassette._load import Cassette, Interaction, load_cassette
    from .cassette._modes import RecordMode
    from .errors import (
        AgentflowsError,
        BroadcastError,
        CassetteConflictError,
        CassetteError,
        CassetteSaveError,
        EventLoopError,
        HandoffError,
        PlanError,
        RoutingError,
        SnapshotFileError,
        UnrecordedRequestError,
        UsageError,
    )
    from .flow import Flow
    from .patterns import (
        Broadcast,
        Consensus,
        Event,
        EventBus,
        HandoffContract,
        Orchestrator,
        Pipeline,
        Router,
        Span,
        Stage,
        Supervisor,
        Task,
        Tracer,
        handoff,
    )
    from .patterns.resilience import CircuitBreaker, CircuitOpenError, CircuitState, with_fallback
    from .runtime._models import AgentResult, Decision, Message, ModelCall, ToolCall, Usage
    from .runtime.agents import agent, current_agent
    from .runtime.budget import BudgetExceeded, BudgetPool, PriceUnknownError, Reservation
    from .runtime.clock import RealClock, VirtualClock
    from .runtime.deadline import Deadline, DeadlineExceeded
    from .runtime.decisions import DecisionLog
    from .testing.faults import Fault, FaultKind, FaultPlan, StalledRequestError
    from .testing.scripted import ScriptedModel, UnscriptedRequestError

# Public name -> the module defining it. Imported on first access (PEP 562), so that loading the pytest
# plugin (``pytest_agentflows.plugin``) costs nothing for sessions that never use a flow.
_EXPORTS: dict[str, str] = {
    "AgentflowsError": ".errors",
    "AgentResult": ".runtime._models",
    "agent": ".runtime.agents",
    "current_agent": ".runtime.agents",
    "Broadcast": ".patterns",
    "BroadcastError": ".errors",
    "BudgetExceeded": ".runtime.budget",
    "BudgetPool": ".runtime.budget",
    "Cassette": ".cassette._load",
    "CassetteConflictError": ".errors",
    "CassetteSaveError": ".errors",
    "CassetteError": ".errors",
    "CircuitBreaker": ".patterns.resilience",
    "CircuitOpenError": ".patterns.resilience",
    "CircuitState": ".patterns.resilience",
    "Consensus": ".patterns",
    "Deadline": ".runtime.deadline",
    "DeadlineExceeded": ".runtime.deadline",
    "Decision": ".runtime._models",
    "DecisionLog": ".runtime.decisions",
    "Event": ".patterns",
    "EventBus": ".patterns",
    "EventLoopError": ".errors",
    "Fault": ".testing.faults",
    "FaultKind": ".testing.faults",
    "FaultPlan": ".testing.faults",
    "Flow": ".flow",
    "handoff": ".patterns",
    "HandoffContract": ".patterns",
    "HandoffError": ".errors",
    "Interaction": ".cassette._load",
    "load_cassette": ".cassette._load",
    "Message": ".runtime._models",
    "ModelCall": ".runtime._models",
    "Orchestrator": ".patterns",
    "Pipeline": ".patterns",
    "PlanError": ".errors",
    "PriceUnknownError": ".runtime.budget",
    "RealClock": ".runtime.clock",
    "RecordMode": ".cassette._modes",
    "Reservation": ".runtime.budget",
    "Router": ".patterns",
    "RoutingError": ".errors",
    "ScriptedModel": ".testing.scripted",
    "SnapshotFileError": ".errors",
    "Span": ".patterns",
    "Stage": ".patterns",
    "StalledRequestError": ".testing.faults",
    "Supervisor": ".patterns",
    "Task": ".patterns",
    "ToolCall": ".runtime._models",
    "Tracer": ".patterns",
    "UnrecordedRequestError": ".errors",
    "UnscriptedRequestError": ".testing.scripted",
    "Usage": ".runtime._models",
    "UsageError": ".errors",
    "VirtualClock": ".runtime.clock",
    "with_fallback": ".patterns.resilience",
}

__all__ = [
    "AgentResult",
    "AgentflowsError",
    "Broadcast",
    "BroadcastError",
    "BudgetExceeded",
    "BudgetPool",
    "Cassette",
    "CassetteConflictError",
    "CassetteError",
    "CassetteSaveError",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "Consensus",
    "Deadline",
    "DeadlineExceeded",
    "Decision",
    "DecisionLog",
    "Event",
    "EventBus",
    "EventLoopError",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "Flow",
    "HandoffContract",
    "HandoffError",
    "Interaction",
    "Message",
    "ModelCall",
    "Orchestrator",
    "Pipeline",
    "PlanError",
    "PriceUnknownError",
    "RealClock",
    "RecordMode",
    "Reservation",
    "Router",
    "RoutingError",
    "ScriptedModel",
    "SnapshotFileError",
    "Span",
    "Stage",
    "StalledRequestError",
    "Supervisor",
    "Task",
    "ToolCall",
    "Tracer",
    "UnrecordedRequestError",
    "UnscriptedRequestError",
    "Usage",
    "UsageError",
    "VirtualClock",
    "agent",
    "current_agent",
    "handoff",
    "load_cassette",
    "with_fallback",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_agentflows' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
