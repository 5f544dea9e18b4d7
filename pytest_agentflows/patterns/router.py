"""Router: one classifier call picks the one specialist agent that handles the input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import RoutingError
from ._base import Agent, Call, Pattern, Steps, add_usage

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["Router"]


class Router(Pattern):
    """Send the input to the agent whose route key the classifier answers.

    The classifier runs as agent ``"router"``; its answer (whitespace stripped) is looked up in ``routes``:
    exactly first, then ignoring case, surrounding quotes and a final period (``"Billing."`` finds
    ``billing``). The chosen agent runs as its route key and gets the same input.

    Decisions (see the router docs page):

    * ``route`` (agent ``"router"``): ``chosen`` (the route key that runs; ``None`` when none does),
      ``output`` (the classifier's answer) and ``reason``.

    Args:
        classify: Agent answering a route key for the input.
        routes: Route key -> agent. At least one route.
        fallback: What runs when the answer is not a route: an agent (run as ``"fallback"``) or the key of
            one of ``routes``. ``None``: raise :class:`~pytest_agentflows.RoutingError`.
        flow: The flow to run in (bound by the ``agent_router`` fixture); ``None``: standalone.

    Raises:
        ValueError: for no routes, a non-string route key or a fallback key that is not a route.

    ``await router.run(input)`` / ``router.run_sync(input)`` return the chosen agent's
    :class:`~pytest_agentflows.AgentResult` (its ``agent`` is the route key, ``"fallback"`` for a fallback
    agent; ``usage`` covers the classifier's and the agent's calls) and raise ``RoutingError`` for an
    unknown route without fallback, naming the classifier's answer and the known routes.
    """

    def __init__(
        self,
        classify: Agent,
        routes: Mapping[str, Agent],
        fallback: Agent | str | None = None,
        *,
        flow: Flow | None = None,
    ) -> None:
        super().__init__(flow=flow)
        if not routes:
            raise ValueError("Router(routes=...) needs at least one route key -> agent")
        bad = [key for key in routes if not isinstance(key, str) or not key]
        if bad:
            raise ValueError(f"Router route keys must be non-empty strings, got {bad!r}")
        if isinstance(fallback, str) and fallback not in routes:
            raise ValueError(
                f"Router(fallback={fallback!r}) names no route; known routes: {', '.join(sorted(routes))}"
            )
        self.classify = classify
        self.routes: dict[str, Agent] = dict(routes)
        self.fallback = fallback

    def _agents(self) -> list[Any]:
        extra = [] if self.fallback is None or isinstance(self.fallback, str) else [self.fallback]
        return [self.classify, *self.routes.values(), *extra]

    def _match(self, output: str) -> str | None:
        if output in self.routes:
            return output
        folded = output.strip("\"'`.").strip().casefold()
        matches = [key for key in self.routes if key.casefold() == folded]
        return matches[0] if len(matches) == 1 else None

    def _steps(self, input: Any) -> Steps:
        label = yield Call(self.classify, "router", input)
        output = label.text.strip()
        key = self._match(output)
        log = self._rt.log
        known = ", ".join(sorted(self.routes))
        if key is not None:
            name, agent = key, self.routes[key]
            reason = f"classifier answered {output!r}"
        elif self.fallback is not None:
            if isinstance(self.fallback, str):
                name, agent = self.fallback, self.routes[self.fallback]
            else:
                name, agent = "fallback", self.fallback
            reason = (
                f"classifier answered {output!r}, which is not a route (known: {known}); using the fallback"
            )
        else:
            reason = f"classifier answered {output!r}, which is not a route (known: {known}); no fallback"
            log.record("route", agent="router", chosen=None, output=output, reason=reason)
            raise RoutingError(output, list(self.routes))
        log.record("route", agent="router", chosen=name, output=output, reason=reason)
        result = yield Call(agent, name, input)
        return result.model_copy(update={"usage": add_usage([label, result])})

    def __repr__(self) -> str:
        return f"Router(routes={sorted(self.routes)!r}, fallback={self.fallback!r})"
