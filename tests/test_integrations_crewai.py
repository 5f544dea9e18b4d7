"""CrewAI flows named and logged with no glue (the ``crewai`` integration): real CrewAI, real openai SDK,
replies scripted in the real wire format (``scripted_model``) or served by the bundled model server."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pytest_agentflows import Flow, ScriptedModel, current_agent

crewai = pytest.importorskip("crewai", reason="CrewAI is not installed (pip install -e '.[crewai]')")

from crewai.tools import tool  # noqa: E402

# CrewAI warns about its own deprecated fields while it builds an agent
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DELEGATE = "delegate_work_to_coworker"
LOCAL_URL = "http://127.0.0.1:8765/v1"
"""An OpenAI-compatible URL (``scripted_model`` answers any host): against api.openai.com itself, CrewAI
also asks OpenAI's input-token count endpoint before a call, a request no script answers."""


def _kinds(flow: Flow, *kinds: str) -> list[dict[str, Any]]:
    keep = ("agent", "parent_agent", "from_agent", "to_agent", "tool", "error")
    return [
        {"kind": d.kind, **{k: getattr(d, k) for k in keep if hasattr(d, k)}}
        for d in flow.decisions
        if d.kind in kinds
    ]


SEEN: list[tuple[str, str | None]] = []
"""(thread name, agent name) of each lookup_invoice run."""


@tool("lookup_invoice")
def lookup_invoice(invoice_id: str) -> str:
    """Look an invoice up in the billing system."""
    SEEN.append((threading.current_thread().name, current_agent()))
    if invoice_id == "INV-404":
        raise LookupError(f"no invoice {invoice_id}")
    return f"{invoice_id}: paid on 2026-11-02"


def _agents(suffix: str = "") -> tuple[Any, Any]:
    llm = crewai.LLM(model="gpt-4o-mini", api_key="sk-test", base_url=LOCAL_URL)
    billing = crewai.Agent(
        role=f"billing{suffix}",
        goal="Answer billing questions",
        backstory="You know invoices.",
        tools=[lookup_invoice],
        llm=llm,
    )
    triage = crewai.Agent(
        role=f"triage{suffix}",
        goal="Route questions to the right coworker",
        backstory="You route.",
        allow_delegation=True,
        llm=llm,
    )
    return triage, billing


def _crew(question: str = "Was invoice INV-1 paid?", suffix: str = "") -> Any:
    triage, billing = _agents(suffix)
    task = crewai.Task(description=question, expected_output="A short answer.", agent=triage)
    return crewai.Crew(agents=[triage, billing], tasks=[task])


def _script_desk(scripted_model: ScriptedModel, invoice: str = "INV-1") -> None:
    """triage delegates to billing (1 s), billing looks the invoice up (2 s) and answers (0.5 s), triage
    answers (1.5 s): 5 s in all, one call after the other."""
    scripted_model.openai("triage").tool_call(
        DELEGATE,
        {"task": f"Was {invoice} paid?", "context": f"invoice {invoice}", "coworker": "billing"},
        latency=1.0,
    ).reply(f"{invoice} is paid.", latency=1.5)
    scripted_model.openai("billing").tool_call("lookup_invoice", {"invoice_id": invoice}, latency=2.0).reply(
        "Paid on 2026-11-02.", latency=0.5
    )


DESK_DECISIONS = [
    {"kind": "agent_run", "agent": "triage", "parent_agent": None},
    {"kind": "handoff", "agent": "triage", "from_agent": "triage", "to_agent": "billing"},
    {"kind": "agent_run", "agent": "billing", "parent_agent": "triage"},
    {"kind": "tool_run", "agent": "billing", "tool": "lookup_invoice", "error": None},
    {"kind": "tool_run", "agent": "triage", "tool": DELEGATE, "error": None},
]


def test_a_delegation_and_a_tool_are_named_and_logged(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    _script_desk(scripted_model)

    result = _crew().kickoff()

    assert result.raw == "INV-1 is paid."
    assert [c.agent for c in agentflow.calls] == ["triage", "billing", "billing", "triage"]
    assert _kinds(agentflow, "agent_run", "handoff", "tool_run") == DESK_DECISIONS
    agentflow.assert_tool_calls([(DELEGATE, {"coworker": "billing"})], agent="triage", args="superset")
    agentflow.assert_tool_calls([("lookup_invoice", {"invoice_id": "INV-1"})], agent="billing")
    assert current_agent() is None  # the agent runs ended: nothing named after the crew


def test_sequential_calls_add_up_although_crewai_runs_them_in_threads(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    """CrewAI makes each LLM call in a worker thread (``asyncio.to_thread`` in its agent executor)."""
    from crewai.events.stream_context import add_stream_sink, reset_stream_sinks

    _script_desk(scripted_model)
    SEEN.clear()
    llm_calls: list[tuple[str, str | None]] = []

    def on_event(source: Any, event: Any) -> None:  # called in the thread that makes the LLM request
        if event.type == "llm_call_started":
            llm_calls.append((threading.current_thread().name, current_agent()))

    token = add_stream_sink(on_event)
    try:
        _crew().kickoff()
    finally:
        reset_stream_sinks(token)

    # the agent's name reached the worker threads that made its requests and ran its tool
    assert [agent for _, agent in llm_calls] == ["triage", "billing", "billing", "triage"]
    assert all(thread != threading.main_thread().name for thread, _ in llm_calls)
    ((thread, agent),) = SEEN
    assert thread != threading.main_thread().name and agent == "billing"
    assert agentflow.elapsed == 5.0 == sum(c.latency_s for c in agentflow.calls)
    assert [(c.agent, c.started_at) for c in agentflow.calls] == [
        ("triage", 0.0),
        ("billing", 1.0),
        ("billing", 3.0),
        ("triage", 3.5),
    ]
    times = [d.at for d in agentflow.decisions]
    assert times == sorted(times)  # decision times never run backwards


@pytest.mark.parametrize("kickoff", ["kickoff_async", "akickoff"])
async def test_async_kickoffs_are_named_and_timed_the_same(
    agentflow: Flow, scripted_model: ScriptedModel, kickoff: str
) -> None:
    _script_desk(scripted_model)

    result = await getattr(_crew(), kickoff)()

    assert result.raw == "INV-1 is paid."
    assert [c.agent for c in agentflow.calls] == ["triage", "billing", "billing", "triage"]
    assert _kinds(agentflow, "agent_run", "handoff", "tool_run") == DESK_DECISIONS
    assert agentflow.elapsed == 5.0


def test_a_failing_tool_is_a_tool_run_with_its_error(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    _, billing = _agents()
    scripted_model.openai("billing").tool_call("lookup_invoice", {"invoice_id": "INV-404"}).reply(
        "No such invoice."
    )
    task = crewai.Task(
        description="Was invoice INV-404 paid?", expected_output="A short answer.", agent=billing
    )

    crewai.Crew(agents=[billing], tasks=[task]).kickoff()

    (run,) = [d for d in agentflow.decisions if d.kind == "tool_run"]
    assert (run.agent, run.tool) == ("billing", "lookup_invoice")
    assert run.error is not None and "no invoice INV-404" in run.error


def test_a_hierarchical_crews_manager_hands_off_to_its_agents(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    _, billing = _agents()
    manager = "Crew Manager"
    scripted_model.openai(manager).tool_call(
        DELEGATE, {"task": "Was INV-1 paid?", "context": "invoice INV-1", "coworker": "billing"}
    ).reply("INV-1 is paid.")
    scripted_model.openai("billing").tool_call("lookup_invoice", {"invoice_id": "INV-1"}).reply("Paid.")
    task = crewai.Task(description="Was invoice INV-1 paid?", expected_output="A short answer.")
    crew = crewai.Crew(
        agents=[billing], tasks=[task], process=crewai.Process.hierarchical, manager_llm=billing.llm
    )

    crew.kickoff()

    assert [c.agent for c in agentflow.calls] == [manager, "billing", "billing", manager]
    assert _kinds(agentflow, "agent_run", "handoff") == [
        {"kind": "agent_run", "agent": manager, "parent_agent": None},
        {"kind": "handoff", "agent": manager, "from_agent": manager, "to_agent": "billing"},
        {"kind": "agent_run", "agent": "billing", "parent_agent": manager},
    ]


def test_an_agent_kicked_off_alone_names_its_calls(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    _, billing = _agents()
    scripted_model.openai("billing").tool_call("lookup_invoice", {"invoice_id": "INV-1"}).reply("Paid.")

    billing.kickoff("Was invoice INV-1 paid?")

    assert [c.agent for c in agentflow.calls] == ["billing", "billing"]
    assert _kinds(agentflow, "agent_run", "tool_run") == [
        {"kind": "agent_run", "agent": "billing", "parent_agent": None},
        {"kind": "tool_run", "agent": "billing", "tool": "lookup_invoice", "error": None},
    ]


def test_the_sink_is_gone_after_the_flow() -> None:
    from crewai.events.stream_context import _stream_sinks

    from pytest_agentflows.integrations.crewai import _Sink

    assert not any(isinstance(sink, _Sink) for sink in _stream_sinks.get())


# -- record against the model server, replay offline under two hash seeds ---------------------------------
INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
    ignore:unclosed <socket.socket:ResourceWarning
    ignore::ImportWarning
"""
"""CrewAI 1.15 warns while it is imported (``ImportWarning`` from ``crewai.rag``) and builds agents
(``DeprecationWarning``): ``pytest.importorskip`` hides the first, an inner suite ignores both."""

NO_NETWORK = '''
import os
import socket

_getaddrinfo = socket.getaddrinfo


def _loopback_only(host, *args, **kwargs):
    """Any name but the loopback host is an attempt to reach the network: logged (also at exit), refused."""
    if str(host) not in ("127.0.0.1", "localhost", "::1"):
        with open(os.environ["AF_NETWORK_LOG"], "a") as log:
            log.write(f"{host}\\n")
        raise OSError(f"no network in this test: {host}")
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback_only
'''

CREW_FLOW = '''
import os

from crewai import LLM, Agent, Crew, Task
from crewai.tools import tool

from pytest_agentflows.cassette._telemetry import telemetry_guard


SEEN: list[tuple[str, str | None]] = []
"""(thread name, agent name) of each lookup_invoice run."""


@tool("lookup_invoice")
def lookup_invoice(invoice_id: str) -> str:
    """Look an invoice up in the billing system."""
    SEEN.append((threading.current_thread().name, current_agent()))
    return f"{invoice_id}: paid on 2026-11-02"


def test_crewai_desk(agentflow, decision_snapshot):
    agentflow.simulate_latency({"triage": 1.0, "billing": 2.0})  # while recording; replay reads the cassette
    llm = LLM(model="gpt-4o-mini", api_key="sk-test", base_url=os.environ["AF_OPENAI_URL"])
    billing = Agent(role="billing", goal="Answer billing questions", backstory="You know invoices.",
                    tools=[lookup_invoice], llm=llm)
    triage = Agent(role="triage", goal="Route questions to the right coworker", backstory="You route.",
                   allow_delegation=True, llm=llm)
    task = Task(description="Was invoice INV-1 paid?", expected_output="A short answer.", agent=triage)
    result = Crew(agents=[triage, billing], tasks=[task]).kickoff()
    assert result.raw
    assert [c.agent for c in agentflow.calls] == ["triage", "billing", "billing", "triage"]
    assert agentflow.elapsed == 6.0  # 1 + 2 + 2 + 1: one call after the other
    assert agentflow.decisions == decision_snapshot


def test_crewai_telemetry_was_on_and_answered_locally():
    assert telemetry_guard.answered > 0
'''


def desk_responder(request: Any) -> Any:
    """The model server's replies for the desk: triage delegates to billing, billing looks INV-1 up."""
    from pytest_agentflows import ToolCall

    offered = [name for name, _ in request.tools]
    if "lookup_invoice" in offered:  # billing
        if "lookup_invoice" not in request.called_tools:
            return ToolCall("lookup_invoice", {"invoice_id": "INV-1"})
        return "INV-1 was paid on 2026-11-02."
    if DELEGATE in offered and DELEGATE not in request.called_tools:  # triage
        arguments = {"task": "Was invoice INV-1 paid?", "context": "Invoice INV-1.", "coworker": "billing"}
        return ToolCall(DELEGATE, arguments)
    return "Yes: INV-1 was paid on 2026-11-02."


def test_a_crew_records_then_replays_offline_under_two_hash_seeds(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, go_offline: Any
) -> None:
    from pytest_agentflows.model_server import LocalModelServer

    pytester.makeini(INI)
    pytester.makeconftest(NO_NETWORK)
    pytester.makepyfile(test_crew=CREW_FLOW)
    network_log = pytester.path / "network.log"
    monkeypatch.setenv("AF_NETWORK_LOG", str(network_log))
    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(pytester.path / "crewai"))  # its user file, not in $HOME
    with LocalModelServer(responder=desk_responder) as server:
        monkeypatch.setenv("AF_OPENAI_URL", server.openai_base_url)
        monkeypatch.setenv("PYTHONHASHSEED", "0")
        recorded = pytester.runpytest_subprocess("--record-agents", "--snapshot-update", "-p", "no:randomly")
        recorded.assert_outcomes(passed=2)
        served = len(server.requests)
        (cassette,) = (pytester.path / "cassettes" / "test_crew").iterdir()
        text = cassette.read_text()
        assert "crewai.com" not in text  # its telemetry ran (answered locally), never recorded
        snapshot = next(pytester.path.rglob("*.agentflows")).read_text()
        for line in ("kind: handoff", "from_agent: triage", "to_agent: billing", "tool: lookup_invoice"):
            assert line in snapshot
        assert "parent_agent: triage" in snapshot

        go_offline()
        for seed in ("1", "4242"):
            monkeypatch.setenv("PYTHONHASHSEED", seed)
            replayed = pytester.runpytest_subprocess("-p", "no:randomly")
            replayed.assert_outcomes(passed=2)
        assert len(server.requests) == served  # nothing reached the server on replay
    assert not network_log.exists(), network_log.read_text()  # no name looked up, not even at exit


def test_a_streaming_crew_is_named_too(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    """``stream=True`` adds CrewAI's own stream sink beside the integration's: both see every event."""
    _script_desk(scripted_model)
    crew = _crew()
    crew.stream = True

    streaming = crew.kickoff()
    chunks = list(streaming)

    assert chunks and streaming.result.raw == "INV-1 is paid."
    assert [c.agent for c in agentflow.calls] == ["triage", "billing", "billing", "triage"]
    assert _kinds(agentflow, "agent_run", "handoff", "tool_run") == DESK_DECISIONS


async def test_two_crews_at_once_keep_their_names_apart(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    """Agent names live in context variables: concurrent crews (tasks, threads) never see each other's."""
    import asyncio

    for suffix, invoice in (("-eu", "INV-1"), ("-us", "INV-2")):
        scripted_model.openai(f"triage{suffix}").tool_call(
            DELEGATE, {"task": f"Was {invoice} paid?", "context": invoice, "coworker": f"billing{suffix}"}
        ).reply(f"{invoice} is paid.")
        scripted_model.openai(f"billing{suffix}").tool_call("lookup_invoice", {"invoice_id": invoice}).reply(
            "Paid."
        )

    eu, us = await asyncio.gather(_crew(suffix="-eu").akickoff(), _crew(suffix="-us").akickoff())

    assert (eu.raw, us.raw) == ("INV-1 is paid.", "INV-2 is paid.")
    for suffix in ("-eu", "-us"):
        assert len(agentflow.calls_of(f"triage{suffix}")) == len(agentflow.calls_of(f"billing{suffix}")) == 2
    handoffs = sorted((d.from_agent, d.to_agent) for d in agentflow.decisions if d.kind == "handoff")
    assert handoffs == [("triage-eu", "billing-eu"), ("triage-us", "billing-us")]
    runs = sorted((d.agent, d.parent_agent) for d in agentflow.decisions if d.kind == "agent_run")
    assert runs == [
        ("billing-eu", "triage-eu"),
        ("billing-us", "triage-us"),
        ("triage-eu", None),
        ("triage-us", None),
    ]
