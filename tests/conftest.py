"""Shared fixtures: a local model server the inner pytest sessions record against."""

from __future__ import annotations

from collections.abc import Callable, Iterator

# Import the heavy libraries once, before any pytester run: in-process inner sessions restore sys.modules
# to its state at their start, so modules loaded here are reused instead of re-imported by every run.
import anthropic  # noqa: F401
import httpx  # noqa: F401
import openai  # noqa: F401
import pytest
import requests  # noqa: F401
import stacks  # noqa: F401  (imports httpx2 when it is installed)
import syrupy.extensions.amber  # noqa: F401
import vcr
import vcr.cassette
import vcr.patch
import vcr.serializers.yamlserializer
import vcr.stubs.httpx_stubs  # noqa: F401  (loaded lazily by vcrpy; tests spy on it)

import pytest_agentflows.cassette._recorder  # noqa: F401
from pytest_agentflows.model_server import LocalModelServer
from pytest_agentflows.providers._pricing import price_usd

price_usd("openai", "gpt-4o-mini", input_tokens=1, output_tokens=1)  # loads genai-prices' data once


@pytest.fixture
def model_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalModelServer]:
    """A fresh local model server; its URLs are exported for inner pytest sessions (``AF_OPENAI_URL``…)."""
    with LocalModelServer() as server:
        monkeypatch.setenv("AF_OPENAI_URL", server.openai_base_url)
        monkeypatch.setenv("AF_ANTHROPIC_URL", server.anthropic_base_url)
        monkeypatch.setenv("AF_URL", server.url)
        yield server


@pytest.fixture
def go_offline(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to point inner sessions at a closed port: a real request would fail to connect."""

    def offline() -> None:
        monkeypatch.setenv("AF_OPENAI_URL", "http://127.0.0.1:9/v1")
        monkeypatch.setenv("AF_ANTHROPIC_URL", "http://127.0.0.1:9")
        monkeypatch.setenv("AF_URL", "http://127.0.0.1:9")

    return offline


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--stress",
        action="store_true",
        default=False,
        help="also run the heavy reliability runs marked 'stress' (SIGKILL loops, large fuzz, xdist matrices)",
    )
    parser.addoption(
        "--stress-figures",
        metavar="PATH",
        default=None,
        help="write the figures the stress runs measured (canaries tried, kills survived, ...) to PATH as JSON",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--stress"):
        return
    skip = pytest.mark.skip(reason="heavy reliability run: add --stress (see docs/reliability.md)")
    for item in items:
        if item.get_closest_marker("stress") is not None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Print pytest-randomly's seed at the end too: ``-q`` hides the header line that names it."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int) and config.pluginmanager.has_plugin("randomly"):
        terminalreporter.write_line(f"random order: re-run it with -p randomly --randomly-seed={seed}")
