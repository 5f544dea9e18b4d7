"""vcrpy's patchers built once per process; activating a flow cassette enters them instead of rebuilding them.

For every cassette it activates, vcrpy builds its ``mock.patch`` objects anew (about 40, one stub subclass
per patched class, each naming the cassette): half a millisecond per flow test, a quarter of activating a
small cassette. Here they are built once, against :class:`_ActiveCassette`, a stand-in that forwards every
attribute to the outermost active flow cassette, and entered and exited around each activation.

A nested activation (a cassette activated while another one is active, e.g. a flow inside a flow or in
another thread) gets vcrpy's own per-cassette patchers, exactly as before: they shadow the outer ones
until it ends. A cassette with ``custom_patches`` does too.

Entering ~40 ``mock.patch`` objects costs ~0.3 ms per flow test (each one looks its target up again and
goes through mock's general machinery, and the ``ExitStack`` adds its own bookkeeping). vcrpy's patchers
all replace one attribute with a given object, so each is entered as :class:`_Patch`, which does exactly
what ``mock.patch`` does on entry and exit for that case (``setattr``; on exit the original back, or the
attribute deleted when it was inherited); any other kind of patcher is entered as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
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


class _Patch:
    """A ``mock.patch`` that sets one attribute to a given object, entered without mock's per-use work.

    The same effect as ``mock._patch.__enter__`` / ``__exit__`` for that case: the target is looked up
    once (when the patchers are built), the original is read on every entry (from the target's own
    ``__dict__`` if it is there, else inherited), and on exit an own attribute is set back while an
    inherited one is deleted (restored if deleting it lost it, as mock does for proxy objects).
    """

    __slots__ = ("_local", "_original", "attribute", "new", "target")

    _MISSING = object()

    def __init__(self, target: Any, attribute: str, new: Any) -> None:
        self.target = target
        self.attribute = attribute
        self.new = new
        self._original: Any = self._MISSING
        self._local = False

    @classmethod
    def of(cls, patcher: Any) -> Any:
        """``patcher`` as a :class:`_Patch` when it is the plain kind, else ``patcher`` itself."""
        from unittest import mock

        plain = (
            type(patcher) is mock._patch
            and patcher.new is not mock.DEFAULT
            and patcher.autospec is None
            and patcher.new_callable is None
            and patcher.spec is None
            and patcher.spec_set is None
            and patcher.attribute_name is None
            and not patcher.kwargs
            and not patcher.additional_patchers
            and not patcher.create
        )
        return cls(patcher.getter(), patcher.attribute, patcher.new) if plain else patcher

    def __enter__(self) -> Any:
        target, name = self.target, self.attribute
        try:
            self._original, self._local = target.__dict__[name], True
        except (AttributeError, KeyError):
            self._original, self._local = getattr(target, name, self._MISSING), False
        if self._original is self._MISSING:
            raise AttributeError(f"{target} does not have the attribute {name!r}")
        setattr(target, name, self.new)
        return self.new

    def __exit__(self, *exc: object) -> None:
        target, name = self.target, self.attribute
        if self._local:
            setattr(target, name, self._original)
        else:
            delattr(target, name)
            if not hasattr(target, name):
                setattr(target, name, self._original)
        self._original = self._MISSING


def _patchers(skip: tuple[str, ...]) -> list[Any]:
    from vcr.patch import CassettePatcherBuilder

    patchers = _built.get(skip)
    if patchers is None:
        built = CassettePatcherBuilder(_ActiveCassette()).build()
        patchers = _built[skip] = [_Patch.of(patcher) for patcher in built]
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
    entered: list[Any] = []
    try:
        for patcher in _patchers(tuple(getattr(cassette, "skip_patchers", ()))):
            patcher.__enter__()
            entered.append(patcher)
        yield cassette
    finally:
        error: BaseException | None = None
        for patcher in reversed(entered):  # every patch undone, even when one fails to
            try:
                patcher.__exit__(None, None, None)
            except BaseException as exc:
                error = error or exc
        with _lock:
            _outer = None
        if error is not None:
            raise error
