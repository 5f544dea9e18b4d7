"""A request read from a cassette is a vcrpy ``Request`` with its URL parsed and headers indexed on first
use (``cassette/_request.py``): everything vcrpy and its matchers read of it must equal vcrpy's own."""

from __future__ import annotations

import pytest
from vcr import matchers
from vcr.request import HeadersDict, Request

from pytest_agentflows.cassette._request import StoredRequest

CASES = [
    {
        "method": "POST",
        "uri": "https://api.openai.com:443/v1/chat/completions?b=2&a=1",
        "body": '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"h\u00e9llo"}]}',
        "headers": {"Content-Type": ["application/json"], "content-encoding": ["gzip", "br"], "X-A": ["1"]},
    },
    {"method": "GET", "uri": "http://127.0.0.1:8000/models", "body": None, "headers": {}},
    {"method": "PUT", "uri": "https://h/x", "body": b"\x00\x01raw", "headers": {"Host": "h"}},
]


@pytest.mark.parametrize("fields", CASES, ids=["post", "get", "bytes"])
def test_reads_as_vcrpys_request(fields: dict[str, object]) -> None:
    mine, theirs = StoredRequest(**fields), Request(**fields)
    assert isinstance(mine, Request)
    for name in ("method", "uri", "body", "body_bytes", "scheme", "host", "port", "path", "query", "url"):
        assert getattr(mine, name) == getattr(theirs, name), name
    assert mine.parsed_uri == theirs.parsed_uri
    assert isinstance(mine.headers, HeadersDict) and dict(mine.headers) == dict(theirs.headers)
    assert mine._to_dict() == theirs._to_dict()
    assert str(mine) == str(theirs)
    for matcher in (
        matchers.method,
        matchers.uri,
        matchers.host,
        matchers.path,
        matchers.query,
        matchers.body,
    ):
        matcher(mine, theirs)  # raises AssertionError on a difference


def test_header_value_without_indexing_and_after_a_change() -> None:
    request = StoredRequest(**CASES[0])
    assert request.first_value("Content-Encoding") == "gzip"  # first value, any case
    assert request.first_value("x-missing") is None
    assert request._headers is None  # not indexed for that
    request.headers = {"Content-Encoding": "deflate"}  # a hook may replace them
    assert request.first_value("content-encoding") == "deflate"
    request.uri = "https://other.example/v2?q=1"
    assert request.host == "other.example" and request.query == [("q", "1")]
