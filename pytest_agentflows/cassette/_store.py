"""Cassette files: vcrpy's format, read with precise errors and written atomically.

vcrpy's own persister treats an unreadable cassette as empty (and may then overwrite it) and writes with a
plain ``open("w")``. This persister raises :class:`~pytest_agentflows.CassetteError` naming the file and the
place instead, and writes to a temporary file in the same directory that replaces the cassette in one
``os.replace``: a crash or a failing recording never leaves a truncated cassette behind.

Temporary files are named ``.<file name>.<random>.tmp``: hidden, and with no cassette extension, so
neither our loader nor vcrpy nor a ``*.yaml`` glob ever takes one for a cassette. Every write holds an
advisory lock on the file's directory (:func:`directory_lock`), so one left by a killed process (no live
writer can hold it) is removed the next time the same file is written.

:class:`GuardedPersister` (one per cassette use) also detects two writers of one cassette: it remembers the
file it loaded and, at save time, under an advisory lock on the cassette's directory, refuses to replace a
file that changed since (:class:`~pytest_agentflows.errors.CassetteConflictError`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CassetteConflictError, CassetteError, CassetteSaveError
from . import _parsed

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock, the change check still runs
    fcntl = None  # type: ignore[assignment]


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
    the temporary file is removed and ``path`` is untouched. Runs under :func:`directory_lock`, and first
    removes the temporary files of ``path`` that a killed writer left behind.
    """
    target = Path(path)
    with directory_lock(target.parent):
        _write_locked(target, data)


def _write_locked(target: Path, data: bytes) -> None:
    """:func:`atomic_write_bytes` for a caller that holds :func:`directory_lock` on ``target.parent``."""
    for stale in temp_files_of(target):  # no live writer: every writer of ``target`` holds the lock
        stale.unlink(missing_ok=True)
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


def temp_files_of(path: str | os.PathLike[str]) -> list[Path]:
    """Temporary files :func:`atomic_write_bytes` creates for ``path`` (``.<name>.*.tmp`` beside it)."""
    target = Path(path)
    if not target.parent.is_dir():
        return []
    return sorted(target.parent.glob(f".{glob_escape(target.name)}.*.tmp"))


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters (``[``, ``*``, ``?``) escaped; test names contain ``[...]``."""
    import glob

    return glob.escape(name)


@contextlib.contextmanager
def directory_lock(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive advisory lock (``flock``) on ``directory`` (created if missing) while inside.

    Serialises cassette saves across processes (pytest-xdist workers) without a lock file. A no-op where
    ``fcntl`` does not exist (Windows).
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - a directory we may write but not read: no lock
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Fingerprint:
    """What a cassette file was when it was loaded: enough to tell whether someone replaced it since."""

    size: int
    """Bytes."""
    mtime_ns: int
    """Modification time, nanoseconds."""
    inode: int
    """Inode number (``os.replace`` always gives a new one)."""
    sha256: str
    """Hex digest of the content (the arbiter when the metadata differ)."""

    @classmethod
    def of(cls, raw: bytes, stat: os.stat_result) -> Fingerprint:
        """The fingerprint of ``raw``, read from a file whose ``fstat`` is ``stat``."""
        return cls(stat.st_size, stat.st_mtime_ns, stat.st_ino, hashlib.sha256(raw).hexdigest())

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> tuple[bytes, Fingerprint] | None:
        """The content and fingerprint of ``path`` now, or ``None`` when it does not exist."""
        try:
            with open(path, "rb") as fh:
                stat = os.fstat(fh.fileno())
                raw = fh.read()
        except FileNotFoundError:
            return None
        return raw, cls.of(raw, stat)

    def matches(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` still holds the content this fingerprint was taken of."""
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return False
        if (stat.st_size, stat.st_mtime_ns, stat.st_ino) == (self.size, self.mtime_ns, self.inode):
            return True
        now = Fingerprint.read(path)
        return now is not None and now[1].sha256 == self.sha256


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def syntax_error_place(exc: BaseException) -> str:
    """``"line L, column C"`` (or ``"byte N"``) of a YAML or JSON syntax error, ``""`` when unknown."""
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno}, column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return f"byte {exc.start}"
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}"
    position = getattr(exc, "position", None)  # yaml.reader.ReaderError: a character YAML refuses
    if isinstance(position, int) and position >= 0:
        return f"byte {position}"
    return ""


def syntax_error_reason(exc: BaseException) -> str:
    """What a YAML or JSON syntax error says, without the parser's own position report."""
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None)
    if problem:
        return str(problem)
    reason = getattr(exc, "reason", None)  # ReaderError, UnicodeDecodeError
    if reason:
        return str(reason)
    return f"{type(exc).__name__}: {exc}"


def _text(value: Any, path: str, where: str) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise CassetteError(path, where, f"text that is not encodable as UTF-8 ({exc.reason})") from None
    elif not isinstance(value, bytes | bytearray):
        raise CassetteError(path, where, f"expected text or !!binary bytes, found {type(value).__name__}")


def _normalise_headers(part: dict[str, Any], path: str, where: str, *, response: bool) -> None:
    """``headers`` as ``{str: [str, ...]}``: a single value becomes a list, numbers and bytes become text.

    Response header values must be ASCII: the replayed response goes through the HTTP client's own header
    parser (httpx refuses anything else).
    """
    raw = part.get("headers")
    if raw is None:
        part["headers"] = {}
        return
    if not isinstance(raw, dict):
        raise CassetteError(path, f"{where}.headers", f"expected a mapping, found {type(raw).__name__}")
    headers: dict[str, list[str]] = {}
    for name, value in raw.items():
        # the common case, checked cheaply: an ASCII name and a list of ASCII strings (valid as they are);
        # a one-value list, what nearly every header is, without the generator
        if (
            type(name) is str
            and type(value) is list
            and name
            and name.isascii()
            and (
                type(value[0]) is str and value[0].isascii()
                if len(value) == 1
                else all(type(item) is str and item.isascii() for item in value)
            )
        ):
            headers[name] = value
            continue
        if not isinstance(name, str) or not name or (response and not name.isascii()):
            raise CassetteError(path, f"{where}.headers", f"header name {name!r} is not ASCII text")
        values = value if isinstance(value, list) else [value]
        out = []
        for item in values:
            if isinstance(item, bool) or not isinstance(item, str | bytes | int | float):
                raise CassetteError(
                    path,
                    f"{where}.headers.{name}",
                    f"expected text or a list of text, found {type(item).__name__}",
                )
            text = item.decode("latin-1") if isinstance(item, bytes) else str(item)
            _text(text, path, f"{where}.headers.{name}")
            if response and not text.isascii():
                raise CassetteError(
                    path,
                    f"{where}.headers.{name}",
                    f"{text[:40]!r} is not ASCII, which HTTP clients refuse in a replayed response "
                    "(re-record it, or edit the value)",
                )
            out.append(text)
        headers[name] = out
    encodings = [name for name in headers if name.lower() == "content-encoding"]
    if response and len(encodings) > 1:  # which one the client decodes by is anyone's guess
        raise CassetteError(
            path, f"{where}.headers", f"Content-Encoding given {len(encodings)} times: {encodings}"
        )
    part["headers"] = headers


def _normalise_body(part: dict[str, Any], path: str, where: str, *, response: bool) -> None:
    if "body" not in part and "parsed_body" in part:  # pydantic-ai's serializer
        try:
            part["body"] = {"string": json.dumps(part.pop("parsed_body"), default=_json_default)}
        except (TypeError, ValueError, RecursionError) as exc:
            raise CassetteError(path, f"{where}.parsed_body", f"cannot turn it into JSON ({exc})") from None
    elif "body" not in part and "content" in part:  # old vcrpy httpx cassettes
        part["body"] = {"string": part.pop("content")}
    body = part.get("body")
    if isinstance(body, dict):
        if "string" not in body:
            raise CassetteError(path, f"{where}.body", "a body mapping needs a 'string' key")
        if body["string"] is None:
            body["string"] = ""
        _text(body["string"], path, f"{where}.body.string")
    elif body is None:
        if response:
            part["body"] = {"string": ""}
        else:
            part["body"] = None
    else:
        _text(body, path, f"{where}.body")
        if response:
            part["body"] = {"string": body}


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON")


def _normalise_status(resp: dict[str, Any], path: str, where: str) -> None:
    """``status`` as ``{"code": int 100-599, "message": ASCII text}`` (also from the old ``status_code``)."""
    status = resp.get("status")
    if status is None and "status_code" in resp:  # old vcrpy httpx cassettes
        status = resp["status"] = {"code": resp.pop("status_code"), "message": ""}
    if not isinstance(status, dict) or "code" not in status:
        raise CassetteError(path, f"{where}.status", "needs a mapping with 'code'")
    code = status["code"]
    if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
        raise CassetteError(path, f"{where}.status.code", f"expected an HTTP status code, found {code!r}")
    message = status.get("message")
    if message is None:
        message = status["message"] = ""
    if not isinstance(message, str) or not message.isascii():
        raise CassetteError(
            path, f"{where}.status.message", f"expected an ASCII reason phrase, found {message!r}"
        )


def recorded_metadata(
    resp: dict[str, Any], path: str | os.PathLike[str], where: str
) -> tuple[str | None, float]:
    """Agent name and latency (seconds) of a response's ``agentflows`` metadata; ``(None, 0.0)`` without it.

    Args:
        resp: A response dict as read from a cassette.
        path: The cassette file, for error messages.
        where: The response's place in the file (``"interactions[3].response"``).

    Raises:
        CassetteError: the metadata is not a mapping, ``agent`` is not a string or null, or ``latency_s``
            is not a finite number >= 0.
    """
    meta = resp.get("agentflows")
    if meta is None:
        return None, 0.0
    if not isinstance(meta, dict):
        raise CassetteError(path, f"{where}.agentflows", f"expected a mapping, found {type(meta).__name__}")
    agent = meta.get("agent")
    if agent is not None and not isinstance(agent, str):
        raise CassetteError(path, f"{where}.agentflows.agent", f"expected a string or null, found {agent!r}")
    latency = meta.get("latency_s")
    if latency is None:
        return agent, 0.0
    if (
        isinstance(latency, bool)
        or not isinstance(latency, int | float)
        or not math.isfinite(latency)
        or latency < 0
    ):
        raise CassetteError(
            path,
            f"{where}.agentflows.latency_s",
            f"expected a non-negative number of seconds, found {latency!r}",
        )
    return agent, float(latency)


def parse_cassette(text: str, path: str) -> dict[str, Any]:
    """Parse and validate vcrpy cassette ``text`` into a dict with an ``interactions`` list.

    Every field vcrpy and the replay use is checked for its type (and normalised: single header values
    become lists, a missing response body an empty one), so that a cassette that loads also replays.

    Raises:
        CassetteError: naming ``path`` and the place of the first problem (line and column for syntax
            errors, ``interactions[i].field`` for the rest).
    """
    import yaml
    from vcr.serializers import yamlserializer

    try:
        data = json.loads(text) if path.endswith(".json") else yaml_text(text, yamlserializer.deserialize)
    except (ValueError, RecursionError, yaml.YAMLError) as exc:
        fmt = "JSON" if path.endswith(".json") else "YAML"
        raise CassetteError(
            path, syntax_error_place(exc), f"invalid {fmt}: {syntax_error_reason(exc)}"
        ) from None
    if not isinstance(data, dict):
        raise CassetteError(path, "top level", f"expected a mapping, found {type(data).__name__}")
    version = data.get("version", 1)
    if version != 1 or isinstance(version, bool):
        raise CassetteError(
            path, "version", f"unsupported cassette format version {version!r} (vcrpy writes 1)"
        )
    interactions = data.get("interactions")
    if not isinstance(interactions, list):
        raise CassetteError(path, "top level", "no 'interactions' list (is this a vcrpy cassette?)")
    for i, item in enumerate(interactions):
        where = f"interactions[{i}]"
        if not isinstance(item, dict):
            raise CassetteError(path, where, "an interaction must be a mapping")
        req, resp = item.get("request"), item.get("response")
        if not isinstance(req, dict):
            raise CassetteError(path, f"{where}.request", "needs a mapping with 'method' and 'uri'")
        for key in ("method", "uri"):
            if not isinstance(req.get(key), str) or not req[key]:
                raise CassetteError(path, f"{where}.request.{key}", f"missing or not text: {req.get(key)!r}")
            _text(req[key], path, f"{where}.request.{key}")
        if not isinstance(resp, dict):
            raise CassetteError(path, f"{where}.response", "needs a mapping")
        _normalise_status(resp, path, f"{where}.response")
        _normalise_headers(req, path, f"{where}.request", response=False)
        _normalise_headers(resp, path, f"{where}.response", response=True)
        _normalise_body(req, path, f"{where}.request", response=False)
        _normalise_body(resp, path, f"{where}.response", response=True)
        recorded_metadata(resp, path, f"{where}.response")
        unknown = sorted(set(req) - {"method", "uri", "headers", "body"})
        if unknown:  # vcrpy's Request(**request) takes exactly these
            raise CassetteError(path, f"{where}.request", f"unknown key(s) {', '.join(map(repr, unknown))}")
    return data


def deserialize(text: str, *, is_json: bool) -> Any:
    """A cassette file's text as data, read by vcrpy's own JSON or YAML serializer.

    Raises:
        json.JSONDecodeError, yaml.YAMLError: for text that is not valid JSON / YAML.
        ExpansionError: YAML whose aliases expand past the budget (:func:`yaml_text`).
    """
    from vcr.serializers import jsonserializer, yamlserializer

    return jsonserializer.deserialize(text) if is_json else yaml_text(text, yamlserializer.deserialize)


def serialize(data: Any, *, is_json: bool) -> str:
    """Cassette data as the text vcrpy's own JSON or YAML serializer writes."""
    from vcr.serializers import jsonserializer, yamlserializer

    text: str = jsonserializer.serialize(data) if is_json else yamlserializer.serialize(data)
    return text


MAX_DECOMPRESSED_CASSETTE_BYTES = 256 * 2**20
"""A gzip-compressed cassette (``.yaml.gz``) that decompresses to more than this (256 MiB) is refused."""
MAX_ALIAS_EXPANSION = 16
"""YAML anchors and aliases may make a document's data at most this many times the size of its text
(at least :data:`MIN_ALIAS_BUDGET`); a "billion laughs" file (750 bytes that expand to gigabytes) is
refused instead of exhausting memory and time in whatever walks the data."""
MIN_ALIAS_BUDGET = 64 * 2**20


class ExpansionError(ValueError):
    """YAML data whose aliases expand past the budget (see :data:`MAX_ALIAS_EXPANSION`)."""

    def __init__(self, budget: int) -> None:
        self.problem = self.reason = (
            f"its aliases (*name) expand the data to more than {budget // 2**20} MiB "
            "(a 'billion laughs' document); cassettes written by vcrpy never need that"
        )
        super().__init__(self.problem)


def expanded_size(data: Any, budget: int) -> int:
    """The size of ``data`` with every shared (aliased) container counted at each place it appears.

    Strings and bytes count their length, other scalars 8, a container 8 plus its items (and keys).
    Linear in the number of distinct objects (each container's size is computed once).

    Raises:
        ExpansionError: the size exceeds ``budget`` (stops as soon as one container does).
    """
    memo: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        item, done = stack.pop()
        if not isinstance(item, dict | list | tuple) or id(item) in memo:
            continue
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else list(item)
        if not done:
            stack.append((item, True))
            stack.extend((c, False) for c in children if isinstance(c, dict | list | tuple))
            continue
        size = 8
        for c in children:
            if isinstance(c, dict | list | tuple):
                size += memo.get(id(c), 0)
            else:
                size += len(c) + 1 if isinstance(c, str | bytes) else 8
        if size > budget:
            raise ExpansionError(budget)
        memo[id(item)] = size
    return memo.get(id(data), 8)


def yaml_text(data: str | bytes, parse: Callable[[Any], Any]) -> Any:
    """YAML ``data`` read by the fast path for vcrpy's layout (:mod:`._yaml_load`), else by ``parse(data)``.

    The fast path gives PyYAML's safe loader's result or steps aside; ``parse`` (PyYAML) then reads the
    data and raises its errors. A document with anchors is checked against the alias budget.

    Raises:
        ExpansionError: (a ``ValueError``) the document's aliases expand past the budget.
    """
    from ._yaml_load import Unsupported, load

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return load(text)
    except (Unsupported, UnicodeDecodeError):
        result = parse(data)
    has_anchor = b"&" in data if isinstance(data, bytes) else "&" in data
    if has_anchor:  # no anchor, no alias: nothing can expand
        expanded_size(result, max(MIN_ALIAS_BUDGET, MAX_ALIAS_EXPANSION * len(data)))
    return result


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

        path = os.fspath(cassette_path)
        try:
            raw = Path(path).read_bytes()
        except FileNotFoundError:
            raise CassetteNotFoundError() from None
        except OSError as exc:
            raise CassetteError(path, "", f"cannot open the file ({exc})") from exc
        return cls.parse_bytes(raw, path)

    @staticmethod
    def parse_bytes(raw: bytes, path: str) -> tuple[Any, ...]:
        """``(requests, responses[, metadata])`` parsed from ``raw``, the bytes of cassette ``path``."""
        from vcr.persisters.filesystem import CassetteNotFoundError
        from vcr.serializers import compat

        from ._request import StoredRequest

        if raw.startswith(b"\x1f\x8b"):
            raise CassetteError(
                path,
                "",
                "the file is gzip-compressed; the agentflow fixture replays plain .yaml/.json cassettes "
                "(decompress it with gunzip; load_cassette() reads it as it is)",
            )
        cache = _parsed.active()
        data = cache.get(path, raw) if cache is not None else None  # (only a file that parsed has one)
        if data is None:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CassetteError(path, f"byte {exc.start}", f"not UTF-8 text ({exc.reason})") from None
            if not text.strip():
                raise CassetteNotFoundError()
            data = parse_cassette(text, path)
            if cache is not None:
                cache.put(path, raw, data)
        requests, responses = [], []
        for i, item in enumerate(data["interactions"]):
            try:
                requests.append(StoredRequest(**item["request"]))
                responses.append(compat.convert_to_bytes(item["response"]))
            except Exception as exc:  # parse_cassette checked the types: a safety net
                raise CassetteError(path, f"interactions[{i}]", f"{type(exc).__name__}: {exc}") from None
        if data.get("metadata"):
            return requests, responses, data["metadata"]
        return requests, responses

    @staticmethod
    def save_cassette(
        cassette_path: str | os.PathLike[str], cassette_dict: dict[str, Any], serializer: Any
    ) -> None:
        """Serialise with vcrpy and replace the file atomically."""
        atomic_write_text(cassette_path, _serialize(cassette_path, cassette_dict, serializer))


def _serialize(path: str | os.PathLike[str], cassette_dict: dict[str, Any], serializer: Any) -> str:
    """vcrpy's ``serialize``; what it cannot write is a :class:`CassetteSaveError` naming the file and place.

    vcrpy's JSON serializer raises a ``TypeError`` for a body that is not UTF-8 text (it has no bytes
    type); its traceback would print the whole cassette dict. Nothing is written.
    """
    from vcr.serialize import serialize

    try:
        return str(serialize(cassette_dict, serializer))
    except (TypeError, ValueError, UnicodeError) as exc:
        where = ""
        for side in ("requests", "responses"):
            for index, part in enumerate(cassette_dict.get(side) or []):
                body = part.get("body") if isinstance(part, dict) else getattr(part, "body", None)
                if isinstance(body, dict):
                    body = body.get("string")
                if isinstance(body, bytes | bytearray):
                    try:
                        bytes(body).decode("utf-8")
                    except UnicodeDecodeError:
                        kind = "request" if side == "requests" else "response"
                        where = where or f"interactions[{index}].{kind}.body"
        format_name = "JSON" if "json" in getattr(serializer, "__name__", "") else "its format"
        raise CassetteSaveError(
            path,
            where,
            f"it cannot be written in {format_name} ({type(exc).__name__}): a body that is not UTF-8 "
            "text cannot be stored in vcrpy's JSON format; record this test into a YAML cassette "
            "(cassette='name.yaml', or ini agentflows_cassette_format = yaml), which stores it as !!binary",
        ) from None


class GuardedPersister(AtomicPersister):
    """The persister of one cassette use: atomic writes that never replace a file changed by someone else.

    vcrpy accepts a persister instance; :class:`~pytest_agentflows.cassette._recorder.Recorder` makes one per
    activation. ``load_cassette`` remembers the :class:`Fingerprint` of the bytes it parsed (or that the file
    did not exist); ``save_cassette``, under :func:`directory_lock`, checks that the file is still that one
    before replacing it, and removes temporary files a killed writer left behind.

    Args:
        test_id: Node id of the test recording (for the error message).
        guard: Fingerprint files on load (``False`` for replay-only flows, which never save).
    """

    def __init__(self, test_id: str = "", *, guard: bool = True) -> None:
        self.test_id = test_id
        self.guard = guard
        self.loaded: Fingerprint | None = None
        """Fingerprint of the file as loaded; ``None`` when it did not exist."""
        self.recorded = 0
        """Set by the cassette before saving: interactions recorded now (for the conflict message)."""

    def load_cassette(  # type: ignore[override]
        self, cassette_path: str | os.PathLike[str], serializer: Any
    ) -> tuple[Any, ...]:
        """Like :meth:`AtomicPersister.load_cassette`, remembering what was read.

        Raises:
            vcr.persisters.filesystem.CassetteNotFoundError: when the file does not exist or is empty.
            CassetteError: when it exists but cannot be read.
        """
        if not self.guard:
            return AtomicPersister.load_cassette(cassette_path, serializer)
        from vcr.persisters.filesystem import CassetteNotFoundError

        path = os.fspath(cassette_path)
        try:
            found = Fingerprint.read(path)
        except OSError as exc:
            raise CassetteError(path, "", f"cannot open the file ({exc})") from exc
        if found is None:
            raise CassetteNotFoundError()
        raw, self.loaded = found
        return self.parse_bytes(raw, path)

    def save_cassette(  # type: ignore[override]
        self, cassette_path: str | os.PathLike[str], cassette_dict: dict[str, Any], serializer: Any
    ) -> None:
        """Serialise with vcrpy; replace the file atomically unless it changed since it was loaded.

        Raises:
            CassetteConflictError: when another writer replaced or created the file meanwhile (the file is
                left as that writer made it).
        """
        data = _serialize(cassette_path, cassette_dict, serializer).encode("utf-8")
        target = Path(cassette_path)
        with directory_lock(target.parent):
            if target.exists() and (self.loaded is None or not self.loaded.matches(target)):
                raise CassetteConflictError(target, self.test_id, self.recorded)
            _write_locked(target, data)
            self.loaded = Fingerprint.of(data, os.stat(target))  # what was just written, not read back
