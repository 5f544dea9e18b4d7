"""The examples of docs/tools.md run as tests (each python block with a test is a test module)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

PAGE = Path(__file__).parent.parent / "docs" / "tools.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""


def test_docs_examples_pass(pytester: pytest.Pytester) -> None:
    blocks = [b for b in BLOCK.findall(PAGE.read_text(encoding="utf-8")) if "def test_" in b]
    assert len(blocks) == 2
    pytester.makeini(INI)
    for index, block in enumerate(blocks):
        pytester.makepyfile(**{f"test_doc_{index:02d}": block})
    pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly").assert_outcomes(passed=2)


def test_documented_snapshot_is_the_examples_decision_log(pytester: pytest.Pytester) -> None:
    page = PAGE.read_text(encoding="utf-8")
    (example,) = [b for b in BLOCK.findall(page) if "def test_trip_planning" in b]
    shown = page.split("(`assert agentflow.decisions == decision_snapshot`):\n\n```yaml\n", 1)[1]
    shown = shown.split("```", 1)[0]
    pytester.makeini(INI)
    pytester.makepyfile(
        test_trip=example + "\n\ndef test_snapshot(agentflow, scripted_model, decision_snapshot):\n"
        "    test_trip_planning(agentflow, scripted_model)\n"
        "    assert agentflow.decisions == decision_snapshot\n"
    )
    pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", "--snapshot-update").assert_outcomes(
        passed=2
    )
    snapshot = (pytester.path / "__snapshots__" / "test_trip.agentflows").read_text(encoding="utf-8")
    body = "\n".join(line[2:] for line in snapshot.splitlines() if line.startswith("  "))
    assert shown.strip() == body.strip()
