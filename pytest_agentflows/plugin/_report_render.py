"""Rendering of the flow report: the terminal table, the SVG timeline and the self-contained HTML page.

Pure functions over :mod:`pytest_agentflows.report` data (no pytest): the plugin writes what they return.
Terminal lines are lists of ``(text, markup)`` segments, ``markup`` being keyword arguments of pytest's
``TerminalWriter`` (``{"red": True, "bold": True}``); the plugin applies them only when the terminal
has markup. The HTML page loads nothing from the network: the timelines are inline SVG drawn here, and
each flow's Mermaid source sits in a ``<details>`` block for pasting into Mermaid-aware tools.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from html import escape

from ..cassette._store import atomic_write_text
from ..report import AgentflowsReport, FlowRow, Growth, Span, agent_order, summary_line

__all__ = [
    "Line",
    "Markup",
    "growth_lines",
    "html_page",
    "markdown_summary",
    "table_lines",
    "timeline_svg",
    "write_html",
    "write_json",
]

Markup = dict[str, bool]
"""Keyword arguments of ``TerminalWriter.write`` (``red``, ``green``, ``bold``, …)."""
Line = list[tuple[str, Markup]]
"""One terminal line as ``(text, markup)`` segments."""

_PLAIN: Markup = {}
_BAD: Markup = {"red": True, "bold": True}
_OUTCOME: dict[str, Markup] = {
    "passed": {"green": True},
    "failed": {"red": True, "bold": True},
    "error": {"red": True, "bold": True},
    "skipped": {"yellow": True},
}


# -- cell formats ----------------------------------------------------------------------------------------
def usd(value: float | None) -> str:
    """US dollars with six decimals (``$0.000123``), ``$?`` when unknown."""
    if value is None:
        return "$?"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):.6f}"


def seconds(value: float) -> str:
    """Virtual seconds with three decimals."""
    return f"{value:.3f}"


def budget_margin(row: FlowRow) -> str:
    """``cap - spend`` in USD and/or tokens (``$0.000900 / 120 tok``), ``-`` without a cap."""
    parts = []
    if row.budget_usd is not None:
        parts.append(usd(row.budget_margin_usd))
    if row.budget_margin_tokens is not None:
        parts.append(f"{row.budget_margin_tokens:,} tok")
    return " / ".join(parts) or "-"


def deadline_margin(row: FlowRow) -> str:
    """``deadline - elapsed`` in virtual seconds, ``-`` without a deadline."""
    return "-" if row.deadline_margin_s is None else f"{row.deadline_margin_s:.3f} s"


def _over_budget(row: FlowRow) -> bool:
    return (row.budget_margin_usd is not None and row.budget_margin_usd < 0) or (
        row.budget_margin_tokens is not None and row.budget_margin_tokens < 0
    )


def _late(row: FlowRow) -> bool:
    return row.deadline_margin_s is not None and row.deadline_margin_s < 0


# -- terminal --------------------------------------------------------------------------------------------
Cell = tuple[str, Markup]

FLOW_COLUMNS = (
    "calls",
    "in tok",
    "out tok",
    "USD",
    "virtual s",
    "budget margin",
    "deadline margin",
    "repl/rec",
    "outcome",
    "test",
)


def _grid(header: Sequence[str], rows: Sequence[Sequence[Cell]], *, indent: str = "") -> list[Line]:
    """Right-aligned columns except the last (left-aligned, never padded: long test ids do not shift)."""
    widths = [len(h) for h in header]
    for cells in rows:
        for i, (text, _) in enumerate(cells):
            widths[i] = max(widths[i], len(text))
    last = len(header) - 1

    def line(cells: Sequence[Cell]) -> Line:
        out: Line = [(indent, _PLAIN)] if indent else []
        for i, (text, markup) in enumerate(cells):
            if i:
                out.append(("  ", _PLAIN))
            out.append((text if i == last else text.rjust(widths[i]), markup))
        return out

    return [line([(h, {"bold": True}) for h in header]), *(line(c) for c in rows)]


def _flow_cells(row: FlowRow) -> list[Cell]:
    return [
        (str(row.calls), _PLAIN),
        (f"{row.input_tokens:,}", _PLAIN),
        (f"{row.output_tokens:,}", _PLAIN),
        (usd(row.cost_usd), _PLAIN),
        (seconds(row.elapsed_s), _PLAIN),
        (budget_margin(row), _BAD if _over_budget(row) else _PLAIN),
        (deadline_margin(row), _BAD if _late(row) else _PLAIN),
        (f"{row.replayed}/{row.recorded}", _PLAIN),
        (row.outcome, _OUTCOME.get(row.outcome, _PLAIN)),
        (row.test, _PLAIN),
    ]


def agent_lines(row: FlowRow, *, indent: str = "  ") -> list[Line]:
    """The per-agent spend table of one flow (calls, tokens, USD)."""
    if not row.agents:
        return [[(f"{indent}(no model calls)", _PLAIN)]]
    cells = [
        [
            (str(a.calls), _PLAIN),
            (f"{a.input_tokens:,}", _PLAIN),
            (f"{a.output_tokens:,}", _PLAIN),
            (usd(a.cost_usd), _PLAIN),
            (a.agent, _PLAIN),
        ]
        for a in row.agents
    ]
    return _grid(("calls", "in tok", "out tok", "USD", "agent"), cells, indent=indent)


def table_lines(rows: Sequence[FlowRow]) -> list[Line]:
    """The ``--agentflows-report`` table (one line per flow test, sorted by test id), then the spend per
    agent of each failed flow."""
    ordered = sorted(rows, key=lambda r: r.test)
    lines = _grid(FLOW_COLUMNS, [_flow_cells(r) for r in ordered])
    for row in ordered:
        if row.outcome in ("failed", "error"):
            lines.append(
                [("spend per agent of ", _PLAIN), (row.outcome, _BAD), (f" flow {row.test}:", _PLAIN)]
            )
            lines.extend(agent_lines(row))
    return lines


def plain(line: Line) -> str:
    """A terminal line without markup."""
    return "".join(text for text, _ in line)


# -- baseline ------------------------------------------------------------------------------------------
_GROWTH_HEADER = ("agent", "metric", "baseline", "now", "change")


def _metric_value(metric: str, value: float) -> str:
    if metric == "cost_usd":
        return usd(value)
    if metric == "seconds":
        return seconds(value)
    return f"{int(value):,}"


def _growth_cells(g: Growth) -> list[str]:
    change = "new" if g.change is None else f"{g.change * 100:+.1f}%"
    metric = {"cost_usd": "USD", "seconds": "virtual s"}.get(g.metric, g.metric)
    return [
        g.agent or "(flow)",
        metric,
        _metric_value(g.metric, g.baseline),
        _metric_value(g.metric, g.now),
        change,
    ]


def growth_lines(growths: Sequence[Growth], *, indent: str = "  ") -> list[str]:
    """The table of what grew (flow totals first, then agents): agent, metric, baseline, now, change."""
    cells = [list(_GROWTH_HEADER)] + [_growth_cells(g) for g in growths]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_GROWTH_HEADER))]
    return [
        indent
        + "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_summary(
    rows: Sequence[FlowRow], growths: Sequence[Growth], *, baseline: str | None = None, tolerance: str = ""
) -> str:
    """The GitHub Actions job summary (``$GITHUB_STEP_SUMMARY``): the flow report and the regressions."""
    ordered = sorted(rows, key=lambda r: r.test)
    lines = ["## agentflows", "", summary_line(ordered), ""]
    if baseline is not None:
        failed = sorted({g.test for g in growths})
        if failed:
            lines += [
                f"**{len(failed)} flow{'s' if len(failed) != 1 else ''} grew beyond the baseline** "
                f"(`{_md(baseline)}`, tolerance {tolerance}):",
                "",
                "| test | agent | metric | baseline | now | change |",
                "|---|---|---|---:|---:|---:|",
            ]
            for g in growths:
                agent, metric, before, now, change = _growth_cells(g)
                lines.append(f"| `{_md(g.test)}` | {_md(agent)} | {metric} | {before} | {now} | {change} |")
            lines.append("")
        else:
            lines += [f"No flow grew beyond the baseline (`{_md(baseline)}`, tolerance {tolerance}).", ""]
    lines += [
        "| test | outcome | calls | tokens | USD | virtual s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in ordered:
        lines.append(
            f"| `{_md(row.test)}` | {row.outcome} | {row.calls} | {row.total_tokens:,} | {usd(row.cost_usd)} "
            f"| {seconds(row.elapsed_s)} |"
        )
    return "\n".join(lines) + "\n"


# -- SVG timeline ----------------------------------------------------------------------------------------
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#79706e",
)
"""Bar colours, one per agent in order of first call (cycled)."""

_WIDTH = 960
_LABEL_W = 170
_RIGHT = 24
_TOP = 8
_LANE = 16
_LANE_GAP = 4
_ROW_PAD = 5
_AXIS = 30
_EPS = 1e-9


def _lanes(spans: Sequence[Span]) -> list[list[Span]]:
    """Pack one agent's spans into lanes so overlapping calls of the same agent do not hide each other."""
    lanes: list[list[Span]] = []
    for span in sorted(spans, key=lambda s: (s.start_s, s.index)):
        for lane in lanes:
            if lane[-1].end_s <= span.start_s + _EPS:
                lane.append(span)
                break
        else:
            lanes.append([span])
    return lanes


def _tick_step(t_max: float) -> float:
    raw = t_max / 8
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw - _EPS:
            return float(factor * magnitude)
    return float(10 * magnitude)  # pragma: no cover - the loop always returns


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _tick_label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{value:.{decimals}f} s"


def _short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _span_title(span: Span) -> str:
    how = ("replayed" if span.replayed else "recorded") + (", streamed" if span.streamed else "")
    spend = (
        f"{span.input_tokens:,} in + {span.output_tokens:,} out tokens, {usd(span.cost_usd)}"
        if span.usage_reported
        else "usage not reported (tokens and price unknown)"
    )
    tools = f", tool calls: {', '.join(span.tool_calls)}" if span.tool_calls else ""
    return (
        f"#{span.index} {span.agent}: {span.provider} {span.model}, {span.start_s:.3f}-{span.end_s:.3f} s "
        f"({span.latency_s:.3f} s), {spend}, {how}{tools}"
    )


def timeline_svg(row: FlowRow) -> str:
    """The flow's timeline as an inline SVG element (``<svg class="timeline">``).

    One row per agent (in order of first call; overlapping calls of one agent get extra lanes), one bar
    per model call from its start to its end in virtual seconds, a time axis below, and the deadline as a
    dashed line when the flow reached it. Hover a bar for its details (``<title>``). Recorded (not
    replayed) calls have a dashed outline; a tool-call turn (a response asking for tools) has class
    ``call tool`` and a diamond at its end; a call that reported no usage has class ``nousage`` (hatched).
    """
    label = escape(f"timeline of {row.test}", quote=True)
    if not row.spans:
        height = 2 * _TOP + _LANE
        return (
            f'<svg class="timeline" role="img" aria-label="{label}" width="{_WIDTH}" height="{height}" '
            f'viewBox="0 0 {_WIDTH} {height}"><text x="{_LABEL_W}" y="{_TOP + 12}" class="empty">'
            "no model calls</text></svg>"
        )
    t_max = max([row.elapsed_s, *(s.end_s for s in row.spans)])
    deadline = row.deadline_s if row.deadline_s is not None and row.deadline_s <= t_max + _EPS else None
    t_max = t_max if t_max > _EPS else 1.0
    plot_w = _WIDTH - _LABEL_W - _RIGHT

    def x(t: float) -> str:
        return _num(_LABEL_W + plot_w * t / t_max)

    bands: list[str] = []
    bars: list[str] = []
    y = _TOP
    for n, agent in enumerate(agent_order(row.spans)):
        lanes = _lanes([s for s in row.spans if s.agent == agent])
        row_h = len(lanes) * _LANE + (len(lanes) - 1) * _LANE_GAP + 2 * _ROW_PAD
        colour = PALETTE[n % len(PALETTE)]
        shade = ' class="band"' if n % 2 == 0 else ' class="band alt"'
        bands.append(f'<rect{shade} x="0" y="{y}" width="{_WIDTH}" height="{row_h}"/>')
        bands.append(
            f'<text class="agent" x="{_LABEL_W - 8}" y="{_num(y + row_h / 2 + 4)}" text-anchor="end">'
            f"{escape(_short(agent))}<title>{escape(agent)}</title></text>"
        )
        for k, lane in enumerate(lanes):
            top = y + _ROW_PAD + k * (_LANE + _LANE_GAP)
            for span in lane:
                width = max(plot_w * (span.end_s - span.start_s) / t_max, 1.5)
                dash = "" if span.replayed else ' stroke="#222" stroke-dasharray="3 2"'
                cls = (
                    "call"
                    + (" tool" if span.tool_calls else "")
                    + ("" if span.usage_reported else " nousage")
                )
                title = f"<title>{escape(_span_title(span))}</title>"
                bars.append(
                    f'<rect class="{cls}" x="{x(span.start_s)}" y="{top}" width="{_num(width)}" '
                    f'height="{_LANE}" rx="2" fill="{colour}"{dash}>{title}</rect>'
                )
                if span.tool_calls:
                    end = float(x(span.start_s)) + width
                    mid, half = top + _LANE / 2, _LANE / 2
                    h, nh = _num(half), _num(-half)
                    bars.append(
                        f'<path class="tool-mark" d="M{_num(end)} {_num(mid - half)} l{h} {h} l{nh} {h} '
                        f'l{nh} {nh} z">{title}</path>'
                    )
        y += row_h
    axis_y = y + 4
    step = _tick_step(t_max)
    ticks = [i * step for i in range(int(t_max / step + _EPS) + 1)]
    grid = [f'<line class="tick" x1="{x(t)}" y1="{_TOP}" x2="{x(t)}" y2="{axis_y + 4}"/>' for t in ticks]
    axis = [f'<line class="axis" x1="{_LABEL_W}" y1="{axis_y}" x2="{x(t_max)}" y2="{axis_y}"/>']
    axis.extend(
        f'<text class="tick" x="{x(t)}" y="{axis_y + 16}" text-anchor="middle">{_tick_label(t, step)}</text>'
        for t in ticks
    )
    if deadline is not None:
        axis.append(
            f'<line class="deadline" x1="{x(deadline)}" y1="{_TOP}" x2="{x(deadline)}" y2="{axis_y}">'
            f"<title>deadline {deadline:g} s</title></line>"
        )
    height = axis_y + _AXIS - 4
    return (
        f'<svg class="timeline" role="img" aria-label="{label}" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}">' + "".join(bands + grid + bars + axis) + "</svg>"
    )


# -- HTML page -------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1f2328}
h1{font-size:22px}h2{font-size:16px;margin:0 0 8px;word-break:break-all}
table{border-collapse:collapse;margin:8px 0 12px;font-size:13px}
th,td{padding:3px 10px;border-bottom:1px solid #d0d7de;text-align:right;white-space:nowrap}
th{background:#f6f8fa}td.test,th.test,td.agent,th.agent{text-align:left;white-space:normal}
.summary{font-family:ui-monospace,monospace;background:#f6f8fa;padding:8px;border-radius:4px}
.flow{border:1px solid #d0d7de;border-radius:6px;padding:12px 16px;margin:16px 0}
.outcome{font-weight:600}.passed{color:#1a7f37}.failed,.error,.bad{color:#cf222e}.skipped{color:#9a6700}
.meta{font-size:13px;color:#57606a}
svg.timeline{display:block;max-width:100%;height:auto;font-size:11px}
svg .band{fill:#ffffff}svg .band.alt{fill:#f6f8fa}svg .agent{fill:#1f2328}
svg .axis{stroke:#57606a}svg .tick{stroke:#d0d7de;fill:#57606a}svg text.tick{stroke:none}
svg .deadline{stroke:#cf222e;stroke-width:2;stroke-dasharray:6 3}svg .empty{fill:#57606a}
svg .tool-mark{fill:#1f2328;stroke:#fff;stroke-width:1}svg .call.nousage{fill-opacity:.35;stroke:#cf222e}
pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px}
""".strip()


def _td(text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{escape(text)}</td>"


def _flow_table(rows: Sequence[FlowRow]) -> str:
    head = "".join(f'<th class="{"test" if h == "test" else ""}">{escape(h)}</th>' for h in FLOW_COLUMNS)
    body = []
    for n, row in enumerate(rows):
        budget_cls = "bad" if _over_budget(row) else ""
        late_cls = "bad" if _late(row) else ""
        body.append(
            "<tr>"
            + _td(str(row.calls))
            + _td(f"{row.input_tokens:,}")
            + _td(f"{row.output_tokens:,}")
            + _td(usd(row.cost_usd))
            + _td(seconds(row.elapsed_s))
            + _td(budget_margin(row), budget_cls)
            + _td(deadline_margin(row), late_cls)
            + _td(f"{row.replayed}/{row.recorded}")
            + _td(row.outcome, f"outcome {row.outcome}")
            + f'<td class="test"><a href="#flow-{n}">{escape(row.test)}</a></td></tr>'
        )
    return f'<table class="flows"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _agent_table(row: FlowRow) -> str:
    if not row.agents:
        return '<p class="meta">no model calls</p>'
    head = (
        "".join(f"<th>{h}</th>" for h in ("calls", "in tok", "out tok", "USD"))
        + '<th class="agent">agent</th>'
    )
    body = "".join(
        "<tr>"
        + _td(str(a.calls))
        + _td(f"{a.input_tokens:,}")
        + _td(f"{a.output_tokens:,}")
        + _td(usd(a.cost_usd))
        + _td(a.agent, "agent")
        + "</tr>"
        for a in row.agents
    )
    return f'<table class="agents"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _flow_section(n: int, row: FlowRow) -> str:
    decisions = ", ".join(f"{kind} {count}" for kind, count in row.decisions.items()) or "none"
    meta = (
        f"{row.calls} model call{'' if row.calls == 1 else 's'} "
        f"({row.replayed} replayed, {row.recorded} recorded), "
        f"{row.input_tokens:,} input + {row.output_tokens:,} output tokens, {usd(row.cost_usd)}, "
        f"{seconds(row.elapsed_s)} s virtual; budget margin {budget_margin(row)}; "
        f"deadline margin {deadline_margin(row)}"
    )
    return (
        f'<section class="flow" id="flow-{n}">'
        f'<h2>{escape(row.test)} <span class="outcome {row.outcome}">{row.outcome}</span></h2>'
        f'<p class="meta">{escape(meta)}</p>'
        f"{_agent_table(row)}"
        f"{timeline_svg(row)}"
        f'<p class="meta">decisions: {escape(decisions)}</p>'
        f"<details><summary>Mermaid source</summary>"
        f'<pre class="mermaid-source">{escape(row.mermaid)}</pre></details>'
        "</section>"
    )


_NO_FLOWS = '<p class="meta">No flow test ran.</p>'


def html_page(report: AgentflowsReport) -> str:
    """One self-contained HTML page: the summary, the flow table, and per flow its spend per agent,
    timeline (inline SVG) and Mermaid source. No scripts, no external assets."""
    rows = report.rows
    sections = "\n".join(_flow_section(n, row) for n, row in enumerate(rows))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>pytest-agentflows report</title>\n"
        f"<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        "<h1>pytest-agentflows report</h1>\n"
        f'<p class="summary">{escape(summary_line(rows))}</p>\n'
        f"{_flow_table(rows) if rows else _NO_FLOWS}\n"
        f"{sections}\n"
        "</body>\n</html>\n"
    )


# -- files -----------------------------------------------------------------------------------------------
def write_json(path: str | os.PathLike[str], report: AgentflowsReport) -> None:
    """Write ``report`` as indented JSON to ``path`` atomically (parent directories created).

    Raises:
        OSError: when the file cannot be written.
    """
    atomic_write_text(path, report.model_dump_json(indent=2) + "\n")


def write_html(path: str | os.PathLike[str], report: AgentflowsReport) -> None:
    """Write :func:`html_page` of ``report`` to ``path`` atomically (parent directories created).

    Raises:
        OSError: when the file cannot be written.
    """
    atomic_write_text(path, html_page(report))
