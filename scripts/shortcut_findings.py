"""Shortcut-learning findings at a larger scale than the chapter can afford.

Runs the experiments of chapter 3 ("Shortcut learning") with more simulated
subjects and more seeds, and writes every run's record to ``results/``:

``results/shortcut_prevalence.csv``
    subgroup gaps and counterfactual flips against the bias prevalence;
``results/shortcut_mitigation.csv``
    ERM, reweighing, group-balanced sampling, GroupDRO and unlearning side by side;
``results/shortcut_morphological.csv``
    the same prevalence levels with a morphological bias (a deformation of the
    bias region) at the simulator's default strength instead of the intensity bias;
``results/shortcut_3d.csv``
    baseline (50/50) against biased (70/30) on 3D volumes (the tutorial preset's
    48 x 56 x 48 grid at 4 mm), with the share of SmoothGrad attribution in the
    bias and disease regions per bias group (true positives and negatives);
``results/shortcut_saliency.csv``
    occlusion-sensitivity attribution shares in the bias and disease regions of
    the chapter's own seed-0 baseline (50/50) and biased (70/30) models, per bias
    group and outcome (occlusion is too slow for the chapter's time budget);
``results/shortcut_findings.json``
    the settings, versions, device and wall time of the run.

The chapter reads these files where a finding does not show at its own scale.
Runs are cached on disk (see :mod:`faimi_tutorial.sweeps`), so an interrupted
run resumes where it stopped.

Usage::

    python scripts/shortcut_findings.py [--n-subjects 2000] [--seeds 5] [--only prevalence mitigation morphological 3d]
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
from faimi_tutorial import sweeps

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("prevalence", "mitigation", "morphological", "3d", "saliency")
PREVALENCES = [(0.5, 0.5), (0.6, 0.4), (0.7, 0.3), (0.8, 0.2), (0.9, 0.1)]


def study_3d(base: sweeps.Experiment, n_subjects: int, seeds: list[int]) -> pd.DataFrame:
    """Baseline and biased models on 3D volumes, with attribution shares per region.

    Parameters
    ----------
    base : Experiment
        The 2D experiment whose settings are reused (dims and size are replaced).
    n_subjects : int
        Subjects per cohort.
    seeds : list of int
        Seeds.

    Returns
    -------
    pandas.DataFrame
        One row per (prevalence, seed): the experiment record plus
        ``share_<region>_g<group>`` columns (mean SmoothGrad share over TP and TN).
    """
    rows = []
    for seed in seeds:
        for prevalence in [(0.5, 0.5), (0.7, 0.3)]:
            exp = base.replace(seed=seed, simulation={"dims": 3, "n_subjects": n_subjects,
                                                      "bias_prevalence": prevalence})
            record, result, cohort = sweeps.run_experiment(exp, return_model=True)
            masks = ft.explain.region_masks({"disease": cohort.config.disease, "bias": cohort.config.bias},
                                            grid=cohort.grid)
            shares = ft.explain.attribution_by_group(result, cohort.test, masks, max_per_cell=20, n_samples=8)
            for _, row in shares[shares["outcome"] == "TP+TN"].iterrows():
                record[f"share_{row['region']}_g{int(row['bias_group'])}"] = row["share"]
            chance = ft.explain.chance_share(masks, within=ft.anatomy.brain_mask(cohort.grid))
            for name, value in chance.items():
                record[f"chance_{name}"] = value
            record["value"] = sweeps._label(prevalence)
            rows.append(record)
            print(f"3d seed {seed} {record['value']}: TPR gap {record['TPR_gap']:.3f}, "
                  f"FPR gap {record['FPR_gap']:.3f}, flip rate {record.get('flip_rate', float('nan')):.3f}",
                  flush=True)
    return pd.DataFrame(rows)


def study_saliency(base: sweeps.Experiment) -> pd.DataFrame:
    """Occlusion attribution shares of the chapter's seed-0 baseline and biased models.

    Parameters
    ----------
    base : Experiment
        The chapter's experiment (its settings, at the chapter's scale).

    Returns
    -------
    pandas.DataFrame
        Rows of :func:`faimi_tutorial.explain.attribution_by_group` with a ``model``
        column and ``chance`` (the region's share of the brain).
    """
    frames = []
    cohort = None
    for name, prevalence in [("baseline 50/50", (0.5, 0.5)), ("biased 70/30", (0.7, 0.3))]:
        _, result, data = sweeps.run_experiment(base.replace(simulation={"bias_prevalence": prevalence}),
                                                return_model=True)
        cohort = data if prevalence == (0.7, 0.3) else cohort
        frames.append((name, result))
    masks = ft.explain.region_masks({"disease": cohort.config.disease, "bias": cohort.config.bias}, grid=cohort.grid)
    chance = ft.explain.chance_share(masks, within=ft.anatomy.brain_mask(cohort.grid))
    out = []
    for name, result in frames:
        table = ft.explain.attribution_by_group(result, cohort.test, masks, method="occlusion",
                                                max_per_cell=25, mask_size=6, overlap=0.5)
        out.append(table.assign(model=name, method="occlusion", chance=table["region"].map(chance)))
    return pd.concat(out, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    """Run the studies and write the results files.

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
    parser.add_argument("--preset", default="tutorial")
    parser.add_argument("--n-subjects", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=STUDIES, default=list(STUDIES))
    parser.add_argument("--n-subjects-3d", type=int, default=500)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    args.out.mkdir(parents=True, exist_ok=True)
    simulation = {**sweeps.SHORTCUT_SETTINGS["simulation"], "n_subjects": args.n_subjects}
    training = dict(sweeps.SHORTCUT_SETTINGS["training"])
    base = sweeps.Experiment(preset=args.preset, simulation=simulation, training=training)
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    written = []
    if "prevalence" in args.only:
        table = sweeps.sweep(base, "bias_prevalence", PREVALENCES, seeds)
        table.to_csv(args.out / "shortcut_prevalence.csv", index=False)
        written.append("shortcut_prevalence.csv")
    if "mitigation" in args.only:
        biased = base.replace(simulation={"bias_prevalence": (0.7, 0.3)})
        table = sweeps.sweep(biased, "mitigation", list(ft.training.MITIGATIONS), seeds)
        table.to_csv(args.out / "shortcut_mitigation.csv", index=False)
        written.append("shortcut_mitigation.csv")
    if "morphological" in args.only:
        morph = base.replace(simulation={"bias_kind": "morphological"})
        table = sweeps.sweep(morph, "bias_prevalence", [(0.5, 0.5), (0.7, 0.3), (0.9, 0.1)], seeds)
        table.to_csv(args.out / "shortcut_morphological.csv", index=False)
        written.append("shortcut_morphological.csv")
    if "3d" in args.only:
        table = study_3d(base, args.n_subjects_3d, seeds)
        table.to_csv(args.out / "shortcut_3d.csv", index=False)
        written.append("shortcut_3d.csv")
    if "saliency" in args.only:
        chapter = sweeps.Experiment(preset=args.preset, **sweeps.SHORTCUT_SETTINGS)
        study_saliency(chapter).to_csv(args.out / "shortcut_saliency.csv", index=False)
        written.append("shortcut_saliency.csv")
    path = args.out / "shortcut_findings.json"
    meta = json.loads(path.read_text()) if path.exists() else {}
    meta.setdefault("studies", {})
    for name in written:
        meta["studies"][name] = {
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds_of_the_call": time.perf_counter() - start,
            "preset": args.preset,
            "simulation": sweeps.SHORTCUT_SETTINGS["simulation"] if name == "shortcut_saliency.csv" else simulation,
            "n_subjects_3d": args.n_subjects_3d if name == "shortcut_3d.csv" else None,
            "training": training,
            "seeds": [0] if name == "shortcut_saliency.csv" else seeds,
            "device": str(ft.choose_device()),
        }
    meta.update(script="scripts/shortcut_findings.py", machine=ft.runtime.machine())
    meta.pop("versions", None)  # now inside "machine"
    path.write_text(json.dumps(meta, indent=2))
    print(f"wrote {', '.join(written)} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
