"""The decision log: structured records of what a multi-agent flow decided, and when (virtual time).

``DecisionLog.record(decision, **fields)`` is the JSONL audit-log API of the source article, so code
written against it ports unchanged::

    log = DecisionLog("decisions.jsonl")
    log.record("route", chosen="billing", reason="invoice question")

Each record becomes a :class:`~pytest_agentflows.Decision` with a sequence number, the virtual time of the
flow clock, the kind and the agent (from the current agent context unless given), and the extra fields
converted to plain JSON data, so the log snapshots deterministically.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime
import enum
import json
import os
import pathlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from pydantic import BaseModel, ValidationError

from ._binding import bound_flow
from ._context import IdSource, current_agent, current_scope
from ._models import Decision
from .clock import VirtualClock

__all__ = ["DecisionLog"]

FLOAT_DIGITS = 6
"""Decimal places kept for ``at`` and for floats in :meth:`DecisionLog.as_dicts` and the JSONL file."""

_RESERVED = ("seq", "at", "kind", "id", "parent")

_held: contextvars.ContextVar[dict[int, list[Decision]] | None] = contextvars.ContextVar(
    "agentflows_held_decisions", default=None
)
"""Per thread or task: the decision logs (by ``id``) whose new records are held (``DecisionLog.hold``)."""


_SCALARS = frozenset({int, float, bool, type(None)})
"""Exact types whose values are plain and hold no secret (``str`` may hold one: it is scrubbed)."""


def _sort_key(value: Any) -> tuple[str, str]:
    return (type(value).__name__, json.dumps(value, sort_keys=True, default=str))


def to_plain(value: Any) -> Any:
    """Convert ``value`` to plain JSON data (dict, list, str, int, float, bool, None), deterministically.

    Pydantic models and dataclasses become dicts, tuples lists, sets and frozensets sorted lists, enums
    their value, paths / dates / bytes / other objects strings; dict keys become strings.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, enum.Enum):  # IntEnum / StrEnum are ints / strs too
            return to_plain(value.value)
        return value
    if isinstance(value, enum.Enum):
        return to_plain(value.value)
    if isinstance(value, BaseModel):
        return to_plain(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_plain({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(to_plain(k)): to_plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((to_plain(v) for v in value), key=_sort_key)
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def _rounded(value: Any) -> Any:
    """``value`` with every float rounded to :data:`FLOAT_DIGITS` places (``-0.0`` becomes ``0.0``)."""
    if isinstance(value, float):
        return round(value, FLOAT_DIGITS) + 0.0
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _as_dict(decision: Decision) -> dict[str, Any]:
    head = {
        "seq": decision.seq,
        "at": decision.at,
        "kind": decision.kind,
        "agent": decision.agent,
        "id": decision.id,
        "parent": decision.parent,
    }
    return _rounded({**head, **decision.fields()})  # type: ignore[no-any-return]


class DecisionLog:
    """An ordered, thread-safe log of :class:`~pytest_agentflows.Decision` records.

    Args:
        path: If given, a JSONL file each decision is appended to (one JSON object per line, flushed at
            once); parent directories are created. An existing file is appended to, never truncated.
        clock: Virtual clock giving ``at`` (seconds); without one, ``at`` is ``0.0``.
        scrub: Applied to each field value (plain JSON data) before it is stored; a flow's log passes
            its redactor's, so a secret quoted by a decision (an API error message) is never snapshotted.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        clock: VirtualClock | None = None,
        scrub: Callable[[Any], Any] | None = None,
    ) -> None:
        self.path: pathlib.Path | None = None if path is None else pathlib.Path(path)
        """The JSONL file, or ``None``."""
        self.clock: VirtualClock | None = clock
        """The clock stamping ``at``, or ``None``."""
        self._scrub = scrub
        # a flow wraps its own pool's and log's lock to settle its deferred calls first (flow.on_exchange)
        self._lock: AbstractContextManager[Any] = threading.Lock()
        self._decisions: list[Decision] = []
        self._ids = IdSource()  # outside a flow; inside one the flow's ids are used
        self._forward = True  # an app-made log also records into the active flow's; a flow's own never does

    def record(self, decision: str, **fields: Any) -> Decision:
        """Append a decision and return it.

        Both the article's keyword form ``log.record(decision="route", input=..., output=..., reason=...)``
        and ``log.record("route", chosen=...)`` work. Inside an active flow (the ``agentflow`` fixture), a
        log the app made also records the decision into the flow's log (``agentflow.decisions``), with the
        flow's virtual time as ``at``.

        Args:
            decision: The decision kind (``"route"``, ``"stage_complete"``, …); stored as ``kind``.
            **fields: Extra data, read back as attributes (``d.chosen``). ``agent=`` names the agent
                (default: the current agent context). Values are converted to plain JSON data.

        Returns:
            The recorded decision, with ``seq`` (from 0), ``at`` (virtual seconds, 6 decimals), a
            deterministic ``id`` and its ``parent`` (the enclosing agent run, span, task or handler).

        Raises:
            TypeError: if ``decision`` is not a non-empty string.
            ValueError: if a field is named ``seq``, ``at``, ``kind``, ``id`` or ``parent`` (set by the log).
            OSError: if the JSONL file cannot be written.
        """
        if not isinstance(decision, str) or not decision:
            raise TypeError(
                f"DecisionLog.record() needs the decision kind as a non-empty str, got {decision!r}"
            )
        clash = [name for name in _RESERVED if name in fields]
        if clash:
            raise ValueError(
                f"DecisionLog.record({decision!r}, ...): field name(s) {', '.join(clash)} are reserved "
                "(seq, at, kind, id and parent are set by the log: seq and at for order and virtual time, "
                "id and parent for the audit trail's structure); rename them, e.g. "
                f"{clash[0]}_={fields[clash[0]]!r}"
            )
        return self._record(decision, fields)

    def _record(self, kind: str, fields: dict[str, Any], *, id: str | None = None) -> Decision:
        """:meth:`record` without the checks; ``id`` overrides the generated one (a model call's)."""
        agent = fields.pop("agent", current_agent.get())
        if agent is not None and not isinstance(agent, str):
            agent = str(agent)
        flow = bound_flow()
        if flow is not None and flow.log is not self and self._forward:
            # the app's own log: the flow's log gets the decision too (its time, id and parent)
            shared = flow.log._record(kind, {**fields, "agent": agent}, id=id)
            at = shared.at if self.clock is None else round(self.clock.now(), FLOAT_DIGITS) + 0.0
            return self._append(kind, agent, fields, shared.id, shared.parent, at=at)
        parent = current_scope.get()
        if id is None:
            id = (flow.ids if flow is not None else self._ids).next_id(kind, parent)
        return self._append(kind, agent, fields, id, parent)

    def _append(
        self,
        kind: str,
        agent: str | None,
        fields: dict[str, Any],
        id: str | None,
        parent: str | None,
        *,
        at: float | None = None,
        hold: bool = True,
    ) -> Decision:
        """Append one decision (or hold it, see :meth:`hold`; ``hold=False`` appends to the log anyway)."""
        scrub = self._scrub
        extra = {
            # exact plain scalars as they are (a model call's fields), the rest made plain; strings,
            # lists and mappings scrubbed
            name: value
            if type(value) in _SCALARS
            else (to_plain(value) if scrub is None else scrub(to_plain(value)))
            for name, value in fields.items()
        }
        held = self._held_list() if hold else None
        if held is not None:
            if at is None:
                at = round(self.clock.now(), FLOAT_DIGITS) + 0.0 if self.clock is not None else 0.0
            entry = Decision(seq=-1, at=at, kind=kind, agent=agent, id=id, parent=parent, **extra)
            held.append(entry)
            return entry
        with self._lock:
            if at is None:
                at = round(self.clock.now(), FLOAT_DIGITS) + 0.0 if self.clock is not None else 0.0
            entry = Decision(
                seq=len(self._decisions), at=at, kind=kind, agent=agent, id=id, parent=parent, **extra
            )
            if self.path is not None:
                self._write(entry)
            self._decisions.append(entry)
        return entry

    # -- holding (deterministic order for concurrent branches) ----------------------------------------
    def _held_list(self) -> list[Decision] | None:
        held = _held.get()
        return None if held is None else held.get(id(self))

    def _holding(self) -> bool:
        """Whether decisions recorded in the calling context are held (see :meth:`hold`)."""
        held = _held.get()
        return held is not None and id(self) in held

    @contextmanager
    def hold(self) -> Iterator[list[Decision]]:
        """Hold the decisions recorded in the calling thread or task in a list instead of the log.

        Used by the patterns for branches running in threads, whose decisions would otherwise land in
        the log in wall-clock order: each branch holds its decisions, and the pattern :meth:`commit` commits
        them all in a deterministic order once the branches have joined. Held decisions have ``seq`` -1
        and are not written to the JSONL file until committed. Holds nest (the inner one wins) and follow
        the context into asyncio tasks and context-copying threads.

        Yields:
            The list the held decisions are appended to, in recording order.
        """
        buffer: list[Decision] = []
        current = _held.get() or {}
        token = _held.set({**current, id(self): buffer})
        try:
            yield buffer
        finally:
            _held.reset(token)

    def commit(self, decisions: Iterable[Decision]) -> list[Decision]:
        """Append held decisions (see :meth:`hold`) in the given order, giving each its ``seq``.

        ``at``, ``kind``, ``agent`` and the fields are kept. Inside an enclosing :meth:`hold` of this log,
        the decisions are handed on to that hold instead (so nested concurrent branches commit once, in
        the outermost order).

        Returns:
            The committed decisions (with their final ``seq`` when appended to the log).

        Raises:
            OSError: if the JSONL file cannot be written.
        """
        items = list(decisions)
        held = self._held_list()
        if held is not None:
            held.extend(items)
            return items
        out: list[Decision] = []
        with self._lock:
            for item in items:
                entry = item.model_copy(update={"seq": len(self._decisions)})
                if self.path is not None:
                    self._write(entry)
                self._decisions.append(entry)
                out.append(entry)
        return out

    def _write(self, decision: Decision) -> None:
        assert self.path is not None
        line = json.dumps(_as_dict(decision), ensure_ascii=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()

    # -- reading ---------------------------------------------------------------------------------------
    @property
    def decisions(self) -> list[Decision]:
        """A copy of the decisions, in ``seq`` order."""
        with self._lock:
            return list(self._decisions)

    def __iter__(self) -> Iterator[Decision]:
        return iter(self.decisions)

    def __len__(self) -> int:
        with self._lock:
            return len(self._decisions)

    def of_kind(self, kind: str) -> list[Decision]:
        """The decisions of one kind, in ``seq`` order."""
        return [d for d in self.decisions if d.kind == kind]

    def kinds(self) -> list[str]:
        """The kind of every decision, in ``seq`` order (repeats included)."""
        return [d.kind for d in self.decisions]

    def as_dicts(self) -> list[dict[str, Any]]:
        """The decisions as plain dicts: ``seq, at, kind, agent, id, parent``, then the extra fields in order.

        Floats are rounded to 6 decimal places, so the result snapshots deterministically.
        """
        return [_as_dict(d) for d in self.decisions]

    @staticmethod
    def read_jsonl(path: str | os.PathLike[str]) -> list[Decision]:
        """Read a JSONL decision file (as written with ``path=``) back into decisions.

        Blank lines are skipped.

        Raises:
            OSError: if the file cannot be read.
            ValueError: naming the file and line, if a line is not a JSON object with ``seq``, ``at``
                and ``kind``.
        """
        file = pathlib.Path(path)
        decisions: list[Decision] = []
        with file.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{file}:{number}: not valid JSON ({exc.msg})") from exc
                if not isinstance(data, dict):
                    raise ValueError(f"{file}:{number}: expected a JSON object, got {type(data).__name__}")
                try:
                    decisions.append(Decision(**data))
                except (ValidationError, TypeError) as exc:
                    raise ValueError(
                        f"{file}:{number}: not a decision (needs seq, at and kind): {exc}"
                    ) from exc
        return decisions

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return f"DecisionLog({len(self)} decisions{where})"
