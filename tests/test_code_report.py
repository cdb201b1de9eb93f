"""scripts/code_report.py reads the package's shape from its source."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("code_report", ROOT / "scripts" / "code_report.py")
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)


@pytest.fixture
def package(tmp_path):
    pkg = tmp_path / "faimi_tutorial"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "presets.py").write_text("A = 1\n")
    (pkg / "data" / "__init__.py").write_text("")
    (pkg / "data" / "simulate.py").write_text(
        "from .. import presets\nfrom ..presets import A\n\n\n"
        "def long():\n" + "    x = 1\n" * 30 + "\n\ndef short():\n    return 1\n")
    return pkg


def test_lines_and_longest(package):
    lines = report.lines_per_module(package)
    assert lines.set_index("module").loc["data.simulate", "lines"] == 39
    assert list(lines["layer"])[0] == "bottom"
    longest = report.longest_definitions(package, top=1)
    assert list(longest["name"]) == ["long"] and longest["lines"][0] == 31
    with pytest.raises(ValueError, match="top"):
        report.longest_definitions(package, top=0)


def test_layer_edges_count_imports(package):
    edges = report.layer_edges(package)
    assert edges.to_dict("records") == [{"from": "data", "to": "bottom", "imports": 2}]


def test_unknown_module_is_refused():
    with pytest.raises(ValueError, match="no layer"):
        report.layer_of("nowhere.module")


def test_notebook_functions_flag_package_duplicates(package, tmp_path):
    nb = tmp_path / "ch.ipynb"
    nb.write_text(json.dumps({"cells": [
        {"cell_type": "code", "source": ["def short():\n", "    return 2\n"]},
        {"cell_type": "code", "source": ["%%time\n", "x = 1\n"]},
        {"cell_type": "markdown", "source": ["def long(): pass"]},
        {"cell_type": "code", "source": ["def mine():\n", "    return 3\n"]}]}))
    table = report.notebook_functions([nb], package)
    assert table[["name", "in_package"]].values.tolist() == [["short", True], ["mine", False]]


def test_real_package_edges_point_down():
    edges = report.layer_edges()
    order = {name: i for i, name in enumerate(report.LAYERS)}
    assert len(edges) > 5
    assert all(order[a] > order[b] for a, b in zip(edges["from"], edges["to"]))
