"""Tracer: the articles' minimal spans (``with tracer.span(name) as span:``), as decisions on the flow clock.

::

    tracer = Tracer(export_path="traces.jsonl")
    with tracer.span("plan") as span:
        span.set_attribute("tasks", 3)
        span.add_event("planned", model="gpt-4o-mini")

A span is a scope: the decisions and model calls made inside it have it as their ``parent``. When it
ends, a ``span`` decision records its name, start and duration (virtual seconds on the flow clock; real
seconds outside a flow), attributes and events; with ``export_path`` each span is also appended to a JSONL
file.
"""

from __future__ import annotations

import json
import os
import pathlib
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..runtime._context import Scope
from ..runtime.clock import VirtualClock
from ..runtime.decisions import to_plain
from ._base import Runtime

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["Span", "Tracer"]


class Span:
    """One span of a :class:`Tracer`; use it as a (sync or async) context manager, once.

    Attributes:
        name: The span's name.
        attributes: Set with :meth:`set_attribute` (plain JSON data).
        events: Added with :meth:`add_event`: ``{"name", "at", **attributes}`` (``at`` in seconds).
        id: The span's scope id once entered (the ``parent`` of what happens inside).
        start: Clock time it was entered, seconds.
        duration: Seconds it lasted, once ended (``None`` before).
        error: ``"Type: message"`` when the block raised, else ``None``.
    """

    def __init__(self, tracer: Tracer, name: str) -> None:
        self.tracer = tracer
        self.name = name
        self.attributes: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.id: str | None = None
        self.start = 0.0
        self.duration: float | None = None
        self.error: str | None = None
        self._scope = Scope(name)

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute (converted to plain JSON data)."""
        self.attributes[str(key)] = to_plain(value)

    def add_event(self, name: str, attributes: dict[str, Any] | None = None, **fields: Any) -> None:
        """Add a timestamped event: ``span.add_event("retry", attempt=2)`` or with an attributes dict."""
        event: dict[str, Any] = {"name": name, "at": round(self.tracer.clock.now(), 6)}
        event.update({str(k): to_plain(v) for k, v in {**(attributes or {}), **fields}.items()})
        self.events.append(event)

    def __enter__(self) -> Span:
        self.start = round(self.tracer.clock.now(), 6)
        self.id = self._scope.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.duration = round(self.tracer.clock.now() - self.start, 6)
            if exc is not None:
                self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._scope.__exit__()
        self.tracer._ended(self)

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def as_dict(self) -> dict[str, Any]:
        """The span as plain data (what the ``span`` decision and the JSONL export hold)."""
        return {
            "span": self.name,
            "id": self.id,
            "start": self.start,
            "duration": self.duration,
            "attributes": dict(self.attributes),
            "events": list(self.events),
            "error": self.error,
        }


class Tracer:
    """Spans around agent work, recorded as ``span`` decisions (and optionally exported as JSONL).

    Args:
        export_path: JSONL file each ended span is appended to (parent directories created), or ``None``.
        flow: The flow to record in; ``None``: the active flow, else a standalone runtime.

    Decision ``span`` (agent = the current agent): ``span`` (name), ``start``, ``duration`` (seconds),
    ``attributes``, ``events`` and ``error`` (``None`` unless the block raised; the error propagates).
    Its ``parent`` is the enclosing scope; what happens inside the span has the span as ``parent``.
    """

    def __init__(
        self, export_path: str | os.PathLike[str] | None = None, *, flow: Flow | None = None
    ) -> None:
        self.export_path = None if export_path is None else pathlib.Path(export_path)
        self._rt = Runtime.of(flow)
        self.clock: VirtualClock = self._rt.clock
        self.spans: list[Span] = []
        """Ended spans, in the order they ended."""
        self._lock = threading.Lock()

    def span(self, name: str) -> Span:
        """A new span named ``name``, to use as ``with tracer.span(name) as span:``.

        Raises:
            TypeError: if ``name`` is not a non-empty str.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"a span name must be a non-empty str, got {name!r}")
        return Span(self, name)

    def _ended(self, span: Span) -> None:
        data = span.as_dict()
        with self._lock:
            self.spans.append(span)
        self._rt.log.record(
            "span",
            span=span.name,
            start=span.start,
            duration=span.duration,
            attributes=data["attributes"],
            events=data["events"],
            error=span.error,
        )
        if self.export_path is not None:
            self.export_path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, self.export_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(data, ensure_ascii=False) + "\n")
