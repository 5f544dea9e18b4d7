"""The one module that drives vcrpy: a cassette with indexed replay, latency and agent metadata.

vcrpy patches every HTTP stack (httpx, httpx2, requests/urllib3, aiohttp) and owns the cassette format
and the recording itself. :class:`FlowCassette` replaces its matching: replays are served from an index
built once per cassette, ``request key → queue of recorded responses`` (see :mod:`._keys`), so identical
requests get their responses in recorded order and a lookup costs the same for 10 or 10,000 interactions.
A miss in replay-only mode raises :class:`~pytest_agentflows.UnrecordedRequestError` with a diff against
the nearest recorded request.

Each recorded response dict carries ``agentflows: {agent, latency_s}``; plain vcrpy ignores the extra key,
so the file stays a normal vcrpy cassette.

On the httpx and httpx2 transports (what the OpenAI and Anthropic SDKs send through) :class:`Recorder`
wraps vcrpy's patch: a request the index answers is served straight from it
(:meth:`FlowCassette.replay_direct`, the response built as vcrpy's stub builds it); everything else (a miss,
a recording) goes on to vcrpy. Other stacks (requests, urllib3, aiohttp) replay through vcrpy's stubs, which
ask the same index.

Time: sync stacks charge the flow clock synchronously. For the async httpx/httpx2 transports
the wrapper over vcrpy's patch charges latency with
``await clock.sleep(latency)`` on the (virtual) event loop, so concurrent calls overlap and timeouts in user
code fire on recorded latency; while recording, the real request runs blocking on a private sync transport
so no virtual time passes during real network I/O and timestamps equal those of a later replay.
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from vcr.cassette import Cassette as _VcrCassette
from vcr.cassette import CassetteContextDecorator as _VcrContext

from ..errors import CassetteError, UnrecordedRequestError
from ..providers import find_adapter
from ..providers._body import BodyError
from ..runtime._context import current_agent, current_flow
from ..runtime._sdk_waits import patch_loaded_sdks, sdk_safe
from . import _session
from ._keys import RequestKey, nearest_diff, normalisation_note, parse_path, request_key
from ._modes import RecordMode
from ._patches import shared_patches
from ._redact import Redactor
from ._request import StoredRequest
from ._store import GuardedPersister

META_KEY = "agentflows"


class ExchangeListener(Protocol):
    """Receives every model exchange a cassette serves or records (the :class:`~pytest_agentflows.Flow`)."""

    def on_exchange(self, exchange: Exchange) -> None:
        """Account one completed (or cancelled) exchange; ``exchange.charge_clock`` says who moves time."""

    def effective_latency(self, latency_s: float) -> float:
        """Virtual seconds to charge for a call of ``latency_s`` recorded seconds."""

    def recording_latency(self, agent: str | None, measured_s: float) -> float:
        """Latency to store (and charge) for a call recorded now, given the measured seconds."""

    def check_request(self) -> None:
        """Raise (``BudgetExceeded``) before a model request is sent when a budget cap is already spent."""


@dataclass
class Exchange:
    """One HTTP exchange seen by a flow cassette."""

    request: dict[str, Any] | None = None
    """The (redacted) request as a vcrpy dict: ``method``, ``uri``, ``body``, ``headers``."""
    response: dict[str, Any] | None = None
    """The vcrpy response dict (``status``, ``headers``, ``body``)."""
    replayed: bool = True
    """Served from the cassette (``True``) or recorded from the network now (``False``)."""
    latency_s: float = 0.0
    """Recorded (replay) or measured (recording) latency, seconds."""
    agent: str | None = None
    """Agent the call is attributed to."""
    charge_clock: bool = True
    """Whether the listener must advance the clock (sync stacks) or the caller already slept (async)."""
    started_at: float = 0.0
    """Virtual time at which the request was sent."""
    cancelled: bool = False
    """A timeout cancelled the call before its latency elapsed."""


_exchange: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar(
    "agentflows_exchange", default=None
)


class _FlowContext(_VcrContext):  # type: ignore[misc]
    """vcrpy's context manager for a cassette, its patchers built once per process (see :mod:`._patches`)."""

    def _patch_generator(self, cassette: Any) -> Any:
        return shared_patches(cassette, super()._patch_generator)


class FlowCassette(_VcrCassette):  # type: ignore[misc]
    """A vcrpy ``Cassette`` with indexed, ordered replay, strict misses and per-call metadata.

    Built by :class:`Recorder`; the extra keyword arguments are ours, the rest go to vcrpy.
    """

    @classmethod
    def use(cls, **kwargs: Any) -> Any:
        """vcrpy's ``Cassette.use``, with the patchers built once per process (see :mod:`._patches`)."""
        return _FlowContext.from_args(cls, **kwargs)

    def __init__(
        self,
        path: str,
        *,
        agentflows_mode: RecordMode = RecordMode.NONE,
        agentflows_test: str = "",
        agentflows_listener: ExchangeListener | None = None,
        agentflows_redactor: Redactor | None = None,
        agentflows_clock_now: Callable[[], float] = lambda: 0.0,
        agentflows_match_ignore: tuple[tuple[str, ...], ...] = (),
        agentflows_prune: bool = False,
        **kwargs: Any,
    ) -> None:
        self.mode = agentflows_mode
        self.ignore_paths = agentflows_match_ignore
        """Parsed ``match_ignore`` JSON paths left out of request bodies for matching."""
        self.prune = agentflows_prune and agentflows_mode is RecordMode.NEW
        """Drop, when saving, the loaded interactions this use never replayed (``new`` mode, own file)."""
        self.pruned = 0
        """Interactions dropped by the last save because this use never replayed them."""
        self.test_id = agentflows_test
        self.listener = agentflows_listener
        self.redactor = agentflows_redactor or Redactor()
        self._clock_now = agentflows_clock_now
        self._queues: dict[RequestKey, deque[int]] | None = {}
        """Index key -> positions of the loaded interactions not replayed yet; ``None`` until needed (see
        :meth:`_take_in_order`)."""
        self._raw: dict[tuple[str, str, bytes | None], deque[int]] = {}
        """(method, URL, body) of the stored requests -> their positions, while ``_queues`` is ``None``."""
        self._taken: list[bool] = []
        self._lowest = 0
        self._index_lock = threading.Lock()
        self._scrub_memo: dict[tuple[str, str, Any], tuple[str, str, Any]] = {}
        self._key_memo: dict[tuple[str, str, Any], RequestKey] = {}
        self._stored_keys: dict[tuple[str, str, bytes | None], RequestKey] = {}
        """(method, URL, body) of each stored request -> its index key (a key is a function of these)."""
        self._starts: dict[int, tuple[float, float]] = {}
        self.replayed_count = 0
        self.recorded_count = 0
        self.misses: list[UnrecordedRequestError] = []
        self._loading = False
        self._load_index = 0
        self._recorded_order: dict[int, tuple[float, str]] = {}
        self.discard_reason: str | None = None
        """Set when the recording must not be saved (its test failed): ``_save`` then writes nothing."""
        self.discarded = 0
        """Interactions recorded now that were not saved because of ``discard_reason``."""
        self.save_error: BaseException | None = None
        """What saving raised (re-raised by :class:`Recorder` once vcrpy's patches are undone)."""
        self.keep_loaded = False
        """Record mode ``all`` on a cassette an earlier test of this run rewrote: keep its interactions."""
        super().__init__(path, **kwargs)

    # -- saving ------------------------------------------------------------------------------------------
    def _save(self, force: bool = False) -> None:
        """vcrpy's save, unless the recording is discarded; errors are kept for :class:`Recorder`.

        vcrpy saves before it undoes its patches; an exception escaping here would leave them installed.
        """
        if self.discard_reason is not None:
            if force or self.dirty:
                self.discarded = self.recorded_count
            return
        unused = self.unused_indexes() if self.prune else []
        if not (force or self.dirty or unused):
            return
        kept = list(self.data) if unused else None
        if kept is not None:
            dropped = set(unused)
            self.data[:] = [pair for i, pair in enumerate(kept) if i not in dropped]
            force = True
        persister = self._persister
        if isinstance(persister, GuardedPersister):
            persister.recorded = self.recorded_count
        try:
            super()._save(force=force)
        except BaseException as exc:  # CassetteConflictError, OSError, KeyboardInterrupt during the write
            self.save_error = exc
        else:
            self.pruned = len(unused)
        finally:
            if kept is not None:
                self.data[:] = kept  # positions stay those of the file as loaded (see usage())

    # -- usage -------------------------------------------------------------------------------------------
    def unused_indexes(self) -> list[int]:
        """Positions (in the file as loaded) of the interactions this use of the cassette never replayed."""
        counts = self.play_counts
        return [i for i in range(self._loaded_count) if not counts[i]]

    def usage(self) -> CassetteUsage:
        """What this use of the cassette replayed, recorded and pruned (read after the block ended)."""
        rewritten = self.mode is RecordMode.ALL  # the file now holds only this run's interactions
        unused = [] if self.pruned or rewritten else self.unused_indexes()
        return CassetteUsage(
            path=str(self._path),
            loaded=0 if rewritten else self._loaded_count,
            unused={i: _describe(self.data[i][0]) for i in unused},
            recorded=self.recorded_count if not self.discarded else 0,
            pruned=self.pruned,
        )

    # -- index -------------------------------------------------------------------------------------------
    def _load(self) -> None:
        self._loading = True
        self._load_index = 0
        try:
            super()._load()
        except (CassetteError, UnrecordedRequestError):
            raise
        except Exception as exc:  # the persister checked every field: a safety net naming the place
            raise CassetteError(
                self._path,
                f"interactions[{self._load_index}]",
                f"cannot load it ({type(exc).__name__}: {exc})",
            ) from None
        finally:
            self._loading = False
        self._queues = None
        self._raw = {}
        self._taken = [False] * self._loaded_count
        self._lowest = 0
        odd = False
        for index, (request, _response) in enumerate(self.data[: self._loaded_count]):
            body = request.body_bytes
            if body is None or isinstance(body, bytes):
                self._raw.setdefault((request.method, request.uri, body), deque()).append(index)
            else:  # (a hook may leave other types): matched by key only
                odd = True
        if odd:
            self._index()

    def _index(self) -> dict[RequestKey, deque[int]]:
        """The index of the interactions not replayed yet, by key (built on first need, then kept).

        Raises:
            CassetteError: a stored request's key cannot be computed (a safety net: loading checked
                every field); the message names the interaction.
        """
        queues = self._queues
        if queues is not None:
            return queues
        with self._index_lock:
            if self._queues is not None:
                return self._queues
            queues, stored = {}, {}
            for index, (request, _response) in enumerate(self.data[: self._loaded_count]):
                try:
                    key = self._key(request, redacted=True)
                except Exception as exc:
                    raise sdk_safe(
                        CassetteError(
                            self._path,
                            f"interactions[{index}]",
                            f"cannot load it ({type(exc).__name__}: {exc})",
                        )
                    ) from None
                body = request.body_bytes
                if body is None or isinstance(body, bytes):
                    stored[(request.method, request.uri, body)] = key
                if not self._taken[index]:
                    queues.setdefault(key, deque()).append(index)
            self._stored_keys = stored
            self._queues = queues
            return queues

    def _take_in_order(self, request: Any) -> int | None:
        """The position of the next interaction in file order when ``request`` is that one's very request.

        Replaying a flow as it was recorded, each request is byte for byte the stored request of the
        first interaction not replayed yet (after scrubbing), which is then the one matching would give:
        no index key is computed, for it or for the loaded interactions. ``None`` once the index is built
        (any other request builds it).
        """
        if self._queues is not None:
            return None
        scrubbed = self._scrubbed(request)
        with self._index_lock:
            if self._queues is not None:
                return None
            taken, lowest = self._taken, self._lowest
            while lowest < len(taken) and taken[lowest]:
                lowest += 1
            self._lowest = lowest
            same = self._raw.get(scrubbed)
            if not same or same[0] != lowest:
                return None
            index = same.popleft()
            taken[index] = True
            return index

    def _key(self, request: Any, *, redacted: bool = False) -> RequestKey:
        """The index key of ``request``; a live request (``redacted=False``) is scrubbed first.

        Only the URL and the body take part in a key, so only they are scrubbed (the same functions the
        ``before_record_request`` hook applies; see :meth:`_scrubbed`).
        """
        if redacted:
            return request_key(
                request.method,
                request.uri,
                _body_bytes(request),
                secret_query=self.redactor.query_keys,
                ignore_paths=self.ignore_paths,
            )
        scrubbed = self._scrubbed(request)
        key = self._key_memo.get(scrubbed)
        if key is None:
            # the key of a stored request with these very bytes (the usual replay), else computed
            key = self._stored_keys.get(scrubbed) or request_key(
                *scrubbed, secret_query=self.redactor.query_keys, ignore_paths=self.ignore_paths
            )
            if len(self._key_memo) >= 256:
                self._key_memo.clear()
            self._key_memo[scrubbed] = key
        return key

    def _scrubbed(self, request: Any) -> tuple[str, str, Any]:
        """``(method, URL, body)`` of a live request as it would be stored: secrets masked.

        Memoised by content: vcrpy asks ``can_play_response_for`` and then ``play_response`` for the same
        request (the async wrapper once more). For each request not in the memo the redactor first learns
        the secret values of its headers and URL and re-reads the environment; the memo is cleared when
        that found something new, the only times the redactor's output changes.
        """
        redactor = self.redactor
        body = _body_bytes(request)
        memo_key = (request.method, request.uri, body)
        scrubbed = self._scrub_memo.get(memo_key)
        if scrubbed is None:
            # A secret header's (or URL's) value is masked in the body below too; a test may have set a
            # secret environment variable itself. New secrets change the redactor's output: reset the memo.
            learned = redactor.learn(request)
            if redactor.refresh_env() or learned:
                self._scrub_memo.clear()
            scrubbed = (request.method, redactor.scrub_url(request.uri), redactor.scrub_body(body))
            if len(self._scrub_memo) >= 256:
                self._scrub_memo.clear()
            self._scrub_memo[memo_key] = scrubbed
        return scrubbed

    def __contains__(self, request: Any) -> bool:
        return bool(self._index().get(self._key(request)))

    def _foreign(self) -> Any:
        """The other flow the running code belongs to (a thread that outlived its test), else ``None``."""
        owner = current_flow.get()
        if owner is None or self.listener is None or owner is self.listener:
            return None
        return owner

    def can_play_response_for(self, request: Any) -> bool:
        __tracebackhide__ = True  # pytest prints no frame of ours holding the raw request (its URL)
        if self._foreign() is not None:  # never served from, recorded into or blamed on this test
            raise self._miss(request)
        if self.mode is not RecordMode.ALL and self._index().get(self._key(request)):
            return True
        if self.mode is RecordMode.NONE:
            raise self._miss(request)
        self._starts[id(request)] = (time.perf_counter(), self._clock_now())
        return False

    def _miss(self, request: Any) -> UnrecordedRequestError:
        __tracebackhide__ = True
        patch_loaded_sdks()  # an SDK imported after activation must not retry or wrap this miss either
        if self.redactor.learn(request):  # the diff below prints the body: mask this request's secrets
            self._scrub_memo.clear()
        key = self._key(request)
        recorded = list(self._index())  # the keys of the interactions not replayed yet
        foreign = self._foreign()
        if foreign is not None:
            reason = (
                "made by a thread that outlived its test (or belongs to another flow); not served from "
                f"cassette {self._path} of {self.test_id}, and not counted against that test"
            )
        elif not os.path.exists(self._path):
            reason = "the cassette file does not exist"
        elif not recorded:
            reason = "the cassette has no interactions"
        else:
            reason = "no recorded interaction matches this method, URL and body (or all were used)"
        redacted = self.redactor.request(request)
        diff = nearest_diff(key, recorded)
        note = normalisation_note(redacted.body, self.ignore_paths) if diff else ""
        if note:  # the diff shows both bodies as matching saw them
            diff = f"(compared after normalising: {note})\n{diff}"
        error = sdk_safe(  # the SDKs pass it on as it is (openai 2.x would wrap it without retries left)
            UnrecordedRequestError(
                test=str(getattr(foreign, "test_id", "(another flow)"))
                if foreign is not None
                else self.test_id,
                cassette=str(self._path),
                agent=current_agent.get(),
                method=request.method,
                url=redacted.uri,
                diff=diff,
                reason=reason,
            )
        )
        if foreign is None:
            self.misses.append(error)
        return error

    def play_response(self, request: Any) -> dict[str, Any]:
        __tracebackhide__ = True
        queue = self._index().get(self._key(request))
        if not queue:
            raise self._miss(request)
        return self._play(queue.popleft())

    def replay_direct(self, module: Any, method: str, url: str, body: bytes, headers: Any) -> Any | None:
        """The recorded answer to a live httpx/httpx2 request as a ``module.Response``, or ``None``.

        The replay path of the httpx and httpx2 transports (see :meth:`Recorder._wrap_transports`): one
        index lookup, then the response built as vcrpy's httpx stub builds it, without vcrpy's request
        conversion and second lookup (a stored response in vcrpy's old httpx layout is built by vcrpy's
        own function). ``None`` (nothing consumed) hands the request to vcrpy: a miss, a recording, or
        ``--record-agents=all``.

        Args:
            module: The ``httpx`` or ``httpx2`` module the request belongs to.
            method: HTTP method.
            url: Full request URL.
            body: The request body, read.
            headers: The request's headers (``module.Headers``).
        """
        if self.mode is RecordMode.ALL or self._foreign() is not None:
            return None
        live = _LiveRequest(method, url, body, headers)
        index = self._take_in_order(live)
        if index is None:
            queue = self._index().get(self._key(live))
            try:
                index = queue.popleft() if queue else None  # popleft: atomic when threads replay at once
            except IndexError:  # another thread took the last one
                index = None
        if index is None:
            return None
        response = self._play(index)
        wire = _wire_form(response)
        if wire is None:  # vcrpy's old httpx layout, a non-ASCII reason: vcrpy's own reading
            from vcr.stubs.httpx_stubs import _deserialize_response

            return _deserialize_response(response, module)
        code, header_list, content, extensions = wire
        return module.Response(
            code, headers=header_list, stream=module.ByteStream(content), extensions=extensions
        )

    def _play(self, index: int) -> dict[str, Any]:
        """Account the replay of interaction ``index`` and return its response dict."""
        self.play_counts[index] += 1
        stored_request, response = self.data[index]
        self.replayed_count += 1
        meta = response.get(META_KEY) or {}
        agent = current_agent.get() or meta.get("agent")
        self._notify(
            Exchange(
                request=_request_dict(stored_request),
                response=response,
                replayed=True,
                latency_s=float(meta.get("latency_s") or 0.0),
                agent=agent,
            )
        )
        return response  # type: ignore[no-any-return]

    def append(self, request: Any, response: dict[str, Any]) -> None:
        if self._loading:  # vcrpy's _load appends what it reads: not a recording
            self._append_loaded(request, response)
            return
        started = self._starts.pop(id(request), None)
        wall0, virtual0 = started if started is not None else (time.perf_counter(), self._clock_now())
        # never 0: recorded calls must have distinct virtual starts for a stable order in the file
        latency = max(round(time.perf_counter() - wall0, 3), 0.001)
        agent = current_agent.get()
        if self.listener is not None:
            latency = self.listener.recording_latency(agent, latency)
        before = len(self.data)
        super().append(request, response)
        if len(self.data) == before:  # filtered out by a hook
            return
        stored_request, stored = self.data[-1]
        stored[META_KEY] = {"agent": agent, "latency_s": latency}
        self._recorded_order[id(stored)] = (round(virtual0, 6), agent or "")
        self.recorded_count += 1
        self._notify(
            Exchange(
                request=stored_request._to_dict(),
                response=stored,
                replayed=False,
                latency_s=latency,
                agent=agent,
                started_at=virtual0,
            )
        )

    def _in_stable_order(self, pairs: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
        """Loaded interactions first, as in the file; then those recorded now by (virtual start, agent).

        Branches that run in threads (or tasks) finish in whatever order the network answers; sorting
        by virtual start time, then agent name, writes the same file on every re-recording. Sequential
        calls have increasing virtual starts, so their order is kept; the sort is stable.
        """
        loaded = [p for p in pairs if id(p[1]) not in self._recorded_order]
        recorded = [p for p in pairs if id(p[1]) in self._recorded_order]
        recorded.sort(key=lambda p: self._recorded_order[id(p[1])])
        return loaded + recorded

    def _as_dict(self) -> dict[str, Any]:
        pairs = self._in_stable_order(list(self.data))
        return {"requests": [r for r, _ in pairs], "responses": [r for _, r in pairs]}

    def _rerecorded_interactions(self) -> list[tuple[Any, Any]]:
        if self.keep_loaded:  # what earlier tests of this run recorded, then this test's recording
            return self._in_stable_order(list(self.data))
        return self._in_stable_order(list(super()._rerecorded_interactions()))

    def _append_loaded(self, request: Any, response: dict[str, Any]) -> None:
        """vcrpy's ``append`` for an interaction read from the file: the same hooks, no deep copy.

        vcrpy deep-copies every response it appends so that hooks cannot mutate a live response; a
        response just parsed from the cassette belongs to nobody else, and copying it was the costliest
        step of loading after the YAML parser itself.

        An interaction this plugin recorded (it carries ``agentflows`` metadata and a decoded body) was
        scrubbed when it was written; with the built-in redaction settings it is not scrubbed again (a
        third of the load time). Other interactions, and every one when extra headers, body keys or query
        parameters are configured, go through the hooks; ``agentflows redact`` scrubs existing files.
        """
        if (
            isinstance(response, dict)
            and META_KEY in response
            and self.redactor.builtin_only
            and not _has_content_encoding(response)
        ):
            self._load_index += 1
            self.data.append((request, response))
            self.dirty = True
            return
        request = self._before_record_request(request)
        if not request:
            self._load_index += 1
            return
        try:
            response = self._before_record_response(response)
        except BodyError as exc:  # a compression bomb
            raise CassetteError(
                self._path, f"interactions[{self._load_index}].response.body.string", exc.reason
            ) from None
        except (OSError, EOFError, zlib.error) as exc:  # vcrpy's decode_response on a corrupt body
            raise CassetteError(
                self._path,
                f"interactions[{self._load_index}].response.body.string",
                f"the compressed body does not decompress ({exc})",
            ) from None
        if response is not None:
            self._check_still_encoded(response)
        self._load_index += 1
        if response is None:
            return
        self.data.append((request, response))
        self.dirty = True

    def _check_still_encoded(self, response: dict[str, Any]) -> None:
        """A body vcrpy left encoded (``br``, or a coding it does not know) must decode as the client will.

        Raises:
            CassetteError: the body does not decompress by its ``Content-Encoding``.
        """
        from ..providers._body import BodyError, _content_codings, _decode_content

        headers = response.get("headers") or {}
        codings = _content_codings(headers)  # the loader made every header value a string
        if not codings:
            return

        body = response.get("body", {}).get("string", b"")
        raw = body if isinstance(body, bytes) else str(body).encode()
        try:
            decoded, fully = _decode_content(raw, codings, "")
        except BodyError as exc:
            raise CassetteError(
                self._path, f"interactions[{self._load_index}].response.body.string", exc.reason
            ) from None
        if fully and decoded == raw:
            # the header names a coding the body does not have (stored decoded, e.g. after vcrpy removed
            # one of two ``gzip`` values): the client would fail to decode it, so the header goes
            response["headers"] = {
                name: values for name, values in headers.items() if name.lower() != "content-encoding"
            }

    def _notify(self, exchange: Exchange) -> None:
        slot = _exchange.get()
        if slot is not None:  # an async wrapper charges the clock itself, then notifies
            slot.request, slot.response = exchange.request, exchange.response
            slot.replayed, slot.latency_s, slot.agent = exchange.replayed, exchange.latency_s, exchange.agent
            return
        if self.listener is not None:
            exchange.started_at = self._clock_now()
            self.listener.on_exchange(exchange)


@dataclass(frozen=True)
class CassetteUsage:
    """How one use of a cassette (one flow) used its recorded interactions."""

    path: str
    """The cassette file."""
    loaded: int
    """Interactions in the file when the flow started."""
    unused: dict[int, str]
    """Loaded interactions the flow never replayed: position in the file -> ``"METHOD URL"``."""
    recorded: int = 0
    """Interactions recorded (and saved) by the flow."""
    pruned: int = 0
    """Loaded interactions dropped from the file because the flow no longer used them."""


def _body_bytes(request: Any) -> Any:
    """A request's body as bytes, str or ``None``: vcrpy's aiohttp stub passes a ``json=`` body as the
    object itself, which is sent (and matched) as its JSON text, as aiohttp sends it."""
    body = request.body_bytes
    if body is None or isinstance(body, bytes | str):
        return body
    if isinstance(body, bytearray):
        return bytes(body)
    return json.dumps(body).encode()


def _request_dict(request: Any) -> dict[str, Any]:
    """A stored ``vcr.request.Request`` as the dict :class:`Exchange` carries, built for the ledger only.

    The ledger reads a request's method, URL and body; of its headers only ``Content-Encoding`` (a
    compressed request body), so the others are left out: copying them cost more than parsing the call.
    """
    if isinstance(request, StoredRequest):
        encoding = request.first_value("Content-Encoding")
    else:
        encoding = request.headers.get("Content-Encoding")
    headers = {"Content-Encoding": [encoding]} if encoding else {}
    return {"method": request.method, "uri": request.uri, "body": request.body, "headers": headers}


def _describe(request: Any) -> str:
    return f"{getattr(request, 'method', '?')} {getattr(request, 'uri', '?')}"


@dataclass(frozen=True)
class _LiveRequest:
    """What :meth:`FlowCassette._key` reads of a live request (as a ``vcr.request.Request`` offers it)."""

    method: str
    uri: str
    body_bytes: bytes
    headers: Any


def _wire_form(
    response: Mapping[str, Any],
) -> tuple[int, list[tuple[str, str]], bytes, dict[str, bytes] | None] | None:
    """``(status, headers, body, extensions)`` of a stored response as vcrpy's httpx stub sends it.

    ``None`` for what only vcrpy's stub handles (its old httpx layout, a non-ASCII reason phrase).
    """
    status = response.get("status")
    if "status_code" in response or not isinstance(status, Mapping):
        return None
    message = status.get("message")
    if message and (not isinstance(message, str) or not message.isascii()):
        return None
    body = response.get("body")
    content = body.get("string") if isinstance(body, Mapping) else None
    headers = response.get("headers")
    if not isinstance(content, bytes) or not isinstance(headers, Mapping):
        return None
    header_list = [(name, value) for name, values in headers.items() for value in values]
    return (
        int(status["code"]),
        header_list,
        content,
        ({"reason_phrase": message.encode("ascii")} if message else None),
    )


def decode_response(response: dict[str, Any]) -> dict[str, Any]:
    """vcrpy's ``decode_response`` with a bound: a copy of ``response`` with its first content coding undone.

    As vcrpy's filter: the first ``Content-Encoding`` value that is ``gzip``, ``deflate`` (or ``br`` with
    the ``brotli`` module) is undone and removed, ``content-length`` set to the new length, and a body
    that does not decompress is kept as it is ("already decoded"). Unlike it, decompression stops at
    :data:`~pytest_agentflows.providers._body.MAX_DECODED_BODY_BYTES`.

    Raises:
        BodyError: the body decompresses to more than that (a compression bomb).
    """
    import copy
    import importlib

    from ..providers._body import MAX_DECODED_BODY_BYTES, BodyError, TooLarge, decompress_bounded

    response = copy.deepcopy(response)
    headers = response.get("headers")
    if not isinstance(headers, dict):
        return response
    name = next((n for n in headers if str(n).lower() == "content-encoding"), None)
    values = headers.get(name) if name is not None else None
    values = values if isinstance(values, list) else [values] if values else []
    if not values:
        return response
    coding = str(values[0])
    body = response.get("body", {}).get("string")
    if not isinstance(body, bytes) or coding not in ("gzip", "deflate", "br"):
        return response
    limit = MAX_DECODED_BODY_BYTES
    try:
        if coding == "br":
            try:
                brotli = importlib.import_module("brotli")
            except ImportError:
                return response  # as vcrpy: no brotli, no decoding
            from ..providers._body import _brotli_bounded

            try:
                new_body = _brotli_bounded(brotli, body, limit)
            except TooLarge:
                raise
            except Exception:
                new_body = body
        else:
            try:
                new_body = decompress_bounded(body, 31 if coding == "gzip" else zlib.MAX_WBITS, limit)
            except (zlib.error, EOFError):
                new_body = body  # vcrpy: "assume the response was already decompressed"
    except TooLarge as exc:
        raise BodyError("response.body.string", str(exc)) from None
    rest = values[1:]
    out: dict[str, Any] = {}
    for key, value in headers.items():
        if key == name:
            if rest:
                out[key] = rest
        elif str(key).lower() == "content-length":  # vcrpy's case-insensitive dict: the new key's case
            out["content-length"] = [str(len(new_body))]
        else:
            out[key] = value
    if not any(str(k).lower() == "content-length" for k in out):
        out["content-length"] = [str(len(new_body))]
    response["headers"] = out
    response["body"]["string"] = new_body
    return response


def _has_content_encoding(response: dict[str, Any]) -> bool:
    headers = response.get("headers")
    if not isinstance(headers, Mapping):
        return True  # unusual shape: let vcrpy's decode_response judge
    return any(str(name).lower() == "content-encoding" for name in headers)


_OPTIONAL_STACKS = {"boto3": "botocore", "httplib2": "httplib2", "tornado": "tornado", "aiohttp": "aiohttp"}
"""vcrpy patch groups for libraries that may not be installed -> the module vcrpy imports for each."""


@functools.cache
def _skip_absent_stacks() -> dict[str, tuple[str, ...]]:
    """``{"skip_patchers": ...}`` for the vcrpy versions that take it (9.x), else ``{}`` (8.x patches all)."""
    import inspect

    from vcr.cassette import Cassette

    if "skip_patchers" not in inspect.signature(Cassette.__init__).parameters:
        return {}
    return {"skip_patchers": _absent_patch_groups()}


@functools.cache
def _absent_patch_groups() -> tuple[str, ...]:
    """The vcrpy patch groups whose library is not installed (looked up once per process).

    vcrpy builds its patchers on every cassette activation and, for each optional HTTP library, tries to
    import it: a library that is not installed costs a failed import (a directory scan) every time. Those
    groups are skipped instead (vcrpy's ``skip_patchers``); an installed library is patched as before.
    """
    from importlib.util import find_spec

    absent = []
    for group, module in _OPTIONAL_STACKS.items():
        try:
            found = module in sys.modules or find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            absent.append(group)
    return tuple(absent)


def _vcr_mode(mode: RecordMode) -> Any:
    from vcr.record_mode import RecordMode as VcrMode

    return {RecordMode.NONE: VcrMode.NONE, RecordMode.NEW: VcrMode.NEW_EPISODES, RecordMode.ALL: VcrMode.ALL}[
        mode
    ]


@dataclass
class Recorder:
    """Activates a flow cassette for a block of code: ``with Recorder(...) as cassette: ...``.

    Args:
        path: Cassette file (YAML, vcrpy format). Created when something is recorded.
        mode: Record mode (:class:`RecordMode`).
        listener: Receives every exchange (the flow's ledger).
        clock: The flow's :class:`~pytest_agentflows.VirtualClock`.
        test_id: Node id used in error messages.
        redactor: Secret scrubbing applied before anything is stored or matched.
        save_on_failure: Save the recording even when the block raises.
        match_ignore: JSON paths (``"messages.*.tool_call_id"``, ``*`` for any key or index) left out of
            request bodies when matching, beside the built-in normalisation (UUIDs, tool list order).
        prune: In ``new`` mode, when the block ends without error, drop from the file the loaded
            interactions it never replayed (a re-recorded test keeps only what its run used).

    When the block raises (or ``cassette.discard_reason`` is set), nothing is written: the file keeps its
    previous content (``cassette.discarded`` counts the interactions not saved).

    Raises:
        CassetteError: on entering, when the cassette exists but cannot be read (the file is untouched).
        CassetteConflictError: on leaving, when another writer changed the file since it was loaded.
    """

    path: str
    mode: RecordMode
    listener: ExchangeListener
    clock: Any
    test_id: str = ""
    redactor: Redactor = field(default_factory=Redactor)
    save_on_failure: bool = False
    """Save what was recorded even when the block raises (default: keep the file as it was)."""
    match_ignore: tuple[str, ...] = ()
    """JSON paths left out of request bodies when matching (see :func:`~._keys.parse_path`)."""
    prune: bool = False
    """In ``new`` mode, drop the loaded interactions the block never replayed when saving (its own file)."""
    cassette: FlowCassette | None = None
    _cm: Any = None
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def __enter__(self) -> FlowCassette:
        redactor = self.redactor

        def before_record_response(response: dict[str, Any]) -> dict[str, Any]:
            # decode_response deep-copies every response; only a compressed one needs it
            if _has_content_encoding(response):
                response = decode_response(response)
            return redactor.response(response)

        from vcr.serializers import jsonserializer, yamlserializer

        # ``.json`` cassettes are vcrpy's JSON format: they load several times faster than YAML.
        serializer = jsonserializer if self.path.endswith(".json") else yamlserializer
        self._cm = FlowCassette.use(
            **_skip_absent_stacks(),
            path=self.path,
            serializer=serializer,
            record_mode=_vcr_mode(self.mode),
            persister=GuardedPersister(self.test_id, guard=self.mode is not RecordMode.NONE),
            before_record_request=redactor.request,
            before_record_response=before_record_response,
            drop_unused_requests=self.mode is RecordMode.ALL,
            agentflows_mode=self.mode,
            agentflows_test=self.test_id,
            agentflows_listener=self.listener,
            agentflows_redactor=redactor,
            agentflows_clock_now=self.clock.now,
            agentflows_match_ignore=tuple(parse_path(path) for path in self.match_ignore),
            agentflows_prune=self.prune,
        )
        self.cassette = self._cm.__enter__()
        # --record-agents=all on a cassette an earlier test of this session rewrote: merge into it
        self.cassette.keep_loaded = self.mode is RecordMode.ALL and _session.rewritten(
            self.path, self.test_id
        )
        try:
            self._wrap_transports()
        except BaseException:
            self._cm.__exit__(None, None, None)
            raise
        assert self.cassette is not None
        return self.cassette

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        cassette = self.cassette
        assert cassette is not None
        if exc_type is not None and not self.save_on_failure and cassette.discard_reason is None:
            cassette.discard_reason = f"{exc_type.__name__} raised while recording"
        while self._undo:
            self._undo.pop()()
        try:
            self._cm.__exit__(exc_type, *exc)
        finally:
            cassette.listener = None  # the flow keeps the cassette: no cycle left for the garbage collector
        if cassette.save_error is not None:
            error, cassette.save_error = cassette.save_error, None
            raise error
        if self.mode is RecordMode.ALL and cassette.discard_reason is None and cassette.recorded_count:
            _session.note_rewritten(self.path, self.test_id)

    def _wrap_transports(self) -> None:
        """Wrap vcrpy's patches of the httpx/httpx2 transports: replays from the index, time on the clock."""
        import importlib

        for name in ("httpx", "httpx2"):
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            for cls, attr, wrapper in (
                (module.HTTPTransport, "handle_request", self._sync_wrapper),
                (module.AsyncHTTPTransport, "handle_async_request", self._async_wrapper),
            ):
                inner = getattr(cls, attr)
                setattr(cls, attr, wrapper(module, inner))

                def undo(cls: Any = cls, attr: str = attr, inner: Any = inner) -> None:
                    setattr(cls, attr, inner)

                self._undo.append(undo)

    def _sync_wrapper(self, module: Any, inner: Callable[..., Any]) -> Callable[..., Any]:
        recorder = self

        def handle_request(transport: Any, request: Any) -> Any:
            __tracebackhide__ = True
            cassette = recorder.cassette
            assert cassette is not None
            body = b"".join(request.stream)
            request.stream = module.ByteStream(body)
            url = str(request.url)
            _check_model_request(recorder.listener, request.method, url)
            response = cassette.replay_direct(module, request.method, url, body, request.headers)
            if response is not None:
                return response
            return inner(transport, request)  # vcrpy: a miss, or a recording

        return handle_request

    def _async_wrapper(self, module: Any, inner: Callable[..., Any]) -> Callable[..., Any]:
        from vcr.request import Request as VcrRequest

        recorder = self

        async def handle_async_request(transport: Any, request: Any) -> Any:
            __tracebackhide__ = True
            cassette = recorder.cassette
            assert cassette is not None
            body = b"".join([part async for part in request.stream])
            request.stream = module.ByteStream(body)
            url = str(request.url)
            _check_model_request(recorder.listener, request.method, url)
            clock = recorder.clock
            clock.attach_loop()
            started_at = clock.now()
            slot = Exchange(charge_clock=False, started_at=started_at)
            token = _exchange.set(slot)
            try:
                response = cassette.replay_direct(module, request.method, url, body, request.headers)
                if response is None:
                    vcr_request = VcrRequest(request.method, url, body, request.headers)
                    if cassette.can_play_response_for(vcr_request):  # raises the miss in replay-only mode
                        response = await inner(transport, request)
                    else:
                        response = _record_blocking(module, request, body)
            finally:
                _exchange.reset(token)
            try:
                await clock.sleep(recorder.listener.effective_latency(slot.latency_s))
            except BaseException:
                slot.cancelled = True
                raise
            finally:
                if slot.response is not None:
                    recorder.listener.on_exchange(slot)
            return response

        return handle_async_request


def _check_model_request(listener: ExchangeListener, method: str, url: str) -> None:
    """Let the flow refuse a model request (budget already spent) before it is replayed or sent."""
    if find_adapter(str(method), url, None) is not None:
        listener.check_request()


def _record_blocking(module: Any, request: Any, body: bytes) -> Any:
    """Send ``request`` for real on a private sync transport (patched by vcrpy, so it is recorded).

    Blocking the event loop during the real request is deliberate: no virtual time may pass while real
    network I/O happens, so recorded timestamps equal replayed ones.
    """
    sync_request = module.Request(request.method, request.url, headers=request.headers, content=body)
    transport = module.HTTPTransport()
    try:
        response = transport.handle_request(sync_request)
        response.read()
    finally:
        transport.close()
    return module.Response(
        response.status_code,
        headers=response.headers,
        stream=module.ByteStream(response.content),
        extensions={k: v for k, v in response.extensions.items() if k in ("reason_phrase", "http_version")},
    )
