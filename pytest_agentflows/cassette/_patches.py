"""vcrpy's patchers built once per process; activating a flow cassette enters them instead of rebuilding them.

For every cassette it activates, vcrpy builds its ``mock.patch`` objects anew (about 40, one stub subclass
per patched class, each naming the cassette): half a millisecond per flow test, a quarter of activating a
small cassette. Here they are built once, against :class:`_ActiveCassette`, a stand-in that forwards every
attribute to the outermost active flow cassette, and entered and exited around each activation.

A nested activation (a cassette activated while another one is active, e.g. a flow inside a flow or in
another thread) gets vcrpy's own per-cassette patchers, exactly as before: they shadow the outer ones
until it ends. A cassette with ``custom_patches`` does too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

__all__ = ["shared_patches"]

_lock = threading.Lock()
_outer: Any = None
"""The outermost active flow cassette (what :class:`_ActiveCassette` forwards to), or ``None``."""
_built: dict[tuple[str, ...], list[Any]] = {}
"""The patchers, by the ``skip_patchers`` they were built with."""


class _ActiveCassette:
    """What vcrpy's stubs see as their cassette: every attribute is the outermost active cassette's."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        cassette = _outer
        if cassette is None:  # a stub called after its cassette ended: vcrpy would be in the same spot
            raise RuntimeError(f"no flow cassette is active (vcrpy's stub asked for {name!r})")
        return getattr(cassette, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(_outer, name, value)


def _patchers(skip: tuple[str, ...]) -> list[Any]:
    from vcr.patch import CassettePatcherBuilder

    patchers = _built.get(skip)
    if patchers is None:
        patchers = _built[skip] = list(CassettePatcherBuilder(_ActiveCassette()).build())
    return patchers


def shared_patches(cassette: Any, own: Callable[[Any], Iterator[Any]]) -> Iterator[Any]:
    """vcrpy's ``CassetteContextDecorator._patch_generator`` for ``cassette``, with patchers built once.

    Args:
        cassette: The cassette being activated (vcrpy ``Cassette``).
        own: vcrpy's own generator (``super()._patch_generator``), used for a nested activation or a
            cassette with ``custom_patches``.

    Yields:
        ``cassette``, once, with the patches in place until the generator is resumed.
    """
    global _outer
    with _lock:
        mine = _outer is None and not getattr(cassette, "custom_patches", ())
        if mine:
            _outer = cassette
    if not mine:
        yield from own(cassette)
        return
    try:
        with ExitStack() as stack:
            for patcher in _patchers(tuple(getattr(cassette, "skip_patchers", ()))):
                stack.enter_context(patcher)
            yield cassette
    finally:
        with _lock:
            _outer = None
