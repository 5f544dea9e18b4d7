"""Wiring of the framework examples: the OpenAI-compatible endpoint their agents talk to.

``pytest docs/examples/frameworks`` replays the committed cassettes (the agents point at a fixed local URL
where nothing needs to listen: ports of loopback hosts take no part in matching);
``pytest docs/examples/frameworks --record-agents=all --snapshot-update`` records them against
pytest-agentflows' local model server, whose default responder calls each tool a request offers once and
then answers in text.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_agentflows.model_server import LocalModelServer

REPLAY_URL = "http://127.0.0.1:8765/v1"


@pytest.fixture(scope="session")
def openai_base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Where the agents send their OpenAI requests: the local model server while recording."""
    if request.config.getoption("agentflows_record", None) in (None, "none"):
        yield REPLAY_URL
        return
    with LocalModelServer() as server:
        yield server.openai_base_url
