"""Re-record the pattern cassettes against a local model server: ``python tests/record_patterns.py [NAME ...]``.

Each scenario of :data:`pattern_flows.SCENARIOS` runs once with the real ``openai`` SDK against a
:class:`~pytest_agentflows.model_server.LocalModelServer` (no API key, deterministic replies), through a
:class:`~pytest_agentflows.Flow` recording into ``fixtures/cassettes/patterns/<NAME>.yaml``. The measured
latencies (milliseconds on loopback) are then replaced by the scenario's chosen values, per agent and in call
order, so replays take meaningful virtual time (5, 8 and 10 s branches, a 130 s revision, ...). After
re-recording, refresh the decision snapshots with ``pytest tests/test_patterns_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pattern_flows import CASSETTES, SCENARIOS, cassette
from vcr.serializers import yamlserializer

from pytest_agentflows import Flow
from pytest_agentflows.model_server import LocalModelServer


def set_latencies(path: str, latencies: dict[str, list[float]]) -> list[tuple[str, float]]:
    """Store the chosen latency of each interaction (agent's list in call order, last value repeating)."""
    data: dict[str, Any] = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = []
    for interaction in data["interactions"]:
        meta = interaction["response"].setdefault("agentflows", {})
        agent = meta.get("agent") or "(none)"
        index = seen.get(agent, 0)
        seen[agent] = index + 1
        values = latencies.get(agent, [1.0])
        meta["latency_s"] = float(values[min(index, len(values) - 1)])
        out.append((agent, meta["latency_s"]))
    Path(path).write_text(yamlserializer.serialize(data), encoding="utf-8")
    return out


def record(name: str) -> None:
    """Record scenario ``name`` into its cassette and set its latencies."""
    scenario = SCENARIOS[name]
    path = Path(cassette(name))
    path.unlink(missing_ok=True)
    with LocalModelServer(responder=scenario.responder) as server:
        flow = Flow(
            cassette=path, record="all", budget_usd=scenario.budget_usd, test_id=f"record_patterns::{name}"
        )
        with flow.activate():
            result = scenario.run(flow, server.openai_base_url)
    stored = set_latencies(str(path), scenario.latencies)
    print(f"{name}: {len(stored)} interactions {stored} -> {str(result)[:80]!r}")


def main(argv: list[str]) -> int:
    CASSETTES.mkdir(parents=True, exist_ok=True)
    names = argv or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    for name in names:
        record(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
