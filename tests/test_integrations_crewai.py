"""CrewAI flows named and logged with no glue (the ``crewai`` integration)."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_agentflows import Flow, ScriptedModel

crewai = pytest.importorskip("crewai", reason="CrewAI is not installed (pip install -e '.[crewai]')")

from crewai.tools import tool  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _kinds(flow: Flow, *kinds: str) -> list[dict[str, Any]]:
    keep = ("agent", "parent_agent", "from_agent", "to_agent", "tool", "error")
    return [
        {"kind": d.kind, **{k: getattr(d, k) for k in keep if hasattr(d, k)}}
        for d in flow.decisions
        if d.kind in kinds
    ]


@tool("lookup_invoice")
def lookup_invoice(invoice_id: str) -> str:
    """Look an invoice up in the billing system."""
    return f"{invoice_id}: paid on 2026-11-02"


def _crew() -> Any:
    llm = crewai.LLM(model="gpt-4o-mini", api_key="sk-test")
    billing = crewai.Agent(role="billing", goal="Answer billing questions", backstory="You know invoices.", tools=[lookup_invoice], llm=llm)
    triage = crewai.Agent(role="triage", goal="Route questions to the right coworker", backstory="You route.", allow_delegation=True, llm=llm)
    task = crewai.Task(description="Was invoice INV-1 paid?", expected_output="A short answer.", agent=triage)
    return crewai.Crew(agents=[triage, billing], tasks=[task])


def test_crewai_delegation_and_tool_are_named_and_logged(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    scripted_model.openai("triage").tool_call(
        "delegate_work_to_coworker", {"task": "Was INV-1 paid?", "context": "invoice INV-1", "coworker": "billing"}, latency=1.0
    ).reply("INV-1 is paid.", latency=1.5)
    scripted_model.openai("billing").tool_call("lookup_invoice", {"invoice_id": "INV-1"}, latency=2.0).reply("Paid on 2026-11-02.", latency=0.5)

    out = _crew().kickoff()

    print(out.raw)
    print([(c.agent, c.started_at, c.latency_s) for c in agentflow.calls])
    for d in agentflow.decisions:
        print(d)
    print(agentflow.elapsed)
    assert 0
