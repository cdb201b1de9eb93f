"""Tests of the benchmark runner's helpers (the benchmarks themselves are not timed tests)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flatten_names_rows_by_chapter():
    run_all = load("run_all")
    rows = run_all.flatten("", {"chapters": [{"chapter": "01_x", "seconds": 3.0}], "a": {"b": 1}}, {})
    assert rows == {"chapters[01_x].chapter": "01_x", "chapters[01_x].seconds": 3.0, "a.b": 1}


def test_chapters_follow_the_toc():
    bench = load("bench_chapters")
    found = bench.chapters()
    assert found and all(p.exists() and p.suffix == ".ipynb" for p in found)
    assert [p.stem for p in found] == sorted(p.stem for p in found)


def test_every_benchmark_script_is_found():
    run_all = load("run_all")
    names = [p.name for p in run_all.scripts()]
    assert "bench_chapters.py" in names
