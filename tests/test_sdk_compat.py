"""What must read the same whatever SDK major is installed (the CI matrix runs this in both worlds)."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from typing import Any

import anthropic
import openai
import pytest
from stacks import ANTHROPIC_HTTP, HAS_HTTPX2, OPENAI_HTTP, OPENAI_ON_HTTPX2, httpx2

from pytest_agentflows import VirtualClock
from pytest_agentflows.patterns._errtext import error_text

OPENAI_ERROR = {
    "error": {"message": "the checker is down", "type": "server_error", "param": None, "code": None}
}
ANTHROPIC_ERROR = {"type": "error", "error": {"type": "api_error", "message": "the checker is down"}}


def _answering(stack: Any, status: int, payload: Any) -> Any:
    def handler(request: Any) -> Any:
        return stack.Response(
            status, headers={"content-type": "application/json"}, content=json.dumps(payload)
        )

    return stack.Client(transport=stack.MockTransport(handler))


def test_openai_status_error_text_is_the_apis_message() -> None:
    with _answering(OPENAI_HTTP, 500, OPENAI_ERROR) as http:
        client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1", http_client=http, max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert error_text(info.value) == "Error code: 500 - the checker is down"


def test_anthropic_status_error_text_is_the_apis_message() -> None:
    with _answering(ANTHROPIC_HTTP, 500, ANTHROPIC_ERROR) as http:
        client = anthropic.Anthropic(
            api_key="k", base_url="http://127.0.0.1:9", http_client=http, max_retries=0
        )
        with pytest.raises(anthropic.InternalServerError) as info:
            client.messages.create(
                model="claude-haiku-4-5", max_tokens=9, messages=[{"role": "user", "content": "hi"}]
            )
    assert "the checker is down" in str(info.value)  # the SDK's own wording changes with its version
    assert error_text(info.value) == "Error code: 500 - the checker is down"


def test_other_errors_keep_their_text() -> None:
    assert error_text(RuntimeError("boom")) == "boom"
    with _answering(OPENAI_HTTP, 502, "gateway down") as http:  # a JSON string: no error.message to use
        client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1", http_client=http, max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert error_text(info.value) == str(info.value)

    class Custom(Exception):
        status_code = 500

    assert error_text(Custom("Error code: 500 - {'error': {'message': 'x'}}")) == (
        "Error code: 500 - {'error': {'message': 'x'}}"  # no body: left alone
    )


def test_the_installed_world_is_consistent() -> None:
    """The SDKs send through the stack ``tests/stacks.py`` says (a wrong guess would skip the wrong tests)."""
    client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    assert isinstance(client._client, OPENAI_HTTP.Client)
    client.close()
    aclient = anthropic.Anthropic(api_key="k", base_url="http://127.0.0.1:9")
    assert isinstance(aclient._client, ANTHROPIC_HTTP.Client)
    aclient.close()
    assert (httpx2 is not None) == HAS_HTTPX2
    if OPENAI_ON_HTTPX2:
        assert HAS_HTTPX2


def test_asyncio_run_joins_the_executor_on_real_time() -> None:
    """Python >= 3.12 gives the executor shutdown a 300 s timeout; on the virtual loop it must not fire."""
    clock = VirtualClock()

    async def flow() -> float:
        assert clock.attach_loop()
        await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.01)  # starts an executor thread
        await clock.sleep(5)
        return clock.now()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "The executor did not finishing joining its threads within 300 s"
        assert asyncio.run(flow()) == 5.0
    assert clock.now() == 5.0


@pytest.mark.parametrize(
    ("delay", "ends_at"),
    [(0.4223362, 0.422337), (0.4223358, 0.422336), (4e-7, 1e-6), (1e-6, 1e-6), (1e-10, 0.0), (2.5, 2.5)],
)
@pytest.mark.parametrize("uptime", [0.0, 40 * 86400 + 0.3, 3e7 + 0.1], ids=["boot", "40-days", "1-year"])
def test_a_timer_between_two_loop_ticks_fires_at_the_next_one(
    delay: float, ends_at: float, uptime: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """looptime counts the virtual loop time in 1 µs ticks; before 0.9 it froze on a timer due between two.

    Whatever looptime is installed, a timer fires at the first tick at or after its time (a timer
    scheduled before the clock attached too), so the same sleeps take the same virtual time in every leg.
    The loop's time starts at the machine's uptime (``time.monotonic``): the larger it is, the noisier the
    float arithmetic on it; a timer one tick ahead fired a tick late (CI, Python 3.13, looptime 0.9) and,
    after a year of uptime, the loop froze.
    """
    monotonic = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: monotonic() + uptime)
    clock = VirtualClock()

    async def flow() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        early = asyncio.Event()
        loop.call_later(delay + 1.0, early.set)  # scheduled on real time, before the loop is virtual
        assert clock.attach_loop()
        probe = loop.call_later(delay, lambda: None)
        probe.cancel()
        past_the_tick = probe.when() * 1e6 - round(probe.when() * 1e6)
        assert 0 < past_the_tick < 0.1  # due at a tick: fails here instead of hanging below
        await asyncio.sleep(delay)
        slept = clock.now()
        await early.wait()
        return slept, clock.now()

    slept, woke = asyncio.run(flow())
    assert slept == ends_at
    assert 0 < woke - slept <= 1.0  # less the real time that passed before the clock attached
