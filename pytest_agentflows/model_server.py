"""The documented path of :mod:`pytest_agentflows.testing.model_server` (the local model server).

``python -m pytest_agentflows.model_server`` and ``from pytest_agentflows.model_server import
LocalModelServer`` keep working: this module is that module (``sys.modules`` aliases it), and run as a
script it starts the server's command line.
"""

from __future__ import annotations

import sys

from .testing import model_server as _impl
from .testing.model_server import *  # noqa: F403  (the documented names, for type checkers)
from .testing.model_server import __all__ as __all__

if __name__ == "__main__":
    raise SystemExit(_impl.main())
sys.modules[__name__] = _impl
