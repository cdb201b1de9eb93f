"""The package computes each metric in one place: metrics.py.

These tests read the package's source: an AUROC computed with scikit-learn, or a
bootstrap drawn by a loop of its own, anywhere but in ``faimi_tutorial/fairness/metrics.py``
fails them. Each check is first shown to catch a planted violation.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "faimi_tutorial"
#: Functions allowed to draw bootstrap replicates: the shared helper, and the subgroup
#: report's multinomial replicate weights (``_report_intervals``: the same bootstrap
#: drawn as counts, which its vectorised kernels need).
BOOTSTRAP_OWNERS = {("metrics.py", "bootstrap_indices"), ("metrics.py", "_report_intervals")}
DRAWS = {"integers", "choice", "multinomial", "randint"}


def _sources() -> list[tuple[str, str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10, f"package not found at {PACKAGE}"
    return [(f.name, f.read_text()) for f in files]


def roc_auc_score_uses(source: str) -> list[int]:
    """Lines that import, call or name scikit-learn's ``roc_auc_score``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.alias) and node.name.split(".")[-1] == "roc_auc_score":
            lines.append(node.lineno)
        elif isinstance(node, ast.Name) and node.id == "roc_auc_score":
            lines.append(node.lineno)
        elif isinstance(node, ast.Attribute) and node.attr == "roc_auc_score":
            lines.append(node.lineno)
    return lines


def _mentions_n_boot(node: ast.AST) -> bool:
    return any((isinstance(n, ast.Name) and "n_boot" in n.id)
               or (isinstance(n, ast.Attribute) and "n_boot" in n.attr) for n in ast.walk(node))


def bootstrap_draws(source: str) -> list[tuple[str, int]]:
    """(function, line) of every loop over ``range(...n_boot...)`` and every random
    draw sized by ``n_boot``: the signs of a bootstrap written out by hand."""
    found = []

    def visit(node: ast.AST, owner: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = owner
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = child.name if owner == "<module>" else owner
            if isinstance(child, (ast.For, ast.comprehension)):
                it = child.iter
                if (isinstance(it, ast.Call) and isinstance(it.func, ast.Name)
                        and it.func.id == "range" and _mentions_n_boot(it)):
                    found.append((name, it.lineno))
            if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                    and child.func.attr in DRAWS
                    and any(_mentions_n_boot(a) for a in [*child.args, *child.keywords])):
                found.append((name, child.lineno))
            visit(child, name)

    visit(ast.parse(source), "<module>")
    return found


def test_the_checks_catch_planted_violations():
    planted = (
        "from sklearn.metrics import roc_auc_score\n"
        "import sklearn.metrics as skm\n"
        "def f(y, s, n_boot, rng):\n"
        "    a = skm.roc_auc_score(y, s)\n"
        "    out = []\n"
        "    for _ in range(n_boot):\n"
        "        out.append(rng.integers(0, len(y), len(y)))\n"
        "    w = rng.multinomial(5, [0.2] * 5, size=n_boot)\n"
        "    return [rng.choice(y, len(y)) for _ in range(int(n_boot))]\n"
        "class P:\n"
        "    def m(self, cfg, rng):\n"
        "        return rng.integers(0, 9, (cfg.n_boot, 9))\n"
    )
    assert roc_auc_score_uses(planted) == [1, 4]
    assert [line for _, line in bootstrap_draws(planted)] == [6, 8, 9, 12]
    assert {name for name, _ in bootstrap_draws(planted)} == {"f", "m"}
    clean = "def g(y, s, n_boot, seed):\n    return bootstrap_indices(len(y), n_boot, seed=seed)\n"
    assert roc_auc_score_uses(clean) == [] and bootstrap_draws(clean) == []


@pytest.mark.parametrize("name, source", _sources(), ids=lambda v: v if v.endswith(".py") else "")
def test_auroc_is_computed_only_in_metrics(name, source):
    if name == "metrics.py":
        return
    lines = roc_auc_score_uses(source)
    assert not lines, (f"{name} uses roc_auc_score (lines {lines}); call "
                       "faimi_tutorial.fairness.metrics.auroc, the package's one AUROC")


@pytest.mark.parametrize("name, source", _sources(), ids=lambda v: v if v.endswith(".py") else "")
def test_bootstrap_is_drawn_only_by_the_shared_helper(name, source):
    stray = [(fn, line) for fn, line in bootstrap_draws(source)
             if (name, fn) not in BOOTSTRAP_OWNERS]
    assert not stray, (f"{name} draws bootstrap replicates itself at {stray}; use "
                       "faimi_tutorial.fairness.metrics.bootstrap_indices")


def test_the_owners_still_draw_their_replicates():
    # if a helper is renamed, this allow-list must follow (else the test above is void)
    draws = {("metrics.py", fn) for fn, _ in bootstrap_draws((PACKAGE / "fairness" / "metrics.py").read_text())}
    assert draws == BOOTSTRAP_OWNERS


HIGHER = {"sweeps", "training", "probing", "federated", "flower_app", "representation",
          "plotting", "widgets", "explain", "cli", "models", "experiments", "viz", "report"}


def package_imports(source: str) -> list[tuple[str, str]]:
    """(function or "<module>", module) of every import of a package module."""
    found = []

    def visit(node: ast.AST, owner: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                else owner
            if isinstance(child, ast.ImportFrom):
                if child.level:  # from .x import y / from . import x
                    mods = [child.module] if child.module else [a.name for a in child.names]
                elif child.module == "faimi_tutorial":
                    mods = [a.name for a in child.names]
                elif (child.module or "").startswith("faimi_tutorial."):
                    mods = [child.module.split(".", 1)[1]]
                else:
                    mods = []
                found.extend((name, m.split(".")[0]) for m in mods)
            elif isinstance(child, ast.Import):
                found.extend((name, a.name.split(".")[1]) for a in child.names
                             if a.name.startswith("faimi_tutorial."))
            visit(child, name)

    visit(ast.parse(source), "<module>")
    return found


def test_metrics_is_the_lowest_layer():
    planted = ("from .sweeps import x\ndef f():\n    from . import probing\n"
               "from faimi_tutorial import training\nimport faimi_tutorial.viz.plotting\n")
    assert package_imports(planted) == [("<module>", "sweeps"), ("f", "probing"),
                                        ("<module>", "training"), ("<module>", "viz")]
    imports = package_imports((PACKAGE / "fairness" / "metrics.py").read_text())
    upward = [(fn, m) for fn, m in imports if m in HIGHER]
    # figures depend on the metrics, never the reverse (no SubgroupReport.plot)
    assert upward == [], upward


def test_importing_metrics_loads_no_higher_module():
    import subprocess
    import sys

    code = ("import sys, faimi_tutorial.fairness.metrics; "
            "print(' '.join(m for m in sys.modules if m.startswith('faimi_tutorial.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=PACKAGE.parent).stdout.split()
    assert "faimi_tutorial.fairness.metrics" in out
    assert not {m.split(".")[1] for m in out} & HIGHER, out
