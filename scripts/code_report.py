"""Shape of the package, in numbers: the figures of its layered design.

Prints four Markdown tables read from the source (nothing is imported or run):

1. lines per module, grouped by layer;
2. the longest definitions (functions, methods and classes);
3. the import graph between layers (how many imports go from which layer to which;
   every edge points downwards, ``tests/test_layers.py`` enforces it);
4. functions the chapters define themselves, and whether the package has one of the
   same name (a duplicate between notebooks and package).

Usage::

    python scripts/code_report.py [--top 10]
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "faimi_tutorial"
#: Layer of each top-level module or subpackage, bottom first (as tests/test_layers.py).
LAYERS = ("bottom", "data", "fairness", "models", "training", "experiments", "viz", "top")
_LAYER_OF = {"_version": 0, "presets": 0, "validation": 0, "runtime": 0, "results": 0,
             "__init__": 7, "data": 1, "fairness": 2, "models": 3, "training": 4,
             "experiments": 5, "viz": 6, "report": 7, "cli": 7}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """Dotted name of a source file of the package (``fairness.metrics``)."""
    parts = path.relative_to(package).with_suffix("").parts
    return ".".join(parts)


def layer_of(module: str) -> str:
    """Layer name of a dotted module name relative to the package."""
    first = module.split(".")[0]
    if first not in _LAYER_OF:
        raise ValueError(f"module {module!r} has no layer; known: {sorted(_LAYER_OF)}")
    return LAYERS[_LAYER_OF[first]]


def lines_per_module(package: Path = PACKAGE) -> pd.DataFrame:
    """One row per source file: ``layer``, ``module``, ``lines``, sorted by layer."""
    rows = [{"layer": layer_of(module_name(p, package)), "module": module_name(p, package),
             "lines": len(p.read_text().splitlines())}
            for p in sorted(package.rglob("*.py"))]
    table = pd.DataFrame(rows)
    table["order"] = table["layer"].map(LAYERS.index)
    return table.sort_values(["order", "module"]).drop(columns="order").reset_index(drop=True)


def longest_definitions(package: Path = PACKAGE, top: int = 10) -> pd.DataFrame:
    """The ``top`` longest functions, methods and classes (``name``, ``module``, ``lines``)."""
    if top < 1:
        raise ValueError(f"top={top!r} must be >= 1")
    rows = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                rows.append({"name": node.name, "module": module_name(path, package),
                             "lines": node.end_lineno - node.lineno + 1})
    table = pd.DataFrame(rows).sort_values("lines", ascending=False)
    return table.head(top).reset_index(drop=True)


def _targets(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    if not node.level:
        mod = node.module or ""
        return [mod.split(".", 1)[1]] if mod.startswith("faimi_tutorial.") else []
    base = module.split(".")
    base = base[:-1] if path.name != "__init__.py" else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    target = ".".join(base + ([node.module] if node.module else []))
    if target:
        return [target]
    return [alias.name for alias in node.names]  # from . import presets


def layer_edges(package: Path = PACKAGE) -> pd.DataFrame:
    """Imports between layers: ``from``, ``to`` and how many import statements."""
    counts: dict[tuple[str, str], int] = {}
    for path in sorted(package.rglob("*.py")):
        module = module_name(path, package)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            for target in _targets(module, path, node):
                first = target.split(".")[0]
                if first not in _LAYER_OF or first == "__init__":
                    continue
                key = (layer_of(module), layer_of(target))
                if key[0] != key[1]:
                    counts[key] = counts.get(key, 0) + 1
    rows = [{"from": a, "to": b, "imports": n} for (a, b), n in counts.items()]
    table = pd.DataFrame(rows, columns=["from", "to", "imports"])
    order = {name: i for i, name in enumerate(LAYERS)}
    return table.sort_values(["from", "to"], key=lambda c: c.map(order)).reset_index(drop=True)


def notebook_functions(notebooks: list[Path], package: Path = PACKAGE) -> pd.DataFrame:
    """Functions defined in the chapters' code cells (``notebook``, ``name``, ``in_package``)."""
    defined = {node.name for p in package.rglob("*.py")
               for node in ast.walk(ast.parse(p.read_text()))
               if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    rows = []
    for nb in notebooks:
        cells = json.loads(nb.read_text())["cells"]
        for cell in cells:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            try:
                tree = ast.parse(source)
            except SyntaxError:  # cell magics
                continue
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    rows.append({"notebook": nb.name, "name": node.name,
                                 "in_package": node.name in defined})
    return pd.DataFrame(rows, columns=["notebook", "name", "in_package"])


def main(argv: list[str] | None = None) -> int:
    """Print the four tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="longest definitions to list")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top {args.top}: allowed: an integer >= 1")
    lines = lines_per_module()
    print("## Lines per module\n")
    print(lines.to_markdown(index=False))
    print(f"\nTotal: {lines['lines'].sum()} lines in {len(lines)} files; per layer:\n")
    print(lines.groupby("layer", sort=False)["lines"].sum().to_frame().to_markdown())
    print("\n## Longest definitions\n")
    print(longest_definitions(top=args.top).to_markdown(index=False))
    print("\n## Imports between layers\n")
    print(layer_edges().to_markdown(index=False))
    print("\n## Functions the chapters define\n")
    nbs = sorted((ROOT / "notebooks").glob("*.ipynb"))
    table = notebook_functions(nbs)
    print(table.to_markdown(index=False) if len(table) else "None.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
