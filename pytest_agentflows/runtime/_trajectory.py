"""Tool-call trajectory matching for :meth:`pytest_agentflows.Flow.assert_tool_calls`.

The modes are the terms of LangChain agentevals' trajectory match, read as *actual relative to expected*:

- ``mode``: ``strict`` (same calls, same order), ``unordered`` (same calls, any order), ``subset`` (the
  agent called nothing beyond the expected calls), ``superset`` (it called at least the expected calls);
- ``args``: ``exact`` (equal), ``ignore`` (names only), ``subset`` (each actual argument object is contained
  in the expected one), ``superset`` (the actual arguments contain the expected keys and values).

Containment compares top-level keys: ``{"q": "x"}`` is a subset of ``{"q": "x", "n": 3}``. Arguments that
are not a JSON object (the raw string a model sent) match only an equal string. An expected bare tool
name matches any arguments; an expected :class:`ToolCall` whose ``id`` or ``agent`` is ``None`` matches any.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ._models import ToolCall

__all__ = ["ARG_MODES", "MODES", "ExpectedCall", "describe", "expected_calls", "mismatch"]

MODES = ("strict", "unordered", "subset", "superset")
"""Valid ``mode`` values."""
ARG_MODES = ("exact", "ignore", "subset", "superset")
"""Valid ``args`` values."""

_ANY = object()


@dataclass(frozen=True)
class ExpectedCall:
    """One expected tool call: ``arguments``, ``id`` and ``agent`` of ``_ANY`` match anything."""

    name: str
    arguments: Any = _ANY
    id: Any = _ANY
    agent: Any = _ANY

    def describe(self) -> str:
        """``name {arguments}`` (``name (any arguments)`` for a bare name), plus a given id and agent."""
        text = self.name + (
            " (any arguments)" if self.arguments is _ANY else " " + _args_text(self.arguments)
        )
        if self.id is not _ANY:
            text += f" id={self.id}"
        if self.agent is not _ANY:
            text += f" agent={self.agent}"
        return text


def expected_calls(expected: Iterable[Any], where: str) -> list[ExpectedCall]:
    """The expected items as :class:`ExpectedCall` s.

    Args:
        expected: Tool names, ``(name, arguments)`` pairs or :class:`ToolCall` s.
        where: Test id, for error messages.

    Raises:
        UsageError: for an item of another shape (the message names its position).
    """
    if isinstance(expected, str | ToolCall) or not isinstance(expected, Iterable):
        raise UsageError(
            f"{where}: assert_tool_calls() takes a list of expected calls (tool names, (name, arguments) "
            f"pairs or ToolCall objects), got {expected!r}"
        )
    out: list[ExpectedCall] = []
    for i, item in enumerate(expected):
        if isinstance(item, str):
            out.append(ExpectedCall(item))
        elif isinstance(item, ToolCall):
            out.append(
                ExpectedCall(
                    item.name,
                    item.arguments,
                    _ANY if item.id is None else item.id,
                    _ANY if item.agent is None else item.agent,
                )
            )
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            if not isinstance(item[1], dict | str):
                raise UsageError(
                    f"{where}: assert_tool_calls() expected item {i}: arguments must be a dict (or the raw "
                    f"string the model sent), got {type(item[1]).__name__}"
                )
            out.append(ExpectedCall(item[0], item[1]))
        else:
            raise UsageError(
                f"{where}: assert_tool_calls() expected item {i} is {item!r}; use a tool name, a "
                "(name, arguments) pair or a ToolCall"
            )
    return out


def _args_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return repr(arguments)
    return json.dumps(arguments, sort_keys=True, ensure_ascii=False, default=str)


def describe(call: ToolCall) -> str:
    """``name {arguments}`` of an actual call."""
    return f"{call.name} {_args_text(call.arguments)}"


def _contains(big: Any, small: Any) -> bool:
    if isinstance(big, dict) and isinstance(small, dict):
        return all(k in big and big[k] == v for k, v in small.items())
    return bool(big == small)


def _matches(exp: ExpectedCall, act: ToolCall, args: str) -> bool:
    if exp.name != act.name:
        return False
    if exp.id is not _ANY and exp.id != act.id:
        return False
    if exp.agent is not _ANY and exp.agent != act.agent:
        return False
    if exp.arguments is _ANY or args == "ignore":
        return True
    if args == "exact":
        return bool(exp.arguments == act.arguments)
    if args == "subset":
        return _contains(exp.arguments, act.arguments)
    return _contains(act.arguments, exp.arguments)


def _matching(left: int, right: int, ok: list[list[bool]]) -> list[int]:
    """A maximum bipartite matching (augmenting paths): ``match[r] = l`` or -1."""
    match = [-1] * right

    def augment(i: int, seen: list[bool]) -> bool:
        for j in range(right):
            if ok[i][j] and not seen[j]:
                seen[j] = True
                if match[j] == -1 or augment(match[j], seen):
                    match[j] = i
                    return True
        return False

    for i in range(left):
        augment(i, [False] * right)
    return match


def mismatch(
    expected: Sequence[ExpectedCall], actual: Sequence[ToolCall], mode: str, args: str
) -> str | None:
    """Why ``actual`` does not match ``expected`` in ``mode`` / ``args``, or ``None`` when it does."""
    if mode == "strict":
        for i, (exp, act) in enumerate(zip(expected, actual, strict=False)):
            if not _matches(exp, act, args):
                return f"call {i + 1}: expected {exp.describe()}, got {describe(act)}"
        if len(expected) != len(actual):
            extra = actual[len(expected) :]
            missing = expected[len(actual) :]
            if extra:
                return f"{len(extra)} call(s) more than expected, from: {describe(extra[0])}"
            return f"{len(missing)} expected call(s) never made, from: {missing[0].describe()}"
        return None
    ok = [[_matches(exp, act, args) for act in actual] for exp in expected]
    match = _matching(len(expected), len(actual), ok)
    matched_exp = {i for i in match if i != -1}
    unmatched_exp = [e for i, e in enumerate(expected) if i not in matched_exp]
    unmatched_act = [a for j, a in enumerate(actual) if match[j] == -1]
    problems = []
    if unmatched_exp and mode in ("unordered", "superset"):
        problems.append("expected but not called: " + "; ".join(e.describe() for e in unmatched_exp))
    if unmatched_act and mode in ("unordered", "subset"):
        problems.append("called but not expected: " + "; ".join(describe(a) for a in unmatched_act))
    return "\n".join(problems) or None
