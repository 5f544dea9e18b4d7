"""openai-agents: a triage agent hands billing questions to a billing agent, which looks the invoice up.

No naming code: the ``openai_agents`` integration names each model call after the agent that made it and
logs the agent runs, the handoff and the tool run.
"""

from __future__ import annotations

import pytest

from pytest_agentflows import Flow

agents = pytest.importorskip("agents", reason="pip install 'pytest-agentflows[openai-agents]'")


# --8<-- [start:app]
@agents.function_tool
def lookup_invoice(invoice_id: str) -> str:
    """Look an invoice up in the billing system."""
    return f"{invoice_id}: paid on 2026-11-02"


billing = agents.Agent(
    name="billing", instructions="Answer billing questions; look invoices up.", tools=[lookup_invoice]
)
triage = agents.Agent(
    name="triage", instructions="Hand billing questions to the billing agent.", handoffs=[billing]
)
# --8<-- [end:app]


# --8<-- [start:test]
async def test_a_billing_question_is_handed_to_billing(
    agentflow: Flow, decision_snapshot, openai_base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-placeholder")  # replay needs no real key
    monkeypatch.setenv("OPENAI_BASE_URL", openai_base_url)

    result = await agents.Runner.run(triage, "Was invoice INV-1 paid?")

    assert result.final_output
    assert [call.agent for call in agentflow.calls] == ["triage", "billing", "billing"]
    agentflow.assert_tool_calls(["transfer_to_billing"], agent="triage")
    agentflow.assert_tool_calls(["lookup_invoice"], agent="billing", args="ignore")
    assert agentflow.decisions == decision_snapshot


# --8<-- [end:test]
