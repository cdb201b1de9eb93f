"""Benchmark: the ``paper`` preset end to end on a GPU (generation, training, evaluation).

Runs ``scripts/paper_findings.py`` (2,000 subjects with twins on the full 2 mm grid per
bias prevalence, the preset's network trained on each) with a fresh results cache, so
every cohort is generated and every model trained in this run, then copies the
stage timings, the machine and the budget verdict into ``bench/results/paper.json``.
The findings themselves go to ``results/`` where the book reads them.

Without a CUDA GPU it prints why it skips and writes nothing (a CPU would need hours).

Usage::

    python bench/bench_paper.py [extra options of scripts/paper_findings.py]
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def load_script():
    """The findings script as a module.

    Returns
    -------
    module
    """
    spec = importlib.util.spec_from_file_location("paper_findings", ROOT / "scripts" / "paper_findings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    """Run the paper preset on the GPU and write ``bench/results/paper.json``.

    Parameters
    ----------
    argv : list of str, optional
        Extra options passed to ``scripts/paper_findings.py``.

    Returns
    -------
    int
        0 when within budget or skipped, 1 when over budget.
    """
    import torch

    argv = list(sys.argv[1:] if argv is None else argv)
    if not torch.cuda.is_available():
        print("bench_paper: skipped, no CUDA GPU here (the paper preset is meant for one)")
        return 0
    script = load_script()
    out = script.parse_args(argv).out  # where the script writes its record (--out)
    previous = os.environ.get("FAIMI_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["FAIMI_CACHE_DIR"] = cache  # fresh: generate and train everything in this run
        try:
            code = script.main(argv)
        finally:
            if previous is None:
                os.environ.pop("FAIMI_CACHE_DIR")
            else:
                os.environ["FAIMI_CACHE_DIR"] = previous
    meta = json.loads((out / "paper_findings.json").read_text())
    RESULTS.mkdir(parents=True, exist_ok=True)
    keep = ("command", "finished", "preset", "grid", "simulation", "prevalences", "seeds", "seconds",
            "budget_seconds", "within_budget", "all_runs_fresh", "machine")
    (RESULTS / "paper.json").write_text(json.dumps({k: meta[k] for k in keep}, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
