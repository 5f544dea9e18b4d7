"""The syrupy extension for decision logs: readable YAML, one snapshot file per test module.

Each snapshot is a YAML list, one mapping per decision, keys in a fixed order (``seq``, ``at``, ``kind``,
``agent``, then the decision's fields alphabetically), floats rounded to 6 places. By default the
measurement fields (:data:`MEASUREMENT_FIELDS`: virtual times, latencies, tokens, US dollars) are left out,
so a snapshot changes when coordination changes, not when a model answered faster or with other words;
:class:`MeasuredDecisionLogExtension` keeps them (ini ``agentflows_snapshot_measurements``, marker
``agentflow(snapshot_measurements=True)``). Storage is syrupy's
amber layout (``__snapshots__/<module>.agentflows``: every test of a module in one file), because syrupy's
unused-snapshot check is quadratic in the number of files.

Writes are atomic: syrupy replaces an amber file atomically only when its file lock is on (under
pytest-xdist); otherwise it rewrites the file in place, and a process killed mid-write would leave a
truncated snapshot file. :class:`AtomicAmberSerializer` writes to syrupy's own sidecar
``<file>.agentflows.tmp`` (which syrupy never takes for a snapshot file) and renames it over the file.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from syrupy.data import SnapshotCollection
from syrupy.extensions.amber import AmberSnapshotExtension
from syrupy.extensions.amber.serializer import AmberDataSerializer, MalformedAmberFile

from ..errors import SnapshotFileError
from ..runtime._models import Decision
from . import _yaml_fast

_FIRST = ("seq", "at", "kind", "agent")

MEASUREMENT_FIELDS: frozenset[str] = frozenset(
    {
        "at",  # virtual seconds at which the decision was recorded (sums of recorded latencies)
        "latency_s",  # model_call: recorded latency of the call
        "input_tokens",  # model_call
        "output_tokens",  # model_call
        "cost_usd",  # model_call, stage_complete
        "tokens",  # stage_complete
        "spent_usd",  # pipeline_halted
        "remaining_usd",  # pipeline_halted
        "elapsed_s",  # supervisor_timeout
        "critique_chars",  # supervisor_review: length of the reviewer's text
    }
)
"""Top-level decision fields a snapshot leaves out unless measurements are asked for.

Measured values: they change when a model answers faster, or with other words or token counts, while the
coordination (which decisions, their order, kinds, agents, routes, verdicts, failures) stays the same.
Every other field, including any a later version adds, is structure and stays in the snapshot.
"""


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "model_dump"):
        return _plain(value.model_dump(mode="json"))
    return value


def decision_dict(decision: Decision | Mapping[str, Any], *, measurements: bool = True) -> dict[str, Any]:
    """One decision as a plain dict with keys in snapshot order.

    Args:
        decision: A decision, or a mapping with its fields.
        measurements: Keep the :data:`MEASUREMENT_FIELDS`; ``False`` leaves them out (the order of the
            other keys is the same either way).
    """
    # ids and parents are structure, not content: a Decision's snapshot leaves them out (``seq`` orders the
    # log), so snapshots stay as they were; snapshot ``log.as_dicts()`` to include them.
    data = decision.model_dump(exclude={"id", "parent"}) if isinstance(decision, Decision) else dict(decision)
    skip: frozenset[str] = frozenset() if measurements else MEASUREMENT_FIELDS
    out = {k: _plain(data.get(k)) for k in _FIRST if k not in skip}
    for key in sorted(k for k in data if k not in _FIRST and k not in skip):
        out[key] = _plain(data[key])
    return out


def dump_decisions(decisions: Iterable[Decision | Mapping[str, Any]], *, measurements: bool = True) -> str:
    """Serialise decisions to the snapshot's YAML text (deterministic).

    The text is what ``yaml.safe_dump(items, sort_keys=False, allow_unicode=True, default_flow_style=False,
    width=100)`` writes; common logs take a fast path that writes the same bytes (:mod:`._yaml_fast`).
    ``measurements=False`` leaves the :data:`MEASUREMENT_FIELDS` out (what ``decision_snapshot`` does by
    default).
    """
    return _yaml_fast.dump([decision_dict(d, measurements=measurements) for d in decisions])


_NEWLINES = re.compile(r"\r\n|\r|\n")


def snapshot_file_problem(path: str | os.PathLike[str]) -> tuple[str, str] | None:
    """``(place, reason)`` of what makes a snapshot file unreadable by syrupy's amber reader, or ``None``.

    Checks what the reader raises on (bytes that are not UTF-8, a version marker below the first line, a
    ``# name:`` marker without a name). A missing or other-version ``# serializer version:`` line is not a
    problem here: syrupy reports such snapshots as needing regeneration, and ``--snapshot-update`` rewrites
    them. A missing file is not a problem either (the snapshot does not exist yet).
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return "", f"cannot open the file ({exc.strerror or exc})"
    # every assertion of a module reads the same file: check each distinct content once
    return _problem_in(raw)


@functools.lru_cache(maxsize=64)
def _problem_in(raw: bytes) -> tuple[str, str] | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = len(_NEWLINES.findall(raw[: exc.start].decode("utf-8", "replace"))) + 1
        return f"line {at}, byte {exc.start}", f"not UTF-8 text ({exc.reason})"
    prefix: str = AmberDataSerializer._marker_prefix
    markers = AmberDataSerializer.Marker
    for number, text_line in enumerate(_NEWLINES.split(text), start=1):
        if not text_line.startswith(prefix):
            continue
        key, _, value = text_line[len(prefix) :].partition(":")
        key = key.rstrip(" \r\n")
        if key == markers.Version and number > 1:
            return f"line {number}", "the '# serializer version:' marker must be the first line"
        if key == markers.Name and not value.strip():
            return f"line {number}", "a '# name:' marker without a snapshot name"
    return None


class _TolerantAmberSerializer(AmberDataSerializer):
    """syrupy's amber reader, except that an unreadable file reads as an empty collection to regenerate.

    syrupy reads every snapshot file at the end of the session (unused-snapshot report, merging on write);
    an unreadable file must not crash that. The assertion itself reports the file and the place (see
    :meth:`DecisionLogExtension.read_snapshot_data_from_location`).
    """

    @classmethod
    def read_file(cls, filepath: str) -> SnapshotCollection:
        try:
            return super().read_file(filepath)
        except (UnicodeDecodeError, MalformedAmberFile, OSError):
            collection = SnapshotCollection(location=filepath)
            collection.tainted = True
            return collection


def _syrupy_locks() -> bool:
    try:
        from syrupy.utils import snapshot_file_lock_enabled
    except ImportError:  # syrupy < 5: no file locking at all
        return False
    return bool(snapshot_file_lock_enabled())


_WRITE_TAKES_FILE_LOCK = "file_lock" in inspect.signature(AmberDataSerializer.write_file).parameters


class AtomicAmberSerializer(_TolerantAmberSerializer):
    """syrupy's amber serializer whose file writes are always atomic (temporary sidecar + ``os.replace``).

    Reads are tolerant (see :class:`_TolerantAmberSerializer`): with ``--snapshot-update``, an unreadable
    file is replaced by a complete new one.
    """

    @classmethod
    def write_file(  # type: ignore[override]
        cls, snapshot_collection: SnapshotCollection, merge: bool = False, **kwargs: Any
    ) -> None:
        """Write (``merge``: read, merge and write) the collection's file; a crash leaves the old file.

        With syrupy's file lock on (pytest-xdist), syrupy's own locked atomic write runs unchanged.
        """
        lock = kwargs.get("file_lock")
        if lock if lock is not None else _syrupy_locks():
            super().write_file(snapshot_collection, merge, **kwargs)
            return
        target = Path(snapshot_collection.location)
        collection = snapshot_collection
        if merge:
            collection = cls.read_file(str(target))
            collection.merge(snapshot_collection)
        staged = SnapshotCollection(location=f"{target}.tmp")
        for snapshot in collection:
            staged.add(snapshot)
        extra: dict[str, Any] = {k: v for k, v in kwargs.items() if k == "name_order"}
        if _WRITE_TAKES_FILE_LOCK:
            extra["file_lock"] = False  # the sidecar is ours alone: no syrupy lock around it
        try:
            super().write_file(staged, False, **extra)
            with open(staged.location, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(staged.location, target)
        finally:
            Path(staged.location).unlink(missing_ok=True)


class DecisionLogExtension(AmberSnapshotExtension):
    """syrupy extension: ``assert agentflow.decisions == decision_snapshot``.

    Accepts a list of :class:`Decision`, a :class:`DecisionLog`, a :class:`Flow` (its decisions) or a list
    of mappings. Anything else is serialised by syrupy's amber serializer. Leaves the
    :data:`MEASUREMENT_FIELDS` out; :class:`MeasuredDecisionLogExtension` keeps them.
    """

    measurements: ClassVar[bool] = False
    """Whether snapshots keep the :data:`MEASUREMENT_FIELDS`."""
    file_extension = "agentflows"
    serializer_class = AtomicAmberSerializer

    def read_snapshot_data_from_location(
        self, snapshot_location: str, snapshot_name: str, session_id: str
    ) -> Any:
        """syrupy's read, after checking that the file is readable.

        Raises:
            SnapshotFileError: the snapshot file cannot be read; names the file and the line.
        """
        problem = snapshot_file_problem(snapshot_location)
        if problem is not None:
            raise SnapshotFileError(snapshot_location, *problem)
        return super().read_snapshot_data_from_location(snapshot_location, snapshot_name, session_id)

    def serialize(self, data: Any, **kwargs: Any) -> str:
        decisions = getattr(data, "decisions", data)
        if isinstance(decisions, list | tuple) and all(isinstance(d, Decision | Mapping) for d in decisions):
            return dump_decisions(decisions, measurements=self.measurements)
        return str(super().serialize(data, **kwargs))


class MeasuredDecisionLogExtension(DecisionLogExtension):
    """:class:`DecisionLogExtension` keeping virtual times, latencies, tokens and USD in the snapshot.

    Same file (``__snapshots__/<module>.agentflows``); chosen by ini ``agentflows_snapshot_measurements =
    true`` or ``@pytest.mark.agentflow(snapshot_measurements=True)``.
    """

    measurements: ClassVar[bool] = True
