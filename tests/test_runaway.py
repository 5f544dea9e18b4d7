"""Budgets stop runaway code: a pub/sub feedback loop under agent_budget(tokens=50) stops after few calls.

Before, budgets were judged only at the end: such a loop made hundreds of model calls before a
``RecursionError``. Now a request made when the cap is already spent raises ``BudgetExceeded`` before it
is sent, while recording and on replay, and the test fails with the spend per agent.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from pytest_agentflows.model_server import LocalModelServer

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""

RUNAWAY = """
import os
import openai
import pytest
from pytest_agentflows import EventBus

async def ask(text):
    async with openai.AsyncOpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="sk-test-0000") as client:
        r = await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
    return r.choices[0].message.content

@pytest.mark.agent_budget(tokens=50)
@pytest.mark.agentflow(save_on_failure=True)
async def test_feedback_loop(agentflow):
    bus = EventBus()

    @bus.on("draft")
    async def writer(event):
        text = await ask("draft: " + event["payload"])
        return await bus.emit("review", payload=text)

    @bus.on("review")
    async def reviewer(event):
        critique = await ask("review: " + event["payload"])
        return await bus.emit("draft", payload=critique)  # never approves: loops forever

    await bus.emit("draft", payload="a haiku about tests")
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makepyfile(test_feedback=RUNAWAY)
    return pytester


def _calls(lines: list[str]) -> int:
    for line in lines:
        found = re.search(r"agentflows: 1 flows?, (\d+) model calls?", line)
        if found:
            return int(found.group(1))
    raise AssertionError("no agentflows summary line:\n" + "\n".join(lines))


def test_runaway_loop_stops_at_the_budget_recording_and_replaying(
    project: pytest.Pytester, model_server: LocalModelServer, go_offline: Callable[[], None]
) -> None:
    recorded = project.runpytest("--record-agents")
    recorded.assert_outcomes(failed=1)
    recorded.stdout.fnmatch_lines(
        [
            "*BudgetExceeded: token budget exceeded: a model request by agent '*' was refused before it was sent*",
            "*Spend per agent:*",
            "*writer: *tokens)*",
        ]
    )
    assert "RecursionError" not in recorded.stdout.str()
    sent = len(model_server.requests)
    assert 2 <= sent <= 4  # the call that crosses 50 tokens is made; nothing after it
    assert _calls(recorded.stdout.lines) == sent

    go_offline()
    replayed = project.runpytest()
    replayed.assert_outcomes(failed=1)
    replayed.stdout.fnmatch_lines(["*was refused before it was sent*", "*Spend per agent:*"])
    assert _calls(replayed.stdout.lines) == sent
    assert len(model_server.requests) == sent  # nothing more reached the server
