"""Supervisor: the draft-review-revise loop, max_revisions, deadlines on the virtual clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pattern_flows as pf
import pytest

from pytest_agentflows import AgentResult, DeadlineExceeded, Flow, Supervisor
from pytest_agentflows.patterns.supervisor import review_input, revision_input

CRITIQUE = "REVISE: add a concrete example and cite one source."


@contextmanager
def replay(name: str, **kwargs: Any) -> Iterator[Flow]:
    flow = Flow(cassette=pf.cassette(name), test_id=name, **kwargs)
    with flow.activate():
        yield flow


def test_reviewer_that_never_approves_stops_at_max_revisions() -> None:
    with replay("supervisor_never_approves") as flow:
        supervisor = pf.supervisor(flow)
        result = supervisor.run_sync(pf.TOPIC)
    # 1 draft + 3 x (review, revision): each rejection is followed by one revision.
    assert [c.agent for c in flow.calls] == ["worker"] + ["reviewer", "worker"] * 3
    reviews = flow.log.of_kind("supervisor_review")
    assert [(d.iteration, d.approved, d.critique_chars, d.agent) for d in reviews] == [  # type: ignore[attr-defined]
        (i, False, len(CRITIQUE), "reviewer") for i in (1, 2, 3)
    ]
    (stop,) = flow.log.of_kind("supervisor_max_revisions")
    assert (stop.reviews, stop.revisions, stop.at) == (3, 3, 113.0)  # type: ignore[attr-defined]
    assert flow.log.kinds()[-1] == "supervisor_max_revisions"
    assert result.data == {"approved": False, "reviews": 3, "revisions": 3, "stopped": "max_revisions"}
    worker = supervisor.worker
    assert isinstance(worker, pf.ChatAgent)
    assert result.text == f"[gpt-4o-mini] reply to: {' '.join(worker.inputs[-1].split())}"[:84]
    # The revision input holds the task, the previous draft and the critique.
    first_draft = f"[gpt-4o-mini] reply to: {pf.TOPIC}"
    assert worker.inputs[1] == revision_input(pf.TOPIC, first_draft, CRITIQUE)
    assert pf.TOPIC in worker.inputs[1] and first_draft in worker.inputs[1] and CRITIQUE in worker.inputs[1]
    reviewer = supervisor.reviewer
    assert isinstance(reviewer, pf.ChatAgent)
    assert reviewer.inputs[0] == review_input(pf.TOPIC, first_draft, revised=False)
    assert reviewer.inputs[1].startswith(f"Task:\n{pf.TOPIC}\n\nRevised draft:\n")
    assert result.usage == flow.usage


async def test_approval_after_one_revision_async() -> None:
    with replay("supervisor_approves_async") as flow:
        result = await pf.supervisor(flow, asynchronous=True).run(pf.TOPIC)
    assert [c.agent for c in flow.calls] == ["worker", "reviewer", "worker", "reviewer"]
    reviews = flow.log.of_kind("supervisor_review")
    assert [(d.iteration, d.approved, d.at) for d in reviews] == [(1, False, 26.0), (2, True, 57.0)]  # type: ignore[attr-defined]
    assert reviews[1].critique_chars == len("APPROVED")  # type: ignore[attr-defined]
    assert result.data == {"approved": True, "reviews": 2, "revisions": 1, "stopped": "approved"}
    assert not flow.log.of_kind("supervisor_max_revisions") and not flow.log.of_kind("supervisor_timeout")
    assert flow.elapsed == 57.0


async def test_deadline_cuts_the_running_call_async() -> None:
    started = time.perf_counter()
    with replay("supervisor_deadline") as flow:
        result = await pf.supervisor(flow, asynchronous=True, deadline=120).run(pf.TOPIC)
        assert flow.clock.now() == 120.0
    assert time.perf_counter() - started < 60  # virtual time: nothing like 120 s of waiting
    assert flow.elapsed == 120.0  # draft 30 s + review 20 s + revision cut after 70 of its 130 s
    assert flow.log.kinds() == [
        "model_call",
        "model_call",
        "supervisor_review",
        "model_call",
        "supervisor_timeout",
    ]
    cut = flow.decisions[3]
    assert (cut.agent, cut.at, cut.cancelled) == ("worker", 120.0, True)  # type: ignore[attr-defined]
    timeout = flow.decisions[-1]
    assert timeout.fields() == {"iteration": 1, "step": "revision", "deadline_s": 120.0, "elapsed_s": 120.0}
    assert (timeout.agent, timeout.at) == ("worker", 120.0)
    # The last complete draft is returned: the first one (its revision was cut).
    assert result.text == f"[gpt-4o-mini] reply to: {pf.TOPIC}"
    assert result.data == {"approved": False, "reviews": 1, "revisions": 0, "stopped": "deadline"}


def test_deadline_is_checked_between_calls_sync() -> None:
    with replay("supervisor_deadline") as flow:
        result = pf.supervisor(flow, deadline=120).run_sync(pf.TOPIC)
    # A sync call cannot be cut: the 130 s revision ends at 180 s, then the deadline stops the loop.
    assert flow.elapsed == 180.0
    timeout = flow.decisions[-1]
    assert timeout.kind == "supervisor_timeout" and timeout.agent == "reviewer"
    assert timeout.fields() == {"iteration": 2, "step": "review", "deadline_s": 120.0, "elapsed_s": 180.0}
    assert result.data == {"approved": False, "reviews": 1, "revisions": 1, "stopped": "deadline"}
    assert [c.agent for c in flow.calls] == ["worker", "reviewer", "worker"]


async def test_flow_deadline_applies_without_an_own_deadline() -> None:
    with replay("supervisor_deadline", deadline_s=120) as flow:
        result = await pf.supervisor(flow, asynchronous=True).run(pf.TOPIC)
    assert flow.elapsed == 120.0
    assert result.data["stopped"] == "deadline"
    flow.assert_deadline(120)  # the flow kept to its deadline


# -- plain agents --------------------------------------------------------------------------------------
def test_deadline_during_the_first_draft_raises() -> None:
    flow = Flow()

    async def worker(task: str) -> str:
        await flow.clock.sleep(200)
        return "late draft"

    supervisor = Supervisor(worker, lambda d: "APPROVED", deadline=120, flow=flow)
    with pytest.raises(DeadlineExceeded, match="deadline of 120 s exceeded at 120 s"):
        supervisor.run_sync("task")
    assert flow.decisions[-1].fields() == {
        "iteration": 0,
        "step": "draft",
        "deadline_s": 120.0,
        "elapsed_s": 120.0,
    }
    assert flow.elapsed == 120.0


def test_custom_approve_and_agent_results() -> None:
    reviews = iter(["score 3/10", "score 9/10"])

    def reviewer(text: str) -> AgentResult:
        return AgentResult(text=next(reviews))

    supervisor = Supervisor(
        lambda text: "draft" if text == "task" else "better draft",
        reviewer,
        approve=lambda review: review.endswith("9/10"),
    )
    result = supervisor.run_sync("task")
    assert (result.text, result.agent) == ("better draft", "worker")
    assert [d.approved for d in supervisor.decisions] == [False, True]  # type: ignore[attr-defined]


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError, match="max_revisions"):
        Supervisor(str, str, max_revisions=0)
    with pytest.raises(ValueError, match="deadline"):
        Supervisor(str, str, deadline=-1)
