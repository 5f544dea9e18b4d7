"""Normalising the request and response dicts of a vcrpy-format interaction.

Cassettes in the wild store bodies in several ways, all handled here:

- stock vcrpy: request ``body: str | bytes | None``, response ``body: {string: str | bytes}``;
- bodies left compressed (``!!binary`` gzip with a ``Content-Encoding: gzip`` header, as recorded without
  ``decode_compressed_response``); ``deflate`` too, and ``br`` when the ``brotli`` module is importable
  (otherwise the body is left as it is and no provider adapter will read it);
- pydantic-ai's serializer: JSON bodies stored as a YAML mapping under ``parsed_body`` (no ``body``);
- vcrpy's old httpx format: ``status_code`` and ``content`` instead of ``status`` and ``body``;
- header values stored as a list (vcrpy) or as one string (langchain's serializer).

The normal form is the stock vcrpy shape with bytes bodies, compressed bodies decoded (and their
``Content-Encoding`` header dropped)::

    request:  {"method": "POST", "uri": str, "headers": {name: [value, ...]}, "body": bytes | None}
    response: {"status": {"code": int, "message": str}, "headers": {name: [value, ...]},
               "body": {"string": bytes}}

plus the response's ``"agentflows"`` metadata mapping when there is one. A dict already in normal form
(as a replayed interaction is stored) is returned as it is, not copied: callers must not mutate the result.
"""

from __future__ import annotations

import importlib
import json
import zlib
from collections.abc import Mapping
from typing import Any

from pydantic_core import from_json

__all__ = [
    "BodyError",
    "header_value",
    "json_or_none",
    "normalise_headers",
    "normalise_request",
    "normalise_response",
]

_GZIP_MAGIC = b"\x1f\x8b"
MAX_DECODED_BODY_BYTES = 64 * 2**20
"""A compressed body that decompresses to more than this (64 MiB) is refused (:class:`BodyError`): a
compression bomb (1.5 MB of gzip can hold gigabytes) must not exhaust memory when a cassette is loaded."""
_CHUNK = 2**20


class TooLarge(ValueError):
    """Decompressed data would exceed its limit; ``str(exc)`` says which limit."""

    def __init__(self, what: str, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"{what} decompresses to more than {limit // 2**20} MiB (a compression bomb?); "
            "it is refused before it fills memory"
        )


def decompress_bounded(data: bytes, wbits: int, limit: int, what: str = "the body") -> bytes:
    """``zlib``/``gzip`` data decompressed, never producing more than ``limit`` bytes.

    Args:
        data: Compressed bytes.
        wbits: As for :func:`zlib.decompress` (``31``: gzip, several members allowed; ``15``: zlib;
            ``-15``: raw deflate).
        limit: Most bytes the result may have.
        what: What the data is, for the error message.

    Raises:
        TooLarge: the data decompresses to more than ``limit`` bytes (decompression stops there).
        zlib.error: corrupt data. EOFError: truncated data (as :func:`gzip.decompress` raises them).
    """
    out = bytearray()
    gzip_members = wbits > 15
    while True:
        engine = zlib.decompressobj(wbits)
        chunk = engine.decompress(data, limit - len(out) + 1)
        out += chunk
        if len(out) > limit or engine.unconsumed_tail:
            raise TooLarge(what, limit)
        if not engine.eof:
            raise EOFError("compressed data ended before the end-of-stream marker")
        data = engine.unused_data
        if not gzip_members or not data.lstrip(b"\x00"):
            return chunk if len(chunk) == len(out) else bytes(out)  # one member: no second copy
        if not data.startswith(_GZIP_MAGIC):
            raise zlib.error("trailing data after the last gzip member")


def gunzip_bounded(data: bytes, limit: int, what: str = "the body") -> bytes:
    """:func:`gzip.decompress` that stops at ``limit`` bytes (see :func:`decompress_bounded`)."""
    return decompress_bounded(data, 31, limit, what)


def _brotli_bounded(brotli: Any, data: bytes, limit: int) -> bytes:
    """Brotli data decompressed, refused past ``limit`` bytes (streamed when the module can)."""
    decompressor = brotli.Decompressor()
    try:
        out = decompressor.process(data, output_buffer_limit=limit + 1)
    except TypeError:  # an older brotli / brotlicffi without output limits: whole, then checked
        out = brotli.decompress(data)
    if len(out) > limit:
        raise TooLarge("the body", limit)
    return bytes(out)


class BodyError(ValueError):
    """A request or response dict cannot be normalised.

    Args:
        where: The field, relative to the interaction (e.g. ``"response.body.string"``).
        reason: What is wrong with it.
    """

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


def header_value(headers: Mapping[str, list[str]], name: str) -> str | None:
    """The first value of a header, or ``None`` when it is absent.

    Args:
        headers: Normalised headers, ``{name: [value, ...]}``.
        name: Header name, matched case-insensitively.
    """
    lname = name.lower()
    for key, values in headers.items():
        if key.lower() == lname and values:
            return values[0]
    return None


def json_or_none(body: bytes | None) -> Any:
    """A body parsed as JSON, or ``None`` when it is empty or not JSON (e.g. an SSE stream).

    Args:
        body: Decoded body bytes (UTF-8 JSON), or ``None``.
    """
    if not body:
        return None
    try:
        return parse_json(body)
    except ValueError:
        return None


def parse_json(text: bytes | str) -> Any:
    """``json.loads(text)``, by pydantic-core's parser (2-4 times quicker on model request and response
    bodies) with ``json.loads`` for what only it reads (a UTF-8 BOM, lone surrogate escapes).

    Raises:
        ValueError: ``text`` is not JSON.
    """
    try:
        return from_json(text)
    except ValueError:
        return json.loads(text)


def normalise_headers(raw: Any, where: str) -> dict[str, list[str]]:
    """Headers as ``{name: [value, ...]}``.

    Args:
        raw: A mapping of header name to a value or a list of values, or ``None``.
        where: Field name used in the error message.

    Raises:
        BodyError: ``raw`` is not a mapping.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise BodyError(where, f"expected a mapping of header names to values, found {type(raw).__name__}")
    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        if type(value) is list and len(value) == 1 and type(value[0]) is str:  # the usual, normal form
            out[key if type(key) is str else str(key)] = [value[0]]
            continue
        values = value if isinstance(value, list) else [value]
        out[str(key)] = [v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in values]
    return out


def _to_bytes(value: Any, where: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BodyError(where, f"text body is not encodable as UTF-8 ({exc.reason})") from None
    raise BodyError(where, f"expected text or !!binary bytes, found {type(value).__name__}")


def _parsed_body(value: Any, where: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    try:
        # As pydantic-ai's json_body_serializer does when it loads a cassette.
        return json.dumps(value, default=str).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise BodyError(where, f"cannot turn the parsed body back into JSON ({exc})") from None


def _is_text(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _content_codings(headers: dict[str, list[str]]) -> list[str]:
    return [
        c.strip().lower()
        for key, values in headers.items()
        if key.lower() == "content-encoding"
        for value in values
        for c in value.split(",")
        if c.strip() and c.strip().lower() not in ("identity", "none")
    ]


def _decode_content(body: bytes, codings: list[str], where: str) -> tuple[bytes, bool]:
    """Undo the ``codings`` (last applied first); returns ``(body, fully decoded)``.

    A body the recorder already decoded while keeping the header is recognised (no gzip magic, or text
    that does not inflate) and returned as is. Raises BodyError on corrupt compressed data.
    """
    for coding in reversed(codings):
        if coding in ("gzip", "x-gzip") or (coding not in ("deflate", "br") and body.startswith(_GZIP_MAGIC)):
            if not body.startswith(_GZIP_MAGIC):
                continue  # the recorder decoded it but kept the header
            try:
                body = gunzip_bounded(body, MAX_DECODED_BODY_BYTES)
            except TooLarge as exc:
                raise BodyError(where, str(exc)) from None
            except (OSError, EOFError, zlib.error) as exc:
                raise BodyError(where, f"gzip body does not decompress ({exc})") from None
        elif coding == "deflate":
            try:
                try:
                    body = decompress_bounded(body, zlib.MAX_WBITS, MAX_DECODED_BODY_BYTES)
                except (zlib.error, EOFError):
                    body = decompress_bounded(body, -zlib.MAX_WBITS, MAX_DECODED_BODY_BYTES)
            except TooLarge as exc:
                raise BodyError(where, str(exc)) from None
            except (zlib.error, EOFError) as exc:
                if _is_text(body):
                    continue
                raise BodyError(where, f"deflate body does not decompress ({exc})") from None
        elif coding == "br":
            try:
                brotli = importlib.import_module("brotli")
            except ImportError:
                return body, False
            try:
                body = _brotli_bounded(brotli, body, MAX_DECODED_BODY_BYTES)
            except TooLarge as exc:
                raise BodyError(where, str(exc)) from None
            except Exception as exc:  # brotli.error is not a public name in every build
                if _is_text(body):
                    continue
                raise BodyError(where, f"brotli body does not decompress ({exc})") from None
        else:  # zstd, a redacted value, ...: leave it alone
            return body, False
    return body, True


def _decoded_headers(headers: dict[str, list[str]], body: bytes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, values in headers.items():
        lkey = key.lower()
        if lkey == "content-encoding":
            continue
        out[key] = [str(len(body))] if lkey == "content-length" else values
    return out


_META = "agentflows"
"""The key of this plugin's metadata in a stored response (``cassette._recorder.META_KEY``)."""


def _is_normal(raw: Any, first: str, body: str) -> bool:
    """Whether ``raw`` is a plain dict whose headers are already ``{str: [str]}`` with no content coding.

    The checks :func:`normalise_request` and :func:`normalise_response` make before returning ``raw``
    itself, as a replayed interaction is stored: no copy, no second decoding.
    """
    if type(raw) is not dict or first not in raw or body not in raw or "parsed_body" in raw:
        return False
    headers = raw.get("headers")
    if type(headers) is not dict:
        return False
    for key, values in headers.items():
        if type(key) is not str or type(values) is not list:
            return False
        if len(key) == 16 and key.lower() == "content-encoding":  # (the length first: no lower() for most)
            return False
        for value in values:
            if type(value) is not str:
                return False
    return True


def normalise_request(raw: Any) -> dict[str, Any]:
    """The normal form of a vcrpy request dict (see the module docstring).

    Args:
        raw: ``{"method", "uri", "headers", "body" | "parsed_body"}`` as loaded from a cassette.

    Raises:
        BodyError: A field is missing or has the wrong type, or a compressed body does not decompress.
    """
    if (
        _is_normal(raw, "method", "body")
        and type(raw["method"]) is str
        and raw["method"].isupper()
        and type(raw.get("uri")) is str
        and raw["uri"]
        and (raw["body"] is None or type(raw["body"]) is bytes)
    ):
        return raw  # type: ignore[no-any-return]  # already in normal form (a replayed request)
    if not isinstance(raw, Mapping):
        raise BodyError("request", f"expected a mapping, found {type(raw).__name__}")
    method = raw.get("method")
    uri = raw.get("uri")
    if not isinstance(method, str) or not method:
        raise BodyError("request.method", "missing or not a string")
    if not isinstance(uri, str) or not uri:
        raise BodyError("request.uri", "missing or not a string")
    headers = normalise_headers(raw.get("headers"), "request.headers")
    body: bytes | None
    if "parsed_body" in raw and raw.get("body") is None:
        body = _parsed_body(raw["parsed_body"], "request.parsed_body")
    else:
        value = raw.get("body")
        if isinstance(value, Mapping) and "string" in value:
            body = _to_bytes(value["string"], "request.body.string")
        else:
            body = _to_bytes(value, "request.body")
    codings = _content_codings(headers)
    if body is not None and codings:
        body, decoded = _decode_content(body, codings, "request.body")
        if decoded:
            headers = _decoded_headers(headers, body)
    return {"method": method.upper(), "uri": uri, "headers": headers, "body": body}


def normalise_response(raw: Any) -> dict[str, Any]:
    """The normal form of a vcrpy response dict (see the module docstring).

    Args:
        raw: ``{"status": {"code", "message"}, "headers", "body": {"string"}}``, or one of the variants in
            the module docstring, as loaded from a cassette.

    Raises:
        BodyError: A field is missing or has the wrong type, or a compressed body does not decompress.
    """
    if (
        _is_normal(raw, "status", "body")
        and type(raw["status"]) is dict
        and type(raw["status"].get("code")) is int
        and type(raw["status"].get("message")) is str
        and type(raw["body"]) is dict
        and type(raw["body"].get("string")) is bytes
        and (_META not in raw or type(raw[_META]) is dict)
    ):
        return raw  # type: ignore[no-any-return]  # already in normal form (a replayed response)
    if not isinstance(raw, Mapping):
        raise BodyError("response", f"expected a mapping, found {type(raw).__name__}")
    status = raw.get("status")
    message: Any = ""
    if isinstance(status, Mapping):
        code: Any = status.get("code")
        message = status.get("message") or ""
        code_where = "response.status.code"
    elif "status_code" in raw:  # vcrpy's old httpx format
        code = raw["status_code"]
        code_where = "response.status_code"
    else:
        raise BodyError("response.status", "missing: expected {code: int, message: str}")
    try:
        code_int = int(code)
    except (TypeError, ValueError):
        raise BodyError(code_where, f"expected an HTTP status code, found {code!r}") from None
    headers = normalise_headers(raw.get("headers"), "response.headers")
    body: bytes | None
    if "parsed_body" in raw and raw.get("body") is None:
        body = _parsed_body(raw["parsed_body"], "response.parsed_body")
    elif "body" in raw:
        value = raw["body"]
        if isinstance(value, Mapping):
            body = _to_bytes(value.get("string"), "response.body.string")
        else:
            body = _to_bytes(value, "response.body")
    else:
        body = _to_bytes(raw.get("content"), "response.content")
    body = body or b""
    codings = _content_codings(headers)
    if codings:
        body, decoded = _decode_content(body, codings, "response.body.string")
        if decoded:
            headers = _decoded_headers(headers, body)
    out: dict[str, Any] = {
        "status": {"code": code_int, "message": str(message)},
        "headers": headers,
        "body": {"string": body},
    }
    if isinstance(raw.get(_META), Mapping):
        out[_META] = dict(raw[_META])
    return out
