"""Record with --record-agents, then replay offline: every SDK shape, modes, misses, repeats."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from stacks import HAS_HTTPX2

from pytest_agentflows.model_server import LocalModelServer

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""

FLOWS = """
import asyncio, os
import anthropic, openai

def oai():
    return openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="sk-test-key-0000", max_retries=0)

def test_chat_sync(agentflow):
    with agentflow.agent("router"), oai() as client:
        r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "classify my billing issue"}])
    assert r.choices[0].message.content == "billing"
    assert [c.agent for c in agentflow.calls] == ["router"]
    assert agentflow.calls[0].usage.output_tokens == r.usage.completion_tokens

def test_chat_stream(agentflow):
    with agentflow.agent("writer"), oai() as client:
        s = client.chat.completions.create(model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
                                           messages=[{"role": "user", "content": "write a haiku about tests"}])
        text = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
    assert "haiku" in text
    call, = agentflow.calls
    assert call.streamed and call.agent == "writer" and call.usage.output_tokens > 0

def test_responses_sync(agentflow):
    with agentflow.agent("researcher"), oai() as client:
        r = client.responses.create(model="gpt-4o-mini", input="research the topic")
        s = client.responses.create(model="gpt-4o-mini", input="stream the topic", stream=True)
        events = [e.type for e in s]
    assert "research the topic" in r.output_text
    assert events[-1] == "response.completed"
    assert [c.api for c in agentflow.calls] == ["openai.responses", "openai.responses"]
    assert agentflow.calls[0].usage.input_tokens == r.usage.input_tokens

async def test_async_gather(agentflow):
    client = openai.AsyncOpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="sk-test-key-0000", max_retries=0)
    claude = anthropic.AsyncAnthropic(base_url=os.environ["AF_ANTHROPIC_URL"], api_key="sk-ant-test-0000", max_retries=0)

    async def ask(name, text):
        with agentflow.agent(name):
            r = await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
            return r.choices[0].message.content

    async def critic():
        with agentflow.agent("critic"):
            async with claude.messages.stream(model="claude-haiku-4-5", max_tokens=50,
                                              messages=[{"role": "user", "content": "critique it"}]) as s:
                return await s.get_final_text()

    try:
        results = await asyncio.gather(ask("a", "alpha question"), ask("b", "beta question"), critic())
    finally:
        await client.close()
        await claude.close()
    assert "alpha question" in results[0] and "critique it" in results[2]
    assert sorted(c.agent for c in agentflow.calls) == ["a", "b", "critic"]
    assert {c.provider for c in agentflow.calls} == {"openai", "anthropic"}

def test_anthropic_sync(agentflow):
    claude = anthropic.Anthropic(base_url=os.environ["AF_ANTHROPIC_URL"], api_key="sk-ant-test-0000", max_retries=0)
    with agentflow.agent("claude"), claude:
        m = claude.messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hello claude"}])
    call, = agentflow.calls
    assert (call.provider, call.usage.input_tokens, call.usage.output_tokens) == (
        "anthropic", m.usage.input_tokens, m.usage.output_tokens)
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    return pytester


def test_record_then_replay_with_server_stopped(
    project: pytest.Pytester,
    model_server: LocalModelServer,
    monkeypatch: pytest.MonkeyPatch,
    go_offline: Callable[[], None],
) -> None:
    project.makepyfile(test_flows=FLOWS)
    recorded = project.runpytest("--record-agents")
    recorded.assert_outcomes(passed=5)
    recorded.stdout.fnmatch_lines(["agentflows: 5 flows, 8 model calls (0 replayed, 8 recorded)*"])
    cassettes = sorted(p.name for p in (project.path / "cassettes" / "test_flows").iterdir())
    assert cassettes == [
        f"{n}.yaml"
        for n in sorted(
            [
                "test_chat_sync",
                "test_chat_stream",
                "test_responses_sync",
                "test_async_gather",
                "test_anthropic_sync",
            ]
        )
    ]
    served = len(model_server.requests)

    go_offline()
    replayed = project.runpytest()
    replayed.assert_outcomes(passed=5)
    replayed.stdout.fnmatch_lines(["agentflows: 5 flows, 8 model calls (8 replayed, 0 recorded)*"])
    assert len(model_server.requests) == served  # nothing reached a server on replay


def test_each_interaction_stores_agent_and_latency_and_stays_vcrpy_loadable(
    project: pytest.Pytester, model_server: LocalModelServer
) -> None:
    project.makepyfile(test_flows=FLOWS)
    project.runpytest("--record-agents", "-k", "chat_sync").assert_outcomes(passed=1)
    path = project.path / "cassettes" / "test_flows" / "test_chat_sync.yaml"
    data = yaml.safe_load(path.read_text())
    meta = data["interactions"][0]["response"]["agentflows"]
    assert meta["agent"] == "router" and meta["latency_s"] >= 0

    import vcr
    import vcr.record_mode

    with vcr.use_cassette(str(path), record_mode=vcr.record_mode.RecordMode.NONE) as cassette:
        assert len(cassette) == 1  # plain vcrpy reads the file


def test_unrecorded_request_names_test_agent_url_and_shows_body_diff(
    project: pytest.Pytester,
    model_server: LocalModelServer,
    monkeypatch: pytest.MonkeyPatch,
    go_offline: Callable[[], None],
) -> None:
    project.makepyfile(test_flows=FLOWS)
    project.runpytest("--record-agents", "-k", "chat_sync").assert_outcomes(passed=1)
    changed = FLOWS.replace("classify my billing issue", "classify my refund issue")
    project.makepyfile(test_flows=changed)
    go_offline()
    result = project.runpytest("-k", "chat_sync")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*UnrecordedRequestError: unrecorded model request in test test_flows.py::test_chat_sync",
            "*agent:    router",
            "*request:  POST http://127.0.0.1:9/v1/chat/completions",
            "*cassette: *cassettes/test_flows/test_chat_sync.yaml",
            '*-*"content": "classify my billing issue"*',
            '*+*"content": "classify my refund issue"*',
            "*--record-agents*",
        ]
    )
    # the SDK's retry loop never saw it as a connection error
    assert "APIConnectionError" not in result.stdout.str()


def test_missing_cassette_is_an_unrecorded_request(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, go_offline: Callable[[], None]
) -> None:
    project.makepyfile(test_flows=FLOWS)
    go_offline()
    result = project.runpytest("-k", "chat_sync")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*why:      the cassette file does not exist*"])
    assert not (project.path / "cassettes").exists()  # replay never creates files


def test_swallowed_miss_still_fails_the_test(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, go_offline: Callable[[], None]
) -> None:
    project.makepyfile(
        test_swallow="""
        import os, openai
        def app():  # app code that swallows every error (the test function itself catching it is fine)
            try:
                openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0).models.list()
            except Exception:
                pass
        def test_swallow(agentflow):
            app()
        """
    )
    go_offline()
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unrecorded model request in test test_swallow.py::test_swallow*"])


def test_identical_requests_replay_in_recorded_order(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, go_offline: Callable[[], None]
) -> None:
    project.makepyfile(
        test_loop="""
        import os, openai
        def test_loop(agentflow):
            client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
            answers = []
            for _ in range(3):
                r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "same"}])
                answers.append(r.choices[0].message.content)
            assert answers == ["draft one", "draft two", "APPROVED"]
        """
    )
    with LocalModelServer(script=["draft one", "draft two", "APPROVED"]) as server:
        monkeypatch.setenv("AF_OPENAI_URL", server.openai_base_url)
        project.runpytest("--record-agents").assert_outcomes(passed=1)
    go_offline()
    project.runpytest().assert_outcomes(passed=1)
    project.runpytest().assert_outcomes(passed=1)  # replay is repeatable: queues start anew each test


def test_record_modes_new_adds_and_all_rewrites(
    project: pytest.Pytester,
    model_server: LocalModelServer,
    monkeypatch: pytest.MonkeyPatch,
    go_offline: Callable[[], None],
) -> None:
    source = """
    import os, openai
    PROMPTS = {prompts}
    def test_flow(agentflow):
        client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
        for p in PROMPTS:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": p}}])
    """
    path = project.path / "cassettes" / "test_modes" / "test_flow.yaml"

    def uris() -> list[str]:
        return [i["request"]["body"] for i in yaml.safe_load(path.read_text())["interactions"]]

    project.makepyfile(test_modes=source.format(prompts=["one"]))
    project.runpytest("--record-agents").assert_outcomes(passed=1)
    assert len(uris()) == 1
    project.makepyfile(test_modes=source.format(prompts=["one", "two"]))
    result = project.runpytest("--record-agents=new")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*(1 replayed, 1 recorded)*"])
    assert len(uris()) == 2
    project.makepyfile(test_modes=source.format(prompts=["three"]))
    result = project.runpytest("--record-agents=all")
    result.assert_outcomes(passed=1)
    assert len(uris()) == 1 and "three" in uris()[0]
    project.runpytest("--record-agents=none").assert_outcomes(passed=1)


def test_marker_record_mode_overrides_cli_and_bad_values_are_usage_errors(
    project: pytest.Pytester, model_server: LocalModelServer
) -> None:
    project.makepyfile(
        test_marker="""
        import os, openai, pytest
        @pytest.mark.agentflow(record="new", cassette="custom_name")
        def test_recorded_by_marker(agentflow):
            openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k").chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])

        @pytest.mark.agentflow(record="sometimes")
        def test_bad(agentflow):
            pass
        """
    )
    result = project.runpytest("--continue-on-collection-errors")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*unknown record mode 'sometimes'; valid values: none, new, all*"])
    assert (project.path / "cassettes" / "test_marker" / "custom_name.yaml").exists()


def test_ini_cassette_dir(project: pytest.Pytester, model_server: LocalModelServer) -> None:
    project.makeini(INI + "agentflows_cassette_dir = recorded/flows\n")
    project.makepyfile(test_flows=FLOWS)
    project.runpytest("--record-agents", "-k", "chat_sync").assert_outcomes(passed=1)
    assert (project.path / "recorded" / "flows" / "test_flows" / "test_chat_sync.yaml").is_file()


def test_help_and_markers(project: pytest.Pytester) -> None:
    project.runpytest("--help").stdout.fnmatch_lines(["*--record-agents=*none,new,all*"])
    project.runpytest("--markers").stdout.fnmatch_lines(
        [
            "@pytest.mark.agentflow(cassette=None, record=None, latency='recorded', save_on_failure=None, "
            "match_ignore=(), snapshot_measurements=None)*",
            "@pytest.mark.agent_budget(usd=None, tokens=None)*",
            "@pytest.mark.agent_deadline(seconds)*",
        ]
    )


def test_corrupt_cassette_raises_cassette_error_and_leaves_file_untouched(
    project: pytest.Pytester, model_server: LocalModelServer
) -> None:
    project.makepyfile(test_flows=FLOWS)
    bad = project.path / "cassettes" / "test_flows" / "test_chat_sync.yaml"
    bad.parent.mkdir(parents=True)
    content = b"interactions:\n- request: {method: POST, uri: [unclosed\n"
    bad.write_bytes(content)
    for args in ([], ["--record-agents"], ["--record-agents=all"]):
        result = project.runpytest("-k", "chat_sync", *args)
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines([f"*CassetteError: cannot read cassette {bad} at line *"])
        assert bad.read_bytes() == content


def test_failed_recording_keeps_existing_cassette(
    project: pytest.Pytester,
    model_server: LocalModelServer,
    monkeypatch: pytest.MonkeyPatch,
    go_offline: Callable[[], None],
) -> None:
    project.makepyfile(test_flows=FLOWS)
    project.runpytest("--record-agents", "-k", "chat_sync").assert_outcomes(passed=1)
    path = project.path / "cassettes" / "test_flows" / "test_chat_sync.yaml"
    before = path.read_bytes()
    go_offline()  # the network is gone while re-recording
    project.runpytest("--record-agents=all", "-k", "chat_sync").assert_outcomes(failed=1)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["test_chat_sync.yaml"]  # no temp files left


def test_latency_zero_marker(project: pytest.Pytester, model_server: LocalModelServer) -> None:
    project.makepyfile(
        test_zero="""
        import os, openai, pytest, yaml, pathlib
        @pytest.mark.agentflow(latency="zero")
        def test_zero(agentflow):
            openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k").chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
            assert agentflow.elapsed == 0.0
        """
    )
    project.runpytest("--record-agents").assert_outcomes(passed=1)
    path = project.path / "cassettes" / "test_zero" / "test_zero.yaml"
    data = yaml.safe_load(path.read_text())
    data["interactions"][0]["response"]["agentflows"]["latency_s"] = 42.0
    path.write_text(yaml.safe_dump(data))
    project.runpytest().assert_outcomes(passed=1)


def write_latencies(path: Path, latencies: dict[str, float]) -> None:
    """Set the recorded latency of each interaction by the agent that made it."""
    data = yaml.safe_load(path.read_text())
    for interaction in data["interactions"]:
        meta = interaction["response"]["agentflows"]
        meta["latency_s"] = latencies[meta["agent"]]
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_virtual_clock_sequential_and_concurrent(
    project: pytest.Pytester,
    model_server: LocalModelServer,
    monkeypatch: pytest.MonkeyPatch,
    go_offline: Callable[[], None],
) -> None:
    project.makepyfile(
        test_time=textwrap.dedent(
            """
            import asyncio, os, openai, pytest

            def ask(client, name):
                return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": name}])

            def test_sequential(agentflow):
                client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k")
                for name in ("a", "b", "c"):
                    with agentflow.agent(name):
                        ask(client, name)
                assert agentflow.elapsed == 23.0
                assert [c.started_at for c in agentflow.calls] == [0.0, 5.0, 13.0]

            async def test_concurrent(agentflow):
                client = openai.AsyncOpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k")
                done = []
                async def one(name):
                    with agentflow.agent(name):
                        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": name}])
                        done.append((name, agentflow.clock.now()))
                await asyncio.gather(one("c"), one("a"), one("b"))
                await client.close()
                assert done == [("a", 5.0), ("b", 8.0), ("c", 10.0)]
                assert agentflow.elapsed == 10.0

            async def test_wait_for_times_out_on_recorded_latency(agentflow):
                client = openai.AsyncOpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
                with agentflow.agent("c"):
                    with pytest.raises(asyncio.TimeoutError):
                        await asyncio.wait_for(client.chat.completions.create(
                            model="gpt-4o-mini", messages=[{"role": "user", "content": "c"}]), timeout=7)
                assert agentflow.clock.now() == 7.0
                await client.close()
            """
        )
    )
    project.runpytest(  # the tests fail until the latencies are edited: save anyway
        "--record-agents", "-p", "no:randomly", "-o", "agentflows_save_on_failure=true"
    ).assert_outcomes(passed=0, failed=3)
    for name in ("test_sequential", "test_concurrent", "test_wait_for_times_out_on_recorded_latency"):
        write_latencies(
            project.path / "cassettes" / "test_time" / f"{name}.yaml", {"a": 5.0, "b": 8.0, "c": 10.0}
        )
    go_offline()
    result = project.runpytest()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*, 7 model calls (7 replayed, 0 recorded)*, 40.0 s virtual"])


def test_call_cancelled_by_timeout_while_recording_replays_as_the_same_timeout(
    project: pytest.Pytester, go_offline: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(
        test_cancel="""
        import asyncio, os, openai, pytest

        async def test_cancel(agentflow):
            client = openai.AsyncOpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
            with agentflow.agent("slow"):
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": "take your time"}]), timeout=0.1)
            await client.close()
            assert agentflow.clock.now() == 0.1
            call, = agentflow.calls
            assert call.latency_s >= 0.3  # the real call took that long, and was paid for
            assert agentflow.decisions[-1].kind == "model_call" and agentflow.decisions[-1].cancelled
        """
    )
    with LocalModelServer(latency=0.3) as server:  # a real model that answers after 0.3 s
        monkeypatch.setenv("AF_OPENAI_URL", server.openai_base_url)
        project.runpytest("--record-agents").assert_outcomes(passed=1)
    go_offline()
    project.runpytest().assert_outcomes(passed=1)


def test_raw_httpx_and_httpx2_clients_sync_and_async(
    project: pytest.Pytester, model_server: LocalModelServer, go_offline: Callable[[], None]
) -> None:
    project.makepyfile(
        test_raw="""
        import asyncio, importlib.util, os, httpx, pytest

        BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "raw"}]}
        STACKS = [httpx] + ([__import__("httpx2")] if importlib.util.find_spec("httpx2") else [])

        @pytest.mark.parametrize("module", STACKS, ids=lambda m: m.__name__)
        def test_sync(agentflow, module):
            with module.Client() as client, agentflow.agent("raw-sync"):
                r = client.post(os.environ["AF_OPENAI_URL"] + "/chat/completions", json=BODY)
            assert r.json()["choices"][0]["message"]["content"].endswith("raw")
            assert [c.agent for c in agentflow.calls] == ["raw-sync"]

        @pytest.mark.parametrize("module", STACKS, ids=lambda m: m.__name__)
        async def test_async_stream(agentflow, module):
            async with module.AsyncClient() as client:
                with agentflow.agent("raw-async"):
                    async with client.stream("POST", os.environ["AF_OPENAI_URL"] + "/chat/completions",
                                             json={**BODY, "stream": True}) as r:
                        lines = [line async for line in r.aiter_lines() if line.startswith("data:")]
            assert lines[-1] == "data: [DONE]"
            call, = agentflow.calls
            assert call.streamed and call.agent == "raw-async"
        """
    )
    tests = 4 if HAS_HTTPX2 else 2  # sync and async on each installed stack
    project.runpytest("--record-agents").assert_outcomes(passed=tests)
    go_offline()
    result = project.runpytest()
    result.assert_outcomes(passed=tests)
    result.stdout.fnmatch_lines([f"*{tests} model calls ({tests} replayed, 0 recorded)*"])


def test_simulated_latency_and_stable_order_of_concurrent_recordings(
    project: pytest.Pytester, model_server: LocalModelServer, go_offline: Callable[[], None]
) -> None:
    project.makepyfile(
        test_threads="""
        import os, threading, openai

        def test_threads(agentflow):
            agentflow.simulate_latency({"alpha": 5.0, "beta": 8.0, "gamma": 10.0})
            client = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k", max_retries=0)
            start = agentflow.clock.now()

            def ask(name):
                ctx = agentflow.clock.branch_context(start)
                def run():
                    with agentflow.agent(name):
                        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": name}])
                ctx.run(run)

            threads = [threading.Thread(target=ask, args=(n,)) for n in ("gamma", "beta", "alpha")]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert agentflow.elapsed == 10.0  # branches overlap, recording or replaying
            assert [c.agent for c in agentflow.calls] == ["alpha", "beta", "gamma"]  # virtual completion order
        """
    )
    path = project.path / "cassettes" / "test_threads" / "test_threads.yaml"
    project.runpytest("--record-agents=all").assert_outcomes(passed=1)
    first = path.read_bytes()
    data = yaml.safe_load(first)
    assert [i["response"]["agentflows"] for i in data["interactions"]] == [
        {"agent": "alpha", "latency_s": 5.0},
        {"agent": "beta", "latency_s": 8.0},
        {"agent": "gamma", "latency_s": 10.0},
    ]
    for _ in range(3):  # threads finish in any order; the file is the same every time
        project.runpytest("--record-agents=all").assert_outcomes(passed=1)
        assert path.read_bytes() == first
    go_offline()
    project.runpytest().assert_outcomes(passed=1)


def test_json_cassettes(
    project: pytest.Pytester, model_server: LocalModelServer, go_offline: Callable[[], None]
) -> None:
    project.makepyfile(
        test_json="""
        import os, openai, pytest

        @pytest.mark.agentflow(cassette="triage.json")
        def test_json(agentflow):
            with agentflow.agent("router"):
                r = openai.OpenAI(base_url=os.environ["AF_OPENAI_URL"], api_key="k").chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "classify my billing issue"}])
            assert r.choices[0].message.content == "billing"
        """
    )
    project.runpytest("--record-agents").assert_outcomes(passed=1)
    import json

    path = project.path / "cassettes" / "test_json" / "triage.json"
    data = json.loads(path.read_text())  # vcrpy's JSON format, not YAML in a .json file
    assert data["interactions"][0]["response"]["agentflows"]["agent"] == "router"
    go_offline()
    project.runpytest().assert_outcomes(passed=1)


def test_ini_cassette_format_json(project: pytest.Pytester, model_server: LocalModelServer) -> None:
    project.makeini(INI + "agentflows_cassette_format = json\n")
    project.makepyfile(test_flows=FLOWS)
    project.runpytest("--record-agents", "-k", "chat_sync").assert_outcomes(passed=1)
    import json

    path = project.path / "cassettes" / "test_flows" / "test_chat_sync.json"
    assert json.loads(path.read_text())["interactions"][0]["response"]["agentflows"]["agent"] == "router"
    project.makeini(INI + "agentflows_cassette_format = toml\n")
    result = project.runpytest("-k", "chat_sync")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # at startup, before any test
    result.stderr.fnmatch_lines(["ERROR: ini agentflows_cassette_format = 'toml' is not a cassette format*"])
