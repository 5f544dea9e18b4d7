"""Resolve one ticket from the command line: ``python -m supportdesk "I was charged twice..."``.

Without API keys the agents talk to the bundled local model server; start it first with
``python docs/examples/local_models.py`` (the example's replies) or
``python -m pytest_agentflows.model_server --port 8765`` (generic echo replies).
"""

from __future__ import annotations

import sys

from .app import SupportDesk


def main(argv: list[str]) -> int:
    if not argv:
        print('usage: python -m supportdesk "ticket text"', file=sys.stderr)
        return 2
    resolution = SupportDesk().handle_sync(" ".join(argv))
    print(f"queue:    {resolution.queue}")
    print(f"approved: {resolution.approved}")
    print(f"notes:    {resolution.notes}")
    print(f"findings:\n{resolution.findings}")
    print(f"\nreply:\n{resolution.reply}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
