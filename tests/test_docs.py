"""The docs stay true: the site builds strictly, the example suite passes offline, the README's quick start
records and replays, and every public name is in the API reference."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_agentflows
from pytest_agentflows.model_server import LocalModelServer

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CLOSED_PORT = "http://127.0.0.1:9"  # nothing listens on the discard port: a real request would fail


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "PYTEST_"))}
    env["OPENAI_BASE_URL"] = f"{CLOSED_PORT}/v1"
    env["ANTHROPIC_BASE_URL"] = CLOSED_PORT
    env["NO_MKDOCS_2_WARNING"] = "1"
    return env


def test_mkdocs_site_builds_strictly(tmp_path: Path) -> None:
    missing = [
        m for m in ("mkdocs", "material", "mkdocstrings_handlers.python") if not importlib.util.find_spec(m)
    ]
    if missing:
        pytest.skip(f"the docs toolchain is not installed ({', '.join(missing)}): pip install -e '.[dev]'")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        env=_offline_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    page = (tmp_path / "site" / "reference" / "index.html").read_text(encoding="utf-8")
    assert "VirtualClock" in page and "load_cassette" in page  # mkdocstrings rendered the API
    example = (tmp_path / "site" / "examples" / "index.html").read_text(encoding="utf-8")
    assert "test_a_late_knowledge_base_is_dropped_at_the_timeout" in example  # snippets were included
    assert "--8 &lt;" not in example and "dropped_at_the_timeout</span>" in example  # included, not shown
    articles = (tmp_path / "site" / "articles" / "index.html").read_text(encoding="utf-8")
    assert articles.count("--8&lt;--") == 0 and "route_request" in articles  # the ported examples are shown


def test_example_suite_passes_offline_from_committed_files() -> None:
    """The main job, ``pytest docs/examples --agentflows-report``, with every model endpoint on a closed port."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "docs/examples",
            "-q",
            "-p",
            "no:cacheprovider",
            "--agentflows-report",
        ],
        cwd=ROOT,
        env=_offline_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    # the framework examples skip where their framework is not installed (the py310 / py313 CI legs)
    assert re.search(r"^\d+ passed(, \d+ skipped)? in ", out, re.M), out
    assert re.search(r"^\d+ snapshots passed\.", out, re.M), out
    total = re.search(
        r"^agentflows: (\d+) flows, (\d+) model calls \((\d+) replayed, 0 recorded\)", out, re.M
    )
    assert total is not None, out
    flows, calls, replayed = (int(g) for g in total.groups())
    assert flows >= 10 and calls == replayed > flows
    assert "test_supportdesk.py::test_a_billing_ticket_end_to_end" in out  # a row of the report table


def _section(text: str, heading: str) -> str:
    """The body of the Markdown section titled ``heading``, up to the next heading of its level or above."""
    lines = text.splitlines(keepends=True)
    start, level, fenced = None, 0, False
    for index, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        if fenced or not line.startswith("#"):
            continue
        hashes = len(line) - len(line.lstrip("#"))
        if start is None and line.strip() == f"{'#' * hashes} {heading}":
            start, level = index + 1, hashes
        elif start is not None and hashes <= level:
            return "".join(lines[start:index])
    assert start is not None, f"no section {heading!r}"
    return "".join(lines[start:])


def _code(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)


def test_readme_set_up_commands_match_ci() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.index("## Quick start") < readme.index("## Set-up commands")
    main_job = _code(_section(readme, "Run the example suite (main job)"), "bash")
    own_tests = _code(_section(readme, "Run the project's own tests"), "bash")
    assert main_job == ["pip install -e '.[dev,frameworks]' && pytest docs/examples --agentflows-report\n"]
    assert own_tests == ["pip install -e '.[dev,frameworks]' && pytest -n 2 -q\n"]
    pytest_args = shlex.split(own_tests[0].split("&&")[1])[1:]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    runs = [shlex.split(line.split("&&")[1]) for line in ci.splitlines() if "&&" in line and "pytest" in line]
    assert [cmd[-len(pytest_args) :] for cmd in runs] == [pytest_args], ".ci/run and the README disagree"


def test_reference_lists_every_public_name() -> None:
    reference = (DOCS / "reference.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: pytest_agentflows\.(\w+)\s*$", reference, re.M))
    missing = sorted(set(pytest_agentflows.__all__) - documented)
    assert not missing, f"add `::: pytest_agentflows.<name>` to docs/reference.md for: {', '.join(missing)}"


def test_every_snippet_section_exists() -> None:
    for page in sorted(DOCS.rglob("*.md")):
        for path, section in re.findall(r'--8<-- "([^":]+)(?::(\w+))?"', page.read_text(encoding="utf-8")):
            source = ROOT / path
            assert source.is_file(), f"{page}: {path} does not exist"
            if section:
                text = source.read_text(encoding="utf-8")
                assert f"[start:{section}]" in text and f"[end:{section}]" in text, (
                    f"{page}: {path}:{section}"
                )


def test_quick_start_records_then_replays_offline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    (code,) = _code(_section(readme, "Quick start"), "python")[:1]
    assert code in _code(_section(index, "Quick start"), "python"), (
        "README and docs/index.md quick starts differ"
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_triage=code)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LocalModelServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        recorded = pytester.runpytest("--record-agents", "--snapshot-update")
    recorded.assert_outcomes(passed=1)
    assert (pytester.path / "cassettes" / "test_triage" / "test_triage.yaml").is_file()
    assert (pytester.path / "__snapshots__" / "test_triage.agentflows").is_file()

    monkeypatch.setenv("OPENAI_BASE_URL", f"{CLOSED_PORT}/v1")
    replayed = pytester.runpytest()
    replayed.assert_outcomes(passed=1)
    replayed.stdout.fnmatch_lines(["agentflows: 1 flow, 2 model calls (2 replayed, 0 recorded)*"])
