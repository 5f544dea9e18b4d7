"""pytest-agentflows: snapshot and regression testing of multi-agent LLM systems.

Record real model traffic once (``pytest --record-agents``), replay it offline with token/USD/latency
accounting, budgets and deadlines on a virtual clock, and decision-log snapshots.
"""

from __future__ import annotations

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
    CassetteError,
    RoutingError,
    UnrecordedRequestError,
    UsageError,
)
from .faults import Fault, FaultKind, FaultPlan, StalledRequestError
from .flow import Flow
from .patterns import Broadcast, Pipeline, Router, Stage, Supervisor
from .resilience import CircuitBreaker, CircuitOpenError, CircuitState, with_fallback
from .scripted import ScriptedModel, UnscriptedRequestError

__all__ = [
    "AgentResult",
    "AgentflowsError",
    "Broadcast",
    "BroadcastError",
    "BudgetExceeded",
    "BudgetPool",
    "Cassette",
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
