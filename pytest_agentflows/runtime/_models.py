"""Serialisable value types shared by every layer: usage, model calls, decisions, agent results.

Importable without pytest; no heavy imports.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Usage(BaseModel):
    """Token usage and price of one or more model calls.

    ``input_tokens`` counts every billed input token: OpenAI prompt/input tokens (cached ones included),
    Anthropic ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``. The cache split is
    kept in ``cache_read_tokens`` / ``cache_write_tokens`` because it changes the price.
    """

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    """Billed input (prompt) tokens, cache reads and writes included."""
    output_tokens: int = 0
    """Billed output (completion) tokens, reasoning tokens included."""
    cost_usd: float | None = 0.0
    """Price in US dollars from the ``genai-prices`` package; ``None`` when a model has no known price."""
    cache_read_tokens: int = 0
    """Of ``input_tokens``, those read from the provider's prompt cache."""
    cache_write_tokens: int = 0
    """Of ``input_tokens``, those written to the provider's prompt cache (Anthropic)."""

    @property
    def total_tokens(self) -> int:
        """``input_tokens + output_tokens``."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        cost: float | None
        if self.cost_usd is None or other.cost_usd is None:
            cost = None
        else:
            cost = round(self.cost_usd + other.cost_usd, 12)
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=cost,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )


class Message(BaseModel):
    """One message of a model call's input, as the ledger keeps it (``ModelCall.input_messages``).

    ``Message(role, text)`` works positionally too.
    """

    model_config = ConfigDict(frozen=True)

    role: str
    """The provider's role: ``"system"`` (the system prompt / instructions; ``"developer"`` kept as sent),
    ``"user"``, ``"assistant"``, or ``"tool"`` for a tool result (chat ``tool`` message, Responses
    ``function_call_output``, Anthropic ``tool_result`` block)."""
    text: str
    """The message's text parts joined with ``"\\n"`` (``""`` when it has none, e.g. an assistant turn that
    only called tools); secrets scrubbed as in cassettes."""

    def __init__(self, role: str | None = None, text: str | None = None, /, **data: Any) -> None:
        if role is not None:
            data["role"] = role
        if text is not None:
            data["text"] = text
        super().__init__(**data)


class ToolCall(BaseModel):
    """One tool (function) call a model asked for.

    ``ToolCall(name, arguments, id, agent)`` works positionally too. In :meth:`Flow.assert_tool_calls`, an
    expected ``ToolCall`` whose ``id`` or ``agent`` is ``None`` matches any.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    """The tool (function) name."""
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    """The arguments: the parsed JSON object when the model sent a valid JSON object, else the raw string
    it sent (secrets scrubbed as in cassettes)."""
    id: str | None = None
    """The provider's call id (chat ``tool_calls[].id``, Responses ``call_id``, Anthropic ``tool_use.id``)."""
    agent: str | None = None
    """The agent of the model call that asked for it."""

    def __init__(
        self,
        name: str | None = None,
        arguments: dict[str, Any] | str | None = None,
        id: str | None = None,
        agent: str | None = None,
        /,
        **data: Any,
    ) -> None:
        for key, value in (("name", name), ("arguments", arguments), ("id", id), ("agent", agent)):
            if value is not None:
                data[key] = value
        super().__init__(**data)


class ModelCall(BaseModel):
    """One model call (one HTTP interaction with an LLM API), as the ledger records it."""

    model_config = ConfigDict(frozen=True)

    agent: str | None
    """Name of the agent that made the call (``Flow.agent`` / the patterns), or ``None``."""
    provider: str
    """Wire API family: ``"openai"`` or ``"anthropic"``."""
    model: str
    """Model name as the response gives it (e.g. ``"gpt-4o-mini-2024-07-18"``)."""
    usage: Usage
    """Tokens and USD of this call."""
    latency_s: float = 0.0
    """Recorded latency in seconds (request sent → last byte of the response)."""
    streamed: bool = False
    """Whether the response was a server-sent-event stream."""
    api: str = ""
    """Adapter that read it: ``"openai.chat"``, ``"openai.responses"`` or ``"anthropic.messages"``."""
    replayed: bool = True
    """``True`` when served from a cassette, ``False`` when recorded from the network in this run."""
    started_at: float = 0.0
    """Virtual time (seconds since the flow started) at which the call began."""
    id: str | None = None
    """Deterministic id (``"router#1/billing#1/call#1"``): the enclosing scope, ``call`` and a counter."""
    parent: str | None = None
    """Id of the enclosing agent run, span, task or event handler (``None`` at the top of the flow)."""
    input_messages: list[Message] = Field(default_factory=list)
    """The request's messages in order: system prompt first, tool results as role ``"tool"``."""
    output_text: str = ""
    """The assistant text of the response (text parts concatenated; ``""`` when it only called tools)."""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    """The tool calls the response asked for, in order (parallel calls included)."""
    finish_reason: str | None = None
    """The provider's own stop value: chat ``finish_reason`` (``stop``, ``tool_calls``, ``length``),
    Anthropic ``stop_reason`` (``end_turn``, ``tool_use``, ...); Responses: ``tool_calls`` when the output
    holds ``function_call`` items, else ``stop`` or the ``incomplete_details`` reason."""
    usage_reported: bool = True
    """``False`` when the response carried no usage (a chat stream without
    ``stream_options={"include_usage": True}``): tokens are then 0 and the price unknown."""

    @property
    def input_text(self) -> str:
        """The texts of :attr:`input_messages` joined with ``"\\n"``."""
        return "\n".join(m.text for m in self.input_messages)


class Decision(BaseModel):
    """One entry of a decision log: what a coordination pattern (or user code) decided, and when.

    Extra keyword fields given to :meth:`DecisionLog.record` are kept and read as attributes
    (``d.chosen``, ``d.approved``).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    seq: int
    """Position in the log, from 0."""
    at: float
    """Virtual seconds since the flow started (model latency only, never wall time)."""
    kind: str
    """Decision kind: ``route``, ``stage_complete``, ``agent_failed``, ``model_call``, …"""
    agent: str | None = None
    """Agent the decision is about, if any."""
    id: str | None = None
    """Deterministic id: the enclosing scope, the kind and a counter (``"orchestrator#1/task_complete#2"``).

    Decision snapshots leave it out (``seq`` orders them); ``DecisionLog.as_dicts()`` and JSONL keep it."""
    parent: str | None = None
    """Id of the enclosing agent run, span, orchestrator task or event handler, or ``None``."""

    def fields(self) -> dict[str, Any]:
        """The extra fields, in the order they were recorded."""
        return dict(self.__pydantic_extra__ or {})


class AgentResult(BaseModel):
    """What a pattern (or an agent) returns: the text, who produced it, optional structured data."""

    text: str
    """The final text output."""
    agent: str | None = None
    """Name of the agent that produced ``text``."""
    data: Any = None
    """Optional structured payload (e.g. the per-agent results of a broadcast)."""
    usage: Usage = Field(default_factory=Usage)
    """Usage of the model calls made while producing this result."""
