"""Shared parts of the benchmark scripts: cassette generation, worker processes, timing, tables.

Cassettes are generated, never downloaded: ``n`` chat-completion interactions with distinct request bodies
(several agents, multi-turn prompts, like a multi-agent flow), realistic OpenAI response headers and
bodies, written in vcrpy's YAML format (the same file serves pytest-agentflows and vcrpy; vcrpy ignores
our ``agentflows`` metadata key) and, for cassetter, in cassetter's own YAML format with the same data.

Contenders that patch the same HTTP stack (vcrpy, ours, cassetter all patch ``httpx2``) cannot be active
in one process at once, so each contender runs in its own worker process (:class:`Worker`) and the parent
drives them in turn, one repetition at a time: all contenders see the same machine state, interleaved.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BASE_URL = "https://api.openai.com/v1"
URL = f"{BASE_URL}/chat/completions"
MODEL = "gpt-4o-mini"

AGENTS = ("planner", "researcher", "coder", "critic", "writer", "router", "summariser")
_SYSTEM = {
    "planner": "You are the planner of a team of agents. Break the task into at most five steps, name the "
    "agent responsible for each step and give a one-line rationale. Answer in plain text.",
    "researcher": "You are a research agent. Summarise what is known about the question, list your sources "
    "and flag anything uncertain. Keep the answer under 200 words.",
    "coder": "You are a senior Python engineer. Write minimal, typed, tested code for the request. Explain "
    "trade-offs briefly after the code.",
    "critic": "You are a strict reviewer. Answer APPROVED only when the draft is ready; otherwise list the "
    "problems, most important first.",
    "writer": "You are a technical writer. Rewrite the material for a developer audience: short sentences, "
    "concrete examples, no marketing language.",
    "router": "Classify the request into exactly one of: billing, technical, account, other. Reply with the "
    "label and a short reason.",
    "summariser": "Summarise the conversation so far in three bullet points for the next agent.",
}
_TOPICS = (
    "migrate the payment service from REST polling to webhooks",
    "compare vector databases for a 50M-document semantic search index",
    "explain why the nightly ETL job doubles its runtime on Mondays",
    "draft the incident report for the 14:02 UTC checkout outage",
    "design rate limiting for a multi-tenant public API",
    "review the caching layer proposal for the recommendations service",
    "summarise customer feedback about the new onboarding flow",
    "plan the rollout of feature flags across three mobile apps",
)
_WORDS = [
    "latency",
    "throughput",
    "budget",
    "tenant",
    "replica",
    "shard",
    "queue",
    "retry",
    "backoff",
    "idempotent",
    "schema",
    "migration",
    "rollback",
    "canary",
    "cohort",
    "metric",
    "alert",
    "dashboard",
    "quota",
    "token",
    "embedding",
    "index",
    "cache",
    "eviction",
]


def _filler(i: int, words: int) -> str:
    seed = int(hashlib.sha256(str(i).encode()).hexdigest()[:8], 16)
    return " ".join(
        _WORDS[(seed >> (k % 24)) % len(_WORDS) if k % 3 else (seed + k) % len(_WORDS)] for k in range(words)
    )


def agent_of(i: int) -> str:
    """The agent that makes request ``i``."""
    return AGENTS[i % len(AGENTS)]


def messages(i: int) -> list[dict[str, str]]:
    """Chat messages of request ``i`` (distinct for every ``i``)."""
    agent = agent_of(i)
    topic = _TOPICS[i % len(_TOPICS)]
    out = [
        {"role": "system", "content": _SYSTEM[agent]},
        {"role": "user", "content": f"Task #{i}: {topic}. Context: {_filler(i, 40)}."},
    ]
    if i % 3 == 0:  # a multi-turn exchange, as when an agent revises after a critique
        out += [
            {"role": "assistant", "content": f"Draft for task #{i}: {_filler(i + 1, 30)}."},
            {"role": "user", "content": f"Critique: {_filler(i + 2, 20)}. Revise the draft."},
        ]
    return out


def request_body(i: int) -> bytes:
    """The exact bytes openai 3.x sends for ``client.chat.completions.create(**create_kwargs(i))``."""
    payload = {"model": MODEL, "messages": messages(i), "temperature": 0.2}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def create_kwargs(i: int) -> dict[str, Any]:
    """Keyword arguments of the SDK call that sends request ``i``."""
    return {"model": MODEL, "messages": messages(i), "temperature": 0.2}


def answer_prefix(i: int) -> str:
    """How the recorded answer to request ``i`` starts (used to check a contender's answer is right)."""
    return f"[{agent_of(i)}] answer #{i}:"


def latency_of(i: int) -> float:
    """Recorded latency of interaction ``i``: 0.4 .. 4.0 s, deterministic."""
    return round(0.4 + (int(hashlib.sha256(f"lat{i}".encode()).hexdigest()[:6], 16) % 3600) / 1000, 3)


def response_body(i: int) -> bytes:
    """A realistic ``chat.completion`` JSON body answering request ``i``."""
    digest = hashlib.sha256(f"resp{i}".encode()).hexdigest()
    content = f"{answer_prefix(i)} {_filler(i + 7, 45)}."
    prompt_tokens = 40 + len(request_body(i)) // 5
    completion_tokens = 12 + len(content) // 5
    data = {
        "id": f"chatcmpl-{digest[:29]}",
        "object": "chat.completion",
        "created": 1735689600 + i,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": f"fp_{digest[30:40]}",
    }
    return json.dumps(data, separators=(",", ":")).encode()


def request_headers(i: int) -> dict[str, str]:
    """Request headers as openai 3.54 sends them (the API key itself is never stored)."""
    return {
        "accept": "application/json",
        "accept-encoding": "gzip, deflate",
        "connection": "keep-alive",
        "content-length": str(len(request_body(i))),
        "content-type": "application/json",
        "host": "api.openai.com",
        "user-agent": "OpenAI/Python 3.54.0",
        "x-stainless-arch": "x64",
        "x-stainless-async": "false",
        "x-stainless-lang": "python",
        "x-stainless-os": "Linux",
        "x-stainless-package-version": "3.54.0",
        "x-stainless-read-timeout": "600",
        "x-stainless-retry-count": "0",
        "x-stainless-runtime": "CPython",
        "x-stainless-runtime-version": "3.11.7",
    }


def response_headers(i: int) -> dict[str, str]:
    """Response headers as the OpenAI API sends them (secrets already scrubbed, as a recorder would)."""
    digest = hashlib.sha256(f"hdr{i}".encode()).hexdigest()
    return {
        "access-control-expose-headers": "X-Request-ID",
        "alt-svc": 'h3=":443"; ma=86400',
        "cf-cache-status": "DYNAMIC",
        "cf-ray": f"{digest[:16]}-FRA",
        "connection": "keep-alive",
        "content-length": str(len(response_body(i))),
        "content-type": "application/json",
        "date": "Wed, 01 Jan 2025 00:00:00 GMT",
        "openai-processing-ms": str(int(latency_of(i) * 1000)),
        "openai-version": "2020-10-01",
        "server": "cloudflare",
        "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
        "x-content-type-options": "nosniff",
        "x-envoy-upstream-service-time": str(int(latency_of(i) * 1000) + 7),
        "x-ratelimit-limit-requests": "30000",
        "x-ratelimit-limit-tokens": "150000000",
        "x-ratelimit-remaining-requests": "29999",
        "x-ratelimit-remaining-tokens": "149999000",
        "x-ratelimit-reset-requests": "2ms",
        "x-ratelimit-reset-tokens": "0s",
        "x-request-id": f"req_{digest[16:48]}",
    }


# -- cassette files ------------------------------------------------------------------------------------
def _yaml_dump(data: Any) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return str(yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True, width=1000))


def write_vcrpy_cassette(path: Path, n: int, latencies: Callable[[int], float] = latency_of) -> Path:
    """Write a YAML cassette of ``n`` chat completions to ``path`` (returned), as vcrpy writes one."""
    interactions = []
    for i in range(n):
        interactions.append(
            {
                "request": {
                    "body": request_body(i).decode(),
                    "headers": {k: [v] for k, v in request_headers(i).items()},
                    "method": "POST",
                    "uri": URL,
                },
                "response": {
                    "agentflows": {"agent": agent_of(i), "latency_s": latencies(i)},
                    "body": {"string": response_body(i).decode()},
                    "headers": {k: [v] for k, v in response_headers(i).items()},
                    "status": {"code": 200, "message": "OK"},
                },
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    # exactly what vcrpy (and so this plugin) writes: its serializer, PyYAML's block style at width 80
    from vcr.serializers import yamlserializer

    data = {"interactions": interactions, "version": 1}
    path.write_text(yamlserializer.serialize(data), encoding="utf-8")
    return path


def write_cassetter_cassette(path: Path, n: int) -> Path:
    """Write the same ``n`` interactions in cassetter's YAML format (JSON bodies, as cassetter records)."""
    interactions = []
    for i in range(n):
        interactions.append(
            {
                "request": {
                    "method": "POST",
                    "uri": URL,
                    "headers": {k: [v] for k, v in request_headers(i).items()},
                    "body": {"type": "json", "content": json.loads(request_body(i))},
                },
                "response": {
                    "status": 200,
                    "headers": {k: [v] for k, v in response_headers(i).items()},
                    "body": {"type": "json", "content": json.loads(response_body(i))},
                },
                "recorded_at": "2025-01-01T00:00:00.000000+00:00",
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_yaml_dump({"version": 1, "interactions": interactions}), encoding="utf-8")
    return path


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary directory, removed afterwards (``AGENTFLOWS_BENCH_KEEP=1`` keeps it)."""
    path = Path(tempfile.mkdtemp(prefix=f"agentflows-bench-{prefix}-"))
    try:
        yield path
    finally:
        if not os.environ.get("AGENTFLOWS_BENCH_KEEP"):
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        else:
            print(f"(kept {path})", file=sys.stderr)


# -- optional contenders -------------------------------------------------------------------------------
def cassetter_available() -> bool:
    """Whether ``import cassetter`` works (``pip install cassetter``)."""
    import importlib.util

    return importlib.util.find_spec("cassetter") is not None


# -- worker processes ----------------------------------------------------------------------------------
def _worker_main(conn: Any, factory_module: str, factory: str, args: tuple[Any, ...]) -> None:
    sys.path.insert(0, str(HERE))
    try:
        module = __import__(factory_module)
        contender = getattr(module, factory)(*args)
        conn.send(("ok", None))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        op, payload = conn.recv()
        if op == "stop":
            with contextlib.suppress(Exception):
                contender.close()
            conn.send(("ok", None))
            return
        try:
            conn.send(("ok", getattr(contender, op)(*payload)))
        except BaseException:
            conn.send(("error", traceback.format_exc()))


class Worker:
    """A contender living in its own process: ``factory_module.factory(*args)`` builds it there.

    ``worker.call("op", *args)`` runs ``contender.op(*args)`` in the worker and returns its result.
    """

    def __init__(self, name: str, factory_module: str, factory: str, *args: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.name = name
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_worker_main, args=(child, factory_module, factory, args), daemon=True
        )
        self._proc.start()
        child.close()  # the worker holds the other end: a dead worker then reads as EOFError here
        self.error: str | None = None
        try:
            status, detail = self._conn.recv()
        except EOFError:
            status, detail = "error", "the worker process died while starting"
        if status != "ok":
            self.error = detail
            self._proc.join(timeout=10)

    def call(self, op: str, *args: Any) -> Any:
        """Run ``op`` in the worker; raises ``RuntimeError`` with the worker's traceback on failure."""
        self._conn.send((op, args))
        try:
            status, value = self._conn.recv()
        except EOFError:
            status, value = "error", "the worker process died"
        if status != "ok":
            raise RuntimeError(f"{self.name}: {op} failed in the worker:\n{value}")
        return value

    def close(self) -> None:
        """Stop the worker process."""
        if self._proc.is_alive():
            with contextlib.suppress(Exception):
                self._conn.send(("stop", ()))
                self._conn.recv()
            self._conn.close()
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.kill()


def last_line(error: str, width: int = 200) -> str:
    """The exception line of a worker's traceback (the last ``SomeError: ...``), shortened to ``width``."""
    import re

    found = re.findall(r"(?m)^([\w.]*(?:Error|Exception)\b.*)$", error)
    text = found[-1] if found else error.strip().splitlines()[-1]
    text = re.sub(r"/tmp/[^ :]*/", "", text)  # temporary directories say nothing
    return text[:width]


def rotated(items: Sequence[Any], rep: int) -> list[Any]:
    """``items`` rotated by ``rep`` places (alternates who goes first in each repetition)."""
    k = rep % len(items) if items else 0
    return list(items[k:]) + list(items[:k])


# -- timing and tables ---------------------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    """The median (``nan`` for no values)."""
    return statistics.median(values) if values else float("nan")


def fmt_seconds(seconds: float) -> str:
    """``seconds`` in a readable unit (µs, ms or s)."""
    if seconds != seconds:  # nan
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms" if seconds < 0.01 else f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(value: float) -> str:
    """A ratio as ``1.23×`` (``-`` for nan)."""
    if value != value:
        return "-"
    return f"{value:.2f}×" if value < 10 else f"{value:.0f}×"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (also readable in a terminal), right-aligned except the first column."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[k]) for r in cells) for k in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "| " + " | ".join(parts) + " |"

    sep = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def machine() -> str:
    """One line describing the interpreter and machine (for the tables' captions)."""
    import yaml

    return (
        f"Python {platform.python_version()} on {platform.machine()} {platform.system()}, "
        f"{os.cpu_count()} CPUs, libyaml={'yes' if yaml.__with_libyaml__ else 'no'}, "
        f"load average {os.getloadavg()[0]:.1f} at the end of the run"
    )


@contextlib.contextmanager
def gc_collected() -> Iterator[None]:
    """Run a full collection before the block (so garbage from set-up does not land in a timing)."""
    gc.collect()
    yield
