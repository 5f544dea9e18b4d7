"""EventBus: publish/subscribe between agents, with both APIs of the source articles and a loop guard.

Article 000's form: handlers registered with ``@bus.on("intent:code_review")`` and events sent with
``result = await bus.emit("intent:code_review", payload=text)``; the handler receives the event and reads
``event["payload"]``; its return value comes back from ``emit``. Article 003's form: ``bus.subscribe(type,
callback)`` and ``bus.publish(Event(type, payload, source))``, synchronous.

Every handler runs as an agent named after its function (``handle_code_review``), in a scope of its own
(the ``parent`` of what it decides and calls). The bus counts events, not stack depth: handlers that keep
re-emitting each other stop at ``max_events`` with :class:`~pytest_agentflows.EventLoopError`, never with
``RecursionError`` (``emit`` runs each handler in its own asyncio task; a ``publish`` made inside a handler
is queued and delivered by the outermost ``publish``).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import EventLoopError, UnrecordedRequestError, UsageError
from ..runtime._context import AgentScope
from ..runtime._models import Decision
from ..runtime.budget import BudgetExceeded
from ..runtime.deadline import DeadlineExceeded
from ._base import Runtime
from ._errtext import error_text

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["Event", "EventBus", "Handler"]

Handler = Callable[[Any], Any]
"""A sync or async callable taking the :class:`Event`; its return value comes back from ``emit``."""

_STOPPING: tuple[type[BaseException], ...] = (
    BudgetExceeded,
    DeadlineExceeded,
    EventLoopError,
    UnrecordedRequestError,
)
"""Errors that stop the whole cascade and reach the outermost ``emit`` / ``publish`` caller."""


@dataclass(frozen=True)
class Event:
    """One event: ``Event(type, payload, source)`` (positional too).

    ``event["key"]`` reads a key of a mapping payload first (so ``emit(t, payload=x)`` handlers read
    ``event["payload"]``), then the attributes ``type``, ``payload`` and ``source``.
    """

    type: str
    """Event type, e.g. ``"intent:code_review"`` or ``"task.completed"``."""
    payload: Any = None
    """What the event carries (``emit``'s keyword arguments, as a dict)."""
    source: str | None = None
    """Who sent it (an agent name), or ``None``."""

    def __getitem__(self, key: str) -> Any:
        payload = self.payload
        if isinstance(payload, Mapping) and key in payload:
            return payload[key]
        if key in ("type", "payload", "source"):
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        """``event[key]``, or ``default`` when there is no such key."""
        try:
            return self[key]
        except KeyError:
            return default


_publishing: contextvars.ContextVar[deque[tuple[Event, list[Handler]]] | None] = contextvars.ContextVar(
    "agentflows_publishing", default=None
)


class EventBus:
    """In-process publish/subscribe for agents, recording what it delivers.

    Args:
        max_events: Most events the bus delivers in its lifetime (``emit`` and ``publish`` count one
            each); the next raises :class:`~pytest_agentflows.EventLoopError`. Stops feedback loops.
        flow: The flow to record in (bound by the ``agent_event_bus`` fixture); ``None``: the active flow,
            else a standalone runtime.

    Raises:
        ValueError: if ``max_events`` is not a positive int.

    Decisions: ``event_emitted`` (agent = the sender, ``event``, ``source``, ``handlers``: their names),
    ``event_handled`` (agent = the handler, ``event``), ``event_failed`` (agent = the handler, ``event``,
    ``error``: the exception type, ``message``). ``BudgetExceeded``, ``DeadlineExceeded``,
    ``EventLoopError`` and ``UnrecordedRequestError`` raised in a handler reach the outermost
    ``emit``/``publish`` caller; other handler errors become ``event_failed`` and, for ``emit``, are
    raised again.
    """

    def __init__(self, max_events: int = 1000, *, flow: Flow | None = None) -> None:
        if not isinstance(max_events, int) or isinstance(max_events, bool) or max_events < 1:
            raise ValueError(f"EventBus(max_events=...) must be an int >= 1, got {max_events!r}")
        self.max_events = max_events
        self.flow = flow
        self._rt = Runtime.of(flow)
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._lock = threading.Lock()
        self._count = 0
        self._recent: deque[str] = deque(maxlen=16)

    # -- registration ----------------------------------------------------------------------------------
    def on(self, event_type: str) -> Callable[[Handler], Handler]:
        """Decorator registering a handler for ``event_type`` (article 000): ``@bus.on("intent:x")``."""

        def register(fn: Handler) -> Handler:
            self.subscribe(event_type, fn)
            return fn

        return register

    def subscribe(self, event_type: str, callback: Handler) -> None:
        """Register ``callback`` for ``event_type`` (article 003). Handlers run in registration order.

        Raises:
            TypeError: if ``callback`` is not callable or ``event_type`` not a non-empty str.
        """
        if not isinstance(event_type, str) or not event_type:
            raise TypeError(f"an event type must be a non-empty str, got {event_type!r}")
        if not callable(callback):
            raise TypeError(f"an event handler must be callable, got {type(callback).__name__}")
        with self._lock:
            self._handlers[event_type].append(callback)

    def unsubscribe(self, event_type: str, callback: Handler) -> None:
        """Remove a handler (no error if it was not registered)."""
        with self._lock:
            handlers = self._handlers.get(event_type, [])
            if callback in handlers:
                handlers.remove(callback)

    def handlers(self, event_type: str) -> list[Handler]:
        """The handlers of ``event_type``, in registration order."""
        with self._lock:
            return list(self._handlers.get(event_type, []))

    @property
    def events(self) -> int:
        """Events delivered so far (what ``max_events`` limits)."""
        with self._lock:
            return self._count

    @property
    def decisions(self) -> list[Decision]:
        """The decisions of the log the bus records to (the whole flow's, when bound to a flow)."""
        return self._rt.log.decisions

    # -- sending ---------------------------------------------------------------------------------------
    async def emit(self, event_type: str, /, **payload: Any) -> Any:
        """Deliver an event to its handlers, each in its own asyncio task, and return what they return.

        Args:
            event_type: The event type.
            **payload: The event's payload (``emit("intent:x", payload=text)``: ``event["payload"]``).
                ``source=`` names the sender (default: the current agent).

        Returns:
            The single handler's return value; a list of them (registration order) for several handlers;
            ``None`` when no handler is registered.

        Raises:
            EventLoopError: past ``max_events``.
            Exception: whatever a handler raised (after its ``event_failed`` decision).
        """
        from ..runtime._context import current_agent

        source = payload.get("source") if isinstance(payload.get("source"), str) else current_agent.get()
        event = Event(event_type, dict(payload), source)
        handlers = self._admit(event)
        self._rt.clock.attach_loop()
        results = []
        for handler in handlers:
            task = asyncio.ensure_future(self._run_async(handler, event))
            results.append(await task)  # a task per handler: a long cascade never deepens the stack
        if not handlers:
            return None
        return results[0] if len(results) == 1 else results

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to its handlers, synchronously (article 003).

        A ``publish`` made while handlers run (a handler publishing) is queued and delivered, in order,
        by the outermost ``publish`` once the current handler returns. Async handlers run to completion
        on a new event loop (none may be running in this thread: use ``await bus.emit`` there).

        Raises:
            TypeError: if ``event`` is not an :class:`Event`.
            EventLoopError: past ``max_events``.
            BudgetExceeded, DeadlineExceeded, UnrecordedRequestError: raised by a handler.
        """
        if not isinstance(event, Event):
            raise TypeError(f"publish() takes an Event(type, payload, source), got {type(event).__name__}")
        handlers = self._admit(event)  # counted and recorded where it is published (its sender's scope)
        queue = _publishing.get()
        if queue is not None:
            queue.append((event, handlers))
            return
        queue = deque([(event, handlers)])
        token = _publishing.set(queue)
        try:
            while queue:
                current, targets = queue.popleft()
                for handler in targets:
                    self._run_sync(handler, current)
        finally:
            _publishing.reset(token)

    # -- internals -------------------------------------------------------------------------------------
    def _admit(self, event: Event) -> list[Handler]:
        with self._lock:
            if self._count >= self.max_events:
                raise EventLoopError(self.max_events, event.type, list(self._recent))
            self._count += 1
            self._recent.append(event.type)
            handlers = list(self._handlers.get(event.type, []))
        self._rt.log.record(
            "event_emitted",
            agent=event.source,
            event=event.type,
            source=event.source,
            handlers=[_name(h) for h in handlers],
        )
        return handlers

    async def _run_async(self, handler: Handler, event: Event) -> Any:
        with self._handling(handler, event):
            result = handler(event)
            if inspect.isawaitable(result):
                result = await result
        return result

    def _run_sync(self, handler: Handler, event: Event) -> None:
        try:
            with self._handling(handler, event):
                result = handler(event)
                if inspect.isawaitable(result):
                    result = _run_to_end(result, _name(handler))
        except _STOPPING:
            raise
        except Exception:  # recorded as event_failed; publish carries on with the other handlers
            return

    def _handling(self, handler: Handler, event: Event) -> _Handling:
        return _Handling(self, _name(handler), event)


class _Handling:
    """Runs one handler as an agent: its scope, then ``event_handled`` or ``event_failed``."""

    def __init__(self, bus: EventBus, name: str, event: Event) -> None:
        self.bus, self.name, self.event = bus, name, event
        self.scope = AgentScope(name)

    def __enter__(self) -> None:
        self.scope.__enter__()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        log = self.bus._rt.log
        try:
            if exc is None:
                log.record("event_handled", event=self.event.type)
            elif isinstance(exc, Exception) and not isinstance(exc, _STOPPING):
                log.record(
                    "event_failed", event=self.event.type, error=type(exc).__name__, message=error_text(exc)
                )
        finally:
            self.scope.__exit__()


def _name(handler: Handler) -> str:
    name = getattr(handler, "__name__", None)
    return name if isinstance(name, str) and name != "<lambda>" else type(handler).__name__


def _run_to_end(awaitable: Any, name: str) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise UsageError(
            f"handler {name!r} is async and publish() was called from a running event loop, which it would "
            "block. Use `await bus.emit(event_type, **payload)` in async code."
        )

    async def main() -> Any:
        return await awaitable

    return asyncio.run(main())
