"""The support desk: four coordination patterns over OpenAI and Anthropic agents.

``SupportDesk.handle(ticket)`` resolves a customer ticket in three steps:

1. **triage** (:class:`~pytest_agentflows.Router`): a classifier picks the billing, technical or general
   specialist, who writes internal resolution notes;
2. **knowledge search** (:class:`~pytest_agentflows.Broadcast`): three knowledge bases are asked in
   parallel (product docs, past tickets, status page); their findings are merged, and one of them may fail
   or be late without sinking the ticket;
3. **reply** (:class:`~pytest_agentflows.Supervisor`): a writer drafts the customer reply, a QA reviewer
   on Claude answers ``APPROVED`` or a critique, the writer revises, within a 120 s deadline.

``SupportDesk.order_agent`` answers "where is my order?" tickets with a tool (``lookup_order``, a stub of
the order database): the model calls the tool, gets the order's status back and answers the customer.

``SupportDesk.write_article(topic)`` turns a resolved problem into a help-center article with a
:class:`~pytest_agentflows.Pipeline` (research -> draft -> review), each stage with its own ``max_usd``.

The patterns are built through factories given to the constructor: the classes themselves in production,
the flow-bound ``agent_router`` / ``agent_pipeline`` / ``agent_broadcast`` / ``agent_supervisor`` fixtures
in tests (see ``docs/examples/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_agentflows import AgentResult, Broadcast, Pipeline, Router, Stage, Supervisor

from .agents import ChatAgent, ClaudeAgent, Clients, Tool, ToolAgent
from .settings import Settings

__all__ = [
    "KNOWLEDGE_TIMEOUT_S",
    "REPLY_DEADLINE_S",
    "STAGE_MAX_USD",
    "Resolution",
    "SupportDesk",
    "lookup_order",
    "merge_findings",
    "reply_task",
]

# -- prompts ----------------------------------------------------------------------------------------------
TRIAGE = (
    "You are the triage agent of a software company's support desk. Classify the customer ticket into "
    "exactly one queue and answer with one word: billing, technical or general."
)
SPECIALISTS = {
    "billing": "You are the billing specialist. Write internal resolution notes for the ticket: cause, fix, "
    "next step.",
    "technical": "You are the technical specialist. Write internal resolution notes for the ticket: cause, "
    "fix, next step.",
    "general": "You are the general support specialist. Write internal resolution notes for the ticket: "
    "cause, fix, next step.",
}
KNOWLEDGE_BASES = {
    "docs": "You search the product documentation. Answer with the one most relevant passage for the ticket.",
    "tickets": "You search past support tickets. Answer with what similar tickets had in common and how "
    "they were resolved.",
    "status": "You read the status page. Answer with the current incidents that could explain the ticket.",
}
WRITER = (
    "You are a friendly support agent. Write the reply to the customer from the ticket, the specialist "
    "notes and the knowledge base findings. Be accurate, concrete and brief."
)
QA_REVIEWER = (
    "You are the QA reviewer of customer replies. Answer APPROVED when the reply is accurate, polite and "
    "actionable; otherwise list what to change."
)
COMPLIANCE_REVIEWER = (
    "You are the compliance reviewer of customer replies. Answer APPROVED only when the reply meets every "
    "compliance rule; otherwise list what to change."
)
ORDER_DESK = (
    "You are the order desk of a software company's web shop. Look the customer's order up with the "
    "lookup_order tool, then tell the customer where their order is, in one or two sentences."
)
RESEARCHER = "You are a support researcher. List the facts a help-center article on the topic needs."
ARTICLE_WRITER = "You are a technical writer. Turn the research notes into a help-center article."
ARTICLE_EDITOR = (
    "You are the help-center editor. Check tone, accuracy and structure, then return the final article."
)

# -- limits -----------------------------------------------------------------------------------------------
KNOWLEDGE_TIMEOUT_S = 8.0
"""Virtual seconds the knowledge search waits for the knowledge bases."""

REPLY_DEADLINE_S = 120.0
"""Virtual seconds the reply loop (draft, review, revise) may take."""

STAGE_MAX_USD = {"research": 0.001, "draft": 0.005, "review": 0.001}
"""US dollars each article stage reserves from the flow's budget before it starts."""


# -- glue -------------------------------------------------------------------------------------------------
ORDERS = {
    "A1001": "shipped on 2 December by parcel post; arriving 5 December",
    "A1002": "payment pending: the card was declined",
}
"""The order database stub: order id -> status."""


def lookup_order(order_id: str) -> str:
    """The ``lookup_order`` tool: the status of an order (a stub of the order database)."""
    return ORDERS.get(order_id.strip().upper(), f"no order {order_id} found")


LOOKUP_ORDER = Tool(
    "lookup_order",
    "Look an order up in the order database by its id (e.g. A1001).",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    lookup_order,
)


def merge_findings(results: list[AgentResult]) -> str:
    """The knowledge search's aggregate: one ``[key] text`` line per knowledge base, in completion order."""
    if not results:
        return "(no knowledge base answered)"
    return "\n".join(f"[{r.agent}] {r.text}" for r in results)


def reply_task(ticket: str, notes: str, findings: str) -> str:
    """What the reply writer is given."""
    return (
        f"Customer ticket:\n{ticket}\n\nSpecialist notes:\n{notes}\n\n"
        f"Knowledge base findings:\n{findings}\n\nWrite the reply to the customer."
    )


@dataclass(frozen=True)
class Resolution:
    """What ``SupportDesk.handle`` returns."""

    queue: str
    """The specialist who handled the ticket (a route key)."""
    notes: str
    """The specialist's internal notes."""
    findings: str
    """The merged knowledge-base findings."""
    reply: str
    """The reply to send to the customer."""
    approved: bool
    """Whether the reviewer approved the reply (else it is the last draft, for a human to check)."""


class SupportDesk:
    """The support-desk app.

    Args:
        settings: Endpoints, keys and models (default: :meth:`Settings.from_env`).
        router, pipeline, broadcast, supervisor: Factories building the patterns, with the signatures of
            :class:`~pytest_agentflows.Router`, :class:`~pytest_agentflows.Pipeline`,
            :class:`~pytest_agentflows.Broadcast` and :class:`~pytest_agentflows.Supervisor` (the defaults).
        strict_review: Use the compliance reviewer instead of the QA reviewer for customer replies.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        router: Callable[..., Router] = Router,
        pipeline: Callable[..., Pipeline] = Pipeline,
        broadcast: Callable[..., Broadcast] = Broadcast,
        supervisor: Callable[..., Supervisor] = Supervisor,
        strict_review: bool = False,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.clients = Clients(self.settings)
        """The SDK clients every agent shares (close with :meth:`aclose`)."""
        self._router, self._pipeline, self._broadcast, self._supervisor = (
            router,
            pipeline,
            broadcast,
            supervisor,
        )
        s, c = self.settings, self.clients
        self.classifier = ChatAgent(c, TRIAGE, s.fast_model, max_tokens=5)
        """The triage classifier (answers a queue name)."""
        self.specialists: dict[str, ChatAgent] = {
            queue: ChatAgent(c, prompt, s.fast_model) for queue, prompt in SPECIALISTS.items()
        }
        """Queue -> specialist."""
        self.knowledge_bases: dict[str, ChatAgent] = {
            key: ChatAgent(c, prompt, s.fast_model) for key, prompt in KNOWLEDGE_BASES.items()
        }
        """Knowledge-base key -> search agent."""
        self.writer = ChatAgent(c, WRITER, s.writer_model)
        """Drafts and revises customer replies."""
        self.reviewer = ClaudeAgent(
            c, COMPLIANCE_REVIEWER if strict_review else QA_REVIEWER, s.reviewer_model
        )
        """Reviews customer replies (Claude)."""
        self.order_agent = ToolAgent(c, ORDER_DESK, s.fast_model, (LOOKUP_ORDER,))
        """Answers order-status tickets, calling ``lookup_order``."""
        self.researcher = ChatAgent(c, RESEARCHER, s.fast_model)
        """Article stage 1: research notes."""
        self.article_writer = ChatAgent(c, ARTICLE_WRITER, s.writer_model, max_tokens=1200)
        """Article stage 2: the draft."""
        self.article_editor = ChatAgent(c, ARTICLE_EDITOR, s.fast_model, max_tokens=1200)
        """Article stage 3: the review."""

    async def aclose(self) -> None:
        """Close the SDK clients (from the event loop that used them)."""
        await self.clients.aclose()

    async def __aenter__(self) -> SupportDesk:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the four patterns -------------------------------------------------------------------------------
    def triage(self) -> Router:
        """Classifier -> billing / technical / general specialist; an unknown queue goes to general."""
        return self._router(self.classifier, self.specialists, fallback="general")

    def knowledge_search(
        self,
        *,
        timeout: float | None = KNOWLEDGE_TIMEOUT_S,
        min_successes: int = 1,
        bases: Mapping[str, Any] | None = None,
    ) -> Broadcast:
        """Ask every knowledge base at once; keep what arrives within ``timeout`` virtual seconds."""
        return self._broadcast(
            dict(bases if bases is not None else self.knowledge_bases),
            merge_findings,
            min_successes=min_successes,
            timeout=timeout,
        )

    def reply_writer(self, *, max_revisions: int = 3, deadline: float = REPLY_DEADLINE_S) -> Supervisor:
        """Writer drafts the reply; the reviewer approves (``APPROVED``) or asks for a revision."""
        return self._supervisor(self.writer, self.reviewer, max_revisions=max_revisions, deadline=deadline)

    def article_pipeline(self, max_usd: Mapping[str, float] = STAGE_MAX_USD) -> Pipeline:
        """research -> draft -> review, each stage reserving its ``max_usd`` before it starts."""
        return self._pipeline(
            [
                Stage("research", self.researcher, max_usd=max_usd["research"]),
                Stage("draft", self.article_writer, max_usd=max_usd["draft"]),
                Stage("review", self.article_editor, max_usd=max_usd["review"]),
            ]
        )

    # -- use cases ---------------------------------------------------------------------------------------
    async def handle(self, ticket: str) -> Resolution:
        """Resolve a customer ticket: triage, knowledge search, reviewed reply."""
        routed = await self.triage().run(ticket)
        findings = await self.knowledge_search().run(ticket)
        reply = await self.reply_writer().run(reply_task(ticket, routed.text, findings.text))
        return Resolution(
            queue=routed.agent or "general",
            notes=routed.text,
            findings=findings.text,
            reply=reply.text,
            approved=bool(reply.data and reply.data["approved"]),
        )

    def handle_sync(self, ticket: str) -> Resolution:
        """:meth:`handle` for sync callers: runs it on a new event loop, then closes the clients."""
        import asyncio

        async def main() -> Resolution:
            async with self:
                return await self.handle(ticket)

        return asyncio.run(main())

    async def write_article(self, topic: str) -> str:
        """A help-center article on ``topic`` (raises ``BudgetExceeded`` when the budget cannot cover it)."""
        result = await self.article_pipeline().run(topic)
        return result.text
