"""Message fixes: pluralisation, small spends, and a miss that differs only by host."""

from __future__ import annotations

from pytest_agentflows.cassette._keys import nearest_diff, request_key
from pytest_agentflows.report import FlowRow, summary_line, usd_text


def test_summary_line_says_one_model_call_and_shows_small_spends() -> None:
    row = FlowRow(test="t", calls=1, replayed=1, input_tokens=5, output_tokens=1, cost_usd=0.0000138)
    assert summary_line([row]) == (
        "agentflows: 1 flow, 1 model call (1 replayed, 0 recorded), 5 input + 1 output tokens, $0.000014, "
        "0.0 s virtual"
    )
    assert [usd_text(v) for v in (None, 0.0, 0.0000004, 0.0042, 0.0184, 12.5)] == [
        "$?",
        "$0.00",
        "<$0.000001",
        "$0.004200",
        "$0.0184",
        "$12.5000",
    ]


def test_a_miss_that_differs_only_by_host_does_not_blame_used_responses() -> None:
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    recorded = request_key("POST", "https://api.anthropic.com/v1/messages", body)
    sent = request_key("POST", "https://api.example.com/v1/messages", body)
    text = nearest_diff(sent, [recorded])
    assert "already used" not in text
    assert "only the method or URL differs" in text and "ANTHROPIC_BASE_URL" in text
    assert "already used" in nearest_diff(recorded, [recorded])  # same request, all answers used
