"""Record modes (the ``--record-agents`` values)."""

from __future__ import annotations

import enum


class RecordMode(str, enum.Enum):
    """How a flow's cassette treats requests.

    ``NONE`` (the default) replays only: nothing leaves the machine and a request without a recorded
    response raises :class:`~pytest_agentflows.UnrecordedRequestError`. ``NEW`` replays what is recorded
    and records what is missing. ``ALL`` sends every request to the network and rewrites the cassette with
    exactly the interactions of this run.
    """

    NONE = "none"
    NEW = "new"
    ALL = "all"

    @classmethod
    def parse(cls, value: str | RecordMode | None, *, where: str) -> RecordMode:
        """Parse ``value`` (``None`` → ``NONE``).

        Raises:
            UsageError: for anything but ``none``, ``new`` or ``all``, naming ``where`` it came from.
        """
        from ..errors import UsageError

        if value is None:
            return cls.NONE
        if isinstance(value, RecordMode):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise UsageError(f"{where}: unknown record mode {value!r}; valid values: {valid}") from None
