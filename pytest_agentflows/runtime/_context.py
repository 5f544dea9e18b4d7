"""Which agent is running, and in which scope: context variables that follow asyncio tasks and threads.

:data:`current_agent` names the agent whose model calls are being made; :data:`current_scope` is the id of
the innermost *scope* (an agent run, a span, an orchestrator task, an event handler), the ``parent`` of every
decision and model call made inside it. Scope ids are deterministic paths (``"router#1/billing#1"``): each
is its parent's id, the scope's name and a counter per parent and name, so the same flow gives the same
ids on every run.

``asyncio`` copies the context into every task (``gather``, ``create_task``) and ``asyncio.to_thread`` /
``loop.run_in_executor`` run in a copy too. A plain ``threading.Thread`` does not, before Python 3.14:
while a flow is active, :func:`inherit_context_in_threads` makes threads started inside it run in a copy
of the starting thread's context, so an agent that spawns a worker thread keeps its name.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

current_agent: contextvars.ContextVar[str | None] = contextvars.ContextVar("agentflows_agent", default=None)
"""Name of the agent whose model calls are being made, or ``None``."""

current_flow: contextvars.ContextVar[object | None] = contextvars.ContextVar("agentflows_flow", default=None)
"""The flow whose code is running (set by ``Flow.activate``), or ``None``; follows tasks and threads.

A request is attributed to this flow: a thread started in one test that outlives it still carries that
test's flow, so its late requests are never blamed on the test running at the time.
"""


current_scope: contextvars.ContextVar[str | None] = contextvars.ContextVar("agentflows_scope", default=None)
"""Id of the innermost agent run, span, task or event handler, or ``None`` at the top of a flow."""


class IdSource:
    """Deterministic ids: ``<parent>/<label>#<n>``, numbered per parent scope and label from 1.

    A flow owns one (reset with the flow); outside a flow a process-wide one is used. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str | None, str], int] = {}

    def next_id(self, label: str, parent: str | None = None) -> str:
        """A new id for ``label`` under ``parent`` (default: the current scope)."""
        if parent is None:
            parent = current_scope.get()
        with self._lock:
            n = self._counters.get((parent, label), 0) + 1
            self._counters[(parent, label)] = n
        return f"{label}#{n}" if parent is None else f"{parent}/{label}#{n}"


_fallback_ids = IdSource()
_id_source: contextvars.ContextVar[IdSource | None] = contextvars.ContextVar("agentflows_ids", default=None)
_global_ids: list[IdSource] = []  # stack of the active flows' sources, for threads that did not inherit


def id_source() -> IdSource:
    """The active flow's :class:`IdSource` (see :func:`use_ids`), else the process-wide one."""
    source = _id_source.get()
    if source is not None:
        return source
    return _global_ids[-1] if _global_ids else _fallback_ids


@contextmanager
def use_ids(source: IdSource) -> Iterator[None]:
    """Make ``source`` the id source of the calling context (and of threads without one) while active."""
    token = _id_source.set(source)
    _global_ids.append(source)
    try:
        yield
    finally:
        _global_ids.remove(source)
        try:
            _id_source.reset(token)
        except ValueError:  # left in another context than entered
            _id_source.set(None)


class Scope:
    """A structural scope (agent run, span, task, event handler): its id becomes the ``parent`` inside.

    Args:
        name: Label of the scope in ids (an agent name, ``span:plan``, ``task:t1``).

    Use once, as a (sync or async) context manager; :attr:`id` is set on entering.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.id: str | None = None
        self._token: contextvars.Token[str | None] | None = None

    def __enter__(self) -> str:
        self.id = id_source().next_id(self.name)
        self._token = current_scope.set(self.id)
        return self.id

    def __exit__(self, *exc: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                current_scope.reset(token)
            except ValueError:
                current_scope.set(None)


class AgentScope:
    """Context manager and decorator that attributes model calls to ``name`` (see ``Flow.agent``)."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"an agent name must be a non-empty string, got {name!r}")
        self.name = name
        self._tokens: list[tuple[contextvars.Token[str | None], Scope]] = []

    def __enter__(self) -> str:
        scope = Scope(self.name)
        scope.__enter__()  # an agent run: the parent of what the agent decides and calls
        self._tokens.append((current_agent.set(self.name), scope))
        return self.name

    def __exit__(self, *exc: object) -> None:
        token, scope = self._tokens.pop()
        current_agent.reset(token)
        scope.__exit__()

    async def __aenter__(self) -> str:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __call__(self, fn: F) -> F:
        import inspect

        name = self.name
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with AgentScope(name):
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with AgentScope(name):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


_patch_lock = threading.Lock()
_patch_depth = 0
_original_start: Callable[[threading.Thread], None] | None = None


def _start_with_context(self: threading.Thread) -> None:
    ctx = contextvars.copy_context()
    if getattr(getattr(self, "_target", None), "__module__", "") == "concurrent.futures.thread":
        # an executor's worker serves whoever submits work later (a pool may outlive the test that started
        # its threads): it belongs to no flow, so its requests go to the cassette active at the time
        ctx.run(current_flow.set, None)
    run = self.run

    def run_in_context() -> None:
        ctx.run(run)

    self.run = run_in_context  # type: ignore[method-assign]
    assert _original_start is not None
    _original_start(self)


@contextmanager
def inherit_context_in_threads() -> Iterator[None]:
    """While active, ``threading.Thread.start`` runs the thread in a copy of the starter's context.

    Re-entrant and thread-safe (a counter); restores the original ``start`` when the last user exits.
    """
    global _patch_depth, _original_start
    with _patch_lock:
        if _patch_depth == 0:
            _original_start = threading.Thread.start
            threading.Thread.start = _start_with_context  # type: ignore[method-assign]
        _patch_depth += 1
    try:
        yield
    finally:
        with _patch_lock:
            _patch_depth -= 1
            if _patch_depth == 0 and _original_start is not None:
                threading.Thread.start = _original_start  # type: ignore[method-assign,assignment]
                _original_start = None
