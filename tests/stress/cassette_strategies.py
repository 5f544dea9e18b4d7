"""Hypothesis strategies for broken cassette files: structured-but-wrong documents and damaged real files.

Every strategy draws ``(file name, file bytes)``. The sources:

- ``wrong_documents``: a real cassette (one of ours, one of each third-party layout) parsed, then damaged at
  one to three random places: a value replaced by a value of another type (``None``, numbers, strings, lists,
  mappings, bytes, huge strings, deep nesting, surrogates), a key deleted, an unknown ``version``,
  ``interactions`` not a list, bodies as ``!!binary``, base64 text, gzip bytes (valid or not) with or without
  a ``Content-Encoding`` header; written as YAML or JSON, sometimes gzip-compressed;
- ``damaged_files``: the bytes of a real cassette (``fixtures/thirdparty``, ``fixtures/cassettes/patterns``)
  truncated at a random offset, with random bytes flipped, non-UTF-8 bytes inserted, or gzip-compressed and
  then truncated;
- ``any_bytes``: arbitrary bytes.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2] / "fixtures"


@cache
def real_files() -> tuple[Path, ...]:
    """Every cassette under fixtures/ (YAML, gzip), sorted."""
    return tuple(sorted(p for p in ROOT.rglob("*") if p.suffix in (".yaml", ".gz")))


@cache
def seed_documents() -> tuple[tuple[str, Any], ...]:
    """A few parsed real cassettes of different layouts: ``(name, data)``."""
    wanted = (
        "cassettes/patterns/router_sync.yaml",
        "cassettes/patterns/broadcast_failures_sync.yaml",
        "thirdparty/pydantic__pydantic-ai/tests/models/cassettes/test_openai_responses/"
        "test_openai_responses_model_http_error.yaml",
        "thirdparty/simonw__llm/tests/cassettes/test_openai_responses/test_responses_basic_non_streaming.yaml",
        "thirdparty/langchain-ai__langchain-aws/libs/aws/tests/cassettes/test_agent_loop[v1].yaml.gz",
        "thirdparty/crewAIInc__crewAI/lib/crewai/tests/cassettes/test_usage_info_non_streaming_with_call.yaml",
    )
    out = []
    for rel in wanted:
        raw = (ROOT / rel).read_bytes()
        if rel.endswith(".gz"):
            raw = gzip.decompress(raw)
        out.append((Path(rel).name, yaml.load(raw, Loader=yaml.CSafeLoader)))
    return tuple(out)


def _deep(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.sampled_from(["", "POST", "http://", "200", "gzip", "br", "deflate", "application/json", "-1"]),
    st.sampled_from(["\ud800", "\udcff bad surrogate", "\x00\x01\x7f"]),  # not encodable as UTF-8
)

_gzip_bodies = st.one_of(
    st.binary(max_size=200).map(gzip.compress),
    st.binary(max_size=200).map(lambda b: gzip.compress(b)[: max(2, len(b) // 2)]),  # truncated gzip
    st.binary(max_size=40).map(lambda b: b"\x1f\x8b" + b),  # gzip magic, garbage after
)

wrong_values: st.SearchStrategy[Any] = st.one_of(
    _scalars,
    _gzip_bodies,
    _gzip_bodies.map(lambda b: base64.b64encode(b).decode()),  # base64 text bodies
    st.sampled_from([10, 100, 1000, 5000]).map(_deep),  # deep nesting
    st.sampled_from([10**5, 10**6]).map(lambda n: "x" * n),  # huge strings
    st.recursive(
        _scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=8,
    ),
)

_bodies = st.one_of(
    _gzip_bodies,
    _gzip_bodies.map(lambda b: base64.b64encode(b).decode()),
    st.binary(max_size=100),  # written as !!binary in YAML
    st.sampled_from(["{", "data: {\n\n", '{"usage": "many"}', '{"choices": 3}', '{"content": [1]}']),
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``data`` (mappings and lists), depth first."""
    out = [prefix]
    if len(prefix) > 8:  # not inside the deep values a mutation put there
        return out
    if isinstance(data, dict):
        for key, value in data.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out.extend(_paths(value, (*prefix, i)))
    return out


def _set(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict | list):  # else the place is gone (an earlier mutation replaced it)
        parent[path[-1]] = value
    return data


def _delete(data: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return None
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return data


@st.composite
def _mutated(draw: st.DrawFn) -> tuple[str, Any]:
    name, seed = draw(st.sampled_from(seed_documents()))
    data = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["replace", "replace", "delete", "version", "interactions", "body", "encoding"])
        )
        paths = _paths(data)
        if kind == "version" and isinstance(data, dict):
            data["version"] = draw(st.one_of(st.integers(-3, 9), st.text(max_size=4), st.none(), st.floats()))
        elif kind == "interactions" and isinstance(data, dict):
            data["interactions"] = draw(wrong_values)
        elif kind in ("body", "encoding"):
            bodies = [p for p in paths if p and p[-1] in ("body", "string", "content")]
            if bodies:
                path = draw(st.sampled_from(bodies))
                data = _set(data, path, draw(_bodies))
                if kind == "encoding":
                    headers = [p for p in paths if p and p[-1] == "headers"]
                    if headers:
                        coding = draw(st.sampled_from(["gzip", "deflate", "br", "zstd", ["gzip", "gzip"], 7]))
                        data = _set(data, (*draw(st.sampled_from(headers)), "Content-Encoding"), coding)
        elif kind == "delete":
            path = draw(st.sampled_from(paths))
            data = _delete(data, path)
        else:
            path = draw(st.sampled_from(paths))
            data = _set(data, path, draw(wrong_values))
        if not isinstance(data, dict | list):
            break
    return name, data


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    raise TypeError(type(value).__name__)


def _encode(name: str, data: Any, fmt: str, gz: bool) -> tuple[str, bytes]:
    stem = name.split(".")[0] or "cassette"
    if fmt == "json":
        try:
            raw = json.dumps(data, default=_json_default).encode("utf-8", "surrogatepass")
        except (ValueError, TypeError, RecursionError):
            raw = b'{"interactions": ['
    else:
        try:
            raw = yaml.dump(data, Dumper=yaml.CSafeDumper, allow_unicode=True).encode(
                "utf-8", "surrogatepass"
            )
        except (yaml.YAMLError, RecursionError, UnicodeEncodeError):
            raw = b"interactions:\n- request: ["
    if gz:
        return f"{stem}.{fmt}.gz", gzip.compress(raw, mtime=0)
    return f"{stem}.{fmt}", raw


@st.composite
def wrong_documents(draw: st.DrawFn) -> tuple[str, bytes]:
    """A real cassette damaged at a few places, written as YAML or JSON, maybe gzip-compressed."""
    name, data = draw(_mutated())
    return _encode(name, data, draw(st.sampled_from(["yaml", "yaml", "json"])), draw(st.booleans()))


@st.composite
def damaged_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """A real cassette file's bytes truncated, bit-flipped, with non-UTF-8 bytes, or gzip then truncated."""
    path = draw(st.sampled_from(real_files()))
    raw = path.read_bytes()
    name = path.name
    if name.endswith(".gz") and draw(st.booleans()):
        raw, name = gzip.decompress(raw), name.removesuffix(".gz")
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "gzip-truncate"]))
    if kind == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif kind == "flip":
        buf = bytearray(raw)
        for _ in range(draw(st.integers(1, 8))):
            if buf:
                buf[draw(st.integers(0, len(buf) - 1))] ^= draw(st.integers(1, 255))
        raw = bytes(buf)
    elif kind == "insert":
        at = draw(st.integers(0, len(raw)))
        raw = (
            raw[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\x00", b"\xed\xa0\x80", b"\t\t"]))
            + raw[at:]
        )
    else:
        packed = gzip.compress(raw, mtime=0)
        raw, name = packed[: draw(st.integers(0, len(packed)))], name.removesuffix(".gz") + ".gz"
    if draw(st.integers(0, 9)) == 0:  # sometimes claim the other format
        name = name.replace(".yaml", ".json") if ".yaml" in name else name.replace(".json", ".yaml")
    return name, raw


any_bytes = st.tuples(
    st.sampled_from(["c.yaml", "c.json", "c.yaml.gz", "c.yml", "c.json.gz"]), st.binary(max_size=300)
)

cassette_files: st.SearchStrategy[tuple[str, bytes]] = st.one_of(
    wrong_documents(), damaged_files(), any_bytes
)
"""Every kind of broken cassette file."""
