"""The vcrpy request of a loaded interaction, built cheaply: its URL parsed and headers indexed when read.

vcrpy's ``Request(**request_dict)`` parses the URL and builds a case-insensitive header dict for every
interaction of a cassette as it loads; replay reads neither (the index key is the method, URL text and
body, see :mod:`._keys`). :class:`StoredRequest` is a ``vcr.request.Request`` in every respect (type,
attributes, ``_to_dict``, matchers), with those two steps done on first use.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from vcr.request import HeadersDict, Request

__all__ = ["StoredRequest"]


class StoredRequest(Request):  # type: ignore[misc]
    """``vcr.request.Request(method, uri, body, headers)`` for a request read from a cassette.

    Args:
        method: HTTP method.
        uri: Full URL.
        body: The body as read (``str`` is encoded to UTF-8 bytes, as vcrpy does), or ``None``.
        headers: ``{name: [value, ...]}`` as the cassette holds them (turned into vcrpy's ``HeadersDict``
            the first time ``headers`` is read).
    """

    def __init__(self, method: str, uri: str, body: Any, headers: Any) -> None:
        self.method = method
        self._uri = uri
        self._parsed_uri: Any = None
        self._was_file = False
        self._was_iter = False
        self._body = body.encode("utf-8") if isinstance(body, str) else body
        self._headers_in: Any = headers
        self._headers: Any = None

    @property
    def uri(self) -> str:
        return self._uri

    @uri.setter
    def uri(self, uri: str) -> None:
        self._uri = uri
        self._parsed_uri = None

    @property
    def parsed_uri(self) -> Any:  # vcrpy sets it with the URI; read by its matchers only
        if self._parsed_uri is None:
            self._parsed_uri = urlparse(self._uri)
        return self._parsed_uri

    @parsed_uri.setter
    def parsed_uri(self, value: Any) -> None:
        self._parsed_uri = value

    @property
    def headers(self) -> Any:
        if self._headers is None:
            value = self._headers_in
            self._headers = value if isinstance(value, HeadersDict) else HeadersDict(value)
            self._headers_in = None
        return self._headers

    @headers.setter
    def headers(self, value: Any) -> None:
        self._headers = value if isinstance(value, HeadersDict) else HeadersDict(value)
        self._headers_in = None

    def first_value(self, name: str) -> str | None:
        """The first value of header ``name`` (any case) or ``None``, read without indexing the headers."""
        if self._headers is not None:
            value = self._headers.get(name)
            return None if value is None else str(value)
        low = name.lower()
        for key, values in (self._headers_in or {}).items():
            if key.lower() == low:
                first = values[0] if isinstance(values, list | tuple) and values else values
                return None if first is None else str(first)
        return None
