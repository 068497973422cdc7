"""Imports point down the layers only (DESIGN.md), and no module of a package imports itself back.

    dialogue/
       |    \\
    values/  beliefs/
       |      |
    oracle/
       |
    worldmodel/

Every module of the five packages is parsed (not imported) and every import of ``crux.X`` in it,
at the top, inside a function or under ``TYPE_CHECKING``, must go to its own layer or one below.
``beliefs`` and ``values`` stand side by side: neither imports the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("worldmodel", "oracle", "beliefs", "values", "dialogue")
ALLOWED = {
    "worldmodel": {"worldmodel"},
    "oracle": {"worldmodel", "oracle"},
    "beliefs": {"worldmodel", "oracle", "beliefs"},
    "values": {"worldmodel", "oracle", "values"},
    "dialogue": {"worldmodel", "oracle", "beliefs", "values", "dialogue"},
}


def _modules() -> dict[str, Path]:
    """``crux.<layer>.<module>`` -> its file, for every module of the five packages."""
    out = {}
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            parts = path.relative_to(ROOT / layer).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(("crux", layer, *parts))] = path
    return out


MODULES = _modules()


def imports(module: str) -> list[tuple[int, str]]:
    """(line, imported module) of every import of a ``crux`` name in ``module``; ``from crux.a
    import b`` counts as ``crux.a.b`` when that is a module, else as ``crux.a``; relative imports
    are resolved against the module's package."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name == "crux" or a.name.startswith("crux.")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base != "crux" and not base.startswith("crux."):
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.append((node.lineno, full if full in MODULES or base == "crux" else base))
    return out


def layer_of(name: str) -> str | None:
    """The layer an imported name lies in (None: ``crux`` itself, the public API above them all)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_package_is_found():
    for layer in LAYERS:
        assert f"crux.{layer}" in MODULES, layer
    assert len(MODULES) > 40


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_point_down_the_layers(layer):
    wrong = []
    for module in MODULES:
        if layer_of(module) != layer:
            continue
        for line, name in imports(module):
            target = layer_of(name)
            if target not in ALLOWED[layer]:
                wrong.append(f"{MODULES[module].relative_to(ROOT)}:{line}: imports {name} ({target or 'the crux API'})")
    assert not wrong, f"{layer}/ may import only {sorted(ALLOWED[layer])}:\n" + "\n".join(wrong)


def import_graph() -> nx.DiGraph:
    """Module -> the crux modules it imports (anywhere in it: at the top or in a function)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(MODULES)
    for module in MODULES:
        for _, name in imports(module):
            while name not in MODULES and "." in name:
                name = name.rpartition(".")[0]
            if name in MODULES and name != module and MODULES[name].name != "__init__.py":
                graph.add_edge(module, name)
    return graph


def test_no_module_imports_itself_back():
    """No cycle of imports, even through an import inside a function (such a cycle only hides
    two modules that each need a piece of the other: the piece belongs in a third)."""
    cycles = list(nx.simple_cycles(import_graph()))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join([*c, c[0]]) for c in cycles)
