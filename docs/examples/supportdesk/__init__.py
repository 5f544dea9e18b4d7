"""supportdesk: the example multi-agent app of pytest-agentflows (see ``docs/examples/README``)."""

from .agents import ChatAgent, ClaudeAgent
from .app import (
    KNOWLEDGE_TIMEOUT_S,
    REPLY_DEADLINE_S,
    STAGE_MAX_USD,
    Resolution,
    SupportDesk,
    merge_findings,
    reply_task,
)
from .settings import LOCAL_ANTHROPIC_BASE_URL, LOCAL_OPENAI_BASE_URL, Settings

__all__ = [
    "KNOWLEDGE_TIMEOUT_S",
    "LOCAL_ANTHROPIC_BASE_URL",
    "LOCAL_OPENAI_BASE_URL",
    "REPLY_DEADLINE_S",
    "STAGE_MAX_USD",
    "ChatAgent",
    "ClaudeAgent",
    "Resolution",
    "Settings",
    "SupportDesk",
    "merge_findings",
    "reply_task",
]
