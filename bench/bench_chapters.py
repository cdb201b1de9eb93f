"""Benchmark: wall time and peak memory of executing each chapter, and of the whole book.

Each chapter is executed from scratch in a fresh kernel with an empty results cache, one
at a time, the way ``make test`` builds the book; the peak resident memory of the kernel process is read from the operating
system after the kernel exits. Results go to ``bench/results/chapters.json``.

Usage::

    python bench/bench_chapters.py [--book] [--only 01_measuring_fairness ...]

``--book`` also times a full ``jupyter-book build`` into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faimi_tutorial as ft

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BUDGET_CHAPTER_S = 300.0
BUDGET_BOOK_S = 1200.0
BUDGET_MEMORY_MB = 4096.0

_RUNNER = r"""
import json, os, resource, sys, time
import nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
start = time.perf_counter()
NotebookClient(nb, timeout=600, kernel_name="python3",
               resources={"metadata": {"path": os.path.dirname(path)}}).execute()
seconds = time.perf_counter() - start
# ru_maxrss of waited-for children: the kernel process (kilobytes on Linux)
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_memory_mb": peak_kb / 1024}))
"""


def chapters() -> list[Path]:
    """Chapters in table-of-contents order (falls back to file order).

    Returns
    -------
    list of pathlib.Path
    """
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if str(node.get("file", "")).startswith("notebooks/"):
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return [ROOT / f"{f}.ipynb" for f in files]


def run_chapter(path: Path) -> dict:
    """Execute one chapter in a fresh kernel; return seconds and peak memory.

    Parameters
    ----------
    path : pathlib.Path
        The notebook.

    Returns
    -------
    dict
        ``chapter``, ``seconds``, ``peak_memory_mb``, ``within_budget``.
    """
    with tempfile.TemporaryDirectory() as cache:  # a fresh results cache: every run trains
        out = subprocess.run(
            [sys.executable, "-c", _RUNNER, str(path)], capture_output=True, text=True, check=False,
            env={**os.environ, "FAIMI_CACHE_DIR": cache},
        )
    if out.returncode != 0:
        return {"chapter": path.stem, "error": out.stderr.strip().splitlines()[-1:]}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["chapter"] = path.stem
    res["within_budget"] = bool(
        res["seconds"] <= BUDGET_CHAPTER_S and res["peak_memory_mb"] <= BUDGET_MEMORY_MB
    )
    return res


def time_book() -> dict:
    """Time a full strict ``jupyter-book build`` into a temporary folder.

    Returns
    -------
    dict
        ``seconds``, ``returncode``, ``within_budget``.
    """
    jb = Path(sys.executable).with_name("jupyter-book")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run(
            [str(jb), "build", str(ROOT), "--path-output", tmp, "--builder", "html"],
            capture_output=True, text=True, check=False,
            env={**os.environ, "FAIMI_CACHE_DIR": str(Path(tmp) / "cache")},
        )
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "returncode": proc.returncode,
            "within_budget": bool(proc.returncode == 0 and seconds <= BUDGET_BOOK_S)}


def merge_records(old: dict, new: dict) -> dict:
    """The old record with the new run's chapters replacing theirs.

    Chapters whose notebook no longer exists are dropped; the order is the book's.
    """
    names = [p.stem for p in chapters()]
    rows = {r["chapter"]: r for r in old.get("chapters", []) if r["chapter"] in names}
    rows.update({r["chapter"]: r for r in new["chapters"]})
    merged = {**old, **{k: v for k, v in new.items() if k != "chapters"}}
    merged["chapters"] = [rows[n] for n in names if n in rows]
    return merged


def main(argv: list[str] | None = None) -> int:
    """Run the chapter benchmark and write ``bench/results/chapters.json``.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        0 when every measured item is within budget, else 1.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book", action="store_true", help="also time the whole book build")
    parser.add_argument("--only", nargs="*", help="chapter names (stems) to run")
    args = parser.parse_args(argv)
    todo = [p for p in chapters() if not args.only or p.stem in args.only]
    results = {
        "machine": ft.runtime.machine(),
        "budgets": {"chapter_seconds": BUDGET_CHAPTER_S, "book_seconds": BUDGET_BOOK_S,
                    "peak_memory_mb": BUDGET_MEMORY_MB},
        "chapters": [],
    }
    from tqdm import tqdm

    for path in tqdm(todo, desc="chapters", unit="chapter"):
        results["chapters"].append(run_chapter(path))
    if args.only and (RESULTS / "chapters.json").exists():
        # a partial run updates its chapters and keeps the other chapters' records
        results = merge_records(json.loads((RESULTS / "chapters.json").read_text()), results)
    if args.book:
        results["book"] = time_book()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "chapters.json").write_text(json.dumps(results, indent=2))
    ok = all(c.get("within_budget") for c in results["chapters"])
    if "book" in results:
        ok = ok and results["book"]["within_budget"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
