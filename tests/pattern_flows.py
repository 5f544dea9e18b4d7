"""Sample multi-agent flows for the pattern tests, shared by the tests and ``record_patterns.py``.

Each scenario builds its agents on the real ``openai`` SDK (sync ``OpenAI`` or ``AsyncOpenAI``, default
``http_client``) and its pattern bound to a :class:`~pytest_agentflows.Flow`. The tests replay the cassettes
in ``fixtures/cassettes/patterns/``; ``python tests/record_patterns.py`` re-records them against a
:class:`~pytest_agentflows.model_server.LocalModelServer` and sets the recorded latencies to the values in
:data:`SCENARIOS` (so the timing tests mean something).

The requests of different agents differ (each has its own system prompt), so replay hands each agent its own
recorded answer whatever order concurrent agents run in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

from pytest_agentflows import AgentResult, Broadcast, Flow, Pipeline, Router, Stage, Supervisor
from pytest_agentflows.model_server import Request

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "fixtures" / "cassettes" / "patterns"
REPLAY_URL = "http://127.0.0.1:9/v1"  # a closed port: replay never goes to the network
MODEL = "gpt-4o-mini"


def cassette(name: str) -> str:
    """Absolute path of the cassette of scenario ``name``."""
    return str(CASSETTES / f"{name}.yaml")


# -- agents ----------------------------------------------------------------------------------------------
class ChatAgent:
    """A sync agent: one chat completion with its own system prompt."""

    def __init__(self, system: str, base_url: str = REPLAY_URL) -> None:
        self.system = system
        self.client = openai.OpenAI(base_url=base_url, api_key="sk-test-0000", max_retries=0)
        self.inputs: list[str] = []

    def __call__(self, text: str) -> str:
        self.inputs.append(text)
        reply = self.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "system", "content": self.system}, {"role": "user", "content": text}],
        )
        return reply.choices[0].message.content or ""


class AsyncChatAgent:
    """An async agent object with ``.run`` (the other agent shape): one chat completion on ``AsyncOpenAI``."""

    def __init__(self, system: str, base_url: str = REPLAY_URL, *, timeout: float | None = None) -> None:
        self.system = system
        self.base_url = base_url
        self.timeout = timeout
        self.inputs: list[str] = []

    async def run(self, text: str) -> AgentResult:
        self.inputs.append(text)
        async with openai.AsyncOpenAI(
            base_url=self.base_url, api_key="sk-test-0000", max_retries=0
        ) as client:
            request = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "system", "content": self.system}, {"role": "user", "content": text}],
            )
            # User code with its own timeout: decided on recorded latency, on the virtual loop.
            reply = await (request if self.timeout is None else asyncio.wait_for(request, self.timeout))
        return AgentResult(text=reply.choices[0].message.content or "")


def joined(results: list[AgentResult]) -> str:
    """A plain aggregator: ``key=text`` lines in the order given (completion order)."""
    return "\n".join(f"{r.agent}={r.text}" for r in results)


# -- scenarios -------------------------------------------------------------------------------------------
TICKET = "I was charged twice on my last invoice"
QUESTION = "What are your opening hours on Sunday"
TOPIC = "Write a short note on vector databases"
CLAIM = "The Eiffel Tower is in Paris"

CLASSIFY = "Classify the support ticket. Answer with one word: billing, technical or general."
REVIEWER = "You are a strict reviewer. Answer APPROVED only when the draft is ready."


def router(
    flow: Flow | None, url: str = REPLAY_URL, *, fallback: bool = True, asynchronous: bool = False
) -> Router:
    """Router: classifier -> billing / technical specialists (+ general fallback)."""
    make: Callable[[str], Any] = (
        (lambda s: AsyncChatAgent(s, url)) if asynchronous else (lambda s: ChatAgent(s, url))
    )
    routes = {
        "billing": make("You are the billing specialist."),
        "technical": make("You are the technical specialist."),
    }
    return Router(
        make(CLASSIFY),
        routes,
        fallback=make("You are the general assistant.") if fallback else None,
        flow=flow,
    )


PIPELINE_CAPS = (0.00005, 0.00005, 0.0002)
"""``max_usd`` of the research, draft and edit stages (US dollars)."""

PIPELINE_HALT_BUDGET = 0.0002
"""USD cap of the halting pipeline: research and draft fit their reservations, edit's 0.0002 does not."""


def pipeline(flow: Flow | None, url: str = REPLAY_URL, *, asynchronous: bool = False) -> Pipeline:
    """Pipeline: research -> draft -> edit, each stage reserving its :data:`PIPELINE_CAPS` first."""
    system = "You are a researcher. List the key facts."
    research: Any = AsyncChatAgent(system, url) if asynchronous else ChatAgent(system, url)
    research_cap, draft_cap, edit_cap = PIPELINE_CAPS
    return Pipeline(
        [
            Stage("research", research, max_usd=research_cap),
            ("draft", ChatAgent("You are a writer. Turn the notes into a short report.", url), draft_cap),
            ("edit", ChatAgent("You are an editor. Polish the report.", url), edit_cap),
        ],
        flow=flow,
    )


def broadcast(flow: Flow | None, url: str = REPLAY_URL, *, asynchronous: bool = False) -> Broadcast:
    """Broadcast: three fact checkers (recorded latencies: analyst 5 s, researcher 8 s, critic 10 s)."""
    make: Callable[[str], Any] = (
        (lambda s: AsyncChatAgent(s, url)) if asynchronous else (lambda s: ChatAgent(s, url))
    )
    agents = {
        "critic": make("You are the critic. Check the claim."),
        "analyst": make("You are the analyst. Check the claim."),
        "researcher": make("You are the researcher. Check the claim."),
    }
    aggregate = make("You are the synthesizer. Merge the verdicts.") if asynchronous else joined
    if asynchronous:
        synthesizer = aggregate

        async def merge(results: list[AgentResult]) -> AgentResult:
            return await synthesizer.run(joined(results))

        aggregate = merge
    return Broadcast(agents, aggregate, flow=flow)


def broadcast_failures(
    flow: Flow | None,
    url: str = REPLAY_URL,
    *,
    asynchronous: bool = False,
    min_successes: int = 1,
    timeout: float = 10,
) -> Broadcast:
    """Broadcast with a failing agent (HTTP 500), a late one (30 s > 10 s timeout) and an impatient one.

    ``impatient`` wraps its call in ``asyncio.wait_for(timeout=5)`` (recorded latency 8 s) when async.
    """
    make: Callable[[str], Any] = (
        (lambda s: AsyncChatAgent(s, url)) if asynchronous else (lambda s: ChatAgent(s, url))
    )
    agents = {
        "broken": make("You are the broken checker. Check the claim."),
        "fast": make("You are the fast checker. Check the claim."),
        "slow": make("You are the slow checker. Check the claim."),
    }
    if asynchronous:
        agents["impatient"] = AsyncChatAgent(
            "You are the impatient checker. Check the claim.", url, timeout=5
        )
    return Broadcast(agents, joined, min_successes=min_successes, timeout=timeout, flow=flow)


def supervisor(
    flow: Flow | None,
    url: str = REPLAY_URL,
    *,
    asynchronous: bool = False,
    max_revisions: int = 3,
    deadline: float | None = None,
) -> Supervisor:
    """Supervisor: writer (worker) and strict reviewer."""
    make: Callable[[str], Any] = (
        (lambda s: AsyncChatAgent(s, url)) if asynchronous else (lambda s: ChatAgent(s, url))
    )
    return Supervisor(
        make("You are a technical writer."),
        make(REVIEWER),
        max_revisions=max_revisions,
        deadline=deadline,
        flow=flow,
    )


# -- what each cassette holds ----------------------------------------------------------------------------
def failing_responder(request: Request) -> str:
    """Default replies, except: the broken checker fails (HTTP 500), reviewers never approve."""
    from pytest_agentflows.model_server import default_responder

    if "broken" in request.system:
        raise RuntimeError("the broken checker is down")
    if "reviewer" in request.system:
        return "REVISE: add a concrete example and cite one source."
    return default_responder(request)


@dataclass(frozen=True)
class Scenario:
    """How to record one cassette: the run, the server's replies, then the latencies to store."""

    run: Callable[[Flow, str], Any]
    """Runs the flow against the server at the given OpenAI base URL (sync or async)."""
    latencies: dict[str, list[float]] = field(default_factory=dict)
    """Agent -> recorded latency (s) of its calls in order (the last value repeats); others get 1 s."""
    responder: Callable[[Request], str] | None = None
    """The LocalModelServer responder (default: its default responder)."""
    budget_usd: float | None = None
    """USD cap of the recording flow."""


def _expect(error: type[BaseException], fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except error as exc:
        return exc


async def _aexpect(error: type[BaseException], coro: Any) -> Any:
    try:
        return await coro
    except error as exc:
        return exc


SCENARIOS: dict[str, Scenario] = {
    "router_sync": Scenario(lambda f, u: router(f, u).run_sync(TICKET), {"router": [0.6], "billing": [2.4]}),
    "router_async_fallback": Scenario(
        lambda f, u: asyncio.run(router(f, u, asynchronous=True).run(QUESTION)),
        {"router": [0.5], "fallback": [1.5]},
    ),
    "router_unknown": Scenario(
        lambda f, u: _expect(Exception, lambda: router(f, u, fallback=False).run_sync(QUESTION)),
        {"router": [0.5]},
    ),
    "pipeline_sync": Scenario(
        lambda f, u: pipeline(f, u).run_sync(TOPIC), {"research": [4.0], "draft": [6.0], "edit": [3.0]}
    ),
    "pipeline_async": Scenario(
        lambda f, u: asyncio.run(pipeline(f, u, asynchronous=True).run(TOPIC)),
        {"research": [4.0], "draft": [6.0], "edit": [3.0]},
    ),
    "pipeline_halt": Scenario(
        lambda f, u: _expect(Exception, lambda: pipeline(f, u).run_sync(TOPIC)),
        {"research": [4.0], "draft": [6.0]},
        budget_usd=PIPELINE_HALT_BUDGET,
    ),
    "broadcast_sync": Scenario(
        lambda f, u: broadcast(f, u).run_sync(CLAIM),
        {"analyst": [5.0], "researcher": [8.0], "critic": [10.0]},
    ),
    "broadcast_async": Scenario(
        lambda f, u: asyncio.run(broadcast(f, u, asynchronous=True).run(CLAIM)),
        {"analyst": [5.0], "researcher": [8.0], "critic": [10.0], "aggregate": [2.0]},
    ),
    "broadcast_failures_sync": Scenario(
        lambda f, u: broadcast_failures(f, u).run_sync(CLAIM),
        {"fast": [3.0], "broken": [2.0], "slow": [30.0]},
        responder=failing_responder,
    ),
    "broadcast_failures_async": Scenario(
        lambda f, u: asyncio.run(_aexpect(Exception, broadcast_failures(f, u, asynchronous=True).run(CLAIM))),
        {"fast": [3.0], "broken": [2.0], "slow": [30.0], "impatient": [8.0]},
        responder=failing_responder,
    ),
    "supervisor_never_approves": Scenario(
        lambda f, u: supervisor(f, u).run_sync(TOPIC),
        {"worker": [20.0, 25.0], "reviewer": [6.0]},
        responder=failing_responder,
    ),
    "supervisor_approves_async": Scenario(
        lambda f, u: asyncio.run(supervisor(f, u, asynchronous=True).run(TOPIC)),
        {"worker": [20.0, 25.0], "reviewer": [6.0]},
    ),
    "supervisor_deadline": Scenario(
        # Recorded with one revision: draft 30 s, review 20 s, revision 130 s (cut at the 120 s deadline).
        lambda f, u: supervisor(f, u, max_revisions=1).run_sync(TOPIC),
        {"worker": [30.0, 130.0], "reviewer": [20.0]},
        responder=failing_responder,
    ),
}
