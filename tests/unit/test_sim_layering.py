"""The house's layering: ``sim`` is the provider double only, ``cli`` the top floor.

``sim`` imports nothing of the package but ``catalog`` and ``tokens`` (whose own imports,
``errors``, come with them), so the double never shares the idealisation of the code it tests.
Nothing in the package imports ``cli`` but the re-export left at the planner's old address.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import llm_routing
import llm_routing.sim

SRC = Path(llm_routing.__file__).parent
SIM_MODULES = ["llm_routing.sim"] + [
    f"llm_routing.sim.{m.name}" for m in pkgutil.iter_modules(llm_routing.sim.__path__)
]
PRODUCT = (
    "llm_routing.router",
    "llm_routing.schedule",
    "llm_routing.cost",
    "llm_routing.guard",
    "llm_routing.observe",
    "llm_routing.cli",
    "llm_routing.config",
    "llm_routing._decorator",
)
SIM_MAY_IMPORT = ("llm_routing.sim", "llm_routing.catalog", "llm_routing.tokens")

# The package's own __init__ imports its public names lazily, on first use, so a fresh child
# that imports one sim module holds in sys.modules exactly what that module pulls.
_CHILD = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m.startswith("llm_routing."))))
"""


def test_every_sim_module_is_listed():
    assert {"llm_routing.sim.state", "llm_routing.sim.server", "llm_routing.sim.serve"} <= set(
        SIM_MODULES
    )


@pytest.mark.parametrize("module", SIM_MODULES)
def test_importing_a_sim_module_imports_nothing_of_the_product(module):
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, module],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert module in loaded or module == "llm_routing.sim.__main__"
    pulled = [m for m in loaded if m.startswith(PRODUCT)]
    assert pulled == [], f"{module} imports {pulled}"


def _imports(path: Path) -> list[str]:
    """Every module a file imports, at the top or inside a function, absolute names."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return names


def test_sim_source_imports_only_catalog_and_tokens_even_lazily():
    for path in sorted((SRC / "sim").glob("*.py")):
        ours = [n for n in _imports(path) if n.startswith("llm_routing.")]
        foreign = [n for n in ours if not n.startswith(SIM_MAY_IMPORT)]
        assert foreign == [], f"{path.name} imports {foreign}"


def test_nothing_below_the_cli_imports_it():
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC)
        if relative.parts[0] == "cli" or relative == Path("simulate.py"):
            continue  # the top floor itself, and the planner's old address (a re-export)
        assert not [n for n in _imports(path) if n.startswith("llm_routing.cli")], relative
