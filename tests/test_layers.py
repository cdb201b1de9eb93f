"""The package is layered: no import cycles, no upward imports, no private names
crossing modules, and no package import hidden inside a function (to dodge a cycle).

Read from the source with :mod:`ast`, so it checks every import, not only those a
test happens to execute.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "faimi_tutorial"

#: Layer of each top-level module or subpackage, bottom first.
LAYERS: dict[str, int] = {
    "_version": 0,
    "presets": 0,
    "validation": 0,
    "runtime": 0,
    "results": 0,
    "data": 1,
    "fairness": 2,
    "models": 3,
    "training": 4,
    "experiments": 5,
    "viz": 6,
    "report": 7,
    "cli": 8,
}
#: Modules that may import inside functions: the command (fast ``faimi --help``).
LAZY_OK = {"faimi_tutorial.cli"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    """Absolute names of the package modules an ``ImportFrom`` node imports."""
    if node.level:
        base = module.split(".")
        if path.name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("faimi_tutorial"):
        return []
    names = [f"{target}.{alias.name}" for alias in node.names]
    found = [n for n in names if n in MODULES]
    # ``from . import x`` goes through the package: its __init__ is a dependency too
    return [target, *found]


def _imports(module: str) -> list[tuple[str, ast.ImportFrom | ast.Import, bool]]:
    """(imported module, node, inside a function) for every package import of ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(sub) for sub in ast.walk(node) if sub is not node)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            targets = _resolve(module, path, node)
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.startswith("faimi_tutorial")]
        else:
            continue
        out += [(t, node, id(node) in inside) for t in targets]
    return out


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return -1  # the package itself: re-exports from every layer, lazily
    return LAYERS[parts[1]]


def test_every_module_has_a_layer():
    unknown = sorted({m.split(".")[1] for m in MODULES if "." in m} - set(LAYERS))
    assert not unknown, f"modules without a layer: {unknown}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if "." in m))
def test_no_upward_import(module):
    for target, node, _ in _imports(module):
        if target == "faimi_tutorial":
            continue
        assert _layer(target) <= _layer(module), (
            f"{module} (layer {_layer(module)}) imports {target} "
            f"(layer {_layer(target)}) at line {node.lineno}"
        )


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m not in LAZY_OK))
def test_no_package_import_inside_functions(module):
    lazy = [(t, n.lineno) for t, n, inside in _imports(module) if inside]
    assert not lazy, f"{module} imports inside functions: {lazy}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_names_cross_modules(module):
    path = MODULES[module]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and _resolve(module, path, node):
            private = [a.name for a in node.names
                       if a.name.startswith("_") and not a.name.startswith("__")]
            assert not private, f"{module} line {node.lineno} imports private {private}"


def test_no_import_cycles():
    graph = {m: {t for t, _, _ in _imports(m) if t in MODULES and t != m}
             for m in MODULES if m != "faimi_tutorial"}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt in graph and not state.get(nxt):
                visit(nxt)
        path.pop()
        state[node] = 2

    for m in sorted(graph):
        if not state.get(m):
            visit(m)


def test_the_check_sees_a_violation(tmp_path):
    """The checker itself: an upward import is found in a made-up module."""
    module = "faimi_tutorial.data.fake"
    MODULES[module] = tmp_path / "fake.py"
    (tmp_path / "fake.py").write_text(
        "def f():\n    from ..viz.plotting import _private\n")
    try:
        found = _imports(module)
        assert found and found[0][0] == "faimi_tutorial.viz.plotting" and found[0][2]
        with pytest.raises(AssertionError, match="imports faimi_tutorial.viz.plotting"):
            test_no_upward_import(module)
        with pytest.raises(AssertionError, match="inside functions"):
            test_no_package_import_inside_functions(module)
        with pytest.raises(AssertionError, match="private"):
            test_no_private_names_cross_modules(module)
    finally:
        del MODULES[module]
