"""Secret scrubbing: applied to every interaction before anything is written (cassettes, reports).

Built-in list (always on): request and response headers ``authorization``, ``proxy-authorization``,
``x-api-key``, ``api-key``, ``cookie``, ``set-cookie``, ``openai-organization``, ``openai-project``,
``x-goog-api-key`` and every ``anthropic-*`` header naming a key or an organization; query parameters
``key``, ``api_key``, ``api-key``, ``access_token``, ``token``; and the value of any environment variable
whose name ends in ``_KEY``, ``_TOKEN``, ``_SECRET`` or ``_PASSWORD`` (8+ characters), wherever it appears.
Users add header names and JSON body keys with the ini options ``agentflows_redact_headers`` and
``agentflows_redact_body_keys``.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "<REDACTED>"

BUILTIN_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "set-cookie",
        "openai-organization",
        "openai-project",
        "x-goog-api-key",
    }
)
BUILTIN_QUERY = frozenset({"key", "api_key", "api-key", "access_token", "token"})
_ENV_NAME = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)


def _is_secret_header(name: str, extra: frozenset[str]) -> bool:
    low = name.lower()
    if low in BUILTIN_HEADERS or low in extra:
        return True
    return low.startswith("anthropic-") and ("key" in low or "organization" in low)


def env_secrets(environ: Mapping[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """``(name, value)`` of environment variables that hold secrets by their name (longest value first)."""
    env = os.environ if environ is None else environ
    found = [(k, v) for k, v in env.items() if _ENV_NAME.search(k) and len(v) >= 8]
    return tuple(sorted(found, key=lambda kv: (-len(kv[1]), kv[0])))


@dataclass
class RedactionReport:
    """What a redaction pass removed: counts per kind, never the values."""

    headers: int = 0
    query_params: int = 0
    body_keys: int = 0
    env_values: int = 0

    @property
    def total(self) -> int:
        """All removals."""
        return self.headers + self.query_params + self.body_keys + self.env_values

    def describe(self) -> str:
        """Counts in words, e.g. ``"2 headers, 1 query parameter"`` ("" when nothing was removed)."""
        kinds = (
            (self.headers, "header", "headers"),
            (self.query_params, "query parameter", "query parameters"),
            (self.body_keys, "body key", "body keys"),
            (self.env_values, "secret environment value", "secret environment values"),
        )
        return ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in kinds if n)

    def add(self, other: RedactionReport) -> None:
        """Add ``other``'s counts to this report."""
        self.headers += other.headers
        self.query_params += other.query_params
        self.body_keys += other.body_keys
        self.env_values += other.env_values


@dataclass
class Redactor:
    """Scrubs secrets from vcrpy requests and response dicts.

    Args:
        headers: Extra header names (case-insensitive) to remove, on top of the built-in list.
        body_keys: JSON keys whose values are replaced by ``"<REDACTED>"`` in request and response bodies.
        query: Extra query parameter names to remove.
        environ: Environment to take secret values from (default: ``os.environ`` at construction).
    """

    headers: Iterable[str] = ()
    body_keys: Iterable[str] = ()
    query: Iterable[str] = ()
    environ: Mapping[str, str] | None = None
    report: RedactionReport = field(default_factory=RedactionReport)

    def __post_init__(self) -> None:
        self._headers = frozenset(h.lower() for h in self.headers)
        self._body_keys = frozenset(self.body_keys)
        self.query_keys = BUILTIN_QUERY | frozenset(q.lower() for q in self.query)
        self._env = env_secrets(self.environ)

    # -- strings and bodies ------------------------------------------------------------------------------
    def scrub_text(self, text: str) -> str:
        """``text`` with secret environment values replaced by ``<REDACTED:NAME>``."""
        for name, value in self._env:
            if value in text:
                self.report.env_values += text.count(value)
                text = text.replace(value, f"<REDACTED:{name}>")
        return text

    def _scrub_json(self, data: Any) -> Any:
        if isinstance(data, dict):
            out = {}
            for k, v in data.items():
                if k in self._body_keys and v != REDACTED:
                    self.report.body_keys += 1
                    out[k] = REDACTED
                else:
                    out[k] = self._scrub_json(v)
            return out
        if isinstance(data, list):
            return [self._scrub_json(v) for v in data]
        return data

    def scrub_body(self, body: Any) -> Any:
        """A body (bytes/str/None) with secret values and redacted JSON keys replaced; type kept."""
        if body is None or (not self._env and not self._body_keys):
            return body
        as_bytes = isinstance(body, bytes | bytearray)
        try:
            text = bytes(body).decode("utf-8") if as_bytes else str(body)
        except UnicodeDecodeError:
            return body  # binary (e.g. gzip): nothing we can scrub as text
        if self._body_keys and text.lstrip()[:1] in ("{", "["):
            try:
                data = json.loads(text)
            except ValueError:
                pass
            else:
                before = self.report.body_keys
                data = self._scrub_json(data)
                if self.report.body_keys != before:
                    text = json.dumps(data, ensure_ascii=False)
        text = self.scrub_text(text)
        return text.encode("utf-8") if as_bytes else text

    def scrub_url(self, uri: str) -> str:
        """``uri`` without secret query parameters (and secret env values)."""
        parts = urlsplit(uri)
        if parts.query:
            pairs = parse_qsl(parts.query, keep_blank_values=True)
            kept = [(k, v) for k, v in pairs if k.lower() not in self.query_keys]
            if len(kept) != len(pairs):
                self.report.query_params += len(pairs) - len(kept)
                uri = urlunsplit(parts._replace(query=urlencode(kept)))
        return self.scrub_text(uri)

    def _scrub_headers(self, headers: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in headers.items():
            if _is_secret_header(name, self._headers):
                self.report.headers += 1
                continue
            if isinstance(value, list):
                out[name] = [self.scrub_text(str(v)) for v in value]
            else:
                out[name] = self.scrub_text(str(value))
        return out

    # -- vcrpy hooks -------------------------------------------------------------------------------------
    def request(self, request: Any) -> Any:
        """``before_record_request`` hook: a scrubbed copy of a ``vcr.request.Request``."""
        request = copy.copy(request)  # shares the original's parts: each is replaced, never mutated
        uri = self.scrub_url(request.uri)
        if uri != request.uri:
            request.uri = uri
        headers = dict(request.headers)
        scrubbed = self._scrub_headers(headers)
        if scrubbed != headers:  # rebuilding vcrpy's HeadersDict is the costly part: only when needed
            request.headers = scrubbed
        body = request.body_bytes if hasattr(request, "body_bytes") else request.body
        clean = self.scrub_body(body)
        if clean is not body:
            request.body = clean
        return request

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        """``before_record_response`` hook: scrubs a vcrpy response dict in place and returns it."""
        if isinstance(response.get("headers"), Mapping):
            response["headers"] = self._scrub_headers(response["headers"])
        body = response.get("body")
        if isinstance(body, dict) and "string" in body:
            body["string"] = self.scrub_body(body["string"])
        return response

    def request_dict(self, request: dict[str, Any]) -> dict[str, Any]:
        """Scrub a serialised request dict (``uri``, ``headers``, ``body``) in place and return it."""
        if isinstance(request.get("uri"), str):
            request["uri"] = self.scrub_url(request["uri"])
        if isinstance(request.get("headers"), Mapping):
            request["headers"] = self._scrub_headers(request["headers"])
        body = request.get("body")
        if isinstance(body, dict) and "string" in body:
            body["string"] = self.scrub_body(body["string"])
        elif body is not None:
            request["body"] = self.scrub_body(body)
        return request
