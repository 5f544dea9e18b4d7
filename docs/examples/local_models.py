"""Deterministic stand-ins for the support desk's models, served by pytest-agentflows' LocalModelServer.

The conftest records the example's cassettes against
:class:`~pytest_agentflows.model_server.LocalModelServer` with :func:`support_responder` when no API key
is set, so anyone can re-record them offline. The replies depend on the request content only:

* triage (system prompt says "Classify"): ``sales`` for quote/seat requests (not a queue: the router falls
  back to ``general``), else the server's keyword classifier (billing / technical / general);
* specialists, knowledge bases, the reply writer and the article stages: canned texts for the ticket's
  topic; the **status page fails (HTTP 500) while there is an outage** (a ticket mentioning "outage");
* the QA reviewer approves a revised draft and critiques a first draft; the **compliance reviewer never
  approves**.

Run it by hand to try the app: ``python docs/examples/local_models.py`` serves on port 8765 (add
``--latency 0.5`` for real-model-like waits of half a second per answer), then
``cd docs/examples && python -m supportdesk "I was charged twice"``.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading

from pytest_agentflows import ToolCall
from pytest_agentflows.model_server import (
    LABEL_KEYWORDS,
    LocalModelServer,
    Request,
    ResponderResult,
    default_responder,
)

__all__ = ["serve", "support_responder", "topic_of"]

_WORDS = re.compile(r"[a-z]+")
SALES_WORDS = frozenset({"quote", "seats", "seat", "enterprise", "upgrade"})


def topic_of(text: str) -> str:
    """``billing``, ``technical`` or ``general``: the server's keyword rule on ``text``."""
    words = _WORDS.findall(text.lower())
    best, hits = "general", 0
    for label, keywords in LABEL_KEYWORDS.items():
        n = sum(1 for w in words if w in keywords)
        if n > hits:
            best, hits = label, n
    return best


def _ticket(text: str) -> str:
    """The customer ticket inside a composed prompt (or the whole text)."""
    match = re.search(r"Customer ticket:\n(.*?)\n\n", text, re.S)
    return match.group(1) if match else text


NOTES = {
    "billing": "Cause: the card payment timed out and was retried, so the invoice was charged twice. "
    "Fix: refund the duplicate charge from Admin > Invoices. Next step: confirm the refund and its "
    "5-10 business day delay to the customer.",
    "technical": "Cause: the EU API gateway is returning 502 errors since 07:40 UTC. Fix: engineering is "
    "rolling back the gateway release. Next step: share the incident link and suggest retries with backoff.",
    "general": "Cause: a general question with no account problem. Fix: answer from the company page. "
    "Next step: point the customer to the contact form.",
}

FINDINGS = {
    "docs": {
        "billing": "Docs > Billing > Refunds: duplicate card charges are refunded to the original payment "
        "method within 5-10 business days; agents issue refunds from Admin > Invoices.",
        "technical": "Docs > API > Errors: a 502 means the gateway could not reach an upstream service; "
        "clients should retry with exponential backoff.",
        "general": "Docs > Company: offices in Lisbon and Toronto; visits are by appointment through the "
        "contact form.",
    },
    "tickets": {
        "billing": "Past tickets: 14 duplicate-charge tickets this quarter, all caused by a payment retry "
        "after a card timeout, all resolved with a refund.",
        "technical": "Past tickets: 3 tickets this morning report 502 errors on the EU region; no fix "
        "was needed on the customer side.",
        "general": "Past tickets: no similar tickets in the last 90 days.",
    },
    "status": {
        "billing": "Status page: all systems operational; no incidents in the last 24 hours.",
        "technical": "Status page: degraded performance on the EU API since 07:40 UTC.",
        "general": "Status page: all systems operational.",
    },
}

REPLY_BODY = {
    "billing": "I am sorry about the double charge on your invoice. The second payment came from an "
    "automatic retry after your card timed out, and I have refunded it to your card.",
    "technical": "I am sorry about the 502 errors. Our EU API gateway is degraded since 07:40 UTC and our "
    "engineers are rolling back the release that caused it.",
    "general": "Thanks for your interest in visiting us. We have offices in Lisbon and Toronto, and "
    "visits are by appointment.",
}
NEXT_STEP = {
    "billing": "The refund reaches your account within 5 to 10 business days; you will get an email "
    "receipt today.",
    "technical": "You can follow the fix on our status page, and retries with exponential backoff will "
    "succeed as soon as it is done.",
    "general": "Just send us the date you have in mind through the contact form and we will confirm it "
    "within two working days.",
}
QA_CRITIQUE = "REVISE: say when the customer will see the result and end with one clear next step."
COMPLIANCE_CRITIQUE = (
    "REVISE: add the legal entity name, the ticket reference and the data-processing notice required in "
    "every customer reply."
)

ARTICLE_NOTES = (
    "Research notes: 1. Duplicate charges happen when a card payment times out and is retried. "
    "2. Refunds go back to the original payment method. 3. Refunds take 5-10 business days. "
    "4. Agents issue refunds from Admin > Invoices. 5. Customers get an email receipt. "
    "6. Enabling 3-D Secure lowers the number of timeouts."
)
ARTICLE = (
    "How refunds for duplicate charges work\n\n"
    "Sometimes a card payment takes too long to confirm. When that happens our payment provider retries "
    "it, and in rare cases both attempts succeed, so the same invoice is charged twice. If you see two "
    "identical charges for one invoice, you do not need to do anything special: contact support with the "
    "invoice number and we will refund the duplicate.\n\n"
    "Where does the money go?\n"
    "Refunds always go back to the original payment method. We cannot send a refund to a different card "
    "or bank account, for your security.\n\n"
    "How long does it take?\n"
    "Most banks show the refund within 5 to 10 business days. You receive an email receipt as soon as we "
    "issue it, and the invoice in your account shows the refund right away.\n\n"
    "How can I avoid it?\n"
    "Turning on 3-D Secure for your card makes payment timeouts much less likely. You can enable it in "
    "Settings > Billing > Payment methods.\n\n"
    "Still need help? Reply to your receipt email and our billing team will take it from there."
)


def order_desk(request: Request) -> ResponderResult:
    """The order desk's model: calls ``lookup_order`` with the order id of the ticket, then answers from
    the tool's result."""
    order = re.search(r"\b[A-Z]\d{4}\b", request.last_user_text)
    if not request.called_tools:
        return ToolCall("lookup_order", {"order_id": order.group(0) if order else "unknown"})
    status = next((text for role, text in reversed(request.messages) if role == "tool"), "unknown")
    return f"Your order {order.group(0) if order else ''} is {status}.".replace("  ", " ")


def support_responder(request: Request) -> ResponderResult:
    """The reply of the support desk's models to ``request`` (see the module docstring).

    Raises:
        RuntimeError: for the status page during an outage (the server answers HTTP 500).
    """
    system, user = request.system, request.last_user_text
    lowered = system.lower()
    if "classify" in lowered:
        if SALES_WORDS & set(_WORDS.findall(user.lower())):
            return "sales"
        return default_responder(request)
    if "order desk" in lowered:
        return order_desk(request)
    topic = topic_of(_ticket(user))
    if "support agent" in lowered:
        body = REPLY_BODY[topic]
        if "Reviewer critique:" in user:
            return f"Hi there,\n\n{body} {NEXT_STEP[topic]}\n\nBest regards,\nThe Support Team"
        return f"Hi there,\n\n{body}\n\nBest regards,\nThe Support Team"
    if "specialist" in lowered:
        return NOTES[topic]
    if "status page" in lowered:
        if "outage" in user.lower():
            raise RuntimeError("status page backend overloaded during the outage")
        return FINDINGS["status"][topic]
    if "product documentation" in lowered:
        return FINDINGS["docs"][topic]
    if "past support tickets" in lowered:
        return FINDINGS["tickets"][topic]
    if "compliance reviewer" in lowered:
        return COMPLIANCE_CRITIQUE
    if "qa reviewer" in lowered:
        return "APPROVED" if "Revised draft:" in user else QA_CRITIQUE
    if "support researcher" in lowered:
        return ARTICLE_NOTES
    if "technical writer" in lowered:
        return ARTICLE
    if "help-center editor" in lowered:
        return ARTICLE.replace("Still need help?", "Need more help?")
    return default_responder(request)


def serve(port: int = 8765, latency: float = 0.0) -> None:
    """Serve :func:`support_responder` on ``127.0.0.1:port`` until Ctrl+C, each answer after ``latency`` s."""
    with LocalModelServer(port=port, responder=support_responder, latency=latency) as server:
        print(f"supportdesk models on {server.url} (OPENAI_BASE_URL={server.openai_base_url}); Ctrl+C stops")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    # python docs/examples/local_models.py [PORT] [--latency SECONDS]
    args = sys.argv[1:]
    delay = 0.0
    if "--latency" in args:
        at = args.index("--latency")
        delay = float(args[at + 1])
        del args[at : at + 2]
    serve(int(args[0]) if args else 8765, delay)
