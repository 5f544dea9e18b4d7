"""Deadlines measured on the flow's virtual clock (recorded model latency, never wall time).

A :class:`Deadline` is a fixed point in virtual time: ``start + seconds`` on a
:class:`~pytest_agentflows.VirtualClock`. Because the clock only moves by recorded latency, a deadline
expires at the same point of a flow on every replay, and a test of a timeout is deterministic.
"""

from __future__ import annotations

import math
from typing import Any

from ._context import current_agent
from .clock import RealClock, VirtualClock

__all__ = ["Deadline", "DeadlineExceeded"]

_ROUND = 9  # the clock's own precision (nanoseconds)


def _seconds(value: float) -> str:
    """``120``, ``131.2``, ``0.125``: at most 3 decimals, no trailing zeros."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


class DeadlineExceeded(Exception):
    """The virtual time of a flow (or of an agent in it) went past its deadline.

    Attributes:
        seconds: The deadline, in virtual seconds from its start.
        elapsed: Virtual seconds from the deadline's start to when it was checked.
        agent: Agent that was running when it was checked, or ``None``.
    """

    def __init__(self, seconds: float, elapsed: float, agent: str | None = None) -> None:
        self.seconds = seconds
        self.elapsed = elapsed
        self.agent = agent
        where = f" in agent {agent!r}" if agent else ""
        super().__init__(
            f"deadline of {_seconds(seconds)} s exceeded at {_seconds(elapsed)} s (virtual){where}. "
            "Virtual time counts recorded model latency only (parallel calls overlap). "
            "Fix: raise the deadline (@pytest.mark.agent_deadline(seconds) or Deadline(seconds=...)), "
            "or make the flow do fewer sequential model calls."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.seconds, self.elapsed, self.agent))


class Deadline:
    """A deadline ``seconds`` after ``start`` on a virtual clock.

    Args:
        seconds: Time allowed, in virtual seconds (> 0).
        clock: Clock to measure on. Default: the active flow's clock (virtual seconds) inside a flow
            (``with flow.activate():``, the ``agentflow`` fixture); outside any flow a :class:`RealClock`
            (real monotonic seconds), so the articles' ``Deadline(seconds=120)`` works in production too.
        start: Time the deadline counts from, in seconds of ``clock`` (default: ``clock.now()``).

    Raises:
        ValueError: if ``seconds`` is not a finite number > 0, or ``start`` is not finite.

    The deadline is read on the calling branch's time (:meth:`VirtualClock.now`), so a branch of a
    broadcast sees its own progress. Being exactly at ``expires_at`` is still in time.
    """

    def __init__(
        self, seconds: float, clock: VirtualClock | RealClock | None = None, start: float | None = None
    ) -> None:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise ValueError(f"Deadline(seconds=...) must be a finite number of seconds > 0, got {seconds!r}")
        if clock is None:
            from ._binding import bound_flow

            flow = bound_flow()
            clock = flow.clock if flow is not None else RealClock()
        self.clock: VirtualClock = clock
        if start is None:
            start = self.clock.now()
        elif isinstance(start, bool) or not isinstance(start, (int, float)) or not math.isfinite(start):
            raise ValueError(f"Deadline(start=...) must be a finite virtual time in seconds, got {start!r}")
        self.seconds: float = float(seconds)
        """Time allowed, in virtual seconds."""
        self.start: float = float(start)
        """Virtual time (seconds) the deadline counts from."""

    @property
    def expires_at(self) -> float:
        """Virtual time (seconds) at which the deadline passes: ``start + seconds``."""
        return round(self.start + self.seconds, _ROUND)

    def elapsed(self) -> float:
        """Virtual seconds since ``start`` on the calling branch (may exceed ``seconds``)."""
        return round(self.clock.now() - self.start, _ROUND)

    def expired(self) -> bool:
        """Whether the calling branch's virtual time is past ``expires_at``."""
        return self.clock.now() > self.expires_at

    def remaining(self) -> float:
        """Virtual seconds left before ``expires_at`` (0.0 once expired)."""
        return max(round(self.expires_at - self.clock.now(), _ROUND), 0.0)

    def check(self, agent: str | None = None) -> None:
        """Raise if the deadline has passed.

        Args:
            agent: Agent to name in the error (default: the current agent, see ``Flow.agent``).

        Raises:
            DeadlineExceeded: with the deadline, the elapsed virtual time and the agent.
        """
        if self.expired():
            raise DeadlineExceeded(
                self.seconds, self.elapsed(), agent if agent is not None else current_agent.get()
            )

    def __repr__(self) -> str:
        return (
            f"Deadline(seconds={_seconds(self.seconds)}, start={_seconds(self.start)}, "
            f"remaining={_seconds(self.remaining())})"
        )
