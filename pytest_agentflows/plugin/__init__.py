"""pytest entry point (``pytest11: agentflows``): options, ini keys, markers, fixtures, verdicts, summary.

Thin by design: it turns configuration into calls on the core. Importing it imports neither vcrpy,
syrupy, an SDK nor genai-prices; those load when a test first requests a flow fixture.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..flow import Flow
    from ..report import Baseline, CassetteUse, Growth, Outcome, Tolerance, UnusedInteractions
    from ._rows import FlowRows


def _rewrite_asserts_of_the_glue_only() -> None:
    """Let pytest rewrite the asserts of ``pytest_agentflows.plugin`` only, not of the whole package.

    pytest marks every top-level package of a plugin's distribution for assertion rewriting, so each core
    module (about 60, none with an assert a test reads) was parsed and recompiled on import in every
    session where bytecode is not cached (``PYTHONDONTWRITEBYTECODE=1``, common in CI images): about
    0.6 s per session. The core raises its own messages; the pytest glue stays rewritten.
    """
    for hook in sys.meta_path:
        must = getattr(hook, "_must_rewrite", None)
        cache = getattr(hook, "_marked_for_rewrite_cache", None)
        if (
            type(hook).__name__ != "AssertionRewritingHook"
            or not isinstance(must, set)
            or "pytest_agentflows" not in must
        ):
            continue
        must.discard("pytest_agentflows")
        must.add(__name__)
        if isinstance(cache, dict):
            cache.clear()


_rewrite_asserts_of_the_glue_only()

FLOW_KEY = pytest.StashKey["Flow"]()
ROWS_KEY = pytest.StashKey["FlowRows"]()
PARSE_CACHE_KEY = pytest.StashKey[bool]()
RATES_TAKEN_KEY = pytest.StashKey[int]()
_RUNNING: dict[str, tuple[pytest.Item, Flow]] = {}
"""Flow tests between fixture setup and their teardown report, by node id (see pytest_runtest_logreport)."""
WRITTEN_KEY = pytest.StashKey[list[tuple[str, bool]]]()
TELEMETRY_RELEASE_KEY = pytest.StashKey[Callable[[], None]]()
"""Releases the session's hold of the telemetry guard (set by the first flow)."""
INTEGRATIONS_KEY = pytest.StashKey["tuple[str, ...] | None"]()
"""The integrations ini ``agentflows_integrations`` allows (``None``: all)."""
CALL_KEY = pytest.StashKey[str]()
"""How the call phase of a flow test ended: ``"passed"`` or why not (read by the fixture's teardown)."""
DISCARDED_KEY = pytest.StashKey[list[str]]()
"""One line per failed test whose recording was not saved (printed in the terminal summary)."""
CASSETTES_KEY = pytest.StashKey[list["CassetteUse"]]()
"""How each flow test used its cassette (for the unused-interactions report)."""
UNUSED_KEY = pytest.StashKey[list["UnusedInteractions"]]()
BASELINE_KEY = pytest.StashKey[tuple[Path, "Baseline", "Tolerance"]]()
"""``--agentflows-baseline``: the file, what it holds (empty when being written) and the tolerance."""
BASELINE_LINES_KEY = pytest.StashKey[list[tuple[str, bool]]]()
WORKER_DISCARDED = "agentflows_discarded"
WORKER_CASSETTES = "agentflows_cassettes"
WORKER_ROWS = "agentflows_rows"
"""Key of ``config.workeroutput`` under which pytest-xdist workers send their rows (JSON strings)."""

MARKERS = (
    "agentflow(cassette=None, record=None, latency='recorded', save_on_failure=None, match_ignore=(), "
    "snapshot_measurements=None): per-test cassette file name, record mode override ('none', 'new', 'all'), "
    "latency replay ('recorded' or 'zero'), whether a failing test's recording is saved anyway (default: ini "
    "agentflows_save_on_failure, false), JSON paths of request bodies left out of matching (e.g. "
    "['messages.*.tool_call_id']) and whether decision snapshots keep virtual times, latencies, tokens "
    "and USD (default: ini agentflows_snapshot_measurements, false).",
    "agent_budget(usd=None, tokens=None): caps of the flow's BudgetPool (US dollars from genai-prices; "
    "input + output tokens); the test fails when the flow spends more, with spend per agent.",
    "agent_deadline(seconds): the test fails when the flow's virtual elapsed time exceeds seconds.",
    "agent_faults(*faults, fail=None, status=None, delay=None, stall=None): inject faults into agents' "
    "model requests, e.g. agent_faults(fail={'billing': 'connection'}, status={'search': 429}, "
    "delay={'writer': 8}, stall=['critic']), or Fault objects (Fault.status('search', 429, retry_after=2)).",
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
    group.addoption(
        "--agentflows-report",
        action="store_true",
        default=False,
        dest="agentflows_report",
        help="print a table of the flow tests (calls, tokens, USD, virtual seconds, budget and deadline "
        "margins, replayed/recorded, outcome) and the spend per agent of failed flows.",
    )
    group.addoption(
        "--agentflows-json",
        action="store",
        default=None,
        metavar="PATH",
        dest="agentflows_json",
        help="write the flow report as JSON to PATH (schema: pytest_agentflows.report.AgentflowsReport).",
    )
    group.addoption(
        "--agentflows-html",
        action="store",
        default=None,
        metavar="PATH",
        dest="agentflows_html",
        help="write the flow report as one self-contained HTML page with a timeline per flow to PATH.",
    )
    group.addoption(
        "--agentflows-baseline",
        action="store",
        default=None,
        metavar="FILE",
        dest="agentflows_baseline",
        help="compare each flow's calls, tokens, USD and virtual seconds (in total and per agent) with FILE "
        "and fail the flows that grew beyond ini agentflows_baseline_tolerance (default 10%%).",
    )
    group.addoption(
        "--agentflows-baseline-update",
        action="store_true",
        default=False,
        dest="agentflows_baseline_update",
        help="write the passing flows' figures into the --agentflows-baseline FILE instead of comparing "
        "(entries of flows that did not run are kept).",
    )
    parser.addini(
        "agentflows_baseline_tolerance",
        "how much a flow may grow over --agentflows-baseline before it fails: '10%' (default) for every "
        "metric, or per metric, e.g. 'calls=0%, tokens=10%, usd=10%, seconds=20%'",
        default="10%",
    )
    parser.addini(
        "agentflows_cassette_dir",
        "directory holding cassettes as <dir>/<module>/<test>.yaml (default: cassettes/ beside each module)",
        default="",
    )
    parser.addini(
        "agentflows_cassette_format",
        "format of new cassettes: 'yaml' (default, vcrpy's YAML) or 'json' (vcrpy's JSON: loads several "
        "times faster)",
        default="yaml",
    )
    parser.addini(
        "agentflows_save_on_failure",
        "save what a failing (or interrupted) test recorded; default false: its cassette stays as it was",
        type="bool",
        default=False,
    )
    parser.addini(
        "agentflows_unused_interactions",
        "recorded interactions no test replayed: 'report' (default: a summary line per cassette), 'fail' "
        "(the run fails, as syrupy's unused-snapshot check) or 'ignore'",
        default="report",
    )
    parser.addini(
        "agentflows_snapshot_measurements",
        "decision snapshots keep measurements (virtual times 'at', latencies, tokens, USD); default false: "
        "only the structure (kinds, order, agents, routes, verdicts, failures), so re-recording does not "
        "churn snapshots",
        type="bool",
        default=False,
    )
    parser.addini("agentflows_redact_headers", "extra header names to scrub from cassettes", type="linelist")
    parser.addini(
        "agentflows_match_ignore",
        "JSON paths of request bodies left out of matching, one per line ('*': any key or index), e.g. "
        "messages.*.tool_call_id",
        type="linelist",
    )
    parser.addini(
        "agentflows_telemetry_urls",
        "extra URL prefixes of framework telemetry, answered locally with an empty 200 and never recorded "
        "(one per line; built in: openai-agents, CrewAI, OTLP /v1/traces|metrics|logs, logfire, LangSmith)",
        type="linelist",
    )
    parser.addini(
        "agentflows_integrations",
        "framework integrations switched on in every flow when their framework is imported: 'auto' "
        "(default: all), 'none', or names (openai_agents, otel, langgraph, crewai)",
        default="auto",
    )
    parser.addini(
        "agentflows_redact_body_keys", "extra JSON body keys to scrub from cassettes", type="linelist"
    )


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    fmt = config.getini("agentflows_cassette_format")
    if str(fmt).strip().lower() not in ("yaml", "json", ""):
        raise pytest.UsageError(
            f"ini agentflows_cassette_format = {fmt!r} is not a cassette format. "
            "Fix: set it to yaml (the default) or json."
        )
    from ..errors import UsageError
    from ..integrations import parse_names

    try:
        config.stash[INTEGRATIONS_KEY] = parse_names(
            config.getini("agentflows_integrations"), where="ini agentflows_integrations"
        )
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    from ..cassette._telemetry import telemetry_guard

    telemetry_guard.add_urls(config.getini("agentflows_telemetry_urls"))
    unused = str(config.getini("agentflows_unused_interactions")).strip().lower()
    if unused not in _UNUSED_MODES:
        raise pytest.UsageError(
            f"ini agentflows_unused_interactions = {unused!r} is not a mode. "
            f"Fix: set it to one of {', '.join(_UNUSED_MODES)}."
        )
    from ._rows import FlowRows

    config.stash[ROWS_KEY] = FlowRows()
    config.stash[DISCARDED_KEY] = []
    config.stash[CASSETTES_KEY] = []
    if config.getoption("agentflows_baseline", None):
        _load_baseline(config)
    elif config.getoption("agentflows_baseline_update", False):
        raise pytest.UsageError(
            "--agentflows-baseline-update needs the file to write: add --agentflows-baseline=FILE "
            "(e.g. --agentflows-baseline=agentflows-baseline.json)."
        )
    config.pluginmanager.register(_SnapshotKeeper(config), "agentflows-snapshot-keeper")
    _quiet_looptime_plugin(config)


_UNUSED_MODES = ("report", "fail", "ignore")


def _load_baseline(config: pytest.Config) -> None:
    """Read ``--agentflows-baseline`` and the tolerance once per session (each xdist worker reads its own).

    Raises:
        pytest.UsageError: a bad tolerance, or (when comparing) a baseline file that is missing or unreadable.
    """
    from pydantic import ValidationError

    from ..report import Baseline, Tolerance

    path = config.invocation_params.dir / config.getoption("agentflows_baseline")
    raw = str(config.getini("agentflows_baseline_tolerance"))
    try:
        tolerance = Tolerance.parse(raw)
    except ValueError as exc:
        raise pytest.UsageError(
            f"ini agentflows_baseline_tolerance = {raw!r}: {exc}. Fix: e.g. 10% or 'tokens=5%, usd=10%'."
        ) from None
    update = config.getoption("agentflows_baseline_update", False)
    baseline = Baseline()
    try:
        baseline = Baseline.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        if not update:
            raise pytest.UsageError(
                f"--agentflows-baseline: {path} does not exist. Fix: write it once with "
                f"pytest --agentflows-baseline={config.getoption('agentflows_baseline')} "
                "--agentflows-baseline-update, and commit it."
            ) from None
    except (OSError, ValidationError, ValueError) as exc:
        if not update:
            first = str(exc).splitlines()[0]
            raise pytest.UsageError(
                f"--agentflows-baseline: cannot read {path}: {first}. Fix: write it again with "
                "--agentflows-baseline-update."
            ) from None
    config.stash[BASELINE_KEY] = (path, baseline, tolerance)


def _baseline_verdict(item: pytest.Item, flow: Flow) -> None:
    """Fail the flow when it grew beyond the baseline's tolerance (not while the baseline is written)."""
    loaded = item.config.stash.get(BASELINE_KEY, None)
    if loaded is None or item.config.getoption("agentflows_baseline_update", False):
        return
    path, baseline, tolerance = loaded
    before = baseline.flows.get(item.nodeid)
    if before is None:
        return
    from ..report import FlowBaseline, FlowRow, baseline_growths
    from ._report_render import growth_lines

    now = FlowBaseline.from_row(FlowRow.from_flow(item.nodeid, flow, chart=False))
    growths = baseline_growths(item.nodeid, before, now, tolerance)
    if growths:
        table = "\n".join(growth_lines(growths))
        option = item.config.getoption("agentflows_baseline")
        pytest.fail(
            f"agentflows baseline: {item.nodeid} grew beyond the tolerance ({tolerance.describe()}) of "
            f"{path}:\n{table}\nFix: if the growth is intended, update the baseline with pytest "
            f"--agentflows-baseline={option} --agentflows-baseline-update and commit it.",
            pytrace=False,
        )


def pytest_sessionstart(session: pytest.Session) -> None:
    _forget_snapshot_reads()
    from ..cassette import _session

    _session.begin()  # --record-agents=all rewrites each cassette afresh once per session (shared: merged)


def _forget_snapshot_reads() -> None:
    """Drop syrupy's per-session cache of snapshot files (a no-op unless syrupy is already imported).

    syrupy keys that cache by ``id(session)``; a later in-process session (pytester) can get the same id
    and read stale snapshots. Sessions are independent, so clearing it at session start is always safe.
    """
    amber = sys.modules.get("syrupy.extensions.amber")
    cached = getattr(
        getattr(amber, "AmberSnapshotExtension", None),
        "_AmberSnapshotExtension__cacheable_read_snapshot",
        None,
    )
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()


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


_MARKER_NAMES = frozenset(("agentflow", "agent_budget", "agent_deadline", "agent_faults"))
SNAPSHOT_TESTS_KEY = pytest.StashKey[set[str]]()
"""Node ids of the selected tests that request ``decision_snapshot`` (see :class:`_SnapshotKeeper`)."""


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """A misused marker of ours is a collection error of its test: one line, no traceback, test not run.

    Runs last, on the items left after ``-k``/``-m`` deselection; a test without our markers costs one walk
    over its markers (nothing is imported).
    """
    bad: dict[str, str] = {}
    config.stash[SNAPSHOT_TESTS_KEY] = {
        item.nodeid for item in items if "decision_snapshot" in getattr(item, "fixturenames", ())
    }
    for item in items:
        if not any(m.name in _MARKER_NAMES for m in item.iter_markers()):
            continue
        from ..errors import UsageError
        from ._options import check_markers

        try:
            check_markers(item)
        except UsageError as exc:
            bad[item.nodeid] = str(exc)
    if not bad:
        return
    items[:] = [item for item in items if item.nodeid not in bad]
    for nodeid, message in bad.items():
        config.hook.pytest_collectreport(report=pytest.CollectReport(nodeid, "failed", message, []))


@pytest.fixture
def agentflow(request: pytest.FixtureRequest) -> Iterator[Flow]:
    """The test's :class:`~pytest_agentflows.Flow`, its cassette active (see the ``agentflow`` marker)."""
    from ..cassette._redact import Redactor
    from ..errors import CassetteError, CassetteSaveError, UsageError
    from ..flow import Flow
    from ._options import resolve

    item = request.node
    _use_session_caches(item.config)
    try:
        options = resolve(item)
    except UsageError as exc:  # (the collection check catches marker misuse first: one line here too)
        pytest.fail(f"UsageError: {exc}", pytrace=False)
    flow = Flow(
        cassette=options.cassette,
        record=options.record,
        budget_usd=options.budget_usd,
        budget_tokens=options.budget_tokens,
        deadline_s=options.deadline_s,
        latency=options.latency,
        redactor=Redactor(headers=options.redact_headers, body_keys=options.redact_body_keys),
        test_id=item.nodeid,
        save_on_failure=options.save_on_failure,
        match_ignore=options.match_ignore,
        prune_unused=options.prune_unused,
    )
    _add_marker_faults(item, flow)
    item.stash[FLOW_KEY] = flow
    _RUNNING[item.nodeid] = (item, flow)
    _attach_loop_first(item, flow)
    unsaved: CassetteError | None = None
    ended = "did not run to the end"
    try:
        with contextlib.ExitStack() as stack:
            unreadable = None
            try:
                stack.enter_context(flow.activate())
            except CassetteError as exc:
                unreadable = exc
            if unreadable is not None:  # the message names the file and the place: no traceback to read
                pytest.fail(f"CassetteError: {unreadable}", pytrace=False)
            from ..integrations import enabled

            stack.enter_context(enabled(flow, item.config.stash.get(INTEGRATIONS_KEY, None)))
            _hold_telemetry_for_the_session(item.config)
            yield flow
            ended = item.stash.get(CALL_KEY, "did not run to the end")
            if ended != "passed":
                flow.mark_failed(ended)
    except CassetteError as exc:  # saving failed (conflict, unwritable body): the message says it all
        unsaved = exc
    except OSError as exc:  # disk full, read-only directory...
        unsaved = CassetteSaveError(
            flow.cassette_path or "", "", f"writing the file failed ({type(exc).__name__}: {exc})"
        )
    _note_cassette_use(item.config, flow, complete=ended == "passed" and unsaved is None)
    if flow.recorded_interactions:
        _snapshots_follow_cassette(item, saved=unsaved is None and flow.discarded is None)
    if unsaved is not None:
        pytest.fail(f"{type(unsaved).__name__}: {unsaved}", pytrace=False)
    if flow.discarded is not None:
        reason, count = flow.discarded
        item.config.stash[DISCARDED_KEY].append(_discard_line(item.nodeid, flow, reason, count))


def _use_session_caches(config: pytest.Config) -> None:
    """From the first flow on, cassettes are parsed once and kept in pytest's cache directory (see
    :mod:`pytest_agentflows.cassette._parsed`), and the price rates an earlier session worked out are used
    (see :func:`pytest_agentflows.providers._pricing.kept_rates`); neither without pytest's cacheprovider."""
    if PARSE_CACHE_KEY in config.stash:
        return
    from ..cassette import _parsed

    cache = getattr(config, "cache", None)
    _parsed.use(_parsed.ParseCache(cache.mkdir("agentflows-parsed")) if cache is not None else None)
    config.stash[PARSE_CACHE_KEY] = True
    if cache is not None:
        from ..providers._pricing import rates_identity, use_kept_rates

        kept, identity = cache.get(_RATES_CACHE, None), rates_identity()
        taken = 0
        if identity is not None and isinstance(kept, dict) and kept.get("identity") == identity:
            taken = use_kept_rates(kept.get("rates"))
        config.stash[RATES_TAKEN_KEY] = taken


_RATES_CACHE = "agentflows/price-rates"
"""pytest cache key of the price rates kept between sessions: ``{"identity": ..., "rates": [...]}``."""


def _keep_rates(config: pytest.Config) -> None:
    """Keep the price rates this session worked out for the next one (when it found new ones)."""
    taken = config.stash.get(RATES_TAKEN_KEY, None)
    cache = getattr(config, "cache", None)
    if taken is None or cache is None:
        return
    from ..providers._pricing import kept_rates, rates_identity

    rates, identity = kept_rates(), rates_identity()
    if identity is not None and len(rates) > taken:
        with contextlib.suppress(OSError):
            cache.set(_RATES_CACHE, {"identity": identity, "rates": rates})


def _hold_telemetry_for_the_session(config: pytest.Config) -> None:
    """From the first flow on, framework telemetry is answered locally also between tests (a background
    exporter's late post is neither sent nor blamed on the next test); released at ``pytest_unconfigure``."""
    if TELEMETRY_RELEASE_KEY not in config.stash:
        from ..cassette._telemetry import telemetry_guard

        config.stash[TELEMETRY_RELEASE_KEY] = telemetry_guard.hold()


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(PARSE_CACHE_KEY, False):
        from ..cassette import _parsed

        _parsed.use(None)
        _keep_rates(config)
    release = config.stash.get(TELEMETRY_RELEASE_KEY, None)
    if release is not None:
        release()
        del config.stash[TELEMETRY_RELEASE_KEY]


def _snapshots_follow_cassette(item: pytest.Item, *, saved: bool) -> None:
    """Write the snapshots a recording test updated now that its cassette is saved, or drop them if not.

    syrupy queues snapshot writes and flushes them at the end of the session. A test that recorded must
    not leave a cassette and a snapshot from different runs: with its cassette saved, its queued snapshot
    files are written right away (a later crash or kill keeps the pair); when the cassette was not saved
    (the test failed, the disk was full), its queued writes are dropped and its old snapshots stay, like
    its old cassette.
    """
    syrupy = getattr(item.config, "_syrupy", None)
    queue = getattr(syrupy, "_queued_snapshot_writes", None)
    flush = getattr(syrupy, "_flush_snapshot_write_queue_key", None)
    if not isinstance(queue, dict) or flush is None:
        return
    nodeid = item.nodeid
    for ext_key in list(queue):
        entries = queue[ext_key]
        mine = [k for k in entries if getattr(getattr(k[0], "item", None), "nodeid", None) == nodeid]
        if not mine:
            continue
        if saved:
            flush(ext_key)
        else:
            for key in mine:
                del entries[key]


def _note_cassette_use(config: pytest.Config, flow: Flow, *, complete: bool) -> None:
    usage = flow.cassette_usage
    if usage is None or not (usage.loaded or usage.recorded or usage.pruned):
        return
    from ..report import CassetteUse

    config.stash[CASSETTES_KEY].append(
        CassetteUse(
            path=usage.path,
            loaded=usage.loaded,
            unused=usage.unused,
            recorded=usage.recorded,
            pruned=usage.pruned,
            complete=complete,
        )
    )


def _discard_line(nodeid: str, flow: Flow, reason: str, count: int) -> str:
    path = flow.cassette_path
    kept = "kept as it was" if path is not None and path.exists() else "not created"
    return (
        f"agentflows: {nodeid} {reason}: its {count} recorded interaction(s) were not saved; cassette "
        f"{path} {kept}. To save a failing test's recording, set ini agentflows_save_on_failure = true or "
        "@pytest.mark.agentflow(save_on_failure=True)."
    )


def _call_ended(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "was interrupted (KeyboardInterrupt)"
    if isinstance(exc, pytest.skip.Exception):
        return "was skipped"
    return f"failed ({type(exc).__name__})"


def _add_marker_faults(item: pytest.Item, flow: Flow) -> None:
    """The faults of every ``agent_faults`` marker (closest first) go into the flow's fault plan."""
    from ..errors import UsageError
    from ..testing.faults import faults_from_marker

    for marker in item.iter_markers("agent_faults"):
        try:
            flow.faults.add(*faults_from_marker(marker.args, marker.kwargs))
        except UsageError as exc:
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.agent_faults: {exc}") from None


@pytest.fixture
def scripted_model(agentflow: Flow, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Inline replies in the real OpenAI / Anthropic wire formats for the test's flow (respx-backed).

    ``scripted_model.openai(agent="router").reply("billing", output_tokens=1, latency=0.4)``; at teardown,
    replies never requested fail the test unless ``scripted_model.strict = False``.
    """
    from ..testing.scripted import ScriptedModel

    with ScriptedModel(agentflow) as model:
        yield model
    reports = request.node.__dict__.get("_agentflows_reports", [])
    if model.strict and not any(r.failed for r in reports):
        model.assert_all_used()


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
def decision_snapshot(snapshot: Any, request: pytest.FixtureRequest) -> Any:
    """syrupy's ``snapshot`` with the decision-log extension.

    Use as ``assert agentflow.decisions == decision_snapshot``. Measurements (virtual times, latencies,
    tokens, USD) stay out of the snapshot unless ini ``agentflows_snapshot_measurements = true`` or
    ``@pytest.mark.agentflow(snapshot_measurements=True)`` asks for them.
    """
    from ..errors import UsageError
    from ._options import snapshot_measurements
    from .snapshot import DecisionLogExtension, MeasuredDecisionLogExtension

    try:
        measured = snapshot_measurements(request.node)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    return snapshot.use_extension(MeasuredDecisionLogExtension if measured else DecisionLogExtension)


@pytest.fixture
def agent_router(agentflow: Flow) -> Any:
    """Factory ``agent_router(classify, routes, fallback=None)``: a ``Router`` in the test's flow."""
    from ..patterns import Router

    return functools.partial(Router, flow=agentflow)


@pytest.fixture
def agent_pipeline(agentflow: Flow) -> Any:
    """Factory ``agent_pipeline(stages)``: a ``Pipeline`` in the test's flow, drawing from its budget."""
    from ..patterns import Pipeline

    return functools.partial(Pipeline, flow=agentflow)


@pytest.fixture
def agent_broadcast(agentflow: Flow) -> Any:
    """Factory ``agent_broadcast(agents, aggregate, min_successes=1, timeout=None)`` in the test's flow."""
    from ..patterns import Broadcast

    return functools.partial(Broadcast, flow=agentflow)


@pytest.fixture
def agent_supervisor(agentflow: Flow) -> Any:
    """Factory ``agent_supervisor(worker, reviewer, approve=, max_revisions=3, deadline=None)`` in the flow.

    Without ``deadline=``, the flow's deadline (``@pytest.mark.agent_deadline``) applies.
    """
    from ..patterns import Supervisor

    return functools.partial(Supervisor, flow=agentflow)


@pytest.fixture
def agent_orchestrator(agentflow: Flow) -> Any:
    """Factory ``agent_orchestrator(planner, workers, synthesize=None)``: an ``Orchestrator`` in the flow."""
    from ..patterns import Orchestrator

    return functools.partial(Orchestrator, flow=agentflow)


@pytest.fixture
def agent_consensus(agentflow: Flow) -> Any:
    """Factory ``agent_consensus(voters, required_agreement=0.5)``: a ``Consensus`` in the test's flow."""
    from ..patterns import Consensus

    return functools.partial(Consensus, flow=agentflow)


@pytest.fixture
def agent_event_bus(agentflow: Flow) -> Any:
    """Factory ``agent_event_bus(max_events=1000)``: an ``EventBus`` recording into the test's flow."""
    from ..patterns import EventBus

    return functools.partial(EventBus, flow=agentflow)


def _verdicts(item: pytest.Item, flow: Flow) -> None:
    __tracebackhide__ = True  # the verdict's message says it all: no frames of ours in the report
    marker = item.get_closest_marker("agent_budget")
    if marker is not None:
        flow.assert_within_budget(usd=flow.budget.usd, tokens=flow.budget.tokens)
    if flow.deadline is not None:
        flow.assert_deadline(flow.deadline.seconds)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    __tracebackhide__ = True
    try:
        result = yield
        flow = item.stash.get(FLOW_KEY, None)
        if flow is not None:
            unhandled = [m for m in flow.pending_misses() if not _reached_test(m, item)]
            if unhandled:
                _fail_swallowed(unhandled)
            _verdicts(item, flow)
            _baseline_verdict(item, flow)
    except BaseException as exc:
        if FLOW_KEY in item.stash:
            item.stash[CALL_KEY] = _call_ended(exc)
            if _shorten_miss(exc):
                # not a bare ``raise``: Python 3.10's re-raises with the traceback the exception was
                # caught with, undoing the cut (3.11+ takes the exception's own ``__traceback__``)
                raise exc
        raise
    if flow is not None:
        item.stash[CALL_KEY] = "passed"
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """A failing flow test's report holds no secret the flow saw (see :mod:`._scrub_report`)."""
    report = yield
    flow = item.stash.get(FLOW_KEY, None)
    if flow is not None and report.longrepr is not None:
        from ._scrub_report import scrub_report

        scrub_report(report, flow.redactor.scrub_report_text)
    return report


def _test_code(item: pytest.Item) -> Any:
    function = getattr(item, "function", None)
    return getattr(inspect.unwrap(function), "__code__", None) if function is not None else None


def _reached_test(miss: BaseException, item: pytest.Item) -> bool:
    """Whether ``miss`` propagated up to the test function itself (which then caught it: it is handled).

    A raised exception's traceback gains one entry per frame it passes through, so the test function's
    frame is in it exactly when the miss reached the test's own code (``pytest.raises``, an ``except`` in
    the test). A miss that app code (or a framework, or a thread) swallowed never gets there.
    """
    code = _test_code(item)
    tb = miss.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return True
        tb = tb.tb_next
    return False


def _fail_swallowed(misses: list[Any]) -> None:
    """Fail the test with the first miss that code other than the test function caught (no frames)."""
    __tracebackhide__ = True
    first = misses[0]
    more = f" (and {len(misses) - 1} more)" if len(misses) > 1 else ""
    note = (
        f"\n(caught by code other than the test function{more}, so the test fails anyway; a test that "
        "expects a miss catches it itself, e.g. with pytest.raises(UnrecordedRequestError))"
    )
    raise _short(first, note)


def _short(miss: Any, note: str) -> BaseException:
    """``miss`` without its frames (where app code raised and caught it), ``note`` added to its message."""
    miss.args = (str(miss) + note,)
    return miss.with_traceback(None)  # type: ignore[no-any-return]


_LIBRARY_DIRS: tuple[str, ...] | None = None


def _library_dirs() -> tuple[str, ...]:
    global _LIBRARY_DIRS
    if _LIBRARY_DIRS is None:
        import os
        import sysconfig

        paths = sysconfig.get_paths()
        dirs = {paths.get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")}
        dirs.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this package
        _LIBRARY_DIRS = tuple(sorted(os.path.join(os.path.realpath(d), "") for d in dirs if d))
    return _LIBRARY_DIRS


def _shorten_miss(exc: BaseException) -> bool:
    """Cut a miss's traceback after the last frame of the user's code (the call that made the request).

    Below it are only the SDK, httpx, vcrpy's stubs and this plugin (~100 lines pytest would print before
    the message); above it stay the test and the app code that led to the request. Returns whether it
    cut: the caller then raises ``exc`` by name (a bare ``raise`` would restore the whole traceback on
    Python 3.10).
    """
    from ..errors import UnrecordedRequestError

    if not isinstance(exc, UnrecordedRequestError):
        return False
    import os
    import types

    entries = []
    tb = exc.__traceback__
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    library = _library_dirs()
    user = [
        i
        for i, entry in enumerate(entries)
        if not os.path.realpath(entry.tb_frame.f_code.co_filename).startswith(library)
        and not entry.tb_frame.f_code.co_filename.startswith("<")
    ]
    if not user or user[-1] == len(entries) - 1:
        return False
    chain = None
    for entry in reversed(entries[: user[-1] + 1]):
        chain = types.TracebackType(chain, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    exc.with_traceback(chain)
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect the reports of flow tests; at teardown, turn the flow into a report row.

    A plain (non-wrapper) hook with a dict lookup, so tests that use no flow pay next to nothing.
    """
    running = _RUNNING.get(report.nodeid)
    if running is None:
        return
    item, flow = running
    reports = item.__dict__.setdefault("_agentflows_reports", [])
    reports.append(report)
    if report.when != "teardown":
        return
    del _RUNNING[report.nodeid]
    from ..report import row_data
    from ._rows import json_text

    row = row_data(report.nodeid, flow, _outcome(reports))  # plain data: no model built per test
    # The item lives until the session ends: it must not keep the flow (its cassette, ledger and log)
    # alive, or every later garbage collection walks all the flows of the session.
    del item.__dict__["_agentflows_reports"]
    if FLOW_KEY in item.stash:
        del item.stash[FLOW_KEY]
    item.config.stash[ROWS_KEY].add_data(row)
    del row["spans"], row["mermaid"]
    report.user_properties.append(("agentflows", json_text(row)))


class _SnapshotKeeper:
    """A decision-snapshot test that failed or errored keeps its snapshots under ``--snapshot-update``.

    syrupy deletes, as unused, every snapshot of a selected test that the run did not assert, so a test
    that failed before its assertion (an unrecorded request, a broken fixture) would lose its snapshot.
    syrupy keeps the snapshots of skipped tests: such a test is reported to syrupy as skipped (for its
    unused-snapshot bookkeeping only; pytest still reports the failure).
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)  # after syrupy recorded the outcome
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.failed or report.when == "teardown":
            return
        if report.nodeid not in self.config.stash.get(SNAPSHOT_TESTS_KEY, ()):
            return
        session = getattr(self.config, "_syrupy", None)
        selected = getattr(session, "_selected_items", None)
        if not isinstance(selected, dict) or report.nodeid not in selected:
            return
        from syrupy.session import ItemStatus

        selected[report.nodeid] = ItemStatus.SKIPPED


def _outcome(reports: list[pytest.TestReport]) -> Outcome:
    if any(r.failed and r.when == "call" for r in reports):
        return "failed"
    if any(r.failed for r in reports):
        return "error"
    if any(r.skipped for r in reports):
        return "skipped"
    return "passed"


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist controller: collect the rows (and discarded recordings) a finished worker sent."""
    output = getattr(node, "workeroutput", {})
    node.config.stash[DISCARDED_KEY].extend(output.get(WORKER_DISCARDED, []))
    rows = output.get(WORKER_ROWS, [])
    uses = output.get(WORKER_CASSETTES, [])
    if not rows and not uses:
        return
    from ..report import CassetteUse

    stored = node.config.stash[ROWS_KEY]
    for text in rows:
        stored.add_json(text)
    node.config.stash[CASSETTES_KEY].extend(CassetteUse.model_validate_json(u) for u in uses)


def pytest_sessionfinish(session: pytest.Session) -> None:
    from ..cassette import _session

    _session.end()
    config = session.config
    stored = config.stash.get(ROWS_KEY, None)
    if hasattr(config, "workerinput"):  # pytest-xdist worker: the controller reports
        config.workeroutput[WORKER_ROWS] = stored.texts() if stored else []  # type: ignore[attr-defined]
        config.workeroutput[WORKER_DISCARDED] = config.stash.get(DISCARDED_KEY, [])  # type: ignore[attr-defined]
        config.workeroutput[WORKER_CASSETTES] = [  # type: ignore[attr-defined]
            u.model_dump_json() for u in config.stash.get(CASSETTES_KEY, [])
        ]
        return
    _judge_unused(session)
    _finish_baseline(config, stored)
    wanted = [config.getoption(o, None) for o in ("agentflows_json", "agentflows_html")]
    if not any(wanted):
        return  # nothing to write: don't even import the report modules
    rows = stored.rows() if stored else []
    from ._report_render import write_html, write_json

    written: list[tuple[str, bool]] = []
    config.stash[WRITTEN_KEY] = written
    from ..report import build_report

    report = build_report(rows)
    for option, kind, write in (
        ("agentflows_json", "JSON", write_json),
        ("agentflows_html", "HTML", write_html),
    ):
        path = config.getoption(option, None)
        if path:
            target = config.invocation_params.dir / path
            try:
                write(target, report)
            except OSError as exc:
                written.append((f"agentflows: cannot write the {kind} report {target}: {exc}", False))
            else:
                written.append((f"agentflows: {kind} report written to {target}", True))


def _finish_baseline(config: pytest.Config, stored: FlowRows | None) -> None:
    """Write the baseline (``--agentflows-baseline-update``) or list what grew; the GitHub job summary."""
    loaded = config.stash.get(BASELINE_KEY, None)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if loaded is None and not (summary_file and stored):
        return
    rows = stored.rows() if stored else []
    from ..report import FlowBaseline, baseline_growths

    lines: list[tuple[str, bool]] = []
    config.stash[BASELINE_LINES_KEY] = lines
    growths: list[Growth] = []
    if loaded is not None:
        path, baseline, tolerance = loaded
        if config.getoption("agentflows_baseline_update", False):
            from ..cassette._store import atomic_write_text

            updated = baseline.updated(rows)
            try:
                atomic_write_text(path, updated.model_dump_json(indent=2) + "\n")
            except OSError as exc:
                lines.append((f"agentflows: cannot write the baseline {path}: {exc}", False))
            else:
                written = sum(1 for r in rows if r.outcome == "passed")
                lines.append((f"agentflows: baseline {path} written ({written} flows updated)", True))
        else:
            for row in sorted(rows, key=lambda r: r.test):
                before = baseline.flows.get(row.test)
                if before is not None:
                    growths += baseline_growths(row.test, before, FlowBaseline.from_row(row), tolerance)
            compared = sum(1 for r in rows if r.test in baseline.flows)
            grew = sorted({g.test for g in growths})
            lines.append(
                (
                    f"agentflows: baseline {path}: {compared} flows compared, {len(grew)} grew beyond the "
                    f"tolerance ({tolerance.describe()})" + (":" if grew else ""),
                    not grew,
                )
            )
            from ._report_render import growth_lines

            for test in grew:
                lines.append((f"  {test}", False))
                lines.extend(
                    (line, False)
                    for line in growth_lines([g for g in growths if g.test == test], indent="    ")
                )
    if summary_file and rows:
        from ._report_render import markdown_summary

        text = markdown_summary(
            rows,
            growths,
            baseline=str(config.getoption("agentflows_baseline")) if loaded is not None else None,
            tolerance=loaded[2].describe() if loaded is not None else "",
        )
        try:
            with open(summary_file, "a", encoding="utf-8") as fh:  # GitHub's file: it appends, we append
                fh.write(text)
        except OSError as exc:
            lines.append((f"agentflows: cannot write the GitHub job summary {summary_file}: {exc}", False))


def _judge_unused(session: pytest.Session) -> None:
    """Find the recorded interactions no flow replayed; with ini ``... = fail`` the run fails on them."""
    config = session.config
    uses = config.stash.get(CASSETTES_KEY, [])
    mode = str(config.getini("agentflows_unused_interactions")).strip().lower()
    if not uses or mode == "ignore":
        return
    from ..report import unused_interactions

    found = unused_interactions(uses)
    config.stash[UNUSED_KEY] = found
    if mode == "fail" and any(u.unused for u in found) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _unused_lines(found: list[UnusedInteractions], config: pytest.Config) -> list[tuple[str, bool]]:
    """Summary lines (text, is-a-failure) about unused and pruned interactions."""
    lines: list[tuple[str, bool]] = []
    root = config.rootpath
    strict = str(config.getini("agentflows_unused_interactions")).strip().lower() == "fail"

    def shown(path: str) -> str:
        try:
            return str(Path(path).relative_to(root))
        except ValueError:
            return path

    pruned = [u for u in found if u.pruned]
    if pruned:
        total = sum(u.pruned for u in pruned)
        files = f"{len(pruned)} cassette{'s' if len(pruned) != 1 else ''}"
        lines.append(
            (
                f"agentflows: dropped {total} recorded interaction{'s' if total != 1 else ''} the "
                f"re-recorded tests no longer used, from {files}:",
                False,
            )
        )
        lines.extend((f"  {shown(u.path)}: {u.pruned} dropped", False) for u in pruned)
    unused = [u for u in found if u.unused]
    if unused:
        total = sum(len(u.unused) for u in unused)
        fix = (
            "the run fails on them (ini agentflows_unused_interactions = fail)"
            if strict
            else "ini agentflows_unused_interactions = fail makes them fail the run"
        )
        lines.append(
            (
                f"agentflows: {total} recorded interaction{'s' if total != 1 else ''} never replayed, in "
                f"{len(unused)} cassette{'s' if len(unused) != 1 else ''}. Fix: re-record the test with "
                f"--record-agents (it drops what its own cassette no longer uses) or delete them; {fix}.",
                strict,
            )
        )
        for u in unused:
            places = ", ".join(f"interactions[{i}] {d}" for i, d in list(u.unused.items())[:3])
            more = f", +{len(u.unused) - 3} more" if len(u.unused) > 3 else ""
            lines.append(
                (f"  {shown(u.path)}: {len(u.unused)} of {u.interactions} unused: {places}{more}", strict)
            )
    return lines


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    stored = config.stash.get(ROWS_KEY, None)
    rows = stored.rows() if stored and config.getoption("agentflows_report", False) else []
    written = config.stash.get(WRITTEN_KEY, [])
    discarded = config.stash.get(DISCARDED_KEY, [])
    unused = _unused_lines(config.stash.get(UNUSED_KEY, []), config)
    baseline = config.stash.get(BASELINE_LINES_KEY, [])
    if not stored and not written and not discarded and not unused and not baseline:
        return
    terminalreporter.write_sep("-", "agentflows")
    if rows and config.getoption("agentflows_report", False):
        from ._report_render import table_lines

        for line in table_lines(rows):
            if terminalreporter.hasmarkup:
                for text, markup in line:
                    terminalreporter.write(text, **markup)
                terminalreporter.line("")
            else:
                terminalreporter.write_line("".join(text for text, _ in line))
    if stored:
        from ..report import summary_line

        terminalreporter.write_line(summary_line(stored.totals()))
    for message, ok in [*written, *baseline]:
        terminalreporter.write_line(message, **({} if ok else {"red": True, "bold": True}))
    for note in discarded:
        terminalreporter.write_line(note, yellow=True)
    for text, failure in unused:
        terminalreporter.write_line(text, **({"red": True, "bold": True} if failure else {"yellow": True}))
