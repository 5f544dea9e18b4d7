"""Resolved, validated options of one flow test: marker > command line > ini."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .cassette._modes import RecordMode
from .errors import UsageError

_UNSAFE = re.compile(r"[^\w.\-\[\]=,+@]+")


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


def _marker_kwargs(
    item: pytest.Item, name: str, allowed: tuple[str, ...], positional: tuple[str, ...] = ()
) -> dict[str, Any]:
    marker = item.get_closest_marker(name)
    if marker is None:
        return {}
    if len(marker.args) > len(positional):
        raise UsageError(
            f"{item.nodeid}: @pytest.mark.{name} takes at most {len(positional)} positional argument(s)"
        )
    kwargs = dict(zip(positional, marker.args, strict=False))
    kwargs.update(marker.kwargs)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise UsageError(
            f"{item.nodeid}: @pytest.mark.{name} got unknown argument(s) {', '.join(unknown)}; "
            f"valid: {', '.join(allowed)}"
        )
    return kwargs


def _positive(value: Any, what: str, item: pytest.Item) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise UsageError(f"{item.nodeid}: {what} must be a number >= 0, got {value!r}")
    return float(value)


def cassette_name(item: pytest.Item) -> str:
    """``<Class>.<test name>`` or ``<test name>``, made safe for file names (pytest-recording's rule)."""
    name = item.name
    cls = getattr(item, "cls", None)
    if cls is not None:
        name = f"{cls.__name__}.{name}"
    return _UNSAFE.sub("_", name)


def default_cassette_path(item: pytest.Item, config: pytest.Config, name: str | None = None) -> Path:
    """The cassette file of ``item``: ``<dir>/<module>/<name>.<format>``.

    ``<dir>`` is ini ``agentflows_cassette_dir`` (relative to the rootdir), else ``cassettes/`` beside
    the test module; ``<format>`` is ini ``agentflows_cassette_format`` (``yaml``, the default, or
    ``json``) unless ``name`` has its own extension.

    Raises:
        UsageError: for an unknown ``agentflows_cassette_format``.
    """
    module = Path(str(item.path))
    ini_dir = config.getini("agentflows_cassette_dir")
    base = Path(config.rootpath, ini_dir) if ini_dir else module.parent / "cassettes"
    file = name or cassette_name(item)
    if Path(file).is_absolute():
        return Path(file)
    if not file.endswith((".yaml", ".yml", ".json")):
        fmt = (config.getini("agentflows_cassette_format") or "yaml").strip().lower()
        if fmt not in ("yaml", "json"):
            raise UsageError(f"ini agentflows_cassette_format must be 'yaml' or 'json', got {fmt!r}")
        file += f".{fmt}"
    return base / module.stem / file


def resolve(item: pytest.Item) -> FlowOptions:
    """Resolve the options of ``item``.

    Raises:
        UsageError: for unknown marker arguments or invalid values, listing the valid ones.
    """
    config = item.config
    flow = _marker_kwargs(item, "agentflow", ("cassette", "record", "latency", "save_on_failure"))
    budget = _marker_kwargs(item, "agent_budget", ("usd", "tokens"))
    deadline = _marker_kwargs(item, "agent_deadline", ("seconds",), positional=("seconds",))
    cli_mode = config.getoption("agentflows_record", None)
    record = RecordMode.parse(flow.get("record", cli_mode), where=f"{item.nodeid} (record mode)")
    latency = flow.get("latency", "recorded")
    if latency not in ("recorded", "zero"):
        raise UsageError(
            f"{item.nodeid}: agentflow(latency=...) must be 'recorded' or 'zero', got {latency!r}"
        )
    tokens = _positive(budget.get("tokens"), "agent_budget(tokens=...)", item)
    seconds = _positive(deadline.get("seconds"), "agent_deadline(seconds)", item)
    if "seconds" in deadline and seconds is None:
        raise UsageError(
            f"{item.nodeid}: @pytest.mark.agent_deadline needs the seconds, e.g. agent_deadline(120)"
        )
    save_on_failure = flow.get("save_on_failure", config.getini("agentflows_save_on_failure"))
    if not isinstance(save_on_failure, bool):
        raise UsageError(
            f"{item.nodeid}: agentflow(save_on_failure=...) must be True or False, got {save_on_failure!r}"
        )
    return FlowOptions(
        cassette=default_cassette_path(item, config, flow.get("cassette")),
        record=record,
        latency=latency,
        budget_usd=_positive(budget.get("usd"), "agent_budget(usd=...)", item),
        budget_tokens=int(tokens) if tokens is not None else None,
        deadline_s=seconds,
        redact_headers=tuple(config.getini("agentflows_redact_headers")),
        redact_body_keys=tuple(config.getini("agentflows_redact_body_keys")),
        save_on_failure=save_on_failure,
    )
