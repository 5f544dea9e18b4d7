"""LangGraph: a supervisor (langgraph-supervisor) hands billing questions to a billing agent with a tool.

No naming code: the ``langgraph`` integration joins every LangChain run of the flow through a callback
handler, names each model call after the agent whose graph node made it and logs the agent runs, the
graph's nodes (with LangGraph's superstep), the handoffs there and back, and the tool run.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_agentflows import Flow

pytest.importorskip("langgraph", reason="pip install 'pytest-agentflows[langgraph]'")
pytest.importorskip("langgraph_supervisor", reason="pip install 'pytest-agentflows[langgraph]'")
pytest.importorskip("langchain_openai", reason="pip install 'pytest-agentflows[langgraph]'")

from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent
from langgraph_supervisor import create_supervisor

# LangGraph 1.x points create_react_agent users to langchain.agents.create_agent; both name agents alike
pytestmark = pytest.mark.filterwarnings("ignore:create_react_agent has been moved:DeprecationWarning")


# --8<-- [start:app]
@tool
def lookup_invoice(invoice_id: str) -> str:
    """Look an invoice up in the billing system."""
    return f"{invoice_id}: paid on 2026-11-02"


def support_desk(base_url: str) -> Any:
    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-placeholder", base_url=base_url)
    billing = create_react_agent(
        model, [lookup_invoice], name="billing", prompt="Answer billing questions; look invoices up."
    )
    return create_supervisor(
        [billing], model=model, prompt="Hand billing questions to the billing agent."
    ).compile()


# --8<-- [end:app]


# --8<-- [start:test]
async def test_the_supervisor_hands_billing_questions_to_billing(
    agentflow: Flow, decision_snapshot, openai_base_url: str
) -> None:
    result = await support_desk(openai_base_url).ainvoke({"messages": [("user", "Was invoice INV-1 paid?")]})

    assert result["messages"][-1].content
    assert [call.agent for call in agentflow.calls] == ["supervisor", "billing", "billing", "supervisor"]
    agentflow.assert_tool_calls(["transfer_to_billing"], agent="supervisor")
    agentflow.assert_tool_calls(["lookup_invoice"], agent="billing", args="ignore")
    handoffs = [(d.from_agent, d.to_agent) for d in agentflow.decisions if d.kind == "handoff"]
    assert handoffs == [("supervisor", "billing"), ("billing", "supervisor")]
    assert agentflow.decisions == decision_snapshot


# --8<-- [end:test]
