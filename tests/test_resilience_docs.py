"""The examples of docs/failure-modes.md run as tests (each python block with a test is a test module)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

PAGE = Path(__file__).parent.parent / "docs" / "failure-modes.md"
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
    assert len(blocks) >= 9
    pytester.makeini(INI)
    tests = 0
    for index, block in enumerate(blocks):
        pytester.makepyfile(**{f"test_doc_{index:02d}": block})
        tests += block.count("\ndef test_") + block.count("\nasync def test_") + block.startswith("def test_")
    pytester.runpytest("-p", "no:cacheprovider", "--snapshot-update").assert_outcomes(passed=tests)
    assert list((pytester.path / "__snapshots__").iterdir())  # the snapshot recipes wrote their snapshots
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=tests)
