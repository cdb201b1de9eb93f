"""The recorded results travel with the package (faimi_tutorial.results)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from faimi_tutorial import results

ROOT = Path(__file__).resolve().parents[1]


def test_repository_copy_comes_first():
    assert results.results_dir() == ROOT / "results"
    names = results.available()
    assert names == sorted(p.name for p in (ROOT / "results").iterdir()
                           if p.suffix in (".csv", ".json"))
    assert "shortcut_salience.csv" in names and "shortcut_findings.json" in names


def test_load_csv_and_json():
    table = results.load("shortcut_salience")
    pd.testing.assert_frame_equal(table, pd.read_csv(ROOT / "results" / "shortcut_salience.csv"))
    record = results.load("shortcut_findings.json")
    assert isinstance(record, dict) and record


def test_unknown_and_unsafe_names():
    with pytest.raises(FileNotFoundError, match="not among the recorded results.*recorded: "):
        results.load("no_such_result")
    with pytest.raises(ValueError, match="file name"):
        results.results_path("../pyproject.toml")


def test_environment_override(tmp_path, monkeypatch):
    (tmp_path / "mine.csv").write_text("a,b\n1,2\n")
    monkeypatch.setenv("FAIMI_RESULTS_DIR", str(tmp_path))
    assert results.available() == ["mine.csv"]
    assert results.load("mine")["b"].tolist() == [2]


def test_every_result_ships_in_the_wheel():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"]["faimi_tutorial._results"] == "results"
    assert "faimi_tutorial._results" in config["packages"]
    patterns = config["package-data"]["faimi_tutorial._results"]
    assert {"*.csv", "*.json"} <= set(patterns)


def test_recorded_loads_or_says_how_to_compute(capsys):
    table = results.recorded("shortcut_salience", "scripts/shortcut_findings.py")
    pd.testing.assert_frame_equal(table, results.load("shortcut_salience"))
    assert capsys.readouterr().out == ""
    assert results.recorded("no_such_result", "scripts/x.py --only y") is None
    assert capsys.readouterr().out.strip() == (
        "no_such_result.csv not recorded: run scripts/x.py --only y")
