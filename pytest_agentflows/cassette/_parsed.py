"""Parsed cassettes kept between sessions, as Python keeps bytecode for modules.

Reading a cassette's YAML is most of what replaying it costs (~0.4 ms for a 4-call cassette, against
~0.03 ms to read this cache). :class:`ParseCache` keeps, per cassette file, the data
:func:`~._store.parse_cassette` made of it (checked and normalised), in :mod:`marshal` form, with the SHA-1
of the file's bytes: a later session whose file has the same bytes takes the data from the cache, any
other bytes are parsed again (and the entry replaced). Nothing else is trusted: an entry written by
another version of the parser (the key includes a digest of the parser's source, PyYAML's version and
Python's marshal version), an unreadable or truncated entry, or data marshal cannot hold (a YAML
timestamp) is a miss, never an error.

Each entry also keeps the replay keys (:func:`~._keys.request_key`, a canonical form of each request body:
the next largest cost of a load) the cassette's requests got as read, for each set of settings the keys
depend on (the redactor's secret query parameters, ``match_ignore`` paths), with a digest of the key
functions' source: any other settings, source or bytes compute the keys again.

The ``agentflow`` fixture keeps the cache in pytest's cache directory (``.pytest_cache/d/agentflows-parsed``,
emptied by ``pytest --cache-clear``; none with ``-p no:cacheprovider``); outside pytest there is none.
Entries are written atomically (a temporary file renamed over the old one), so parallel workers
(pytest-xdist) never read a partial entry.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import marshal
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["ParseCache", "active", "use"]

_FORMAT = 2
"""Layout of an entry: ``(_FORMAT, parser digest, SHA-1 of the file's bytes, length, marshalled data, keys)``
with ``keys`` ``(keys digest, {settings: [key of each request]})``."""


def _sources_digest(names: tuple[str, ...], extra: str) -> bytes:
    """SHA-1 of this package's cassette modules ``names`` (their source files, not imported) and ``extra``."""
    digest = hashlib.sha1(usedforsecurity=False)
    here = Path(__file__).parent
    for name in names:
        try:
            digest.update((here / name).read_bytes())
        except OSError:  # an install without sources: the distribution's version decides
            digest.update(f"{name}/{_version()}".encode())
    digest.update(extra.encode())
    return digest.digest()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-agentflows")
    except PackageNotFoundError:
        return "?"


@functools.cache
def parser_digest() -> bytes:
    """A digest of what decides the parsed data: the parser's source, PyYAML's version, marshal's."""
    import yaml

    return _sources_digest(("_store.py", "_yaml_load.py"), f"{yaml.__version__}/{marshal.version}/{_FORMAT}")


@functools.cache
def keys_digest() -> bytes:
    """A digest of what decides the replay keys of parsed data beside the settings: the key functions'
    source (and the parser's)."""
    return _sources_digest(("_keys.py", "_request.py", "_recorder.py"), parser_digest().hex())


class _Loaded(NamedTuple):
    """The entry of the cassette loaded last (what :meth:`ParseCache.keys` and ``put_keys`` refer to)."""

    path: str
    sha: bytes
    length: int
    blob: bytes
    keys: dict[Any, Any]


class ParseCache:
    """Parsed cassettes in ``directory``, one entry per cassette path, with their requests' replay keys.

    Args:
        directory: Where entries are kept (created when the first entry is written).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.hits = 0
        """Loads answered from the cache in this process."""
        self.misses = 0
        """Loads that parsed the file (no entry, or one for other bytes or another parser)."""
        self._local = threading.local()  # the cassette each thread loaded last

    @property
    def _loaded(self) -> _Loaded | None:
        return getattr(self._local, "loaded", None)

    @_loaded.setter
    def _loaded(self, loaded: _Loaded | None) -> None:
        self._local.loaded = loaded

    def _entry(self, path: str) -> tuple[str, Path]:
        absolute = os.path.abspath(path)
        name = hashlib.sha1(absolute.encode(), usedforsecurity=False).hexdigest()[:20]
        return absolute, self.directory / f"{name}.marshal"

    def get(self, path: str, raw: bytes) -> Any | None:
        """The data parsed before from exactly ``raw`` (the bytes of cassette ``path``), else ``None``."""
        absolute, target = self._entry(path)
        self._loaded = None
        try:
            with open(target, "rb") as fh:
                entry = marshal.loads(fh.read())
        except (OSError, ValueError, EOFError, TypeError):
            self.misses += 1
            return None
        sha = hashlib.sha1(raw, usedforsecurity=False).digest()
        if (
            type(entry) is tuple
            and len(entry) == 6
            and entry[:2] == (_FORMAT, parser_digest())
            and entry[3] == len(raw)
            and entry[2] == sha
            and type(entry[4]) is bytes
        ):
            try:
                data = marshal.loads(entry[4])
            except (ValueError, EOFError, TypeError):
                self.misses += 1
                return None
            kept = entry[5]
            keys = kept[1] if type(kept) is tuple and len(kept) == 2 and kept[0] == keys_digest() else {}
            self._loaded = _Loaded(absolute, sha, len(raw), entry[4], keys if type(keys) is dict else {})
            self.hits += 1
            return data
        self.misses += 1
        return None

    def put(self, path: str, raw: bytes, data: Any) -> None:
        """Keep ``data``, parsed from ``raw`` (the bytes of cassette ``path``); silently nothing when marshal
        cannot hold it or the directory is not writable (the next session parses the file again)."""
        absolute, _target = self._entry(path)
        try:
            blob = marshal.dumps(data)
        except ValueError:  # a type marshal does not take (a YAML timestamp): not cached
            self._loaded = None
            return
        loaded = _Loaded(absolute, hashlib.sha1(raw, usedforsecurity=False).digest(), len(raw), blob, {})
        self._loaded = loaded if self._write(loaded) else None

    def keys(self, path: str, settings: Any, count: int) -> list[Any] | None:
        """The replay keys kept for the ``count`` requests of cassette ``path`` under ``settings``, or None.

        Args:
            path: The cassette, loaded (:meth:`get` or :meth:`put`) just before: keys belong to those bytes.
            settings: What the keys depend on beside the bytes (hashable, in a form marshal holds).
            count: The number of requests loaded; a list of another length is not taken.
        """
        loaded = self._loaded
        if loaded is None or loaded.path != os.path.abspath(path):
            return None
        keys = loaded.keys.get(settings)
        return keys if type(keys) is list and len(keys) == count else None

    def put_keys(self, path: str, settings: Any, keys: list[Any]) -> None:
        """Keep the replay ``keys`` of the requests of cassette ``path`` (loaded just before) under
        ``settings`` (beside those kept for other settings)."""
        loaded = self._loaded
        if loaded is None or loaded.path != os.path.abspath(path):
            return
        self._loaded = None
        self._write(loaded._replace(keys={**loaded.keys, settings: keys}))

    def _write(self, loaded: _Loaded) -> bool:
        """Write the entry of ``loaded`` atomically; ``False`` if marshal cannot hold it or on an OS error."""
        keys = (keys_digest(), loaded.keys)
        try:
            blob = marshal.dumps((_FORMAT, parser_digest(), loaded.sha, loaded.length, loaded.blob, keys))
        except ValueError:
            return False
        _absolute, target = self._entry(loaded.path)
        # not _store.atomic_write_bytes: an entry needs no lock and no fsync (one lost is a miss)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(blob)
                os.replace(temp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except OSError:
            return False
        return True


_active: ParseCache | None = None


def use(cache: ParseCache | None) -> None:
    """Make ``cache`` the one cassette loads read and write (``None``: parse every time)."""
    global _active
    _active = cache


def active() -> ParseCache | None:
    """The cache cassette loads use, or ``None``."""
    return _active
