"""Message content and tool calls: the small readers the three adapters share.

Everything here is cheap: it walks JSON the adapter already parsed. The value objects are built by
pydantic's (compiled) validation, which is quicker than its pure-Python ``model_construct``.
"""

from __future__ import annotations

import json
from typing import Any

from ..runtime._models import Message, ToolCall

__all__ = ["arguments_of", "message", "parts_text", "tool_call"]


def message(role: str, text: str) -> Message:
    """A :class:`Message`."""
    return Message(role=role, text=text)


def tool_call(name: str, arguments: dict[str, Any] | str, call_id: Any) -> ToolCall:
    """A :class:`ToolCall` without an agent (the ledger sets it); a non-str id becomes ``None``."""
    return ToolCall(
        name=name,
        arguments=arguments,
        id=call_id if isinstance(call_id, str) and call_id else None,
        agent=None,
    )


def arguments_of(raw: Any) -> dict[str, Any] | str:
    """Tool-call arguments: a JSON object (given, or a string holding one) as a dict, else the raw string.

    An empty or missing value is ``{}`` (a call without arguments); any other non-object JSON value and
    any text that is not JSON stay the string the model sent.
    """
    if isinstance(raw, dict):
        return raw
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, str):
        return json.dumps(raw, ensure_ascii=False)
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    return parsed if isinstance(parsed, dict) else raw


def parts_text(content: Any, *, sep: str = "\n") -> str:
    """The text of a message ``content``: a string, or the ``text`` of each part of a list joined by ``sep``.

    Parts without text (images, files, tool calls) are left out; ``""`` when there is no text.
    """
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            text = part.get("text")
            if isinstance(text, str):
                texts.append(text)
    return sep.join(texts)
