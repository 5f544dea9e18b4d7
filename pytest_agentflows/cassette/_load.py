"""Public read-only cassette loader: ``load_cassette(path) -> Cassette``.

Reads any vcrpy-format cassette and the variants found in other projects' suites:

- ``.yaml`` / ``.yml`` (libyaml's safe loader when available; ``!!binary`` bodies are bytes) and ``.json``;
- whole-file gzip (``.yaml.gz``, ``.json.gz``, or any file starting with the gzip magic);
- langchain's layout: top-level ``requests:`` and ``responses:`` lists instead of ``interactions:``;
- every body variant :mod:`pytest_agentflows.providers._body` normalises (gzip/deflate/br bodies,
  pydantic-ai's ``parsed_body``, old httpx ``content``, header values as strings or lists).

Unreadable input raises :class:`~pytest_agentflows.errors.CassetteError` naming the file and the place;
no other exception type escapes for bad file contents.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

from ..errors import CassetteError
from ..providers import call_from_normalised, parse_normalised
from ..providers._body import (
    BodyError,
    TooLarge,
    gunzip_bounded,
    json_or_none,
    normalise_request,
    normalise_response,
)
from ..runtime._models import ModelCall, Usage
from ._store import (
    MAX_DECOMPRESSED_CASSETTE_BYTES,
    recorded_metadata,
    syntax_error_place,
    syntax_error_reason,
)

__all__ = ["Cassette", "Interaction", "load_cassette"]

META_KEY = "agentflows"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Interaction:
    """One recorded request/response pair, in normal form.

    ``request`` is ``{"method": str, "uri": str, "headers": {name: [value, ...]}, "body": bytes | None}``
    and ``response`` is ``{"status": {"code": int, "message": str}, "headers": {name: [value, ...]},
    "body": {"string": bytes}}`` (plus ``"agentflows"`` metadata when recorded by this plugin). Bodies are
    decoded: compressed bodies decompressed (their ``Content-Encoding`` header dropped) and ``parsed_body``
    mappings turned back into JSON bytes.
    """

    index: int
    """Position in the cassette, from 0."""
    request: dict[str, Any]
    """The normalised vcrpy request dict."""
    response: dict[str, Any]
    """The normalised vcrpy response dict."""
    agent: str | None = None
    """Agent recorded for the call (``response.agentflows.agent``), ``None`` if absent."""
    latency_s: float = 0.0
    """Recorded latency in seconds (``response.agentflows.latency_s``), 0.0 if absent."""
    call: ModelCall | None = None
    """The model call this interaction is, or ``None`` (non-LLM host, non-2xx status, unknown API)."""

    @property
    def method(self) -> str:
        """HTTP method, upper case."""
        return str(self.request["method"])

    @property
    def uri(self) -> str:
        """Request URL."""
        return str(self.request["uri"])

    @property
    def status(self) -> int:
        """HTTP status code of the response."""
        return int(self.response["status"]["code"])

    @property
    def request_body(self) -> bytes | None:
        """Decoded request body, ``None`` if the request had none."""
        body: bytes | None = self.request["body"]
        return body

    @property
    def response_body(self) -> bytes:
        """Decoded response body (``b""`` when empty)."""
        body: bytes = self.response["body"]["string"]
        return body

    def request_json(self) -> Any:
        """The request body parsed as JSON, or ``None`` when it is empty or not JSON."""
        return json_or_none(self.request_body)

    def response_json(self) -> Any:
        """The response body parsed as JSON, or ``None`` (also for SSE streams)."""
        return json_or_none(self.response_body)

    @property
    def text(self) -> str | None:
        """The assistant text of a model call (streams reassembled), ``None`` for other interactions."""
        found = parse_normalised(self.request, self.response)
        return None if found is None else found[1].text


@dataclass(frozen=True)
class Cassette:
    """A loaded cassette (read-only).

    Token and price figures come from the responses' own usage fields, priced with genai-prices at each
    response's ``Date`` (see :mod:`pytest_agentflows._pricing`).
    """

    path: Path
    """The file that was read."""
    interactions: list[Interaction] = field(default_factory=list)
    """Every interaction, in file order."""
    calls: list[ModelCall] = field(default_factory=list)
    """The model calls: successful (2xx) interactions a provider adapter reads, in file order, with the
    recorded agent and latency."""

    @property
    def usage(self) -> Usage:
        """Sum of ``calls[*].usage``; ``cost_usd`` is ``None`` if any call has no known price."""
        return reduce(lambda a, b: a + b, (c.usage for c in self.calls), Usage())

    def __len__(self) -> int:
        return len(self.interactions)


def _read(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CassetteError(path, "", f"cannot open the file ({exc.strerror or exc})") from None
    name = path.name.lower()
    if name.endswith(".gz") or raw.startswith(_GZIP_MAGIC):
        try:
            raw = gunzip_bounded(raw, MAX_DECOMPRESSED_CASSETTE_BYTES, "the file")
        except TooLarge as exc:
            raise CassetteError(path, "", str(exc)) from None
        except (OSError, EOFError, zlib.error) as exc:
            raise CassetteError(path, "", f"the gzip file is truncated or corrupt ({exc})") from None
        name = name.removesuffix(".gz")
    if name.endswith(".json") or (not name.endswith((".yaml", ".yml")) and raw.lstrip().startswith(b"{")):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CassetteError(
                path, f"line {exc.lineno}, column {exc.colno}", f"invalid JSON ({exc.msg})"
            ) from None
        except (ValueError, RecursionError) as exc:  # bad UTF-8, too deep
            raise CassetteError(
                path, syntax_error_place(exc), f"invalid JSON ({syntax_error_reason(exc)})"
            ) from None
    return _read_yaml(path, raw)


def _read_yaml(path: Path, raw: bytes) -> Any:
    import yaml

    from ._store import yaml_text

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml_text(raw, lambda data: yaml.load(data, Loader=loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
            problem += " (only plain YAML and !!binary are read: python object tags are refused)"
        raise CassetteError(path, where, f"invalid YAML: {problem}") from None
    except (yaml.YAMLError, RecursionError, ValueError) as exc:  # ReaderError: a character YAML refuses
        raise CassetteError(
            path, syntax_error_place(exc), f"invalid YAML ({syntax_error_reason(exc)})"
        ) from None


def _pairs(path: Path, data: Any) -> list[tuple[str, str, Any, Any]]:
    """``(request place, response place, request, response)`` for each interaction."""
    if data is None:
        raise CassetteError(path, "", "the file is empty (a cassette has an 'interactions' list)")
    if not isinstance(data, dict):
        raise CassetteError(
            path, "top level", f"expected a mapping with an 'interactions' list, found {type(data).__name__}"
        )
    if "interactions" in data:
        version = data.get("version", 1)
        if version != 1:
            raise CassetteError(
                path, "version", f"unsupported cassette format version {version!r} (vcrpy writes 1)"
            )
        items = data["interactions"]
        if items is None:
            return []
        if not isinstance(items, list):
            raise CassetteError(path, "interactions", f"expected a list, found {type(items).__name__}")
        pairs = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "request" not in item or "response" not in item:
                raise CassetteError(
                    path, f"interactions[{i}]", "expected a mapping with 'request' and 'response'"
                )
            pairs.append((f"interactions[{i}]", f"interactions[{i}]", item["request"], item["response"]))
        return pairs
    if "requests" in data and "responses" in data:  # langchain_tests' CustomSerializer
        requests, responses = data["requests"], data["responses"]
        if not isinstance(requests, list) or not isinstance(responses, list):
            raise CassetteError(path, "requests/responses", "expected two lists")
        if len(requests) != len(responses):
            raise CassetteError(
                path, "requests/responses", f"{len(requests)} requests but {len(responses)} responses"
            )
        return [
            (f"requests[{i}]", f"responses[{i}]", q, r)
            for i, (q, r) in enumerate(zip(requests, responses, strict=True))
        ]
    raise CassetteError(
        path,
        "top level",
        "no 'interactions' list (nor langchain's 'requests'/'responses'): not a vcrpy cassette",
    )


def _where(request_place: str, response_place: str, field_name: str) -> str:
    head, _, rest = field_name.partition(".")
    if request_place == response_place:  # interactions[i].request.body
        return f"{request_place}.{field_name}"
    place = request_place if head == "request" else response_place
    return f"{place}.{rest}" if rest else place


def _metadata(path: Path, place: str, response: dict[str, Any]) -> tuple[str | None, float]:
    return recorded_metadata(response, path, place)


def load_cassette(path: str | os.PathLike[str]) -> Cassette:
    """Read a cassette file.

    Args:
        path: A ``.yaml``/``.yml``/``.json`` cassette, optionally gzip-compressed (``.yaml.gz``), in vcrpy's
            format (``interactions: [{request, response}]``) or langchain's (``requests:``/``responses:``).

    Returns:
        The :class:`Cassette`: its interactions with decoded bodies, and the model calls among them (usage
        from each response's own usage fields, price from genai-prices, agent and latency from the
        ``agentflows`` metadata this plugin records).

    Raises:
        CassetteError: The file cannot be opened, is not valid YAML/JSON or gzip, is not a cassette, or an
            interaction has a malformed field or a compressed body that does not decompress; the message
            names the file and the place (line and column, or ``interactions[i].field``).
    """
    file = Path(os.fspath(path))
    data = _read(file)
    interactions: list[Interaction] = []
    calls: list[ModelCall] = []
    for index, (req_place, resp_place, raw_request, raw_response) in enumerate(_pairs(file, data)):
        try:
            request = normalise_request(raw_request)
            response = normalise_response(raw_response)
        except BodyError as exc:
            raise CassetteError(file, _where(req_place, resp_place, exc.where), exc.reason) from None
        agent, latency = _metadata(
            file, resp_place + ("" if req_place != resp_place else ".response"), response
        )
        try:
            call = call_from_normalised(request, response, agent=agent, latency_s=latency)
        except Exception as exc:  # an adapter meeting a shape it does not expect: still a CassetteError
            place = _where(req_place, resp_place, "response.body")
            raise CassetteError(
                file, place, f"cannot read the model response ({type(exc).__name__}: {exc})"
            ) from exc
        interactions.append(Interaction(index, request, response, agent, latency, call))
        if call is not None:
            calls.append(call)
    return Cassette(path=file, interactions=interactions, calls=calls)
