"""Deadline: virtual-time deadlines and their error message."""

from __future__ import annotations

import math
import pickle

import pytest

from pytest_agentflows.runtime._context import AgentScope
from pytest_agentflows.runtime.clock import RealClock, VirtualClock
from pytest_agentflows.runtime.deadline import Deadline, DeadlineExceeded


def test_defaults_to_real_time_outside_a_flow() -> None:
    """Outside any flow, ``Deadline(seconds)`` (the article's call) measures real monotonic time."""
    d = Deadline(10)
    assert isinstance(d.clock, RealClock)
    assert 0.0 <= d.start < 1.0  # real seconds since the clock was made
    assert d.expires_at == round(d.start + 10.0, 9)
    assert 9.0 < d.remaining() <= 10.0
    assert not d.expired()
    d.check()


def test_counts_from_clock_now() -> None:
    clock = VirtualClock()
    clock.advance(3.5)
    d = Deadline(2, clock)
    assert d.start == 3.5
    assert d.expires_at == 5.5
    clock.advance(1.25)
    assert d.remaining() == 0.75
    assert d.elapsed() == 1.25
    assert not d.expired()


def test_explicit_start() -> None:
    clock = VirtualClock()
    clock.advance(4)
    d = Deadline(5, clock, start=0.0)
    assert d.expires_at == 5
    assert d.remaining() == 1.0


def test_exactly_at_deadline_is_in_time_then_expires() -> None:
    clock = VirtualClock()
    d = Deadline(0.3, clock)
    for _ in range(3):
        clock.advance(0.1)
    assert d.remaining() == 0.0
    assert not d.expired()
    d.check()
    clock.advance(0.001)
    assert d.expired()
    assert d.remaining() == 0.0


def test_check_raises_with_message() -> None:
    clock = VirtualClock()
    d = Deadline(120, clock)
    clock.advance(131.2)
    with pytest.raises(DeadlineExceeded) as info:
        d.check(agent="worker")
    err = info.value
    assert err.seconds == 120
    assert err.elapsed == 131.2
    assert err.agent == "worker"
    message = str(err)
    assert message.startswith("deadline of 120 s exceeded at 131.2 s (virtual) in agent 'worker'. ")
    assert "@pytest.mark.agent_deadline(seconds)" in message


def test_check_names_current_agent() -> None:
    clock = VirtualClock()
    d = Deadline(1, clock)
    clock.advance(2)
    with AgentScope("reviewer"), pytest.raises(DeadlineExceeded) as info:
        d.check()
    assert info.value.agent == "reviewer"
    with pytest.raises(DeadlineExceeded) as info:
        d.check()
    assert info.value.agent is None
    assert "(virtual). " in str(info.value)  # no agent clause


def test_branches_see_their_own_time() -> None:
    clock = VirtualClock()
    d = Deadline(5, clock)
    with clock.fork():
        clock.advance(6)
        assert d.expired()
    assert not d.expired()
    assert d.remaining() == 5.0


@pytest.mark.parametrize("seconds", [0, -1, math.inf, math.nan, "5", None, True])
def test_invalid_seconds(seconds: object) -> None:
    with pytest.raises(ValueError, match=r"Deadline\(seconds=...\) must be a finite number of seconds > 0"):
        Deadline(seconds)  # type: ignore[arg-type]


def test_invalid_start() -> None:
    with pytest.raises(ValueError, match="start"):
        Deadline(1, start=math.nan)


def test_pickle_and_repr() -> None:
    err = DeadlineExceeded(2, 3.14159, "a")
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err)
    assert "at 3.142 s" in str(err)
    assert repr(Deadline(2.5)) == "Deadline(seconds=2.5, start=0, remaining=2.5)"
