"""Wiring of the support-desk example suite: which models the agents talk to, and the pattern fixtures.

* ``pytest docs/examples`` replays the committed cassettes: the agents point at a fixed local URL
  (``http://127.0.0.1:8765``; nothing needs to listen there, no request leaves the process). A loopback
  ``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL`` is used instead when set, e.g. a closed port to prove that
  replay stays offline: ports of loopback hosts take no part in matching.
* ``pytest docs/examples --record-agents=all`` records: a provider whose API key is set
  (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``) is called for real; a provider without a key is served by
  pytest-agentflows' :class:`~pytest_agentflows.model_server.LocalModelServer` with the example's
  deterministic replies (``local_models.py``), started once for the session. Against the local server the
  latency profile of ``set_latencies.py`` stands in for real latency, so the recording run decides exactly
  like the replays after it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
import set_latencies
from local_models import support_responder
from supportdesk import LOCAL_ANTHROPIC_BASE_URL, LOCAL_OPENAI_BASE_URL, Settings, SupportDesk

from pytest_agentflows import Flow, RecordMode
from pytest_agentflows.model_server import LocalModelServer


@dataclass(frozen=True)
class Models:
    """What the session's agents talk to."""

    settings: Settings
    """Endpoints and keys for the SDKs."""
    local_server: bool
    """Whether every provider is served by the local model server while recording."""


def _recording(config: pytest.Config) -> bool:
    return config.getoption("agentflows_record", None) not in (None, "none")


def _loopback_url(variable: str, default: str) -> str:
    """``$variable`` when it names a loopback host (any port matches the cassettes), else ``default``."""
    url = os.environ.get(variable, "")
    return url if urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1") else default


# --8<-- [start:models]
@pytest.fixture(scope="session")
def models(request: pytest.FixtureRequest) -> Iterator[Models]:
    """The models of the session: replayed, recorded from real APIs, or recorded from a local server."""
    if not _recording(request.config):
        # Replay: the local URL the cassettes were recorded at, placeholder keys, no server.
        replay = Settings(
            openai_base_url=_loopback_url("OPENAI_BASE_URL", LOCAL_OPENAI_BASE_URL),
            anthropic_base_url=_loopback_url("ANTHROPIC_BASE_URL", LOCAL_ANTHROPIC_BASE_URL),
        )
        yield Models(replay, local_server=False)
        return
    settings = Settings.from_env()
    real_openai, real_anthropic = (
        bool(os.environ.get("OPENAI_API_KEY")),
        bool(os.environ.get("ANTHROPIC_API_KEY")),
    )
    if real_openai and real_anthropic:
        yield Models(settings, local_server=False)
        return
    server = _local_server()
    try:
        if not real_openai:
            settings = replace(settings, openai_base_url=server.openai_base_url)
        if not real_anthropic:
            settings = replace(settings, anthropic_base_url=server.anthropic_base_url)
        yield Models(settings, local_server=not (real_openai or real_anthropic))
    finally:
        server.stop()
    # --8<-- [end:models]


def _local_server() -> LocalModelServer:
    """The example's local model server, on port 8765 when free (so cassettes keep the replay URL)."""
    try:
        return LocalModelServer(port=8765, responder=support_responder).start()
    except OSError:  # port taken: any free port (loopback ports take no part in matching)
        return LocalModelServer(responder=support_responder).start()


@pytest.fixture
def agentflow(agentflow: Flow, models: Models) -> Flow:
    """The plugin's ``agentflow``, with the latency profile while recording against the local server."""
    if models.local_server and agentflow.record_mode is not RecordMode.NONE:
        # --8<-- [start:simulate]
        agentflow.simulate_latency(set_latencies.latency_of)
        # --8<-- [end:simulate]
    return agentflow


# --8<-- [start:desk]
@pytest_asyncio.fixture
async def desk(
    models: Models, agent_router: Any, agent_pipeline: Any, agent_broadcast: Any, agent_supervisor: Any
) -> AsyncIterator[SupportDesk]:
    """The app, its patterns built by the flow-bound pattern fixtures (so they run in the test's flow)."""
    async with SupportDesk(
        models.settings,
        router=agent_router,
        pipeline=agent_pipeline,
        broadcast=agent_broadcast,
        supervisor=agent_supervisor,
    ) as app:
        yield app
    # --8<-- [end:desk]


@pytest_asyncio.fixture
async def strict_desk(
    models: Models, agent_router: Any, agent_pipeline: Any, agent_broadcast: Any, agent_supervisor: Any
) -> AsyncIterator[SupportDesk]:
    """The app with the compliance reviewer, who never approves a customer reply."""
    async with SupportDesk(
        models.settings,
        router=agent_router,
        pipeline=agent_pipeline,
        broadcast=agent_broadcast,
        supervisor=agent_supervisor,
        strict_review=True,
    ) as app:
        yield app
