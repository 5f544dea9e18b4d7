"""The two kinds of agent the desk is made of: an OpenAI chat agent and an Anthropic (Claude) agent.

Both are plain objects with an async ``run(text) -> str`` and a sync ``run_sync(text) -> str``: the shape
pytest-agentflows' patterns call (``await pattern.run(...)`` uses ``run``, ``pattern.run_sync(...)`` uses
``run_sync``). They share the SDK clients of one :class:`Clients`, and every client shares one TLS context
(loading the CA certificates costs tens of milliseconds: once per process, not once per client).
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import anthropic
import certifi
import openai

from .settings import Settings

__all__ = ["ChatAgent", "ClaudeAgent", "Clients", "Tool", "ToolAgent"]


@functools.cache
def tls() -> ssl.SSLContext:
    """The TLS context of every SDK client (certifi's CA bundle, as the SDKs' own default), made once."""
    return ssl.create_default_context(cafile=certifi.where())


class Clients:
    """The SDK clients of one desk, created on first use.

    Close them with :meth:`aclose` from the event loop that used the async ones (or :meth:`close` when only
    the sync ones were used).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def openai(self) -> openai.OpenAI:
        """Sync OpenAI client."""
        s = self.settings
        return openai.OpenAI(
            base_url=s.openai_base_url,
            api_key=s.openai_api_key,
            http_client=openai.DefaultHttpxClient(verify=tls()),
        )

    @cached_property
    def async_openai(self) -> openai.AsyncOpenAI:
        """Async OpenAI client."""
        s = self.settings
        return openai.AsyncOpenAI(
            base_url=s.openai_base_url,
            api_key=s.openai_api_key,
            http_client=openai.DefaultAsyncHttpxClient(verify=tls()),
        )

    @cached_property
    def anthropic(self) -> anthropic.Anthropic:
        """Sync Anthropic client."""
        s = self.settings
        return anthropic.Anthropic(
            base_url=s.anthropic_base_url,
            api_key=s.anthropic_api_key,
            http_client=anthropic.DefaultHttpxClient(verify=tls()),
        )

    @cached_property
    def async_anthropic(self) -> anthropic.AsyncAnthropic:
        """Async Anthropic client."""
        s = self.settings
        return anthropic.AsyncAnthropic(
            base_url=s.anthropic_base_url,
            api_key=s.anthropic_api_key,
            http_client=anthropic.DefaultAsyncHttpxClient(verify=tls()),
        )

    def close(self) -> None:
        """Close the sync clients created so far."""
        for name in ("openai", "anthropic"):
            client = self.__dict__.pop(name, None)
            if client is not None:
                client.close()

    async def aclose(self) -> None:
        """Close every client created so far (call it on the event loop that used the async ones)."""
        self.close()
        for name in ("async_openai", "async_anthropic"):
            client = self.__dict__.pop(name, None)
            if client is not None:
                await client.close()


@dataclass(frozen=True)
class ChatAgent:
    """One OpenAI chat completion with a fixed system prompt."""

    clients: Clients
    """Where the SDK clients come from."""
    system: str
    """The agent's system prompt."""
    model: str
    """OpenAI model name, e.g. ``"gpt-4o-mini"``."""
    max_tokens: int = 600
    """Most output tokens per call."""

    def _request(self, text: str) -> dict[str, object]:
        return {
            "model": self.model,
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "messages": [{"role": "system", "content": self.system}, {"role": "user", "content": text}],
        }

    async def run(self, text: str) -> str:
        """Answer ``text`` (async)."""
        reply = await self.clients.async_openai.chat.completions.create(**self._request(text))  # type: ignore[call-overload]
        return reply.choices[0].message.content or ""

    def run_sync(self, text: str) -> str:
        """Answer ``text`` (sync)."""
        reply = self.clients.openai.chat.completions.create(**self._request(text))  # type: ignore[call-overload]
        return reply.choices[0].message.content or ""


@dataclass(frozen=True)
class ClaudeAgent:
    """One Anthropic Messages call with a fixed system prompt."""

    clients: Clients
    """Where the SDK clients come from."""
    system: str
    """The agent's system prompt."""
    model: str
    """Anthropic model name, e.g. ``"claude-haiku-4-5"``."""
    max_tokens: int = 400
    """Most output tokens per call."""

    def _request(self, text: str) -> dict[str, object]:
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": self.system,
            "messages": [{"role": "user", "content": text}],
        }

    @staticmethod
    def _text(message: anthropic.types.Message) -> str:
        return "".join(block.text for block in message.content if block.type == "text")

    async def run(self, text: str) -> str:
        """Answer ``text`` (async)."""
        return self._text(await self.clients.async_anthropic.messages.create(**self._request(text)))  # type: ignore[call-overload]

    def run_sync(self, text: str) -> str:
        """Answer ``text`` (sync)."""
        return self._text(self.clients.anthropic.messages.create(**self._request(text)))  # type: ignore[call-overload]


@dataclass(frozen=True)
class Tool:
    """A function the model may call: its name, what it does, the JSON schema of its arguments."""

    name: str
    """The tool name the model calls."""
    description: str
    """What it does (shown to the model)."""
    parameters: Mapping[str, Any]
    """JSON schema of the arguments."""
    function: Callable[..., str]
    """Runs the call: keyword arguments from the model, returns the result text."""

    def spec(self) -> dict[str, Any]:
        """The chat-completions ``tools`` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


@dataclass(frozen=True)
class ToolAgent:
    """An OpenAI chat agent with tools: runs each tool the model calls and sends back the result, until the
    model answers in text (at most ``max_turns`` model calls)."""

    clients: Clients
    """Where the SDK clients come from."""
    system: str
    """The agent's system prompt."""
    model: str
    """OpenAI model name."""
    tools: tuple[Tool, ...]
    """The tools offered to the model."""
    max_turns: int = 4
    """Most model calls per run."""

    def _request(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "model": self.model,
            "temperature": 0,
            "messages": messages,
            "tools": [t.spec() for t in self.tools],
        }

    def _start(self, text: str) -> list[dict[str, Any]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": text}]

    def _continue(self, messages: list[dict[str, Any]], message: Any) -> None:
        """Append the model's tool calls and each tool's result to ``messages``."""
        by_name = {t.name: t for t in self.tools}
        messages.append(
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [c.model_dump() for c in message.tool_calls],
            }
        )
        for call in message.tool_calls:
            tool = by_name.get(call.function.name)
            result = (
                tool.function(**json.loads(call.function.arguments or "{}"))
                if tool
                else f"unknown tool {call.function.name}"
            )
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})

    async def run(self, text: str) -> str:
        """Answer ``text`` (async), calling tools as the model asks."""
        messages = self._start(text)
        for _ in range(self.max_turns):
            reply = await self.clients.async_openai.chat.completions.create(**self._request(messages))
            message = reply.choices[0].message
            if not message.tool_calls:
                break
            self._continue(messages, message)
        return message.content or ""

    def run_sync(self, text: str) -> str:
        """Answer ``text`` (sync), calling tools as the model asks."""
        messages = self._start(text)
        for _ in range(self.max_turns):
            reply = self.clients.openai.chat.completions.create(**self._request(messages))
            message = reply.choices[0].message
            if not message.tool_calls:
                break
            self._continue(messages, message)
        return message.content or ""
