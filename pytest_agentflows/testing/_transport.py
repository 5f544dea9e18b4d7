"""A flow's transport hooks: fault injection and scripted models on the httpx and httpx2 stacks.

While a flow has faults or a scripted model, :class:`FlowTransport` wraps the request methods of
``httpx.HTTPTransport`` / ``httpx.AsyncHTTPTransport`` and of their ``httpx2`` twins (what the OpenAI and
Anthropic SDKs send through: openai ≥3 and anthropic ≥2 on httpx2, openai ≤2 on httpx). It is installed
*after* the flow's cassette, so it sits outermost: a model request first meets the flow's faults, then the
scripted model, and only then the cassette (vcrpy) or the network. Nothing here touches the cassette, so
replay semantics stay exactly those of the recorder. Requests that no provider adapter reads (not a model
call) pass through untouched.

Time: the sync stacks charge latency with ``clock.advance``, the async stacks with ``await clock.sleep`` on
the (virtual) event loop, so concurrent scripted calls overlap as real ones do.

The hooks know the flow only as a :class:`~pytest_agentflows.testing._host.FlowHost`; the SDKs' own retry
waits are made virtual by :mod:`pytest_agentflows.runtime._sdk_waits`.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..runtime._context import current_agent
from ..runtime._sdk_waits import offline_reply, patch_loaded_sdks

if TYPE_CHECKING:
    from ._host import FlowHost
    from .faults import Fault

__all__ = ["FlowTransport", "Outgoing", "Reply", "error_reply"]

_STACKS = ("httpx", "httpx2")


# -- what the hooks see and answer -------------------------------------------------------------------------
@dataclass
class Outgoing:
    """One model request seen by the hooks."""

    module: Any
    """The HTTP stack the request was made with: the ``httpx`` or the ``httpx2`` module."""
    request: Any
    """The stack's ``Request``."""
    body: bytes
    """The request body."""
    agent: str | None
    """The agent in effect when the request was made (``current_agent``)."""
    api: str
    """Adapter that reads it: ``"openai.chat"``, ``"openai.responses"`` or ``"anthropic.messages"``."""

    @property
    def method(self) -> str:
        """HTTP method."""
        return str(self.request.method)

    @property
    def url(self) -> str:
        """Full URL."""
        return str(self.request.url)

    @property
    def provider(self) -> str:
        """``"anthropic"`` for Anthropic's wire format, else ``"openai"``."""
        return "anthropic" if self.api.startswith("anthropic") else "openai"

    @property
    def read_timeout(self) -> float | None:
        """The client's read timeout for this request in seconds (``None``: the client has none)."""
        timeout = self.request.extensions.get("timeout") or {}
        value = timeout.get("read") if isinstance(timeout, dict) else None
        return None if value is None else float(value)


@dataclass(frozen=True)
class Reply:
    """An HTTP answer made here (a scripted reply or an injected error), independent of the stack."""

    status: int
    """HTTP status code."""
    headers: list[tuple[str, str]]
    """Header (name, value) pairs."""
    body: bytes
    """The whole body."""

    def to_response(self, module: Any) -> Any:
        """The answer as a ``Response`` of ``module`` (``httpx`` or ``httpx2``)."""
        return module.Response(self.status, headers=self.headers, stream=module.ByteStream(self.body))

    def as_vcr_dict(self) -> dict[str, Any]:
        """The answer in vcrpy's response-dict shape (what the provider adapters read)."""
        headers: dict[str, list[str]] = {}
        for name, value in self.headers:
            headers.setdefault(name, []).append(value)
        return {
            "status": {"code": self.status, "message": ""},
            "headers": headers,
            "body": {"string": self.body},
        }


_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Bad request"),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided"),
    403: ("invalid_request_error", None, "You are not allowed to make this request"),
    404: ("invalid_request_error", None, "The model does not exist or you do not have access to it"),
    408: ("timeout", None, "Request timed out"),
    409: ("invalid_request_error", None, "Conflict"),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests"),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later"),
    504: ("server_error", None, "Gateway timeout"),
}
_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Bad request"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource"),
    404: ("not_found_error", "The requested resource could not be found"),
    408: ("timeout_error", "Request timed out"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes"),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit"),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}
INJECTED = " (injected by pytest-agentflows)"
"""Appended to the default message of an injected error, so a failure says where it came from."""


def error_reply(
    provider: str, status: int, *, message: str | None = None, retry_after: float | None = None
) -> Reply:
    """An error answer in the provider's own error format, as the SDKs parse it.

    Args:
        provider: ``"openai"`` (``{"error": {"message", "type", "param", "code"}}``) or ``"anthropic"``
            (``{"type": "error", "error": {"type", "message"}}``).
        status: HTTP status code (400..599).
        message: Error message (default: the provider's usual one for the status, marked as injected).
        retry_after: Seconds sent in a ``retry-after`` header (``None``: no header).
    """
    if provider == "anthropic":
        kind, default = _ANTHROPIC_ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", "Error")
        )
        text = message if message is not None else default + INJECTED
        payload: dict[str, Any] = {
            "type": "error",
            "error": {"type": kind, "message": text},
            "request_id": "req_injected",
        }
    else:
        otype, code, default = _OPENAI_ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error")
        )
        text = message if message is not None else default + INJECTED
        payload = {"error": {"message": text, "type": otype, "param": None, "code": code}}
    headers = [("content-type", "application/json"), ("x-request-id", "req_injected")]
    if provider == "anthropic":
        headers.append(("request-id", "req_injected"))
    if retry_after is not None:
        headers.append(("retry-after", f"{retry_after:g}"))
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Reply(status, headers, body)


# -- the hooks -------------------------------------------------------------------------------------------


@dataclass
class Served:
    """A scripted answer: what to send and the latency to charge."""

    reply: Reply
    """The answer."""
    latency_s: float
    """Scripted latency, virtual seconds (before the flow's latency mode)."""


class ScriptHandler:
    """What a scripted model offers the hooks (see :class:`pytest_agentflows.scripted.ScriptedModel`)."""

    def serve(self, out: Outgoing) -> Served | None:
        """The scripted answer to ``out``, or ``None`` to let it pass through (cassette / network).

        Raises:
            UnrecordedRequestError: for a model request nobody scripted.
        """
        raise NotImplementedError


@dataclass
class FlowTransport:
    """Installs a flow's transport hooks for a block of code (``with FlowTransport(flow): ...``).

    Built and entered by :meth:`pytest_agentflows.Flow.transport_hooks`; the flow's fault plan and (when one
    is active) its scripted model are consulted for every model request.
    """

    flow: FlowHost
    script: ScriptHandler | None = None
    """The active scripted model, or ``None``."""
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def __enter__(self) -> FlowTransport:
        try:
            for name in _STACKS:
                try:
                    module = importlib.import_module(name)
                except ImportError:  # httpx2 is absent with openai 2.x / anthropic 0.x (the httpx world)
                    continue
                self._patch(module.HTTPTransport, "handle_request", self._sync_wrapper(module))
                self._patch(module.AsyncHTTPTransport, "handle_async_request", self._async_wrapper(module))
        except BaseException:  # pragma: no cover - defensive
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        while self._undo:
            self._undo.pop()()

    def _patch(self, cls: Any, name: str, make: Callable[[Any], Any]) -> None:
        had = name in cls.__dict__
        inner = cls.__dict__[name] if had else getattr(cls, name)
        setattr(cls, name, make(inner))

        def undo() -> None:
            if had:
                setattr(cls, name, inner)
            else:  # pragma: no cover - the transports define both methods
                delattr(cls, name)

        self._undo.append(undo)

    # -- classification ----------------------------------------------------------------------------------
    def _api(self, request: Any) -> str | None:
        from ..providers import find_adapter

        adapter = find_adapter(str(request.method), str(request.url), None)
        return None if adapter is None else adapter.name

    # -- sync --------------------------------------------------------------------------------------------
    def _sync_wrapper(self, module: Any) -> Callable[[Any], Any]:
        hooks = self

        def make(inner: Any) -> Any:
            def handle_request(transport: Any, request: Any) -> Any:
                api = hooks._api(request)
                if api is None:
                    return inner(transport, request)
                out = Outgoing(module, request, request.read(), current_agent.get(), api)
                return hooks._handle_sync(out, lambda: inner(transport, request))

            return handle_request

        return make

    def _handle_sync(self, out: Outgoing, send: Callable[[], Any]) -> Any:
        flow = self.flow
        flow.check_request()  # a spent budget refuses the request before anything is sent
        patch_loaded_sdks()
        injection = flow.faults._inject(out)
        if injection is not None:
            if injection.delay_s > 0:
                flow.clock.advance(injection.delay_s)
            if injection.fault is not None:
                return self._fire_sync(out, injection.fault)
        script = self.script
        if script is not None:
            served = script.serve(out)
            if served is not None:
                offline_reply.set(True)
                self._account(out, served, charge_clock=True, started_at=flow.clock.now())
                return served.reply.to_response(out.module)
        offline_reply.set(False)
        return send()

    def _fire_sync(self, out: Outgoing, fault: Fault) -> Any:
        from .faults import FaultKind, StalledRequestError

        offline_reply.set(True)
        if fault.kind is FaultKind.STATUS:
            return fault.reply(out).to_response(out.module)
        if fault.kind is FaultKind.STALL:
            timeout = out.read_timeout
            if timeout is None:
                raise StalledRequestError(self.flow.test_id, out.agent, out.method, out.url, waited=None)
            self.flow.clock.advance(timeout)
            raise out.module.ReadTimeout(_stall_message(timeout), request=out.request)
        raise fault.exception(out)

    # -- async -------------------------------------------------------------------------------------------
    def _async_wrapper(self, module: Any) -> Callable[[Any], Any]:
        hooks = self

        def make(inner: Any) -> Any:
            async def handle_async_request(transport: Any, request: Any) -> Any:
                api = hooks._api(request)
                if api is None:
                    return await inner(transport, request)
                body = await request.aread()
                out = Outgoing(module, request, body, current_agent.get(), api)
                return await hooks._handle_async(out, lambda: inner(transport, request))

            return handle_async_request

        return make

    async def _handle_async(self, out: Outgoing, send: Callable[[], Any]) -> Any:
        flow = self.flow
        flow.check_request()  # a spent budget refuses the request before anything is sent
        clock = flow.clock
        clock.attach_loop()
        patch_loaded_sdks()
        injection = flow.faults._inject(out)
        if injection is not None:
            if injection.delay_s > 0:
                await clock.sleep(injection.delay_s)
            if injection.fault is not None:
                return await self._fire_async(out, injection.fault)
        script = self.script
        if script is not None:
            served = script.serve(out)
            if served is not None:
                offline_reply.set(True)
                started = clock.now()
                cancelled = False
                try:
                    await clock.sleep(flow.effective_latency(served.latency_s))
                except BaseException:
                    cancelled = True
                    raise
                finally:
                    self._account(out, served, charge_clock=False, started_at=started, cancelled=cancelled)
                return served.reply.to_response(out.module)
        offline_reply.set(False)
        return await send()

    async def _fire_async(self, out: Outgoing, fault: Fault) -> Any:
        from .faults import STALL_LIMIT_S, FaultKind, StalledRequestError

        offline_reply.set(True)
        if fault.kind is FaultKind.STATUS:
            return fault.reply(out).to_response(out.module)
        if fault.kind is FaultKind.STALL:
            timeout = out.read_timeout
            await self.flow.clock.sleep(STALL_LIMIT_S if timeout is None else timeout)
            if timeout is None:
                raise StalledRequestError(
                    self.flow.test_id, out.agent, out.method, out.url, waited=STALL_LIMIT_S
                )
            raise out.module.ReadTimeout(_stall_message(timeout), request=out.request)
        raise fault.exception(out)

    # -- ledger ------------------------------------------------------------------------------------------
    def _account(
        self, out: Outgoing, served: Served, *, charge_clock: bool, started_at: float, cancelled: bool = False
    ) -> None:
        from ..cassette._recorder import Exchange

        request = {"method": out.method, "uri": out.url, "body": out.body, "headers": {}}
        self.flow.on_exchange(
            Exchange(
                request=request,
                response=served.reply.as_vcr_dict(),
                replayed=True,
                latency_s=served.latency_s,
                agent=out.agent,
                charge_clock=charge_clock,
                started_at=started_at,
                cancelled=cancelled,
            )
        )


def _stall_message(timeout: float) -> str:
    return f"timed out after {timeout:g} s (virtual): the model never answered (injected stall)"
