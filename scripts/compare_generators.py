"""Does the simulator still generate the same cohorts as another revision of it?

Generates a few cohorts (3D and 2D, several bias kinds, with their counterfactual
twins) with this checkout's :func:`faimi_tutorial.data.simulate.generate` and with
the generator of a git revision (``--against``, default ``main``), in one process, on
the CPU, and reports per cohort:

- the largest absolute difference of the images and of the twins, relative to the
  image range (the generator's images lie in [0, 1]);
- the ``participants`` columns that differ (labels, groups, splits, coefficients and
  speeds are expected to be equal; the region volumes, measured on the warped
  masks, to float32 rounding);
- the largest relative difference of the effect calibration.

It exits with status 1 when an image differs by more than ``--tolerance`` or a column
other than the region volumes differs. Use it before and after changing the generator's
arithmetic; the book's results stay the same while the images do. Run::

    python scripts/compare_generators.py [--against main] [--full] [--tolerance 1e-4]

``--full`` adds the full 2 mm grid (slow with older revisions: their calibration
runs the 3D ``grid_sample`` path on 200 subjects).
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: name -> (preset, overrides): small cohorts that cover the generator's branches
COHORTS: dict[str, tuple[str, dict]] = {
    "tutorial_3d_crop": ("tutorial", {"n_subjects": 16, "seed": 0}),
    "tutorial_3d_full": ("tutorial", {"n_subjects": 8, "seed": 0, "crop": ()}),
    "tutorial_3d_both_no_noise": (
        "tutorial",
        {"n_subjects": 12, "seed": 3, "bias_kind": "both", "noise_sd": 0.0},
    ),
    "tutorial_3d_small_effects": (
        "tutorial",
        {
            "n_subjects": 8,
            "seed": 4,
            "crop": (),
            "basis_scale_mm": 1.0,
            "disease_effect_sd": 0.5,
            "bias_effect_sd": 0.5,
        },
    ),
    "tutorial_3d_intensity": (
        "tutorial",
        {"n_subjects": 8, "seed": 5, "bias_kind": "intensity"},
    ),
    "tiny_3d_both_global": (
        "tiny",
        {"n_subjects": 12, "seed": 2, "bias_kind": "both", "intensity_scope": "global"},
    ),
    "tutorial_2d": ("tutorial", {"dims": 2, "n_subjects": 8, "seed": 0}),
    "tiny_2d_intensity": (
        "tiny",
        {"dims": 2, "n_subjects": 10, "seed": 6, "bias_kind": "intensity"},
    ),
}
FULL: dict[str, tuple[str, dict]] = {
    "paper_3d": ("paper", {"n_subjects": 8, "seed": 1})
}


def baseline_package(revision: str, folder: Path) -> str:
    """Extract ``faimi_tutorial`` at ``revision`` as the package ``faimi_baseline``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "faimi_tutorial"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        try:
            tar.extractall(folder, filter="data")
        except TypeError:  # Python without extraction filters
            tar.extractall(folder)  # noqa: S202 - our own repository's archive
    (folder / "faimi_tutorial").rename(folder / "faimi_baseline")
    sys.path.insert(0, str(folder))
    return "faimi_baseline"


def simulate_module(package: str):
    """The package's simulator (``data.simulate``; ``simulate`` in old layouts)."""
    try:
        return importlib.import_module(f"{package}.data.simulate")
    except ModuleNotFoundError:
        return importlib.import_module(f"{package}.simulate")


def compare(new, old) -> dict:
    """Differences between two cohorts generated from the same configuration."""
    rng = float(old.images.max() - old.images.min()) or 1.0
    images = float((new.images - old.images).abs().max()) / rng
    twins = float((new.twins - old.twins).abs().max()) / rng
    volumes = [c for c in old.meta.columns if "_ml" in c]
    differing = [
        c
        for c in old.meta.columns
        if c not in volumes and not new.meta[c].equals(old.meta[c])
    ]
    volume_diff = max(
        (float(np.abs(new.meta[c] - old.meta[c]).max()) for c in volumes), default=0.0
    )
    cal_new = new.meta.attrs["effect_calibration"]
    cal_old = old.meta.attrs["effect_calibration"]
    calibration = max(
        abs(cal_new[k] - cal_old[k]) / max(abs(cal_old[k]), 1e-12) for k in cal_old
    )
    return {
        "images": images,
        "twins": twins,
        "columns_differing": differing,
        "volumes_ml": volume_diff,
        "calibration_rel": calibration,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--against", default="main", help="git revision (default: main)"
    )
    parser.add_argument("--full", action="store_true", help="also the full 2 mm grid")
    parser.add_argument("--only", nargs="*", default=None, help="cohort names")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="largest image difference relative to the image range",
    )
    args = parser.parse_args(argv)
    import torch

    from faimi_tutorial.data import simulate as new

    cohorts = {**COHORTS, **(FULL if args.full else {})}
    if args.only is not None:
        cohorts = {k: v for k, v in cohorts.items() if k in args.only}
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        old = simulate_module(baseline_package(args.against, Path(tmp)))
        print(
            f"this checkout against {args.against} (torch threads: "
            f"{torch.get_num_threads()})"
        )
        for name, (preset, overrides) in cohorts.items():
            result = compare(
                new.generate(
                    new.SimulationConfig.preset(preset, **overrides),
                    progress=False,
                    device="cpu",
                ),
                old.generate(
                    old.SimulationConfig.preset(preset, **overrides),
                    progress=False,
                    device="cpu",
                ),
            )
            bad = max(result["images"], result["twins"]) > args.tolerance or bool(
                result["columns_differing"]
            )
            failed |= bad
            columns = ", ".join(result["columns_differing"]) or "none"
            print(
                f"{name:28s} images {result['images']:.1e} twins "
                f"{result['twins']:.1e} (of the range) | columns differing: {columns}"
                f" | region volumes {result['volumes_ml']:.0e} mL | calibration "
                f"{result['calibration_rel']:.0e} (relative)"
                f"{'  <- over tolerance' if bad else ''}",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
