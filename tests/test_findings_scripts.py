"""The findings scripts run what their chapters describe, and their results files are whole."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _chapter_code(name: str) -> str:
    """The chapter's code cells, with whitespace and trailing commas removed, so that
    a call is found however the formatter broke its lines."""
    nb = json.loads((ROOT / "notebooks" / name).read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    return _flat(code)


def _flat(text: str) -> str:
    return re.sub(r",([)\]}])", r"\1", re.sub(r"\s+", "", text))


def _top_level_assignments(chapter: str):
    """Every one-target assignment at the top level of a chapter's code cells."""
    nb = json.loads((ROOT / "notebooks" / chapter).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        try:
            tree = ast.parse("".join(cell["source"]))
        except SyntaxError:  # shell and magic lines
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                yield node.targets[0], node.value


def _assigned_in(name: str, chapter: str):
    """The literal value assigned to ``name`` at the top level of a chapter's code."""
    for target, value in _top_level_assignments(chapter):
        if getattr(target, "id", None) == name:
            if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "dict":
                return {kw.arg: ast.literal_eval(kw.value) for kw in value.keywords}
            return ast.literal_eval(value)
    raise AssertionError(f"{name} is not assigned in the chapter")


def _constants(chapter: str) -> dict:
    """The chapter's literal constants (``A = 1`` and ``A, B = 1, 2`` at cell level)."""
    found = {}
    for target, node in _top_level_assignments(chapter):
        try:
            value = ast.literal_eval(node)
        except ValueError:
            continue
        if isinstance(target, ast.Name):
            found[target.id] = value
        elif isinstance(target, ast.Tuple):
            found.update(zip((t.id for t in target.elts), value))
    return found


def test_federated_script_uses_the_chapters_settings():
    script = _script("federated_findings")
    chapter = "08_federated_training.ipynb"
    code = _chapter_code(chapter)
    const = _constants(chapter)
    assert _assigned_in("SIM", chapter) == script.SIM
    assert _flat('FedConfig.preset("tutorial")') in code and script.PRESET == "tutorial"
    large = script.LARGE
    assert (const["N_LARGE"], const["LARGE_TRAIN"], const["LARGE_TEST"]) == (
        large["n_sites"], large["n_train"], large["n_test"])
    assert _flat("few_large_sites(N_LARGE, n_train=LARGE_TRAIN, n_test=LARGE_TEST)") in code
    tiny = script.TINY
    assert (const["N_TINY"], const["TINY_SIZES"]) == (tiny["n_sites"], tiny["sizes"])
    assert _flat(f"many_small_sites(N_TINY, sizes=TINY_SIZES, n_test={tiny['n_test']}") in code
    assert _flat(f"shortcut_sites(n_train={script.SCANNER['n_train']}, "
                 f"n_test={script.SCANNER['n_test']}") in code
    assert [const["UNEQUAL"], const["EQUAL"]] == list(script.SCANNER_PREVALENCES.values())


@pytest.mark.parametrize("name, columns", [
    ("federated_large.csv", {"strategy", "seed", "auroc", "worst_site_auroc", "tpr_gap", "fpr_gap"}),
    ("federated_tiny.csv", {"strategy", "seed", "auroc"}),
    ("federated_scanner.csv", {"prevalence", "strategy", "seed", "site", "TPR", "FPR", "scanner_flip"}),
])
def test_federated_results_have_five_seeds_per_setting(name, columns):
    table = pd.read_csv(ROOT / "results" / name)
    assert columns <= set(table.columns)
    keys = [c for c in ("prevalence", "strategy", "site") if c in table]
    counts = table.groupby(keys)["seed"].nunique()
    assert (counts >= 5).all(), counts
    rates = [c for c in ("auroc", "TPR", "FPR", "scanner_flip") if c in table]
    values = table[rates].to_numpy().ravel()
    values = values[~pd.isna(values)]
    assert len(values) and ((values >= 0) & (values <= 1)).all()
