"""Exceptions raised by pytest-agentflows.

Every message has three parts: what happened, what was expected or recorded, and how to fix it.
"""

from __future__ import annotations

import os

DOCS_RECORDING = "https://pytest-agentflows.readthedocs.io/en/latest/recording/"


class AgentflowsError(Exception):
    """Base class of the ordinary (catchable) errors of pytest-agentflows."""


class UsageError(AgentflowsError, ValueError):
    """A configuration mistake by the developer: a bad marker argument, option or ini value."""


class CassetteError(AgentflowsError):
    """A cassette file cannot be read.

    Args:
        path: The cassette file.
        where: The place in the file (e.g. ``"interactions[3].response.body"``), or ``""``.
        reason: What is wrong there.
    """

    def __init__(self, path: str | os.PathLike[str], where: str, reason: str) -> None:
        self.path = os.fspath(path)
        self.where = where
        self.reason = reason
        place = f" at {where}" if where else ""
        super().__init__(
            f"cannot read cassette {self.path}{place}: {reason}. The file was left untouched; fix or delete "
            f"it, then re-record it with `pytest --record-agents=all` (see {DOCS_RECORDING})."
        )


class SnapshotFileError(AgentflowsError):
    """A decision-snapshot file (``__snapshots__/<module>.agentflows``) cannot be read.

    Args:
        path: The snapshot file.
        where: The place in the file (``"line 12"``, ``"line 3, byte 57"``).
        reason: What is wrong there.
    """

    def __init__(self, path: str | os.PathLike[str], where: str, reason: str) -> None:
        self.path = os.fspath(path)
        self.where = where
        self.reason = reason
        place = f" at {where}" if where else ""
        super().__init__(
            f"cannot read snapshot file {self.path}{place}: {reason}. The file was left untouched; "
            "delete it, then write it again with `pytest --snapshot-update`."
        )


class CassetteConflictError(CassetteError):
    """A cassette changed on disk while a test was recording into it: two writers at once.

    Raised when the flow saves its recording (at the test's teardown) and finds that the file is no longer
    the one it loaded: another pytest-xdist worker or process wrote it meanwhile. Nothing is merged or
    overwritten: the file keeps the other writer's content and this test's recording is not saved.

    Args:
        path: The cassette file.
        test: Node id of the test whose recording was not saved.
        recorded: Interactions that test recorded (not saved).
    """

    def __init__(self, path: str | os.PathLike[str], test: str, recorded: int) -> None:
        self.path = os.fspath(path)
        self.where = ""
        self.test = test
        self.recorded = recorded
        self.reason = "changed on disk while the test was recording into it"
        AgentflowsError.__init__(
            self,
            f"cassette {self.path} was written by another test or process while test {test or '(unnamed)'} "
            f"was recording into it; its {recorded} recorded interaction(s) were NOT saved, so nothing was "
            "merged or overwritten. Two tests record into the same cassette at once: give them distinct "
            "cassette names (@pytest.mark.agentflow(cassette=...)) or record serially (`-n 0`), then "
            f"re-record (see {DOCS_RECORDING}).",
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.test, self.recorded))


class CassetteSaveError(CassetteError):
    """A recording cannot be written to its cassette in the cassette's format; nothing was written.

    Raised when the flow saves (at the test's teardown), e.g. for a body that is not UTF-8 text in a JSON
    cassette, which vcrpy's JSON format cannot hold.

    Args:
        path: The cassette file.
        where: The place in the recording (``"interactions[3].response.body"``), or ``""``.
        reason: What cannot be written, and how to fix it.
    """

    def __init__(self, path: str | os.PathLike[str], where: str, reason: str) -> None:
        self.path = os.fspath(path)
        self.where = where
        self.reason = reason
        place = f" at {where}" if where else ""
        AgentflowsError.__init__(
            self,
            f"cannot save the recording to cassette {self.path}{place}: {reason}. The file was left as it "
            "was (the test's recording is lost: fix the cause, then record again).",
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.where, self.reason))


class UnrecordedRequestError(AgentflowsError):
    """A model request has no recorded response, and the record mode forbids going to the network.

    An ordinary ``Exception``, so it does not kill a framework's exporter thread or trip an async callback
    (it used to be a ``BaseException``). It cannot hide for all that:

    - the flow records every miss, and the ``agentflow`` fixture fails the test for each one, also when
      app code caught it, unless the test function itself caught it (``pytest.raises``, or an ``except``
      in the test's own body): a miss that reached the test function is handled;
    - the OpenAI and Anthropic SDKs do not retry it or wrap it in ``APIConnectionError`` while a flow is
      active (see :mod:`pytest_agentflows.runtime._sdk_waits`);
    - the patterns (``Broadcast``, ``with_fallback``, ``CircuitBreaker``...) never count it as an agent
      failure: it propagates;
    - a miss made by a thread of a test that already ended is raised in that thread only and never fails
      another test (see ``docs/reliability.md``, "Handled misses").

    Attributes:
        test: Node id of the test.
        cassette: Path of the cassette that was searched.
        agent: Agent that made the request, if known.
        method: HTTP method.
        url: Request URL (secrets removed).
        diff: Unified diff between the nearest recorded request body and this one ("" if none).
    """

    def __init__(
        self,
        *,
        test: str,
        cassette: str,
        agent: str | None,
        method: str,
        url: str,
        diff: str = "",
        reason: str = "",
    ) -> None:
        self.test = test
        self.cassette = cassette
        self.agent = agent
        self.method = method
        self.url = url
        self.diff = diff
        lines = [
            f"unrecorded model request in test {test}",
            f"  agent:    {agent or '(none: wrap the call in agentflow.agent(name) to name it)'}",
            f"  request:  {method} {url}",
            f"  cassette: {cassette}",
        ]
        if reason:
            lines.append(f"  why:      {reason}")
        if diff:
            lines.append("  nearest recorded request body (-recorded +sent):")
            lines.extend("    " + line for line in diff.splitlines())
        lines.append(
            "Fix: record it with `pytest --record-agents` (adds missing interactions) or "
            "`--record-agents=all` (re-records the cassette); replay never goes to the network. "
            f"See {DOCS_RECORDING}"
        )
        super().__init__("\n".join(lines))

    def __str__(self) -> str:
        return str(self.args[0])


DOCS_PATTERNS = "https://pytest-agentflows.readthedocs.io/en/latest/patterns/"


class RoutingError(AgentflowsError):
    """A router's classifier chose a route that does not exist, and the router has no fallback.

    Attributes:
        output: The classifier's output (stripped text).
        routes: The known route keys, sorted.
    """

    def __init__(self, output: str, routes: list[str]) -> None:
        self.output = output
        self.routes = sorted(routes)
        known = ", ".join(repr(r) for r in self.routes) or "(none)"
        super().__init__(
            f"the classifier answered {output!r}, which is not a route; known routes: {known}. "
            "Fix: add the route to Router(routes={...}), give the Router a fallback= agent or route key, "
            f"or make the classifier answer with one of the keys (see {DOCS_PATTERNS}router/)."
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.output, self.routes))


class BroadcastError(AgentflowsError):
    """Fewer broadcast agents than ``min_successes`` gave a valid result.

    Attributes:
        min_successes: How many valid results the broadcast needed.
        succeeded: Keys of the agents that gave a valid result, in completion order.
        failures: For each other agent (sorted by key), what went wrong: ``"ValueError: boom"``, or
            ``"timed out after 10 s"``.
    """

    def __init__(self, min_successes: int, succeeded: list[str], failures: dict[str, str]) -> None:
        self.min_successes = min_successes
        self.succeeded = list(succeeded)
        self.failures = dict(sorted(failures.items()))
        lines = [f"  {key}: {why}" for key, why in self.failures.items()]
        got = ", ".join(repr(k) for k in self.succeeded) or "none"
        super().__init__(
            f"broadcast got {len(self.succeeded)} valid result(s) ({got}) but needs min_successes="
            f"{min_successes}. Failed agents:\n" + "\n".join(lines) + "\n"
            "Fix: look at the failures above, raise the timeout=, or lower min_successes "
            f"(see {DOCS_PATTERNS}broadcast/)."
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.min_successes, self.succeeded, self.failures))


class EventLoopError(AgentflowsError):
    """An :class:`~pytest_agentflows.EventBus` handled more than ``max_events`` events: a feedback loop.

    Handlers that publish or emit the events that trigger them again loop forever; the bus counts events
    (not stack depth) and stops the loop here, so it ends in this error, never in ``RecursionError``.

    Attributes:
        max_events: The bus's limit.
        event_type: Type of the event that went over it.
        recent: Types of the last events handled before it (oldest first), to show the cycle.
    """

    def __init__(self, max_events: int, event_type: str, recent: list[str]) -> None:
        self.max_events = max_events
        self.event_type = event_type
        self.recent = list(recent)
        cycle = " -> ".join([*self.recent[-8:], event_type])
        super().__init__(
            f"event bus feedback loop: event {event_type!r} would be number {max_events + 1}, over "
            f"max_events={max_events}. Last events: {cycle}. Fix: make a handler stop re-emitting the "
            "event that triggers it (a condition, a counter, a budget), or raise EventBus(max_events=...) "
            f"if this many events is expected (see {DOCS_PATTERNS}event-bus/)."
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.max_events, self.event_type, self.recent))


class PlanError(AgentflowsError):
    """An orchestrator's plan cannot run: not JSON, a dependency cycle, an unknown worker or task.

    Attributes:
        problem: What is wrong (one sentence).
        tasks: The ids of the tasks concerned (the cycle, in order, for a cycle).
    """

    def __init__(self, problem: str, tasks: list[str]) -> None:
        self.problem = problem
        self.tasks = list(tasks)
        named = ", ".join(repr(t) for t in self.tasks)
        super().__init__(
            f"the orchestrator's plan cannot run: {problem}" + (f" (tasks: {named})" if named else "") + ". "
            "Fix: make the planner answer a JSON list of {id, description, assigned_to, depends_on} tasks "
            "whose assigned_to is a key of workers= and whose depends_on names other tasks, with no cycle "
            f"(see {DOCS_PATTERNS}orchestrator/)."
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.problem, self.tasks))


class HandoffError(AgentflowsError, ValueError):
    """A handoff's payload broke its contract (schema or confidence) and no ``escalate=`` was given.

    Attributes:
        from_agent: The agent handing off.
        to_agent: The agent that would have received it.
        problems: Each problem found: schema errors (with their JSON path) and a confidence too low.
    """

    def __init__(self, from_agent: str, to_agent: str, problems: list[str]) -> None:
        self.from_agent = from_agent
        self.to_agent = to_agent
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(
            f"handoff {from_agent!r} -> {to_agent!r} refused: the payload breaks the contract:\n{lines}\n"
            "Fix: make the sending agent produce what HandoffContract(schema=...) describes, lower "
            f"required_confidence=, or pass escalate= to handle it (see {DOCS_PATTERNS}handoff/)."
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.from_agent, self.to_agent, self.problems))
