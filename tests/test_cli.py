"""The ``agentflows`` command: ``inspect`` and ``redact`` on real third-party cassettes and planted secrets."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from vcr.serializers import yamlserializer

from pytest_agentflows import load_cassette
from pytest_agentflows.cassette._redact import env_secrets
from pytest_agentflows.cli import main

THIRDPARTY = Path(__file__).resolve().parent.parent / "fixtures" / "thirdparty"
CREW = THIRDPARTY / "crewAIInc__crewAI" / "lib" / "crewai" / "tests" / "cassettes"
SIMONW = THIRDPARTY / "simonw__llm" / "tests" / "cassettes"
PYDANTIC = THIRDPARTY / "pydantic__pydantic-ai" / "tests"
LANGCHAIN = THIRDPARTY / "langchain-ai__langchain-aws" / "libs" / "aws" / "tests" / "cassettes"

INSPECTED = [
    CREW / "test_kickoff_for_each_multiple_inputs.yaml",  # LLM calls mixed with tracing requests, a 401
    CREW / "llms" / "anthropic" / "test_anthropic_streaming_cached_prompt_tokens.yaml",  # Anthropic SSE
    PYDANTIC / "cassettes" / "test_temporal" / "test_multiple_agents.yaml",  # parsed_body + SSE
    SIMONW / "test_tools" / "test_tool_use_chain_of_two_calls.yaml",  # gzip bodies
    LANGCHAIN / "test_agent_loop[v1].yaml.gz",  # whole-file gzip, requests:/responses: layout
]


@pytest.fixture(autouse=True)
def _no_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the environment values a test plants count as secrets."""
    for name, _ in env_secrets():
        monkeypatch.delenv(name)


def test_python_m_help() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest_agentflows", "--help"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "usage: agentflows" in run.stdout and "inspect" in run.stdout and "redact" in run.stdout


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


# -- inspect -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", INSPECTED, ids=lambda p: p.name)
def test_inspect_third_party_cassettes(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cassette = load_cassette(path)
    assert main(["inspect", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{path}: {len(cassette)} interactions"
    assert lines[1].split() == [
        "#",
        "agent",
        "provider",
        "model",
        "in",
        "tok",
        "out",
        "tok",
        "USD",
        "latency",
        "s",
        "streamed",
        "request",
    ]
    tool_lines = [line for line in lines if line.startswith("      tool call: ")]
    assert len(tool_lines) == sum(len(c.tool_calls) for c in cassette.calls)
    body = [line for line in lines[2:-1] if not line.startswith("      tool call: ")]
    assert len(body) == len(cassette)
    for line, interaction in zip(body, cassette.interactions, strict=True):
        cells = line.split()
        assert cells[0] == str(interaction.index)
        assert line.endswith(f" {interaction.status}")
        call = interaction.call
        if call is not None:
            assert cells[2:6] == [
                call.provider,
                call.model,
                f"{call.usage.input_tokens:,}",
                f"{call.usage.output_tokens:,}",
            ]
            assert cells[8] == ("yes" if call.streamed else "no")
        else:
            assert cells[2:4] == ["-", "-"]
    usage = cassette.usage
    cost = "$?" if usage.cost_usd is None else f"${usage.cost_usd:.6f}"
    n_tools = sum(len(c.tool_calls) for c in cassette.calls)
    assert lines[-1] == (
        f"total: {len(cassette)} interactions, {len(cassette.calls)} model calls, {usage.input_tokens:,} input + "
        f"{usage.output_tokens:,} output tokens, {cost}, "
        f"{sum(c.latency_s for c in cassette.calls):.3f} s recorded latency"
        + (f", {n_tools} tool calls" if n_tools else "")
    )


def test_inspect_never_prints_query_strings(capsys: pytest.CaptureFixture[str]) -> None:
    path = PYDANTIC / "models" / "cassettes" / "test_anthropic" / "test_anthropic_prompted_output.yaml"
    assert "?beta=true" in path.read_text()
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "POST api.anthropic.com/v1/messages 200" in out and "beta=true" not in out


def test_inspect_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("interactions: [\n  - {request: \n")
    good = CREW / "test_usage_info_non_streaming_with_call.yaml"
    assert main(["inspect", str(bad), str(good), str(tmp_path / "missing.yaml")]) == 2
    captured = capsys.readouterr()
    assert f"cannot read cassette {bad}" in captured.err and "invalid YAML" in captured.err
    assert f"cannot read cassette {tmp_path / 'missing.yaml'}: cannot open the file" in captured.err
    assert f"{good}: 1 interaction\n" in captured.out  # the readable one is still shown


# -- redact: planted secrets ---------------------------------------------------------------------------
SECRETS = {
    "authorization": "Bearer sk-planted-authorization-0123456789",
    "cookie": "session=planted-cookie-abcdef987654; Path=/; HttpOnly",
    "query": "planted-query-key-55aa66bb",
    "body": "planted-body-api-key-77cc88dd",
    "env": "planted-env-token-99ee00ff",
}


def _planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of a real crewAI cassette with secrets planted in it."""
    source = CREW / "test_usage_info_non_streaming_with_call.yaml"
    data = yamlserializer.deserialize(source.read_text(encoding="utf-8"))
    (interaction,) = data["interactions"]
    request, response = interaction["request"], interaction["response"]
    request["headers"]["authorization"] = [SECRETS["authorization"]]
    request["uri"] += f"?key={SECRETS['query']}"
    body = json.loads(request["body"])
    body["api_key"] = SECRETS["body"]
    request["body"] = json.dumps(body)
    response["headers"]["Set-Cookie"] = [SECRETS["cookie"]]
    response["headers"]["x-echo"] = [f"token {SECRETS['env']}"]
    monkeypatch.setenv("AGENTFLOWS_PLANTED_TOKEN", SECRETS["env"])
    path = tmp_path / "planted.yaml"
    path.write_text(yamlserializer.serialize(data), encoding="utf-8")
    path.chmod(0o644)
    return path


def test_redact_planted_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _planted(tmp_path, monkeypatch)
    before = path.read_bytes()
    calls_before = load_cassette(path).calls
    # authorization, Set-Cookie, openai-organization, openai-project (the last two were in the original)
    expected = "removed 4 headers, 1 query parameter, 1 body key, 1 secret environment value"

    assert main(["redact", "--check", "--body-key", "api_key", str(path)]) == 1
    checked = capsys.readouterr()
    assert f"{path}: {expected.replace('removed', 'would remove')}" in checked.out
    assert path.read_bytes() == before  # --check never writes

    assert main(["redact", "--body-key", "api_key", str(path)]) == 0
    redacted = capsys.readouterr()
    assert redacted.out.splitlines() == [f"{path}: {expected}", "agentflows redact: 1 file, 1 changed"]
    text = path.read_text(encoding="utf-8")
    for secret in SECRETS.values():
        assert secret not in text
        assert secret not in checked.out + checked.err + redacted.out + redacted.err
    assert "<REDACTED>" in text and "<REDACTED:AGENTFLOWS_PLANTED_TOKEN>" in text
    assert path.stat().st_mode & 0o777 == 0o644
    assert not list(tmp_path.glob(".*.tmp"))

    import vcr
    import vcr.record_mode

    with vcr.use_cassette(str(path), record_mode=vcr.record_mode.RecordMode.NONE) as cassette:
        assert len(cassette) == 1  # plain vcrpy still reads it
    data = yaml.safe_load(text)
    request = data["interactions"][0]["request"]
    assert "?" not in request["uri"] and "authorization" not in request["headers"]
    assert json.loads(request["body"])["api_key"] == "<REDACTED>"
    assert [c.usage for c in load_cassette(path).calls] == [c.usage for c in calls_before]

    assert main(["redact", "--check", "--body-key", "api_key", str(path)]) == 0  # idempotent
    assert capsys.readouterr().out.startswith(f"{path}: clean")


def test_redact_inside_gzip_bodies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gzip_body.yaml"
    shutil.copyfile(SIMONW / "test_openai_responses" / "test_responses_basic_non_streaming.yaml", path)
    assert b"!!binary" in path.read_bytes()
    response_id = load_cassette(path).interactions[0].response_json()["id"]
    assert main(["redact", "--body-key", "id", str(path)]) == 0
    assert "body key" in capsys.readouterr().out
    raw = yaml.safe_load(path.read_text())["interactions"][0]["response"]["body"]["string"]
    assert isinstance(raw, bytes) and raw.startswith(b"\x1f\x8b")  # still gzip, as recorded
    assert response_id.encode() not in gzip.decompress(raw)
    assert load_cassette(path).interactions[0].response_json()["id"] == "<REDACTED>"


# -- redact: real third-party cassettes ----------------------------------------------------------------
def test_redact_third_party_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "thirdparty"
    shutil.copytree(THIRDPARTY, root)
    files = sorted(p for p in root.rglob("*") if p.name.endswith((".yaml", ".yml", ".json", ".yaml.gz")))
    originals = {p: load_cassette(p).calls for p in files}

    assert main(["redact", "--check", str(root)]) == 1
    out = capsys.readouterr().out
    # crewAI's placeholder and organization headers, pydantic-ai's openai-organization, langchain's
    # '**REDACTED**' authorization header are all secret headers by name
    expected_line = (
        f"{CREW / 'test_usage_info_non_streaming_with_call.yaml'}: would remove 4 headers".replace(
            str(THIRDPARTY), str(root)
        )
    )
    assert expected_line in out.splitlines()
    assert out.splitlines()[-1].startswith(f"agentflows redact: {len(files)} files, ")

    assert main(["redact", str(root)]) == 0
    capsys.readouterr()
    for path, calls in originals.items():
        assert [c.usage for c in load_cassette(path).calls] == [c.usage for c in calls], path
    gz = root / LANGCHAIN.relative_to(THIRDPARTY) / "test_agent_loop[v1].yaml.gz"
    assert gz.read_bytes().startswith(b"\x1f\x8b")  # still a gzip file
    assert b"authorization" not in gzip.decompress(gz.read_bytes())

    assert main(["redact", "--check", str(root)]) == 0
    assert (
        capsys.readouterr().out.splitlines()[-1] == f"agentflows redact: {len(files)} files, 0 would change"
    )


def test_redact_progress_for_many_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = CREW / "test_deepseek_r1_with_open_router.yaml"  # no secret header: stays untouched
    for i in range(21):
        shutil.copyfile(source, tmp_path / f"c{i:02d}.yaml")
    assert main(["redact", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == f"[1/21] {tmp_path / 'c00.yaml'}"
    assert captured.err.splitlines()[-1] == f"[21/21] {tmp_path / 'c20.yaml'}"
    assert captured.out.splitlines()[-1] == "agentflows redact: 21 files, 0 changed"
    assert (tmp_path / "c00.yaml").read_bytes() == source.read_bytes()


def test_redact_few_files_print_no_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copyfile(CREW / "test_deepseek_r1_with_open_router.yaml", tmp_path / "one.yaml")
    assert main(["redact", str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""


def test_redact_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.yaml").write_text("interactions:\n  - request: [unclosed\n")
    (tmp_path / "notacassette.yml").write_text("name: a config file\n")
    (tmp_path / "corrupt.yaml.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    (tmp_path / "broken.json").write_text('{"interactions": [')
    good = tmp_path / "good.yaml"
    shutil.copyfile(CREW / "test_usage_info_non_streaming_with_call.yaml", good)
    missing = tmp_path / "missing.yaml"

    assert main(["redact", str(tmp_path), str(missing)]) == 2
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert (
        f"agentflows redact: error: {tmp_path / 'broken.yaml'}: invalid YAML at line 3, column 1: " in err[1]
    )
    assert any(
        line.startswith(f"agentflows redact: error: {tmp_path / 'notacassette.yml'}: no 'interactions' list")
        for line in err
    )
    assert any(
        f"{tmp_path / 'corrupt.yaml.gz'}: the gzip file is truncated or corrupt" in line for line in err
    )
    assert any(f"{tmp_path / 'broken.json'}: invalid JSON at line 1" in line for line in err)
    assert f"agentflows redact: error: {missing}: no such file or directory" in err
    assert f"{good}: removed 4 headers" in captured.out  # the readable file is still redacted
    assert captured.out.splitlines()[-1] == "agentflows redact: 6 files, 1 changed, 5 unreadable"
