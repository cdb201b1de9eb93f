"""Layer-analysis findings over more seeds than the chapter can afford.

Runs the comparisons of chapter 6 ("Layer analysis") for several seeds: every
seed simulates its own cohorts (2D, the tutorial preset, the chapter's sizes),
trains its own models and reads them on its own probe set. Per seed:

- four networks on the morphological probe set: an **untrained** network (the
  initial weights of the seed), a model trained on the **biased** cohort
  (bias effect in 70 % of the diseased and 30 % of the controls), one trained on
  the **same subjects without the bias effect** (their counterfactual twins:
  SimBA's baseline) and one trained on a **50/50** cohort (bias in half of each
  class);
- the ShorT family: models trained on the biased cohort with an unlearning
  attribute head of growing strength (``lam`` from 0 to -0.4);
- an **intensity** bias: an untrained network and a model trained on an
  intensity-biased cohort, read on an intensity probe set.

Files written to ``results/``:

``layer_probes.csv``
    held-out probe AUROC per (study, model, seed, layer, target);
``layer_twin_sensitivity.csv``
    ``||f(x) - f(twin)|| / ||f(x)||`` per (study, model, seed, layer);
``layer_disease_shift.csv``
    the shift that the bias effect alone causes along the disease direction,
    per (study, model, seed, layer);
``layer_models.csv``
    AUROC, subgroup gaps and counterfactual flip rate of every trained model on
    its probe set;
``layer_short.csv``
    one row per ShorT model: ``lam``, encoding of the bias group, gaps;
``layer_findings.json``
    settings, versions, machine and wall time.

Every seed of every study is cached on disk (see :mod:`faimi_tutorial.experiments.sweeps`),
so an interrupted run resumes where it stopped.

Usage::

    python scripts/layer_findings.py [--seeds 5] [--n-subjects 1500] [--only core short intensity]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

import faimi_tutorial as ft
from faimi_tutorial import probing, sweeps

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("core", "short", "intensity")
#: Unlearning strengths of the ShorT family (lam = 0 is plain training).
LAMBDAS = (0.0, -0.1, -0.2, -0.3, -0.4)
#: Training settings shared with the chapter.
TRAIN = {"epochs": 10, "patience": 3}
PROBE = probing.ProbeConfig(n_folds=3, n_boot=200)
#: Modules whose code decides the numbers (the cache key hashes their source).
COMPUTING = ("anatomy", "simulate", "presets", "models", "training", "probing", "metrics", "sweeps")
TABLES = ("probes", "sensitivity", "shift", "models", "short")
FILES = {
    "probes": "layer_probes.csv",
    "sensitivity": "layer_twin_sensitivity.csv",
    "shift": "layer_disease_shift.csv",
    "models": "layer_models.csv",
    "short": "layer_short.csv",
}


def simulate(preset: str, n_subjects: int, seed: int, **settings: Any) -> Any:
    """One 2D cohort of the chapter's design.

    Parameters
    ----------
    preset : str
        Simulator preset.
    n_subjects : int
        Subjects.
    seed : int
        Seed of the cohort.
    **settings
        Other fields of :class:`faimi_tutorial.data.simulate.SimulationConfig`.

    Returns
    -------
    Cohort
    """
    cfg = ft.simulate.SimulationConfig.preset(preset, dims=2, n_subjects=n_subjects, seed=seed, **settings)
    return ft.simulate.generate(cfg, progress=False)


def code_version() -> str:
    """Hash of the package's source: a cached seed is reused only by the same code.

    Returns
    -------
    str
    """
    package = Path(ft.__file__).parent
    return sweeps.config_hash([(package / f"{name}.py").read_text() for name in COMPUTING])


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))


def _gaps(name: str, model: Any, probe_set: Any, seed: int, study: str) -> dict[str, Any]:
    row = sweeps.evaluate(model, probe_set)
    keep = ("AUROC", "accuracy", "TPR_gap", "FPR_gap", "flip_rate", "mean_abs_change")
    return {"study": study, "model": name, "seed": seed, "best_epoch": int(model.best_epoch),
            **{k: row.get(k) for k in keep}}


def run_seed(study: str, seed: int, preset: str, n_subjects: int, n_probe: int) -> dict[str, list]:
    """All measurements of one study for one seed.

    Parameters
    ----------
    study : str
        ``"core"``, ``"short"`` or ``"intensity"``.
    seed : int
        Training seed; the cohorts use ``1 + seed`` and the probe set ``101 + seed``.
    preset : str
        Preset of simulation and training.
    n_subjects, n_probe : int
        Subjects per training cohort and in the probe set.

    Returns
    -------
    dict of str to list of dict
        Rows per table name (:data:`TABLES`).
    """
    kind = {"bias_kind": "intensity"} if study == "intensity" else {}
    biased = simulate(preset, n_subjects, 1 + seed, bias_prevalence=(0.7, 0.3), **kind)
    probe_set = simulate(preset, n_probe, 101 + seed, bias_prevalence=(0.5, 0.5), **kind)
    out: dict[str, list] = {name: [] for name in TABLES}

    def fit(cohort: Any) -> Any:
        return ft.training.fit(cohort, preset, seed=seed, progress=False, **TRAIN)

    if study in ("core", "intensity"):
        models: dict[str, Any] = {"untrained": probing.untrained_model(biased, preset, seed=seed, **TRAIN)}
        if study == "core":
            models["without the bias effect"] = fit(biased.with_twins())
            models["50/50"] = fit(simulate(preset, n_subjects, 1 + seed, bias_prevalence=(0.5, 0.5)))
            models["biased (70/30)"] = fit(biased)
        else:
            models["intensity (70/30)"] = fit(biased)
        report = probing.layer_report(models, probe_set, config=PROBE, seed=seed)
        for name in ("probes", "sensitivity", "shift"):
            out[name] = _records(report[name].assign(study=study, seed=seed))
        out["models"] = [_gaps(name, m, probe_set, seed, study) for name, m in models.items()
                         if name != "untrained"]
    if study == "short":
        for lam in LAMBDAS:
            if lam == 0.0:  # the head's gradient is blocked: plain training
                model = fit(biased)
            else:
                model = probing.fit_attribute_head(biased, preset, lam=lam, seed=seed, progress=False, **TRAIN)
            row = probing.short_evaluate(model, probe_set, lam=lam, probe_config=PROBE)
            out["short"].append({"study": study, **row})
    return out


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
    parser.add_argument("--n-subjects", type=int, default=1500)
    parser.add_argument("--n-probe", type=int, default=800)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=STUDIES, default=list(STUDIES))
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    args.out.mkdir(parents=True, exist_ok=True)
    cache = sweeps.ResultCache()
    start = time.perf_counter()
    tables: dict[str, list] = {name: [] for name in TABLES}
    code = code_version()
    for study in args.only:
        for seed in range(args.seeds):
            key = {"script": "layer_findings", "code": code, "study": study, "seed": seed,
                   "preset": args.preset, "n_subjects": args.n_subjects, "n_probe": args.n_probe,
                   "lambdas": LAMBDAS, "train": TRAIN, "probe": PROBE.to_dict(),
                   "simulation": sweeps.simulation_settings(args.preset, {"dims": 2}, 0)}
            t0 = time.perf_counter()
            record = sweeps.cached(key, lambda: run_seed(study, seed, args.preset, args.n_subjects,
                                                         args.n_probe), cache)
            for name in TABLES:
                tables[name] += record.get(name, [])
            print(f"{study} seed {seed}: {time.perf_counter() - t0:.0f} s"
                  f"{' (cached)' if record.get('cached') else ''}", flush=True)
    written = []
    for name, rows in tables.items():
        if rows:
            path = args.out / FILES[name]
            frame = pd.DataFrame(rows)
            first = [c for c in ("study", "model", "seed", "lam", "layer", "depth", "target") if c in frame]
            frame = frame[first + [c for c in frame.columns if c not in first]]
            if path.exists():  # keep the other studies' rows of an earlier call
                old = pd.read_csv(path)
                frame = pd.concat([old[~old["study"].isin(args.only)], frame], ignore_index=True)
            frame.to_csv(path, index=False)
            written.append(FILES[name])
    meta_path = args.out / "layer_findings.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.setdefault("studies", {})
    for study in args.only:
        meta["studies"][study] = {
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds_of_the_call": time.perf_counter() - start,
            "preset": args.preset, "n_subjects": args.n_subjects, "n_probe": args.n_probe,
            "seeds": list(range(args.seeds)), "training": TRAIN, "probe": PROBE.to_dict(),
            "lambdas": list(LAMBDAS) if study == "short" else None,
            "device": str(ft.choose_device()),
        }
    meta.update(script="scripts/layer_findings.py", machine=ft.runtime.machine())
    meta_path.write_text(json.dumps(meta, indent=2))
    print(f"wrote {', '.join(written)} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
