"""The text of an agent's exception as the decision log records it, the same across SDK majors."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["error_text"]


def error_text(exc: BaseException) -> str:
    """``str(exc)``, except for the SDKs' HTTP status errors: ``"Error code: 500 - <the API's message>"``.

    The OpenAI and Anthropic SDKs word the same HTTP error differently by version (openai 2.x and older
    Anthropic SDKs append the whole JSON body, openai 3.x only its ``error.message``, newer Anthropic SDKs
    ``"500 <message> (path: ..., type: ...)"``). Decision-log snapshots
    must not change with an SDK upgrade, so a status error whose body carries an ``error.message`` is
    written in one form: ``Error code: <status> - <message>``. Any other exception keeps ``str(exc)``.

    Args:
        exc: The exception an agent raised.

    Returns:
        The text to record (a ``str``).
    """
    text = str(exc)
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or not (
        text.startswith(f"Error code: {status}") or text.startswith(f"{status} ")
    ):
        return text
    body = getattr(exc, "body", None)  # openai: the body's "error" object; anthropic: the whole body
    inner = body.get("error", body) if isinstance(body, Mapping) else None
    message = inner.get("message") if isinstance(inner, Mapping) else None
    if isinstance(message, str) and message:
        return f"Error code: {status} - {message}"
    return text
