"""Supervisor: a worker drafts, a reviewer reviews, the worker revises until approval, a cap or a deadline."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..runtime._models import AgentResult
from ..runtime.deadline import DeadlineExceeded
from ._base import Agent, Call, Pattern, Steps, StepTimeout, add_usage

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["Supervisor", "review_input", "revision_input"]


def _approved(review: str) -> bool:
    return "APPROVED" in review


def review_input(task: str, draft: str, *, revised: bool) -> str:
    """What the reviewer is given: the task and the (revised) draft."""
    label = "Revised draft" if revised else "Draft"
    return f"Task:\n{task}\n\n{label}:\n{draft}"


def revision_input(task: str, draft: str, critique: str) -> str:
    """What the worker is given to revise: the task, the previous draft and the reviewer's critique."""
    return (
        f"Task:\n{task}\n\nPrevious draft:\n{draft}\n\nReviewer critique:\n{critique}\n\n"
        "Revise the draft to address the critique."
    )


def _seconds(value: float) -> float:
    return round(value, 6) + 0.0


class Supervisor(Pattern):
    """A worker drafts, a reviewer reviews, the worker revises with the critique, until approved.

    The loop of the source article: the worker (agent ``"worker"``) drafts from the task; then, at most
    ``max_revisions`` times, the reviewer (agent ``"reviewer"``) reviews the latest draft and, unless
    ``approve(review)`` is true, the worker revises it from an input holding the task, the previous draft
    and the critique (:func:`revision_input`). Each rejection is followed by one revision, so a reviewer
    that never approves costs ``1 + 2 * max_revisions`` agent calls and the last revision is returned
    unreviewed.

    ``deadline`` is measured on the flow's virtual clock from the start of ``run``. With ``await run()``
    each call is cut at the deadline (``asyncio.wait`` on the virtual event loop, so it is decided on
    recorded latency in milliseconds of wall time) and the supervisor returns the last complete draft.
    With ``run_sync()`` a call cannot be cut: the deadline is checked before each call, so a call that
    started in time finishes (its draft counts) and the loop stops after it.

    Decisions (see the supervisor docs page):

    * ``supervisor_review`` (agent ``"reviewer"``): ``iteration`` (from 1), ``approved``,
      ``critique_chars`` (length of the review text).
    * ``supervisor_max_revisions`` (no agent): ``reviews``, ``revisions``; when ``max_revisions`` reviews
      all rejected the draft.
    * ``supervisor_timeout`` (agent = the agent that was cut or would have run next): ``iteration``,
      ``step`` (``"draft"``, ``"review"`` or ``"revision"``), ``deadline_s`` and ``elapsed_s`` (virtual
      seconds since ``run`` started, or since the flow started for the flow's deadline).

    Args:
        worker: Agent that drafts and revises; gets the task, then :func:`revision_input` texts.
        reviewer: Agent that reviews; gets :func:`review_input` texts.
        approve: ``approve(review_text) -> bool``; default: ``"APPROVED" in review_text``.
        max_revisions: Most reviews (and revisions) to do, >= 1.
        deadline: Virtual seconds the loop may take from the start of ``run`` (> 0). ``None``: the flow's
            deadline (``@pytest.mark.agent_deadline``) when it has one, else no deadline.
        flow: The flow to run in (bound by the ``agent_supervisor`` fixture); ``None``: standalone.

    Raises:
        ValueError: for ``max_revisions`` < 1 or a ``deadline`` that is not > 0.

    ``await supervisor.run(task)`` / ``supervisor.run_sync(task)`` return the last draft as an
    :class:`~pytest_agentflows.AgentResult` (``agent`` ``"worker"``; ``data`` = ``{"approved": bool,
    "reviews": int, "revisions": int, "stopped": "approved" | "max_revisions" | "deadline"}``; ``usage`` =
    every call). They raise :class:`~pytest_agentflows.DeadlineExceeded` only when the deadline cuts the
    first draft (there is no draft to return).
    """

    def __init__(
        self,
        worker: Agent,
        reviewer: Agent,
        approve: Callable[[str], bool] = _approved,
        max_revisions: int = 3,
        deadline: float | None = None,
        *,
        flow: Flow | None = None,
    ) -> None:
        super().__init__(flow=flow)
        if isinstance(max_revisions, bool) or not isinstance(max_revisions, int) or max_revisions < 1:
            raise ValueError(f"Supervisor(max_revisions=...) must be an int >= 1, got {max_revisions!r}")
        if deadline is not None and (
            isinstance(deadline, bool)
            or not isinstance(deadline, (int, float))
            or not math.isfinite(deadline)
            or deadline <= 0
        ):
            raise ValueError(
                f"Supervisor(deadline=...) must be a number of seconds > 0 or None, got {deadline!r}"
            )
        self.worker = worker
        self.reviewer = reviewer
        self.approve = approve
        self.max_revisions = max_revisions
        self.deadline: float | None = None if deadline is None else float(deadline)

    def _agents(self) -> list[Any]:
        return [self.worker, self.reviewer]

    def _expiry(self, start: float) -> tuple[float | None, float, float]:
        """(absolute expiry or None, deadline seconds, time it counts from): own deadline, else the flow's."""
        if self.deadline is not None:
            return start + self.deadline, self.deadline, start
        flow_deadline = self._rt.deadline
        if flow_deadline is not None:
            return flow_deadline.expires_at, flow_deadline.seconds, flow_deadline.start
        return None, 0.0, start

    def _steps(self, input: Any) -> Steps:
        rt = self._rt
        log = rt.log
        task = input if isinstance(input, str) else str(input)
        start = rt.clock.now()
        expires, seconds, origin = self._expiry(start)
        calls: list[AgentResult] = []
        draft: AgentResult | None = None
        reviews = revisions = 0
        iteration = 0
        step, agent_name = "draft", "worker"

        def finish(stopped: str) -> AgentResult:
            assert draft is not None
            data = {
                "approved": stopped == "approved",
                "reviews": reviews,
                "revisions": revisions,
                "stopped": stopped,
            }
            return AgentResult(text=draft.text, agent="worker", data=data, usage=add_usage(calls))

        try:
            draft = yield Call(self.worker, "worker", task, deadline=expires)
            calls.append(draft)
            for iteration in range(1, self.max_revisions + 1):
                step, agent_name = "review", "reviewer"
                review = yield Call(
                    self.reviewer,
                    "reviewer",
                    review_input(task, draft.text, revised=revisions > 0),
                    deadline=expires,
                )
                calls.append(review)
                reviews += 1
                approved = bool(self.approve(review.text))
                log.record(
                    "supervisor_review",
                    agent="reviewer",
                    iteration=iteration,
                    approved=approved,
                    critique_chars=len(review.text),
                )
                if approved:
                    return finish("approved")
                step, agent_name = "revision", "worker"
                revised = yield Call(
                    self.worker, "worker", revision_input(task, draft.text, review.text), deadline=expires
                )
                calls.append(revised)
                draft = revised
                revisions += 1
        except StepTimeout:
            elapsed = _seconds(rt.clock.now() - origin)
            log.record(
                "supervisor_timeout",
                agent=agent_name,
                iteration=iteration,
                step=step,
                deadline_s=seconds,
                elapsed_s=elapsed,
            )
            if draft is None:
                raise DeadlineExceeded(seconds, elapsed, "worker") from None
            return finish("deadline")
        log.record("supervisor_max_revisions", agent=None, reviews=reviews, revisions=revisions)
        return finish("max_revisions")

    def __repr__(self) -> str:
        return f"Supervisor(max_revisions={self.max_revisions}, deadline={self.deadline!r})"
