"""The shortcut finding at SimBA scale: subgroup gap against bias prevalence, end to end.

For each bias prevalence (share of the bias feature among diseased / healthy
subjects), this script simulates a fresh cohort with counterfactual twins at the
preset's scale (``paper``: 2,000 subjects on the full 2 mm MNI grid, 99 x 117 x 95),
trains the preset's network on it, and evaluates it on the held-out test subjects.
Every step runs on the GPU when there is one (:func:`faimi_tutorial.choose_device`);
the book build never runs this script, it reads its results file.

It writes

``results/paper_prevalence.csv``
    one row per (prevalence, seed): subgroup metrics, the TPR and FPR gaps (bias
    group minus the rest) with 95 % bootstrap intervals over test subjects, the
    counterfactual flip rate, and the seconds spent generating and training;
``results/paper_findings.json``
    the command line, settings, machine (device, GPU name, versions), the
    seconds of each stage and of the whole run, and whether the run stayed within
    the time budget.

Usage (the measured command is recorded in ``results/paper_findings.json``)::

    python scripts/paper_findings.py                       # paper preset, GPU
    python scripts/paper_findings.py --preset tiny --out paper-smoke   # seconds on a CPU

Runs are cached on disk (:mod:`faimi_tutorial.experiments.sweeps`): a second call with the
same settings reads the records instead of training again; ``--refresh`` retrains.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

import faimi_tutorial as ft
from faimi_tutorial import presets, sweeps

ROOT = Path(__file__).resolve().parents[1]
#: Time budget of the whole run of the paper preset on one H100 (seconds).
BUDGET_SECONDS = 600.0
#: Share of the bias feature among the diseased; among the healthy it is one minus this.
PREVALENCES = (0.5, 0.7, 0.9)


def gap_intervals(scores: pd.DataFrame, threshold: float, n_boot: int, seed: int) -> dict[str, float]:
    """TPR and FPR gaps (bias group minus the other) with bootstrap intervals.

    Parameters
    ----------
    scores : pandas.DataFrame
        Columns ``label``, ``bias_group`` (0/1) and ``score`` of the test subjects.
    threshold : float
        Global decision threshold.
    n_boot : int
        Bootstrap replicates (stratified by group).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    dict
        ``TPR_gap``, ``TPR_gap_low``, ``TPR_gap_high`` and the same for ``FPR``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = ft.metrics.subgroup_report(
            scores["label"].to_numpy(), scores["score"].to_numpy(), scores["bias_group"].to_numpy(),
            threshold=threshold, n_boot=n_boot, seed=seed,
        )
    out = {}
    for metric in ("TPR", "FPR"):
        row = report.gaps.loc[metric]
        out[f"{metric}_gap"] = float(row["contrast"])
        out[f"{metric}_gap_low"] = float(row["contrast_low"])
        out[f"{metric}_gap_high"] = float(row["contrast_high"])
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring).

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    argparse.Namespace
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=presets.PRESET_NAMES)
    parser.add_argument("--dims", type=int, default=3, choices=(2, 3))
    parser.add_argument("--n-subjects", type=int, default=None,
                        help="subjects per cohort (default: the preset's, 2,000 for paper)")
    parser.add_argument("--prevalences", type=float, nargs="+", default=list(PREVALENCES),
                        help="bias share among the diseased, each in [0.5, 1)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per prevalence (cohort and model)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the preset's)")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--refresh", action="store_true", help="train again even when a record is cached")
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    if args.n_subjects is not None and args.n_subjects < 20:
        parser.error(f"--n-subjects={args.n_subjects} is too small (at least 20)")
    if args.seeds < 1:
        parser.error(f"--seeds={args.seeds} must be at least 1")
    bad = [p for p in args.prevalences if not 0.5 <= p < 1.0]
    if bad:
        parser.error(f"--prevalences {bad} must each lie in [0.5, 1)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every (prevalence, seed), write the results files, print a summary.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        0 when the run finished within :data:`BUDGET_SECONDS` (or is not the paper
        preset), 1 when the paper preset took longer.
    """
    args = parse_args(argv)
    started = time.perf_counter()
    grid = presets.SIMULATION[args.preset][f"grid_{args.dims}d"]
    simulation = {**sweeps.SHORTCUT_SETTINGS["simulation"], "dims": args.dims,
                  "n_subjects": int(args.n_subjects or grid["n_subjects"])}
    training = {} if args.epochs is None else {"epochs": int(args.epochs)}
    base = sweeps.Experiment(preset=args.preset, simulation=simulation, training=training)
    values = [(float(p), round(1.0 - float(p), 6)) for p in args.prevalences]
    table = sweeps.sweep(base, "bias_prevalence", values, list(range(args.seeds)), refresh=args.refresh)
    rows = []
    for record in table.to_dict("records"):
        test = sweeps.load_scores(record)["test"]
        rows.append({**record, **gap_intervals(test, base.threshold, args.n_boot, int(record["seed"]))})
    out = pd.DataFrame(rows)
    keep = ["value", "seed", "n_test", "accuracy", "AUROC", "TPR_g0", "TPR_g1", "FPR_g0", "FPR_g1",
            "TPR_gap", "TPR_gap_low", "TPR_gap_high", "FPR_gap", "FPR_gap_low", "FPR_gap_high",
            "flip_rate", "flip_rate_bias_group", "best_epoch", "epochs_run",
            "generate_seconds", "train_seconds", "cached"]
    out = out[[c for c in keep if c in out.columns]].rename(columns={"value": "bias_prevalence"})
    seconds = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out / "paper_prevalence.csv", index=False)
    cfg = ft.simulate.SimulationConfig.preset(args.preset, **simulation)
    within = bool(seconds <= BUDGET_SECONDS) if args.preset == "paper" else None
    meta = {
        "script": "scripts/paper_findings.py",
        "command": "python scripts/paper_findings.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preset": args.preset,
        "grid": {"shape": list(cfg.shape), "spacing_mm": cfg.spacing},
        "simulation": simulation,
        "training": base.train_config().to_dict(),
        "prevalences": [list(v) for v in values],
        "seeds": list(range(args.seeds)),
        "n_boot": args.n_boot,
        "seconds": {
            "total": seconds,
            "generate": float(np.nansum(out.get("generate_seconds", pd.Series(dtype=float)))),
            "train": float(np.nansum(out.get("train_seconds", pd.Series(dtype=float)))),
        },
        "all_runs_fresh": bool(not out["cached"].any()) if "cached" in out else None,
        "budget_seconds": BUDGET_SECONDS,
        "within_budget": within,
        "machine": ft.runtime.machine(),
    }
    (args.out / "paper_findings.json").write_text(json.dumps(meta, indent=2))
    shown = out[["bias_prevalence", "seed", "AUROC", "TPR_gap", "TPR_gap_low", "TPR_gap_high",
                 "FPR_gap", "flip_rate", "generate_seconds", "train_seconds"]]
    print(shown.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"{seconds:.0f} s in all on {meta['machine']['gpu'] or meta['machine']['device']}; "
          f"wrote paper_prevalence.csv and paper_findings.json to {args.out}")
    return 1 if within is False else 0


if __name__ == "__main__":
    raise SystemExit(main())
