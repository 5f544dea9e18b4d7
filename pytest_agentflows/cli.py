"""The ``agentflows`` command: look into cassettes and scrub secrets from them.

``agentflows inspect CASSETTE...``
    A table of each cassette's interactions (agent, provider, model, input/output tokens, USD, recorded
    latency in seconds, streamed) and its totals; under each model call, one ``tool call:`` line per tool
    call it asked for (name and JSON arguments, cut to 100 characters). A call whose response reported no
    usage shows ``no-usage`` as its USD. Query strings and URL credentials are never printed.

``agentflows redact [--check] [--header NAME] [--body-key KEY] [--query NAME] PATH...``
    Scrub secrets from existing cassettes in place, with the same rules the recorder applies (see
    :mod:`pytest_agentflows.cassette._redact`): secret request and response headers, secret query
    parameters and URL credentials, the given JSON body keys, the values of secret-named environment
    variables and the echoes of removed secret values anywhere in the file. PATH is a
    file or a directory (searched recursively for ``*.yaml``, ``*.yml``, ``*.json`` and their ``.gz``
    forms). A file that changes is rewritten atomically, in the format vcrpy writes (its YAML or JSON
    serializer), gzip-compressed again if it was; an unchanged file is not touched. For each file the
    command prints what it removed, as counts by kind, never the values. ``--check`` only reports.

Exit status: 0 on success; 1 when ``--check`` finds something to remove; 2 when a file cannot be read or
written (the message names the file and the reason: also a compression bomb, a ``.gz`` file or a body that
decompresses past its limit, or a YAML document whose aliases expand past theirs) or the command line is
wrong.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

__all__ = ["main"]

PROG = "agentflows"
CASSETTE_SUFFIXES = (".yaml", ".yml", ".json", ".yaml.gz", ".yml.gz", ".json.gz")
"""File names ``redact`` picks up when searching a directory."""
PROGRESS_ABOVE = 20
"""``redact`` prints ``[i/n] path`` progress lines on stderr when it handles more files than this."""

EXIT_OK, EXIT_CHANGES, EXIT_ERROR = 0, 1, 2
_GZIP_MAGIC = b"\x1f\x8b"


class _Failure(Exception):
    """A file that cannot be handled: ``str(exc)`` is the reason (never file contents)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect and redact pytest-agentflows (vcrpy-format) cassettes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    inspect = sub.add_parser(
        "inspect",
        help="print a table of a cassette's interactions and totals",
        description="Print each interaction (agent, provider, model, input/output tokens, USD, recorded "
        "latency in seconds, streamed) and the cassette's totals.",
    )
    inspect.add_argument("cassettes", nargs="+", metavar="CASSETTE", help="cassette file (.yaml, .json, .gz)")
    redact = sub.add_parser(
        "redact",
        help="scrub secrets from existing cassettes in place",
        description="Remove secret headers and query parameters, replace secret JSON body keys and "
        "secret environment values, rewriting changed files atomically. Prints counts, never values.",
    )
    redact.add_argument("paths", nargs="+", metavar="PATH", help="cassette file or directory (recursive)")
    redact.add_argument("--check", action="store_true", help="only report; exit 1 if anything would change")
    redact.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME",
        help="extra header name to remove (repeatable; the built-in list always applies)",
    )
    redact.add_argument(
        "--body-key",
        action="append",
        default=[],
        metavar="KEY",
        help="JSON body key whose value is replaced by <REDACTED> (repeatable)",
    )
    redact.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="NAME",
        help="extra query parameter to remove (repeatable; key, api_key, token, ... always apply)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``agentflows`` command.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status (see the module docstring).
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code or 0)
    if args.command == "inspect":
        return _inspect(args.cassettes, sys.stdout, sys.stderr)
    return _redact(
        args.paths,
        check=args.check,
        headers=args.header,
        body_keys=args.body_key,
        query=args.query,
        out=sys.stdout,
        err=sys.stderr,
    )


# -- tables ----------------------------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: frozenset[int]) -> list[str]:
    """Columns padded to width (``left`` ones left-aligned, others right-aligned); the last is not padded."""
    widths = [max([len(header[i]), *(len(r[i]) for r in rows)]) for i in range(len(header))]
    last = len(header) - 1

    def fmt(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            if i == last:
                out.append(cell)
            else:
                out.append(cell.ljust(widths[i]) if i in left else cell.rjust(widths[i]))
        return "  ".join(out).rstrip()

    return [fmt(header), *(fmt(r) for r in rows)]


def _usd(value: float | None) -> str:
    return "$?" if value is None else f"${value:.6f}"


# -- inspect ---------------------------------------------------------------------------------------------
INSPECT_COLUMNS = (
    "#",
    "agent",
    "provider",
    "model",
    "in tok",
    "out tok",
    "USD",
    "latency s",
    "streamed",
    "request",
)


def _request_label(method: str, uri: str, status: int) -> str:
    parts = urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[-1]  # never user:password@ (a cassette not recorded by us)
    return f"{method} {host}{parts.path or '/'} {status}"  # no query: it may hold a key


def _exhausted(exc: BaseException) -> str:
    what = "memory" if isinstance(exc, MemoryError) else "the stack (nested too deeply)"
    return f"reading the file exhausted {what}; the file was left untouched"


def _inspect(paths: Sequence[str], out: TextIO, err: TextIO) -> int:
    from .cassette._load import load_cassette
    from .errors import CassetteError

    status = EXIT_OK
    for n, path in enumerate(paths):
        try:
            cassette = load_cassette(path)
        except CassetteError as exc:
            print(f"{PROG} inspect: error: {exc}", file=err)
            status = EXIT_ERROR
            continue
        except (MemoryError, RecursionError) as exc:  # a safety net: the loader's limits should come first
            print(f"{PROG} inspect: error: {path}: {_exhausted(exc)}", file=err)
            status = EXIT_ERROR
            continue
        rows = []
        tools: dict[int, list[str]] = {}
        for it in cassette.interactions:
            call = it.call
            request = _request_label(it.method, it.uri, it.status)
            if call is None:
                rows.append(
                    [str(it.index), it.agent or "-", "-", "-", "-", "-", "-", f"{it.latency_s:.3f}", "-"]
                )
            else:
                rows.append(
                    [
                        str(it.index),
                        call.agent or "-",
                        call.provider,
                        call.model,
                        f"{call.usage.input_tokens:,}",
                        f"{call.usage.output_tokens:,}",
                        _usd(call.usage.cost_usd) if call.usage_reported else "no-usage",
                        f"{call.latency_s:.3f}",
                        "yes" if call.streamed else "no",
                    ]
                )
            rows[-1].append(request)
            if call is not None and call.tool_calls:
                tools[len(rows) - 1] = [_tool_label(t.name, t.arguments) for t in call.tool_calls]
        if n:
            print(file=out)
        print(f"{cassette.path}: {_count(len(cassette.interactions), 'interaction')}", file=out)
        header, *lines = _table(INSPECT_COLUMNS, rows, left=frozenset({1, 2, 3, 8}))
        print(f"  {header}", file=out)
        for i, line in enumerate(lines):
            print(f"  {line}", file=out)
            for label in tools.get(i, ()):
                print(f"      tool call: {label}", file=out)
        usage = cassette.usage
        latency = sum(c.latency_s for c in cassette.calls)
        print(
            f"total: {_count(len(cassette.interactions), 'interaction')}, "
            f"{_count(len(cassette.calls), 'model call')}, "
            f"{usage.input_tokens:,} input + {usage.output_tokens:,} output tokens, {_usd(usage.cost_usd)}, "
            f"{latency:.3f} s recorded latency"
            + (
                f", {n_tools} tool calls"
                if (n_tools := sum(len(c.tool_calls) for c in cassette.calls))
                else ""
            ),
            file=out,
        )
    return status


def _tool_label(name: str, arguments: Any, width: int = 100) -> str:
    text = (
        arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False, sort_keys=True)
    )
    label = f"{name} {text}"
    return label if len(label) <= width else label[: width - 3] + "..."


# -- redact ----------------------------------------------------------------------------------------------
def _cassette_files(paths: Sequence[str]) -> Iterator[tuple[Path, str | None]]:
    """``(file, None)`` for each cassette to handle, or ``(path, reason)`` for a path that is unusable."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = [
                p
                for p in path.rglob("*")
                if p.is_file() and p.name.lower().endswith(CASSETTE_SUFFIXES) and not p.name.startswith(".")
            ]
            yield from ((p, None) for p in sorted(found))
        elif path.exists():
            yield path, None
        else:
            yield path, "no such file or directory"


def _decode(path: Path) -> tuple[Any, bool, bool]:
    """``(data, is_json, gzipped)`` of a cassette file."""
    from .cassette._store import MAX_DECOMPRESSED_CASSETTE_BYTES, deserialize
    from .providers._body import TooLarge, gunzip_bounded

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _Failure(f"cannot open the file ({exc.strerror or exc})") from None
    gzipped = raw.startswith(_GZIP_MAGIC)
    if gzipped:
        try:
            raw = gunzip_bounded(raw, MAX_DECOMPRESSED_CASSETTE_BYTES, "the file")
        except TooLarge as exc:
            raise _Failure(str(exc)) from None
        except (OSError, EOFError, zlib.error) as exc:
            raise _Failure(f"the gzip file is truncated or corrupt ({exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Failure(f"not UTF-8 text (byte {exc.start})") from None
    is_json = path.name.lower().removesuffix(".gz").endswith(".json")
    try:
        data = deserialize(text, is_json=is_json)
    except json.JSONDecodeError as exc:
        raise _Failure(f"invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})") from None
    except Exception as exc:  # yaml.YAMLError and its constructor errors; never echo the file's text
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise _Failure(f"invalid YAML{where}: {problem}") from None
    return data, is_json, gzipped


def _pairs(data: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    if isinstance(data, dict) and isinstance(data.get("interactions"), list):
        items = data["interactions"]
        pairs = []
        for i, item in enumerate(items):
            req = item.get("request") if isinstance(item, dict) else None
            resp = item.get("response") if isinstance(item, dict) else None
            if not isinstance(req, dict) or not isinstance(resp, dict):
                raise _Failure(f"interactions[{i}] is not a mapping with 'request' and 'response'")
            pairs.append((req, resp))
        return pairs
    if (
        isinstance(data, dict)
        and isinstance(data.get("requests"), list)
        and isinstance(data.get("responses"), list)
    ):
        requests, responses = data["requests"], data["responses"]
        if len(requests) != len(responses) or not all(isinstance(x, dict) for x in requests + responses):
            raise _Failure("'requests' and 'responses' are not two lists of mappings of the same length")
        return list(zip(requests, responses, strict=True))
    raise _Failure("no 'interactions' list (nor 'requests'/'responses'): not a vcrpy cassette")


def _scrub_gzip(redactor: Any, body: Any) -> Any:
    """A gzip-compressed body scrubbed inside (recompressed only when something was removed)."""
    from .providers._body import MAX_DECODED_BODY_BYTES, TooLarge, gunzip_bounded

    if not isinstance(body, bytes) or not body.startswith(_GZIP_MAGIC):
        return body
    try:
        inner = gunzip_bounded(body, MAX_DECODED_BODY_BYTES)
    except TooLarge as exc:
        raise _Failure(f"a gzip body: {exc}") from None
    except (OSError, EOFError, zlib.error):
        return body
    before = redactor.report.total
    scrubbed = redactor.scrub_body(inner)
    if redactor.report.total == before:
        return body
    return gzip.compress(scrubbed, mtime=0)


def _scrub_parsed_body(redactor: Any, part: dict[str, Any]) -> None:
    """pydantic-ai's ``parsed_body`` (a JSON value stored as YAML): scrubbed as JSON text."""
    if "parsed_body" not in part:
        return
    text = json.dumps(part["parsed_body"], ensure_ascii=False)
    before = redactor.report.total
    scrubbed = redactor.scrub_body(text)
    if redactor.report.total != before:
        part["parsed_body"] = json.loads(scrubbed)


def _redact_data(data: Any, redactor: Any) -> None:
    pairs = _pairs(data)
    for request, response in pairs:  # first learn every secret header's value: bodies may echo them
        for part in (request, response):
            if isinstance(part.get("headers"), dict):
                redactor.learn_headers(part["headers"])
        if isinstance(request.get("uri"), str):
            redactor.learn_url(request["uri"])
    for request, response in pairs:
        redactor.request_dict(request)
        _scrub_parsed_body(redactor, request)
        request["body"] = _scrub_gzip(redactor, request.get("body")) if "body" in request else None
        if request["body"] is None and "parsed_body" in request:
            del request["body"]
        redactor.response(response)
        _scrub_parsed_body(redactor, response)
        body = response.get("body")
        if isinstance(body, dict) and "string" in body:
            body["string"] = _scrub_gzip(redactor, body["string"])


def _rewrite(path: Path, data: Any, is_json: bool, gzipped: bool) -> None:
    from .cassette._store import atomic_write_bytes, atomic_write_text, serialize

    try:
        text = serialize(data, is_json=is_json)
    except Exception as exc:
        raise _Failure(f"cannot serialise the redacted cassette ({type(exc).__name__})") from None
    try:
        if gzipped:
            atomic_write_bytes(path, gzip.compress(text.encode("utf-8"), mtime=0))
        else:
            atomic_write_text(path, text)
    except OSError as exc:
        raise _Failure(f"cannot write the file ({exc.strerror or exc})") from None


def _redact(
    paths: Sequence[str],
    *,
    check: bool,
    headers: Sequence[str],
    body_keys: Sequence[str],
    query: Sequence[str],
    out: TextIO,
    err: TextIO,
) -> int:
    from .cassette._redact import Redactor

    files = list(_cassette_files(paths))
    progress = len(files) > PROGRESS_ABOVE
    changed = errors = 0
    for i, (path, problem) in enumerate(files, 1):
        if progress:
            print(f"[{i}/{len(files)}] {path}", file=err, flush=True)
        try:
            if problem is not None:
                raise _Failure(problem)
            data, is_json, gzipped = _decode(path)
            redactor = Redactor(headers=headers, body_keys=body_keys, query=query)
            _redact_data(data, redactor)
            counts = redactor.report
            if counts.total and not check:
                _rewrite(path, data, is_json, gzipped)
        except _Failure as exc:
            errors += 1
            print(f"{PROG} redact: error: {path}: {exc}", file=err)
            continue
        except (MemoryError, RecursionError) as exc:  # a safety net: the decoder's limits should come first
            errors += 1
            print(f"{PROG} redact: error: {path}: {_exhausted(exc)}", file=err)
            continue
        if counts.total:
            changed += 1
            print(f"{path}: {'would remove' if check else 'removed'} {counts.describe()}", file=out)
        else:
            print(f"{path}: clean", file=out)
    verb = "would change" if check else "changed"
    tail = f", {errors} unreadable" if errors else ""
    noun = "file" if len(files) == 1 else "files"
    print(f"{PROG} redact: {len(files)} {noun}, {changed} {verb}{tail}", file=out)
    if errors:
        return EXIT_ERROR
    return EXIT_CHANGES if check and changed else EXIT_OK


def _count(n: int, noun: str) -> str:
    """``"1 model call"``, ``"2 model calls"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
