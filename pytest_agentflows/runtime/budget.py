"""Spending caps for a flow: a USD and token pool with reserve-then-commit stage caps.

A :class:`BudgetPool` is charged with the actual :class:`~pytest_agentflows.Usage` of every model call.
Stages (pipeline stages, broadcast branches, user code) take a :class:`Reservation` first with
:meth:`BudgetPool.acquire`: entering it reserves the stage's ``max_usd`` / ``max_tokens`` and raises
:class:`BudgetExceeded` *before any call* when that does not fit in what is left, so concurrent stages can
never commit more than the cap between them. Calls made while a reservation is active (in the same thread
or asyncio task, tracked by the :data:`current_reservation` context variable) count against it; on exit the
unspent part of the reservation is released and only the actual spend stays committed.

Money already spent is never "undone": a call that costs more than its reservation or takes the pool over
its cap is recorded in full, and :meth:`BudgetPool.check` / :meth:`Reservation.check` raise afterwards.

Everything is thread-safe and asyncio-safe: one :class:`threading.Lock` per pool, never held across an
``await``.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Literal

from ._context import current_agent
from ._models import Usage

__all__ = [
    "UNATTRIBUTED",
    "BudgetExceeded",
    "BudgetPool",
    "PriceUnknownError",
    "Reservation",
    "current_reservation",
]

BudgetKind = Literal["usd", "tokens"]
_KINDS: tuple[BudgetKind, BudgetKind] = ("usd", "tokens")

UNATTRIBUTED = "(no agent)"
"""Key of :attr:`BudgetPool.per_agent` for spend made outside any agent."""

_EPS = 1e-12  # float tolerance when comparing USD amounts with caps
_ROUND = 12  # decimal places kept in USD sums (as Usage.__add__ does)

current_reservation: contextvars.ContextVar[Reservation | None] = contextvars.ContextVar(
    "agentflows_reservation", default=None
)
"""The innermost active :class:`Reservation` of the calling thread or asyncio task, or ``None``."""


# -- formatting ------------------------------------------------------------------------------------------
def _usd(value: float) -> str:
    """``$0.05``, ``$0.000123``, ``$1.2345``: up to 6 decimals, at least 2."""
    text = f"{value:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def _clean(value: float) -> float:
    """Round float noise away (and turn ``-0.0`` into ``0.0``)."""
    return 0.0 if abs(value) < _EPS else round(value, _ROUND)


def _amount(kind: BudgetKind, value: float) -> str:
    return _usd(value) if kind == "usd" else f"{int(value):,} tokens"


def _per_agent_lines(per_agent: dict[str, Usage]) -> str:
    if not per_agent:
        return "Spend per agent: none recorded."
    parts = []
    for name, usage in per_agent.items():
        cost = "unknown price" if usage.cost_usd is None else _usd(usage.cost_usd)
        parts.append(
            f"  {name}: {cost} ({usage.input_tokens:,} input + {usage.output_tokens:,} output tokens)"
        )
    return "Spend per agent:\n" + "\n".join(parts)


# -- errors ----------------------------------------------------------------------------------------------
class BudgetExceeded(Exception):
    """A USD or token cap was exceeded, or a stage's reservation did not fit in what was left.

    Also raised *before a model request is sent* when a cap that applies to it is already spent (spend
    >= cap: the flow's, an enclosing reservation's or its pool's); then ``refused`` is ``True``.

    Attributes:
        kind: ``"usd"`` or ``"tokens"``: which cap.
        limit: The cap, in USD or tokens.
        spent: What was spent against that cap when the error was raised, in USD or tokens.
        requested: For a refused reservation, the stage's ``max_usd`` / ``max_tokens``; after a charge,
            the cost of the call that went over.
        reserved: Amount held by other running stages when a reservation was refused (USD or tokens).
        agent: Name of the agent or stage concerned, or ``None``.
        per_agent: Spend per agent of the whole pool (agent name -> :class:`Usage`), sorted by name.
        before_start: ``True`` when a reservation was refused, so the stage made no call.
        cap_of: ``None`` for the flow's budget, else the name of the stage whose own cap this is.
        refused: ``True`` when a model request was refused before it was sent (cap already spent).
    """

    def __init__(
        self,
        kind: BudgetKind,
        limit: float,
        spent: float,
        requested: float,
        agent: str | None = None,
        per_agent: dict[str, Usage] | None = None,
        *,
        reserved: float = 0.0,
        before_start: bool = False,
        cap_of: str | None = None,
        refused: bool = False,
    ) -> None:
        self.kind: BudgetKind = kind
        self.refused = refused
        self.limit = limit
        self.spent = spent
        self.requested = requested
        self.reserved = reserved
        self.agent = agent
        self.per_agent: dict[str, Usage] = dict(per_agent or {})
        self.before_start = before_start
        self.cap_of = cap_of
        super().__init__(self._message())

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.kind, self.limit, self.spent, self.requested, self.agent, self.per_agent)
        kwargs = {
            "reserved": self.reserved,
            "before_start": self.before_start,
            "cap_of": self.cap_of,
            "refused": self.refused,
        }
        return (_rebuild_budget_exceeded, (args, kwargs))

    def _message(self) -> str:
        kind = self.kind
        unit = "USD" if kind == "usd" else "token"
        who = f"agent {self.agent!r}" if self.agent else "a stage with no agent name"
        field = "max_usd" if kind == "usd" else "max_tokens"
        if self.cap_of is None:
            cap = f"the {_amount(kind, self.limit)} {unit} budget"
        else:
            limit = _usd(self.limit) if kind == "usd" else f"{int(self.limit):,}"
            cap = f"the {field}={limit} of stage {self.cap_of!r}"
        if self.refused:
            what = (
                f"{unit} budget exceeded: a model request by {who} was refused before it was sent: "
                f"{_amount(kind, self.spent)} already spent of {cap}, nothing is left for another call."
            )
        elif self.before_start:
            left = max(self.limit - self.spent - self.reserved, 0.0)
            wants = (
                f"it reserves up to {_amount(kind, self.requested)}"
                if self.requested > 0
                else "it has no cap of its own and needs any amount"
            )
            what = (
                f"{unit} budget exceeded: {who} did not start (no model call made): {wants} but only "
                f"{_amount(kind, left)} of {cap} is left ({_amount(kind, self.spent)} spent, "
                f"{_amount(kind, self.reserved)} reserved by running stages)."
            )
        else:
            by = f" by {who}" if self.agent else ""
            what = (
                f"{unit} budget exceeded: {_amount(kind, self.spent)} spent against {cap} "
                f"(the last call{by} {'cost' if kind == 'usd' else 'used'} {_amount(kind, self.requested)})."
            )
        if self.cap_of is None:
            fix = (
                f"Fix: raise the cap in @pytest.mark.agent_budget({kind}=...) (or BudgetPool({kind}=...)), "
                f"or lower the stage's {field}."
            )
        elif self.before_start or self.refused:
            fix = (
                f"Fix: raise the {field} of stage {self.cap_of!r}, "
                f"or lower the {field} of the stages inside it."
            )
        else:
            fix = f"Fix: raise the {field} of stage {self.cap_of!r}, or make its calls cheaper."
        return f"{what}\n{_per_agent_lines(self.per_agent)}\n{fix}"


def _rebuild_budget_exceeded(args: tuple[Any, ...], kwargs: dict[str, Any]) -> BudgetExceeded:
    return BudgetExceeded(*args, **kwargs)


class PriceUnknownError(ValueError):
    """A call with no known price (``Usage.cost_usd is None``) was charged against a USD cap.

    Attributes:
        model: The model name, as the response gave it (``None`` if the caller did not say).
        agent: The agent that made the call, or ``None``.
    """

    def __init__(self, model: str | None = None, agent: str | None = None) -> None:
        self.model = model
        self.agent = agent
        what = f"model {model!r}" if model else "the model of this call"
        by = f" (called by agent {agent!r})" if agent else ""
        super().__init__(
            f"genai-prices has no price for {what}{by}, so its cost cannot be charged against a USD "
            "budget. Its tokens were recorded. Fix: cap tokens instead with "
            "@pytest.mark.agent_budget(tokens=...) (or BudgetPool(tokens=...)), or upgrade genai-prices "
            "to a version that knows the model."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.model, self.agent))


# -- accounting ------------------------------------------------------------------------------------------
class _Tally:
    """A running :class:`Usage` total kept in plain numbers: adding a call builds no model.

    :meth:`usage` gives exactly what summing the calls' ``Usage`` objects with ``+`` would (the same
    rounding of the cost at each step).
    """

    __slots__ = ("cache_read", "cache_write", "cost", "input", "output")

    def __init__(self) -> None:
        self.input = self.output = self.cache_read = self.cache_write = 0
        self.cost: float | None = 0.0

    def add(self, usage: Usage) -> None:
        self.input += usage.input_tokens
        self.output += usage.output_tokens
        self.cache_read += usage.cache_read_tokens
        self.cache_write += usage.cache_write_tokens
        cost = usage.cost_usd
        self.cost = None if self.cost is None or cost is None else round(self.cost + cost, 12)

    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input,
            output_tokens=self.output,
            cost_usd=self.cost,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
        )


def _per_agent_usage(per_agent: dict[str, _Tally]) -> dict[str, Usage]:
    """``{agent: Usage}`` sorted by agent name."""
    return {agent: per_agent[agent].usage() for agent in sorted(per_agent)}


class _Account:
    """What the pool and a reservation share: caps, spend, and what child reservations hold."""

    cap_usd: float | None
    cap_tokens: int | None

    def __init__(self, cap_usd: float | None, cap_tokens: int | None) -> None:
        self.cap_usd = cap_usd
        self.cap_tokens = cap_tokens
        self._spent_usd = 0.0
        self._spent_tokens = 0
        self._held_usd = 0.0
        self._held_tokens = 0
        self._usage = _Tally()

    def _cap(self, kind: BudgetKind) -> float | None:
        return self.cap_usd if kind == "usd" else self.cap_tokens

    def _spent(self, kind: BudgetKind) -> float:
        return self._spent_usd if kind == "usd" else self._spent_tokens

    def _held(self, kind: BudgetKind) -> float:
        return self._held_usd if kind == "usd" else self._held_tokens

    def _over(self, kind: BudgetKind) -> bool:
        cap = self._cap(kind)
        return cap is not None and self._spent(kind) > cap + _EPS

    def _add_spend(self, usage: Usage) -> None:
        if usage.cost_usd is not None:
            self._spent_usd = round(self._spent_usd + usage.cost_usd, _ROUND)
        self._spent_tokens += usage.total_tokens
        self._usage.add(usage)


def _check_caps(usd: float | None, tokens: int | None, what: str) -> None:
    if usd is not None and (not isinstance(usd, (int, float)) or isinstance(usd, bool) or usd < 0):
        raise ValueError(f"{what} usd must be a number of US dollars >= 0 or None, got {usd!r}")
    if tokens is not None and (not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0):
        raise ValueError(f"{what} tokens must be an integer >= 0 or None, got {tokens!r}")


class BudgetPool(_Account):
    """USD and token caps shared by every agent of a flow.

    Args:
        usd: Cap in US dollars, or ``None`` for no USD cap.
        tokens: Cap in tokens (input + output), or ``None`` for no token cap.

    Raises:
        ValueError: if a cap is negative or of the wrong type.

    Thread-safe and asyncio-safe. Spend is committed by :meth:`charge`; :meth:`acquire` gives stage caps.
    """

    def __init__(self, usd: float | None = None, tokens: int | None = None) -> None:
        _check_caps(usd, tokens, "BudgetPool")
        super().__init__(None if usd is None else float(usd), tokens)
        # a flow wraps its own pool's and log's lock to settle its deferred calls first (flow.on_exchange)
        self._lock: AbstractContextManager[Any] = threading.Lock()
        self._per_agent: dict[str, _Tally] = {}
        self._calls = 0
        # The charge that first took the pool over a cap, per kind: (agent, amount of that charge).
        self._overrun: dict[BudgetKind, tuple[str | None, float]] = {}

    # -- caps and totals -------------------------------------------------------------------------------
    @property
    def usd(self) -> float | None:
        """The USD cap, or ``None``."""
        return self.cap_usd

    @property
    def tokens(self) -> int | None:
        """The token cap (input + output tokens), or ``None``."""
        return self.cap_tokens

    @property
    def spent_usd(self) -> float:
        """US dollars committed by :meth:`charge` (calls with an unknown price count as 0)."""
        with self._lock:
            return self._spent_usd

    @property
    def spent_tokens(self) -> int:
        """Tokens (input + output) committed by :meth:`charge`."""
        with self._lock:
            return self._spent_tokens

    @property
    def reserved_usd(self) -> float:
        """US dollars held by active reservations beyond what they have already spent."""
        with self._lock:
            return _clean(self._held_usd)

    @property
    def reserved_tokens(self) -> int:
        """Tokens held by active reservations beyond what they have already spent."""
        with self._lock:
            return self._held_tokens

    @property
    def remaining_usd(self) -> float | None:
        """US dollars neither spent nor reserved (>= 0), or ``None`` without a USD cap."""
        with self._lock:
            if self.cap_usd is None:
                return None
            return max(0.0, _clean(self.cap_usd - self._spent_usd - self._held_usd))

    @property
    def remaining_tokens(self) -> int | None:
        """Tokens neither spent nor reserved (>= 0), or ``None`` without a token cap."""
        with self._lock:
            if self.cap_tokens is None:
                return None
            return max(self.cap_tokens - self._spent_tokens - self._held_tokens, 0)

    @property
    def usage(self) -> Usage:
        """Total usage charged (``cost_usd`` is ``None`` if any call had an unknown price)."""
        with self._lock:
            return self._usage.usage()

    @property
    def calls(self) -> int:
        """Number of charges committed."""
        with self._lock:
            return self._calls

    @property
    def per_agent(self) -> dict[str, Usage]:
        """Usage per agent name, sorted by name; spend outside any agent is under :data:`UNATTRIBUTED`."""
        with self._lock:
            return _per_agent_usage(self._per_agent)

    @property
    def exceeded(self) -> bool:
        """Whether the committed spend is over the USD or the token cap."""
        with self._lock:
            return self._over("usd") or self._over("tokens")

    # -- charging --------------------------------------------------------------------------------------
    def charge(self, usage: Usage, agent: str | None = None, *, model: str | None = None) -> bool:
        """Commit the actual usage of one model call.

        The call also counts against the active reservations of this pool in the calling thread or task
        (see :data:`current_reservation`). The spend is recorded even when it goes over a cap (the money
        is gone); call :meth:`check` to raise then.

        Args:
            usage: Tokens and price (USD) of the call.
            agent: Agent that made the call; default: the active reservation's agent, else the current
                agent (``Flow.agent``), else :data:`UNATTRIBUTED`.
            model: Model name, only used in the :class:`PriceUnknownError` message.

        Returns:
            ``True`` while the pool and the active reservations are within their caps, ``False`` once
            a cap is exceeded.

        Raises:
            PriceUnknownError: if ``usage.cost_usd`` is ``None`` and a USD cap applies (the pool's or an
                active reservation's ``max_usd``). The tokens are recorded before it is raised.
        """
        return self._charge(usage, agent, model, _active_reservation(self))

    def check(self) -> None:
        """Raise if the committed spend is over a cap.

        Raises:
            BudgetExceeded: naming the cap, the spend, the call that went over and the spend per agent.
        """
        with self._lock:
            error = self._error_if_over()
        if error is not None:
            raise error

    def acquire(
        self, max_usd: float | None = None, max_tokens: int | None = None, agent: str | None = None
    ) -> Reservation:
        """A stage cap, to use as ``with pool.acquire(max_usd=0.05):`` or ``async with``.

        Entering reserves ``max_usd`` / ``max_tokens`` and raises :class:`BudgetExceeded` before any call
        if ``spent + reserved + max`` is over the cap (or, with no max given, if nothing is left).

        Args:
            max_usd: Most the stage may spend, in US dollars (``None``: no stage cap in USD).
            max_tokens: Most the stage may use, in tokens (``None``: no stage cap in tokens).
            agent: Agent or stage name, used for attribution and in error messages.

        Raises:
            ValueError: if a maximum is negative or of the wrong type.
        """
        return Reservation(self, max_usd=max_usd, max_tokens=max_tokens, agent=agent)

    # -- internals (the lock is held by callers of the _locked helpers) -------------------------------
    def _charge(
        self, usage: Usage, agent: str | None, model: str | None, reservation: Reservation | None
    ) -> bool:
        if agent is None and reservation is not None:
            agent = reservation.agent
        if agent is None:
            agent = current_agent.get()
        key = agent if agent is not None else UNATTRIBUTED
        chain = reservation._chain() if reservation is not None else []
        with self._lock:
            self._calls += 1
            self._add_spend(usage)
            tally = self._per_agent.get(key)
            if tally is None:
                tally = self._per_agent[key] = _Tally()
            tally.add(usage)
            for res in chain:
                res._add_spend(usage)
                res._update_hold()
            for kind in _KINDS:
                if kind not in self._overrun and self._over(kind):
                    amount = (usage.cost_usd or 0.0) if kind == "usd" else usage.total_tokens
                    self._overrun[kind] = (agent, amount)
            for res in chain:
                res._note_overrun(usage, agent)
            ok = not (self._over("usd") or self._over("tokens")) and not any(
                res._over("usd") or res._over("tokens") for res in chain
            )
            needs_price = usage.cost_usd is None and (
                self.cap_usd is not None or any(res.cap_usd is not None for res in chain)
            )
        if needs_price:
            raise PriceUnknownError(model, agent)
        return ok

    def _error_if_over(self) -> BudgetExceeded | None:
        for kind in _KINDS:
            if self._over(kind):
                cap = self._cap(kind)
                assert cap is not None
                agent, amount = self._overrun.get(kind, (None, 0.0))
                return BudgetExceeded(
                    kind,
                    cap,
                    self._spent(kind),
                    amount,
                    agent,
                    _per_agent_usage(self._per_agent),
                )
        return None

    def __repr__(self) -> str:
        caps = ", ".join(
            f"{name}={value!r}" for name, value in (("usd", self.cap_usd), ("tokens", self.cap_tokens))
        )
        return f"BudgetPool({caps}, spent_usd={self.spent_usd!r}, spent_tokens={self.spent_tokens!r})"


def _active_reservation(pool: BudgetPool) -> Reservation | None:
    """The innermost active reservation of ``pool`` in the calling context (skipping other pools')."""
    res = current_reservation.get()
    while res is not None and res.pool is not pool:
        res = res._outer
    return res


class Reservation(_Account):
    """A stage's share of a :class:`BudgetPool`: reserve on enter, commit actual spend, release on exit.

    Made by :meth:`BudgetPool.acquire`; use it once, as a sync or async context manager. Reservations
    nest: a reservation taken inside another one of the same pool is reserved from the outer one's cap.

    Attributes:
        pool: The pool it draws from.
        max_usd: Most the stage may spend, in US dollars, or ``None``.
        max_tokens: Most the stage may use, in tokens, or ``None``.
        agent: Agent or stage name, or ``None``.
    """

    def __init__(
        self,
        pool: BudgetPool,
        *,
        max_usd: float | None = None,
        max_tokens: int | None = None,
        agent: str | None = None,
    ) -> None:
        _check_caps(max_usd, max_tokens, "acquire():")
        super().__init__(None if max_usd is None else float(max_usd), max_tokens)
        self.pool = pool
        self.agent = agent
        self._state: Literal["new", "active", "closed"] = "new"
        self._outer: Reservation | None = None  # previous value of current_reservation (any pool)
        self._parent: Reservation | None = None  # enclosing active reservation of the same pool
        self._holder_usd: _Account | None = None  # where this reservation's USD is held
        self._holder_tokens: _Account | None = None
        self._cv_token: contextvars.Token[Reservation | None] | None = None
        self._overrun: dict[BudgetKind, tuple[str | None, float]] = {}
        self._own_hold_usd = 0.0  # what this reservation holds in its holder right now
        self._own_hold_tokens = 0

    @property
    def max_usd(self) -> float | None:
        """Most the stage may spend, in US dollars, or ``None``."""
        return self.cap_usd

    @property
    def max_tokens(self) -> int | None:
        """Most the stage may use, in tokens, or ``None``."""
        return self.cap_tokens

    @property
    def spent_usd(self) -> float:
        """US dollars spent by calls attributed to this reservation."""
        with self.pool._lock:
            return self._spent_usd

    @property
    def spent_tokens(self) -> int:
        """Tokens used by calls attributed to this reservation."""
        with self.pool._lock:
            return self._spent_tokens

    @property
    def usage(self) -> Usage:
        """Total usage of the calls attributed to this reservation."""
        with self.pool._lock:
            return self._usage.usage()

    @property
    def remaining_usd(self) -> float | None:
        """US dollars the stage may still spend (>= 0), or ``None`` without ``max_usd``."""
        with self.pool._lock:
            if self.cap_usd is None:
                return None
            return max(0.0, _clean(self.cap_usd - self._spent_usd - self._held_usd))

    @property
    def remaining_tokens(self) -> int | None:
        """Tokens the stage may still use (>= 0), or ``None`` without ``max_tokens``."""
        with self.pool._lock:
            if self.cap_tokens is None:
                return None
            return max(self.cap_tokens - self._spent_tokens - self._held_tokens, 0)

    @property
    def active(self) -> bool:
        """Whether the reservation has been entered and not yet exited."""
        return self._state == "active"

    @property
    def exceeded(self) -> bool:
        """Whether the stage has spent more than its own ``max_usd`` / ``max_tokens``."""
        with self.pool._lock:
            return self._over("usd") or self._over("tokens")

    def charge(self, usage: Usage, *, agent: str | None = None, model: str | None = None) -> bool:
        """Commit a call's usage to the pool, attributed to this reservation (whatever the context).

        Args:
            usage: Tokens and price (USD) of the call.
            agent: Agent that made the call (default: this reservation's agent).
            model: Model name, for the :class:`PriceUnknownError` message.

        Returns:
            ``True`` while the pool and this reservation (and those enclosing it) are within their caps.

        Raises:
            RuntimeError: if the reservation is not active.
            PriceUnknownError: as :meth:`BudgetPool.charge`.
        """
        if self._state != "active":
            raise RuntimeError(f"reservation {self.agent!r} is not active: charge it inside its `with` block")
        return self.pool._charge(usage, agent, model, self)

    def check(self) -> None:
        """Raise if this stage went over its own cap, or the pool over its cap.

        Raises:
            BudgetExceeded: with ``cap_of`` set to the stage's name for the stage's own cap.
        """
        with self.pool._lock:
            error = self._error_if_over() or self.pool._error_if_over()
        if error is not None:
            raise error

    # -- context manager -------------------------------------------------------------------------------
    def __enter__(self) -> Reservation:
        if self._state != "new":
            raise RuntimeError("a Reservation can be entered only once; call pool.acquire() again")
        outer = current_reservation.get()
        parent = outer
        while parent is not None and parent.pool is not self.pool:
            parent = parent._outer
        pool = self.pool
        with pool._lock:
            ancestors: list[_Account] = [*(parent._chain() if parent is not None else []), pool]
            holders: dict[BudgetKind, _Account | None] = {}
            for kind in _KINDS:
                holders[kind] = self._reserve_check(kind, ancestors)
            for kind, holder in holders.items():
                if holder is None:
                    continue
                amount = self._cap(kind) or 0
                if kind == "usd":
                    holder._held_usd = _clean(holder._held_usd + amount)
                    self._holder_usd = holder
                else:
                    holder._held_tokens += int(amount)
                    self._holder_tokens = holder
            self._own_hold_usd = self.cap_usd or 0.0
            self._own_hold_tokens = self.cap_tokens or 0
            self._parent = parent
            self._outer = outer
            self._state = "active"
        self._cv_token = current_reservation.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state != "active":
            return
        with self.pool._lock:
            self._release_hold()
            self._state = "closed"
        token, self._cv_token = self._cv_token, None
        if token is not None:
            try:
                current_reservation.reset(token)
            except ValueError:  # exited in another context than it was entered in
                current_reservation.set(self._outer)

    async def __aenter__(self) -> Reservation:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- internals (called with the pool's lock held) --------------------------------------------------
    def _chain(self) -> list[Reservation]:
        """This reservation and the active ones of the same pool enclosing it, innermost first."""
        chain: list[Reservation] = []
        res: Reservation | None = self
        while res is not None:
            chain.append(res)
            res = res._parent
        return chain

    def _reserve_check(self, kind: BudgetKind, ancestors: list[_Account]) -> _Account | None:
        """Raise if this stage does not fit; return the account that will hold its reservation."""
        requested = self._cap(kind)
        holder: _Account | None = None
        for account in ancestors:
            cap = account._cap(kind)
            if cap is None:
                continue
            spent, held = account._spent(kind), account._held(kind)
            if holder is None:
                holder = account
                if requested is None:
                    fits = spent + held < cap - _EPS
                else:
                    fits = spent + held + requested <= cap + _EPS
            else:
                # Outer caps already hold room for the holder; they only must not be blown.
                fits = spent <= cap + _EPS
            if not fits:
                raise BudgetExceeded(
                    kind,
                    cap,
                    spent,
                    requested or 0,
                    self.agent,
                    _per_agent_usage(self.pool._per_agent),
                    reserved=held,
                    before_start=True,
                    cap_of=(account.agent or "(unnamed stage)") if isinstance(account, Reservation) else None,
                )
        return holder if requested is not None else None

    def _update_hold(self) -> None:
        """Shrink what this reservation holds in its holder to ``max - spent`` (>= 0)."""
        if self._state != "active":
            return
        if self._holder_usd is not None and self.cap_usd is not None:
            new = max(self.cap_usd - self._spent_usd, 0.0)
            self._holder_usd._held_usd = _clean(self._holder_usd._held_usd + new - self._own_hold_usd)
            self._own_hold_usd = new
        if self._holder_tokens is not None and self.cap_tokens is not None:
            new_tokens = max(self.cap_tokens - self._spent_tokens, 0)
            self._holder_tokens._held_tokens += new_tokens - self._own_hold_tokens
            self._own_hold_tokens = new_tokens

    def _release_hold(self) -> None:
        if self._holder_usd is not None:
            self._holder_usd._held_usd = max(0.0, _clean(self._holder_usd._held_usd - self._own_hold_usd))
        if self._holder_tokens is not None:
            self._holder_tokens._held_tokens -= self._own_hold_tokens
        self._own_hold_usd = 0.0
        self._own_hold_tokens = 0
        self._holder_usd = self._holder_tokens = None

    def _note_overrun(self, usage: Usage, agent: str | None) -> None:
        for kind in _KINDS:
            if kind not in self._overrun and self._over(kind):
                amount = (usage.cost_usd or 0.0) if kind == "usd" else usage.total_tokens
                self._overrun[kind] = (agent, amount)

    def _error_if_over(self) -> BudgetExceeded | None:
        for kind in _KINDS:
            if self._over(kind):
                cap = self._cap(kind)
                assert cap is not None
                agent, amount = self._overrun.get(kind, (self.agent, 0.0))
                return BudgetExceeded(
                    kind,
                    cap,
                    self._spent(kind),
                    amount,
                    agent,
                    _per_agent_usage(self.pool._per_agent),
                    cap_of=self.agent or "(unnamed stage)",
                )
        return None

    def __repr__(self) -> str:
        return (
            f"Reservation(agent={self.agent!r}, max_usd={self.cap_usd!r}, max_tokens={self.cap_tokens!r}, "
            f"state={self._state!r})"
        )


# -- binding to the running code: enclosing pools, refusing requests -----------------------------------
def _context_reservations() -> list[Reservation]:
    """The active reservations of the calling context, innermost first (of any pool)."""
    out: list[Reservation] = []
    res = current_reservation.get()
    while res is not None:
        if res.active:
            out.append(res)
        res = res._outer
    return out


def charge_enclosing(usage: Usage, agent: str | None, *, model: str | None, exclude: BudgetPool) -> None:
    """Charge a call to every other pool with an active reservation in the calling context.

    The articles' code makes its own :class:`BudgetPool` and calls models inside ``pool.acquire(...)``
    blocks; the flow charges its own pool and, through this, the app's pools and their reservations.
    An unknown price under a USD cap is left to the verdicts (as for the flow's pool).

    Args:
        usage: Tokens and price of the call.
        agent: Agent that made the call.
        model: Model name (for :class:`PriceUnknownError`).
        exclude: The pool already charged (the flow's).
    """
    seen: set[int] = {id(exclude)}
    for res in _context_reservations():
        pool = res.pool
        if id(pool) in seen:
            continue
        seen.add(id(pool))
        with contextlib.suppress(PriceUnknownError):
            pool._charge(usage, agent, model, _active_reservation(pool))


def _spent_out(account: _Account) -> BudgetKind | None:
    for kind in _KINDS:
        cap = account._cap(kind)
        if cap is not None and account._spent(kind) >= cap - _EPS:
            return kind
    return None


def refusal(flow_pool: BudgetPool | None) -> BudgetExceeded | None:
    """The error for a model request that must not be sent, or ``None`` when it may go.

    A request is refused when a cap that applies to it is already spent (spend >= cap): the flow's pool,
    any reservation active in the calling context, or that reservation's pool. The call that crossed a
    cap was charged; the next one is refused before anything is sent.

    Args:
        flow_pool: The active flow's pool, or ``None``.
    """
    if current_reservation.get() is None and (
        flow_pool is None or (flow_pool.cap_usd is None and flow_pool.cap_tokens is None)
    ):
        return None  # no cap applies (the usual flow): nothing to look up
    agent = current_agent.get()
    accounts: list[tuple[_Account, BudgetPool]] = []
    for res in _context_reservations():
        accounts.append((res, res.pool))
        accounts.append((res.pool, res.pool))
    if flow_pool is not None:
        accounts.append((flow_pool, flow_pool))
    for account, pool in accounts:
        with pool._lock:
            kind = _spent_out(account)
            if kind is None:
                continue
            cap = account._cap(kind)
            assert cap is not None
            cap_of = (account.agent or "(unnamed stage)") if isinstance(account, Reservation) else None
            return BudgetExceeded(
                kind,
                cap,
                account._spent(kind),
                0,
                agent,
                _per_agent_usage(pool._per_agent),
                cap_of=cap_of,
                refused=True,
            )
    return None
