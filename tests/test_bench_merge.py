"""A partial chapter benchmark keeps the other chapters' records."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load():
    spec = importlib.util.spec_from_file_location(
        "bench_chapters", ROOT / "bench" / "bench_chapters.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_merge_replaces_measured_chapters_and_drops_removed_ones():
    bench = load()
    stems = [p.stem for p in bench.chapters()]
    old = {
        "machine": "old",
        "book": {"seconds": 1.0},
        "chapters": [
            {"chapter": stems[0], "seconds": 1.0},
            {"chapter": stems[1], "seconds": 2.0},
            {"chapter": "00_removed_chapter", "seconds": 3.0},
        ],
    }
    new = {"machine": "new", "chapters": [{"chapter": stems[1], "seconds": 9.0}]}
    merged = bench.merge_records(old, new)
    assert merged["machine"] == "new"
    assert merged["book"] == {"seconds": 1.0}
    assert [(r["chapter"], r["seconds"]) for r in merged["chapters"]] == [
        (stems[0], 1.0),
        (stems[1], 9.0),
    ]
