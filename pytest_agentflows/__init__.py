"""pytest-agentflows: snapshot and regression testing of multi-agent LLM systems.

Record real model traffic once (``pytest --record-agents``), replay it offline with token/USD/latency
accounting, budgets and deadlines on a virtual clock, and decision-log snapshots.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import AgentResult, Decision, ModelCall, Usage
    from .budget import BudgetExceeded, BudgetPool, PriceUnknownError, Reservation
    from .cassette._load import Cassette, Interaction, load_cassette
    from .cassette._modes import RecordMode
    from .clock import VirtualClock
    from .deadline import Deadline, DeadlineExceeded
    from .decisions import DecisionLog
    from .errors import (
        AgentflowsError,
        BroadcastError,
        CassetteConflictError,
        CassetteError,
        RoutingError,
        SnapshotFileError,
        UnrecordedRequestError,
        UsageError,
    )
    from .faults import Fault, FaultKind, FaultPlan, StalledRequestError
    from .flow import Flow
    from .patterns import Broadcast, Pipeline, Router, Stage, Supervisor
    from .resilience import CircuitBreaker, CircuitOpenError, CircuitState, with_fallback
    from .scripted import ScriptedModel, UnscriptedRequestError

# Public name -> the module defining it. Imported on first access (PEP 562), so that loading the pytest
# plugin (``pytest_agentflows.plugin``) costs nothing for sessions that never use a flow.
_EXPORTS: dict[str, str] = {
    "AgentflowsError": ".errors",
    "AgentResult": "._models",
    "Broadcast": ".patterns",
    "BroadcastError": ".errors",
    "BudgetExceeded": ".budget",
    "BudgetPool": ".budget",
    "Cassette": ".cassette._load",
    "CassetteConflictError": ".errors",
    "CassetteError": ".errors",
    "CircuitBreaker": ".resilience",
    "CircuitOpenError": ".resilience",
    "CircuitState": ".resilience",
    "Deadline": ".deadline",
    "DeadlineExceeded": ".deadline",
    "Decision": "._models",
    "DecisionLog": ".decisions",
    "Fault": ".faults",
    "FaultKind": ".faults",
    "FaultPlan": ".faults",
    "Flow": ".flow",
    "Interaction": ".cassette._load",
    "load_cassette": ".cassette._load",
    "ModelCall": "._models",
    "Pipeline": ".patterns",
    "PriceUnknownError": ".budget",
    "RecordMode": ".cassette._modes",
    "Reservation": ".budget",
    "Router": ".patterns",
    "RoutingError": ".errors",
    "SnapshotFileError": ".errors",
    "ScriptedModel": ".scripted",
    "Stage": ".patterns",
    "StalledRequestError": ".faults",
    "Supervisor": ".patterns",
    "UnrecordedRequestError": ".errors",
    "UnscriptedRequestError": ".scripted",
    "Usage": "._models",
    "UsageError": ".errors",
    "VirtualClock": ".clock",
    "with_fallback": ".resilience",
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
