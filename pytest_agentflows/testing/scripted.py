"""Scripted models: inline replies served in the real OpenAI and Anthropic wire formats, with no cassette.

::

    def test_triage(agentflow, scripted_model):
        scripted_model.openai(agent="router").reply("billing", input_tokens=120, output_tokens=1, latency=0.4)
        scripted_model.anthropic(agent="billing").reply("Refund issued.", latency=2.0)
        scripted_model.openai(agent="planner").tool_call("get_weather", {"city": "Rome"}).reply("Sunny.")
        ...  # the flow's real OpenAI / Anthropic clients get these answers

The scripted model is a :class:`respx.MockRouter` (:attr:`ScriptedModel.router`) with one route per model
API path (``…/chat/completions`` and ``…/responses`` for OpenAI, ``…/v1/messages`` for Anthropic, any
host); each route's side effect picks the next reply scripted for the agent in effect when the request is
made. respx itself only patches ``httpx``; the flow's transport hooks bridge both stacks into the router
(an ``httpx2`` request is converted to an ``httpx`` one, the answer back), at the transport level, above the
cassette, so the SDK clients a test already has work unchanged (``openai`` ≥3 / ``anthropic`` ≥2 on httpx2,
``openai`` ≤2 or a raw ``httpx.Client`` on httpx), sync and async.

Each answer is built by the same code as :class:`~pytest_agentflows.model_server.LocalModelServer`'s, so it
is exactly what the real API sends: JSON, or server-sent events when the request asks for a stream. Each
served reply is a model call in the flow's ledger (read back by the provider adapters, so usage and price
are what a cassette of the same answer would give; a chat stream carries usage only when the request asks
for ``stream_options={"include_usage": True}``, as with the real API) and its latency passes on the flow's
virtual clock (``clock.advance`` for sync clients, ``await clock.sleep`` on the virtual event loop for async
ones, so concurrent calls overlap).

A model request nobody scripted (an agent without a script, or a script used up) raises
:class:`UnscriptedRequestError`, an :class:`~pytest_agentflows.UnrecordedRequestError`.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import UnrecordedRequestError, UsageError
from ..runtime._context import current_agent
from ..runtime._models import ToolCall
from ._transport import FlowTransport, Outgoing, Reply, ScriptHandler, Served, error_reply
from .faults import DOCS_FAILURE_MODES
from .model_server import Api, Request, build_answer, parse_request

if TYPE_CHECKING:
    import httpx
    import respx

    from ._host import FlowHost

__all__ = ["Script", "ScriptedModel", "ScriptedReply", "ScriptedRequest", "UnscriptedRequestError"]

Provider = Literal["openai", "anthropic"]

_ROUTES: tuple[tuple[Api, Provider, str], ...] = (
    ("openai.chat", "openai", r"/chat/completions/?$"),
    ("openai.responses", "openai", r"/responses/?$"),
    ("anthropic.messages", "anthropic", r"/v1/messages/?$"),
)


@dataclass(frozen=True, kw_only=True)
class ScriptedReply:
    """One scripted answer."""

    text: str
    """The assistant text (``""`` for a tool call)."""
    tool_calls: tuple[ToolCall, ...] = ()
    """The tool calls answered instead of text (:meth:`Script.tool_call`); empty for a text reply."""
    input_tokens: int | None = None
    """Input tokens reported (``None``: counted from the request like the local model server does)."""
    output_tokens: int | None = None
    """Output tokens reported (``None``: the reply's whitespace-split word count; for a tool call, that of
    its name and JSON arguments)."""
    latency: float = 0.0
    """Virtual seconds the call takes."""
    model: str | None = None
    """Model named in the answer (``None``: the model the request asked for)."""


@dataclass(frozen=True)
class ScriptedRequest:
    """A request a scripted model answered (``scripted_model.requests``)."""

    agent: str | None
    """Agent in effect when it was made."""
    request: Request
    """What was asked (``api``, ``model``, ``system``, ``messages``, ``last_user_text``, ``json``, …)."""
    reply: ScriptedReply
    """The reply it got."""


class UnscriptedRequestError(UnrecordedRequestError):
    """A model request reached a scripted model that had no reply for it.

    An :class:`~pytest_agentflows.UnrecordedRequestError` (a ``BaseException``, so the SDKs do not retry
    it), with the scripts in the message.

    Attributes:
        scripted: One line per script: provider, agent and how many of its replies were served.
    """

    def __init__(
        self, *, test: str, agent: str | None, method: str, url: str, reason: str, scripted: list[str]
    ) -> None:
        super().__init__(
            test=test, cassette="(scripted model)", agent=agent, method=method, url=url, reason=reason
        )
        self.scripted = list(scripted)
        provider = "anthropic" if url.rstrip("/").endswith("/messages") else "openai"
        lines = [
            f"unscripted model request in test {test}",
            f"  agent:    {agent or '(none: wrap the call in agentflow.agent(name) to name it)'}",
            f"  request:  {method} {url}",
            f"  why:      {reason}",
            "  scripted: " + ("\n            ".join(scripted) if scripted else "(nothing)"),
            f"Fix: script a reply with scripted_model.{provider}(agent={agent!r}).reply(...), or make the "
            f"call as the agent that has one (agentflow.agent(name)). "
            f"See {DOCS_FAILURE_MODES}#scripted-models",
        ]
        self.args = ("\n".join(lines),)


class Script:
    """The replies scripted for one provider and agent, served in order (``scripted_model.openai(...)``)."""

    def __init__(self, owner: ScriptedModel, provider: Provider, agent: str | None) -> None:
        self._owner = owner
        self.provider: Provider = provider
        """``"openai"`` (chat completions and responses) or ``"anthropic"`` (messages)."""
        self.agent = agent
        """The agent it answers (``None``: any agent without a script of its own)."""
        self.replies: list[ScriptedReply] = []
        """Every reply scripted, in order."""
        self.served = 0
        """How many replies were served."""

    def reply(
        self,
        text: str,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        latency: float = 0.0,
        model: str | None = None,
    ) -> Script:
        """Script the next reply. Returns the script, so calls chain.

        Args:
            text: The assistant text.
            input_tokens: Input tokens to report (default: counted from the request).
            output_tokens: Output tokens to report (default: words of ``text``).
            latency: Virtual seconds the call takes (>= 0).
            model: Model named in the answer (default: the requested model).

        Raises:
            UsageError: for a non-str text, negative tokens or latency.
        """
        if not isinstance(text, str):
            raise UsageError(f"{self}.reply() needs the reply text as a str, got {type(text).__name__}")
        self._check("reply", input_tokens, output_tokens, latency)
        with self._owner._lock:
            self.replies.append(
                ScriptedReply(
                    text=text,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    latency=float(latency),
                    model=model,
                )
            )
        return self

    def tool_call(
        self,
        name: str,
        arguments: dict[str, Any] | str | None = None,
        *,
        id: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        latency: float = 0.0,
    ) -> Script:
        """Script the next reply as a tool call. Returns the script, so calls chain like :meth:`reply`.

        Served in each API's real wire format, streamed too: chat ``tool_calls`` with
        ``finish_reason="tool_calls"``, a Responses ``function_call`` item, an Anthropic ``tool_use`` block
        with ``stop_reason="tool_use"``. The flow's ledger reads it back as a
        :class:`~pytest_agentflows.ToolCall` of the calling agent, and a ``tool_call`` decision.

        Args:
            name: The tool (function) name.
            arguments: The arguments: a dict (sent as JSON), or the raw string the model sends (OpenAI
                only; Anthropic needs a JSON object); ``None`` for ``{}``.
            id: The call id (default: derived from the request, deterministic).
            input_tokens: Input tokens to report (default: counted from the request).
            output_tokens: Output tokens to report (default: words of the name and JSON arguments).
            latency: Virtual seconds the call takes (>= 0).

        Raises:
            UsageError: for a name that is not a non-empty str, arguments that are not a dict or str,
                negative tokens or latency.
        """
        if not isinstance(name, str) or not name:
            raise UsageError(f"{self}.tool_call() needs the tool name as a non-empty str, got {name!r}")
        if arguments is not None and not isinstance(arguments, dict | str):
            raise UsageError(
                f"{self}.tool_call({name!r}, arguments=...) must be a dict (or a raw str), "
                f"got {type(arguments).__name__}"
            )
        if id is not None and not isinstance(id, str):
            raise UsageError(f"{self}.tool_call({name!r}, id=...) must be a str, got {id!r}")
        self._check("tool_call", input_tokens, output_tokens, latency)
        call = ToolCall(name, {} if arguments is None else arguments, id)
        with self._owner._lock:
            self.replies.append(
                ScriptedReply(
                    text="",
                    tool_calls=(call,),
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    latency=float(latency),
                )
            )
        return self

    def _check(self, method: str, input_tokens: Any, output_tokens: Any, latency: Any) -> None:
        for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise UsageError(f"{self}.{method}({name}=...) must be an int >= 0, got {value!r}")
        if isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0:
            raise UsageError(f"{self}.{method}(latency=...) must be seconds >= 0, got {latency!r}")

    @property
    def remaining(self) -> int:
        """Replies not served yet."""
        return len(self.replies) - self.served

    def describe(self) -> str:
        """``openai(agent='router'): 1 of 2 replies served``."""
        return f"{self}: {self.served} of {len(self.replies)} replies served"

    def __str__(self) -> str:
        return f"{self.provider}(agent={self.agent!r})"

    def __repr__(self) -> str:
        return f"Script({self.describe()})"


class ScriptedModel(ScriptHandler):
    """Inline scripted replies for a flow's model requests (the ``scripted_model`` fixture).

    Use as a context manager around the code that makes the requests (the fixture does it):
    ``with ScriptedModel(flow) as model: model.openai(agent="a").reply("hi")``. The flow must be active.

    Args:
        flow: The flow whose requests it answers (ledger, clock, decision log, error messages).
        strict: Whether :meth:`close` (the fixture's teardown) fails on replies never requested.
    """

    def __init__(self, flow: FlowHost, *, strict: bool = True) -> None:
        import respx

        self.flow = flow
        self.strict = strict
        """Fail at teardown when scripted replies were never requested (set ``False`` to allow it)."""
        self._lock = threading.RLock()
        self._scripts: dict[tuple[Provider, str | None], Script] = {}
        self._local = threading.local()
        self.requests: list[ScriptedRequest] = []
        """Every request answered, in the order served."""
        self.router: respx.MockRouter = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
        """The respx router answering the requests (``router.calls``, ``router.routes["openai.chat"]``)."""
        for api, provider, path in _ROUTES:
            self.router.post(path__regex=path, name=api).mock(side_effect=self._side_effect(api, provider))
        self.router.route(name="pass_through").pass_through()
        self._active = False
        self._hooks: FlowTransport | None = None

    # -- scripting -------------------------------------------------------------------------------------
    def openai(self, agent: str | None = None) -> Script:
        """The OpenAI script of ``agent`` (chat completions and responses; ``None``: any other agent)."""
        return self._script("openai", agent)

    def anthropic(self, agent: str | None = None) -> Script:
        """The Anthropic script of ``agent`` (messages; ``None``: any other agent)."""
        return self._script("anthropic", agent)

    def _script(self, provider: Provider, agent: str | None) -> Script:
        if agent is not None and (not isinstance(agent, str) or not agent):
            raise UsageError(
                f"scripted_model.{provider}(agent=...) must be a non-empty str or None, got {agent!r}"
            )
        with self._lock:
            script = self._scripts.get((provider, agent))
            if script is None:
                script = self._scripts[(provider, agent)] = Script(self, provider, agent)
            return script

    @property
    def scripts(self) -> list[Script]:
        """Every script, in the order first used."""
        with self._lock:
            return list(self._scripts.values())

    # -- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self) -> ScriptedModel:
        hooks = self.flow.transport_hooks()
        if hooks.script is not None and hooks.script is not self:
            raise UsageError(f"{self.flow.test_id}: the flow already has an active scripted model")
        hooks.script = self
        self._hooks = hooks
        self._active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._active = False
        hooks, self._hooks = self._hooks, None
        if hooks is not None and hooks.script is self:
            hooks.script = None

    def unused(self) -> list[Script]:
        """The scripts with replies never requested."""
        return [s for s in self.scripts if s.remaining]

    def assert_all_used(self) -> None:
        """Fail when a scripted reply was never requested.

        Raises:
            AssertionError: listing every script with unserved replies.
        """
        unused = self.unused()
        if unused:
            lines = "\n".join(f"  {s.describe()}" for s in unused)
            raise AssertionError(
                f"{self.flow.test_id}: scripted replies were never requested:\n{lines}\n"
                "Fix: remove them, or set scripted_model.strict = False when the flow may stop early."
            )

    # -- serving (called by the transport hooks) -------------------------------------------------------
    def serve(self, out: Outgoing) -> Served | None:
        import httpx
        from respx.models import PassThrough

        if out.module is httpx:
            request = out.request
        else:  # httpx2 (or another httpx-compatible stack): bridge into the respx router
            request = httpx.Request(
                out.method, out.url, headers=list(out.request.headers.multi_items()), content=out.body
            )
        self._local.served = None
        try:
            response = self.router.handler(request)
        except PassThrough:
            return None
        served: Served | None = self._local.served
        if served is None:  # pragma: no cover - every route below sets it
            return Served(
                Reply(response.status_code, list(response.headers.multi_items()), response.content), 0.0
            )
        return dataclasses.replace(
            served, reply=Reply(response.status_code, list(response.headers.multi_items()), response.content)
        )

    def _side_effect(self, api: Api, provider: Provider) -> Any:
        def side_effect(request: httpx.Request) -> httpx.Response:
            import httpx

            agent = current_agent.get()
            with self._lock:
                script = self._scripts.get((provider, agent)) or self._scripts.get((provider, None))
                reply: ScriptedReply | None = None
                if script is not None and script.remaining:
                    reply = script.replies[script.served]
                    script.served += 1
            if reply is None or script is None:
                raise self._miss(request, provider, agent, script)
            try:
                parsed = parse_request(api, request.content)
            except ValueError as exc:
                bad = error_reply(provider, 400, message=f"scripted model: {exc}")
                self._local.served = Served(bad, 0.0)
                return httpx.Response(bad.status, headers=bad.headers, content=bad.body)
            if reply.model is not None:
                parsed = dataclasses.replace(parsed, model=reply.model)
            try:
                answer = build_answer(
                    parsed,
                    list(reply.tool_calls) if reply.tool_calls else reply.text,
                    input_tokens=reply.input_tokens,
                    output_tokens=reply.output_tokens,
                )
            except ValueError as exc:  # e.g. an Anthropic tool call with raw-string arguments
                bad = error_reply(provider, 400, message=f"scripted model: {exc}")
                self._local.served = Served(bad, 0.0)
                return httpx.Response(bad.status, headers=bad.headers, content=bad.body)
            with self._lock:
                self.requests.append(ScriptedRequest(agent=agent, request=parsed, reply=reply))
            self._local.served = Served(Reply(answer.status, answer.headers, answer.body), reply.latency)
            return httpx.Response(answer.status, headers=answer.headers, content=answer.body)

        return side_effect

    def _miss(
        self, request: httpx.Request, provider: Provider, agent: str | None, script: Script | None
    ) -> UnscriptedRequestError:
        if script is None:
            reason = f"no {provider} reply is scripted for agent {agent!r} (nor for agent=None, any agent)"
        else:
            reason = f"the script {script} is used up: all {len(script.replies)} replies were served"
        error = UnscriptedRequestError(
            test=self.flow.test_id,
            agent=agent,
            method=request.method,
            url=self.flow.redactor.scrub_url(str(request.url)),
            reason=reason,
            scripted=[s.describe() for s in self.scripts],
        )
        self.flow.record_miss(error)
        return error

    def __repr__(self) -> str:
        return f"ScriptedModel([{', '.join(s.describe() for s in self.scripts)}])"
