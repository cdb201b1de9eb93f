"""Federated-training findings at more seeds than the chapter can afford.

Runs the three comparisons of chapter 8 ("Federated training") with its settings
and five seeds (by default) and writes every run to ``results/``:

``results/federated_large.csv``
    four large sites (240 training subjects each, five scanners' worth of rendering):
    local-only, central, FedAvg, FedProx and the travelling model, one row per
    (strategy, seed) with ``auroc``, ``worst_site_auroc``, ``tpr_gap``, ``fpr_gap``,
    ``flip_rate`` (see :func:`faimi_tutorial.experiments.federated.summarise`);
``results/federated_tiny.csv``
    a hundred sites of one or two subjects: local-only, central, FedAvg and the
    travelling model;
``results/federated_scanner.csv``
    two sites whose scanner goes with the disease (80 % vs 20 % diseased in
    training) and the same sites at equal prevalence, central and FedAvg: per-site
    TPR and FPR and, at ``site-B``, the share of decisions that change when its
    subjects are rendered by ``site-A``'s scanner
    (:func:`faimi_tutorial.experiments.federated.scanner_swap_rates`);
``results/federated_findings.json``
    the settings, device and wall time of the run.

Usage::

    python scripts/federated_findings.py [--seeds 5]
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
from faimi_tutorial import federated as fl

ROOT = Path(__file__).resolve().parents[1]
#: The chapter's simulation and training settings (tests/test_findings_scripts.py
#: checks that chapter 8 uses the same).
SIM = dict(dims=2, shape=(48, 48), spacing=4.0, n_subjects=2000)
PRESET = "tutorial"
LARGE = dict(n_sites=4, n_train=240, n_test=60)
TINY = dict(n_sites=100, sizes=(1, 2), n_test=2)
SCANNER = dict(n_train=200, n_test=60)
SCANNER_PREVALENCES = {"80 % vs 20 %": (0.8, 0.2), "50 % vs 50 %": (0.5, 0.5)}


def cohort_for(seed: int) -> ft.simulate.Cohort:
    """The chapter's simulated cohort for one seed (70/30 bias prevalence)."""
    config = ft.simulate.SimulationConfig.preset(PRESET, seed=seed, **SIM)
    return ft.simulate.generate(config, progress=False)


def main(argv: list[str] | None = None) -> int:
    """Run the comparisons and write the results files.

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
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    config = fl.FedConfig.preset(PRESET)
    start = time.perf_counter()
    cohorts = {seed: cohort_for(seed) for seed in seeds}

    def large_sites(seed: int) -> fl.Federation:
        specs = fl.few_large_sites(LARGE["n_sites"], n_train=LARGE["n_train"],
                                   n_test=LARGE["n_test"])
        return fl.make_sites(cohorts[seed], specs, seed=seed)

    def tiny_sites(seed: int) -> fl.Federation:
        specs = fl.many_small_sites(TINY["n_sites"], sizes=TINY["sizes"],
                                    n_test=TINY["n_test"], seed=seed)
        return fl.make_sites(cohorts[seed], specs, seed=seed)

    large = fl.compare(large_sites, fl.STRATEGIES, seeds=seeds, config=config)
    large.to_csv(args.out / "federated_large.csv", index=False)
    print(f"wrote federated_large.csv ({time.perf_counter() - start:.0f} s)", flush=True)
    tiny = fl.compare(tiny_sites, ["local", "central", "fedavg", "travelling"],
                      seeds=seeds, config=config)
    tiny.to_csv(args.out / "federated_tiny.csv", index=False)
    print(f"wrote federated_tiny.csv ({time.perf_counter() - start:.0f} s)", flush=True)
    frames = []
    for label, prevalences in SCANNER_PREVALENCES.items():
        def make(seed: int, prevalences: tuple = prevalences) -> fl.Federation:
            specs = fl.shortcut_sites(prevalences=prevalences, **SCANNER)
            return fl.make_sites(cohorts[seed], specs, seed=seed)

        _, runs = fl.compare(make, ["central", "fedavg"], seeds=seeds, config=config,
                             return_results=True)
        for (strategy, seed), (result, fed) in runs.items():
            rates = fl.scanner_swap_rates(result, fed, swap_site="site-B",
                                          scanner="bright", seed=seed)
            frames.append(rates.assign(prevalence=label, strategy=strategy, seed=seed))
    scanner = pd.concat(frames, ignore_index=True)
    scanner = scanner[["prevalence", "strategy", "seed", "site", "TPR", "FPR",
                       "scanner_flip"]]
    scanner.to_csv(args.out / "federated_scanner.csv", index=False)
    print(f"wrote federated_scanner.csv ({time.perf_counter() - start:.0f} s)", flush=True)
    meta = {
        "script": "scripts/federated_findings.py",
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - start,
        "preset": PRESET,
        "simulation": SIM,
        "training": config.to_dict() if hasattr(config, "to_dict") else str(config),
        "scenarios": {"large": LARGE, "tiny": TINY, "scanner": SCANNER,
                      "scanner_prevalences": SCANNER_PREVALENCES},
        "seeds": seeds,
        "device": str(ft.choose_device()),
        "machine": ft.runtime.machine(),
    }
    (args.out / "federated_findings.json").write_text(json.dumps(meta, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
