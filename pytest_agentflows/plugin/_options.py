"""Resolved, validated options of one flow test: marker > command line > ini."""

from __future__ import annotations

import hashlib
import math
import os
import re
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..cassette._keys import parse_path
from ..cassette._modes import RecordMode
from ..errors import UsageError

_UNSAFE = re.compile(r"[^\w.\-\[\]=,+@]")
"""One character a generated cassette name escapes: anything but letters, digits, ``_.-[]=,+@``."""
_MAX_NAME_BYTES = 200
"""Longest generated file name (UTF-8 bytes, before the extension); longer ones are shortened and hashed."""


@dataclass(frozen=True, kw_only=True)
class FlowOptions:
    """Everything the ``agentflow`` fixture needs to build a :class:`Flow` for one test."""

    cassette: Path
    """Cassette file of the test."""
    record: RecordMode
    """Record mode in effect."""
    latency: str
    """``"recorded"`` or ``"zero"``."""
    budget_usd: float | None
    """USD cap from ``agent_budget``."""
    budget_tokens: int | None
    """Token cap from ``agent_budget``."""
    deadline_s: float | None
    """Virtual-seconds deadline from ``agent_deadline``."""
    redact_headers: tuple[str, ...]
    """Extra header names to scrub (ini ``agentflows_redact_headers``)."""
    redact_body_keys: tuple[str, ...]
    """Extra JSON body keys to scrub (ini ``agentflows_redact_body_keys``)."""
    save_on_failure: bool = False
    """Save a failing test's recording (marker ``save_on_failure=``, ini ``agentflows_save_on_failure``)."""
    match_ignore: tuple[str, ...] = ()
    """JSON paths left out of matching (ini ``agentflows_match_ignore`` + marker ``match_ignore=``)."""
    prune_unused: bool = False
    """Drop the interactions a ``--record-agents`` run no longer used: the test's own cassette only (the
    default name; a cassette named by the marker may be shared with other tests)."""


_FIX = {
    "agentflow": "e.g. @pytest.mark.agentflow(cassette='my_flow.yaml', record='new', latency='zero', "
    "snapshot_measurements=True)",
    "agent_budget": "e.g. @pytest.mark.agent_budget(usd=0.50, tokens=20_000) (either cap may be left out)",
    "agent_deadline": "e.g. @pytest.mark.agent_deadline(120) (virtual seconds)",
    "agent_faults": "e.g. @pytest.mark.agent_faults(fail={'billing': 'connection'}, status={'search': 429})",
}


def _shown(marker: pytest.Mark) -> str:
    """The marker as written: ``@pytest.mark.agent_budget(usd=-1)`` (long values shortened)."""
    short = reprlib.Repr()
    short.maxstring = short.maxother = 40
    parts = [short.repr(a) for a in marker.args] + [f"{k}={short.repr(v)}" for k, v in marker.kwargs.items()]
    return f"@pytest.mark.{marker.name}({', '.join(parts)})"


def _misuse(item: pytest.Item, marker: pytest.Mark, what: str) -> UsageError:
    """One line: the test, the marker as written, what is wrong, how to fix it."""
    what = " ".join(what.split())  # one line whatever the value's repr holds
    return UsageError(f"{item.nodeid}: {_shown(marker)}: {what}. Fix: {_FIX[marker.name]}")


def _marker_kwargs(
    item: pytest.Item, name: str, allowed: tuple[str, ...], positional: tuple[str, ...] = ()
) -> tuple[pytest.Mark | None, dict[str, Any]]:
    marker = item.get_closest_marker(name)
    if marker is None:
        return None, {}
    if len(marker.args) > len(positional):
        raise _misuse(item, marker, f"takes at most {len(positional)} positional argument(s)")
    kwargs = dict(zip(positional, marker.args, strict=False))
    for key, value in marker.kwargs.items():
        if key in kwargs:
            raise _misuse(item, marker, f"got {key} twice (positionally and as a keyword)")
        kwargs[key] = value
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise _misuse(item, marker, f"unknown argument(s) {', '.join(unknown)}; valid: {', '.join(allowed)}")
    return marker, kwargs


def _number(
    item: pytest.Item,
    marker: pytest.Mark,
    kwargs: dict[str, Any],
    key: str,
    what: str,
    *,
    integer: bool = False,
) -> float | None:
    value = kwargs.get(key)
    if value is None:
        return None
    ok = (
        not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and value >= 0
    )
    if ok and integer and value != int(value):
        ok = False
    if not ok:
        kind = "a whole number" if integer else "a number"
        raise _misuse(item, marker, f"{key} must be {kind} >= 0 ({what}), got {value!r}")
    return float(value)


def _same_check(item: pytest.Item, marker: pytest.Mark, build: Any) -> None:
    """Build the runtime object the fixture will build from these values: what it refuses is misuse too.

    The collection check and the fixture then can never disagree (``agent_deadline(0)`` passed the
    number check but ``Deadline`` refuses 0: a traceback at setup instead of a one-line error).
    """
    try:
        build()
    except (ValueError, TypeError) as exc:
        raise _misuse(item, marker, str(exc)) from None


def check_markers(item: pytest.Item) -> None:
    """Check the arguments of this plugin's markers on ``item`` (the closest of each; every agent_faults).

    Raises:
        UsageError: one line naming the test, the marker as written, what is wrong and how to fix it.
    """
    _marker_values(item)


def _marker_values(item: pytest.Item) -> dict[str, Any]:
    marker, flow = _marker_kwargs(
        item,
        "agentflow",
        ("cassette", "record", "latency", "save_on_failure", "match_ignore", "snapshot_measurements"),
    )
    values: dict[str, Any] = {"cassette": None, "record": None, "latency": "recorded"}
    values["save_on_failure"] = values["snapshot_measurements"] = None
    values["match_ignore"] = ()
    if marker is not None:
        cassette = flow.get("cassette")
        if cassette is not None and (not isinstance(cassette, str | os.PathLike) or not os.fspath(cassette)):
            raise _misuse(item, marker, f"cassette must be a file name or path, got {cassette!r}")
        values["cassette"] = os.fspath(cassette) if cassette is not None else None
        if "record" in flow and flow["record"] is not None:
            try:
                values["record"] = RecordMode.parse(flow["record"], where="record")
            except UsageError:
                raise _misuse(
                    item,
                    marker,
                    f"unknown record mode {flow['record']!r}; valid values: "
                    + ", ".join(m.value for m in RecordMode),
                ) from None
        if values["cassette"] is not None:
            mode = values["record"] or RecordMode.parse(
                item.config.getoption("agentflows_record", None), where="--record-agents"
            )
            recording = mode is not RecordMode.NONE
            problem = marker_cassette_problem(item, item.config, values["cassette"], recording=recording)
            if problem is not None:
                raise _misuse(item, marker, problem)
        latency = flow.get("latency", "recorded")
        if latency not in ("recorded", "zero"):
            raise _misuse(item, marker, f"latency must be 'recorded' or 'zero', got {latency!r}")
        values["latency"] = latency
        save = flow.get("save_on_failure")
        if save is not None and not isinstance(save, bool):
            raise _misuse(item, marker, f"save_on_failure must be True or False, got {save!r}")
        values["save_on_failure"] = save
        ignore = flow.get("match_ignore") or ()
        paths = [ignore] if isinstance(ignore, str) else ignore
        try:
            values["match_ignore"] = tuple(str(p) for p in paths if parse_path(p))
        except (TypeError, ValueError) as exc:
            raise _misuse(item, marker, f"match_ignore: {exc}") from None
        measured = flow.get("snapshot_measurements")
        if measured is not None and not isinstance(measured, bool):
            raise _misuse(item, marker, f"snapshot_measurements must be True or False, got {measured!r}")
        values["snapshot_measurements"] = measured
    marker, budget = _marker_kwargs(item, "agent_budget", ("usd", "tokens"))
    values["usd"] = values["tokens"] = None
    if marker is not None:
        values["usd"] = _number(item, marker, budget, "usd", "US dollars")
        tokens = _number(item, marker, budget, "tokens", "input + output tokens", integer=True)
        values["tokens"] = int(tokens) if tokens is not None else None
        if values["usd"] is None and values["tokens"] is None:
            raise _misuse(item, marker, "sets no cap: give usd= and/or tokens=")
        from ..runtime.budget import BudgetPool

        _same_check(item, marker, lambda: BudgetPool(usd=values["usd"], tokens=values["tokens"]))
    marker, deadline = _marker_kwargs(item, "agent_deadline", ("seconds",), positional=("seconds",))
    values["seconds"] = None
    if marker is not None:
        values["seconds"] = _number(item, marker, deadline, "seconds", "virtual seconds")
        if values["seconds"] is None:
            raise _misuse(item, marker, "needs the seconds")
        from ..runtime.deadline import Deadline

        _same_check(item, marker, lambda: Deadline(values["seconds"]))
    for marker in item.iter_markers("agent_faults"):
        from ..testing.faults import faults_from_marker

        try:
            faults_from_marker(marker.args, marker.kwargs)
        except UsageError as exc:
            raise _misuse(item, marker, str(exc).removeprefix("agent_faults() ")) from None
    return values


def _escape(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8", "surrogatepass"))


def safe_file_name(name: str) -> str:
    """``name`` as one file name, by an injective rule (two names never give one file).

    Letters, digits and ``_ . - [ ] = , + @`` are kept; every other character (``/``, space, ``%``, a
    newline, ``:``...) becomes ``%XX`` per UTF-8 byte, as in a URL (``a/b`` -> ``a%2Fb``, ``a b`` ->
    ``a%20b``, ``a_b`` stays). A result longer than 200 UTF-8 bytes keeps its first bytes and ends with
    ``~`` and 16 hex digits of the SHA-256 of the whole escaped name (``~`` never occurs otherwise), so
    it fits every file system's 255-byte limit with the extension.
    """
    escaped = _UNSAFE.sub(_escape, name)
    if escaped in (".", ".."):
        escaped = escaped.replace(".", "%2E")
    raw = escaped.encode("utf-8")
    if len(raw) <= _MAX_NAME_BYTES:
        return escaped
    digest = hashlib.sha256(raw).hexdigest()[:16]
    head = raw[: _MAX_NAME_BYTES - 17].decode("utf-8", "ignore")
    return f"{head}~{digest}"


def cassette_name(item: pytest.Item) -> str:
    """``<Class>.<test name>`` or ``<test name>`` as a file name (see :func:`safe_file_name`)."""
    name = item.name
    cls = getattr(item, "cls", None)
    if cls is not None:
        name = f"{cls.__name__}.{name}"
    return safe_file_name(name)


_BASES = pytest.StashKey[dict[str, str]]()
"""Per session: test module path -> the folder of its cassettes (the same for each of its tests)."""


def _cassette_base(item: pytest.Item, config: pytest.Config) -> Path:
    """``<dir>/<module>``: where the cassettes of ``item``'s module live."""
    return Path(_cassette_folder(item, config))


def _cassette_folder(item: pytest.Item, config: pytest.Config) -> str:
    """:func:`_cassette_base` as text, computed once per module and session."""
    module = str(item.path)
    bases = config.stash.setdefault(_BASES, {})
    base = bases.get(module)
    if base is None:
        path = Path(module)
        ini_dir = config.getini("agentflows_cassette_dir")
        folder = Path(config.rootpath, ini_dir) if ini_dir else path.parent / "cassettes"
        base = bases[module] = str(folder / path.stem)
    return base


def marker_cassette_problem(
    item: pytest.Item, config: pytest.Config, name: str, *, recording: bool = False
) -> str | None:
    """What is wrong with a ``cassette=`` marker value, or ``None``.

    A relative name is a path from ``<dir>/<module>/``: ``..`` may move between cassette folders but the
    file must stay inside the project (the rootdir) or the cassette directory. An absolute path is used as
    it is for replay (a shared read-only fixture); a test that records into it must keep it inside them too
    (``recording=True``). Never a control character (a newline), nor a part longer than 255 bytes.
    """
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return f"cassette={name!r} contains a control character (a newline?), which no file name may hold"
    if any(len(part.encode("utf-8", "surrogatepass")) > 255 for part in Path(name).parts):
        return (
            "cassette= has a path part longer than 255 bytes, which file systems refuse; use a shorter name"
        )
    if Path(name).is_absolute() and not recording:
        return None
    base = _cassette_base(item, config)
    target = Path(os.path.normpath(base / name))
    roots = [Path(os.path.normpath(config.rootpath)), Path(os.path.normpath(base.parent))]
    if not any(target == root or root in target.parents for root in roots):
        what = "records into" if Path(name).is_absolute() else "resolves to"
        return (
            f"cassette={name!r} {what} {target}, outside the project ({roots[0]}) and the cassette "
            f"directory ({roots[1]}); a test may only write cassettes inside them"
        )
    return None


def default_cassette_path(
    item: pytest.Item, config: pytest.Config, name: str | None = None, *, recording: bool = False
) -> Path:
    """The cassette file of ``item``: ``<dir>/<module>/<name>.<format>``.

    ``<dir>`` is ini ``agentflows_cassette_dir`` (relative to the rootdir), else ``cassettes/`` beside
    the test module; ``<name>`` is the marker's ``cassette=`` (a path relative to ``<dir>/<module>``, kept
    inside the project, or an absolute path: see :func:`marker_cassette_problem`), else the test's name
    made a safe file name (:func:`safe_file_name`); ``<format>`` is ini ``agentflows_cassette_format``
    (``yaml``, the default, or ``json``) unless ``name`` has its own extension.

    Raises:
        UsageError: for an unknown ``agentflows_cassette_format``, or a ``cassette=`` that leaves the
            project (an absolute one: only when ``recording``) or holds a control character.
    """
    base = _cassette_folder(item, config)
    if name is not None:
        problem = marker_cassette_problem(item, config, name, recording=recording)
        if problem is not None:
            raise UsageError(f"{item.nodeid}: @pytest.mark.agentflow: {problem}")
    file = name or cassette_name(item)
    if not file.endswith((".yaml", ".yml", ".json")):
        fmt = (config.getini("agentflows_cassette_format") or "yaml").strip().lower()
        if fmt not in ("yaml", "json"):
            raise UsageError(f"ini agentflows_cassette_format must be 'yaml' or 'json', got {fmt!r}")
        file += f".{fmt}"
    return Path(os.path.normpath(os.path.join(base, file)))


def snapshot_measurements(item: pytest.Item) -> bool:
    """Whether ``item``'s decision snapshots keep measurements (marker > ini; default ``False``).

    Raises:
        UsageError: for a misused ``agentflow`` marker (see :func:`check_markers`).
    """
    measured = _marker_values(item)["snapshot_measurements"]
    if measured is None:
        return bool(item.config.getini("agentflows_snapshot_measurements"))
    return bool(measured)


def resolve(item: pytest.Item) -> FlowOptions:
    """Resolve the options of ``item`` (marker > command line > ini).

    Raises:
        UsageError: for unknown marker arguments or invalid values (see :func:`check_markers`), or an
            unknown ini ``agentflows_cassette_format``.
    """
    config = item.config
    values = _marker_values(item)
    cli_mode = config.getoption("agentflows_record", None)
    record = values["record"] or RecordMode.parse(cli_mode, where="--record-agents")
    save_on_failure = values["save_on_failure"]
    if save_on_failure is None:
        save_on_failure = bool(config.getini("agentflows_save_on_failure"))
    return FlowOptions(
        cassette=default_cassette_path(
            item, config, values["cassette"], recording=record is not RecordMode.NONE
        ),
        record=record,
        latency=values["latency"],
        budget_usd=values["usd"],
        budget_tokens=values["tokens"],
        deadline_s=values["seconds"],
        redact_headers=tuple(config.getini("agentflows_redact_headers")),
        redact_body_keys=tuple(config.getini("agentflows_redact_body_keys")),
        save_on_failure=save_on_failure,
        match_ignore=tuple(config.getini("agentflows_match_ignore")) + values["match_ignore"],
        prune_unused=values["cassette"] is None,
    )
