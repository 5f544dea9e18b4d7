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
        RoutingError,
        SnapshotFileError,
        UnrecordedRequestError,
        UsageError,
    )
    from .flow import Flow
    from .patterns import Broadcast, Pipeline, Router, Stage, Supervisor
    from .patterns.resilience import CircuitBreaker, CircuitOpenError, CircuitState, with_fallback
    from .runtime._models import AgentResult, Decision, ModelCall, Usage
    from .runtime.agents import agent, current_agent
    from .runtime.budget import BudgetExceeded, BudgetPool, PriceUnknownError, Reservation
    from .runtime.clock import VirtualClock
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
    "Deadline": ".runtime.deadline",
    "DeadlineExceeded": ".runtime.deadline",
    "Decision": ".runtime._models",
    "DecisionLog": ".runtime.decisions",
    "Fault": ".testing.faults",
    "FaultKind": ".testing.faults",
    "FaultPlan": ".testing.faults",
    "Flow": ".flow",
    "Interaction": ".cassette._load",
    "load_cassette": ".cassette._load",
    "ModelCall": ".runtime._models",
    "Pipeline": ".patterns",
    "PriceUnknownError": ".runtime.budget",
    "RecordMode": ".cassette._modes",
    "Reservation": ".runtime.budget",
    "Router": ".patterns",
    "RoutingError": ".errors",
    "SnapshotFileError": ".errors",
    "ScriptedModel": ".testing.scripted",
    "Stage": ".patterns",
    "StalledRequestError": ".testing.faults",
    "Supervisor": ".patterns",
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
    "Deadline",
    "DeadlineExceeded",
    "Decision",
    "DecisionLog",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "Flow",
    "Interaction",
    "ModelCall",
    "Pipeline",
    "PriceUnknownError",
    "RecordMode",
    "Reservation",
    "Router",
    "RoutingError",
    "ScriptedModel",
    "SnapshotFileError",
    "Stage",
    "StalledRequestError",
    "Supervisor",
    "UnrecordedRequestError",
    "UnscriptedRequestError",
    "Usage",
    "UsageError",
    "VirtualClock",
    "agent",
    "current_agent",
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
