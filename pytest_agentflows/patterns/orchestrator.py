"""Orchestrator: a planner agent writes a JSON plan of tasks; workers run them in dependency order.

The plan is the articles' shape: a JSON list (or ``{"tasks": [...]}``) of
``{"id", "description", "assigned_to", "depends_on"}`` objects. Each task runs as its ``assigned_to``
worker, in a scope of its own (``task:<id>``), once every task it depends on has completed; tasks whose
dependencies are done run concurrently (overlapping on the virtual clock). A worker gets the task's
description followed by the results of its dependencies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import PlanError
from ..runtime._context import Scope
from ..runtime._models import AgentResult
from ._base import Agent, Pattern, add_usage, call_async
from ._errtext import error_text

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["Orchestrator", "Task"]


@dataclass(frozen=True)
class Task:
    """One task of a plan."""

    id: str
    """Unique id within the plan."""
    description: str
    """What the worker is asked to do."""
    assigned_to: str
    """Key of the worker (of ``Orchestrator(workers=...)``) that runs it; also its agent name."""
    depends_on: tuple[str, ...] = field(default=())
    """Ids of the tasks whose results it needs."""


def parse_plan(text: str, workers: Mapping[str, Any]) -> list[Task]:
    """Read a planner's answer into tasks, checked: ids unique, workers and dependencies known, no cycle.

    A JSON list of task objects, or an object with a ``"tasks"`` list; a fenced ```` ```json ```` block
    is unwrapped first. ``depends_on`` may be omitted, ``null``, a string or a list.

    Raises:
        PlanError: naming what is wrong and the tasks concerned.
    """
    raw = text.strip()
    if raw.startswith("```"):
        raw = raw.strip("`")
        raw = raw[4:] if raw.lower().startswith("json") else raw
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        problem = f"the planner's answer is not JSON ({exc.msg} at char {exc.pos}): {text[:120]!r}"
        raise PlanError(problem, []) from None
    if isinstance(data, Mapping):
        data = data.get("tasks")
    if not isinstance(data, list) or not data:
        raise PlanError('the plan must be a non-empty JSON list of tasks (or {"tasks": [...]})', [])
    tasks: list[Task] = []
    for index, item in enumerate(data):
        if not isinstance(item, Mapping) or "id" not in item or "assigned_to" not in item:
            raise PlanError(f"task {index} is not an object with id and assigned_to: {item!r}", [])
        deps = item.get("depends_on") or []
        if isinstance(deps, (str, int)):
            deps = [deps]
        tasks.append(
            Task(
                id=str(item["id"]),
                description=str(item.get("description", "")),
                assigned_to=str(item["assigned_to"]),
                depends_on=tuple(str(d) for d in deps),
            )
        )
    ids = [t.id for t in tasks]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise PlanError("task ids must be unique", duplicates)
    unknown_workers = [t.id for t in tasks if t.assigned_to not in workers]
    if unknown_workers:
        names = sorted({t.assigned_to for t in tasks if t.id in unknown_workers})
        raise PlanError(
            f"assigned_to names unknown worker(s) {', '.join(map(repr, names))}; workers are "
            f"{', '.join(map(repr, sorted(workers)))}",
            unknown_workers,
        )
    known = set(ids)
    unknown_deps = [t.id for t in tasks if any(d not in known for d in t.depends_on)]
    if unknown_deps:
        missing = sorted({d for t in tasks for d in t.depends_on if d not in known})
        raise PlanError(f"depends_on names unknown task(s) {', '.join(map(repr, missing))}", unknown_deps)
    cycle = _find_cycle(tasks)
    if cycle:
        raise PlanError(f"the dependencies form a cycle: {' -> '.join(cycle)}", cycle[:-1])
    return tasks


def _find_cycle(tasks: list[Task]) -> list[str]:
    deps = {t.id: t.depends_on for t in tasks}
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in deps[node]:
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for task in tasks:
        if task.id not in state:
            found = visit(task.id)
            if found:
                return found
    return []


class Orchestrator(Pattern):
    """A planner plans, workers execute the plan's tasks in dependency order, a synthesizer combines.

    Args:
        planner: Agent (run as ``"planner"``) answering the JSON plan for the input.
        workers: Worker key -> agent; a task runs the worker named by its ``assigned_to``, as that agent.
        synthesize: Optional agent (run as ``"synthesize"``) given ``{task id: result text}`` in plan
            order; without it, the result is the text of the plan's last task.
        flow: The flow to run in (bound by the ``agent_orchestrator`` fixture); ``None``: the active flow,
            else standalone.

    Raises:
        ValueError: for no workers.

    Decisions: ``plan`` (agent ``"planner"``; ``tasks``: ``[{id, assigned_to, depends_on}]``),
    ``task_complete`` (agent = the worker; ``task``, ``depends_on``), ``task_failed`` (``task``,
    ``error``: the exception type, ``message``).
    ``await orchestrator.run(input)`` / ``run_sync(input)`` return an ``AgentResult`` whose ``data`` is
    ``{task id: result text}``; they raise :class:`~pytest_agentflows.PlanError` for a bad plan (a cycle
    names its tasks) before any worker runs, and re-raise the first task failure after the running
    tasks ended (tasks depending on a failed one do not run).
    """

    def __init__(
        self,
        planner: Agent,
        workers: Mapping[str, Agent],
        synthesize: Agent | Callable[[dict[str, str]], Any] | None = None,
        *,
        flow: Flow | None = None,
    ) -> None:
        super().__init__(flow=flow)
        if not workers:
            raise ValueError("Orchestrator(workers=...) needs at least one worker key -> agent")
        self.planner = planner
        self.workers: dict[str, Agent] = dict(workers)
        self.synthesize = synthesize
        self.plan: list[Task] = []
        """The last plan run."""

    def _agents(self) -> list[Any]:
        return [self.planner, *self.workers.values(), *([self.synthesize] if self.synthesize else [])]

    def _run_sync(self, input: Any) -> AgentResult:
        return self._run_on_new_loop(input)  # tasks run concurrently: always on a (virtual) event loop

    async def run(self, input: Any) -> AgentResult:
        """Plan, run the tasks, synthesize (see the class docstring)."""
        rt = self._rt
        rt.clock.attach_loop()
        planned = await call_async(rt, self.planner, "planner", input)
        plan = parse_plan(planned.text, self.workers)
        self.plan = plan
        rt.log.record(
            "plan",
            agent="planner",
            tasks=[
                {"id": t.id, "assigned_to": t.assigned_to, "depends_on": list(t.depends_on)} for t in plan
            ],
        )
        done: dict[str, asyncio.Future[AgentResult]] = {
            t.id: asyncio.get_running_loop().create_future() for t in plan
        }
        runners = [asyncio.ensure_future(self._task(t, done)) for t in plan]
        outcomes = await asyncio.gather(*runners, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, _Skipped):
                raise outcome
        results = {t.id: done[t.id].result() for t in plan}
        texts = {key: r.text for key, r in results.items()}
        usage = add_usage([planned, *results.values()])
        if self.synthesize is None:
            last = results[plan[-1].id]
            return AgentResult(text=last.text, agent=last.agent, data=texts, usage=usage)
        final = await call_async(rt, self.synthesize, "synthesize", texts)
        usage = add_usage([planned, *results.values(), final])
        return final.model_copy(update={"data": texts, "usage": usage})

    async def _task(self, task: Task, done: dict[str, asyncio.Future[AgentResult]]) -> None:
        rt = self._rt
        future = done[task.id]
        try:
            deps = [await asyncio.shield(done[d]) for d in task.depends_on]
        except BaseException:
            future.set_exception(_Skipped(task.id))
            future.exception()  # retrieved: no "never retrieved" warning
            raise _Skipped(task.id) from None
        text = task.description
        if deps:
            context = "\n\n".join(f"[{d}] {r.text}" for d, r in zip(task.depends_on, deps, strict=True))
            text = f"{task.description}\n\nResults of the tasks it depends on:\n{context}"
        try:
            with Scope(f"task:{task.id}"):
                result = await call_async(rt, self.workers[task.assigned_to], task.assigned_to, text)
                rt.log.record(
                    "task_complete", agent=task.assigned_to, task=task.id, depends_on=list(task.depends_on)
                )
        except Exception as exc:
            rt.log.record(
                "task_failed",
                agent=task.assigned_to,
                task=task.id,
                error=type(exc).__name__,
                message=error_text(exc),
            )
            future.set_exception(_Skipped(task.id))
            future.exception()
            raise
        future.set_result(result)

    def __repr__(self) -> str:
        return f"Orchestrator(workers={list(self.workers)!r})"


class _Skipped(Exception):
    """A task that did not run because a task it depends on failed."""
