"""``--record-agents=all`` with a cassette several tests share: rewritten once per run, merged per test."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml

from pytest_agentflows.model_server import LocalModelServer

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""

SHARED = """
import os, openai, pytest

def ask(agentflow, agent, prompt):
    with agentflow.agent(agent), openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0) as c:
        r = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    assert prompt in r.choices[0].message.content

@pytest.mark.agentflow(cassette="shared")
def test_alpha(agentflow):
    ask(agentflow, "alpha", "alpha question")

@pytest.mark.agentflow(cassette="shared")
def test_beta(agentflow):
    ask(agentflow, "beta", "beta question")

@pytest.mark.agentflow(cassette="shared")
def test_gamma(agentflow):
    ask(agentflow, "gamma", "gamma question")
"""


def _agents(pytester: pytest.Pytester) -> list[str]:
    data = yaml.safe_load((pytester.path / "cassettes" / "test_shared" / "shared.yaml").read_text())
    return sorted(i["response"]["agentflows"]["agent"] for i in data["interactions"])


def test_record_all_merges_the_tests_of_a_shared_cassette(
    pytester: pytest.Pytester, model_server: LocalModelServer, go_offline: Callable[[], None]
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_shared=SHARED)
    pytester.runpytest("--record-agents=all").assert_outcomes(passed=3)
    assert _agents(pytester) == ["alpha", "beta", "gamma"]
    # a second run rewrites the cassette afresh (nothing accumulates across runs)
    pytester.runpytest("--record-agents=all").assert_outcomes(passed=3)
    assert _agents(pytester) == ["alpha", "beta", "gamma"]
    # a run of a subset rewrites the cassette with that subset only (what `all` means)
    pytester.runpytest("--record-agents=all", "-k", "alpha or gamma").assert_outcomes(passed=2, deselected=1)
    assert _agents(pytester) == ["alpha", "gamma"]
    pytester.runpytest("--record-agents=all").assert_outcomes(passed=3)
    go_offline()
    pytester.runpytest().assert_outcomes(passed=3)
