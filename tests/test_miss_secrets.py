"""Keys in URLs never reach the terminal or junit XML on a miss (issue 16, item 4).

An inner pytest session replays with an empty cassette: the openai SDK sends ``?key=`` (a Gemini-style
key), the URL carries ``user:password@``, and the request is unrecorded. pytest's long traceback shows each
frame's arguments (``request = <Request (POST) http://…?key=…>``); the plugin's own frames are hidden and
every string of the report is scrubbed, so neither the key nor the password shows up anywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

KEY = "AIzaSyCanary-0123456789abcdefXYZ"
PASSWORD = "pw-canary-5e6f"  # under 8 characters it would not be learned; this one is caught by its place
SHORT_KEY = "k9x"  # a secret query parameter too short to learn: removed by its name

INNER = f"""
import openai


def test_miss(agentflow):
    client = openai.OpenAI(
        base_url="http://user:{PASSWORD}@127.0.0.1:9/v1", api_key="sk-replay", max_retries=0,
        default_query={{"key": "{KEY}", "sig": "{SHORT_KEY}"}},
    )
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}])
    finally:
        client.close()
"""

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""


@pytest.mark.parametrize("style", ["long", "auto", "short", "native"])
def test_a_miss_prints_no_url_secret(pytester: pytest.Pytester, style: str) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_inner=INNER)
    junit = Path(pytester.path, "junit.xml")
    result = pytester.runpytest_subprocess(f"--tb={style}", f"--junitxml={junit}", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    text = result.stdout.str() + result.stderr.str()
    assert "unrecorded model request" in text
    xml = junit.read_text()
    for secret in (KEY, PASSWORD, f"sig={SHORT_KEY}"):
        assert secret not in text, f"{secret} printed (--tb={style})"
        assert secret not in xml, f"{secret} in junit XML (--tb={style})"
    if style == "long":
        assert "<REDACTED>" in text  # the frames were there, scrubbed: the check looked at them
        assert "_recorder.py" not in text  # the plugin's own frames are hidden


def test_report_scrubber_scrubs_every_string() -> None:
    """The report walker reaches entries, frame arguments, locals, the crash line and chained sections."""
    from _pytest._code.code import (
        ExceptionChainRepr,
        ReprEntry,
        ReprFileLocation,
        ReprFuncArgs,
        ReprLocals,
        ReprTraceback,
    )

    from pytest_agentflows.cassette._redact import Redactor
    from pytest_agentflows.plugin._scrub_report import scrub_report

    url = f"http://user:{PASSWORD}@h/v1?key={KEY}"
    entry = ReprEntry(
        [f"    send({url!r})"],
        ReprFuncArgs([("request", f"<Request (POST) {url}>")]),
        ReprLocals([f"url = {url!r}"]),
        ReprFileLocation("x.py", 1, url),
        "long",
    )
    chain = ExceptionChainRepr(
        [(ReprTraceback([entry], None, "long"), ReprFileLocation("x.py", 1, url), None)]
    )

    class Report:
        longrepr: object = chain

    report = Report()
    scrub_report(report, Redactor(environ={}).scrub_report_text)  # type: ignore[arg-type]
    rendered = str(report.longrepr) + repr(entry.reprfuncargs.args) + str(entry.reprlocals.lines)
    assert KEY not in rendered and PASSWORD not in rendered
    assert "http://<REDACTED>@h/v1?key=<REDACTED>" in rendered
