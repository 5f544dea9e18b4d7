"""pydantic-ai: a triage agent delegates to a billing agent through a tool (agent delegation).

No naming code: pydantic-ai's OpenTelemetry instrumentation opens an ``invoke_agent`` span per agent run
and an ``execute_tool`` span per tool run; the ``otel`` integration turns them into agent names, agent
runs and tool runs.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_agentflows import Flow

pytest.importorskip("pydantic_ai", reason="pip install 'pytest-agentflows[pydantic-ai]'")
pytest.importorskip("opentelemetry.sdk.trace", reason="pip install opentelemetry-sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import Instrumentation
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider


# --8<-- [start:setup]
@pytest.fixture(scope="session", autouse=True)
def tracer_provider() -> Any:
    """An OpenTelemetry SDK tracer provider: with none, no span is recorded (logfire.configure() sets one)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    return trace.get_tracer_provider()


# --8<-- [end:setup]


# --8<-- [start:app]
def support_desk(base_url: str) -> Agent[None, str]:
    model = OpenAIChatModel(
        "gpt-4o-mini", provider=OpenAIProvider(api_key="sk-placeholder", base_url=base_url)
    )
    traced = [Instrumentation()]  # or Agent.instrument_all()
    billing = Agent(model, name="billing", instructions="Answer billing questions.", capabilities=traced)
    triage = Agent(model, name="triage", instructions="Delegate billing questions.", capabilities=traced)

    @triage.tool
    async def ask_billing(ctx: RunContext[None], question: str) -> str:
        """Ask the billing agent."""
        answer = await billing.run(question, usage=ctx.usage)
        return answer.output

    return triage


# --8<-- [end:app]


# --8<-- [start:test]
async def test_triage_delegates_to_billing(agentflow: Flow, decision_snapshot, openai_base_url: str) -> None:
    result = await support_desk(openai_base_url).run("Was invoice INV-1 paid?")

    assert result.output
    assert [call.agent for call in agentflow.calls] == ["triage", "billing", "triage"]
    assert [d.kind for d in agentflow.decisions if d.kind in ("agent_run", "tool_run")] == [
        "agent_run",
        "agent_run",
        "tool_run",
    ]
    assert agentflow.decisions == decision_snapshot


# --8<-- [end:test]
