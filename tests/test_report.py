"""The flow report: summary line, ``--agentflows-report`` table, JSON and HTML files, xdist, rendering.

The inner session replays two cassettes recorded once per module against a local model server, with
latencies then set to chosen values (so virtual times are exact): ``test_fan_out`` (planner 2 s, then
alpha 3 s and beta 5 s concurrently: 7 s, within a $0.01 budget and a 30 s deadline) passes;
``test_over_budget`` (writer 1.5 s) fails its 10-token budget.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from vcr.serializers import yamlserializer

from pytest_agentflows import load_cassette
from pytest_agentflows.model_server import LocalModelServer
from pytest_agentflows.plugin._report_render import usd
from pytest_agentflows.report import AgentflowsReport, FlowRow, Span, build_report, mermaid_gantt, usd_text

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""

FLOWS = """
import asyncio, os
import openai
import pytest

def client(cls=openai.OpenAI):
    return cls(base_url=os.environ["AF_OPENAI_URL"], api_key="sk-test-0000", max_retries=0)

@pytest.mark.agent_budget(usd=0.01)
@pytest.mark.agent_deadline(30)
async def test_fan_out(agentflow):
    llm = client(openai.AsyncOpenAI)

    async def ask(agent, text):
        with agentflow.agent(agent):
            r = await llm.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
            return r.choices[0].message.content

    try:
        plan = await ask("planner", "plan the research")
        answers = await asyncio.gather(ask("alpha", "first branch"), ask("beta", "second branch"))
    finally:
        await llm.close()
    assert "plan the research" in plan and len(answers) == 2

@pytest.mark.agent_budget(tokens=10)
def test_over_budget(agentflow):
    with agentflow.agent("writer"):
        client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "write a long essay"}])
"""

LATENCY = {"planner": 2.0, "alpha": 3.0, "beta": 5.0, "writer": 1.5}
"""Virtual seconds stored for each agent's call."""

FAN_OUT = "test_flows.py::test_fan_out"
OVER = "test_flows.py::test_over_budget"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``cassettes/test_flows/*.yaml``: recorded once, latencies set to :data:`LATENCY`."""
    root = tmp_path_factory.mktemp("recorded")
    (root / "pytest.ini").write_text(INI)
    (root / "test_flows.py").write_text(FLOWS)
    with LocalModelServer() as server:
        env = {**os.environ, "AF_OPENAI_URL": server.openai_base_url, "PYTEST_ADDOPTS": ""}
        run = subprocess.run(
            # the over-budget flow fails while recording: save its recording anyway
            [
                *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--record-agents"),
                *("-o", "agentflows_save_on_failure=true"),
            ],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    # the budget verdict fails while recording too
    assert "1 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    for path in (root / "cassettes" / "test_flows").glob("*.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for interaction in data["interactions"]:
            meta = interaction["response"]["agentflows"]
            meta["latency_s"] = LATENCY[meta["agent"]]
        path.write_text(yamlserializer.serialize(data), encoding="utf-8")
    return root / "cassettes"


@pytest.fixture
def project(pytester: pytest.Pytester, recorded: Path, go_offline: Callable[[], None]) -> pytest.Pytester:
    """The inner project, offline: replay only."""
    pytester.makeini(INI)
    pytester.makepyfile(test_flows=FLOWS)
    shutil.copytree(recorded, pytester.path / "cassettes")
    go_offline()
    return pytester


def _expected(recorded: Path) -> dict[str, tuple[int, int, float | None]]:
    """``test name -> (input tokens, output tokens, USD)`` read from the cassettes themselves."""
    out = {}
    for path in sorted((recorded / "test_flows").glob("*.yaml")):
        usage = load_cassette(path).usage
        out[path.stem] = (usage.input_tokens, usage.output_tokens, usage.cost_usd)
    return out


def _summary(recorded: Path) -> str:
    expected = _expected(recorded)
    tin = sum(v[0] for v in expected.values())
    tout = sum(v[1] for v in expected.values())
    cost = sum(v[2] or 0.0 for v in expected.values())
    return (
        f"agentflows: 2 flows, 4 model calls (4 replayed, 0 recorded), {tin:,} input + {tout:,} output tokens, "
        f"{usd_text(cost)}, 8.5 s virtual"
    )


# -- terminal ------------------------------------------------------------------------------------------
def test_summary_line_always_table_only_with_the_flag(project: pytest.Pytester, recorded: Path) -> None:
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*- agentflows -*", _summary(recorded)])
    assert "budget margin" not in result.stdout.str()


def test_report_table_rows_margins_and_failed_flow_spend(project: pytest.Pytester, recorded: Path) -> None:
    result = project.runpytest("--agentflows-report")
    result.assert_outcomes(passed=1, failed=1)
    expected = _expected(recorded)
    fan_in, fan_out, fan_usd = expected["test_fan_out"]
    over_in, over_out, over_usd = expected["test_over_budget"]
    assert fan_usd is not None and over_usd is not None
    over_margin = 10 - over_in - over_out
    assert over_margin < 0
    result.stdout.fnmatch_lines(
        [
            "*- agentflows -*",
            "calls  in tok  out tok * USD  virtual s  budget margin  deadline margin  repl/rec  outcome  test",
            f"    3  *{fan_in}  *{fan_out}  {usd(fan_usd)}  *7.000  *{usd(0.01 - fan_usd)}  *23.000 s"
            f"  *3/0   passed  {FAN_OUT}",
            f"    1  *{over_in}  *{over_out}  {usd(over_usd)}  *1.500  *{over_margin} tok  *-  *1/0   failed  {OVER}",
            f"spend per agent of failed flow {OVER}:",
            "  calls  in tok  out tok  * USD  agent",
            f"      1  *{over_in}  *{over_out}  {usd(over_usd)}  writer",
            _summary(recorded),
        ]
    )
    # the passing flow's agents are not broken down
    assert not re.search(r"\bplanner$", result.stdout.str(), re.MULTILINE)


def test_report_table_uses_markup_only_on_a_colour_terminal(project: pytest.Pytester) -> None:
    coloured = project.runpytest("--agentflows-report", "--color=yes")
    table = coloured.stdout.str().split("- agentflows -", 1)[1]
    assert "\x1b[" in table
    assert re.search(r"\x1b\[[0-9;]*m\s*failed\x1b\[0m", table)  # the outcome cell alone is coloured
    plain = project.runpytest("--agentflows-report", "--color=no")
    assert "\x1b[" not in plain.stdout.str()


def test_no_flow_no_report(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("--agentflows-report")
    result.assert_outcomes(passed=1)
    assert "- agentflows -" not in result.stdout.str() and "model calls" not in result.stdout.str()


# -- JSON and HTML -------------------------------------------------------------------------------------
def test_json_and_html_reports(project: pytest.Pytester, recorded: Path) -> None:
    result = project.runpytest("--agentflows-json=out/report.json", "--agentflows-html=out/report.html")
    result.assert_outcomes(passed=1, failed=1)
    json_path, html_path = project.path / "out" / "report.json", project.path / "out" / "report.html"
    result.stdout.fnmatch_lines(
        [f"agentflows: JSON report written to {json_path}", f"agentflows: HTML report written to {html_path}"]
    )

    report = AgentflowsReport.model_validate_json(json_path.read_text(encoding="utf-8"))
    assert report.schema_version == 1
    assert [r.test for r in report.rows] == [FAN_OUT, OVER]
    totals = report.totals
    assert (totals.flows, totals.passed, totals.failed, totals.calls) == (2, 1, 1, 4)
    assert report.totals.elapsed_s == 8.5
    fan, over = report.rows
    assert (fan.outcome, over.outcome) == ("passed", "failed")
    assert [(a.agent, a.calls) for a in fan.agents] == [("alpha", 1), ("beta", 1), ("planner", 1)]
    assert [(s.agent, s.start_s, s.end_s) for s in sorted(fan.spans, key=lambda s: s.start_s)] == [
        ("planner", 0.0, 2.0),
        ("alpha", 2.0, 5.0),
        ("beta", 2.0, 7.0),
    ]
    assert fan.elapsed_s == 7.0 and fan.deadline_margin_s == 23.0 and fan.budget_margin_tokens is None
    assert fan.budget_margin_usd == pytest.approx(0.01 - (fan.cost_usd or 0.0))
    assert over.budget_margin_tokens == 10 - over.input_tokens - over.output_tokens < 0
    assert over.budget_margin_usd is None and over.deadline_margin_s is None
    assert fan.decisions == {"model_call": 3} and over.decisions == {"model_call": 1}
    assert fan.mermaid.splitlines()[:4] == [
        "gantt",
        f"    title {FAN_OUT.replace('::', ' ')}",
        "    dateFormat x",
        "    axisFormat %s.%L",
    ]
    assert "    section alpha" in fan.mermaid and ":c0, 0, 2000" in fan.mermaid
    assert " 2000, 5000" in fan.mermaid and " 2000, 7000" in fan.mermaid

    html = html_path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*['\"]?(https?:)?//", html, re.I)
    assert "<script" not in html.lower()
    assert "http://" not in html and "https://" not in html
    assert html.count('<svg class="timeline"') == 2
    assert html.count('<rect class="call"') == 4
    assert html.count("<details><summary>Mermaid source</summary>") == 2
    assert FAN_OUT in html and "section beta" in html
    assert not list((project.path / "out").glob(".*.tmp"))  # atomic writes leave no temporary file


def test_json_report_is_identical_on_replay(project: pytest.Pytester) -> None:
    project.runpytest("--agentflows-json=a.json")
    project.runpytest("--agentflows-json=b.json")
    assert (project.path / "a.json").read_bytes() == (project.path / "b.json").read_bytes()


def test_unwritable_report_path_is_reported(project: pytest.Pytester) -> None:
    (project.path / "blocker").write_text("a file, not a directory")
    result = project.runpytest("--agentflows-json=blocker/report.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["agentflows: cannot write the JSON report *blocker*report.json: *"])


# -- xdist ---------------------------------------------------------------------------------------------
def test_xdist_workers_send_rows_to_the_controller(project: pytest.Pytester, recorded: Path) -> None:
    pytest.importorskip("xdist")
    result = project.runpytest_subprocess(
        "-p", "xdist", "-n", "2", "--agentflows-report", "--agentflows-json=x.json"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"*passed  {FAN_OUT}", f"*failed  {OVER}", _summary(recorded)])
    assert result.stdout.str().count(_summary(recorded)) == 1  # only the controller prints
    serial = project.runpytest("--agentflows-json=serial.json")
    assert (project.path / "x.json").read_bytes() == (project.path / "serial.json").read_bytes()
    assert serial.ret == result.ret


# -- rendering -----------------------------------------------------------------------------------------
def _chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def test_html_renders_in_headless_chromium(project: pytest.Pytester, tmp_path: Path) -> None:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium): the HTML render check needs it")
    project.runpytest("--agentflows-html=report.html")
    artifacts = Path(os.environ.get("AGENTFLOWS_ARTIFACTS", tmp_path / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    png = artifacts / "report.png"
    png.unlink(missing_ok=True)
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={png}",
            "--window-size=1280,2000",
            (project.path / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert png.exists(), "chromium wrote no screenshot"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a blank 1280x2000 page is ~10 kB


# -- pure data -----------------------------------------------------------------------------------------
def _span(index: int, agent: str, start: float, end: float) -> Span:
    return Span(
        index=index,
        agent=agent,
        provider="openai",
        model="gpt-4o-mini",
        start_s=start,
        end_s=end,
        input_tokens=5,
        output_tokens=3,
        cost_usd=None,
        streamed=False,
        replayed=True,
    )


def test_mermaid_sections_in_first_call_order_and_unsafe_names() -> None:
    row = FlowRow(
        test="t.py::test_x[a:b<c>]",
        elapsed_s=12.5,
        spans=[_span(0, "late", 4.0, 12.5), _span(1, "first#1", 0.0, 4.0), _span(2, "late", 4.0, 4.0005)],
    )
    assert mermaid_gantt(row) == textwrap.dedent(
        """\
        gantt
            title t.py test_x[a b c ]
            dateFormat x
            axisFormat %s
            todayMarker off
            section first 1
            gpt-4o-mini 5+3 tok :c1, 0, 4000
            section late
            gpt-4o-mini 5+3 tok :c0, 4000, 12500
            gpt-4o-mini 5+3 tok :c2, 4000, 4000
        """
    )
    assert "axisFormat %s.%L" in mermaid_gantt(FlowRow(test="short", elapsed_s=9.9))


def test_overlapping_calls_of_one_agent_get_their_own_lanes() -> None:
    from pytest_agentflows.plugin._report_render import timeline_svg

    row = FlowRow(test="t", elapsed_s=3.0, spans=[_span(0, "a", 0.0, 3.0), _span(1, "a", 1.0, 2.0)])
    svg = timeline_svg(row)
    ys = re.findall(r'<rect class="call" x="[^"]+" y="(\d+)"', svg)
    assert len(set(ys)) == 2
    assert timeline_svg(FlowRow(test="empty")).count("no model calls") == 1


def test_unknown_price_and_totals() -> None:
    rows = [FlowRow(test="b", cost_usd=None, budget_usd=1.0), FlowRow(test="a", cost_usd=0.5, budget_usd=1.0)]
    report = build_report([r.with_margins() for r in rows])
    assert [r.test for r in report.rows] == ["a", "b"]
    assert report.totals.cost_usd is None
    assert report.rows[0].budget_margin_usd == 0.5 and report.rows[1].budget_margin_usd is None


def test_json_schema_documents_every_field() -> None:
    schema = AgentflowsReport.model_json_schema()
    models = {"AgentflowsReport": schema, **schema["$defs"]}
    assert set(models) >= {"AgentflowsReport", "SessionTotals", "FlowRow", "AgentSpend", "Span"}
    undocumented = [
        f"{name}.{field}"
        for name, model in models.items()
        for field, prop in model["properties"].items()
        if not prop.get("description")
    ]
    assert undocumented == []
    assert models["Span"]["properties"]["index"]["description"] == (
        "Position of the call in the flow's ledger (completion order), from 0."
    )
    assert models["AgentflowsReport"]["properties"]["totals"]["description"]  # a nested model's field too
    # the docstrings are read when a schema is asked for, not by pydantic when the module is imported
    assert not any(
        model.model_config.get("use_attribute_docstrings") for model in (AgentflowsReport, FlowRow, Span)
    )
    assert schema["properties"]["schema_version"]["default"] == 1


def test_junit_property_and_json_report_hold_the_same_row(project: pytest.Pytester) -> None:
    """The plugin keeps each row as plain data (no model per test): the JUnit ``agentflows`` property is
    the row without its spans and chart, with exactly the row's fields, and the JSON report reads the same
    figures back."""
    import json
    import xml.etree.ElementTree as ET

    project.runpytest("--junitxml=j.xml", "--agentflows-json=r.json").assert_outcomes(passed=1, failed=1)
    report = AgentflowsReport.model_validate_json((project.path / "r.json").read_text(encoding="utf-8"))
    rows = {row.test.rsplit("::", 1)[1]: row for row in report.rows}
    properties = {
        case.get("name"): json.loads(prop.get("value", ""))
        for case in ET.parse(project.path / "j.xml").getroot().iter("testcase")
        for prop in case.iter("property")
        if prop.get("name") == "agentflows"
    }
    assert sorted(properties) == ["test_fan_out", "test_over_budget"]
    for name, stored in properties.items():
        assert list(stored) == [f for f in FlowRow.model_fields if f not in ("spans", "mermaid")]
        assert stored == rows[name].model_dump(mode="json", exclude={"spans", "mermaid"})
    assert rows["test_fan_out"].budget_margin_usd is not None and len(rows["test_fan_out"].spans) == 3


def test_row_data_has_every_field_of_the_row_models(tmp_path: Path) -> None:
    """``row_data`` (what the plugin keeps) and ``FlowRow.from_flow`` agree field for field, nested too."""
    import openai

    from pytest_agentflows import Flow
    from pytest_agentflows.report import AgentSpend, row_data

    flow = Flow(cassette=tmp_path / "c.yaml", record="new", budget_usd=1.0, deadline_s=60, test_id="t")
    with LocalModelServer() as server, flow.activate():
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test-0000", max_retries=0)
        with client, flow.agent("planner"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    data = row_data("t", flow, "failed")
    assert list(data) == list(FlowRow.model_fields)
    assert [list(a) for a in data["agents"]] == [list(AgentSpend.model_fields)]
    assert [list(s) for s in data["spans"]] == [list(Span.model_fields)]
    row = FlowRow.from_flow("t", flow, "failed", chart=False)
    assert FlowRow.model_validate(data) == row and row.model_dump() == data
    assert row.budget_margin_usd == pytest.approx(1.0 - (row.cost_usd or 0.0)) and row.deadline_margin_s
    assert FlowRow.from_flow("t", flow).mermaid.startswith("gantt")
