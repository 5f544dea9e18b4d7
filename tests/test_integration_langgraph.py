"""LangGraph flows named and logged with no glue: the ``langgraph`` integration (LangChain callbacks).

Real LangGraph, langgraph-supervisor, langchain-openai and openai SDK; replies scripted in the real wire
format (``scripted_model``, scripted per agent: a reply reaches only the agent it is scripted for, so the
scripts fail if a call is named wrongly) or served by the bundled model server.
"""

from __future__ import annotations

import operator
import subprocess
import sys
from dataclasses import replace
from typing import Annotated, Any

import pytest

from pytest_agentflows import Flow, ScriptedModel, current_agent

langgraph = pytest.importorskip("langgraph", reason="pip install -e '.[langgraph]'")
pytest.importorskip("langgraph_supervisor", reason="pip install -e '.[langgraph]'")
pytest.importorskip("langchain_openai", reason="pip install -e '.[langgraph]'")

from langchain_core.tools import tool  # noqa: E402
from langchain_core.tracers import context as hooks  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.prebuilt import ToolNode, create_react_agent  # noqa: E402
from langgraph_supervisor import create_supervisor  # noqa: E402
from typing_extensions import TypedDict  # noqa: E402

from pytest_agentflows.integrations import langgraph as adapter  # noqa: E402
from pytest_agentflows.testing.model_server import LocalModelServer, Request, default_responder  # noqa: E402

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # create_react_agent moved in 1.0

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
    ignore:unclosed <socket.socket:ResourceWarning
"""

KEEP = ("agent", "parent_agent", "from_agent", "to_agent", "tool", "error", "node", "step")


def _kinds(flow: Flow, *kinds: str) -> list[tuple[Any, ...]]:
    return [
        (d.kind, *(getattr(d, k) for k in KEEP if hasattr(d, k))) for d in flow.decisions if d.kind in kinds
    ]


def _model(base_url: str | None = None) -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", base_url=base_url, max_retries=0)


@tool
def lookup_invoice(invoice_id: str) -> str:
    """Look an invoice up."""
    return f"{invoice_id}: paid on 2026-11-02"


@tool
def track_parcel(parcel_id: str) -> str:
    """Track a parcel."""
    raise ValueError(f"no parcel {parcel_id}")


def _desk(model: ChatOpenAI) -> Any:
    billing = create_react_agent(model, [lookup_invoice], name="billing", prompt="Answer billing questions.")
    return create_supervisor([billing], model=model, prompt="Hand billing questions to billing.").compile()


def _script_desk(scripted_model: ScriptedModel) -> None:
    scripted_model.openai("supervisor").tool_call("transfer_to_billing", {}).reply("INV-1 was paid.")
    scripted_model.openai("billing").tool_call("lookup_invoice", {"invoice_id": "INV-1"}).reply(
        "INV-1 was paid on 2026-11-02."
    )


DESK_DECISIONS = [
    ("agent_run", "supervisor", None),
    ("node", "supervisor", "supervisor", 1),  # the root graph's node running the supervisor agent
    ("node", "supervisor", "agent", 1),  # the model node of the supervisor's own graph
    ("node", "supervisor", "tools", 2),
    ("handoff", "supervisor", "supervisor", "billing"),
    ("agent_run", "billing", "supervisor"),
    ("node", "billing", "billing", 2),
    ("node", "billing", "agent", 1),
    ("node", "billing", "tools", 2),
    ("tool_run", "billing", "lookup_invoice", None),
    ("node", "billing", "agent", 3),
    ("handoff", "billing", "billing", "supervisor"),  # langgraph-supervisor's transfer_back_to_supervisor
    ("agent_run", "supervisor", "billing"),
    ("node", "supervisor", "supervisor", 3),
    ("node", "supervisor", "agent", 1),
]


def test_supervisor_handoff_and_tool_are_named_and_logged(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    _script_desk(scripted_model)

    result = _desk(_model()).invoke({"messages": [("user", "Was invoice INV-1 paid?")]})

    assert result["messages"][-1].content == "INV-1 was paid."
    assert [c.agent for c in agentflow.calls] == ["supervisor", "billing", "billing", "supervisor"]
    assert _kinds(agentflow, "agent_run", "node", "handoff", "tool_run") == DESK_DECISIONS
    agentflow.assert_tool_calls(["transfer_to_billing"], agent="supervisor")
    agentflow.assert_tool_calls([("lookup_invoice", {"invoice_id": "INV-1"})], agent="billing")


async def test_async_and_streamed_runs_are_named_too(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    _script_desk(scripted_model)
    _script_desk(scripted_model)
    desk = _desk(_model())

    await desk.ainvoke({"messages": [("user", "Was invoice INV-1 paid?")]})
    first = _kinds(agentflow, "agent_run", "node", "handoff", "tool_run")
    async for _ in desk.astream({"messages": [("user", "Was invoice INV-1 paid?")]}, subgraphs=True):
        pass

    assert [c.agent for c in agentflow.calls] == ["supervisor", "billing", "billing", "supervisor"] * 2
    assert first == DESK_DECISIONS
    assert _kinds(agentflow, "agent_run", "node", "handoff", "tool_run") == DESK_DECISIONS * 2


class _Notes(TypedDict):
    topic: str
    notes: Annotated[list[str], operator.add]


def _ask(model: ChatOpenAI, prompt: str) -> Any:
    def node(state: _Notes) -> dict[str, list[str]]:
        return {"notes": [str(model.invoke(f"{prompt}: {state['topic']}").content)]}

    return node


def test_plain_nodes_are_agents_and_a_named_subgraph_is_one_agent(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    """Unnamed graph: each node is its own agent. A compiled graph named ``fact_check`` (its nodes
    ``claims`` and ``sources``) is one agent, a child of the node that runs it."""
    model = _model()
    checker = StateGraph(_Notes)
    checker.add_node("claims", _ask(model, "List the claims"))
    checker.add_node("sources", _ask(model, "Find sources"))
    checker.add_edge(START, "claims")
    checker.add_edge("claims", "sources")
    fact_check = checker.compile(name="fact_check")

    flow = StateGraph(_Notes)
    flow.add_node("research", _ask(model, "Research"))
    flow.add_node("review", fact_check)
    flow.add_node("write", _ask(model, "Write"))
    flow.add_edge(START, "research")
    flow.add_edge("research", "review")
    flow.add_edge("review", "write")
    flow.add_edge("write", END)
    for agent, text in [
        ("research", "notes"),
        ("fact_check", "claims"),
        ("fact_check", "srcs"),
        ("write", "x"),
    ]:
        scripted_model.openai(agent).reply(text)

    flow.compile().invoke({"topic": "tides", "notes": []})

    assert [c.agent for c in agentflow.calls] == ["research", "fact_check", "fact_check", "write"]
    assert _kinds(agentflow, "agent_run", "node") == [
        ("agent_run", "research", None),
        ("node", "research", "research", 1),
        ("agent_run", "review", None),
        ("node", "review", "review", 2),
        ("agent_run", "fact_check", "review"),
        ("node", "fact_check", "claims", 1),
        ("node", "fact_check", "sources", 2),
        ("agent_run", "write", None),
        ("node", "write", "write", 3),
    ]


def _ask_async(model: ChatOpenAI, prompt: str) -> Any:
    async def node(state: _Notes) -> dict[str, list[str]]:
        return {"notes": [str((await model.ainvoke(f"{prompt}: {state['topic']}")).content)]}

    return node


async def test_async_plain_nodes_are_named_and_nothing_leaks_to_the_caller(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    """An async graph runs a lone node inline in the caller's task, and LangChain sends its end event from
    a copy of the context: the name is set only inside the node, never left in the caller's task."""
    model = _model()
    graph = StateGraph(_Notes)
    graph.add_node("outline", _ask_async(model, "Outline"))
    graph.add_node("draft", _ask_async(model, "Draft"))
    graph.add_edge(START, "outline")
    graph.add_edge("outline", "draft")
    app = graph.compile()
    for agent in ("outline", "draft", "outline", "draft"):
        scripted_model.openai(agent).reply(f"{agent} done")
    scripted_model.openai("editor").reply("edited")

    await app.ainvoke({"topic": "tides", "notes": []})
    assert current_agent() is None
    await app.ainvoke({"topic": "waves", "notes": []})
    with agentflow.agent("editor"):
        await model.ainvoke("Edit")

    assert [c.agent for c in agentflow.calls] == ["outline", "draft", "outline", "draft", "editor"]
    assert _kinds(agentflow, "agent_run") == [
        ("agent_run", "outline", None),
        ("agent_run", "draft", None),
        ("agent_run", "outline", None),
        ("agent_run", "draft", None),
    ]


def test_parallel_nodes_in_threads_keep_their_names(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    """A sync graph runs the nodes of one superstep in a thread pool: each call keeps its node's name."""
    model = _model()
    graph = StateGraph(_Notes)
    for name in ("pros", "cons", "risks"):
        graph.add_node(name, _ask(model, name))
        graph.add_edge(START, name)
        scripted_model.openai(name).reply(f"{name} noted")

    result = graph.compile().invoke({"topic": "solar", "notes": []})

    assert sorted(result["notes"]) == ["cons noted", "pros noted", "risks noted"]
    assert sorted(str(c.agent) for c in agentflow.calls) == ["cons", "pros", "risks"]
    assert sorted(_kinds(agentflow, "node")) == [
        ("node", "cons", "cons", 1),
        ("node", "pros", "pros", 1),
        ("node", "risks", "risks", 1),
    ]


async def test_parallel_async_nodes_in_tasks_keep_their_names(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    """An async graph runs the nodes of one superstep as tasks: each call keeps its node's name."""
    model = _model()
    graph = StateGraph(_Notes)
    for name in ("pros", "cons", "risks"):
        graph.add_node(name, _ask_async(model, name))
        graph.add_edge(START, name)
        scripted_model.openai(name).reply(f"{name} noted")

    result = await graph.compile().ainvoke({"topic": "solar", "notes": []})

    assert sorted(result["notes"]) == ["cons noted", "pros noted", "risks noted"]
    assert sorted(str(c.agent) for c in agentflow.calls) == ["cons", "pros", "risks"]
    assert current_agent() is None


def test_a_raw_sdk_call_in_a_sync_node_is_named_by_its_node(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    """A plain function node calling the openai SDK directly, streamed graph: named, then put back."""
    import openai

    client = openai.OpenAI(api_key="sk-test", max_retries=0)

    def node_calling(prompt: str) -> Any:
        def node(state: _Notes) -> dict[str, list[str]]:
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
            )
            return {"notes": [str(reply.choices[0].message.content)]}

        return node

    graph = StateGraph(_Notes)
    graph.add_node("outline", node_calling("Outline"))
    graph.add_node("draft", node_calling("Draft"))
    graph.add_edge(START, "outline")
    graph.add_edge("outline", "draft")
    scripted_model.openai("outline").reply("1. tides")
    scripted_model.openai("draft").reply("Tides rise.")

    chunks = list(graph.compile().stream({"topic": "tides", "notes": []}))

    assert [next(iter(chunk)) for chunk in chunks] == ["outline", "draft"]
    assert [c.agent for c in agentflow.calls] == ["outline", "draft"]
    assert current_agent() is None
    client.close()


def test_a_failing_tool_is_a_tool_run_with_its_error(agentflow: Flow, scripted_model: ScriptedModel) -> None:
    tools = ToolNode([track_parcel], handle_tool_errors=True)
    agent = create_react_agent(_model(), tools, name="shipping", prompt="Track parcels.")
    scripted_model.openai("shipping").tool_call("track_parcel", {"parcel_id": "P-9"}).reply("Unknown parcel.")

    agent.invoke({"messages": [("user", "Where is P-9?")]})

    assert _kinds(agentflow, "agent_run", "tool_run") == [
        ("agent_run", "shipping", None),
        ("tool_run", "shipping", "track_parcel", "ValueError: no parcel P-9"),
    ]
    # ToolNode gave the error to the model as the tool's answer
    assert "no parcel P-9" in agentflow.calls[1].input_messages[-1].text


async def test_an_agent_inside_an_app_agent_has_it_as_parent(
    agentflow: Flow, scripted_model: ScriptedModel
) -> None:
    agent = create_react_agent(_model(), [lookup_invoice], name="billing", prompt="Answer.")
    scripted_model.openai("billing").reply("Paid.")

    with agentflow.agent("desk"):
        await agent.ainvoke({"messages": [("user", "INV-3?")]})

    assert _kinds(agentflow, "agent_run") == [("agent_run", "billing", "desk")]
    assert [c.agent for c in agentflow.calls] == ["billing"]


def _registrations() -> int:
    return sum(1 for entry in hooks._configure_hooks if getattr(entry[0], "name", "") == adapter._VAR_NAME)


def test_nothing_is_left_after_the_flow(scripted_model: ScriptedModel, agentflow: Flow) -> None:
    """The hook is registered once per process, its handler is set only while a flow runs, and a handler
    whose flow ended records nothing even where a run still holds it."""
    assert _registrations() == 1
    var = adapter._handler_var(hooks)
    ours = var.get()
    assert ours is not None and ours.flow is agentflow

    other = Flow()
    with other.activate():
        uninstall = adapter.install(other)
        assert uninstall is not None
        inner = var.get()
        assert inner is not ours and inner.flow is other
        uninstall()
    assert var.get() is ours and not inner.active
    assert _registrations() == 1

    scripted_model.openai("shipping").reply("On its way.")
    agent = create_react_agent(_model(), [], name="shipping", prompt="Track parcels.")
    agent.invoke({"messages": [("user", "P-1?")]}, config={"callbacks": [inner]})  # an ended flow's handler
    assert other.decisions == []
    assert [c.agent for c in agentflow.calls] == ["shipping"]


def test_the_handler_is_gone_outside_flows() -> None:
    assert adapter._handler_var(hooks).get() is None
    assert _registrations() == 1


def test_integrations_ini_none_leaves_langgraph_unnamed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from typing_extensions import TypedDict
        from langgraph.graph import START, StateGraph

        class State(TypedDict):
            n: int

        def test_no_decisions(agentflow):
            graph = StateGraph(State)
            graph.add_node("count", lambda state: {"n": state["n"] + 1})
            graph.add_edge(START, "count")
            assert graph.compile().invoke({"n": 1}) == {"n": 2}
            assert [d.kind for d in agentflow.decisions] == []
        """
    )
    pytester.makeini(INI + "agentflows_integrations = none\n")
    pytester.runpytest_inprocess().assert_outcomes(passed=1)
    pytester.makeini(INI)  # the control: switched on, the node is logged
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(failed=1)
    assert "AssertionError: assert ['agent_run', 'node'] == []" in result.stdout.str()


# -- record against the model server, replay offline under two hash seeds ---------------------------------
DESK_FLOW = '''
import os

from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent
from langgraph_supervisor import create_supervisor


@tool
def lookup_invoice(invoice_id: str) -> str:
    """Look an invoice up."""
    return f"{invoice_id}: paid"


@tool
def track_parcel(parcel_id: str) -> str:
    """Track a parcel."""
    return f"{parcel_id}: delivered"


async def test_langgraph_desk(agentflow, decision_snapshot):
    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", base_url=os.environ["AF_OPENAI_URL"])
    billing = create_react_agent(model, [lookup_invoice], name="billing", prompt="Answer billing questions.")
    shipping = create_react_agent(model, [track_parcel], name="shipping", prompt="Answer parcel questions.")
    desk = create_supervisor([billing, shipping], model=model, prompt="Hand each question to its agent.")
    result = await desk.compile().ainvoke({"messages": [("user", "Was invoice INV-1 paid?")]})
    assert result["messages"][-1].content
    assert [c.agent for c in agentflow.calls] == ["supervisor", "billing", "billing", "supervisor"]
    assert agentflow.decisions == decision_snapshot
'''


TELEMETRY_COUNT = """
from pytest_agentflows.cassette._telemetry import telemetry_guard


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"telemetry answered locally: {telemetry_guard.answered}")
"""


def _hand_to_billing(request: Request) -> Any:
    """The supervisor hands to billing only, once (the default responder would call every handoff tool)."""
    if "transfer_to_billing" in [name for name, _ in request.tools]:
        called = "transfer_to_billing" in request.called_tools
        only = [] if called else [t for t in request.tools if t[0] == "transfer_to_billing"]
        return default_responder(replace(request, tools=only))
    return default_responder(request)


def _set_order(seed: str) -> list[str]:
    """The order langgraph-supervisor offers the handoff tools in under ``seed`` (it builds a set)."""
    code = "print(*{'billing', 'shipping'})"
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONHASHSEED": seed}, capture_output=True)
    return out.stdout.decode().split()


def test_langgraph_flow_records_then_replays_offline_under_two_hash_seeds(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, go_offline: Any
) -> None:
    """langgraph-supervisor sends uuid4 tool call ids and a set-ordered tool list: both matched on replay.
    LangSmith tracing is on: its posts are answered locally, never recorded, never a miss."""
    orders = {tuple(_set_order(seed)) for seed in ("0", "2", "5")}
    assert len(orders) == 2  # the seeds below do send the tools in different orders
    pytester.makeini(INI)
    pytester.makepyfile(test_desk=DESK_FLOW)
    pytester.makeconftest(TELEMETRY_COUNT)
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2_pt_00000000000000000000000000000000_0000000000")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    with LocalModelServer(responder=_hand_to_billing) as server:
        monkeypatch.setenv("AF_OPENAI_URL", server.openai_base_url)
        recorded = pytester.runpytest_subprocess("--record-agents", "--snapshot-update", "-p", "no:randomly")
        recorded.assert_outcomes(passed=1)
        recorded.stdout.fnmatch_lines(["telemetry answered locally: [1-9]*"])  # LangSmith did post
        served = len(server.requests)
        assert served == 4
        assert len({tuple(name for name, _ in r.tools) for r in server.requests if len(r.tools) == 2}) == 1
        (cassette,) = (pytester.path / "cassettes" / "test_desk").iterdir()
        text = cassette.read_text()
        assert "transfer_back_to_supervisor" in text and "smith.langchain" not in text
        snapshot = next(pytester.path.rglob("*.agentflows")).read_text()
        for kind in ("agent_run", "handoff", "tool_run", "tool_call", "node"):
            assert f"kind: {kind}" in snapshot
        assert "to_agent: billing" in snapshot and "to_agent: supervisor" in snapshot

        go_offline()
        for seed in ("2", "5"):
            monkeypatch.setenv("PYTHONHASHSEED", seed)
            replayed = pytester.runpytest_subprocess("-p", "no:randomly")
            replayed.assert_outcomes(passed=1)
            replayed.stdout.fnmatch_lines(["telemetry answered locally: [1-9]*"])
        assert len(server.requests) == served  # nothing reached the server on replay
