"""Cassette names: injective escaping of test ids, long names hashed, ``cassette=`` kept in the project."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_agentflows.model_server import LocalModelServer
from pytest_agentflows.plugin._options import safe_file_name

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
    ignore:unclosed <socket.socket:ResourceWarning
"""

PARAMETRIZED = """
import os
import httpx
import pytest

@pytest.mark.parametrize("who", ["a/b", "a_b", "a b", "x\\ny", "%2F", "L" * 300])
def test_p(agentflow, who):
    with agentflow.agent("asker"):
        r = httpx.post(os.environ["AF_OPENAI_URL"] + "/chat/completions",
                       json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": who[:40]}]})
    assert " ".join(who[:40].split()) in r.json()["choices"][0]["message"]["content"]
"""


def test_safe_file_name_is_injective_and_bounded() -> None:
    names = ["a/b", "a_b", "a b", "a%2Fb", "a\nb", "a\\b", ".", "..", "é", "L" * 300, "L" * 301]
    files = [safe_file_name(n) for n in names]
    assert len(set(files)) == len(names)
    assert files[:3] == ["a%2Fb", "a_b", "a%20b"]
    assert files[3] == "a%252Fb" and files[4] == "a%0Ab" and files[8] == "é"
    assert files[6:8] == ["%2E", "%2E%2E"]
    for file in files:
        assert "/" not in file and "\n" not in file and len(file.encode()) <= 200
    assert files[9].startswith("L" * 150) and "~" in files[9] and files[9] != files[10]


def test_parametrized_ids_get_distinct_cassettes_and_replay(
    pytester: pytest.Pytester, model_server: LocalModelServer, go_offline: Callable[[], None]
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_names=PARAMETRIZED)
    pytester.runpytest("--record-agents=all").assert_outcomes(passed=6)
    folder = pytester.path / "cassettes" / "test_names"
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == 6, files
    assert {"test_p[a%2Fb].yaml", "test_p[a_b].yaml", "test_p[a%20b].yaml", "test_p[x%5Cny].yaml"} <= set(
        files
    )
    assert "test_p[%252F].yaml" in files
    assert all(len(f.encode()) <= 255 and "\n" not in f for f in files)  # (pytest escapes a newline in ids)
    go_offline()
    pytester.runpytest().assert_outcomes(passed=6)


@pytest.mark.parametrize(
    ("cassette", "why"),
    [
        ("../../../outside", "*resolves to *outside the project*"),
        ("/tmp/agentflows-outside.yaml", "*records into *outside the project*"),
        ("two\nlines", "*contains a control character*"),
        ("L" * 300, "*longer than 255 bytes*"),
    ],
)
def test_marker_cassette_outside_the_project_is_a_one_line_collection_error(
    pytester: pytest.Pytester, cassette: str, why: str
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_escape=f"""
import pytest

@pytest.mark.agentflow(cassette={cassette!r}, record="all")
def test_x(agentflow):
    raise AssertionError("must not run")
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*test_escape.py::test_x: @pytest.mark.agentflow(*{why}"])
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*must not run*")
    assert not Path("/tmp/agentflows-outside.yaml").exists()


def test_marker_cassette_may_move_between_cassette_folders(
    pytester: pytest.Pytester, model_server: LocalModelServer
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_shared="""
import os
import httpx
import pytest

@pytest.mark.agentflow(cassette="../common/shared.yaml")
def test_x(agentflow):
    httpx.post(os.environ["AF_OPENAI_URL"] + "/chat/completions",
               json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
"""
    )
    pytester.runpytest("--record-agents").assert_outcomes(passed=1)
    assert (pytester.path / "cassettes" / "common" / "shared.yaml").is_file()
