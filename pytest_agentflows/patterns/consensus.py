"""Consensus: several voters answer the same question concurrently; the most common answer wins.

Votes are compared after normalising (surrounding whitespace, quotes and a final period removed, case
folded), so ``"Approve."`` and ``"approve"`` are the same vote; the winner is reported as the first
voter (in ``voters`` order) gave it. Ties go to the answer given first in ``voters`` order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..runtime._models import AgentResult
from ._base import Agent, Pattern, add_usage, call_async

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["Consensus"]


def _normal(text: str) -> str:
    return text.strip().strip("\"'`").strip().rstrip(".").strip().casefold()


class Consensus(Pattern):
    """Ask every voter; agree when the top answer's share reaches ``required_agreement``.

    Args:
        voters: Voter key -> agent; each runs as its key, all at once.
        required_agreement: Share of the voters (0 < x <= 1) the most common answer needs: agreement is
            reached when ``votes_for_winner / len(voters) >= required_agreement``.
        flow: The flow to run in (bound by the ``agent_consensus`` fixture); ``None``: the active flow,
            else standalone.

    Raises:
        ValueError: for no voters or ``required_agreement`` outside (0, 1].

    Decisions: ``vote`` per voter (agent = the voter; ``vote``: its answer, stripped), in voters order,
    then ``consensus`` (``winner``, ``agreement``: the winner's share, ``reached``, ``votes``: answer ->
    count). ``await consensus.run(input)`` / ``run_sync(input)`` return an ``AgentResult`` with the
    winning answer as ``text`` (``agent`` ``"consensus"``) and ``data`` = ``{"reached", "agreement",
    "votes": {voter: answer}}``; a voter that raises makes ``run`` raise (after the others finished).
    """

    def __init__(
        self, voters: Mapping[str, Agent], required_agreement: float = 0.5, *, flow: Flow | None = None
    ) -> None:
        super().__init__(flow=flow)
        if not voters:
            raise ValueError("Consensus(voters=...) needs at least one voter key -> agent")
        if (
            isinstance(required_agreement, bool)
            or not isinstance(required_agreement, (int, float))
            or not 0 < required_agreement <= 1
        ):
            raise ValueError(
                f"Consensus(required_agreement=...) must be a share in (0, 1], got {required_agreement!r}"
            )
        self.voters: dict[str, Agent] = dict(voters)
        self.required_agreement = float(required_agreement)

    def _agents(self) -> list[Any]:
        return list(self.voters.values())

    def _run_sync(self, input: Any) -> AgentResult:
        return self._run_on_new_loop(input)  # voters run concurrently: on a (virtual) event loop

    async def run(self, input: Any) -> AgentResult:
        """Collect the votes and decide (see the class docstring)."""
        rt = self._rt
        rt.clock.attach_loop()
        keys = list(self.voters)
        outcomes = await asyncio.gather(
            *(call_async(rt, self.voters[key], key, input) for key in keys), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        results: list[AgentResult] = [o for o in outcomes if isinstance(o, AgentResult)]
        votes = {key: result.text.strip() for key, result in zip(keys, results, strict=True)}
        for key in keys:
            rt.log.record("vote", agent=key, vote=votes[key])
        counts: dict[str, int] = {}
        shown: dict[str, str] = {}
        for key in keys:
            norm = _normal(votes[key])
            counts[norm] = counts.get(norm, 0) + 1
            shown.setdefault(norm, votes[key])
        best = max(counts, key=lambda n: counts[n])  # first maximum: voters order breaks ties
        agreement = round(counts[best] / len(keys), 6)
        reached = agreement >= self.required_agreement - 1e-9
        winner = shown[best]
        rt.log.record(
            "consensus",
            agent="consensus",
            winner=winner,
            agreement=agreement,
            reached=reached,
            votes={shown[n]: c for n, c in counts.items()},
        )
        return AgentResult(
            text=winner,
            agent="consensus",
            data={"reached": reached, "agreement": agreement, "votes": votes},
            usage=add_usage(results),
        )

    def __repr__(self) -> str:
        return f"Consensus(voters={list(self.voters)!r}, required_agreement={self.required_agreement})"
