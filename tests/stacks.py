"""Which HTTP stack and SDK majors are installed: the CI matrix runs this suite in two worlds.

The httpx2 world (Python ≥3.11 default): openai ≥3 and anthropic ≥1 send through ``httpx2``, vcrpy ≥9.4
patches it. The httpx world (the Python 3.10 leg of ``.ci/run``): openai 2.x and anthropic 0.x send
through ``httpx`` and ``httpx2`` is not installed at all. Tests that exercise a stack use ``SDK_HTTP`` (the
module the installed SDKs send through) or skip with ``needs_httpx2`` when the feature is httpx2's own.
"""

from __future__ import annotations

from types import ModuleType

import anthropic
import httpx
import openai
import pytest

httpx2: ModuleType | None
try:
    import httpx2
except ImportError:  # the httpx world: openai 2.x / anthropic 0.x, no httpx2 installed
    httpx2 = None

HAS_HTTPX2 = httpx2 is not None


def _major(version: str) -> int:
    return int(version.split(".", 1)[0])


OPENAI_ON_HTTPX2 = _major(openai.__version__) >= 3
ANTHROPIC_ON_HTTPX2 = _major(anthropic.__version__) >= 1

#: The module the installed OpenAI SDK sends through (``httpx2`` for openai ≥3, ``httpx`` for openai 2.x).
OPENAI_HTTP: ModuleType = httpx2 if (OPENAI_ON_HTTPX2 and httpx2 is not None) else httpx
#: The module the installed Anthropic SDK sends through (``httpx2`` for anthropic ≥1, ``httpx`` for 0.x).
ANTHROPIC_HTTP: ModuleType = httpx2 if (ANTHROPIC_ON_HTTPX2 and httpx2 is not None) else httpx
#: The stack the SDKs send through, for tests of raw clients "as the SDKs would send".
SDK_HTTP: ModuleType = OPENAI_HTTP

#: Both stacks when both are installed, for tests parametrized over them.
STACKS = [pytest.param(httpx, id="httpx")] + (
    [pytest.param(httpx2, id="httpx2")] if httpx2 is not None else []
)

needs_httpx2 = pytest.mark.skipif(
    not HAS_HTTPX2, reason="httpx2 is not installed (the httpx world: openai 2.x, anthropic 0.x)"
)
