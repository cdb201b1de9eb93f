"""Generalisation findings at more seeds than the chapter can afford.

Runs the study of chapter 9 ("Generalisation") with the chapter's settings
(:meth:`faimi_tutorial.experiments.generalisation.GeneralisationSettings.for_preset`,
``tutorial``) for five seeds (by default) and writes to ``results/``:

``results/generalisation_runs.csv``
    one row per (experiment, model, test set, bias group, seed): ``n``,
    ``AUROC``, ``TPR``, ``FPR``, ``ECE`` (group ``all`` is everyone);
``results/generalisation_flips.csv``
    the counterfactual flip table of the shifted-bias test sets, per label x
    bias-group cell and seed;
``results/generalisation_swaps.csv``
    the more-data models' decisions on ``site-A``'s test subjects rendered by
    ``site-E``'s scanner against their own (flip rates per label and seed);
``results/generalisation_findings.json``
    the settings, device and wall time of the run.

Runs finished before (by the chapter or an earlier call) are read from the
experiment cache (``$FAIMI_CACHE_DIR``); ``--fresh`` recomputes them.

Usage::

    python scripts/generalisation_findings.py [--seeds 5] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

import faimi_tutorial as ft
from faimi_tutorial import generalisation as gen

ROOT = Path(__file__).resolve().parents[1]
PRESET = "tutorial"


def main(argv: list[str] | None = None) -> int:
    """Run the study for several seeds and write the results files.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        Exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--fresh", action="store_true", help="ignore cached runs")
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds} is invalid; allowed: an integer >= 1")
    warnings.simplefilter("ignore")
    args.out.mkdir(parents=True, exist_ok=True)
    settings = gen.GeneralisationSettings.for_preset(PRESET)
    start = time.perf_counter()
    runs = []
    for seed in range(args.seeds):
        runs.append(gen.run_seed(settings, seed, refresh=args.fresh))
        print(f"seed {seed}: {runs[-1]['seconds']:.0f} s"
              f"{' (cached)' if runs[-1]['cached'] else ''}", flush=True)
    metrics = pd.concat([r["metrics"] for r in runs], ignore_index=True)
    flips = pd.concat([r["flips"] for r in runs], ignore_index=True)
    metrics.to_csv(args.out / "generalisation_runs.csv", index=False)
    flips.to_csv(args.out / "generalisation_flips.csv", index=False)
    swaps = pd.concat([r["swaps"] for r in runs], ignore_index=True)
    swaps.to_csv(args.out / "generalisation_swaps.csv", index=False)
    meta = {
        "script": "scripts/generalisation_findings.py",
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - start,
        "compute_seconds_per_seed": [r["seconds"] for r in runs],
        "cached_seeds": [s for s, r in enumerate(runs) if r["cached"]],
        "settings": settings.to_dict(),
        "training": settings.train_config().to_dict(),
        "seeds": list(range(args.seeds)),
        "device": str(ft.choose_device()),
        "machine": ft.runtime.machine(),
    }
    (args.out / "generalisation_findings.json").write_text(
        json.dumps(meta, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
