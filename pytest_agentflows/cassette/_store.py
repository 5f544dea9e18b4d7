"""Cassette files: vcrpy's format, read with precise errors and written atomically.

vcrpy's own persister treats an unreadable cassette as empty (and may then overwrite it) and writes with a
plain ``open("w")``. This persister raises :class:`~pytest_agentflows.CassetteError` naming the file and the
place instead, and writes to a temporary file in the same directory that replaces the cassette in one
``os.replace``: a crash or a failing recording never leaves a truncated cassette behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import CassetteError


def _file_mode(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + ``os.replace``), creating parent directories.

    The file keeps its permissions when it exists (new files get ``0666`` minus the umask); on any error
    the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp, _file_mode(target))  # mkstemp creates 0600; keep the file's (or the umask's) mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _normalise_body(part: dict[str, Any], path: str, where: str) -> None:
    if "body" not in part and "parsed_body" in part:  # pydantic-ai's serializer
        part["body"] = {"string": json.dumps(part.pop("parsed_body"))}
    elif "body" not in part and "content" in part:  # old vcrpy httpx cassettes
        part["body"] = {"string": part.pop("content")}
    body = part.get("body")
    if isinstance(body, dict) and "string" not in body:
        raise CassetteError(path, f"{where}.body", "a body mapping needs a 'string' key")


def parse_cassette(text: str, path: str) -> dict[str, Any]:
    """Parse and validate vcrpy cassette ``text`` into a dict with an ``interactions`` list.

    Raises:
        CassetteError: naming ``path`` and the place of the first problem.
    """
    from vcr.serializers import yamlserializer

    try:
        data = json.loads(text) if path.endswith(".json") else yamlserializer.deserialize(text)
    except Exception as exc:  # yaml.YAMLError, ValueError, constructor errors
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise CassetteError(path, where, f"not valid YAML/JSON ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise CassetteError(path, "top level", f"expected a mapping, found {type(data).__name__}")
    interactions = data.get("interactions")
    if not isinstance(interactions, list):
        raise CassetteError(path, "top level", "no 'interactions' list (is this a vcrpy cassette?)")
    for i, item in enumerate(interactions):
        where = f"interactions[{i}]"
        if not isinstance(item, dict):
            raise CassetteError(path, where, "an interaction must be a mapping")
        req, resp = item.get("request"), item.get("response")
        if not isinstance(req, dict) or not isinstance(req.get("uri"), str) or not req.get("method"):
            raise CassetteError(path, f"{where}.request", "needs a mapping with 'method' and 'uri'")
        if not isinstance(resp, dict):
            raise CassetteError(path, f"{where}.response", "needs a mapping")
        status = resp.get("status")
        if "status_code" not in resp and (not isinstance(status, dict) or "code" not in status):
            raise CassetteError(path, f"{where}.response.status", "needs a mapping with 'code'")
        _normalise_body(req, path, f"{where}.request")
        _normalise_body(resp, path, f"{where}.response")
        req.setdefault("headers", {})
        req.setdefault("body", None)
        resp.setdefault("headers", {})
    return data


class AtomicPersister:
    """vcrpy persister: strict loading (:class:`CassetteError`) and atomic saving."""

    @classmethod
    def load_cassette(cls, cassette_path: str | os.PathLike[str], serializer: Any) -> tuple[Any, ...]:
        """Return ``(requests, responses[, metadata])`` as vcrpy expects.

        Raises:
            vcr.persisters.filesystem.CassetteNotFoundError: when the file does not exist or is empty.
            CassetteError: when it exists but cannot be read.
        """
        from vcr.persisters.filesystem import CassetteNotFoundError
        from vcr.request import Request
        from vcr.serializers import compat

        path = os.fspath(cassette_path)
        try:
            raw = Path(path).read_bytes()
        except FileNotFoundError:
            raise CassetteNotFoundError() from None
        except OSError as exc:
            raise CassetteError(path, "", f"cannot open the file ({exc})") from exc
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CassetteError(path, f"byte {exc.start}", "not UTF-8 text") from exc
        if not text.strip():
            raise CassetteNotFoundError()
        data = parse_cassette(text, path)
        requests, responses = [], []
        for i, item in enumerate(data["interactions"]):
            try:
                requests.append(Request._from_dict(item["request"]))
                responses.append(compat.convert_to_bytes(item["response"]))
            except Exception as exc:
                raise CassetteError(path, f"interactions[{i}]", f"{type(exc).__name__}: {exc}") from exc
        if data.get("metadata"):
            return requests, responses, data["metadata"]
        return requests, responses

    @staticmethod
    def save_cassette(
        cassette_path: str | os.PathLike[str], cassette_dict: dict[str, Any], serializer: Any
    ) -> None:
        """Serialise with vcrpy and replace the file atomically."""
        from vcr.serialize import serialize

        atomic_write_text(cassette_path, serialize(cassette_dict, serializer))
