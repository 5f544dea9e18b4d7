"""The replay contenders, each built inside its own worker process (see ``_common.Worker``).

Every contender answers ``request(i)``: send request ``i`` through the real openai SDK (sync client,
``max_retries=0``), return ``(seconds, correct)`` where ``seconds`` times only the SDK call and
``correct`` says whether the answer is the one recorded for request ``i``. Set-up, cassette loading and
re-activation after a cassette's recorded responses are used up happen outside the timed region.

* ``ours``: ``Flow(cassette=path, record="none")`` + ``flow.activate()`` and the SDK's default client
  (vcrpy's patched ``httpx2.HTTPTransport``; the flow's ledger, pricing and decision log included).
* ``vcrpy_body`` / ``vcrpy_default``: ``vcr.VCR(record_mode="none", match_on=...)`` on the same file and
  the SDK's default client.
* ``cassetter_body``: ``cassetter.use_cassette(path, record_mode="none", match_on=[method, uri, body])``
  on the same interactions in cassetter's own format, and the SDK's default client.
* ``floor``: ``httpx2.MockTransport`` answering from a dict keyed by the request body bytes.
* ``respx_routes`` / ``respx_dict``: a ``respx.Router`` (one route per interaction matching the body, or
  one route whose side effect looks the body up in a dict) behind an ``httpx2.MockTransport`` that bridges
  each httpx2 request into the router and its httpx response back (respx 0.23 does not patch httpx2).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

import _common as c


def _client(http_client: Any = None) -> Any:
    import openai

    kwargs: dict[str, Any] = {"base_url": c.BASE_URL, "api_key": "sk-bench", "max_retries": 0}
    if http_client is not None:
        kwargs["http_client"] = http_client
    return openai.OpenAI(**kwargs)


class _Contender:
    """Shared ``request`` timing; subclasses set ``client`` and implement ``activate``/``deactivate``."""

    n: int
    client: Any
    consumes = True  # each recorded response can be played once (cassettes), or forever (mocks)

    def __init__(self, n: int) -> None:
        self.n = n
        self.used: set[int] = set()
        self.activate()

    def activate(self) -> None:
        """(Re)load and activate the cassette."""

    def deactivate(self) -> None:
        """Deactivate the cassette."""

    def request(self, i: int) -> tuple[float, bool]:
        if self.consumes and (i in self.used or len(self.used) >= self.n):
            self.deactivate()
            self.used.clear()
            self.activate()
        self.used.add(i)
        kwargs = c.create_kwargs(i)
        create = self.client.chat.completions.create
        t0 = time.perf_counter()
        response = create(**kwargs)
        elapsed = time.perf_counter() - t0
        return elapsed, str(response.choices[0].message.content).startswith(c.answer_prefix(i))

    def close(self) -> None:
        self.deactivate()

    def setup(self) -> float | None:
        """Seconds the contender's own set-up took (respx route registration), if measured."""
        return getattr(self, "setup_seconds", None)


class Ours(_Contender):
    def __init__(self, path: str, n: int) -> None:
        self.path = path
        super().__init__(n)
        self.client = _client()

    def activate(self) -> None:
        from pytest_agentflows import Flow

        self.stack = ExitStack()
        self.flow = Flow(cassette=self.path, record="none", test_id="benchmark")
        self.stack.enter_context(self.flow.activate())

    def deactivate(self) -> None:
        self.stack.close()


class Vcrpy(_Contender):
    def __init__(self, path: str, n: int, match_on: list[str] | None) -> None:
        import vcr

        self.path = path
        self.vcr = vcr.VCR(record_mode="none", **({"match_on": match_on} if match_on else {}))
        super().__init__(n)
        self.client = _client()

    def activate(self) -> None:
        self.stack = ExitStack()
        self.stack.enter_context(self.vcr.use_cassette(self.path))

    def deactivate(self) -> None:
        self.stack.close()


class Cassetter(_Contender):
    def __init__(self, path: str, n: int) -> None:
        self.path = path
        super().__init__(n)
        self.client = _client()

    def activate(self) -> None:
        import cassetter

        self.stack = ExitStack()
        self.stack.enter_context(
            cassetter.use_cassette(self.path, record_mode="none", match_on=["method", "uri", "body"])
        )

    def deactivate(self) -> None:
        self.stack.close()


class Floor(_Contender):
    consumes = False

    def __init__(self, n: int) -> None:
        import httpx2

        answers = {
            c.request_body(i): (c.response_body(i), list(c.response_headers(i).items())) for i in range(n)
        }

        def handler(request: Any) -> Any:
            body, headers = answers[request.content]
            return httpx2.Response(200, headers=headers, content=body)

        super().__init__(n)
        self.client = _client(httpx2.Client(transport=httpx2.MockTransport(handler)))


def _respx_bridge(router: Any) -> Any:
    """An ``httpx2.MockTransport`` that answers every request with ``router`` (an httpx respx router)."""
    import httpx
    import httpx2

    def handler(request: Any) -> Any:
        bridged = httpx.Request(
            request.method, str(request.url), headers=request.headers.raw, content=request.content
        )
        response = router.handler(bridged)
        return httpx2.Response(response.status_code, headers=response.headers.raw, content=response.content)

    return httpx2.MockTransport(handler)


class RespxRoutes(_Contender):
    consumes = False

    def __init__(self, n: int) -> None:
        import httpx2
        import respx

        router = respx.Router(assert_all_called=False)
        t0 = time.perf_counter()
        for i in range(n):
            router.post(c.URL, content=c.request_body(i)).respond(
                200, headers=list(c.response_headers(i).items()), content=c.response_body(i)
            )
        self.setup_seconds = time.perf_counter() - t0
        super().__init__(n)
        self.client = _client(httpx2.Client(transport=_respx_bridge(router)))


class RespxDict(_Contender):
    consumes = False

    def __init__(self, n: int) -> None:
        import httpx
        import httpx2
        import respx

        answers = {
            c.request_body(i): (c.response_body(i), list(c.response_headers(i).items())) for i in range(n)
        }

        def side_effect(request: Any) -> Any:
            body, headers = answers[request.content]
            return httpx.Response(200, headers=headers, content=body)

        router = respx.Router(assert_all_called=False)
        router.post(c.URL).mock(side_effect=side_effect)
        super().__init__(n)
        self.client = _client(httpx2.Client(transport=_respx_bridge(router)))


# factories (called by name in the worker process)
def ours(path: str, cassetter_path: str, n: int) -> Ours:
    return Ours(path, n)


def vcrpy_body(path: str, cassetter_path: str, n: int) -> Vcrpy:
    return Vcrpy(path, n, ["method", "uri", "body"])


def vcrpy_default(path: str, cassetter_path: str, n: int) -> Vcrpy:
    return Vcrpy(path, n, None)


def cassetter_body(path: str, cassetter_path: str, n: int) -> Cassetter:
    return Cassetter(cassetter_path, n)


def respx_routes(path: str, cassetter_path: str, n: int) -> RespxRoutes:
    return RespxRoutes(n)


def respx_dict(path: str, cassetter_path: str, n: int) -> RespxDict:
    return RespxDict(n)


def floor(path: str, cassetter_path: str, n: int) -> Floor:
    return Floor(n)


# -- cassette load (benchmarks/load.py) ----------------------------------------------------------------
class Loader:
    """Times loading a cassette: activation and deactivation with no request (the cassette is indexed)."""

    def __init__(self, kind: str, fmt: str) -> None:
        self.kind = kind
        self.fmt = fmt
        self.load(None)  # imports (and, for cassetter, the extension module) outside any measurement

    def _activate(self, path: str) -> Any:
        if self.kind == "ours":
            from pytest_agentflows import Flow

            return Flow(cassette=path, record="none", test_id="benchmark").activate()
        if self.kind == "vcrpy":
            import vcr

            return vcr.VCR(record_mode="none", match_on=["method", "uri", "body"]).use_cassette(path)
        if self.kind == "cassetter":
            import cassetter

            return cassetter.use_cassette(path, record_mode="none", match_on=["method", "uri", "body"])
        raise ValueError(self.kind)

    def _parse(self, path: str) -> Any:
        if self.kind == "yaml":
            from vcr.serializers import yamlserializer

            return yamlserializer.deserialize(open(path, encoding="utf-8").read())
        import json

        return json.loads(open(path, encoding="utf-8").read())

    def load(self, path: str | None) -> float:
        """Seconds to load ``path`` (``None``: warm-up on a tiny generated cassette)."""
        import gc
        import tempfile
        from pathlib import Path

        if path is None:
            import json
            import shutil

            tmp = Path(tempfile.mkdtemp())
            if self.fmt == "cassetter":
                warm = c.write_cassetter_cassette(tmp / "w.yaml", 3)
            else:
                warm = c.write_vcrpy_cassette(tmp / "w.yaml", 3)
                if self.fmt == "json":
                    from vcr.serializers import yamlserializer

                    data = yamlserializer.deserialize(warm.read_text(encoding="utf-8"))
                    warm = tmp / "w.json"
                    warm.write_text(json.dumps(data), encoding="utf-8")
            try:
                return self.load(str(warm))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        gc.collect()
        t0 = time.perf_counter()
        if self.kind in ("yaml", "json"):
            self._parse(path)
        else:
            with self._activate(path):
                pass
        return time.perf_counter() - t0

    def _load_only(self, path: str) -> None:
        if self.kind in ("yaml", "json"):
            self._parse(path)
        else:
            with self._activate(path):
                pass

    def memory(self, path: str) -> tuple[int, int]:
        """``(peak traced Python bytes, peak RSS growth in bytes)`` of loading ``path``.

        RSS: the kernel's peak-RSS mark is reset (``/proc/self/clear_refs``), the cassette loaded, and the
        new peak compared with the RSS before; this counts native heaps too. Python allocations: a second
        load under ``tracemalloc``.
        """
        import gc
        import tracemalloc

        gc.collect()
        before = _status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM, the peak RSS
        self._load_only(path)
        rss_growth = (_status_kib("VmHWM") - before) * 1024
        gc.collect()
        tracemalloc.start()
        try:
            self._load_only(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return peak, rss_growth

    def close(self) -> None:
        pass


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def loader(kind: str, fmt: str) -> Loader:
    return Loader(kind, fmt)
