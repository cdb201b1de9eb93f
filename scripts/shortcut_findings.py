"""Shortcut-learning findings at more seeds than the chapter can afford.

Runs the experiments of chapters 4 and 5 ("Shortcut learning", "Explaining and
mitigating shortcuts") with five seeds (ten for 3D, by default) and writes every run's record to ``results/``:

``results/shortcut_prevalence.csv``
    subgroup gaps and counterfactual flips against the bias prevalence (2D,
    intensity bias, the chapter's settings);
``results/shortcut_reversed.csv``
    the same models tested on fresh cohorts where the bias-label relation is as
    in training (``same``), absent (``none``) or reversed (``reversed``);
``results/shortcut_morphological.csv``
    the prevalence levels with a morphological bias (a deformation of the near
    bias region) instead of the intensity bias;
``results/shortcut_salience.csv``
    the bias's strength varied at 70/30: the intensity bias's contrast factor and
    the shape bias's size in natural SDs (0 = no bias effect, the shared baseline);
``results/shortcut_proximity.csv``
    near (putamen, next to the disease region) against far (occipital lobe) bias
    regions at 70/30, for both kinds of bias, the far bias's strength set so that
    it changes the image by as much as the near one (equal mean squared change);
``results/shortcut_mitigation.csv``
    ERM, reweighing, group-balanced sampling, GroupDRO and unlearning side by side;
``results/shortcut_3d.csv``
    3D volumes (the tutorial preset's region of interest) at 50/50, 70/30 and
    90/10 with the morphological bias, with the same models' gaps on the test
    subjects' counterfactual twins (``TPR_gap_twin``, ``FPR_gap_twin``);
``results/shortcut_3d_fresh.csv``
    the 3D study's 50/50 models (same seeds) tested on fresh cohorts of 2,000
    subjects with the same bias-label relation: what a larger test set says about
    the 50/50 gaps;
``results/shortcut_saliency.csv``
    occlusion attribution shares in the bias and disease regions of the chapter's
    seed-0 baseline (50/50) and biased (70/30) models;
``results/shortcut_findings.json``
    the settings, versions, device and wall time of the run.

Runs are cached on disk (see :mod:`faimi_tutorial.experiments.sweeps`), so an interrupted
run resumes where it stopped; runs shared by two studies are trained once.

Usage::

    python scripts/shortcut_findings.py [--seeds 5] [--seeds-3d 10] [--only prevalence 3d ...]
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
STUDIES = ("prevalence", "morphological", "salience", "proximity", "mitigation", "3d",
           "3d_fresh", "saliency")
PREVALENCES = [(0.5, 0.5), (0.6, 0.4), (0.7, 0.3), (0.8, 0.2), (0.9, 0.1)]
PREVALENCES_3D = [(0.5, 0.5), (0.7, 0.3), (0.9, 0.1)]
#: Strengths of the salience study: contrast factors and shape effects (natural SDs);
#: strength 0 (no bias effect: the same images for both kinds) is run once.
INTENSITY_FACTORS = [1.1, 1.2]
SHAPE_EFFECTS_SD = [0.0, 1.0, 2.0]
FAR_REGION = "right_occipital"


def shift_table(base: sweeps.Experiment, prevalences: list, seeds: list[int],
                n_test: int) -> pd.DataFrame:
    """Train at each prevalence and seed; test on same, none and reversed cohorts.

    Returns
    -------
    pandas.DataFrame
        One row per (prevalence, seed, shift), ``value`` naming the prevalence.
    """
    rows = []
    for seed in seeds:
        for prevalence in prevalences:
            exp = base.replace(seed=seed, simulation={"bias_prevalence": prevalence})
            for row in sweeps.run_with_shift(exp, n_test=n_test):
                rows.append({"value": sweeps.setting_label(prevalence), **row})
            same = rows[-3]
            print(f"{base.simulation.get('bias_kind')} {same['value']} seed {seed}: AUROC "
                  f"{same['AUROC']:.3f}, TPR gap {same['TPR_gap']:.3f}", flush=True)
    return pd.DataFrame(rows)


def study_salience(base: sweeps.Experiment, seeds: list[int]) -> pd.DataFrame:
    """The bias's strength varied at 70/30, for the intensity and the shape bias."""
    biased = base.replace(simulation={"bias_prevalence": (0.7, 0.3)})
    frames = []
    for kind, field, levels in [("intensity", "intensity_factor", INTENSITY_FACTORS),
                                ("morphological", "bias_effect_sd", SHAPE_EFFECTS_SD)]:
        exp = biased.replace(simulation={"bias_kind": kind})
        table = sweeps.sweep(exp, field, levels, seeds, progress=False)
        table["bias_kind"] = kind
        table["strength"] = [float(v) - (1.0 if kind == "intensity" else 0.0)
                             for v in table["value"].astype(float)]
        frames.append(table)
    # no bias effect at all is the same data whatever the kind: share those runs
    none = frames[1][frames[1]["strength"] == 0.0].assign(bias_kind="intensity")
    frames.insert(0, none)
    return pd.concat(frames, ignore_index=True)


def study_proximity(base: sweeps.Experiment, seeds: list[int]) -> pd.DataFrame:
    """Near against far bias regions at matched image change, both kinds of bias."""
    biased = base.replace(simulation={"bias_prevalence": (0.7, 0.3)})
    frames = []
    for kind in ("intensity", "morphological"):
        near = biased.replace(simulation={"bias_kind": kind})
        near_cfg = ft.simulate.SimulationConfig.preset(near.preset, **near.simulation)
        far_cfg = ft.simulate.match_bias_energy(near_cfg.replace(bias_region=FAR_REGION),
                                                near_cfg)
        strength = ("intensity_factor" if kind == "intensity" else "bias_effect_sd")
        far = near.replace(simulation={"bias_region": FAR_REGION,
                                       strength: getattr(far_cfg, strength)})
        energy = {"near": ft.simulate.bias_energy(near_cfg),
                  "far": ft.simulate.bias_energy(far_cfg)}
        for name, exp in (("near", near), ("far", far)):
            table = sweeps.run_all([exp.replace(seed=s) for s in seeds], progress=False)
            table.insert(0, "region", name)
            table["bias_kind"] = kind
            table["bias_region"] = FAR_REGION if name == "far" else near_cfg.bias.name
            table["bias_strength"] = getattr(far_cfg if name == "far" else near_cfg, strength)
            table["bias_energy"] = energy[name]
            frames.append(table)
            print(f"proximity {kind} {name}: TPR gap {table['TPR_gap'].mean():.3f}", flush=True)
    return pd.concat(frames, ignore_index=True)


def study_3d(preset: str, seeds: list[int], n_subjects: int | None) -> pd.DataFrame:
    """The tutorial preset's 3D region of interest at three prevalences."""
    sim = {"dims": 3}
    if n_subjects:
        sim["n_subjects"] = n_subjects
    base = sweeps.Experiment(preset=preset, simulation=sim)
    rows = []
    for seed in seeds:
        for prevalence in PREVALENCES_3D:
            record = sweeps.run_experiment(
                base.replace(seed=seed, simulation={"bias_prevalence": prevalence}))
            record["value"] = sweeps.setting_label(prevalence)
            # the same model on the twins: the part of each gap the bias does not cause
            record.update(sweeps.twin_gaps(record))
            rows.append(record)
            print(f"3d {record['value']} seed {seed}: AUROC {record['AUROC']:.3f} (epoch "
                  f"{record['best_epoch']}), TPR gap {record['TPR_gap']:.3f}, FPR gap "
                  f"{record['FPR_gap']:.3f}, {record['train_seconds']:.0f} s", flush=True)
    return pd.DataFrame(rows)


def study_3d_fresh(preset: str, seeds: list[int], n_subjects: int | None,
                   n_test: int) -> pd.DataFrame:
    """The 3D study's 50/50 models tested on fresh, larger cohorts (same relation).

    The same experiments as :func:`study_3d` at 50/50 (same seeds, so the same
    models), each tested on ``n_test`` new subjects instead of its 400-subject test
    split: how much of a 50/50 gap is the test sample.
    """
    sim = {"dims": 3, "bias_prevalence": (0.5, 0.5)}
    if n_subjects:
        sim["n_subjects"] = n_subjects
    rows = []
    for seed in seeds:
        exp = sweeps.Experiment(preset=preset, seed=seed, simulation=sim)
        for row in sweeps.run_with_shift(exp, n_test=n_test, shifts=("same",)):
            rows.append({"value": "50/50", **row})
        print(f"3d fresh 50/50 seed {seed}: TPR gap {rows[-1]['TPR_gap']:.3f}, FPR gap "
              f"{rows[-1]['FPR_gap']:.3f} on {n_test} subjects", flush=True)
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
        Rows of :func:`faimi_tutorial.experiments.explain.attribution_by_group` with a ``model``
        column and ``chance`` (the region's share of the brain).
    """
    frames = []
    cohort = None
    for name, prevalence in [("baseline 50/50", (0.5, 0.5)), ("biased 70/30", (0.7, 0.3))]:
        _, result, data = sweeps.run_experiment(
            base.replace(simulation={"bias_prevalence": prevalence}), return_model=True)
        cohort = data if prevalence == (0.7, 0.3) else cohort
        frames.append((name, result))
    masks = ft.explain.region_masks({"disease": cohort.config.disease,
                                     "bias": cohort.config.bias}, grid=cohort.grid)
    chance = ft.explain.chance_share(masks, within=ft.anatomy.brain_mask(cohort.grid))
    out = []
    for name, result in frames:
        table = ft.explain.attribution_by_group(result, cohort.test, masks, method="occlusion",
                                                max_per_cell=25, mask_size=6, overlap=0.5)
        out.append(table.assign(model=name, method="occlusion",
                                chance=table["region"].map(chance)))
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
    parser.add_argument("--n-subjects", type=int, default=None,
                        help="2D subjects per cohort (default: the chapter's)")
    parser.add_argument("--n-test", type=int, default=600,
                        help="subjects per shifted test cohort")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seeds-3d", type=int, default=10,
                        help="seeds of the 3D study (its 400-subject test sets are noisier)")
    parser.add_argument("--only", nargs="+", choices=STUDIES, default=list(STUDIES))
    parser.add_argument("--n-test-3d", type=int, default=2000,
                        help="subjects per fresh 3D test cohort (study 3d_fresh)")
    parser.add_argument("--n-subjects-3d", type=int, default=None,
                        help="3D subjects per cohort (default: the preset's)")
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    args.out.mkdir(parents=True, exist_ok=True)
    simulation = dict(sweeps.SHORTCUT_SETTINGS["simulation"])
    if args.n_subjects:
        simulation["n_subjects"] = args.n_subjects
    training = dict(sweeps.SHORTCUT_SETTINGS["training"])
    base = sweeps.Experiment(preset=args.preset, simulation=simulation, training=training)
    morph = base.replace(simulation={"bias_kind": "morphological"})
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    written = []

    def write(name: str, table: pd.DataFrame) -> None:
        table.to_csv(args.out / name, index=False)
        written.append(name)
        print(f"wrote {name} ({len(table)} rows, {time.perf_counter() - start:.0f} s)",
              flush=True)

    if "prevalence" in args.only:
        table = shift_table(base, PREVALENCES, seeds, args.n_test)
        write("shortcut_prevalence.csv", table[table["shift"] == "same"].drop(columns="shift"))
        write("shortcut_reversed.csv", table)
    if "morphological" in args.only:
        table = shift_table(morph, [(0.5, 0.5), (0.7, 0.3), (0.9, 0.1)], seeds, args.n_test)
        write("shortcut_morphological.csv", table)
    if "salience" in args.only:
        write("shortcut_salience.csv", study_salience(base, seeds))
    if "proximity" in args.only:
        write("shortcut_proximity.csv", study_proximity(base, seeds))
    if "3d" in args.only:
        write("shortcut_3d.csv", study_3d(args.preset, list(range(args.seeds_3d)),
                                          args.n_subjects_3d))
    if "3d_fresh" in args.only:
        write("shortcut_3d_fresh.csv",
              study_3d_fresh(args.preset, list(range(args.seeds_3d)), args.n_subjects_3d,
                             args.n_test_3d))
    if "mitigation" in args.only:
        biased = base.replace(simulation={"bias_prevalence": (0.7, 0.3)})
        write("shortcut_mitigation.csv",
              sweeps.sweep(biased, "mitigation", list(ft.training.MITIGATIONS), seeds,
                           progress=False))
    if "saliency" in args.only:
        chapter = sweeps.Experiment(preset=args.preset, **sweeps.SHORTCUT_SETTINGS)
        write("shortcut_saliency.csv", study_saliency(chapter))
    path = args.out / "shortcut_findings.json"
    meta = json.loads(path.read_text()) if path.exists() else {}
    meta.setdefault("studies", {})
    for name in written:
        meta["studies"][name] = {
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds_of_the_call": time.perf_counter() - start,
            "preset": args.preset,
            "simulation": {"dims": 3, "n_subjects": args.n_subjects_3d or "preset"}
            if name in ("shortcut_3d.csv", "shortcut_3d_fresh.csv") else
            {**simulation, "bias_kind": "morphological"}
            if name == "shortcut_morphological.csv" else simulation,
            "training": "preset (3D)" if name.startswith("shortcut_3d") else training,
            "seeds": [0] if name == "shortcut_saliency.csv" else
            list(range(args.seeds_3d)) if name.startswith("shortcut_3d") else seeds,
            "n_test_shifted": args.n_test_3d if name == "shortcut_3d_fresh.csv" else args.n_test,
            "device": str(ft.choose_device()),
        }
    meta.update(script="scripts/shortcut_findings.py", machine=ft.runtime.machine())
    meta.pop("versions", None)
    path.write_text(json.dumps(meta, indent=2))
    print(f"wrote {', '.join(written)} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
