"""Misused markers, options and ini values fail before any test runs, with one line saying what and how to fix.

Markers: a collection error of the misused test (``ERROR test_x.py::test_y - ...``), one line naming the test,
the marker as written, what is wrong and the fix; the test never runs and no traceback is printed. The command
line (``--record-agents=bogus``) and the ini (``agentflows_cassette_format = xml``) are usage errors at startup.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable

import pytest

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""

# test name -> (marker as written, what the message must say)
MISUSES: dict[str, tuple[str, str]] = {
    "test_budget_negative_usd": ("agent_budget(usd=-1)", "usd must be a number >= 0 (US dollars), got -1"),
    "test_budget_no_cap": ("agent_budget()", "sets no cap: give usd= and/or tokens="),
    "test_budget_usd_text": ("agent_budget(usd='abc')", "usd must be a number >= 0 (US dollars), got 'abc'"),
    "test_budget_negative_tokens": ("agent_budget(tokens=-5)", "tokens must be a whole number >= 0"),
    "test_budget_fractional_tokens": ("agent_budget(tokens=1.5)", "tokens must be a whole number >= 0"),
    "test_budget_unknown_kwarg": (
        "agent_budget(dollars=1)",
        "unknown argument(s) dollars; valid: usd, tokens",
    ),
    "test_deadline_no_seconds": ("agent_deadline()", "needs the seconds"),
    "test_deadline_negative": (
        "agent_deadline(-1)",
        "seconds must be a number >= 0 (virtual seconds), got -1",
    ),
    "test_deadline_text": (
        "agent_deadline('soon')",
        "seconds must be a number >= 0 (virtual seconds), got 'soon'",
    ),
    "test_deadline_zero": ("agent_deadline(0)", "must be a finite number of seconds > 0, got 0"),
    "test_deadline_nan": ("agent_deadline(seconds=float('nan'))", "seconds must be a number >= 0"),
    "test_deadline_two_positional": ("agent_deadline(1, 2)", "takes at most 1 positional argument(s)"),
    "test_deadline_twice": ("agent_deadline(5, seconds=6)", "got seconds twice"),
    "test_flow_record_mode": (
        "agentflow(record='sometimes')",
        "unknown record mode 'sometimes'; valid values: none, new, all",
    ),
    "test_flow_latency": ("agentflow(latency='fast')", "latency must be 'recorded' or 'zero', got 'fast'"),
    "test_flow_unknown_kwarg": (
        "agentflow(casette='x.yaml')",
        "unknown argument(s) casette; valid: cassette, record, latency",
    ),
    "test_flow_cassette_type": ("agentflow(cassette=42)", "cassette must be a file name or path, got 42"),
    "test_flow_cassette_escapes": ("agentflow(cassette='../../../../x')", "outside the project"),
    "test_flow_cassette_newline": ("agentflow(cassette='a\\nb')", "contains a control character"),
    "test_faults_unknown_kind": ("agent_faults(explode={'a': 1})", "got unknown argument(s) explode"),
    "test_faults_bad_status": ("agent_faults(status={'a': 99})", "Fault.status('a', 99)"),
}

# the marker as pytest shows it back (float('nan') is a value by then)
SHOWN = {"agent_deadline(seconds=float('nan'))": "agent_deadline(seconds=nan)"}


def _module() -> str:
    tests = [
        f"@pytest.mark.{marker}\ndef {name}(agentflow):\n    raise AssertionError('must not run')\n"
        for name, (marker, _) in MISUSES.items()
    ]
    tests.append(
        "@pytest.mark.agent_deadline(-3)\nclass TestClassMarker:\n"
        "    def test_inherited(self, agentflow):\n        raise AssertionError('must not run')\n"
    )
    tests.append(
        "@pytest.mark.agent_budget(usd=0.5)\n@pytest.mark.agent_deadline(30)\n"
        "@pytest.mark.agentflow(record='none', latency='zero')\ndef test_fine(agentflow):\n    pass\n"
    )
    tests.append("def test_plain():\n    pass\n")
    return "import pytest\n\n" + "\n\n".join(tests)


def _check_misuse_output(pytester: pytest.Pytester, *args: str) -> tuple[int, int]:
    pytester.makeini(INI)
    pytester.makepyfile(test_markers=_module())
    result = pytester.runpytest("-p", "no:cacheprovider", "--continue-on-collection-errors", *args)
    expected = len(MISUSES) + 1
    result.assert_outcomes(passed=2, errors=expected)
    out = result.stdout.lines
    text = "\n".join(out)
    assert "must not run" not in text  # no misused test ran
    assert "Traceback" not in text and "pytest_agentflows" not in text  # no frames, ours or anyone's
    for name, (marker, what) in MISUSES.items():
        shown = SHOWN.get(marker, marker)
        lines = [line for line in out if line.startswith(f"test_markers.py::{name}: ")]
        assert len(lines) == 1, (name, lines)
        line = lines[0]
        assert line.startswith(f"test_markers.py::{name}: @pytest.mark.{shown}: "), line
        assert what in line, line
        assert re.search(r"\. Fix: e\.g\. @pytest\.mark\.\w+\(", line), line
        # pytest 9 adds " - <message>" to the short summary line; pytest 8 gives the node id alone
        assert any(
            s == f"ERROR test_markers.py::{name}" or s.startswith(f"ERROR test_markers.py::{name} - ")
            for s in out
        ), name
    inherited = [
        line for line in out if line.startswith("test_markers.py::TestClassMarker::test_inherited: ")
    ]
    assert len(inherited) == 1 and "@pytest.mark.agent_deadline(-3): seconds must be" in inherited[0]
    return expected, sum(1 for line in out if line.startswith("ERROR test_markers.py::"))


def test_misused_markers_are_one_line_collection_errors(
    pytester: pytest.Pytester, figures: Callable[..., None]
) -> None:
    expected, errors = _check_misuse_output(pytester)
    figures(misuses_tried=expected, collection_errors=errors, misused_tests_run=0)


@pytest.mark.stress
def test_misused_markers_under_xdist(pytester: pytest.Pytester, figures: Callable[..., None]) -> None:
    """The same errors come back from pytest-xdist workers (the controller prints the workers' reports)."""
    expected, errors = _check_misuse_output(pytester, "-n", "2")
    figures(xdist_misuses_tried=expected, xdist_collection_errors=errors)


def test_collection_errors_stop_the_run_by_default(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_one="""
        import pytest

        @pytest.mark.agent_budget(usd=-1)
        def test_bad(agentflow):
            pass

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)  # like an import error: nothing runs
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*Interrupted: 1 error during collection*"])
    # deselected tests are not checked: -k picks what runs
    pytester.runpytest("-p", "no:cacheprovider", "-k", "plain").assert_outcomes(passed=1)


def test_bad_record_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_one="def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--record-agents=bogus")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*error: argument --record-agents: invalid choice: 'bogus' (choose from *none*new*all*)"]
    )


def test_bad_ini_cassette_format_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "agentflows_cassette_format = xml\n")
    pytester.makepyfile(test_one="def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert lines == [
        "ERROR: ini agentflows_cassette_format = 'xml' is not a cassette format. "
        "Fix: set it to yaml (the default) or json."
    ]
    assert "Traceback" not in result.stderr.str()


def test_markers_added_at_run_time_still_fail_at_setup(pytester: pytest.Pytester) -> None:
    """A marker applied by a fixture (after collection) is checked when the agentflow fixture starts."""
    pytester.makeini(INI)
    pytester.makepyfile(
        test_one=textwrap.dedent(
            """
            import pytest

            @pytest.fixture
            def late(request):
                request.applymarker(pytest.mark.agent_deadline(-2))

            def test_late(late, agentflow):
                raise AssertionError("must not run")
            """
        )
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*test_one.py::test_late: @pytest.mark.agent_deadline(-2): seconds must be*"]
    )
