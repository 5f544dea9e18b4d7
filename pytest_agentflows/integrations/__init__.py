"""Framework integrations: a framework's own runs named and logged in the flow, with no glue code.

Layer 7 of the package (see ``docs/reference.md``, "Package map"). Each integration is a small adapter on
its framework's official extension API (openai-agents: a tracing processor; OpenTelemetry: a span
processor), switched on for one flow
and off at its end. :func:`enabled` switches on every integration whose framework is *already imported*
(``sys.modules``): importing the plugin never imports a framework, and a suite that does not use one pays
nothing. The ``agentflow`` fixture calls it for every flow (ini ``agentflows_integrations``).

Every integration names the agent of each model call made inside the framework's agent runs and records
``agent_run`` (agent, parent_agent), ``handoff`` (from_agent, to_agent) and ``tool_run`` (agent, tool,
error) decisions.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["INTEGRATIONS", "enabled"]

INTEGRATIONS: dict[str, tuple[str, str]] = {
    "openai_agents": ("agents", ".openai_agents"),
    "otel": ("opentelemetry.sdk.trace", ".otel"),
    "langgraph": ("langgraph", ".langgraph"),
    "crewai": ("crewai", ".crewai"),
}
"""Integration name -> (the framework's top-level module, our adapter module)."""

Install = Callable[["Flow"], Callable[[], None] | None]
"""An adapter's ``install(flow)``: switches it on, returns how to switch it off (``None``: not applicable)."""


def parse_names(value: str | Iterable[str] | None, *, where: str) -> tuple[str, ...] | None:
    """The integrations a setting asks for: ``None`` for ``auto``, ``()`` for ``none``, else the names.

    Args:
        value: ``"auto"`` (the default), ``"none"``, or integration names (a list, or one string with
            names separated by commas, spaces or lines).
        where: Where the value comes from, for the error message (e.g. ``"ini agentflows_integrations"``).

    Raises:
        UsageError: for an unknown integration name, listing the valid ones.
    """
    if value is None:
        return None
    names = value.replace(",", " ").split() if isinstance(value, str) else [str(v) for v in value]
    if names in (["auto"], []):
        return None
    if names == ["none"]:
        return ()
    unknown = [n for n in names if n not in INTEGRATIONS]
    if unknown:
        raise UsageError(
            f"{where}: unknown integration(s) {', '.join(map(repr, unknown))}; use 'auto', 'none' or any of "
            f"{', '.join(sorted(INTEGRATIONS))}"
        )
    return tuple(names)


@contextmanager
def enabled(flow: Flow, names: Iterable[str] | None = None) -> Iterator[list[str]]:
    """Switch on, while the block runs, the integrations of ``flow`` whose frameworks are imported.

    Args:
        flow: The flow whose model calls get named and whose log gets the framework's decisions.
        names: Which integrations may switch on (``None``: all of :data:`INTEGRATIONS`). One whose
            framework is not in ``sys.modules`` stays off: it is never imported here.

    Yields:
        The names of the integrations switched on, in :data:`INTEGRATIONS` order.
    """
    wanted = set(INTEGRATIONS) if names is None else set(names)
    on: list[str] = []
    with ExitStack() as stack:
        for name, (framework, module) in INTEGRATIONS.items():
            if name not in wanted or framework not in sys.modules:
                continue
            install: Install = importlib.import_module(module, __name__).install
            off = install(flow)
            if off is not None:
                stack.callback(off)
                on.append(name)
        yield on
