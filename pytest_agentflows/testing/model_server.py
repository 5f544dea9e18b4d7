"""A small deterministic LLM server on ``127.0.0.1`` speaking the real OpenAI and Anthropic wire formats.

It lets you record agent traffic (``pytest --record-agents``) without API keys: point the official SDKs at it
and they parse its answers exactly like the real services' ones. Standard library plus pydantic (for
:class:`~pytest_agentflows.ToolCall`); the server runs ``http.server.ThreadingHTTPServer`` in a daemon thread.

Example:
    ```python
    from openai import OpenAI
    from pytest_agentflows.model_server import LocalModelServer

    with LocalModelServer() as srv:
        client = OpenAI(base_url=srv.openai_base_url, api_key="test")
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )
        assert reply.choices[0].message.content == "[gpt-4o-mini] reply to: Hi"
    ```

    From a shell: ``python -m pytest_agentflows.model_server --port 8765``.

Endpoints (``POST``, JSON body, ``"stream": true`` switches to Server-Sent Events):

* ``/v1/chat/completions`` -- OpenAI Chat Completions. A stream sends ``chat.completion.chunk`` objects as
  ``data:`` lines (a last chunk with ``usage`` and no choices when ``stream_options.include_usage`` is true),
  then ``data: [DONE]``.
* ``/v1/responses`` -- OpenAI Responses. A stream sends ``response.created``, ``response.in_progress``,
  ``response.output_item.added``, ``response.content_part.added``, ``response.output_text.delta`` (one per
  word), ``response.output_text.done``, ``response.content_part.done``, ``response.output_item.done`` and
  ``response.completed`` (the full response, usage included), each as ``event:``/``data:`` with a
  ``sequence_number``.
* ``/v1/messages`` -- Anthropic Messages. A stream sends ``message_start`` (``output_tokens`` 1),
  ``content_block_start``, ``ping``, ``content_block_delta`` (``text_delta``, one per word),
  ``content_block_stop``, ``message_delta`` (final ``output_tokens``) and ``message_stop``.

The reply is one text message, or tool calls (a :class:`~pytest_agentflows.ToolCall` or a list of them:
chat ``tool_calls``, Responses ``function_call`` items, Anthropic ``tool_use`` blocks; streams send the
arguments in fragments). It comes from the ``script`` given to :class:`LocalModelServer` if any, else from
its ``responder``, else from :func:`default_responder`.

Default responder rules (:func:`default_responder`), checked in this order, all case-insensitive:

0. **Tools**: the request offers tools (``tools``) that its conversation has not called yet: the reply is
   one tool call per such tool (parallel calls, in the order offered), its arguments built from the tool's
   JSON schema by :func:`schema_arguments` (required properties, deterministic values of the right type).
   Once each offered tool was called, the rules below answer in text.
1. **Review**: the *role* of the prompt is a reviewer. The role text is the system prompt (without one: the
   instruction that starts the last user text, up to its first ``:``), read by whole words (``code_review``
   is one word): ``review``/``reviewer`` make a reviewer, ``classify``/``classifier``/``classification``/
   ``route``/``router``/``routing``/``triage`` a classifier, and the first such word wins. The reply is
   ``"APPROVED"`` when the last user text marks the draft as revised (``"revised draft"``, ``"revised
   version"``, ``"revised after"``, ``"revised:"``, ... or ``"revision <n>"``), else
   :data:`REVIEW_CRITIQUE`; an instruction such as "answer APPROVED or REVISION NEEDED" is not a revision.
2. **Classify / route**: the role is a classifier. The reply is one label: the words (runs of ASCII
   letters) of the last user text are matched against :data:`LABEL_KEYWORDS`; the label with the most hits
   wins, ties go to the earlier label in that table (``billing``, then ``technical``, then ``general``),
   and no hit at all gives ``"general"``.
3. **Echo**: ``"[<model>] reply to: <text>"`` where ``<text>`` is the last user text with whitespace runs
   collapsed to one space, stripped, cut to its first 60 characters.

Token counting (:func:`count_input_tokens`, :func:`count_output_tokens`), the same for the three APIs:

* input tokens = for the system prompt (when not empty) and for each message of :attr:`Request.messages`,
  its whitespace-split word count plus :data:`TOKENS_PER_MESSAGE` (3);
* output tokens = the whitespace-split word count of the reply (of a tool call: of its name and JSON
  arguments);
* cached / reasoning / cache-write tokens are always 0.

Determinism: for an identical request (same API, same JSON body, same reply text) the response body is
byte-identical, streams included. Ids derive from a SHA-256 of the canonical request JSON and the reply;
timestamps are the constant :data:`FIXED_CREATED`. Response headers carry no ``Date``; ``x-request-id``
(and ``request-id`` on Anthropic routes) is ``req_local_<hash>`` with the same hash.

Errors use each provider's error format (Anthropic's when the path is ``/v1/messages`` or the request has an
``anthropic-version`` or ``x-api-key`` header, OpenAI's otherwise): 404 for an unknown path, 405 for a
method other than POST, 400 for a body that is not a JSON object or lacks ``model`` / ``messages``, 500
(with ``x-should-retry: false`` so the SDKs do not retry) when the script is exhausted or the responder
fails.

Connections: HTTP/1.1 keep-alive. Non-stream answers have a ``Content-Length``; streams use chunked
transfer encoding, so the SDKs' connection pools reuse connections without hanging.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

from ..runtime._models import ToolCall

__all__ = [
    "FIXED_CREATED",
    "LABEL_KEYWORDS",
    "REVIEW_CRITIQUE",
    "TOKENS_PER_MESSAGE",
    "Api",
    "LocalModelServer",
    "Request",
    "ResponderResult",
    "WireAnswer",
    "build_answer",
    "count_input_tokens",
    "count_output_tokens",
    "default_responder",
    "load_responder",
    "load_script",
    "main",
    "parse_request",
    "schema_arguments",
    "tool_calls_of",
]

Api = Literal["openai.chat", "openai.responses", "anthropic.messages"]
"""Which wire format a request used."""

FIXED_CREATED = 1_735_689_600
"""The ``created`` / ``created_at`` timestamp of every response (2025-01-01T00:00:00Z), for determinism."""

TOKENS_PER_MESSAGE = 3
"""Input tokens added for the system prompt (when not empty) and for each message, on top of its words."""

REVIEW_CRITIQUE = "REVISE: the draft needs a clearer structure, one concrete example and a short conclusion."
"""The default responder's reply to a reviewer prompt whose draft is not marked as revised."""

LABEL_KEYWORDS: dict[str, frozenset[str]] = {
    "billing": frozenset(
        {"billing", "bill", "bills", "billed", "invoice", "invoices", "refund", "refunds", "charge"}
        | {"charged", "charges", "payment", "payments", "pay", "paid", "price", "pricing", "subscription"}
    ),
    "technical": frozenset(
        {"technical", "error", "errors", "bug", "bugs", "crash", "crashes", "crashed", "login", "password"}
        | {"install", "installation", "broken", "timeout", "api", "server", "outage"}
    ),
    "general": frozenset({"general"}),
}
"""Labels of the default responder's classify/route rule and the lower-case words that count for each."""

_ROUTES: dict[str, Api] = {
    "/v1/chat/completions": "openai.chat",
    "/v1/responses": "openai.responses",
    "/v1/messages": "anthropic.messages",
}
_REVIEW_WORDS = frozenset({"review", "reviewer", "reviewers", "reviewing", "reviews"})
_ROUTE_WORDS = frozenset({"classify", "classifier", "classification", "route", "router", "routing", "triage"})
_ROLE_WORD = re.compile(r"[a-z0-9]+(?:[_-][a-z0-9]+)*")  # "code_review" is one word, not "review"
_REVISED = re.compile(
    r"\brevised\s+(?:draft|version|answer|text|plan|reply|after)\b|\brevised\s*:|\brevision\s*(?:#\s*)?\d+\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z]+")
_PIECE = re.compile(r"\s*\S+\s*|\s+")


@dataclass(frozen=True)
class Request:
    """What the server understood of one model request; given to responders and latency callables.

    Attributes:
        api: The wire format: ``"openai.chat"``, ``"openai.responses"`` or ``"anthropic.messages"``.
        model: The ``model`` field of the request.
        system: The system prompt: OpenAI ``system``/``developer`` messages or Responses ``instructions``,
            Anthropic ``system``; several parts are joined with ``"\\n"``. Empty when there is none.
        messages: The conversation without the system prompt, as ``(role, text)`` pairs in order. Text parts
            of a message are joined with ``"\\n"``; tool results count as text (role ``"tool"`` for an
            OpenAI tool message, a Responses ``function_call_output`` or an Anthropic user message made of
            ``tool_result`` blocks); other non-text parts are left out.
        last_user_text: The text of the last message whose role is ``"user"``, or ``""``.
        json: The request body as parsed JSON.
        stream: Whether the request asked for a Server-Sent Events stream.
        tools: The tools the request offers, as ``(name, JSON schema of the arguments)`` pairs in order
            (chat ``tools[].function``, Responses ``tools[]`` of type ``function``, Anthropic
            ``tools[].input_schema``).
        called_tools: The names of the tool calls already in the conversation (assistant ``tool_calls``,
            Responses ``function_call`` items, Anthropic ``tool_use`` blocks), in order.
    """

    api: Api
    model: str
    system: str
    messages: list[tuple[str, str]]
    last_user_text: str
    json: dict[str, Any]
    stream: bool = False
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    called_tools: list[str] = field(default_factory=list)


ResponderResult = str | ToolCall | Sequence[ToolCall]
"""What a responder returns: the reply text, or one tool call, or several (parallel) tool calls."""


def count_input_tokens(request: Request) -> int:
    """Counts a request's input tokens the way the server reports them.

    Args:
        request: The parsed request.

    Returns:
        For the system prompt (when not empty) and each message, its whitespace-split word count plus
        :data:`TOKENS_PER_MESSAGE`, summed.
    """
    parts = [text for _, text in request.messages]
    if request.system:
        parts.append(request.system)
    return sum(len(text.split()) + TOKENS_PER_MESSAGE for text in parts)


def count_output_tokens(reply: str) -> int:
    """Counts a reply's output tokens the way the server reports them.

    Args:
        reply: The reply text.

    Returns:
        The whitespace-split word count of ``reply``.
    """
    return len(reply.split())


def schema_arguments(schema: Any, name: str = "value") -> Any:
    """Deterministic arguments for a JSON schema: what the default responder sends as a tool's arguments.

    Args:
        schema: A JSON schema (a mapping); anything else counts as an empty schema.
        name: The property name the value is for (used in strings).

    Returns:
        For an object: its ``required`` properties only, each filled by this function (so ``{}`` when none
        is required); otherwise the schema's ``default``, ``const`` or first ``enum`` value if any, else by
        ``type``: ``"<name>"`` for a string, ``1`` for an integer, ``1.5`` for a number, ``True`` for a
        boolean, a one-item list for an array, ``None`` for null. ``anyOf`` / ``oneOf`` use their first
        choice; a type list its first non-null type.
    """
    if not isinstance(schema, dict):
        return f"<{name}>"
    for key in ("default", "const"):
        if key in schema:
            return schema[key]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        choices = schema.get(key)
        if isinstance(choices, list) and choices:
            return schema_arguments(choices[0], name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and isinstance(schema.get("properties"), dict):
        kind = "object"
    if kind == "object":
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        return {
            key: schema_arguments(properties.get(key), key)
            for key in (required if isinstance(required, list) else [])
            if isinstance(key, str)
        }
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return [schema_arguments(schema.get("items"), name)]
    if kind == "null":
        return None
    return f"<{name}>"


def _role(request: Request) -> str | None:
    """``"review"``, ``"route"`` or ``None``: the role the prompt gives the model.

    The role text is the system prompt, or without one the instruction that starts the last user text (up
    to its first ``:`` or line end). Whole words only (``code_review`` is not ``review``); when both kinds
    of word occur, the first one wins ("You are a reviewer; classify the draft as ..." is a reviewer).
    """
    text = request.system
    if not text.strip():
        text = re.split(r"[:\n]", request.last_user_text, maxsplit=1)[0]
    for word in _ROLE_WORD.findall(text.lower()):
        if word in _REVIEW_WORDS:
            return "review"
        if word in _ROUTE_WORDS:
            return "route"
    return None


def default_responder(request: Request) -> ResponderResult:
    """Chooses a deterministic reply from the request content alone.

    The rules, in order (all matching is case-insensitive):

    0. **Tools**: the request offers tools not called yet in its conversation: one tool call for each of
       them (parallel calls), in the order offered, with :func:`schema_arguments` of its schema (required
       properties filled with deterministic values of the right type). Once every offered tool was called,
       the rules below answer in text.
    1. **Review**: the prompt's role (see below) is a reviewer: ``"APPROVED"`` when the last user text marks
       the draft as revised (``"revised draft"`` / ``version`` / ``after`` / ``"revised:"`` / ..., or
       ``"revision <n>"``), else :data:`REVIEW_CRITIQUE`. An instruction such as "answer APPROVED or
       REVISION NEEDED" does not count as a revision.
    2. **Classify / route**: the prompt's role is a classifier or router: the label of
       :data:`LABEL_KEYWORDS` with the most word hits in the last user text (ties: earlier label; no hit:
       ``"general"``).
    3. Otherwise ``"[<model>] reply to: <first 60 characters of the last user text, whitespace collapsed>"``.

    The role is read from the system prompt (or, without one, from the instruction that starts the last
    user text, up to its first ``:``), by whole words: ``review``/``reviewer`` make a reviewer,
    ``classify``/``classifier``/``classification``/``route``/``router``/``routing``/``triage`` a
    classifier; the first such word wins. So a classifier whose labels include ``code_review`` stays a
    classifier, and text inside the user's message never changes the role.

    Args:
        request: The parsed request.

    Returns:
        The reply text, or the list of tool calls.
    """
    pending = [(name, schema) for name, schema in request.tools if name not in request.called_tools]
    if pending:
        return [ToolCall(name, schema_arguments(schema)) for name, schema in pending]
    role = _role(request)
    user = request.last_user_text.lower()
    if role == "review":
        return "APPROVED" if _REVISED.search(request.last_user_text) else REVIEW_CRITIQUE
    if role == "route":
        words = _WORD.findall(user)
        best, best_hits = "general", 0
        for label, keywords in LABEL_KEYWORDS.items():
            hits = sum(1 for word in words if word in keywords)
            if hits > best_hits:
                best, best_hits = label, hits
        return best
    text = " ".join(request.last_user_text.split())[:60]
    return f"[{request.model}] reply to: {text}"


def tool_calls_of(reply: Any) -> list[ToolCall] | None:
    """The tool calls of a responder result (``None`` for text).

    Raises:
        TypeError: for anything but a ``str``, a :class:`ToolCall` or a non-empty sequence of them.
    """
    if isinstance(reply, str):
        return None
    if isinstance(reply, ToolCall):
        return [reply]
    if isinstance(reply, Sequence) and reply and all(isinstance(t, ToolCall) for t in reply):
        return list(reply)
    raise TypeError(
        f"expected the reply text (str), a ToolCall or a non-empty list of ToolCall, got {reply!r}"
    )


class LocalModelServer:
    """A deterministic model server on ``127.0.0.1`` for the OpenAI and Anthropic SDKs.

    Use it as a context manager (``with LocalModelServer() as srv:``) or call :meth:`start` and :meth:`stop`.
    The serving thread and connection threads are daemon threads; the server is thread-safe.

    Args:
        port: The TCP port to bind on ``127.0.0.1``; ``0`` (the default) picks a free one.
        responder: Chooses the reply of each request: its text, a :class:`~pytest_agentflows.ToolCall` or
            a list of them (parallel tool calls); defaults to :func:`default_responder`. An exception it
            raises, or a result of another type, becomes a 500 error answer.
        latency: Real seconds to wait before answering each successful request, or a callable giving them
            from the :class:`Request`. ``0.0`` (the default) answers at once. Negative values count as 0.
        script: Replies served in this order, one per successful request whatever its API: texts, tool
            calls, or lists of tool calls (one answer with parallel calls); once all are served, further
            requests get a 500 error answer saying the script is exhausted. Not allowed together with
            ``responder`` (see :func:`load_script` for a YAML file).

    Raises:
        ValueError: If both ``responder`` and ``script`` are given, or ``port`` is not in 0..65535.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        responder: Callable[[Request], ResponderResult] | None = None,
        latency: float | Callable[[Request], float] = 0.0,
        script: Sequence[ResponderResult] | None = None,
    ) -> None:
        if responder is not None and script is not None:
            raise ValueError("LocalModelServer takes either `responder` or `script`, not both")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        self._port = port
        self._responder: Callable[[Request], ResponderResult] = responder or default_responder
        self._latency = latency
        self._script: list[ResponderResult] | None = list(script) if script is not None else None
        for i, item in enumerate(self._script or ()):
            try:
                tool_calls_of(item)
            except TypeError as exc:
                raise ValueError(f"script item {i}: {exc}") from None
        self._script_pos = 0
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._log_requests = False

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> LocalModelServer:
        """Binds the port and starts serving in a daemon thread.

        Returns:
            The server itself, for chaining.

        Raises:
            RuntimeError: If the server is already running.
            OSError: If the port cannot be bound (for instance it is in use).
        """
        if self._httpd is not None:
            raise RuntimeError("LocalModelServer is already running")
        self._stopping.clear()
        httpd = _HTTPServer(("127.0.0.1", self._port), _Handler, self)
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"LocalModelServer:{httpd.server_address[1]}",
            daemon=True,
        )
        self._httpd, self._thread = httpd, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stops serving, closes open connections and the listening socket. Does nothing if not running.

        A request still waiting on its ``latency`` is cut short; its connection is closed.
        """
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        thread.join()
        httpd.close_connections(timeout=2.0)
        httpd.server_close()
        self._httpd = self._thread = None

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port.

        Raises:
            RuntimeError: If the server is not running.
        """
        if self._httpd is None:
            raise RuntimeError("LocalModelServer is not running: call start() or use it in a `with` block")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``"http://127.0.0.1:<port>"``.

        Raises:
            RuntimeError: If the server is not running.
        """
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for ``openai.OpenAI``: :attr:`url` + ``"/v1"``.

        Raises:
            RuntimeError: If the server is not running.
        """
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for ``anthropic.Anthropic``: :attr:`url`.

        Raises:
            RuntimeError: If the server is not running.
        """
        return self.url

    @property
    def requests(self) -> list[Request]:
        """A copy of the successfully parsed requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    # -- internals used by the handler -----------------------------------------------------------------

    def _choose_reply(self, request: Request) -> ResponderResult:
        """Records the request and returns its reply; raises ``_ServeError`` for a 500 answer."""
        with self._lock:
            self._requests.append(request)
            if self._script is not None:
                if self._script_pos >= len(self._script):
                    raise _ServeError(
                        500,
                        "server",
                        f"LocalModelServer script exhausted: all {len(self._script)} scripted replies "
                        f"were already served (this is request #{len(self._requests)})",
                    )
                reply = self._script[self._script_pos]
                self._script_pos += 1
                return reply
        try:
            reply = self._responder(request)
        except Exception as exc:
            raise _ServeError(500, "server", f"responder raised {type(exc).__name__}: {exc}") from exc
        try:
            tool_calls_of(reply)
        except TypeError:
            raise _ServeError(
                500,
                "server",
                f"responder returned {type(reply).__name__}, expected str, ToolCall or a list of ToolCall",
            ) from None
        return reply

    def _wait_latency(self, request: Request) -> None:
        latency = self._latency(request) if callable(self._latency) else self._latency
        if latency > 0:
            self._stopping.wait(latency)


# -- HTTP plumbing ------------------------------------------------------------------------------------------


class _ServeError(Exception):
    """An error answer: status, kind (``"invalid"``, ``"not_found"``, ``"method"``, ``"server"``), message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], owner: LocalModelServer
    ) -> None:
        self.owner = owner
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}
        super().__init__(address, handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._conns[request] = threading.current_thread()
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._conns.pop(request, None)

    def close_connections(self, timeout: float) -> None:
        """Shuts down every open connection and waits up to ``timeout`` seconds for their threads."""
        with self._conn_lock:
            conns = list(self._conns.items())
        for conn, _ in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for _, thread in conns:
            thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # the client went away, or stop() closed the connection
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "agentflows-local-model/1.0"
    sys_version = ""

    # -- deterministic headers and quiet logs --

    def send_response(self, code: int, message: str | None = None) -> None:
        # Like BaseHTTPRequestHandler.send_response, minus the Date header, so answers are byte-stable.
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())

    def log_message(self, format: str, *args: Any) -> None:
        owner = self._owner
        if owner is not None and owner._log_requests:
            super().log_message(format, *args)

    @property
    def _owner(self) -> LocalModelServer | None:
        server = self.server
        return server.owner if isinstance(server, _HTTPServer) else None

    # -- methods --

    def do_POST(self) -> None:
        self._dispatch()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        if len(path) > 1:
            path = path.rstrip("/")
        api = _ROUTES.get(path)
        anthropic = api == "anthropic.messages" or (
            api is None and ("anthropic-version" in self.headers or "x-api-key" in self.headers)
        )
        try:
            body = self._read_body()
            if api is None:
                raise _ServeError(404, "not_found", f"Invalid URL ({self.command} {self.path})")
            if self.command != "POST":
                raise _ServeError(405, "method", f"Method {self.command} not allowed for {path}; use POST")
            request = _parse_request(api, body)
            owner = self._owner
            assert owner is not None
            reply = owner._choose_reply(request)
            owner._wait_latency(request)
            if owner._stopping.is_set():
                self.close_connection = True
                return
            answer = build_answer(request, reply)
        except ValueError as exc:  # e.g. an Anthropic tool call whose arguments are not a JSON object
            self._send_error(_ServeError(500, "server", f"cannot answer: {exc}"), anthropic=anthropic)
            return
        except _ServeError as err:
            self._send_error(err, anthropic=anthropic)
            return
        self._send_answer(answer)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError as exc:
            self.close_connection = True
            raise _ServeError(400, "invalid", "invalid Content-Length header") from exc
        return self.rfile.read(length) if length > 0 else b""

    # -- writing --

    def _request_id_headers(self, digest: str, *, anthropic: bool) -> None:
        self.send_header("x-request-id", f"req_local_{digest[:24]}")
        if anthropic:
            self.send_header("request-id", f"req_local_{digest[:24]}")

    def _send_json(self, status: int, payload: dict[str, Any], digest: str, *, anthropic: bool) -> None:
        data = _dumps(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self._request_id_headers(digest, anthropic=anthropic)
        if status >= 500:
            self.send_header("x-should-retry", "false")
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, err: _ServeError, *, anthropic: bool) -> None:
        payload: dict[str, Any]
        if anthropic:
            kind = {
                "invalid": "invalid_request_error",
                "not_found": "not_found_error",
                "method": "invalid_request_error",
                "server": "api_error",
            }[err.kind]
            payload = {"type": "error", "error": {"type": kind, "message": err.message}}
        else:
            kind = "server_error" if err.kind == "server" else "invalid_request_error"
            code = {"not_found": "unknown_url", "method": "method_not_allowed"}.get(err.kind)
            payload = {"error": {"message": err.message, "type": kind, "param": None, "code": code}}
        digest = hashlib.sha256(f"{err.status}\0{err.message}".encode()).hexdigest()
        if anthropic:
            payload["request_id"] = f"req_local_{digest[:24]}"
        self._send_json(err.status, payload, digest, anthropic=anthropic)

    def _send_answer(self, answer: WireAnswer) -> None:
        if not answer.stream:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self._request_id_headers(answer.digest, anthropic=answer.anthropic)
            self.end_headers()
            self.wfile.write(answer.body)
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self._request_id_headers(answer.digest, anthropic=answer.anthropic)
        self.end_headers()
        for data in answer.chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


# -- wire formats (shared with the scripted model) ----------------------------------------------------------


@dataclass(frozen=True)
class WireAnswer:
    """A successful answer in one API's real wire format, ready to send.

    Attributes:
        status: HTTP status (200).
        content_type: ``"application/json"``, or ``"text/event-stream; charset=utf-8"`` for a stream.
        chunks: The body: one JSON document, or one ``event:``/``data:`` block per server-sent event.
        stream: Whether the answer is a server-sent-event stream.
        digest: SHA-256 (hex) of the API, the canonical request JSON and the reply; ids derive from it.
        anthropic: Whether the answer is in Anthropic's format (it then also carries a ``request-id``).
    """

    status: int
    content_type: str
    chunks: tuple[bytes, ...]
    stream: bool
    digest: str
    anthropic: bool

    @property
    def body(self) -> bytes:
        """The whole body: the chunks joined."""
        return b"".join(self.chunks)

    @property
    def headers(self) -> list[tuple[str, str]]:
        """``content-type``, ``x-request-id`` (and ``request-id`` for Anthropic), as the server sends them."""
        request_id = f"req_local_{self.digest[:24]}"
        out = [("content-type", self.content_type), ("x-request-id", request_id)]
        if self.anthropic:
            out.append(("request-id", request_id))
        return out


def build_answer(
    request: Request,
    reply: ResponderResult,
    *,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
) -> WireAnswer:
    """Builds the answer to ``request`` carrying ``reply``, in the request's API format (streaming or not).

    The exact bytes :class:`LocalModelServer` sends (see the module docstring for the event sequences).

    Args:
        request: The parsed request (its ``api``, ``model``, ``stream`` and ``json`` shape the answer).
        reply: The assistant text, or a :class:`~pytest_agentflows.ToolCall` or a list of them: chat
            ``tool_calls`` with ``finish_reason="tool_calls"``, Responses ``function_call`` items, Anthropic
            ``tool_use`` blocks with ``stop_reason="tool_use"`` (streams send the arguments in fragments).
            A call without ``id`` gets one derived from the digest.
        input_tokens: Usage to report; default :func:`count_input_tokens` of ``request``.
        output_tokens: Usage to report; default :func:`count_output_tokens` of ``reply`` (of each tool
            call's name and JSON arguments).

    Returns:
        The answer; deterministic for the same arguments.

    Raises:
        TypeError: ``reply`` is not a str, a ToolCall or a non-empty list of them.
        ValueError: an Anthropic tool call whose arguments are not a JSON object.
    """
    tools = tool_calls_of(reply)
    text = reply if isinstance(reply, str) else ""
    tokens_in = count_input_tokens(request) if input_tokens is None else input_tokens
    if tools is None:
        tokens_out = count_output_tokens(text) if output_tokens is None else output_tokens
        digest = _digest(request.api, request.json, text)
    else:
        wire = [(t.name, _arguments_json(t.arguments), t.id) for t in tools]
        tokens_out = (
            sum(count_output_tokens(f"{name} {args}") for name, args, _ in wire)
            if output_tokens is None
            else output_tokens
        )
        digest = _digest(request.api, request.json, "\0tools\0" + _dumps(wire).decode("utf-8"))
    anthropic = request.api == "anthropic.messages"
    if tools is not None:
        built = _tools_answer(request, tools, digest, tokens_in, tokens_out)
    elif request.api == "openai.chat":
        built = _chat_answer(request, text, digest, tokens_in, tokens_out)
    elif request.api == "openai.responses":
        built = _responses_answer(request, text, digest, tokens_in, tokens_out)
    else:
        built = _messages_answer(request, text, digest, tokens_in, tokens_out)
    if isinstance(built, dict):
        return WireAnswer(200, "application/json", (_dumps(built),), False, digest, anthropic)
    chunks = []
    for name, data in built:
        payload = data if isinstance(data, str) else _dumps(data).decode("utf-8")
        prefix = f"event: {name}\n" if name is not None else ""
        chunks.append(f"{prefix}data: {payload}\n\n".encode())
    return WireAnswer(200, "text/event-stream; charset=utf-8", tuple(chunks), True, digest, anthropic)


_Events = list[tuple[str | None, dict[str, Any] | str]]


def _chat_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_answer(
    request: Request, reply: str, digest: str, input_tokens: int, output_tokens: int
) -> dict[str, Any] | _Events:
    chat_id = f"chatcmpl-local{digest[:24]}"
    usage = _chat_usage(input_tokens, output_tokens)
    if not request.stream:
        return {
            "id": chat_id,
            "object": "chat.completion",
            "created": FIXED_CREATED,
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": reply,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": None,
        }
    options = request.json.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True

    def chunk(choices: list[dict[str, Any]], chunk_usage: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": chat_id,
            "object": "chat.completion.chunk",
            "created": FIXED_CREATED,
            "model": request.model,
            "service_tier": "default",
            "system_fingerprint": None,
            "choices": choices,
        }
        if include_usage:
            out["usage"] = chunk_usage
        return out

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    events: _Events = [(None, chunk(choice({"role": "assistant", "content": "", "refusal": None})))]
    events.extend((None, chunk(choice({"content": piece}))) for piece in _pieces(reply))
    events.append((None, chunk(choice({}, "stop"))))
    if include_usage:
        events.append((None, chunk([], usage)))
    events.append((None, "[DONE]"))
    return events


def _responses_answer(
    request: Request,
    reply: str,
    digest: str,
    input_tokens: int,
    output_tokens: int,
    function_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any] | _Events:
    resp_id, msg_id = f"resp_local{digest[:40]}", f"msg_local{digest[:40]}"
    part = {"type": "output_text", "text": reply, "annotations": [], "logprobs": []}
    item = {
        "id": msg_id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }
    body = request.json
    temperature = body.get("temperature")
    top_p = body.get("top_p")
    tools = body.get("tools")

    def response(done: bool) -> dict[str, Any]:
        return {
            "id": resp_id,
            "object": "response",
            "created_at": FIXED_CREATED,
            "status": "completed" if done else "in_progress",
            "background": False,
            "completed_at": FIXED_CREATED if done else None,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "metadata": body.get("metadata") or {},
            "model": request.model,
            "output": (function_calls if function_calls is not None else [item]) if done else [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "temperature": temperature if isinstance(temperature, (int, float)) else 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": tools if isinstance(tools, list) else [],
            "top_p": top_p if isinstance(top_p, (int, float)) else 1.0,
            "truncation": "disabled",
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            }
            if done
            else None,
            "user": None,
        }

    if not request.stream:
        return response(True)
    events: _Events = []

    def event(name: str, **fields: Any) -> None:
        events.append((name, {"type": name, "sequence_number": len(events), **fields}))

    where = {"item_id": msg_id, "output_index": 0, "content_index": 0}
    event("response.created", response=response(False))
    event("response.in_progress", response=response(False))
    if function_calls is not None:
        for index, call in enumerate(function_calls):
            at = {"item_id": call["id"], "output_index": index}
            event(
                "response.output_item.added",
                output_index=index,
                item={**call, "arguments": "", "status": "in_progress"},
            )
            for piece in _arg_pieces(call["arguments"]):
                event("response.function_call_arguments.delta", **at, delta=piece)
            event("response.function_call_arguments.done", **at, arguments=call["arguments"])
            event("response.output_item.done", output_index=index, item=call)
        event("response.completed", response=response(True))
        return events
    event("response.output_item.added", output_index=0, item={**item, "status": "in_progress", "content": []})
    event("response.content_part.added", **where, part={**part, "text": ""})
    for piece in _pieces(reply):
        event("response.output_text.delta", **where, delta=piece, logprobs=[])
    event("response.output_text.done", **where, text=reply, logprobs=[])
    event("response.content_part.done", **where, part=part)
    event("response.output_item.done", output_index=0, item=item)
    event("response.completed", response=response(True))
    return events


def _messages_answer(
    request: Request, reply: str, digest: str, input_tokens: int, output_tokens: int
) -> dict[str, Any] | _Events:
    message_id = f"msg_local_{digest[:24]}"

    def message(done: bool) -> dict[str, Any]:
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": [{"type": "text", "text": reply}] if done else [],
            "stop_reason": "end_turn" if done else None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": output_tokens if done else 1,
            },
        }

    if not request.stream:
        return message(True)
    events: _Events = []

    def send(name: str, **fields: Any) -> None:
        events.append((name, {"type": name, **fields}))

    send("message_start", message=message(False))
    send("content_block_start", index=0, content_block={"type": "text", "text": ""})
    send("ping")
    for piece in _pieces(reply):
        send("content_block_delta", index=0, delta={"type": "text_delta", "text": piece})
    send("content_block_stop", index=0)
    send(
        "message_delta",
        delta={"stop_reason": "end_turn", "stop_sequence": None},
        usage={"output_tokens": output_tokens},
    )
    send("message_stop")
    return events


def _arguments_json(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else _dumps(arguments).decode("utf-8")


def _arg_pieces(arguments: str, size: int = 12) -> list[str]:
    """Splits a tool call's JSON arguments into stream fragments (joining to it), as the APIs send them."""
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def _tools_answer(
    request: Request, tools: list[ToolCall], digest: str, input_tokens: int, output_tokens: int
) -> dict[str, Any] | _Events:
    """The answer asking for ``tools``, in the request's API format (see :func:`build_answer`)."""
    ids = [t.id or f"call_local{digest[:20]}{i}" for i, t in enumerate(tools)]
    args = [_arguments_json(t.arguments) for t in tools]
    if request.api == "openai.responses":
        items = [
            {
                "id": f"fc_local{digest[:24]}{i}",
                "type": "function_call",
                "status": "completed",
                "arguments": args[i],
                "call_id": ids[i],
                "name": t.name,
            }
            for i, t in enumerate(tools)
        ]
        return _responses_answer(request, "", digest, input_tokens, output_tokens, function_calls=items)
    if request.api == "anthropic.messages":
        return _anthropic_tools(request, tools, ids, args, digest, input_tokens, output_tokens)
    chat_id = f"chatcmpl-local{digest[:24]}"
    calls = [
        {"id": ids[i], "type": "function", "function": {"name": t.name, "arguments": args[i]}}
        for i, t in enumerate(tools)
    ]
    usage = _chat_usage(input_tokens, output_tokens)
    if not request.stream:
        message = {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "annotations": [],
            "tool_calls": calls,
        }
        return {
            "id": chat_id,
            "object": "chat.completion",
            "created": FIXED_CREATED,
            "model": request.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": None,
        }
    options = request.json.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True

    def chunk(
        delta: dict[str, Any] | None, finish: str | None = None, last: bool = False
    ) -> tuple[None, dict[str, Any]]:
        out: dict[str, Any] = {
            "id": chat_id,
            "object": "chat.completion.chunk",
            "created": FIXED_CREATED,
            "model": request.model,
            "service_tier": "default",
            "system_fingerprint": None,
            "choices": []
            if delta is None
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            out["usage"] = usage if last else None
        return (None, out)

    events: _Events = [chunk({"role": "assistant", "content": None, "refusal": None})]
    for i, call in enumerate(calls):
        head = {
            "index": i,
            "id": call["id"],
            "type": "function",
            "function": {"name": tools[i].name, "arguments": ""},
        }
        events.append(chunk({"tool_calls": [head]}))
        events.extend(
            chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
            for piece in _arg_pieces(args[i])
        )
    events.append(chunk({}, "tool_calls"))
    if include_usage:
        events.append(chunk(None, last=True))
    events.append((None, "[DONE]"))
    return events


def _anthropic_tools(
    request: Request,
    tools: list[ToolCall],
    ids: list[str],
    args: list[str],
    digest: str,
    input_tokens: int,
    output_tokens: int,
) -> dict[str, Any] | _Events:
    inputs: list[dict[str, Any]] = []
    for tool, raw in zip(tools, args, strict=True):
        value = tool.arguments if isinstance(tool.arguments, dict) else None
        if value is None:
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
        if not isinstance(value, dict):
            raise ValueError(
                f"tool call {tool.name!r}: Anthropic tool_use input must be a JSON object, got {raw!r}"
            )
        inputs.append(value)
    ids = [
        i if tool.id else i.replace("call_local", "toolu_local") for i, tool in zip(ids, tools, strict=True)
    ]
    message_id = f"msg_local_{digest[:24]}"
    blocks = [
        {"type": "tool_use", "id": ids[i], "name": t.name, "input": inputs[i]} for i, t in enumerate(tools)
    ]

    def message(done: bool) -> dict[str, Any]:
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": blocks if done else [],
            "stop_reason": "tool_use" if done else None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": output_tokens if done else 1,
            },
        }

    if not request.stream:
        return message(True)
    events: _Events = []

    def send(name: str, **fields: Any) -> None:
        events.append((name, {"type": name, **fields}))

    send("message_start", message=message(False))
    for i, block in enumerate(blocks):
        send("content_block_start", index=i, content_block={**block, "input": {}})
        for piece in _arg_pieces(_dumps(inputs[i]).decode("utf-8")):
            send("content_block_delta", index=i, delta={"type": "input_json_delta", "partial_json": piece})
        send("content_block_stop", index=i)
    send(
        "message_delta",
        delta={"stop_reason": "tool_use", "stop_sequence": None},
        usage={"output_tokens": output_tokens},
    )
    send("message_stop")
    return events


def parse_request(api: Api, body: bytes) -> Request:
    """Parses a request body of ``api`` the way the server does.

    Args:
        api: The wire format of the endpoint the body was sent to.
        body: The raw request body.

    Returns:
        The parsed :class:`Request`.

    Raises:
        ValueError: if the body is not a JSON object with ``model`` (and ``messages`` for chat and
            messages requests).
    """
    try:
        return _parse_request(api, body)
    except _ServeError as err:
        raise ValueError(err.message) from None


# -- request parsing and helpers ----------------------------------------------------------------------------


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _digest(api: str, body: dict[str, Any], reply: str) -> str:
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{api}\0{canonical}\0{reply}".encode()).hexdigest()


def _pieces(reply: str) -> list[str]:
    """Splits a reply into stream deltas, one word each (leading/trailing whitespace kept), joining to it."""
    return _PIECE.findall(reply)


def _text_of(content: Any) -> str:
    """The text of a message ``content``: a string, or a list of parts whose text parts are joined."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") == "tool_result":
                texts.append(_text_of(part.get("content")))
    return "\n".join(t for t in texts if t)


def _parse_request(api: Api, raw: bytes) -> Request:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _ServeError(400, "invalid", f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _ServeError(400, "invalid", "request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _ServeError(400, "invalid", "`model` is required and must be a non-empty string")
    system: list[str] = []
    messages: list[tuple[str, str]] = []

    def add(role: str, text: str) -> None:
        if role in ("system", "developer"):
            if text:
                system.append(text)
        else:
            messages.append((role, text))

    if api == "openai.responses":
        if isinstance(body.get("instructions"), str):
            system.append(body["instructions"])
        items = body.get("input")
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("role"), str):
                add(item["role"], _text_of(item.get("content")))
            elif item.get("type") == "function_call_output":
                add("tool", _text_of(item.get("output")))
    else:
        raw_messages = body.get("messages")
        if not isinstance(raw_messages, list):
            raise _ServeError(400, "invalid", "`messages` is required and must be a list")
        if api == "anthropic.messages":
            text = _text_of(body.get("system"))
            if text:
                system.append(text)
        for message in raw_messages:
            if isinstance(message, dict) and isinstance(message.get("role"), str):
                content = message.get("content")
                results = False
                if isinstance(content, list) and content:
                    results = all(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
                add("tool" if results else message["role"], _text_of(content))
    last_user = next((text for role, text in reversed(messages) if role == "user"), "")
    return Request(
        api=api,
        model=model,
        system="\n".join(system),
        messages=messages,
        last_user_text=last_user,
        json=body,
        stream=body.get("stream") is True,
        tools=_offered_tools(body),
        called_tools=_called_tools(api, body),
    )


def _offered_tools(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(name, argument schema)`` of each function tool the request offers (the three APIs' shapes)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for tool in body.get("tools") or ():
        if not isinstance(tool, dict):
            continue
        function = tool.get("function")
        spec: dict[str, Any] = function if isinstance(function, dict) else tool
        name = spec.get("name")
        if tool.get("type") not in (None, "function", "custom") or not isinstance(name, str):
            continue  # built-in tools (web search, code execution, ...) are not called by the server
        schema = spec.get("parameters", spec.get("input_schema"))
        out.append((name, schema if isinstance(schema, dict) else {}))
    return out


def _called_tools(api: Api, body: dict[str, Any]) -> list[str]:
    """Names of the tool calls already in the conversation, in order."""
    names: list[str] = []
    if api == "openai.responses":
        items = body.get("input")
        for item in items if isinstance(items, list) else ():
            if (
                isinstance(item, dict)
                and item.get("type") == "function_call"
                and isinstance(item.get("name"), str)
            ):
                names.append(item["name"])
        return names
    for message in body.get("messages") or ():
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                names.append(function["name"])
        content = message.get("content")
        for block in content if isinstance(content, list) else ():
            if (
                isinstance(block, dict)
                and block.get("type") == "tool_use"
                and isinstance(block.get("name"), str)
            ):
                names.append(block["name"])
    return names


# -- command line -------------------------------------------------------------------------------------------


def _script_item(item: Any, where: str) -> ResponderResult:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and isinstance(item.get("reply", item.get("text")), str) and "tool" not in item:
        return str(item.get("reply", item.get("text")))
    if isinstance(item, dict) and isinstance(item.get("tool"), str):
        unknown = set(item) - {"tool", "arguments", "id"}
        arguments = item.get("arguments")
        if unknown or not isinstance(arguments, dict | str | type(None)):
            raise ValueError(
                f"{where}: a tool call is a mapping with `tool` (name), optional `arguments` (a mapping) "
                f"and optional `id`; got {item!r}"
            )
        call_id = item.get("id")
        return ToolCall(item["tool"], arguments or {}, None if call_id is None else str(call_id))
    if isinstance(item, list) and item and all(isinstance(i, dict) for i in item):
        calls = [_script_item(i, f"{where}[{n}]") for n, i in enumerate(item)]
        if all(isinstance(c, ToolCall) for c in calls):
            return [c for c in calls if isinstance(c, ToolCall)]
    raise ValueError(
        f"{where}: expected a reply text, a tool call `{{tool: name, arguments: {{...}}}}` or a list of tool "
        f"calls (parallel calls), got {item!r}"
    )


def load_script(path: str) -> list[ResponderResult]:
    """Reads a script file for ``--script``: a YAML list of replies, served in order.

    Each item is a reply text (a string, or ``{reply: text}``), a tool call ``{tool: name, arguments:
    {...}, id: optional}``, or a list of tool calls (one answer with parallel calls)::

        - {tool: search, arguments: {query: refund policy}}
        - [{tool: weather, arguments: {city: Paris}}, {tool: weather, arguments: {city: Rome}}]
        - The refund takes 5 to 10 business days.

    Args:
        path: The YAML file.

    Returns:
        The replies, for ``LocalModelServer(script=...)``.

    Raises:
        ValueError: the file cannot be read, is not a YAML list, or an item has another shape; the message
            names the file and the item.
    """
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"--script {path}: cannot read the script ({exc})") from None
    if not isinstance(data, list):
        raise ValueError(f"--script {path}: expected a YAML list of replies, got {type(data).__name__}")
    return [_script_item(item, f"--script {path}, item {i}") for i, item in enumerate(data)]


def load_responder(spec: str) -> Callable[[Request], ResponderResult]:
    """Imports the responder named ``module:function`` (for ``--responder``; the current directory is
    importable).

    Args:
        spec: ``"package.module:function"``.

    Returns:
        The callable.

    Raises:
        ValueError: ``spec`` is not ``module:function``, the module cannot be imported, or the attribute is
            missing or not callable.
    """
    import importlib

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--responder {spec!r}: use module:function, e.g. my_tests.responders:support")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--responder {spec!r}: cannot import {module_name!r} ({exc})") from None
    func: Any = module
    for part in attr.split("."):
        func = getattr(func, part, None)
    if not callable(func):
        raise ValueError(f"--responder {spec!r}: {module_name} has no callable {attr!r}")
    return func  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    """Serves in the foreground until interrupted: ``python -m pytest_agentflows.model_server --port 8765``.

    Prints the base URLs to use (``OPENAI_BASE_URL`` and ``ANTHROPIC_BASE_URL``) and logs each request to
    standard error.

    Args:
        argv: Command-line arguments without the program name; ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status, 0 after Ctrl+C (SIGINT) or SIGTERM.
    """
    parser = argparse.ArgumentParser(
        prog="python -m pytest_agentflows.model_server",
        description="Deterministic local LLM server speaking the OpenAI and Anthropic wire formats.",
    )
    parser.add_argument("--port", type=int, default=8765, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each answer")
    choose = parser.add_mutually_exclusive_group()
    choose.add_argument(
        "--responder",
        metavar="MODULE:FUNCTION",
        help="function choosing each reply (text, a ToolCall or a list of them); default: the built-in rules",
    )
    choose.add_argument(
        "--script",
        metavar="FILE",
        help="YAML list of replies served in order: texts, {tool: name, arguments: {...}}, lists of those",
    )
    args = parser.parse_args(argv)
    try:
        responder = load_responder(args.responder) if args.responder else None
        script = load_script(args.script) if args.script else None
    except ValueError as exc:
        parser.error(str(exc))
    server = LocalModelServer(port=args.port, latency=args.latency, responder=responder, script=script)
    server._log_requests = True
    server.start()
    print(f"LocalModelServer listening on {server.url}")
    print(f"  OPENAI_BASE_URL={server.openai_base_url}")
    print(f"  ANTHROPIC_BASE_URL={server.anthropic_base_url}")
    print("Press Ctrl+C to stop.", flush=True)
    # Ctrl+C (SIGINT) and SIGTERM stop the server, also when started as a background job (`... &` in a
    # script), which inherits SIGINT ignored and would otherwise never see KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
