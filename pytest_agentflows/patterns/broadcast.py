"""Broadcast: the same input to every agent at once; an aggregator combines the valid answers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import BroadcastError, UnrecordedRequestError
from ..runtime._models import AgentResult, Decision
from ._base import Agent, Pattern, add_usage, call_async, call_sync
from ._errtext import error_text

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["Broadcast"]

_EPS = 1e-9


@dataclass
class _Outcome:
    """What one branch came to."""

    key: str
    result: AgentResult | None = None
    error: Exception | None = None
    fatal: BaseException | None = None  # not an agent failure (e.g. UnrecordedRequestError): re-raised
    end: float = 0.0
    late: bool = False
    held: list[Decision] = field(default_factory=list)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {error_text(exc)}"


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


class Broadcast(Pattern):
    """Run every agent on the same input concurrently, then aggregate the valid results.

    Branches start together at the same virtual time and overlap: agents whose model calls take 5, 8 and
    10 s of recorded latency finish at 5, 8 and 10 s and the broadcast takes 10 s. With ``await run()``
    each agent is an asyncio task on the (virtual) event loop; the timeout is ``asyncio.wait(timeout=)`` on
    virtual loop time, late tasks are cancelled. With ``run_sync()`` (all agents sync) each agent runs in a
    thread on its own branch of the virtual clock; a branch whose virtual end is past the timeout is late
    (a thread cannot be cancelled: its calls still count in the ledger and in ``Flow.elapsed``, but the
    pattern continues at start + timeout). Decisions made inside the threads are committed in a
    deterministic order (virtual time, then key), so snapshots are stable.

    ``aggregate`` receives a ``list[AgentResult]``: only the valid results, ordered by completion (virtual
    end time, then key); each result's ``agent`` is its key (``{r.agent: r.text for r in results}``). It
    runs as agent ``"aggregate"`` (it may call a model) and returns a ``str`` or an ``AgentResult``, sync or
    async.

    Decisions (see the broadcast docs page):

    * ``agent_failed`` (agent = key): ``error`` (exception type) and ``message``; at the failure's time.
    * ``agent_timeout`` (agent = key): ``timeout`` (seconds); at start + timeout.
    * ``broadcast_complete``: ``succeeded`` (keys in completion order), ``failed``, ``timed_out`` (sorted).

    Args:
        agents: Key -> agent. At least one.
        aggregate: Combines the valid results (see above).
        min_successes: Fewest valid results needed (0 .. number of agents); fewer raise
            :class:`~pytest_agentflows.BroadcastError` listing every agent's failure.
        timeout: Virtual seconds to wait for the agents (``None``: wait for all).
        flow: The flow to run in (bound by the ``agent_broadcast`` fixture); ``None``: standalone.

    Raises:
        ValueError: for no agents, a bad key, ``min_successes`` out of range or a ``timeout`` <= 0.

    ``await broadcast.run(input)`` / ``broadcast.run_sync(input)`` return the aggregate's result
    (``agent`` ``"aggregate"``; ``data`` = the list given to ``aggregate`` when it returned a ``str``;
    ``usage`` = the valid results' and the aggregate's calls).
    """

    def __init__(
        self,
        agents: Mapping[str, Agent],
        aggregate: Agent,
        min_successes: int = 1,
        timeout: float | None = None,
        *,
        flow: Flow | None = None,
    ) -> None:
        super().__init__(flow=flow)
        if not agents:
            raise ValueError("Broadcast(agents=...) needs at least one key -> agent")
        bad = [key for key in agents if not isinstance(key, str) or not key]
        if bad:
            raise ValueError(f"Broadcast agent keys must be non-empty strings, got {bad!r}")
        if isinstance(min_successes, bool) or not isinstance(min_successes, int):
            raise ValueError(f"Broadcast(min_successes=...) must be an int, got {min_successes!r}")
        if not 0 <= min_successes <= len(agents):
            raise ValueError(
                f"Broadcast(min_successes={min_successes}) must be between 0 and the number of agents "
                f"({len(agents)})"
            )
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            raise ValueError(
                f"Broadcast(timeout=...) must be a number of seconds > 0 or None, got {timeout!r}"
            )
        self.agents: dict[str, Agent] = dict(agents)
        self.aggregate = aggregate
        self.min_successes = min_successes
        self.timeout: float | None = None if timeout is None else float(timeout)

    def _agents(self) -> list[Any]:
        return [*self.agents.values(), self.aggregate]

    # -- async -----------------------------------------------------------------------------------------
    async def run(self, input: Any) -> AgentResult:
        """Run the broadcast from async code (see the class docstring)."""
        rt = self._rt
        rt.clock.attach_loop()
        tasks = {
            key: asyncio.create_task(
                self._branch_async(key, agent, input), name=f"agentflows-broadcast-{key}"
            )
            for key, agent in self.agents.items()
        }
        try:
            _, pending = await asyncio.wait(tasks.values(), timeout=self.timeout)
        except BaseException:
            await _cancel(list(tasks.values()))
            raise
        await _cancel(list(pending))
        outcomes: list[_Outcome] = []
        for key, task in tasks.items():
            if task in pending:
                outcomes.append(_Outcome(key=key, late=True))
                continue
            exc = task.exception()
            if exc is not None:  # a miss or a BaseException, not an agent failure: stop the flow
                raise exc
            outcomes.append(task.result())
        now = rt.clock.now()
        rt.clock.join(now)
        return await self._finish_async(outcomes)

    async def _branch_async(self, key: str, agent: Any, input: Any) -> _Outcome:
        rt = self._rt
        try:
            result = await call_async(rt, agent, key, input)
        except UnrecordedRequestError:
            raise  # not an agent failure: run() re-raises it
        except Exception as exc:
            rt.log.record("agent_failed", agent=key, error=type(exc).__name__, message=error_text(exc))
            return _Outcome(key=key, error=exc, end=rt.clock.now())
        return _Outcome(key=key, result=result, end=rt.clock.now())

    async def _finish_async(self, outcomes: list[_Outcome]) -> AgentResult:
        results = self._conclude(outcomes)
        output = await call_async(self._rt, self.aggregate, "aggregate", results)
        return self._result(output, results)

    # -- sync ------------------------------------------------------------------------------------------
    def _run_sync(self, input: Any) -> AgentResult:
        rt = self._rt
        clock = rt.clock
        t0 = clock.now()
        outcomes = {key: _Outcome(key=key) for key in self.agents}
        threads = []
        for key, agent in self.agents.items():
            ctx = clock.branch_context(t0)
            thread = threading.Thread(
                target=ctx.run,
                args=(self._branch_sync, agent, input, t0, outcomes[key]),
                name=f"agentflows-broadcast-{key}",
                daemon=True,
            )
            threads.append(thread)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for outcome in outcomes.values():
            if outcome.fatal is not None:
                raise outcome.fatal
        held = sorted(
            (
                (d.at, outcome.key, index, d)
                for outcome in outcomes.values()
                for index, d in enumerate(outcome.held)
            ),
            key=lambda item: item[:3],
        )
        rt.log.commit(d for *_, d in held)
        on_time = [o.end for o in outcomes.values() if not o.late]
        if any(o.late for o in outcomes.values()):
            assert self.timeout is not None
            clock.join(t0 + self.timeout)
        else:
            clock.join(max(on_time, default=t0))
        results = self._conclude(list(outcomes.values()))
        output = call_sync(rt, self.aggregate, "aggregate", results)
        return self._result(output, results)

    def _branch_sync(self, agent: Any, input: Any, t0: float, outcome: _Outcome) -> None:
        rt = self._rt
        key = outcome.key
        with rt.log.hold() as held:
            try:
                outcome.result = call_sync(rt, agent, key, input)
            except UnrecordedRequestError as exc:
                outcome.fatal = exc  # not an agent failure: re-raised
            except Exception as exc:
                outcome.error = exc
            except BaseException as exc:
                outcome.fatal = exc
            outcome.end = rt.clock.now()
            outcome.late = self.timeout is not None and outcome.end > t0 + self.timeout + _EPS
            if outcome.error is not None and not outcome.late:
                err = outcome.error
                rt.log.record("agent_failed", agent=key, error=type(err).__name__, message=error_text(err))
        outcome.held = list(held)

    # -- both ------------------------------------------------------------------------------------------
    def _conclude(self, outcomes: list[_Outcome]) -> list[AgentResult]:
        """Record timeouts and the summary; raise BroadcastError if too few succeeded."""
        log = self._rt.log
        late = sorted(o.key for o in outcomes if o.late)
        for key in late:
            log.record("agent_timeout", agent=key, timeout=self.timeout)
        valid = sorted(
            (o for o in outcomes if not o.late and o.result is not None), key=lambda o: (o.end, o.key)
        )
        failed = sorted(o.key for o in outcomes if not o.late and o.error is not None)
        results = [o.result for o in valid if o.result is not None]
        log.record(
            "broadcast_complete",
            agent=None,
            succeeded=[o.key for o in valid],
            failed=failed,
            timed_out=late,
        )
        if len(results) < self.min_successes:
            failures: dict[str, str] = {}
            for o in outcomes:
                if o.late:
                    failures[o.key] = f"timed out after {_seconds(self.timeout or 0.0)} s (virtual)"
                elif o.error is not None:
                    failures[o.key] = _describe(o.error)
            raise BroadcastError(self.min_successes, [o.key for o in valid], failures)
        return results

    def _result(self, output: AgentResult, results: list[AgentResult]) -> AgentResult:
        data = output.data if output.data is not None else results
        return output.model_copy(update={"data": data, "usage": add_usage([*results, output])})

    def __repr__(self) -> str:
        return (
            f"Broadcast(agents={list(self.agents)!r}, min_successes={self.min_successes}, "
            f"timeout={self.timeout!r})"
        )


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
