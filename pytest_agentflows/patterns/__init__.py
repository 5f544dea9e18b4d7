"""The four coordination patterns, instrumented: router, pipeline, broadcast, supervisor.

Each runs agents inside a :class:`~pytest_agentflows.Flow` (or a standalone runtime): it names the agent of
every model call, draws from the budget, honours deadlines on the virtual clock and records decisions.
Importable without pytest.
"""

from __future__ import annotations

from ._base import Agent, Pattern
from .broadcast import Broadcast
from .pipeline import Pipeline, Stage
from .router import Router
from .supervisor import Supervisor

__all__ = ["Agent", "Broadcast", "Pattern", "Pipeline", "Router", "Stage", "Supervisor"]
