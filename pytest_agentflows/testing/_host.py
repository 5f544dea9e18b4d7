"""What the test doubles need of a flow: the :class:`FlowHost` protocol, owned by this layer.

Faults, scripted models and the transport hooks that serve them work on any object with these members;
:class:`pytest_agentflows.Flow` is one. So this layer never imports the flow module above it, and the
flow imports the doubles, not the other way round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..cassette._recorder import Exchange
    from ..cassette._redact import Redactor
    from ..errors import UnrecordedRequestError
    from ..runtime.clock import VirtualClock
    from ..runtime.decisions import DecisionLog
    from ._transport import FlowTransport
    from .faults import FaultPlan

__all__ = ["FlowHost"]


class FlowHost(Protocol):
    """The part of a flow that faults, scripted models and transport hooks use."""

    @property
    def test_id(self) -> str:
        """Name used in error messages (the pytest node id)."""

    @property
    def clock(self) -> VirtualClock:
        """The flow clock: injected delays and scripted latencies advance it."""

    @property
    def log(self) -> DecisionLog:
        """The decision log (``fault_injected`` decisions)."""

    @property
    def redactor(self) -> Redactor:
        """Secret scrubbing for URLs shown in error messages."""

    @property
    def faults(self) -> FaultPlan:
        """The flow's fault plan, consulted for every model request."""

    @property
    def active(self) -> bool:
        """Whether the flow is active (inside ``with flow.activate():``)."""

    def effective_latency(self, latency_s: float) -> float:
        """The virtual seconds a call of ``latency_s`` takes under the flow's latency mode."""

    def on_exchange(self, exchange: Exchange) -> None:
        """Account one answered request: clock, ledger, budget, decision log."""

    def check_request(self) -> None:
        """Raise ``BudgetExceeded`` before a model request is sent when a budget cap is already spent."""

    def transport_hooks(self) -> FlowTransport:
        """The flow's transport hooks, installed on first use (the flow must be active)."""

    def record_miss(self, error: UnrecordedRequestError) -> None:
        """Note a request nothing answered: the flow's test fails at teardown even if the code caught it."""
