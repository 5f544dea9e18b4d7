"""CrewAI: a triage agent delegates a billing question to its billing coworker, who looks the invoice up.

No naming code: the ``crewai`` integration names each model call after the CrewAI agent (its ``role``)
that made it, also in the worker threads CrewAI makes its LLM calls in, and logs the agent runs, the
delegation (a handoff) and the tool runs. CrewAI's own telemetry stays on: it is answered locally.

CrewAI pins ``openai < 3``: it has an install of its own (``pip install 'pytest-agentflows[crewai]'``,
not part of ``[frameworks]``); where it is not installed this module is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_agentflows import Flow, ToolCall
from pytest_agentflows.model_server import LocalModelServer, Request

pytest.importorskip("crewai", reason="pip install 'pytest-agentflows[crewai]'")

from crewai import LLM, Agent, Crew, Task
from crewai.tools import tool

# CrewAI warns about its own deprecated fields while it builds an agent
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REPLAY_URL = "http://127.0.0.1:8765/v1"
"""Where the crew's LLM points on replay: nothing listens there (loopback ports take no part in matching)."""


# --8<-- [start:app]
@tool("lookup_invoice")
def lookup_invoice(invoice_id: str) -> str:
    """Look an invoice up in the billing system."""
    return f"{invoice_id}: paid on 2026-11-02"


def support_desk(base_url: str) -> Crew:
    llm = LLM(model="gpt-4o-mini", api_key="sk-placeholder", base_url=base_url)
    billing = Agent(
        role="billing",
        goal="Answer billing questions; look invoices up.",
        backstory="You run the billing system.",
        tools=[lookup_invoice],
        llm=llm,
    )
    triage = Agent(
        role="triage",
        goal="Send each question to the coworker who can answer it.",
        backstory="You read every ticket first.",
        allow_delegation=True,  # gives it CrewAI's "Delegate work to coworker" tool
        llm=llm,
    )
    task = Task(description="Was invoice INV-1 paid?", expected_output="One sentence.", agent=triage)
    return Crew(agents=[triage, billing], tasks=[task])


# --8<-- [end:app]


# --8<-- [start:recording]
def desk_replies(request: Request) -> str | ToolCall:
    """The local model server's replies while recording: triage delegates, billing looks INV-1 up."""
    offered = [name for name, _ in request.tools]
    if "lookup_invoice" in offered:  # billing
        if "lookup_invoice" not in request.called_tools:
            return ToolCall("lookup_invoice", {"invoice_id": "INV-1"})
        return "INV-1 was paid on 2026-11-02."
    if "delegate_work_to_coworker" not in request.called_tools:  # triage
        question = {"task": "Was invoice INV-1 paid?", "context": "Invoice INV-1.", "coworker": "billing"}
        return ToolCall("delegate_work_to_coworker", question)
    return "Yes: INV-1 was paid on 2026-11-02."


@pytest.fixture
def crew_base_url(request: pytest.FixtureRequest, agentflow: Flow) -> Iterator[str]:
    """Replay: a fixed local URL nothing listens on. Recording: the local model server with ``desk_replies``,
    each agent's calls taking a realistic time (the cassette keeps it)."""
    if request.config.getoption("agentflows_record", None) in (None, "none"):
        yield REPLAY_URL
        return
    agentflow.simulate_latency({"triage": 1.2, "billing": 2.5})
    with LocalModelServer(responder=desk_replies) as server:
        yield server.openai_base_url


# --8<-- [end:recording]


# --8<-- [start:test]
def test_triage_delegates_to_billing(agentflow: Flow, decision_snapshot, crew_base_url: str) -> None:
    result = support_desk(crew_base_url).kickoff()

    assert result.raw
    assert [call.agent for call in agentflow.calls] == ["triage", "billing", "billing", "triage"]
    agentflow.assert_tool_calls(["delegate_work_to_coworker"], agent="triage")
    agentflow.assert_tool_calls([("lookup_invoice", {"invoice_id": "INV-1"})], agent="billing")
    # CrewAI makes every LLM call in a worker thread; they still run one after the other
    assert agentflow.elapsed == pytest.approx(1.2 + 2.5 + 2.5 + 1.2)
    assert agentflow.decisions == decision_snapshot


# --8<-- [end:test]
