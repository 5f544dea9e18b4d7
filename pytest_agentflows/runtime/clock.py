"""The virtual clock: deterministic flow time made of model latency only.

Time on a :class:`VirtualClock` never comes from the wall clock. It moves when a model call's latency is
charged to it (the latency stored in the cassette on replay, the measured one while recording) and when
code sleeps on it. Each logical line of execution (the main thread, a thread started by a broadcast, an
asyncio task) has its own *cursor*, kept in a :class:`contextvars.ContextVar`, so branches started
together start at the same virtual time and overlap; :meth:`VirtualClock.fork` and
:meth:`VirtualClock.join` let the patterns run branches and continue at the latest end.

For asyncio code the event loop's own time is made virtual too (with the ``looptime`` package, see
:meth:`VirtualClock.attach_loop`), so ``asyncio.wait_for(…, timeout=5)`` and ``asyncio.sleep`` in user code
are decided on recorded latency, deterministically, in milliseconds of wall time. Work handed to a thread
and awaited (``asyncio.to_thread``, ``loop.run_in_executor``) runs on the caller's timeline: the thread
starts at the caller's virtual time and the caller continues when the thread's virtual time ends, so
sequential calls add up and only concurrent ones overlap (:meth:`VirtualClock.executor_timeline`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["RealClock", "VirtualClock"]

_ROUND = 9  # decimal places kept, to cut off float noise (nanoseconds)


class VirtualClock:
    """Deterministic flow time in seconds since the flow started.

    Args:
        start: Virtual time to start at, in seconds (default ``0.0``).

    The clock is safe to use from threads and asyncio tasks. Reading it never touches the wall clock.
    """

    virtual = True
    """``True``: time moves only by charged latency (``False`` for :class:`RealClock`)."""

    def __init__(self, start: float = 0.0) -> None:
        self._real_time: Any = None  # a flow's probe: while it says True, no loop is made virtual
        self._lock = threading.RLock()
        self._cursor: contextvars.ContextVar[float | None] = contextvars.ContextVar(
            f"agentflows_clock_{id(self)}", default=None
        )
        self._base = float(start)
        self._frontier = float(start)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_origin = 0.0
        self._looptime_cm: Any = None
        self._executor_thread = threading.local()
        """In a thread running awaited executor work: ``offset`` (the caller's loop offset at submission)
        and ``reached`` (the latest virtual time the work reached)."""

    # -- reading ---------------------------------------------------------------------------------------
    def now(self) -> float:
        """The current virtual time of the calling thread or task, in seconds."""
        cursor = self._cursor.get()
        base = self._base if cursor is None else cursor
        return round(base + self._loop_offset(), _ROUND)

    @property
    def elapsed(self) -> float:
        """Virtual seconds from the start to the latest moment any branch reached (calls overlap)."""
        now = self.now()
        with self._lock:
            return round(max(self._frontier, now), _ROUND)

    # -- moving ----------------------------------------------------------------------------------------
    def advance(self, seconds: float) -> float:
        """Move the calling branch forward by ``seconds`` and return its new time.

        Raises:
            ValueError: if ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"VirtualClock.advance() needs seconds >= 0, got {seconds!r}")
        return self.set_time(self.now() + seconds)

    def set_time(self, at: float) -> float:
        """Move the calling branch to virtual time ``at`` (seconds); earlier times are ignored."""
        at = max(round(at, _ROUND), self.now())
        offset = self._loop_offset()
        self._set_cursor(at - offset)
        with self._lock:
            self._frontier = max(self._frontier, at)
        work = self._executor_thread
        if getattr(work, "reached", None) is not None:
            work.reached = max(work.reached, at)
        return at

    def _set_cursor(self, value: float) -> None:
        if self._cursor.get() is None and threading.current_thread() is threading.main_thread():
            # The main line of execution owns the base time, so code that never forks (sync tests)
            # keeps a single timeline even across contexts (fixtures, hooks).
            self._base = value
        else:
            self._cursor.set(value)

    # -- branches --------------------------------------------------------------------------------------
    def branch_context(self, at: float | None = None) -> contextvars.Context:
        """A copy of the current context whose cursor starts at ``at`` (default: now), for a new branch.

        Run a thread's target with ``ctx.run(fn)`` so its calls advance their own cursor and overlap with
        sibling branches.
        """
        start = self.now() if at is None else at
        ctx = contextvars.copy_context()
        ctx.run(self._cursor.set, start - self._loop_offset())
        return ctx

    def join(self, at: float) -> float:
        """Continue the calling branch at ``at`` (the latest end of the branches it waited for)."""
        return self.set_time(at)

    @contextmanager
    def fork(self) -> Iterator[float]:
        """Context manager yielding the fork time; the calling branch's own time is restored after it."""
        token = self._cursor.set(self.now() - self._loop_offset())
        try:
            yield self.now()
        finally:
            self._cursor.reset(token)

    # -- asyncio ---------------------------------------------------------------------------------------
    def attach_loop(self, loop: asyncio.AbstractEventLoop | None = None) -> bool:
        """Make the running (or given) event loop's time virtual and part of this clock.

        Uses ``looptime``: once attached, ``loop.time()`` only moves when the loop has nothing to do but
        wait for a timer, and jumps straight to it, so ``asyncio.sleep``/``wait_for`` run in no wall time.
        Async model calls then charge their latency with ``await asyncio.sleep(latency)`` on this loop,
        which makes concurrent tasks overlap exactly like real concurrent requests.

        Returns:
            ``True`` if the loop is attached (now or before), ``False`` if there is no loop or it cannot be
            patched (e.g. uvloop); the clock then keeps working on cursors alone.
        """
        if self._real_time is not None and self._real_time():
            return False  # a flow with nothing to replay: real network waits must stay real
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return False
        if self._loop is loop:
            return True
        import looptime  # lazy: only async flows pay for it

        if not isinstance(loop, asyncio.BaseEventLoop):
            return False
        try:
            real_now = loop.time()
            if isinstance(loop, looptime.LoopTimeEventLoop):
                patched = loop
                if not patched.looptime_on:
                    # patched (e.g. by looptime's own pytest plugin) but running on real time: restart its
                    # fake time at the real reading so timers already scheduled keep their meaning
                    patched.setup_looptime(start=real_now)
            else:
                patched = looptime.patch_event_loop(loop, start=real_now, _enabled=False)
        except Exception:  # pragma: no cover - exotic loops
            return False
        if not patched.looptime_on:
            self._looptime_cm = patched.looptime_enabled()
            self._looptime_cm.__enter__()
            self._real_time_executor_shutdown(patched)
        _timers_on_ticks(patched)
        base_now = self.now()
        self._loop = patched
        self._loop_origin = patched.time()
        # Everything the loop does from here on is measured from the current virtual time.
        self._base = base_now
        with self._lock:
            self._frontier = max(self._frontier, base_now)
        return True

    def _real_time_executor_shutdown(self, loop: Any) -> None:
        """Detach before ``loop.shutdown_default_executor``: joining threads takes real time.

        ``asyncio.run`` and ``asyncio.Runner.close`` give it a 300 s timeout from Python 3.12 on; on a
        virtual loop that timer is the next thing due, so it would fire at once and warn ("The executor
        did not finishing joining its threads") while the threads are still being joined.
        """
        original = loop.shutdown_default_executor

        async def shutdown_default_executor(*args: Any, **kwargs: Any) -> None:
            self.detach_loop()
            await original(*args, **kwargs)

        loop.shutdown_default_executor = shutdown_default_executor

    def detach_loop(self) -> None:
        """Stop reading the event loop's time; the time it reached is kept.

        Called when the flow ends, and automatically once the attached loop stops running (e.g. after
        ``asyncio.run`` returns), so sync code after an async section continues from the right time.
        """
        loop = self._loop
        if loop is None:
            return
        reached = round(self._base + self._loop_elapsed(loop), _ROUND)
        with self._lock:
            self._frontier = max(self._frontier, reached)
        self._loop = None
        self._base = reached
        if self._looptime_cm is not None:
            self._looptime_cm.__exit__(None, None, None)
            self._looptime_cm = None

    @property
    def loop_attached(self) -> bool:
        """Whether an asyncio loop's (virtual) time is part of this clock and the caller runs on it."""
        return self._running_attached_loop() is not None

    def _running_attached_loop(self) -> asyncio.AbstractEventLoop | None:
        if self._loop is None:
            return None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return running if running is self._loop else None

    def _loop_offset(self) -> float:
        attached = self._loop
        if attached is None:
            return 0.0
        if not attached.is_running():
            self.detach_loop()  # the loop's run ended: fold the time it reached into the base
            return 0.0
        loop = self._running_attached_loop()
        if loop is None:  # a thread doing executor work sees its caller's loop time at submission
            offset: float = getattr(self._executor_thread, "offset", 0.0)
            return offset
        return self._loop_elapsed(loop)

    def _loop_elapsed(self, loop: Any) -> float:
        """Seconds the attached ``loop`` ran since it attached, in whole looptime ticks.

        Both readings are floats near the machine's uptime: their difference is rounded to the loop's
        ticks, else it carries that float's noise (nanoseconds after a year of uptime).
        """
        elapsed: float = loop.time() - self._loop_origin
        ticks = _ticks_per_second(loop)
        return elapsed if ticks is None else round(elapsed * ticks) / ticks

    # -- threads awaited by asyncio code ---------------------------------------------------------------
    @contextmanager
    def executor_timeline(self) -> Iterator[None]:
        """While active, work awaited through ``loop.run_in_executor`` (``asyncio.to_thread``) joins the
        caller's timeline.

        The thread starts at the caller's virtual time (loop time included); when it finishes, the awaiting
        task sleeps on the (virtual) loop until the latest virtual time the thread reached, so two awaited
        calls of 1 s and 2 s take 3 s, and two gathered ones 2 s. The loop of the first such call is
        attached (:meth:`attach_loop`). Re-entrant: the innermost active clock gets the work; the loop class
        is restored when the last one exits.
        """
        _push_executor_clock(self)
        try:
            yield
        finally:
            _pop_executor_clock(self)

    def _submit(self, loop: asyncio.AbstractEventLoop, executor: Any, func: Any, args: Any) -> Any:
        in_thread = executor is None or isinstance(executor, concurrent.futures.ThreadPoolExecutor)
        if not in_thread or not self.attach_loop(loop):  # a process pool: nothing of ours can go along
            return loop.run_in_executor(executor, func, *args)
        with _executor_lock:
            _patch_executor_classes()  # attaching may have imported looptime
        start = self.now()
        offset = self._loop_offset()
        work = self._executor_thread
        reached: list[float] = []

        def run() -> Any:
            work.offset, work.reached = offset, start
            token = self._cursor.set(start - offset)  # a pool thread's own context: start from the caller
            try:
                return func(*args)
            finally:
                self._cursor.reset(token)
                reached.append(work.reached)
                work.reached = None
                del work.offset

        thread = loop.run_in_executor(executor, run)  # (passes through the hooks: the thread's own future)

        async def join() -> None:
            gap = (reached[0] if reached else start) - self.now()
            if gap > 0:
                await self.sleep(gap)

        async def joined() -> Any:
            try:
                result = await thread
            except asyncio.CancelledError:
                raise
            except BaseException:
                await join()  # the work took its time before it failed
                raise
            await join()
            return result

        return loop.create_task(joined())

    async def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass for the calling task (no wall time passes).

        On an attached loop this is ``asyncio.sleep`` on virtual loop time (so timeouts around it fire
        deterministically); elsewhere it advances the branch cursor.
        """
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        if self._real_time is not None and self._real_time():
            await asyncio.sleep(seconds)  # real time: what the caller waits for is real
            return
        if self._running_attached_loop() is not None or self.attach_loop():
            start = self.now()
            try:
                await asyncio.sleep(seconds)
            finally:
                with self._lock:
                    self._frontier = max(self._frontier, min(self.now(), start + seconds))
        else:  # pragma: no cover - only without a patchable loop
            self.advance(seconds)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now():.3f}s, elapsed={self.elapsed:.3f}s)"


_TICKS_ATTR = "_agentflows_ticks"
"""Set on a looptime loop once its ``call_at`` puts timers on ticks (:func:`_timers_on_ticks`)."""
_PAST_THE_TICK = 0.02
"""How far past its tick a timer is put, in ticks: above float noise, below :data:`_DUE_WITHIN`."""
_DUE_WITHIN = 0.1
"""The loop's clock resolution while virtual, in ticks: a timer this close to the loop time is due."""


def _ticks_per_second(loop: Any) -> int | None:
    """Ticks per second of a looptime ``loop`` running on virtual time, else ``None``."""
    ticks = getattr(loop, "_LoopTimeEventLoop__resolution_reciprocal", None)
    if not isinstance(ticks, int) or ticks <= 0 or not loop.looptime_on:
        return None
    return ticks


def _timers_on_ticks(loop: Any) -> None:
    """Make every timer of the looptime ``loop`` due on a tick of its clock, the first one not before it.

    looptime counts the loop time in whole ticks (1 µs by default) and, with nothing else to do, moves it
    by the next timer's timeout rounded to ticks. A timer due between two ticks (an SDK's jittered retry
    wait: ``anyio.sleep(0.4223362)``) is left less than a tick ahead when that rounding goes down; looptime
    before 0.9 then moves 0 ticks per loop iteration while asyncio never reaches the timer, and the loop
    spins in ``select`` for ever (0.9 adds the missing tick itself). So, while looptime runs the loop, a
    timer is scheduled at the first tick at or after its time (nanosecond noise ignored, like asyncio's
    clock resolution): it fires there with any looptime version, less than a tick late. Timers already
    scheduled (on real time, before the loop was made virtual) are moved the same way, in heap order.

    The loop's time is a float near the machine's uptime, so ``when - loop.time()`` carries rounding noise
    of the order of that float's ulp. A timer exactly one tick ahead would then look *less* than a tick
    ahead to looptime 0.9, which adds a tick for such timeouts: it would fire a tick late (2 µs for
    ``sleep(4e-7)``), more often the longer the machine has been up. So a timer is put a fiftieth of a tick
    *past* its tick (far above the noise, up to years of uptime) and asyncio's clock resolution, the
    margin within which it runs a timer as due, is made a tenth of a tick: the timer is due at its tick.
    """
    import heapq
    import math

    def on_tick(when: float) -> float:
        ticks = _ticks_per_second(loop)
        if ticks is None:
            return when
        return (math.ceil(when * ticks - 1e-9 * ticks) + _PAST_THE_TICK) / ticks

    ticks = _ticks_per_second(loop)
    if ticks is not None:
        loop._clock_resolution = max(loop._clock_resolution, _DUE_WITHIN / ticks)
    if not loop.__dict__.get(_TICKS_ATTR):
        call_at = loop.call_at

        def call_at_tick(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
            return call_at(on_tick(when), callback, *args, **kwargs)

        loop.call_at = call_at_tick
        loop.__dict__[_TICKS_ATTR] = True
    scheduled = getattr(loop, "_scheduled", None)
    if isinstance(scheduled, list):
        for handle in scheduled:
            handle._when = on_tick(handle._when)
        heapq.heapify(scheduled)


_executor_lock = threading.Lock()
_executor_clocks: list[VirtualClock] = []
_patched_classes: dict[type, Callable[..., Any]] = {}
_submitting = threading.local()
"""``active`` while a clock submits the wrapped work: the nested ``run_in_executor`` calls pass through."""


def _executor_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """A ``run_in_executor`` that hands the call to the innermost active clock, else to ``original``."""

    def run_in_executor(loop: asyncio.AbstractEventLoop, executor: Any, func: Any, *args: Any) -> Any:
        with _executor_lock:
            clock = _executor_clocks[-1] if _executor_clocks else None
        if clock is None or getattr(_submitting, "active", False):
            return original(loop, executor, func, *args)
        _submitting.active = True
        try:
            return clock._submit(loop, executor, func, args)
        finally:
            _submitting.active = False

    return run_in_executor


def _patch_executor_classes() -> None:
    """Hook ``run_in_executor`` of asyncio's base loop and, once imported, of looptime's loop class.

    looptime's own ``run_in_executor`` makes the loop wait in real time while what it returns is pending;
    hooking it too means it only ever sees the thread's own future, never the caller's join on virtual time.
    """
    classes: list[type] = [asyncio.BaseEventLoop]
    looptime = sys.modules.get("looptime")
    if looptime is not None:
        classes.append(looptime.LoopTimeEventLoop)
    for cls in classes:
        if cls not in _patched_classes and "run_in_executor" in cls.__dict__:
            original = cls.__dict__["run_in_executor"]
            _patched_classes[cls] = original
            cls.run_in_executor = _executor_hook(original)  # type: ignore[attr-defined]


def _push_executor_clock(clock: VirtualClock) -> None:
    with _executor_lock:
        _executor_clocks.append(clock)
        _patch_executor_classes()


def _pop_executor_clock(clock: VirtualClock) -> None:
    with _executor_lock:
        _executor_clocks.remove(clock)
        if not _executor_clocks:
            for cls, original in _patched_classes.items():
                cls.run_in_executor = original  # type: ignore[attr-defined]
            _patched_classes.clear()


class RealClock(VirtualClock):
    """Real (monotonic) time in seconds since the clock was made: what runs outside a flow.

    A :class:`VirtualClock` whose reading is ``time.monotonic()`` and which cannot be moved: ``advance``,
    ``set_time`` and ``join`` only read it, branches share it, ``sleep`` really sleeps and no event loop
    is made virtual. Patterns built outside any flow run on one, so a real network wait is a real wait
    (no timeout fires early), and a :class:`Deadline` made outside any flow measures on one, so the
    articles' ``Deadline(seconds=120).expired()`` means what it says in production.
    """

    virtual = False

    def __init__(self) -> None:
        super().__init__()
        import time

        self._monotonic = time.monotonic
        self._origin = time.monotonic()

    def now(self) -> float:
        """Real seconds since the clock was made (``time.monotonic``)."""
        return round(self._monotonic() - self._origin, _ROUND)

    @property
    def elapsed(self) -> float:
        """The same as :meth:`now`: real time has a single line."""
        return self.now()

    def advance(self, seconds: float) -> float:
        """Real time cannot be moved: returns :meth:`now`."""
        if seconds < 0:
            raise ValueError(f"RealClock.advance() needs seconds >= 0, got {seconds!r}")
        return self.now()

    def set_time(self, at: float) -> float:
        """Real time cannot be moved: returns :meth:`now`."""
        return self.now()

    def branch_context(self, at: float | None = None) -> contextvars.Context:
        """A copy of the current context (branches share real time)."""
        return contextvars.copy_context()

    @contextmanager
    def fork(self) -> Iterator[float]:
        """Yields :meth:`now`; nothing to restore."""
        yield self.now()

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None = None) -> bool:
        """Never: the event loop keeps real time."""
        return False

    def detach_loop(self) -> None:
        """Nothing attached."""

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep(seconds)``: real time passes."""
        await asyncio.sleep(max(float(seconds), 0.0))

    def __repr__(self) -> str:
        return f"RealClock(now={self.now():.3f}s)"
