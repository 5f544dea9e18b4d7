"""Which agent is running: a context variable that follows asyncio tasks and the threads they start.

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


class AgentScope:
    """Context manager and decorator that attributes model calls to ``name`` (see ``Flow.agent``)."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"an agent name must be a non-empty string, got {name!r}")
        self.name = name
        self._tokens: list[contextvars.Token[str | None]] = []

    def __enter__(self) -> str:
        self._tokens.append(current_agent.set(self.name))
        return self.name

    def __exit__(self, *exc: object) -> None:
        current_agent.reset(self._tokens.pop())

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
