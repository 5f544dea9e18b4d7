"""Pipeline: stages run in order, each on the previous stage's text, each with a reserved budget cap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..runtime._models import AgentResult
from ..runtime.budget import BudgetExceeded
from ._base import Agent, Call, Pattern, Steps, add_usage

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["Pipeline", "Stage"]


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: a named agent and the most it may spend."""

    name: str
    """Stage name: the agent name of its model calls and of its decisions."""
    agent: Agent
    """The agent; it gets the pipeline input (first stage) or the previous stage's text."""
    max_usd: float | None = None
    """US dollars reserved from the flow's budget before the stage starts (``None``: no stage cap)."""
    max_tokens: int | None = None
    """Tokens (input + output) reserved before the stage starts (``None``: no stage cap)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a Stage name must be a non-empty string, got {self.name!r}")
        for field, value in (("max_usd", self.max_usd), ("max_tokens", self.max_tokens)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            ):
                raise ValueError(f"Stage {self.name!r}: {field} must be a number >= 0 or None, got {value!r}")


def _stage(item: Any) -> Stage:
    if isinstance(item, Stage):
        return item
    if isinstance(item, tuple) and 2 <= len(item) <= 4:
        return Stage(*item)
    raise TypeError(
        f"a pipeline stage must be a Stage(name, agent, max_usd=None) or a tuple (name, agent[, max_usd]), "
        f"got {item!r}"
    )


def _money(value: float) -> str:
    text = f"{value:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def _amount(kind: str, value: float) -> str:
    return _money(value) if kind == "usd" else f"{int(value):,} tokens"


def halt_reason(exc: BudgetExceeded) -> str:
    """One line saying why a stage could not run (from a :class:`BudgetExceeded`)."""
    kind = exc.kind
    cap = (
        f"the {_amount(kind, exc.limit)} budget"
        if exc.cap_of is None
        else f"the {'max_usd' if kind == 'usd' else 'max_tokens'} of stage {exc.cap_of!r}"
    )
    if exc.before_start:
        left = max(exc.limit - exc.spent - exc.reserved, 0.0)
        field = "max_usd" if kind == "usd" else "max_tokens"
        needs = f"its {field}={_amount(kind, exc.requested)}" if exc.requested else "any amount"
        return f"reserving {needs} does not fit: {_amount(kind, left)} of {cap} left"
    return f"{_amount(kind, exc.spent)} spent against {cap}"


class Pipeline(Pattern):
    """Run stages in order; each stage gets the previous stage's text.

    Before a stage starts, its ``max_usd`` / ``max_tokens`` is reserved from the flow's
    :class:`~pytest_agentflows.BudgetPool` (``pool.acquire(max_usd=...)``, as in the source article). When
    the reservation does not fit in what is left (or, for a stage with no cap, when nothing is left), the
    pipeline halts before that stage makes any call: it records ``pipeline_halted`` and raises
    :class:`~pytest_agentflows.BudgetExceeded`. So the stages never commit more than the budget between
    them, as long as each keeps to its own cap (a stage that spends more than its cap is recorded in full;
    the next stage's reservation then sees what is left).

    Decisions (see the pipeline docs page):

    * ``stage_complete`` (agent = stage name): ``stage``, ``tokens`` (input + output tokens of the stage's
      model calls), ``cost_usd`` (US dollars; ``None`` when a model has no known price).
    * ``pipeline_halted`` (agent = stage name): ``stage``, ``reason``, ``spent_usd`` (the flow's spend so
      far) and ``remaining_usd`` (neither spent nor reserved; ``None`` without a USD cap).

    Args:
        stages: The stages, in order: :class:`Stage` objects or tuples ``(name, agent)`` /
            ``(name, agent, max_usd)``. Names must be unique.
        flow: The flow to run in (bound by the ``agent_pipeline`` fixture); ``None``: standalone.

    Raises:
        ValueError: for no stages, duplicate names or a negative cap.
        TypeError: for something that is not a stage.

    ``await pipeline.run(input)`` / ``pipeline.run_sync(input)`` return the last stage's text as an
    :class:`~pytest_agentflows.AgentResult` (``agent`` = last stage name, ``data`` = the list of every
    stage's ``AgentResult`` in order, ``usage`` = all stages) and raise ``BudgetExceeded`` when halted.
    """

    def __init__(self, stages: Sequence[Stage | tuple[Any, ...]], *, flow: Flow | None = None) -> None:
        super().__init__(flow=flow)
        self.stages: list[Stage] = [_stage(item) for item in stages]
        if not self.stages:
            raise ValueError("Pipeline(stages=...) needs at least one stage")
        names = [stage.name for stage in self.stages]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"Pipeline stage names must be unique; repeated: {', '.join(duplicates)}")

    def _agents(self) -> list[Any]:
        return [stage.agent for stage in self.stages]

    def _steps(self, input: Any) -> Steps:
        rt = self._rt
        results: list[AgentResult] = []
        text: Any = input
        for stage in self.stages:
            call = Call(stage.agent, stage.name, text, max_usd=stage.max_usd, max_tokens=stage.max_tokens)
            try:
                result = yield call
            except BudgetExceeded as exc:
                rt.log.record(
                    "pipeline_halted",
                    agent=stage.name,
                    stage=stage.name,
                    reason=halt_reason(exc),
                    spent_usd=rt.budget.spent_usd,
                    remaining_usd=rt.budget.remaining_usd,
                )
                raise
            rt.log.record(
                "stage_complete",
                agent=stage.name,
                stage=stage.name,
                tokens=result.usage.total_tokens,
                cost_usd=result.usage.cost_usd,
            )
            results.append(result)
            text = result.text
        last = results[-1]
        return AgentResult(text=last.text, agent=self.stages[-1].name, data=results, usage=add_usage(results))

    def __repr__(self) -> str:
        return f"Pipeline(stages={[s.name for s in self.stages]!r})"
