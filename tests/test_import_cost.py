"""No cost when unused: importing the plugin, or running tests that use none of its fixtures, loads no
heavy dependency (vcrpy, syrupy, the SDKs, genai-prices, looptime, httpx2, an agent framework).

Each check runs in a fresh interpreter: this test session itself imports all of them (``conftest.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = (
    "vcr",
    "syrupy",
    "openai",
    "anthropic",
    "genai_prices",
    "looptime",
    "httpx2",
    # agent frameworks: an integration switches on only when its framework is already imported
    "agents",
    "pydantic_ai",
    "opentelemetry",
    "langgraph",
    "langchain_core",
    "crewai",
    # our own modules that only a session with a flow (or a report option) needs
    "pytest_agentflows.flow",
    "pytest_agentflows.report",
    "pytest_agentflows.plugin._report_render",
)

_LOADED = textwrap.dedent(
    """
    import json, sys
    heavy = {heavy!r}
    print(json.dumps(sorted(h for h in heavy if any(m == h or m.startswith(h + ".") for m in sys.modules))))
    """
)


def _loaded_after(code: str) -> list[str]:
    script = code + "\n" + _LOADED.format(heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    ["import pytest_agentflows.plugin", "import pytest_agentflows", "from pytest_agentflows import Flow"],
)
def test_import_loads_no_heavy_dependency(code: str) -> None:
    loaded = _loaded_after(code)
    if code.startswith("from pytest_agentflows import Flow"):  # asked for: the flow module itself
        loaded = [m for m in loaded if m != "pytest_agentflows.flow"]
    assert loaded == []


SESSION_PROBE = textwrap.dedent(
    """
    import json, os, sys

    HEAVY = {heavy!r}


    def pytest_sessionfinish(session):
        loaded = sorted(h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in sys.modules))
        with open(os.environ["AGENTFLOWS_PROBE_OUT"], "w") as fh:
            json.dump(loaded, fh)
    """
)


def _session_modules(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str, passed: int = 2
) -> list[str]:
    out = pytester.path / f"loaded{len(args)}.json"
    monkeypatch.setenv("AGENTFLOWS_PROBE_OUT", str(out))
    pytester.makeconftest(SESSION_PROBE.format(heavy=HEAVY))
    pytester.makepyfile(
        test_plain="""
        import asyncio


        def test_sync():
            assert sum(range(4)) == 6


        def test_async_without_fixtures():
            assert asyncio.run(asyncio.sleep(0, result=3)) == 3
        """
    )
    # cassetter (an optional benchmark dependency) registers a plugin that imports httpx2: keep it out
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:cassetter", *args)
    result.assert_outcomes(passed=passed)
    return list(json.loads(out.read_text()))


def test_probe_sees_heavy_imports(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_uses_vcr="import vcr\n\ndef test_x():\n    assert vcr\n")
    assert "vcr" in _session_modules(pytester, monkeypatch, passed=3)


def test_session_without_our_fixtures_imports_nothing_heavy(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_plugin = _session_modules(pytester, monkeypatch)
    without_plugin = _session_modules(pytester, monkeypatch, "-p", "no:agentflows")
    assert "vcr" not in with_plugin
    # other installed plugins (syrupy's, looptime's) import their own library; ours must add nothing
    assert set(with_plugin) == set(without_plugin)
