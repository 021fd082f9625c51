"""The package layout: modules stay small and imports go one way (DESIGN.md's order)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lora_theory"
#: Top-level modules from the bottom up; a module may import only those before it.
LAYERS = [
    "checks",
    "runtime",
    "texttable",
    "provenance",
    "linalg",
    "solves",
    "adapters",
    "conditioned",
    "linear",
    "fnn",
    "instances",
    "bounds",
    "verification",
    "optimality",
    "transformer",
    "final_layers",
    "allocation",
    "training",
    "plotting",
    "experiments",
    "sweeps",
    "interop",
]
SOURCES = sorted(PACKAGE.rglob("*.py"))


def top_module(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imported(path: Path) -> set[str]:
    """The top-level ``lora_theory`` modules that ``path`` imports (module-level or not)."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(PACKAGE).parts) - 1  # how deep inside the package
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").startswith("lora_theory."):
                out.add(node.module.split(".")[1])
            elif node.level > depth:  # relative import reaching the package's top level
                if node.module:
                    out.add(node.module.split(".")[0])
                else:
                    out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            out.update(
                a.name.split(".")[1] for a in node.names if a.name.startswith("lora_theory.")
            )
    return out


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_one_way(path):
    me = top_module(path)
    if me in ("__init__", "__main__"):
        return
    assert me in LAYERS, f"{me} is not placed in the layer order"
    allowed = set(LAYERS[: LAYERS.index(me)]) | {me}
    assert imported(path) <= allowed, f"{path.name} imports {imported(path) - allowed}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_under_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400
