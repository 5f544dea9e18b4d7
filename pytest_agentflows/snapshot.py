"""The syrupy extension for decision logs: readable YAML, one snapshot file per test module.

Each snapshot is a YAML list, one mapping per decision, keys in a fixed order (``seq``, ``at``, ``kind``,
``agent``, then the decision's fields alphabetically), floats rounded to 6 places. Storage is syrupy's
amber layout (``__snapshots__/<module>.agentflows``: every test of a module in one file), because syrupy's
unused-snapshot check is quadratic in the number of files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from syrupy.extensions.amber import AmberSnapshotExtension

from . import _yaml_fast
from ._models import Decision

_FIRST = ("seq", "at", "kind", "agent")


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


def decision_dict(decision: Decision | Mapping[str, Any]) -> dict[str, Any]:
    """One decision as a plain dict with keys in snapshot order."""
    data = decision.model_dump() if isinstance(decision, Decision) else dict(decision)
    out = {k: _plain(data.get(k)) for k in _FIRST}
    for key in sorted(k for k in data if k not in _FIRST):
        out[key] = _plain(data[key])
    return out


def dump_decisions(decisions: Iterable[Decision | Mapping[str, Any]]) -> str:
    """Serialise decisions to the snapshot's YAML text (deterministic).

    The text is what ``yaml.safe_dump(items, sort_keys=False, allow_unicode=True, default_flow_style=False,
    width=100)`` writes; common logs take a fast path that writes the same bytes (:mod:`._yaml_fast`).
    """
    return _yaml_fast.dump([decision_dict(d) for d in decisions])


class DecisionLogExtension(AmberSnapshotExtension):
    """syrupy extension: ``assert agentflow.decisions == decision_snapshot``.

    Accepts a list of :class:`Decision`, a :class:`DecisionLog`, a :class:`Flow` (its decisions) or a list
    of mappings. Anything else is serialised by syrupy's amber serializer.
    """

    file_extension = "agentflows"

    def serialize(self, data: Any, **kwargs: Any) -> str:
        decisions = getattr(data, "decisions", data)
        if isinstance(decisions, list | tuple) and all(isinstance(d, Decision | Mapping) for d in decisions):
            return dump_decisions(decisions)
        return str(super().serialize(data, **kwargs))
