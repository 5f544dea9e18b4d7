"""Naming agents without a fixture: :func:`agent` and :func:`current_agent`, for app code and adapters."""

from __future__ import annotations

from ._context import AgentScope
from ._context import current_agent as _agent_var

__all__ = ["agent", "current_agent"]


def agent(name: str) -> AgentScope:
    """Attribute the model calls made inside to agent ``name``: the fixture-free form of ``Flow.agent``.

    Use it as a context manager (``with agent("writer"): ...``, ``async with``) or a decorator of a sync or
    async function (``@agent("writer")``). The name follows asyncio tasks and ``asyncio.to_thread`` calls
    started inside, and threads started inside while a flow is active. Outside a flow it only sets the name
    (nothing is recorded), so app code can keep it in production.

    Args:
        name: The agent's name (a non-empty ``str``), as it appears in the ledger, decisions and report.

    Returns:
        An :class:`~pytest_agentflows.runtime._context.AgentScope`.

    Raises:
        ValueError: for an empty or non-``str`` name.
    """
    return AgentScope(name)


def current_agent() -> str | None:
    """The agent in effect for the caller (the innermost :func:`agent` / ``Flow.agent``), or ``None``."""
    return _agent_var.get()
