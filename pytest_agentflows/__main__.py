"""``python -m pytest_agentflows``: the ``agentflows`` command (see :mod:`pytest_agentflows.cli`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
