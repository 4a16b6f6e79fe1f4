"""The layers of src/pogm import only downward, and no module imports itself back through others.

The layers, lowest first (docs/DESIGN.md explains them):

1. foundations: ``data``, ``nn``, ``likelihoods``, ``latents``, ``objectives``, the generic
   ``plotting`` helpers, the run-directory file formats (``checkpoint``), ``recipes``, ``version``,
   ``flops`` and ``tables`` (paper tables as data);
2. ``models``, each family with its figures and its paper tables;
3. ``runs`` (a run directory read back and built from its settings);
4. ``train`` and ``evaluate``;
5. ``reproduce``;
6. ``demo`` and ``cli``; then the package itself (``pogm/__init__.py``, the public API).

Every import counts, those inside functions too. The graph is read from the source with `ast`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

LAYERS = (
    ("foundations", ("data", "nn", "likelihoods", "latents", "objectives", "plotting", "checkpoint", "recipes", "version", "flops", "tables")),
    ("models", ("models",)),
    ("runs", ("runs",)),
    ("train and evaluate", ("train", "evaluate")),
    ("reproduce", ("reproduce",)),
    ("demo and cli", ("demo", "cli")),
)
PACKAGE_LAYER = len(LAYERS)  # pogm/__init__.py: above everything


def module_sources(root: Path = SRC / "pogm") -> dict[str, str]:
    """``{"pogm.data.batch": source, ...}`` for every module of the package."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path.read_text()
    return out


def imports(sources: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the pogm modules it imports anywhere in its source (``from pogm.x import y``
    counts as importing the module ``pogm.x.y`` when that is a module, else ``pogm.x``)."""
    graph: dict[str, set[str]] = {}
    for module, source in sources.items():
        targets = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.split(".")[0] == "pogm"}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "pogm":
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    targets.add(submodule if submodule in sources else node.module)
        graph[module] = targets - {module}
    return graph


def layer_of(module: str) -> int:
    """The layer index of a pogm module (by its first name below ``pogm``)."""
    parts = module.split(".")
    if len(parts) == 1:
        return PACKAGE_LAYER
    for index, (_, names) in enumerate(LAYERS):
        if parts[1] in names:
            return index
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS (and to docs/DESIGN.md)")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({'the package' if layer_of(target) == PACKAGE_LAYER else LAYERS[layer_of(target)][0]})"
        for module, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(module)
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (each found once, as a path that returns to its start)."""
    found, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_every_module_belongs_to_a_layer():
    for module in module_sources():
        layer_of(module)


def test_no_module_imports_a_higher_layer():
    assert upward_imports(imports(module_sources())) == []


def test_there_are_no_import_cycles():
    assert cycles(imports(module_sources())) == []


@pytest.mark.parametrize("planted", ["import pogm.cli", "from pogm.train import train", "from pogm import runs"])
def test_a_planted_upward_import_inside_a_function_is_caught(planted):
    sources = module_sources()
    sources["pogm.data.batch"] += f"\n\ndef _planted():\n    {planted}\n"
    assert any(line.startswith("pogm.data.batch (foundations) imports") for line in upward_imports(imports(sources)))


def test_a_planted_cycle_is_caught():
    sources = module_sources()
    sources["pogm.plotting"] += "\n\ndef _planted():\n    from pogm.data import batch\n"
    sources["pogm.data.batch"] += "\n\ndef _planted():\n    from pogm import plotting\n"
    assert any({"pogm.plotting", "pogm.data.batch"} <= set(cycle) for cycle in cycles(imports(sources)))
