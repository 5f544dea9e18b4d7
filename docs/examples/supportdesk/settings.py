"""Where the support desk's models live: real provider APIs, or the bundled local model server."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

__all__ = ["LOCAL_ANTHROPIC_BASE_URL", "LOCAL_OPENAI_BASE_URL", "Settings"]

LOCAL_OPENAI_BASE_URL = "http://127.0.0.1:8765/v1"
"""OpenAI-compatible URL of ``python -m pytest_agentflows.model_server --port 8765``."""

LOCAL_ANTHROPIC_BASE_URL = "http://127.0.0.1:8765"
"""Anthropic-compatible URL of the same local server."""

_PLACEHOLDER_KEY = "sk-local-not-a-secret"


@dataclass(frozen=True)
class Settings:
    """Endpoints, keys and model names of the support desk's agents."""

    openai_base_url: str | None = LOCAL_OPENAI_BASE_URL
    """Base URL for the ``openai`` SDK (``None``: the SDK's default, https://api.openai.com/v1)."""
    openai_api_key: str = _PLACEHOLDER_KEY
    """OpenAI API key (any string works for the local server)."""
    anthropic_base_url: str | None = LOCAL_ANTHROPIC_BASE_URL
    """Base URL for the ``anthropic`` SDK (``None``: the SDK's default)."""
    anthropic_api_key: str = _PLACEHOLDER_KEY
    """Anthropic API key (any string works for the local server)."""
    fast_model: str = "gpt-4o-mini"
    """Cheap model: triage, specialists, knowledge-base search, research and review stages."""
    writer_model: str = "gpt-4o"
    """Strong model: the help-center article draft and the customer reply."""
    reviewer_model: str = "claude-haiku-4-5"
    """The QA reviewer of customer replies, on the Anthropic API."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from the environment: ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``ANTHROPIC_*`` alike.

        A provider with an API key uses its base URL variable, or the SDK's default endpoint. A provider
        without a key uses its base URL variable, or the bundled local model server on port 8765
        (:data:`LOCAL_OPENAI_BASE_URL`), so the app runs with no account at all.
        """
        env = os.environ if env is None else env
        openai_key = env.get("OPENAI_API_KEY", "")
        anthropic_key = env.get("ANTHROPIC_API_KEY", "")
        return cls(
            openai_base_url=env.get("OPENAI_BASE_URL") or (None if openai_key else LOCAL_OPENAI_BASE_URL),
            openai_api_key=openai_key or _PLACEHOLDER_KEY,
            anthropic_base_url=env.get("ANTHROPIC_BASE_URL")
            or (None if anthropic_key else LOCAL_ANTHROPIC_BASE_URL),
            anthropic_api_key=anthropic_key or _PLACEHOLDER_KEY,
        )

    def with_local_server(self, openai_base_url: str, anthropic_base_url: str) -> Settings:
        """A copy pointing both SDKs at a local model server (placeholder keys)."""
        return replace(
            self,
            openai_base_url=openai_base_url,
            openai_api_key=_PLACEHOLDER_KEY,
            anthropic_base_url=anthropic_base_url,
            anthropic_api_key=_PLACEHOLDER_KEY,
        )
