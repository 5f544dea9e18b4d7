"""LangGraph: graph nodes, agents, supervisor handoffs and tool runs, from LangChain's callback API.

While a flow is active, a LangChain callback handler is added to every run LangChain configures in the
flow's context: a *configure hook* (``langchain_core.tracers.context.register_configure_hook``, the way
LangSmith's tracer and OpenInference join every run) on a context variable that holds the flow's handler.
The hook is registered once per process; the variable is set for the flow and reset at its end, and the
handler is inert once its flow ended, so nothing reaches a later flow. LangGraph reports every graph run,
node run and tool run to it, in the context (task or thread) that runs it, so:

- a *node run* (a run whose ``metadata["langgraph_checkpoint_ns"]`` is a new namespace: LangGraph's
  ``langgraph_node`` and ``langgraph_step``) is a ``node`` decision (``node``, ``step``, ``agent``) and
  names the agent of every model call made inside it:

  - a node of a *named* graph (``create_react_agent(name=...)``, ``create_agent(name=...)``,
    ``create_supervisor(supervisor_name=...)``'s supervisor, ``StateGraph.compile(name=...)``) belongs to
    the agent named after its graph;
  - a node of an unnamed graph (the default name ``"LangGraph"``) is an agent of its own, named after
    the node;

  so a model call's agent is its innermost named graph, else its node. An agent's first node run records
  an ``agent_run`` decision (``agent``, ``parent_agent``: the agent that handed off to it, else the
  enclosing agent), unless it is the enclosing agent going on (an agent graph run as the node of the
  same name, as ``langgraph-supervisor`` adds them);
- a tool run is a ``tool_run`` decision (``agent``, ``tool``, ``error``: ``"<Type>: <message>"`` of the
  exception it raised, ``None`` when it returned);
- a handoff tool (one whose metadata names ``__handoff_destination``: langgraph-supervisor's
  ``transfer_to_<agent>`` tools, also custom ones from its ``create_handoff_tool``) is a ``handoff``
  decision (``from_agent``, ``to_agent``) instead of a ``tool_run``; the messages an agent adds when it
  hands back (``transfer_back_to_<supervisor>``) are a ``handoff`` too.

The agent name is set where the calls are made. Sync events start and end a run in one context: the name
is set at the start and put back at the end. Async events end a run in a *copy* of the context (LangChain
shields them from cancellation), where nothing can be put back: there the name is set only in contexts
private to a node (its own task, the copy its first step runs in), so a graph run inline in the caller's
task leaves nothing named behind. A provider SDK called directly in a plain function node of an *async*
graph is therefore not named (LangChain sends no event inside such a node); a LangChain chat model is.

LangGraph's interrupts and ``Command(graph=PARENT)`` travel as exceptions; they are not tool errors. At the
flow's end LangSmith's tracer (if tracing is on) is flushed, while its posts are still answered locally
(:mod:`pytest_agentflows.cassette._telemetry`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import inspect
import sys
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..runtime._context import current_agent
from ._runs import subclass_of

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["install"]

DEFAULT_GRAPH_NAME = "LangGraph"
"""The name of a compiled graph given none: its nodes are agents of their own."""
HANDOFF_DESTINATION = "__handoff_destination"
"""langgraph-supervisor's tool metadata key naming the agent a handoff tool transfers to."""
HANDOFF_BACK = "__is_handoff_back"
"""langgraph-supervisor's ``response_metadata`` key on the messages an agent adds when it hands back."""

_VAR_NAME = "agentflows_langgraph_handler"
_TASK_CONTEXTS = sys.version_info >= (3, 11)
"""Whether ``asyncio.create_task`` takes a context: LangGraph then runs a node's first step in a copy."""
_register_lock = threading.Lock()


def install(flow: Flow) -> Callable[[], None] | None:
    """Add a LangChain callback handler feeding ``flow`` to every run configured in the flow's context.

    Returns the function that takes it away, or ``None`` when the imported ``langgraph`` has no
    ``langchain_core`` configure hook API.
    """
    try:
        hooks = importlib.import_module("langchain_core.tracers.context")
        base = importlib.import_module("langchain_core.callbacks").BaseCallbackHandler
    except ImportError:  # langgraph imports langchain_core: only a stray module named langgraph lacks it
        return None
    if not hasattr(hooks, "register_configure_hook"):
        return None
    var = _handler_var(hooks)
    handler = subclass_of(base, _Handler, "AgentflowsLangGraphHandler")(flow)
    token = var.set(handler)

    def uninstall() -> None:
        handler.active = False
        try:
            var.reset(token)
        except ValueError:  # ended in another context than it started
            var.set(None)
        tracers = sys.modules.get("langchain_core.tracers.langchain")
        if tracers is not None:  # LangSmith's posts of this flow's runs: now, while answered locally
            with contextlib.suppress(Exception):
                tracers.wait_for_all_tracers()

    return uninstall


def _handler_var(hooks: Any) -> contextvars.ContextVar[Any]:
    """The context variable of our configure hook, registered on first use (once per ``langchain_core``).

    The hook list is global and has no removal: the one registration is found again by the variable's
    name, also when this module is imported anew (pytester's in-process runs reload modules).
    """
    with _register_lock:
        for entry in getattr(hooks, "_configure_hooks", ()):
            var = entry[0]
            if isinstance(var, contextvars.ContextVar) and var.name == _VAR_NAME:
                return var
        var = contextvars.ContextVar(_VAR_NAME, default=None)
        hooks.register_configure_hook(var, True)
        return var


@dataclass
class _Run:
    """What the handler keeps of an open run (chain, tool or model)."""

    parent: Hashable | None
    ns: str | None
    """LangGraph's ``langgraph_checkpoint_ns`` of the run (``None`` outside a graph node)."""
    name: str | None
    agent: str | None = None
    """The agent of the run (a node run, a named graph run, anything inside one)."""
    owner: bool = False
    """Whether the run *is* an agent's (a node run, a named graph's run): the runs inside inherit it."""
    node: bool = False
    private: bool = False
    """Whether the run started in a context of its own (see :meth:`_Handler._name_agent`)."""
    task: object | None = None
    """The asyncio task the run started in (async dispatch only)."""
    token: contextvars.Token[str | None] | None = None
    """Set when the run named the agent of its context: to put the previous name back at its end."""
    tool: str | None = None
    handoff_to: str | None = None


class _Handler:
    """Turns LangChain callback events of LangGraph runs into agent names and decisions of one flow.

    Mixed into ``langchain_core.callbacks.BaseCallbackHandler`` (see :func:`install`).
    """

    run_inline = True
    """Called in the task that runs the code (not in an executor): the agent name it sets stays there."""
    raise_error = False
    ignore_retriever = True
    ignore_retry = True
    ignore_custom_event = True

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.active = True
        self._lock = threading.Lock()
        self._runs: dict[Hashable, _Run] = {}
        self._handed_to: dict[str, str] = {}
        """to_agent -> from_agent of the last handoff not yet followed by that agent's run."""
        self._handed_back: set[Any] = set()
        """Tool call ids of the hand-back messages already recorded (outputs repeat the history)."""

    def _register(self, run_id: Hashable, run: _Run) -> _Run | None:
        """Keep ``run`` under ``run_id``; returns its parent run, if it is one of ours."""
        with self._lock:
            self._runs[run_id] = run
            return self._runs.get(run.parent) if run.parent is not None else None

    # -- chains: graphs, nodes and what runs inside them -------------------------------------------------
    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: Hashable,
        parent_run_id: Hashable | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.active:
            return
        is_async = _dispatched_async(sys._getframe(1))
        metadata = metadata or {}
        ns = metadata.get("langgraph_checkpoint_ns")
        name = kwargs.get("name")
        run = _Run(
            parent_run_id, ns if isinstance(ns, str) else None, name if isinstance(name, str) else None
        )
        if is_async:
            run.task = _current_task()
        parent = self._register(run_id, run)
        node = metadata.get("langgraph_node")
        if run.ns is not None and isinstance(node, str) and (parent is None or parent.ns != run.ns):
            self._node_started(run_id, run, parent, node, metadata.get("langgraph_step"), is_async)
        else:
            self._inner_started(run, parent, tags, is_async)

    def on_chain_end(self, outputs: Any, *, run_id: Hashable, **kwargs: Any) -> None:
        run = self._end(run_id)
        if run is not None and run.node and run.agent is not None and self.active:
            self._handoffs_back(run.agent, outputs)

    def on_chain_error(self, error: BaseException, *, run_id: Hashable, **kwargs: Any) -> None:
        self._end(run_id)

    # -- model calls: named after the agent of the node they are made in ---------------------------------
    def on_chat_model_start(
        self,
        serialized: Any,
        messages: Any,
        *,
        run_id: Hashable,
        parent_run_id: Hashable | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self._model_started(run_id, parent_run_id, tags, _dispatched_async(sys._getframe(1)))

    def on_llm_start(
        self,
        serialized: Any,
        prompts: Any,
        *,
        run_id: Hashable,
        parent_run_id: Hashable | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self._model_started(run_id, parent_run_id, tags, _dispatched_async(sys._getframe(1)))

    def on_llm_end(self, response: Any, *, run_id: Hashable, **kwargs: Any) -> None:
        self._end(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: Hashable, **kwargs: Any) -> None:
        self._end(run_id)

    # -- tools -------------------------------------------------------------------------------------------
    def on_tool_start(
        self,
        serialized: Any,
        input_str: Any,
        *,
        run_id: Hashable,
        parent_run_id: Hashable | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.active:
            return
        is_async = _dispatched_async(sys._getframe(1))
        name = kwargs.get("name") or (serialized.get("name") if isinstance(serialized, dict) else None)
        destination = (metadata or {}).get(HANDOFF_DESTINATION)
        handoff_to = destination if isinstance(destination, str) and destination else None
        run = _Run(parent_run_id, None, None, tool=str(name), handoff_to=handoff_to)
        parent = self._register(run_id, run)
        self._inner_started(run, parent, tags, is_async)
        if run.agent is None:
            run.agent = current_agent.get()

    def on_tool_end(self, output: Any, *, run_id: Hashable, **kwargs: Any) -> None:
        self._tool_ended(run_id, None)

    def on_tool_error(self, error: BaseException, *, run_id: Hashable, **kwargs: Any) -> None:
        if _bubbles_up(error):  # an interrupt or a Command to a parent graph: the tool did not fail
            self._tool_ended(run_id, None)
        else:
            self._tool_ended(run_id, f"{type(error).__name__}: {error}")

    # -- runs and agent names ----------------------------------------------------------------------------
    def _node_started(
        self, run_id: Hashable, run: _Run, graph: _Run | None, node: str, step: Any, is_async: bool
    ) -> None:
        """A node of a graph began: its agent, the ``agent_run`` if the agent starts here, ``node``."""
        named = graph is not None and graph.name not in (None, DEFAULT_GRAPH_NAME)
        agent = graph.name if named and graph is not None and graph.name is not None else node
        enclosing = self._enclosing_agent(graph.parent if named and graph is not None else run.parent)
        owner = graph if named and graph is not None else run
        with self._lock:
            starts = not owner.owner and agent != enclosing
            owner.owner = run.owner = run.node = True
            owner.agent = run.agent = agent
            handed = self._handed_to.pop(agent, None) if starts else None
        # The node's code runs in a copy of this context (or of a task's). A task of its own: named here.
        # Run inline in its graph's task: the end event comes in a copy (LangChain shields it), the name
        # could not be put back, so the runs inside the node name it (see _inner_started).
        run.private = is_async and (graph is None or run.task is not graph.task)
        self._name_agent(run, is_async)
        if starts:
            parent_agent = handed if handed is not None else enclosing
            self.flow.log.record("agent_run", agent=agent, parent_agent=parent_agent)
        self.flow.log.record("node", agent=agent, node=node, step=step if isinstance(step, int) else None)

    def _inner_started(self, run: _Run, parent: _Run | None, tags: list[str] | None, is_async: bool) -> None:
        """A run inside a node (or a graph): it inherits the node's agent and names it in its context.

        The first step of a node runs in a copy of the node's context (``seq:step:1``), and everything
        inside it too: there the name can be set for good. The node's other steps (channel writes,
        conditional edges) run in the node's own context: named only where it can be put back (sync).
        """
        if parent is None:
            return
        run.agent = parent.agent
        if parent.node:  # (async: Python 3.11+ runs the first step in a task with the context copy)
            first_step = "seq:step:1" in (tags or ()) and (not is_async or _TASK_CONTEXTS)
            run.private = parent.private or first_step
        else:
            run.private = parent.private
        if run.agent is not None:
            self._name_agent(run, is_async)

    def _model_started(
        self, run_id: Hashable, parent_run_id: Hashable | None, tags: list[str] | None, is_async: bool
    ) -> None:
        if not self.active:
            return
        run = _Run(parent_run_id, None, None)
        with self._lock:
            parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
            self._runs[run_id] = run
        self._inner_started(run, parent, tags, is_async)

    def _name_agent(self, run: _Run, is_async: bool) -> None:
        """Make ``run.agent`` the agent of the calling context where that is safe.

        Sync events start and end a run in the same context: the name is set and put back at the end.
        Async events end a run in a copy of the context (LangChain shields them from cancellation), so the
        name is set only in a context private to the run (its own task, a node's first step), never in
        the caller's.
        """
        agent = run.agent
        if agent is None or current_agent.get() == agent:
            return
        if not is_async:
            run.token = current_agent.set(agent)
        elif run.private:
            current_agent.set(agent)

    def _end(self, run_id: Hashable) -> _Run | None:
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is not None and run.token is not None:
            try:
                current_agent.reset(run.token)
            except ValueError:  # ended in another context than it started: put the name back as it was
                old = run.token.old_value
                current_agent.set(old if isinstance(old, str) else None)
        return run

    def _tool_ended(self, run_id: Hashable, error: str | None) -> None:
        run = self._end(run_id)
        if run is None or not self.active:
            return
        if run.handoff_to is not None and error is None:
            self._handoff(run.agent, run.handoff_to)
        else:
            self.flow.log.record("tool_run", agent=run.agent, tool=run.tool, error=error)

    def _handoff(self, source: str | None, target: str) -> None:
        if source is not None:
            with self._lock:
                self._handed_to[target] = source
        self.flow.log.record("handoff", agent=source, from_agent=source, to_agent=target)

    def _handoffs_back(self, agent: str, outputs: Any) -> None:
        """The ``transfer_back_to_<agent>`` messages an agent node returned: one ``handoff`` each."""
        messages = outputs.get("messages") if isinstance(outputs, dict) else None
        if not isinstance(messages, list):
            return
        for message in messages:
            meta = getattr(message, "response_metadata", None)
            if (
                not isinstance(meta, dict)
                or not meta.get(HANDOFF_BACK)
                or getattr(message, "name", None) != agent
            ):
                continue  # (an agent's output may repeat the whole history: only its own messages count)
            for call in getattr(message, "tool_calls", None) or ():
                name = call.get("name") if isinstance(call, dict) else None
                if not isinstance(name, str) or not name.startswith("transfer_back_to_"):
                    continue
                with self._lock:
                    seen = call.get("id") in self._handed_back
                    self._handed_back.add(call.get("id"))
                if not seen:
                    self._handoff(agent, name.removeprefix("transfer_back_to_"))

    def _enclosing_agent(self, run_id: Hashable | None) -> str | None:
        """The agent of the innermost open agent-owning run from ``run_id`` up, else the context's agent."""
        with self._lock:
            seen = 0
            while run_id is not None and seen < 10_000:
                run = self._runs.get(run_id)
                if run is None:
                    break
                if run.owner:
                    return run.agent
                run_id = run.parent
                seen += 1
        return current_agent.get()


def _dispatched_async(frame: Any) -> bool:
    """Whether LangChain's async callback manager made this call (the caller is a coroutine's frame)."""
    return frame is not None and bool(frame.f_code.co_flags & inspect.CO_COROUTINE)


def _current_task() -> object | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop
        return None


def _bubbles_up(error: BaseException) -> bool:
    """Whether ``error`` is LangGraph's control flow (``GraphBubbleUp``: interrupts, parent commands)."""
    errors = sys.modules.get("langgraph.errors")
    bubble = getattr(errors, "GraphBubbleUp", None)
    return isinstance(bubble, type) and isinstance(error, bubble)
