"""Framework telemetry answered locally: never sent, never written to a cassette, never a miss.

Agent frameworks export traces and usage telemetry from background threads (openai-agents' trace ingest,
CrewAI's telemetry, any OpenTelemetry OTLP/HTTP exporter, logfire, LangSmith). Under test that traffic
must not reach the network, must not end up in a cassette (its trace ids are random, so a recorded one
breaks every later replay) and must not be an "unrecorded request" blamed on whichever test runs when the
exporter wakes up. :class:`TelemetryGuard` answers such requests with an empty ``200`` (``{}``) at the
client level (``httpx``/``httpx2`` ``Client.send`` and ``AsyncClient.send``, ``requests.Session.send``),
above vcrpy's transport patches, so it holds inside a flow and between tests alike.

Only stacks already imported are patched (this module imports none); :meth:`TelemetryGuard.hold` patches
the ones imported since. The patches go when the last holder releases.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["TELEMETRY_URLS", "TelemetryGuard", "is_telemetry", "telemetry_guard"]

TELEMETRY_URLS: tuple[str, ...] = (
    "https://api.openai.com/v1/traces/ingest",  # openai-agents' trace exporter
    "https://telemetry.crewai.com",  # CrewAI's anonymous telemetry (OTLP)
    "https://app.crewai.com/crewai_plus/api/v1/tracing",  # CrewAI tracing
    "https://logfire-api.pydantic.dev",  # logfire (pydantic-ai's instrumentation)
    "https://logfire-us.pydantic.dev",
    "https://logfire-eu.pydantic.dev",
    "https://api.smith.langchain.com",  # LangSmith (LangChain / LangGraph tracing)
    "https://eu.api.smith.langchain.com",
)
"""Built-in URL prefixes of framework telemetry; ini ``agentflows_telemetry_urls`` adds more."""

_OTLP_PATH = re.compile(r"^https?://[^/]+(?:/[^?#]*)?/v1/(?:traces|metrics|logs)(?:[?#].*)?$")
"""Any OpenTelemetry OTLP/HTTP export (``…/v1/traces``, ``…/v1/metrics``, ``…/v1/logs``)."""


def is_telemetry(url: str, extra: Iterable[str] = ()) -> bool:
    """Whether ``url`` is framework telemetry: a built-in or ``extra`` prefix, or an OTLP export path."""
    if url.startswith(TELEMETRY_URLS) or _OTLP_PATH.match(url) is not None:
        return True
    return any(url.startswith(prefix) for prefix in extra)


class TelemetryGuard:
    """Answers telemetry requests locally while held (see the module docstring). Thread-safe.

    Args:
        extra_urls: URL prefixes to treat as telemetry beside :data:`TELEMETRY_URLS`.
    """

    def __init__(self, extra_urls: Iterable[str] = ()) -> None:
        self.extra_urls: tuple[str, ...] = tuple(extra_urls)
        self.answered = 0
        """How many telemetry requests were answered locally (all holders together)."""
        self._lock = threading.RLock()
        self._holders = 0
        self._undo: dict[tuple[type, str], Any] = {}

    def add_urls(self, prefixes: Iterable[str]) -> None:
        """Treat URLs starting with any of ``prefixes`` as telemetry too."""
        with self._lock:
            self.extra_urls = tuple(dict.fromkeys([*self.extra_urls, *prefixes]))

    def matches(self, url: str) -> bool:
        """Whether the guard answers a request to ``url``."""
        return is_telemetry(url, self.extra_urls)

    def hold(self) -> Callable[[], None]:
        """Patch the HTTP stacks imported so far (idempotent); returns the function that releases this hold.

        The patches stay until every hold is released.
        """
        with self._lock:
            self._holders += 1
            self._patch_loaded()
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                self._holders -= 1
                if self._holders == 0:
                    self._unpatch()

        return release

    # -- patching ------------------------------------------------------------------------------------------
    def _patch_loaded(self) -> None:
        for name in ("httpx", "httpx2"):
            module = sys.modules.get(name)
            if module is not None:
                self._patch(module.Client, "send", self._sync_send(module))
                self._patch(module.AsyncClient, "send", self._async_send(module))
        sessions = sys.modules.get("requests.sessions")
        if sessions is not None:
            self._patch(sessions.Session, "send", self._requests_send())

    def _patch(self, cls: type, name: str, make: Callable[[Any], Any]) -> None:
        key = (cls, name)
        if key in self._undo:
            return
        original = cls.__dict__[name]
        self._undo[key] = original
        setattr(cls, name, make(original))

    def _unpatch(self) -> None:
        for (cls, name), original in self._undo.items():
            setattr(cls, name, original)
        self._undo.clear()

    def _count(self) -> None:
        with self._lock:
            self.answered += 1

    def _sync_send(self, module: Any) -> Callable[[Any], Any]:
        guard = self

        def make(original: Any) -> Any:
            def send(client: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
                if guard.matches(str(request.url)):
                    guard._count()
                    return module.Response(200, json={}, request=request)
                return original(client, request, *args, **kwargs)

            return send

        return make

    def _async_send(self, module: Any) -> Callable[[Any], Any]:
        guard = self

        def make(original: Any) -> Any:
            async def send(client: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
                if guard.matches(str(request.url)):
                    guard._count()
                    return module.Response(200, json={}, request=request)
                return await original(client, request, *args, **kwargs)

            return send

        return make

    def _requests_send(self) -> Callable[[Any], Any]:
        guard = self

        def make(original: Any) -> Any:
            def send(session: Any, request: Any, **kwargs: Any) -> Any:
                if guard.matches(str(request.url)):
                    guard._count()
                    models = sys.modules["requests.models"]
                    response = models.Response()
                    response.status_code, response._content = 200, b"{}"
                    response.headers["content-type"] = "application/json"
                    response.url, response.request, response.reason = request.url, request, "OK"
                    return response
                return original(session, request, **kwargs)

            return send

        return make


telemetry_guard = TelemetryGuard()
"""The process's guard: every active flow holds it, and the pytest plugin for the whole session."""
