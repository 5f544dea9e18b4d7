"""The package's layers (docs/reference.md, "Package map"): a module imports only lower layers.

Every import counts: module level, inside functions (lazy) and under ``TYPE_CHECKING``, so a cycle cannot
hide behind a late import. pytest and syrupy belong to the glue (``plugin/``), vcrpy to ``cassette/``,
respx to ``testing/``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import pytest_agentflows

PACKAGE = Path(pytest_agentflows.__file__).parent

RANK = {
    "errors": 0,
    "runtime": 1,
    "providers": 2,
    "cassette": 3,
    "testing": 4,
    "flow": 5,
    "patterns": 6,
    "integrations": 7,
    "report": 8,
    "cli": 9,
    "plugin": 10,
}
"""Layer of each sub-package or top-level module, lowest first."""

FACADES = {"__init__", "__main__", "model_server"}
"""Top-level modules that only re-export (the lazy public API, ``python -m``, a documented alias)."""

OWNERS = {"pytest": "plugin", "_pytest": "plugin", "syrupy": "plugin", "vcr": "cassette", "respx": "testing"}
"""Third-party packages only one layer may import."""


def layer_of(module: str) -> str:
    """``"runtime"`` for ``runtime.clock``, ``"flow"`` for ``flow`` (names relative to the package)."""
    return module.split(".")[0] or "__init__"


def _modules() -> dict[str, str]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path.read_text(encoding="utf-8")
    return out


def _imports(module: str, source: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """``(line, target)``: internal targets relative to the package, external ones as ``ext:name``."""
    here = module.split(".") if is_package else module.split(".")[:-1]
    if module == "__init__":
        here = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top == "pytest_agentflows":
                    yield node.lineno, alias.name.partition(".")[2]
                else:
                    yield node.lineno, f"ext:{top}"
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                name = node.module or ""
                if name.split(".")[0] == "pytest_agentflows":
                    yield node.lineno, name.partition(".")[2]
                else:
                    yield node.lineno, f"ext:{name.split('.')[0]}"
                continue
            base = here[: len(here) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
            if node.module is None:  # from . import x, y: each name is a module of that package
                for alias in node.names:
                    yield node.lineno, ".".join([*base, alias.name])
            else:
                yield node.lineno, target


def violations(modules: Mapping[str, str], packages: frozenset[str] = frozenset()) -> list[str]:
    """Every import that goes up a layer or uses a third-party package another layer owns."""
    found = []
    for module, source in modules.items():
        layer = layer_of(module)
        if layer in FACADES:
            continue
        assert layer in RANK, f"{module}: a new top-level module or sub-package needs a layer in RANK"
        for line, target in _imports(module, source, module in packages):
            if target.startswith("ext:"):
                owner = OWNERS.get(target[4:])
                if owner is not None and owner != layer:
                    found.append(f"{module}:{line}: imports {target[4:]} (only {owner}/ may)")
                continue
            other = layer_of(target)
            if other == layer:
                continue
            if other in FACADES or RANK[other] >= RANK[layer]:
                found.append(
                    f"{module}:{line}: {layer} imports {target or '__init__'} ({other}: not a lower layer)"
                )
    return found


def _packages() -> frozenset[str]:
    return frozenset(
        ".".join(p.relative_to(PACKAGE).parts[:-1])
        for p in PACKAGE.rglob("__init__.py")
        if p.parent != PACKAGE
    )


def test_the_package_imports_only_lower_layers() -> None:
    modules = _modules()
    assert {layer_of(m) for m in modules} - FACADES == set(RANK)  # every layer exists, none unnamed
    assert violations(modules, _packages()) == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("runtime.budget", "from ..flow import Flow\n", "runtime imports flow"),
        ("runtime.budget", "from ..cassette._store import x\n", "runtime imports cassette._store"),
        ("runtime.clock", "from ..patterns import Router\n", "runtime imports patterns"),
        ("testing.faults", "def f():\n    from ..flow import Flow\n", "testing imports flow"),
        (
            "testing.faults",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..flow import Flow\n",
            "testing imports flow",
        ),
        ("providers._body", "from pytest_agentflows.cassette import _load\n", "providers imports cassette"),
        ("flow", "from . import report\n", "flow imports report"),
        ("flow", "import pytest\n", "imports pytest (only plugin/ may)"),
        ("report", "from _pytest.nodes import Item\n", "imports _pytest (only plugin/ may)"),
        ("patterns.router", "import syrupy\n", "imports syrupy (only plugin/ may)"),
        ("flow", "import vcr\n", "imports vcr (only cassette/ may)"),
    ],
)
def test_an_upward_import_is_a_violation(module: str, source: str, expected: str) -> None:
    found = violations({module: source})
    assert len(found) == 1 and expected in found[0], found


def test_lower_and_same_layer_imports_are_allowed() -> None:
    assert violations({"patterns.router": "from ..flow import Flow\nfrom ._base import Pattern\n"}) == []
    assert (
        violations({"plugin": "import pytest\nfrom ..report import FlowRow\n"}, frozenset({"plugin"})) == []
    )


def test_the_core_runs_without_pytest() -> None:
    """Every layer below the glue imports (and builds a flow) in an interpreter where pytest is absent."""
    code = (
        "import sys\n"
        "sys.modules['pytest'] = None; sys.modules['_pytest'] = None\n"  # an import of pytest now fails
        "import pytest_agentflows as af\n"
        "from pytest_agentflows import cli, report\n"
        "from pytest_agentflows.testing import scripted, model_server\n"
        "from pytest_agentflows.cassette import _recorder, _load\n"
        "import pytest_agentflows.integrations\n"
        "for name in af.__all__: getattr(af, name)\n"
        "flow = af.Flow()\n"
        "with flow.activate():\n"
        "    flow.log.record('ok')\n"
        "print(len(flow.decisions))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"
