"""Cost of one unrecorded request: the miss and its nearest-request diff, by cassette shape.

Run: ``python benchmarks/miss.py`` (about a minute). For each cassette shape (interactions × request body
size) it writes a vcrpy YAML cassette of chat completions whose request bodies hold that much varied text,
then, with ``Flow(cassette=..., record="none")`` and the openai SDK, sends a request that differs from
every recorded one in one word near the end of a message, and times the SDK call until it raises
``UnrecordedRequestError`` (index lookup, redaction, the nearest-request diff, the message). The cassette
load is outside the timed part. One more column times :func:`nearest_diff` alone.

The reference row runs the diff as it was before issue 16 (difflib's ``SequenceMatcher.ratio`` against
every recorded body, ``autojunk=False``) on the smallest shape only: it is quadratic (10 × 20 KB bodies
took 195 s).
"""

from __future__ import annotations

import difflib
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

SHAPES = ((10, 20_000), (1, 50_000), (100, 20_000), (1_000, 2_000), (10, 1_000_000))
REPS = 5
WORDS = [
    "agent",
    "plan",
    "route",
    "tool",
    "call",
    "budget",
    "deadline",
    "cassette",
    "replay",
    "token",
    "usage",
    "span",
    "verdict",
    "model",
]


def _text(rng: random.Random, size: int) -> str:
    out: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS) + str(rng.randrange(1000))
        out.append(word)
        length += len(word) + 1
    return " ".join(out)[:size]


def _body(i: int, size: int) -> dict[str, object]:
    rng = random.Random(i)
    return {"model": c.MODEL, "messages": [{"role": "user", "content": _text(rng, size)}]}


def _write(path: Path, n: int, size: int) -> Path:
    from vcr.serializers import yamlserializer

    interactions = [
        {
            "request": {
                "body": json.dumps(_body(i, size)),
                "headers": {"content-type": ["application/json"]},
                "method": "POST",
                "uri": c.URL,
            },
            "response": {
                "body": {"string": c.response_body(i).decode()},
                "headers": {"content-type": ["application/json"]},
                "status": {"code": 200, "message": "OK"},
            },
        }
        for i in range(n)
    ]
    path.write_text(yamlserializer.serialize({"interactions": interactions, "version": 1}), encoding="utf-8")
    return path


def _sent(n: int, size: int) -> dict[str, object]:
    body = _body(n // 2, size)
    message = body["messages"][0]  # type: ignore[index]
    text = message["content"]
    message["content"] = text[: len(text) - 40] + " CHANGED " + text[len(text) - 31 :]
    return body


def _time_miss(path: Path, body: dict[str, object]) -> float:
    import openai

    from pytest_agentflows import Flow, UnrecordedRequestError

    flow = Flow(cassette=str(path), record="none", test_id="benchmark")
    client = openai.OpenAI(base_url=c.BASE_URL, api_key="sk-bench", max_retries=0)
    try:
        with flow.activate():
            t0 = time.perf_counter()
            try:
                client.chat.completions.create(**body)  # type: ignore[call-overload]
            except UnrecordedRequestError as exc:
                elapsed = time.perf_counter() - t0
                assert "CHANGED" in exc.diff, exc.diff
            else:
                raise AssertionError("the request was not a miss")
    finally:
        client.close()
    return elapsed


def _keys(n: int, size: int) -> tuple[tuple[str, str, str], list[tuple[str, str, str]]]:
    from pytest_agentflows.cassette._keys import request_key

    recorded = [request_key("POST", c.URL, json.dumps(_body(i, size))) for i in range(n)]
    return request_key("POST", c.URL, json.dumps(_sent(n, size))), recorded


def _time_diff(n: int, size: int) -> float:
    from pytest_agentflows.cassette._keys import nearest_diff

    key, recorded = _keys(n, size)
    times = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        nearest_diff(key, recorded)
        times.append(time.perf_counter() - t0)
    return c.median(times)


def _time_old(n: int, size: int) -> float:
    key, recorded = _keys(n, size)
    t0 = time.perf_counter()
    max(recorded, key=lambda r: difflib.SequenceMatcher(None, r[2], key[2], autojunk=False).ratio())
    return time.perf_counter() - t0


def main() -> None:
    rows = []
    with c.workdir("miss") as tmp:
        for n, size in SHAPES:
            path = _write(tmp / f"miss-{n}-{size}.yaml", n, size)
            body = _sent(n, size)
            miss = c.median([_time_miss(path, body) for _ in range(REPS)])
            rows.append(
                [f"{n:,} × {size / 1000:,.0f} KB", c.fmt_seconds(miss), c.fmt_seconds(_time_diff(n, size))]
            )
        rows.append(
            [
                "reference, before issue 16: SequenceMatcher over 10 × 2 KB",
                "",
                c.fmt_seconds(_time_old(10, 2_000)),
            ]
        )
    print(c.table(["recorded request bodies", "one miss, SDK call to error", "nearest_diff alone"], rows))
    print()
    print(c.machine())


if __name__ == "__main__":
    main()
