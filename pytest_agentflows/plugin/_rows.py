"""The session's report rows, kept as JSON text until the end of the session reads them.

A :class:`~pytest_agentflows.report.FlowRow` with its spans and per-agent spend is some 30 Python objects
the garbage collector tracks; a session of 500 flow tests kept 15,000 of them alive, and every later full
collection walked them all. Each row is stored as its JSON text (which the collector ignores) beside a
tuple of the figures the one-line summary adds up; the rows are parsed back, once, only when a report,
the baseline or a job summary needs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ..report import FlowRow

__all__ = ["FlowRows", "RowTotals", "json_text"]


def json_text(data: Mapping[str, Any]) -> str:
    """``data`` (plain JSON data) as JSON text, by pydantic's serializer (``model_dump_json``'s layout;
    some 5 times faster than :func:`json.dumps`)."""
    from pydantic_core import to_json  # (not at import: the plugin loads this module in every session)

    return to_json(data).decode()


class RowTotals(NamedTuple):
    """What :class:`~pytest_agentflows.report.SessionTotals` adds up of one row (same names as its fields)."""

    outcome: str
    calls: int
    replayed: int
    recorded: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    elapsed_s: float

    @classmethod
    def of(cls, row: FlowRow) -> RowTotals:
        """The figures of ``row``."""
        return cls(
            row.outcome,
            row.calls,
            row.replayed,
            row.recorded,
            row.input_tokens,
            row.output_tokens,
            row.cost_usd,
            row.elapsed_s,
        )


class FlowRows:
    """Report rows in the order they were added: JSON text, plus their totals as plain tuples."""

    def __init__(self) -> None:
        self._texts: list[str] = []
        self._totals: list[RowTotals] = []
        self._parsed: list[FlowRow] | None = None

    def add(self, row: FlowRow) -> None:
        """Keep ``row`` (as text)."""
        self._texts.append(row.model_dump_json())
        self._totals.append(RowTotals.of(row))
        self._parsed = None

    def add_data(self, data: Mapping[str, Any]) -> None:
        """Keep a row given as plain data (:func:`~pytest_agentflows.report.row_data`), as JSON text."""
        self._texts.append(json_text(data))
        self._totals.append(RowTotals(*(data[name] for name in RowTotals._fields)))
        self._parsed = None

    def add_json(self, text: str) -> None:
        """Keep a row sent as JSON (by a pytest-xdist worker).

        Raises:
            pydantic.ValidationError: ``text`` is not a row's JSON.
        """
        from ..report import FlowRow

        row = FlowRow.model_validate_json(text)
        self._texts.append(text)
        self._totals.append(RowTotals.of(row))
        self._parsed = None

    def texts(self) -> list[str]:
        """The rows as JSON text."""
        return list(self._texts)

    def totals(self) -> list[RowTotals]:
        """The figures of each row, for :func:`~pytest_agentflows.report.summary_line`."""
        return list(self._totals)

    def rows(self) -> list[FlowRow]:
        """The rows as :class:`~pytest_agentflows.report.FlowRow` objects (parsed on the first call)."""
        if self._parsed is None:
            from ..report import FlowRow

            self._parsed = [FlowRow.model_validate_json(text) for text in self._texts]
        return self._parsed

    def __len__(self) -> int:
        return len(self._texts)
