"""Realistic model latencies for the example's cassettes (the local model server answers in microseconds).

Cassettes store each interaction's latency (``response.agentflows.latency_s``), and replay charges it to
the flow's virtual clock: that is what budgets of *time* (``@pytest.mark.agent_deadline``, broadcast
timeouts, supervisor deadlines) are checked against. Recorded against real APIs, these are real
latencies. Recorded against :class:`~pytest_agentflows.model_server.LocalModelServer`, they would be a
few milliseconds, and no deadline would ever matter, so the example uses the per-agent profile
:data:`LATENCY_S` instead:

* while recording against the local server, ``conftest.py`` calls ``agentflow.simulate_latency(latency_of)``:
  the flow stores the profile in the cassette and charges it to its clock, so the recording run behaves
  exactly like the replays that follow.

So ``pytest docs/examples --record-agents=all`` re-records everything offline and passes with the same
decision snapshots. Run this file by hand after editing :data:`LATENCY_S` to update committed cassettes
without re-recording (then ``pytest docs/examples --snapshot-update``)::

    python docs/examples/set_latencies.py            # every cassette under docs/examples/cassettes
    python docs/examples/set_latencies.py FILE.yaml  # some cassettes

Cassettes recorded with real API keys keep their measured latencies (the conftest does not touch them).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEFAULT_LATENCY_S", "LATENCY_S", "latency_of", "set_latencies"]

# --8<-- [start:profile]
LATENCY_S: dict[str, float] = {
    # triage (Router)
    "router": 0.8,
    "billing": 3.6,
    "technical": 4.2,
    "general": 2.4,
    # knowledge search (Broadcast)
    "docs": 2.2,
    "tickets": 5.4,
    "status": 1.1,
    # customer reply (Supervisor)
    "worker": 24.0,
    "reviewer": 10.0,
    # help-center article (Pipeline)
    "research": 6.5,
    "draft": 14.0,
    "review": 4.5,
    # order status (a tool-using agent)
    "orders": 1.5,
}
"""Agent name -> virtual seconds one model call of that agent takes."""
# --8<-- [end:profile]

DEFAULT_LATENCY_S = 1.0
"""Latency of a call by an agent not in :data:`LATENCY_S` (or made outside any agent)."""

CASSETTES = Path(__file__).resolve().parent / "cassettes"


def latency_of(agent: str | None) -> float:
    """Virtual seconds a call of ``agent`` takes (see :data:`LATENCY_S`)."""
    return LATENCY_S.get(agent or "", DEFAULT_LATENCY_S)


def set_latencies(path: str | os.PathLike[str]) -> int:
    """Store :data:`LATENCY_S` in every interaction of the cassette at ``path``.

    Returns:
        How many interactions changed (the file is rewritten atomically only when some did).
    """
    from vcr.serializers import yamlserializer

    target = Path(path)
    data: dict[str, Any] = yaml.safe_load(target.read_text(encoding="utf-8"))
    changed = 0
    for interaction in data.get("interactions") or []:
        meta = interaction["response"].setdefault("agentflows", {})
        latency = latency_of(meta.get("agent"))
        if meta.get("latency_s") != latency:
            meta["latency_s"] = latency
            changed += 1
    if changed:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(yamlserializer.serialize(data))
        os.replace(tmp, target)
    return changed


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted(CASSETTES.rglob("*.yaml"))
    for path in paths:
        print(f"{path}: {set_latencies(path)} interaction(s) updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
