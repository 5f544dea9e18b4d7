"""The active flow, as the runtime sees it: objects the app creates inside a flow bind to it.

The articles' code builds its own ``BudgetPool``, ``Deadline`` and ``DecisionLog``. While a flow is active
(``with flow.activate():``, which the ``agentflow`` fixture does), :func:`bound_flow` gives it, as a
:class:`FlowBinding`, to this layer: a ``Deadline()`` without a clock runs on the flow clock, a
``DecisionLog()`` also records into the flow's log, a pattern built without ``flow=`` runs in it. The flow
module (a higher layer) sets it with :func:`bind`; the runtime never imports the flow.

The binding is a context variable (it follows asyncio tasks and context-copying threads) with a
process-wide fallback, the innermost active flow, for threads started without the flow's context.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from ._context import IdSource, use_ids

if TYPE_CHECKING:
    from .budget import BudgetPool
    from .clock import VirtualClock
    from .deadline import Deadline
    from .decisions import DecisionLog

__all__ = ["FlowBinding", "bind", "bound_flow"]


class FlowBinding(Protocol):
    """What app-created runtime objects use of the active flow (:class:`pytest_agentflows.Flow` is one)."""

    @property
    def clock(self) -> VirtualClock:
        """The flow clock (virtual seconds)."""

    @property
    def log(self) -> DecisionLog:
        """The flow's decision log."""

    @property
    def budget(self) -> BudgetPool:
        """The flow's budget pool."""

    @property
    def deadline(self) -> Deadline | None:
        """The flow's deadline, or ``None``."""

    @property
    def ids(self) -> IdSource:
        """The flow's deterministic id source."""

    @property
    def real_time(self) -> bool:
        """Whether model calls take real time (no cassette and no script): nothing to replay virtually."""


_bound: contextvars.ContextVar[FlowBinding | None] = contextvars.ContextVar("agentflows_flow", default=None)
_stack: list[FlowBinding] = []
_lock = threading.Lock()


def bound_flow() -> FlowBinding | None:
    """The active flow of the calling context (else the innermost active one in the process), or ``None``."""
    flow = _bound.get()
    if flow is not None:
        return flow
    with _lock:
        return _stack[-1] if _stack else None


@contextmanager
def bind(flow: FlowBinding) -> Iterator[None]:
    """Make ``flow`` the active flow (and its id source the active one) while the block runs."""
    token = _bound.set(flow)
    with _lock:
        _stack.append(flow)
    try:
        with use_ids(flow.ids):
            yield
    finally:
        with _lock:
            _stack.remove(flow)
        try:
            _bound.reset(token)
        except ValueError:  # left in another context than entered
            _bound.set(None)
