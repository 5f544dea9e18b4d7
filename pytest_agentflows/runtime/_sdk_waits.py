"""The OpenAI and Anthropic SDKs' own retry waits, made virtual while a flow is active.

The SDK clients sleep between retries with ``time.sleep`` (sync) and ``anyio.sleep`` (async). The async one
already runs on the flow's virtual event loop; the sync one is redirected, inside the SDK modules'
namespace only, to the flow clock, and the SDKs' backoff jitter is drawn from a generator seeded per flow
and agent, so a retry schedule is the same on every run, however concurrent agents interleave.

A miss (:class:`~pytest_agentflows.UnrecordedRequestError`, an ordinary ``Exception``) is never retried
or wrapped by an SDK either: while a flow is active, the SDKs' ``_make_connection_error`` (anthropic: it
wraps any transport exception in ``APIConnectionError``, which it retries) and ``_sleep_for_retry`` (any
SDK about to retry) re-raise the miss found in the exception being handled. OpenAI 3.x lets it through
unwrapped by itself.

Concurrent agents reach the transport in the order the flow started them: an async SDK client finds out
its platform (for its ``X-Stainless-*`` headers) on its first request in a worker thread
(``asyncify(get_platform)``), and threads finish in any order, so the first requests of agents sharing a
new client would otherwise be logged, replayed and snapshotted in a different order from run to run. While
a flow is active, that one lookup runs inline (it is cached by the client, and cheap after the first call).

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
from typing import Any, Protocol, TypeVar

from ..errors import UnrecordedRequestError
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
_patched_methods: list[tuple[type, str, Any]] = []
"""``(class, attribute, original)`` of the SDK client methods wrapped so that a miss is never retried."""


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


def _miss_in(exc: BaseException | None) -> UnrecordedRequestError | None:
    """The miss ``exc`` is, or was raised from (``__cause__`` / ``__context__`` chain), else ``None``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UnrecordedRequestError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


_WRAPPERS: dict[Any, Any] = {}
"""SDK method -> its :func:`_raise_miss_first` wrapper, built once per process (patched in for each flow)."""


def _raise_miss_first(original: Any) -> Any:
    """``original`` (a sync or async SDK method), which first re-raises a miss being handled."""
    wrapper = _WRAPPERS.get(original)
    if wrapper is None:
        wrapper = _WRAPPERS[original] = _miss_first_wrapper(original)
    return wrapper


def _miss_first_wrapper(original: Any) -> Any:
    import functools
    import inspect

    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def async_method(*args: Any, **kwargs: Any) -> Any:
            miss = _miss_in(sys.exc_info()[1]) if _active else None
            if miss is not None:
                raise miss.with_traceback(None) from None
            return await original(*args, **kwargs)

        return async_method

    @functools.wraps(original)
    def method(*args: Any, **kwargs: Any) -> Any:
        cause = kwargs.get("cause") if "cause" in kwargs else (args[2] if len(args) > 2 else None)
        miss = _miss_in(cause if isinstance(cause, BaseException) else sys.exc_info()[1]) if _active else None
        if miss is not None:
            raise miss.with_traceback(None) from None
        return original(*args, **kwargs)

    return method


_INLINE: dict[Any, Any] = {}
"""SDK ``asyncify`` -> its :func:`_inline_platform` wrapper, built once per process."""


def _inline_platform(asyncify: Any) -> Any:
    """``asyncify`` (an SDK's to-a-worker-thread helper), which runs ``get_platform`` inline instead."""
    wrapper = _INLINE.get(asyncify)
    if wrapper is None:

        def inline_asyncify(function: Any) -> Any:
            if getattr(function, "__name__", None) != "get_platform" or not _active:
                return asyncify(function)

            async def inline(*args: Any, **kwargs: Any) -> Any:
                return function(*args, **kwargs)

            return inline

        wrapper = _INLINE[asyncify] = inline_asyncify
    return wrapper


def _patch_methods(module: Any) -> None:
    for cls_name in ("BaseClient", "SyncAPIClient", "AsyncAPIClient"):
        cls = getattr(module, cls_name, None)
        if not isinstance(cls, type):
            continue
        for attr in ("_make_connection_error", "_sleep_for_retry"):
            original = cls.__dict__.get(attr)
            if original is None or not callable(original):
                continue
            _patched_methods.append((cls, attr, original))
            setattr(cls, attr, _raise_miss_first(original))


def patch_loaded_sdks() -> None:
    """Redirect ``time.sleep``, backoff jitter and the platform lookup of each loaded SDK (idempotent)."""
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
            if name.endswith("_base_client"):
                _patch_methods(module)
                asyncify = getattr(module, "asyncify", None)
                if callable(asyncify) and asyncify not in _INLINE.values():
                    saved["asyncify"] = asyncify
                    module.asyncify = _inline_platform(asyncify)  # type: ignore[attr-defined]
            _patched[name] = saved


def _restore_sdks() -> None:
    for name, saved in _patched.items():
        module = sys.modules.get(name)
        if module is not None:
            for attr, value in saved.items():
                setattr(module, attr, value)
    _patched.clear()
    while _patched_methods:
        cls, attr, original = _patched_methods.pop()
        setattr(cls, attr, original)


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


E = TypeVar("E", bound=Exception)
_SDK_SAFE: dict[tuple[type, ...], type] = {}
_SDK_ERRORS = (("openai", "OpenAIError"), ("anthropic", "AnthropicError"))


def sdk_safe(error: E) -> E:
    """``error`` as an exception the loaded SDKs pass on unchanged, neither wrapped nor retried.

    Raised by a flow inside an SDK's HTTP client (a refused request, a miss), any other exception is
    turned by the SDK into a (retried) ``APIConnectionError``: anthropic always, openai 2.x when it has no
    retry left. Both pass their own base error (``AnthropicError``, ``OpenAIError``) on as it is. So, for
    each SDK that is loaded, ``error`` is re-made as an instance of a subclass of its own class and that
    base error: ``except BudgetExceeded`` / ``except UnrecordedRequestError`` still catch it, its message,
    attributes and class name are the same, and it pickles as the plain class. Without a loaded SDK,
    ``error`` itself is returned.
    """
    bases = tuple(
        base
        for module, name in _SDK_ERRORS
        if (base := getattr(sys.modules.get(module), name, None)) is not None
        and isinstance(base, type)
        and issubclass(base, Exception)
        and not isinstance(error, base)
    )
    if not bases:
        return error
    cls = type(error)
    key = (cls, *bases)
    safe_cls = _SDK_SAFE.get(key)
    if safe_cls is None:
        safe_cls = _SDK_SAFE[key] = type(cls.__name__, (cls, *bases), {"__module__": cls.__module__})
    safe: E = Exception.__new__(safe_cls)
    safe.__dict__.update(error.__dict__)
    safe.args = error.args
    return safe
