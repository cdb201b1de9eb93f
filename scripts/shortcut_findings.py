"""Shortcut-learning findings at a larger scale than the chapter can afford.

Runs the experiments of chapter 3 ("Shortcut learning") with more simulated
subjects and more seeds, and writes every run's record to ``results/``:

``results/shortcut_prevalence.csv``
    subgroup gaps and counterfactual flips against the bias prevalence;
``results/shortcut_mitigation.csv``
    ERM, reweighing, group-balanced sampling, GroupDRO and unlearning side by side;
``results/shortcut_morphological.csv``
    the same prevalence levels with a morphological bias at the simulator's
    default strength (the bias a one-minute model hardly picks up);
``results/shortcut_findings.json``
    the settings, versions, device and wall time of the run.

The chapter reads these files where a finding does not show at its own scale.
Runs are cached on disk (see :mod:`faimi_tutorial.sweeps`), so an interrupted
run resumes where it stopped.

Usage::

    python scripts/shortcut_findings.py [--n-subjects 2000] [--seeds 5] [--only prevalence mitigation morphological]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import faimi_tutorial as ft
from faimi_tutorial import sweeps

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("prevalence", "mitigation", "morphological")
PREVALENCES = [(0.5, 0.5), (0.6, 0.4), (0.7, 0.3), (0.8, 0.2), (0.9, 0.1)]


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
    meta = {
        "script": "scripts/shortcut_findings.py",
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - start,
        "preset": args.preset,
        "simulation": simulation,
        "training": training,
        "seeds": seeds,
        "device": str(ft.choose_device()),
        "versions": ft.runtime.versions(),
        "files": written,
    }
    previous = args.out / "shortcut_findings.json"
    if previous.exists():
        old = json.loads(previous.read_text())
        meta["files"] = sorted(set(old.get("files", [])) | set(written))
    previous.write_text(json.dumps(meta, indent=2))
    print(f"wrote {', '.join(written)} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
