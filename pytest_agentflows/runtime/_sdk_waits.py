"""The OpenAI and Anthropic SDKs' own retry waits, made virtual while a flow is active.

The SDK clients sleep between retries with ``time.sleep`` (sync) and ``anyio.sleep`` (async). The async one
already runs on the flow's virtual event loop; the sync one is redirected, inside the SDK modules'
namespace only, to the flow clock, and the SDKs' backoff jitter is drawn from a generator seeded per flow
and agent, so a retry schedule is the same on every run, however concurrent agents interleave.

Part of the runtime layer: it knows a flow only as a :class:`WaitHost` (a clock and whether it records).
"""

from __future__ import annotations

import contextvars
import random as _random_module
import sys
import threading
import time as _time_module
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from ._context import current_agent
from .clock import VirtualClock

__all__ = ["WaitHost", "offline_reply", "patch_loaded_sdks", "virtual_sdk_waits"]


class WaitHost(Protocol):
    """What the virtual waits need of a flow (:class:`pytest_agentflows.Flow` is one)."""

    @property
    def clock(self) -> VirtualClock:
        """The clock a sync SDK wait advances."""

    @property
    def recording(self) -> bool:
        """Whether the flow records from the network now (a wait a real server asked for is then real)."""


offline_reply: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "agentflows_offline_reply", default=False
)
"""Whether the last answer in this thread/task was made locally (injected or scripted), not by a server.

Set by the transport hooks (:mod:`pytest_agentflows.testing._transport`); a retry wait after such an answer
is never slept for real, even while recording.
"""

_SDK_MODULES = ("openai._base_client", "openai._resource", "anthropic._base_client", "anthropic._resource")
_waits_lock = threading.RLock()
_active: list[WaitHost] = []
_rngs: dict[tuple[int, str | None], _random_module.Random] = {}
_patched: dict[str, dict[str, Any]] = {}


def _current_flow() -> WaitHost | None:
    with _waits_lock:
        return _active[-1] if _active else None


class _VirtualTime:
    """Stands in for the ``time`` module inside an SDK module: ``sleep`` moves the flow clock."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_time_module, name)

    def sleep(self, seconds: float) -> None:
        flow = _current_flow()
        if flow is None:
            _time_module.sleep(seconds)
            return
        seconds = max(0.0, float(seconds))
        flow.clock.advance(seconds)
        if (flow.recording or getattr(flow, "real_time", False)) and not offline_reply.get():
            _time_module.sleep(seconds)  # a real server asked us to wait: respect it while recording


_VIRTUAL_TIME = _VirtualTime()


def _seeded_random() -> float:
    flow = _current_flow()
    if flow is None:
        return _random_module.random()
    agent = current_agent.get()
    with _waits_lock:  # one generator per agent: concurrent agents do not share (and race for) draws
        rng = _rngs.get((id(flow), agent))
        if rng is None:
            rng = _rngs[(id(flow), agent)] = _random_module.Random(f"agentflows:{agent}")
        return rng.random()


def patch_loaded_sdks() -> None:
    """Redirect ``time.sleep`` and the backoff jitter of every loaded SDK module (idempotent, cheap)."""
    if len(_patched) == len(_SDK_MODULES) or all(
        name in _patched or name not in sys.modules for name in _SDK_MODULES
    ):
        return
    with _waits_lock:
        if not _active:
            return
        for name in _SDK_MODULES:
            module = sys.modules.get(name)
            if module is None or name in _patched:
                continue
            saved: dict[str, Any] = {}
            if getattr(module, "time", None) is _time_module:
                saved["time"] = _time_module
                module.time = _VIRTUAL_TIME  # type: ignore[attr-defined]
            if getattr(module, "random", None) is _random_module.random:
                saved["random"] = _random_module.random
                module.random = _seeded_random  # type: ignore[attr-defined]
            _patched[name] = saved


def _restore_sdks() -> None:
    for name, saved in _patched.items():
        module = sys.modules.get(name)
        if module is not None:
            for attr, value in saved.items():
                setattr(module, attr, value)
    _patched.clear()


@contextmanager
def virtual_sdk_waits(flow: WaitHost) -> Iterator[None]:
    """While active, the OpenAI/Anthropic SDKs' sync retry waits advance ``flow``'s clock instead of sleeping.

    Their backoff jitter comes from a generator seeded per flow and agent, so the waits are deterministic.
    While the flow records a cassette, a wait asked for by a real server also sleeps for real. Re-entrant:
    the innermost active flow gets the waits; the SDK modules are restored when the last flow ends.
    """
    with _waits_lock:
        _active.append(flow)
    patch_loaded_sdks()
    try:
        yield
    finally:
        with _waits_lock:
            _active.remove(flow)
            for key in [k for k in _rngs if k[0] == id(flow)]:
                del _rngs[key]
            if not _active:
                _restore_sdks()
