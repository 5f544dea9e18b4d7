"""Framework telemetry is answered locally: never sent, never in a cassette, never a miss, also between tests."""

from __future__ import annotations

import httpx
import pytest
import requests
from stacks import httpx2

from pytest_agentflows import Flow
from pytest_agentflows.cassette._telemetry import TelemetryGuard, is_telemetry, telemetry_guard

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.openai.com/v1/traces/ingest", True),
        ("https://telemetry.crewai.com:4319/v1/traces", True),
        ("http://localhost:4318/v1/metrics", True),
        ("https://otel.example.com/otlp/v1/logs?x=1", True),
        ("https://logfire-eu.pydantic.dev/v1/traces", True),
        ("https://api.smith.langchain.com/runs/batch", True),
        ("https://api.openai.com/v1/chat/completions", False),
        ("https://api.anthropic.com/v1/messages", False),
        ("https://example.com/v1/tracesx", False),
    ],
)
def test_built_in_telemetry_urls(url: str, expected: bool) -> None:
    assert is_telemetry(url) is expected


def test_in_a_flow_every_stack_gets_an_empty_200_and_nothing_is_a_miss(agentflow: Flow) -> None:
    before = telemetry_guard.answered
    with httpx.Client() as client:
        assert client.post("https://api.openai.com/v1/traces/ingest", json={"data": []}).json() == {}
    assert requests.post("https://telemetry.crewai.com:4319/v1/traces", data=b"\x00").status_code == 200
    if httpx2 is not None:
        with httpx2.Client() as client2:
            assert client2.post("http://localhost:4318/v1/traces", content=b"x").status_code == 200
    assert agentflow.pending_misses() == []
    assert telemetry_guard.answered - before == (3 if httpx2 is not None else 2)


async def test_async_clients_too(agentflow: Flow) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post("https://api.smith.langchain.com/runs/batch", json={})
    assert response.status_code == 200
    assert agentflow.pending_misses() == []


def test_a_guard_restores_the_clients_when_the_last_hold_ends() -> None:
    original = httpx.Client.__dict__["send"]
    guard = TelemetryGuard(extra_urls=["http://collector.test/"])
    first, second = guard.hold(), guard.hold()
    assert httpx.Client.__dict__["send"] is not original
    first()
    first()  # a release is idempotent
    assert httpx.Client.__dict__["send"] is not original
    second()
    assert httpx.Client.__dict__["send"] is original
    assert guard.matches("http://collector.test/ingest")
    assert not guard.matches("http://collector.test.evil/ingest")


def test_a_late_exporter_post_is_not_blamed_on_the_next_test_and_nothing_is_recorded(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI + "agentflows_telemetry_urls =\n    http://collector.test/ingest\n")
    pytester.makepyfile(
        test_late="""
        import threading

        import httpx

        wake = threading.Event()
        result = {}
        threads = []


        def exporter():
            wake.wait(30)
            with httpx.Client() as client:  # what a background exporter does, after its test ended
                result["trace"] = client.post("https://api.openai.com/v1/traces/ingest", json={}).status_code
                result["custom"] = client.post("http://collector.test/ingest", json={}).status_code


        def test_starts_an_exporter(agentflow):
            threads.append(threading.Thread(target=exporter, daemon=True))
            threads[0].start()
            with httpx.Client() as client:
                assert client.post("http://collector.test/ingest", json={}).status_code == 200


        def test_innocent_between_flows():
            wake.set()
            threads[0].join(30)
            assert result == {"trace": 200, "custom": 200}


        def test_innocent_flow(agentflow):
            assert agentflow.pending_misses() == []
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "--record-agents")
    result.assert_outcomes(passed=3)
    recorded = list(pytester.path.rglob("*.yaml"))
    assert all(
        "traces/ingest" not in p.read_text() and "collector.test" not in p.read_text() for p in recorded
    )
