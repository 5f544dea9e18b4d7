"""Framework flows named and logged with no glue: openai-agents (tracing processor), OpenTelemetry GenAI
spans (pydantic-ai's ``instrument=True``). Real frameworks, real SDKs, scripted replies in the real wire
formats (``scripted_model``) or the bundled model server."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_agentflows import Flow, ScriptedModel

agents = pytest.importorskip(
    "agents", reason="openai-agents is not installed (pip install -e '.[frameworks]')"
)
pydantic_ai = pytest.importorskip("pydantic_ai", reason="pydantic-ai is not installed")
otel_sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="opentelemetry-sdk is not installed")

from opentelemetry import trace as otel_trace  # noqa: E402
from pydantic_ai import Agent, RunContext  # noqa: E402
from pydantic_ai.capabilities import Instrumentation  # noqa: E402
from pydantic_ai.models.openai import OpenAIChatModel  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
    ignore:unclosed <socket.socket:ResourceWarning
"""


def _kinds(flow: Flow, *kinds: str) -> list[dict[str, Any]]:
    keep = ("agent", "parent_agent", "from_agent", "to_agent", "tool", "error")
    return [
        {"kind": d.kind, **{k: getattr(d, k) for k in keep if hasattr(d, k)}}
        for d in flow.decisions
        if d.kind in kinds
    ]


# -- openai-agents --------------------------------------------------------------------------------------------
def _support_desk() -> Any:
    @agents.function_tool
    def lookup_invoice(invoice_id: str) -> str:
        """Look an invoice up."""
        return f"{invoice_id}: paid on 2026-11-02"

    billing = agents.Agent(name="billing", instructions="Answer billing questions.", tools=[lookup_invoice])
    return agents.Agent(name="triage", instructions="Hand billing questions to billing.", handoffs=[billing])


async def test_openai_agents_handoff_and_tool_are_named_and_logged(
    agentflow: Flow, scripted_model: ScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    scripted_model.openai("triage").tool_call("transfer_to_billing", {})
    scripted_model.openai("billing").tool_call("lookup_invoice", {"invoice_id": "INV-1"}).reply(
        "INV-1 is paid."
    )

    result = await agents.Runner.run(_support_desk(), "Was invoice INV-1 paid?")

    assert result.final_output == "INV-1 is paid."
    assert [c.agent for c in agentflow.calls] == ["triage", "billing", "billing"]
    assert _kinds(agentflow, "agent_run", "handoff", "tool_run") == [
        {"kind": "agent_run", "agent": "triage", "parent_agent": None},
        {"kind": "handoff", "agent": "triage", "from_agent": "triage", "to_agent": "billing"},
        {"kind": "agent_run", "agent": "billing", "parent_agent": "triage"},
        {"kind": "tool_run", "agent": "billing", "tool": "lookup_invoice", "error": None},
    ]
    agentflow.assert_tool_calls(["transfer_to_billing"], agent="triage")
    agentflow.assert_tool_calls([("lookup_invoice", {"invoice_id": "INV-1"})], agent="billing")


async def test_openai_agents_streamed_run_is_named_too(
    agentflow: Flow, scripted_model: ScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    scripted_model.openai("triage").tool_call("transfer_to_billing", {})
    scripted_model.openai("billing").tool_call("lookup_invoice", {"invoice_id": "INV-2"}).reply(
        "INV-2 is paid."
    )

    result = agents.Runner.run_streamed(_support_desk(), "And INV-2?")
    async for _ in result.stream_events():
        pass

    assert result.final_output == "INV-2 is paid."
    assert [c.agent for c in agentflow.calls] == ["triage", "billing", "billing"]
    assert [d.kind for d in agentflow.decisions if d.kind in ("agent_run", "handoff", "tool_run")] == [
        "agent_run",
        "handoff",
        "agent_run",
        "tool_run",
    ]


def test_the_processor_is_gone_after_the_flow() -> None:
    from pytest_agentflows.integrations.openai_agents import _Processor

    processors = agents.tracing.get_trace_provider()._multi_processor._processors
    assert not any(isinstance(p, _Processor) for p in processors)


# -- OpenTelemetry GenAI spans: pydantic-ai ---------------------------------------------------------------
@pytest.fixture
def tracer_provider() -> Any:
    provider = otel_trace.get_tracer_provider()
    if not isinstance(provider, otel_sdk.TracerProvider):
        provider = otel_sdk.TracerProvider()
        otel_trace.set_tracer_provider(provider)
    return provider


def _pydantic_desk() -> Any:
    model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(api_key="sk-test"))
    traced = [Instrumentation()]  # pydantic-ai's OpenTelemetry GenAI spans (Agent.instrument_all() does all)
    billing = Agent(model, name="billing", instructions="Answer billing questions.", capabilities=traced)
    triage = Agent(model, name="triage", instructions="Delegate billing questions.", capabilities=traced)

    @triage.tool
    async def ask_billing(ctx: RunContext[None], question: str) -> str:
        """Ask the billing agent."""
        answer = await billing.run(question, usage=ctx.usage)
        return str(answer.output)

    return triage


async def test_pydantic_ai_delegation_is_named_and_logged(
    tracer_provider: Any, agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    scripted_model.openai("triage").tool_call("ask_billing", {"question": "Was INV-1 paid?"}).reply(
        "Yes, paid."
    )
    scripted_model.openai("billing").reply("INV-1 was paid on 2026-11-02.")

    result = await _pydantic_desk().run("Was invoice INV-1 paid?")

    assert result.output == "Yes, paid."
    assert [c.agent for c in agentflow.calls] == ["triage", "billing", "triage"]
    assert _kinds(agentflow, "agent_run", "tool_run") == [
        {"kind": "agent_run", "agent": "triage", "parent_agent": None},
        {"kind": "agent_run", "agent": "billing", "parent_agent": "triage"},
        {"kind": "tool_run", "agent": "triage", "tool": "ask_billing", "error": None},
    ]


def test_integrations_ini_none_switches_them_off(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "agentflows_integrations = none\n")
    pytester.makepyfile(
        """
        import agents

        def test_off(agentflow):
            processors = agents.tracing.get_trace_provider()._multi_processor._processors
            assert not any(type(p).__name__ == "AgentflowsTracingProcessor" for p in processors)
        """
    )
    pytester.runpytest_inprocess().assert_outcomes(passed=1)


def test_an_unknown_integration_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "agentflows_integrations = openai_agents crewaii\n")
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown integration(s) 'crewaii'*use 'auto', 'none' or any of*"])


# -- record against the model server, replay offline under two hash seeds ---------------------------------
FRAMEWORK_FLOWS = '''
import os

import agents
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import Instrumentation
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

trace.set_tracer_provider(TracerProvider())


@agents.function_tool
def lookup_invoice(invoice_id: str) -> str:
    """Look an invoice up."""
    return f"{invoice_id}: paid"


async def test_openai_agents_desk(agentflow, decision_snapshot, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", os.environ["AF_OPENAI_URL"])
    billing = agents.Agent(name="billing", instructions="Answer billing questions.", tools=[lookup_invoice])
    triage = agents.Agent(name="triage", instructions="Route billing questions.", handoffs=[billing])
    result = await agents.Runner.run(triage, "Was invoice INV-1 paid?")
    assert result.final_output
    assert [c.agent for c in agentflow.calls] == ["triage", "billing", "billing"]
    assert agentflow.decisions == decision_snapshot


async def test_pydantic_ai_desk(agentflow, decision_snapshot):
    model = OpenAIChatModel(
        "gpt-4o-mini", provider=OpenAIProvider(api_key="sk-test", base_url=os.environ["AF_OPENAI_URL"])
    )
    billing = Agent(model, name="billing", instructions="Answer billing questions.", capabilities=[Instrumentation()])
    triage = Agent(model, name="triage", instructions="Delegate.", capabilities=[Instrumentation()])

    @triage.tool
    async def ask_billing(ctx: RunContext[None], question: str) -> str:
        """Ask the billing agent."""
        return str((await billing.run(question, usage=ctx.usage)).output)

    result = await triage.run("Was invoice INV-1 paid?")
    assert result.output
    assert [c.agent for c in agentflow.calls] == ["triage", "billing", "triage"]
    assert agentflow.decisions == decision_snapshot
'''


def test_framework_flows_record_then_replay_offline_under_two_hash_seeds(
    pytester: pytest.Pytester,
    model_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    go_offline: Any,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_desks=FRAMEWORK_FLOWS)
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    recorded = pytester.runpytest_subprocess("--record-agents", "--snapshot-update", "-p", "no:randomly")
    recorded.assert_outcomes(passed=2)
    cassettes = pytester.path / "cassettes" / "test_desks"
    texts = [p.read_text() for p in sorted(cassettes.iterdir())]
    assert len(texts) == 2
    assert not any("traces/ingest" in text for text in texts)  # the trace exporter ran, answered locally
    served = len(model_server.requests)
    snapshot = next(pytester.path.rglob("*.agentflows")).read_text()
    for kind in ("agent_run", "handoff", "tool_run", "tool_call"):
        assert f"kind: {kind}" in snapshot

    go_offline()
    for seed in ("1", "4242"):
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        replayed = pytester.runpytest_subprocess("-p", "no:randomly")
        replayed.assert_outcomes(passed=2)
    assert len(model_server.requests) == served  # nothing reached the server on replay


async def test_openai_agents_guardrail_is_logged(
    agentflow: Flow, scripted_model: ScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")

    @agents.input_guardrail
    def no_secrets(ctx: Any, agent: Any, text: Any) -> Any:
        return agents.GuardrailFunctionOutput(output_info=None, tripwire_triggered="password" in str(text))

    desk = agents.Agent(name="desk", instructions="Help.", input_guardrails=[no_secrets])
    scripted_model.openai("desk").reply("Sure.")

    await agents.Runner.run(desk, "Where is my parcel?")

    guardrails = [d for d in agentflow.decisions if d.kind == "guardrail"]
    assert [(d.agent, d.guardrail, d.triggered) for d in guardrails] == [("desk", "no_secrets", False)]


def test_trace_context_headers_are_not_recorded(
    pytester: pytest.Pytester, model_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an OpenTelemetry SDK provider set, anthropic sends a random ``traceparent``: never stored."""
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import os

        import anthropic
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())


        def test_ask(agentflow):
            client = anthropic.Anthropic(api_key="sk-ant-test", base_url=os.environ["AF_ANTHROPIC_URL"])
            with agentflow.agent("writer"):
                client.messages.create(
                    model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
                )
            client.close()
        """
    )
    pytester.runpytest_subprocess("--record-agents", "-p", "no:randomly").assert_outcomes(passed=1)
    (cassette,) = pytester.path.rglob("*.yaml")
    text = cassette.read_text()
    assert "claude-haiku-4-5" in text and "traceparent" not in text and "tracestate" not in text
