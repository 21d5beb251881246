"""The package's layers, lowest first, and the checker that keeps imports pointing down.

A module may import modules of its own layer or of a lower one, never of a higher one, and the
packages may not import each other in a cycle (also within a layer). Function-level imports count
like module-level ones: hiding an import in a function does not change the dependency.
``tests/test_layers.py`` runs :func:`check_package` on ``dsp_deploy``; a new top-level module or
package must be placed here first.

Why this order: errors and small utilities serve everyone; models and the structure IR describe
a network; checkpoints and data hold them; ``runtime`` runs a model file (sessions, engines,
torch modules) and times it; the stages (train, prune, export, build) use those; ``bench``,
``compare`` and ``serving`` combine stages; ``app`` holds multi-stage flows (the demo); ``cli``
only parses arguments and calls the rest.
"""
from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "dsp_deploy"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "utils", "layers", "profiles", "recipes", "targets"),
    ("models", "structure"),
    ("checkpoint", "data", "pruning"),
    ("runtime",),
    ("reference", "checkpoint_info", "hardware", "baselines", "dppnet", "training", "export", "engines"),
    ("bench", "compare", "serving"),
    ("app", "frontier"),
    ("cli", "__main__"),
)
"""Top-level modules/packages of ``dsp_deploy`` per layer, lowest first."""


@dataclass(frozen=True)
class Import:
    """One import of a package module: where it is and which top-level units it connects."""

    module: str  # importing module, dotted
    line: int
    target: str  # imported module, dotted
    source_unit: str
    target_unit: str


def _module_name(path: Path, root: Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def _targets(node: ast.AST, module: str, is_init: bool, package: str, submodules: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_init else 0)]
        name = ".".join(base + ([node.module] if node.module else []))
    else:
        name = node.module or ""
    if name == package:  # `from dsp_deploy import checkpoint` imports the submodule
        return [f"{package}.{a.name}" for a in node.names if a.name in submodules]
    return [name]


def package_imports(root: str | Path, package: str = PACKAGE) -> list[Import]:
    """Every import (module level, function level, TYPE_CHECKING) between top-level units of the
    package whose directory is ``root``. Imports of the bare package root are ignored."""
    root = Path(root)
    submodules = {p.stem for p in root.glob("*.py")} | {p.name for p in root.iterdir() if (p / "__init__.py").is_file()}
    found: list[Import] = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root, package)
        parts = module.split(".")
        if len(parts) < 2:
            continue  # the package root (__init__) only re-exports lazily
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for target in _targets(node, module, path.name == "__init__.py", package, submodules):
                tparts = target.split(".")
                if tparts[0] != package or len(tparts) < 2 or tparts[1] == parts[1]:
                    continue
                found.append(Import(module, getattr(node, "lineno", 0), target, parts[1], tparts[1]))
    return found


def _layer_of(layers: Sequence[Sequence[str]]) -> dict[str, int]:
    return {unit: i for i, names in enumerate(layers) for unit in names}


def _cycles(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Elementary cycles found by depth-first search (one per back edge)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def check_package(root: str | Path, layers: Sequence[Sequence[str]] = LAYERS, package: str = PACKAGE) -> list[str]:
    """Problems, one line each: unplaced units, imports going up a layer, package cycles."""
    root = Path(root)
    layer = _layer_of(layers)
    units = {p.stem for p in root.glob("*.py") if p.stem != "__init__"}
    units |= {p.name for p in root.iterdir() if (p / "__init__.py").is_file()}
    problems = [f"{package}.{u} is in no layer (add it to {package}.layers.LAYERS)" for u in sorted(units - set(layer))]
    imports = package_imports(root, package)
    for imp in imports:
        src, dst = layer.get(imp.source_unit), layer.get(imp.target_unit)
        if src is not None and dst is not None and dst > src:
            problems.append(f"{imp.module}:{imp.line} imports {imp.target}: layer {dst} ({imp.target_unit}) is above "
                            f"layer {src} ({imp.source_unit})")
    for cycle in _cycles((i.source_unit, i.target_unit) for i in imports):
        where = [next(f"{i.module}:{i.line}" for i in imports if (i.source_unit, i.target_unit) == (a, b))
                 for a, b in zip(cycle, cycle[1:])]
        problems.append(f"package cycle {' -> '.join(cycle)} (via {', '.join(where)})")
    return problems
