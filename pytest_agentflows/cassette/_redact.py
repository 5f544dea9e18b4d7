"""Secret scrubbing: applied to every interaction before anything is written (cassettes, reports).

Built-in list (always on): request and response headers ``authorization``, ``proxy-authorization``,
``x-api-key``, ``api-key``, ``cookie``, ``set-cookie``, ``openai-organization``, ``openai-project``,
``x-goog-api-key``, ``ocp-apim-subscription-key`` (Azure API Management), ``x-amz-security-token`` (AWS
session credentials), ``x-auth-token`` and every ``anthropic-*`` header naming a key or an organization;
query parameters ``key``, ``api_key``, ``api-key``, ``apikey``, ``access_token``, ``token``, ``sig`` (Azure
shared access signatures); credentials in a URL (``user:pass@host``);
and the value of any environment variable whose name ends in ``_KEY``, ``_TOKEN``, ``_SECRET`` or
``_PASSWORD`` (8+ characters), wherever it appears. Users add header names and JSON body keys with the ini
options ``agentflows_redact_headers`` and ``agentflows_redact_body_keys``.

Echoed secrets: the value of every secret header, query parameter or URL password the redactor removes
(the token of ``Authorization: Bearer <token>``, each cookie value, ...; 8+ characters) is remembered, and
from then on replaced by ``<REDACTED>`` wherever it appears: request and response bodies (a 401 error that
quotes the key, an echo endpoint, a stream), other headers, URLs. Only the full value is known: a partially
masked echo such as ``sk-abc***wxyz`` is kept as the service sent it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import functools
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode, urlsplit, urlunsplit

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
        "ocp-apim-subscription-key",
        "x-amz-security-token",
        "x-auth-token",
    }
)
BUILTIN_QUERY = frozenset({"key", "api_key", "api-key", "apikey", "access_token", "token", "sig"})
_ENV_NAME = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)
_ENV_TAILS = frozenset({"KEY", "KEN", "RET", "ORD"})  # cheap filter before the regular expression
MIN_SECRET_LEN = 8
"""Shorter values are not searched for in text (``"1"`` or ``"true"`` would be replaced everywhere)."""
_COOKIE_HEADERS = frozenset({"cookie", "set-cookie"})


_URL_CREDENTIALS = re.compile(r"(://)[^/\s@'\"<>]+@")


@functools.lru_cache(maxsize=16)
def _secret_query_pattern(names: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"([?&;](?:{alternatives})=)(?!<REDACTED)[^&#\s'\"<>)]+", re.IGNORECASE)


def _header_text(part: Any) -> str:
    """A header name or value as text: bytes decoded as httpx does (UTF-8, else Latin-1)."""
    if isinstance(part, bytes):
        try:
            return part.decode("utf-8")
        except UnicodeDecodeError:
            return part.decode("latin-1")
    return str(part)


_LEARNED_HEADERS_MAX = 4096
"""How many (header, value) pairs :meth:`Redactor.learn` remembers having read (a bound on memory)."""

_PLAIN_HEADERS: dict[frozenset[str], set[tuple[Any, Any]]] = {}
"""Per set of extra secret header names: (header, value) pairs seen that are not secret headers. Learning
one teaches no redactor anything, so a redactor built later (one per flow test) skips them too."""


@functools.lru_cache(maxsize=2048)
def _is_secret_header(name: str, extra: frozenset[str]) -> bool:
    low = name.lower()
    if low in BUILTIN_HEADERS or low in extra:
        return True
    return low.startswith("anthropic-") and ("key" in low or "organization" in low)


def env_secrets(environ: Mapping[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """``(name, value)`` of environment variables that hold secrets by their name (longest value first)."""
    env = os.environ if environ is None else environ
    found = [
        (k, v)
        for k, v in env.items()
        if k[-3:].upper() in _ENV_TAILS and _ENV_NAME.search(k) and len(v) >= MIN_SECRET_LEN
    ]
    return tuple(sorted(found, key=lambda kv: (-len(kv[1]), kv[0])))


def secret_forms(value: str) -> list[str]:
    """The ways ``value`` is written in text: as is, URL-quoted (a path or query segment, a form body,
    with ``+`` for spaces or not) and JSON with an escaped ``/`` (some servers write ``\\/``)."""
    forms = [value, quote(value, safe=""), quote(value), quote_plus(value), value.replace("/", "\\/")]
    return list(dict.fromkeys(forms))


def header_secret_values(name: str, value: str) -> list[str]:
    """The secret values a secret header carries, to be searched for elsewhere (8+ characters each).

    ``Authorization: Bearer <token>`` gives the token (a ``Basic`` one also its decoded user and password),
    each cookie of ``Cookie`` / ``Set-Cookie`` its value, any other header its whole value.
    """
    low, value = name.lower(), value.strip()
    found = [value]
    if low in ("authorization", "proxy-authorization") and " " in value:
        scheme, _, token = value.partition(" ")
        found = [token.strip()]
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(found[0], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            user, _, password = decoded.partition(":")
            found += [password, user]
    elif low in _COOKIE_HEADERS:
        pairs = value.split(";") if low == "cookie" else value.split(";", 1)[:1]
        found = [p.partition("=")[2].strip().strip('"') for p in pairs]
    return [v for v in found if len(v) >= MIN_SECRET_LEN and REDACTED not in v]


@dataclass
class RedactionReport:
    """What a redaction pass removed: counts per kind, never the values."""

    headers: int = 0
    query_params: int = 0
    body_keys: int = 0
    env_values: int = 0
    echoed_values: int = 0
    url_credentials: int = 0

    @property
    def total(self) -> int:
        """All removals."""
        return (
            self.headers
            + self.query_params
            + self.body_keys
            + self.env_values
            + self.echoed_values
            + self.url_credentials
        )

    def describe(self) -> str:
        """Counts in words, e.g. ``"2 headers, 1 query parameter"`` ("" when nothing was removed)."""
        kinds = (
            (self.headers, "header", "headers"),
            (self.query_params, "query parameter", "query parameters"),
            (self.body_keys, "body key", "body keys"),
            (self.env_values, "secret environment value", "secret environment values"),
            (self.echoed_values, "echoed secret value", "echoed secret values"),
            (self.url_credentials, "URL credential", "URL credentials"),
        )
        return ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in kinds if n)

    def add(self, other: RedactionReport) -> None:
        """Add ``other``'s counts to this report."""
        self.headers += other.headers
        self.query_params += other.query_params
        self.body_keys += other.body_keys
        self.env_values += other.env_values
        self.echoed_values += other.echoed_values
        self.url_credentials += other.url_credentials


_Patterns = tuple[tuple[str, str, bool], ...]
"""Text patterns of a redactor: ``(form, replacement, from the environment)``, longest first."""
_ENV_CACHE: dict[str, tuple[dict[Any, Any], tuple[tuple[str, str], ...], _Patterns]] = {}
"""The last ``os.environ`` a redactor read: its raw copy, secret variables and text patterns (immutable,
shared by the redactors built while it holds; a redactor replaces, never mutates, what it took)."""


_ENV_PROBE: dict[Any, Any] = {}
"""A private copy of the cached environment snapshot for :func:`_environ_unchanged`."""

_PER_TEST_VARIABLES = frozenset({b"PYTEST_CURRENT_TEST", "PYTEST_CURRENT_TEST"})
"""Variables pytest sets for each phase of each test (never a secret): a change in them alone is not a
change of the environment (``os.environ._data`` keys are bytes on POSIX, text on Windows)."""


def _raw_environ() -> dict[Any, Any] | None:
    """CPython's undecoded ``os.environ`` mapping without pytest's per-test variables, or ``None``.

    Compared, never decoded: when it equals the last one read, the secret values are those read then.
    """
    raw = getattr(os.environ, "_data", None)
    if raw is None:
        return None
    return {name: value for name, value in raw.items() if name not in _PER_TEST_VARIABLES}


def _environ_unchanged(probe: dict[Any, Any]) -> bool:
    """Whether ``os.environ`` still equals a :func:`_raw_environ` snapshot, pytest's per-test variables
    aside, compared without copying it: ``probe`` (a private copy of the snapshot) takes the current
    values of those variables, then one dict comparison in C decides."""
    raw = getattr(os.environ, "_data", None)
    if raw is None:
        return False
    for name in _PER_TEST_VARIABLES:
        if name in raw:
            probe[name] = raw[name]
        elif name in probe:
            del probe[name]
    return bool(raw == probe)


@functools.lru_cache(maxsize=64)
def _patterns(env: tuple[tuple[str, str], ...], known: frozenset[str]) -> _Patterns:
    """The text patterns of a redactor that holds the secret variables ``env`` and learned ``known``
    (cached: each flow's redactor learns the same API key from its first request)."""
    patterns: dict[str, tuple[str, bool]] = {}
    for name, value in env:
        for form in secret_forms(value):
            patterns.setdefault(form, (f"<REDACTED:{name}>", True))
    for value in known:
        for form in secret_forms(value):
            patterns.setdefault(form, (REDACTED, False))
    return tuple(
        (form, repl, from_env)
        for form, (repl, from_env) in sorted(patterns.items(), key=lambda p: (-len(p[0]), not p[1][1], p[0]))
    )


TRACE_CONTEXT_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})
"""W3C trace-context request headers: random per request, never stored in a cassette."""


@dataclass
class Redactor:
    """Scrubs secrets from vcrpy requests and response dicts.

    Args:
        headers: Extra header names (case-insensitive) to remove, on top of the built-in list.
        body_keys: JSON keys whose values are replaced by ``"<REDACTED>"`` in request and response bodies.
        query: Extra query parameter names to remove.
        environ: Environment to take secret values from (default: ``os.environ``, read at construction
            and again by :meth:`refresh_env`, which a flow cassette calls for each new live request, so a
            variable a test sets itself counts).

    Secret values removed from headers, query strings and URL credentials are remembered (see the module
    docstring) for the redactor's lifetime: one redactor per flow, shared by its recording and replay.
    The methods are safe to call from several threads.
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
        self._lock = threading.Lock()
        self._known: frozenset[str] = frozenset()  # learned values
        self._learned_headers: set[tuple[Any, Any]] = set()  # (name, value) pairs :meth:`learn` has read
        self._plain_headers = _PLAIN_HEADERS.setdefault(self._headers, set())
        self._raw_env: dict[Any, Any] | None
        self._env_probe: dict[Any, Any] | None = None  # see _environ_unchanged
        self._env: tuple[tuple[str, str], ...]
        self._patterns: _Patterns
        cached = _ENV_CACHE.get("os.environ") if self.environ is None else None
        if cached is not None and _environ_unchanged(_ENV_PROBE):
            # one read of os.environ per process while it does not change (a redactor per flow test)
            self._raw_env, self._env, self._patterns = cached
            return
        raw = _raw_environ() if self.environ is None else None
        self._raw_env = raw
        self._env = env_secrets(self.environ)
        self._patterns = ()
        self._rebuild()
        if raw is not None and self._raw_env is not None:
            _ENV_CACHE["os.environ"] = (self._raw_env, self._env, self._patterns)
            _ENV_PROBE.clear()
            _ENV_PROBE.update(self._raw_env)

    def _rebuild(self) -> None:
        """Recompute the text patterns (copy on write: scrubbing threads keep the tuple they read)."""
        self._patterns = _patterns(self._env, self._known)

    @property
    def builtin_only(self) -> bool:
        """``True`` when no extra headers, body keys or query parameters are configured."""
        return not (self._headers or self._body_keys or self.query_keys != BUILTIN_QUERY)

    # -- learning ----------------------------------------------------------------------------------------
    @property
    def has_secrets(self) -> bool:
        """Whether any secret value (environment or learned) is searched for in text."""
        return bool(self._patterns)

    def remember(self, values: Iterable[str]) -> bool:
        """Search for ``values`` (8+ characters each) in all text from now on; ``True`` if one is new."""
        new = {v for v in values if len(v) >= MIN_SECRET_LEN and REDACTED not in v} - self._known
        if not new:
            return False
        with self._lock:
            self._known = self._known | new
            self._rebuild()
        return True

    def refresh_env(self) -> bool:
        """Read the environment again (a test may set a secret variable itself); ``True`` if it changed."""
        if self.environ is None:  # os.environ: skip the (costly) decoding read when nothing changed
            if self._raw_env is not None:
                if self._env_probe is None:
                    self._env_probe = dict(self._raw_env)
                if _environ_unchanged(self._env_probe):
                    return False
            raw = _raw_environ()
            if raw is not None:
                if raw == self._raw_env:
                    return False
                self._raw_env = raw
                self._env_probe = None
        env = env_secrets(self.environ)
        if env == self._env:
            return False
        with self._lock:
            self._env = env
            self._rebuild()
        return True

    def learn(self, request: Any) -> bool:
        """Remember the secrets a live ``vcr.request.Request`` carries in headers and URL, before matching.

        Returns ``True`` when something new is searched for from now on. Cheap (no environment read:
        see :meth:`refresh_env`).
        """
        changed = False
        learned, plain = self._learned_headers, self._plain_headers
        headers = request.headers
        raw = getattr(headers, "raw", None)  # httpx: (name, value) bytes, one per line, not decoded yet
        for item in raw if isinstance(raw, list) else headers.items():
            if item in plain or item in learned:  # not a secret header, or read before: nothing new
                continue
            name = _header_text(item[0])
            seen = learned
            if _is_secret_header(name, self._headers):
                changed |= self.remember(header_secret_values(name, _header_text(item[1])))
            else:
                seen = plain  # (any redactor with these settings may skip it)
            if isinstance(item[1], str | bytes) and len(seen) < _LEARNED_HEADERS_MAX:
                seen.add(item)
        uri = request.uri
        if "@" in uri or "?" in uri:
            changed |= self.learn_url(uri)
        return changed

    def learn_headers(self, headers: Mapping[str, Any]) -> bool:
        """Remember the values of the secret headers in ``headers`` (values: str or list of str)."""
        changed = False
        for name, value in headers.items():
            if _is_secret_header(name, self._headers):
                for item in value if isinstance(value, list) else [value]:
                    changed |= self.remember(header_secret_values(name, str(item)))
        return changed

    def learn_url(self, uri: str) -> bool:
        """Remember the credentials (``user:pass@``) and secret query parameter values of ``uri``."""
        parts = urlsplit(uri)
        values: list[str] = []
        if "@" in parts.netloc:
            values += [unquote(parts.password or ""), unquote(parts.username or "")]
        if parts.query:
            values += [v for k, v in parse_qsl(parts.query) if k.lower() in self.query_keys]
        return self.remember(values) if values else False

    # -- strings and bodies ------------------------------------------------------------------------------
    def scrub_text(self, text: str) -> str:
        """``text`` with secret environment values replaced by ``<REDACTED:NAME>`` and learned secret
        values (see the module docstring) by ``<REDACTED>``, each also in its encoded forms
        (:func:`secret_forms`)."""
        for form, replacement, from_env in self._patterns:
            if form in text:
                if from_env:
                    self.report.env_values += text.count(form)
                else:
                    self.report.echoed_values += text.count(form)
                text = text.replace(form, replacement)
        return text

    def scrub_value(self, value: Any) -> Any:
        """A plain JSON-like value (str, list, dict, ...) with secret values replaced in every string."""
        if not self.has_secrets:
            return value
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            return {k: self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub_value(v) for v in value)
        return value

    @property
    def scrubs_data(self) -> bool:
        """Whether :meth:`scrub_data` can change anything (secret values known, or body keys configured)."""
        return bool(self._patterns or self._body_keys)

    def scrub_data(self, value: Any) -> Any:
        """Parsed content (message text, tool-call arguments) scrubbed as a cassette body is.

        Args:
            value: A plain JSON-like value (str, list, dict, ...).

        Returns:
            ``value`` with the configured body keys' values replaced by ``"<REDACTED>"`` and secret values
            replaced in every string (:meth:`scrub_text`); ``value`` itself when there is nothing to scrub.
        """
        if not self.scrubs_data:
            return value
        if self._body_keys:
            value = self._scrub_json(value)
        return self.scrub_value(value)

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
        if body is None or (not self.has_secrets and not self._body_keys):
            return body
        as_bytes = isinstance(body, bytes | bytearray)
        try:
            text = bytes(body).decode("utf-8") if as_bytes else str(body)
        except UnicodeDecodeError:  # latin-1 text, binary, a multipart body with a binary part
            return self.scrub_bytes(bytes(body))
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

    def scrub_bytes(self, data: bytes) -> bytes:
        """``data`` (any encoding, or none) with every secret value's byte forms replaced.

        Each form of :meth:`scrub_text` is searched for as UTF-8 bytes and, when it differs, as latin-1
        bytes: a key inside a latin-1 text body, a binary file part of a multipart upload, a compressed
        stream's uncompressed neighbours. The replacement is the ASCII ``<REDACTED...>`` marker.
        """
        for form, replacement, from_env in self._patterns:
            encodings = {form.encode("utf-8")}
            with contextlib.suppress(UnicodeEncodeError):
                encodings.add(form.encode("latin-1"))
            for needle in encodings:
                if needle in data:
                    count = data.count(needle)
                    if from_env:
                        self.report.env_values += count
                    else:
                        self.report.echoed_values += count
                    data = data.replace(needle, replacement.encode("ascii"))
        return data

    def scrub_report_text(self, text: str) -> str:
        """Text pytest prints or reports (a traceback, its frames' arguments): :meth:`scrub_text`, and also
        every ``user:password@`` of a URL and every secret query parameter's value, whatever their length.
        """
        text = self.scrub_text(text)
        if "@" in text:
            text = _URL_CREDENTIALS.sub(r"\1<REDACTED>@", text)
        if "=" in text:
            text = self._query_pattern().sub(r"\1<REDACTED>", text)
        return text

    def _query_pattern(self) -> re.Pattern[str]:
        return _secret_query_pattern(self.query_keys)

    def scrub_url(self, uri: str) -> str:
        """``uri`` without credentials (``user:pass@``) and secret query parameters; secret values replaced.

        The removed values are remembered (see the module docstring).
        """
        parts = urlsplit(uri)
        if "@" in parts.netloc:
            self.learn_url(uri)
            self.report.url_credentials += 1
            parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
            uri = urlunsplit(parts)
        if parts.query:
            pairs = parse_qsl(parts.query, keep_blank_values=True)
            kept = [(k, v) for k, v in pairs if k.lower() not in self.query_keys]
            if len(kept) != len(pairs):
                self.remember([v for k, v in pairs if k.lower() in self.query_keys])
                self.report.query_params += len(pairs) - len(kept)
                uri = urlunsplit(parts._replace(query=urlencode(kept)))
        return self.scrub_text(uri)

    def _scrub_headers(self, headers: Mapping[str, Any]) -> dict[str, Any]:
        secret = [name for name in headers if _is_secret_header(name, self._headers)]
        if secret:  # first: a secret header's value may also sit in another header
            self.learn_headers({name: headers[name] for name in secret})
        self.report.headers += len(secret)
        out: dict[str, Any] = {}
        for name, value in headers.items():
            if name in secret:
                continue
            if isinstance(value, list):
                out[name] = [self.scrub_text(str(v)) for v in value]
            else:
                out[name] = self.scrub_text(str(value))
        return out

    # -- vcrpy hooks -------------------------------------------------------------------------------------
    def request(self, request: Any) -> Any:
        """``before_record_request`` hook: a scrubbed copy of a ``vcr.request.Request``.

        Besides secrets, the W3C trace-context headers (:data:`TRACE_CONTEXT_HEADERS`) are left out: SDKs
        with OpenTelemetry tracing on (anthropic ≥ 2.17) send a new random trace id with every request, which
        would change every re-recorded cassette (headers never take part in matching).
        """
        request = copy.copy(request)  # shares the original's parts: each is replaced, never mutated
        headers = dict(request.headers)
        scrubbed = self._scrub_headers(headers)  # first: the values it removes are searched for below
        if any(name.lower() in TRACE_CONTEXT_HEADERS for name in scrubbed):
            scrubbed = {k: v for k, v in scrubbed.items() if k.lower() not in TRACE_CONTEXT_HEADERS}
        uri = self.scrub_url(request.uri)
        if uri != request.uri:
            request.uri = uri
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
            response["headers"] = self._scrub_headers(response["headers"])  # first: it learns secrets
        status = response.get("status")
        if isinstance(status, dict) and isinstance(status.get("message"), str) and self.has_secrets:
            status["message"] = self.scrub_text(status["message"])  # a reason phrase quoting the key
        body = response.get("body")
        if isinstance(body, dict) and "string" in body:
            body["string"] = self.scrub_body(body["string"])
        return response

    def request_dict(self, request: dict[str, Any]) -> dict[str, Any]:
        """Scrub a serialised request dict (``uri``, ``headers``, ``body``) in place and return it."""
        if isinstance(request.get("headers"), Mapping):
            request["headers"] = self._scrub_headers(request["headers"])
        if isinstance(request.get("uri"), str):
            request["uri"] = self.scrub_url(request["uri"])
        body = request.get("body")
        if isinstance(body, dict) and "string" in body:
            body["string"] = self.scrub_body(body["string"])
        elif body is not None:
            request["body"] = self.scrub_body(body)
        return request
