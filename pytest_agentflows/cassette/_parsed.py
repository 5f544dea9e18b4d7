"""Parsed cassettes kept between sessions, as Python keeps bytecode for modules.

Reading a cassette's YAML is most of what replaying it costs (~0.4 ms for a 4-call cassette, against
~0.03 ms to read this cache). :class:`ParseCache` keeps, per cassette file, the data
:func:`~._store.parse_cassette` made of it (checked and normalised), in :mod:`marshal` form, with the SHA-1
of the file's bytes: a later session whose file has the same bytes takes the data from the cache, any
other bytes are parsed again (and the entry replaced). Nothing else is trusted: an entry written by
another version of the parser (the key includes a digest of the parser's source, PyYAML's version and
Python's marshal version), an unreadable or truncated entry, or data marshal cannot hold (a YAML
timestamp) is a miss, never an error.

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
from pathlib import Path
from typing import Any

__all__ = ["ParseCache", "active", "use"]

_FORMAT = 1
"""Layout of an entry: ``(_FORMAT, parser digest, SHA-1 of the file's bytes, length, data)``."""


@functools.cache
def parser_digest() -> bytes:
    """A digest of what decides the parsed data: the parser's source, PyYAML's version, marshal's.

    The parser's modules are read as files, not imported: a session whose cassettes all come from the cache
    never imports the YAML reader.
    """
    import yaml

    digest = hashlib.sha1(usedforsecurity=False)
    here = Path(__file__).parent
    for name in ("_store.py", "_yaml_load.py"):
        try:
            digest.update((here / name).read_bytes())
        except OSError:  # an install without sources: the distribution's version decides
            digest.update(f"{name}/{_version()}".encode())
    digest.update(f"{yaml.__version__}/{marshal.version}/{_FORMAT}".encode())
    return digest.digest()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-agentflows")
    except PackageNotFoundError:
        return "?"


class ParseCache:
    """Parsed cassettes in ``directory``, one entry per cassette path.

    Args:
        directory: Where entries are kept (created when the first entry is written).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.hits = 0
        """Loads answered from the cache in this process."""
        self.misses = 0
        """Loads that parsed the file (no entry, or one for other bytes or another parser)."""

    def _entry(self, path: str) -> Path:
        name = hashlib.sha1(os.path.abspath(path).encode(), usedforsecurity=False).hexdigest()[:20]
        return self.directory / f"{name}.marshal"

    def get(self, path: str, raw: bytes) -> Any | None:
        """The data parsed before from exactly ``raw`` (the bytes of cassette ``path``), else ``None``."""
        try:
            with open(self._entry(path), "rb") as fh:
                entry = marshal.loads(fh.read())
        except (OSError, ValueError, EOFError, TypeError):
            self.misses += 1
            return None
        if (
            type(entry) is tuple
            and len(entry) == 5
            and entry[:2] == (_FORMAT, parser_digest())
            and entry[3] == len(raw)
            and entry[2] == hashlib.sha1(raw, usedforsecurity=False).digest()
        ):
            self.hits += 1
            return entry[4]
        self.misses += 1
        return None

    def put(self, path: str, raw: bytes, data: Any) -> None:
        """Keep ``data``, parsed from ``raw`` (the bytes of cassette ``path``); silently nothing when marshal
        cannot hold it or the directory is not writable (the next session parses the file again)."""
        try:
            blob = marshal.dumps(
                (_FORMAT, parser_digest(), hashlib.sha1(raw, usedforsecurity=False).digest(), len(raw), data)
            )
        except ValueError:  # a type marshal does not take (a YAML timestamp): not cached
            return
        target = self._entry(path)
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
            return


_active: ParseCache | None = None


def use(cache: ParseCache | None) -> None:
    """Make ``cache`` the one cassette loads read and write (``None``: parse every time)."""
    global _active
    _active = cache


def active() -> ParseCache | None:
    """The cache cassette loads use, or ``None``."""
    return _active
