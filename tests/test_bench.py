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


def test_paper_benchmark_skips_without_a_gpu(monkeypatch, capsys, tmp_path):
    import torch

    bench = load("bench_paper")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    assert bench.main([]) == 0
    assert "skipped" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


def test_paper_benchmark_reads_the_record_where_the_script_wrote_it(monkeypatch, tmp_path):
    """With --out, bench_paper copies that run's record, with a fresh cache that it then undoes."""
    import json
    import os
    import types

    import torch

    bench = load("bench_paper")
    script = bench.load_script()  # the real option parser
    seen = {}

    def fake_main(argv):
        seen["cache"] = os.environ["FAIMI_CACHE_DIR"]
        out = script.parse_args(argv).out
        out.mkdir(parents=True, exist_ok=True)
        record = {k: k for k in ("command", "finished", "preset", "grid", "simulation", "prevalences", "seeds",
                                 "seconds", "budget_seconds", "within_budget", "all_runs_fresh", "machine")}
        (out / "paper_findings.json").write_text(json.dumps({**record, "extra": 1}))
        return 0

    fake = types.SimpleNamespace(parse_args=script.parse_args, main=fake_main)
    monkeypatch.setattr(bench, "load_script", lambda: fake)
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "bench")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("FAIMI_CACHE_DIR", "kept")
    assert bench.main(["--out", str(tmp_path / "run")]) == 0
    written = json.loads((tmp_path / "bench" / "paper.json").read_text())
    assert written["command"] == "command" and "extra" not in written
    assert seen["cache"] != "kept" and os.environ["FAIMI_CACHE_DIR"] == "kept"
