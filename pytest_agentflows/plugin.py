"""pytest entry point (``pytest11: agentflows``): options, ini keys, markers, fixtures, verdicts, summary.

Thin by design: it turns configuration into calls on the core. Importing it imports neither vcrpy,
syrupy, an SDK nor genai-prices; those load when a test first requests a flow fixture.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .report import FlowRow, summary_line

if TYPE_CHECKING:
    from .flow import Flow

FLOW_KEY = pytest.StashKey["Flow"]()
ROWS_KEY = pytest.StashKey[list[FlowRow]]()

MARKERS = (
    "agentflow(cassette=None, record=None, latency='recorded'): per-test cassette file name, record mode "
    "override ('none', 'new', 'all') and latency replay ('recorded' or 'zero') for the agentflow fixture.",
    "agent_budget(usd=None, tokens=None): caps of the flow's BudgetPool (US dollars from genai-prices; input + "
    "output tokens); the test fails when the flow spends more, with spend per agent.",
    "agent_deadline(seconds): the test fails when the flow's virtual elapsed time exceeds seconds.",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agentflows", "multi-agent flow record/replay (pytest-agentflows)")
    group.addoption(
        "--record-agents",
        action="store",
        nargs="?",
        const="new",
        default=None,
        choices=("none", "new", "all"),
        dest="agentflows_record",
        help="record model traffic: 'new' (the default when the flag is given alone) records missing "
        "interactions, 'all' re-records every cassette used, 'none' replays only (the default without "
        "the flag).",
    )
    parser.addini(
        "agentflows_cassette_dir",
        "directory holding cassettes as <dir>/<module>/<test>.yaml (default: cassettes/ beside each module)",
        default="",
    )
    parser.addini("agentflows_redact_headers", "extra header names to scrub from cassettes", type="linelist")
    parser.addini(
        "agentflows_redact_body_keys", "extra JSON body keys to scrub from cassettes", type="linelist"
    )


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    config.stash[ROWS_KEY] = []
    _quiet_looptime_plugin(config)


def _quiet_looptime_plugin(config: pytest.Config) -> None:
    """Unregister looptime's own pytest plugin unless the session asks for it (``--looptime``).

    We use looptime as a library (the flow clock patches the running loop itself). Its pytest plugin,
    installed with it, calls ``get_event_loop()`` in every test; under pytest-asyncio 1.x that creates an
    event loop in each sync test which nobody closes, and ``filterwarnings = error`` suites then fail with
    ``ResourceWarning: unclosed event loop``. Pass ``--looptime`` / ``--no-looptime`` to keep it.
    """
    plugin = config.pluginmanager.get_plugin("looptime_plugin")
    if plugin is not None and config.getoption("looptime", None) is None:
        config.pluginmanager.unregister(plugin)
        config.addinivalue_line("markers", "looptime: looptime's marker (its plugin is off: pass --looptime)")


@pytest.fixture
def agentflow(request: pytest.FixtureRequest) -> Iterator[Flow]:
    """The test's :class:`~pytest_agentflows.Flow`, with its cassette active (see the ``agentflow`` marker)."""
    from ._options import resolve
    from .cassette._redact import Redactor
    from .errors import UsageError
    from .flow import Flow

    item = request.node
    try:
        options = resolve(item)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    flow = Flow(
        cassette=options.cassette,
        record=options.record,
        budget_usd=options.budget_usd,
        budget_tokens=options.budget_tokens,
        deadline_s=options.deadline_s,
        latency=options.latency,
        redactor=Redactor(headers=options.redact_headers, body_keys=options.redact_body_keys),
        test_id=item.nodeid,
    )
    item.stash[FLOW_KEY] = flow
    _attach_loop_first(item, flow)
    with flow.activate():
        yield flow


def _attach_loop_first(item: pytest.Item, flow: Flow) -> None:
    """For ``async def`` tests: make the loop's time virtual before the test's first line runs.

    Timers the test schedules (``asyncio.wait_for``) must already be on virtual time, so the test function
    is wrapped to attach the flow clock to the running loop first (pytest-asyncio and anyio read
    ``item.obj`` after fixture setup).
    """
    original = getattr(item, "obj", None)
    if original is None or not inspect.iscoroutinefunction(original):
        return

    @functools.wraps(original)
    async def attached(*args: Any, **kwargs: Any) -> Any:
        flow.clock.attach_loop()
        return await original(*args, **kwargs)

    item.obj = attached  # type: ignore[attr-defined]


@pytest.fixture
def decision_snapshot(snapshot: Any) -> Any:
    """syrupy's ``snapshot`` with the decision-log extension: ``assert agentflow.decisions == decision_snapshot``."""
    from .snapshot import DecisionLogExtension

    return snapshot.use_extension(DecisionLogExtension)


def _verdicts(item: pytest.Item, flow: Flow) -> None:
    marker = item.get_closest_marker("agent_budget")
    if marker is not None:
        flow.assert_within_budget(usd=flow.budget.usd, tokens=flow.budget.tokens)
    if flow.deadline is not None:
        flow.assert_deadline(flow.deadline.seconds)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    result = yield
    flow = item.stash.get(FLOW_KEY, None)
    if flow is not None:
        misses = list(flow._cassette.misses) if flow._cassette is not None else []
        if misses:
            raise misses[0]
        _verdicts(item, flow)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    flow = item.stash.get(FLOW_KEY, None)
    if flow is not None and call.when == "teardown":
        row = FlowRow.from_flow(item.nodeid, flow)
        failed = any(r.failed for r in getattr(item, "_agentflows_reports", [])) or report.failed
        row = row.model_copy(update={"outcome": "failed" if failed else "passed"})
        item.config.stash[ROWS_KEY].append(row)
        report.user_properties.append(("agentflows", row.model_dump_json()))
    elif flow is not None:
        item.__dict__.setdefault("_agentflows_reports", []).append(report)
    return report


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = config.stash.get(ROWS_KEY, [])
    if rows and not hasattr(config, "workerinput"):
        terminalreporter.write_sep("-", "agentflows")
        terminalreporter.write_line(summary_line(rows))
