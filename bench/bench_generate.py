"""Benchmark: how fast the simulator generates subjects, next to per-volume baselines.

Measured side by side in one run, on ``$OMP_NUM_THREADS`` CPU threads (default 2; the
same for every method), for three grids (the tutorial 3D grid, the full 2 mm MNI grid
and the tutorial 2D slice):

* ``ours``: :func:`faimi_tutorial.data.simulate.generate` (every subject comes with its
  counterfactual twin; twins of subjects outside the bias group are copies, and a
  biased subject's image differs from its twin's only where the bias can move the
  anatomy, the only part warped again; ``volumes`` counts the distinct images,
  subjects plus the bias group). In 3D on the CPU it works one subject at a time on
  one thread, whatever the thread count (2D: batched torch);
* ``monai``: MONAI's ``Rand3DElastic`` (``Rand2DElastic`` on the 2D
  grid) applied to the template, one volume at a time (random smooth displacement of
  a comparable smoothness, ~8 mm);
* ``scipy``: the same algorithm as ours written per volume with scipy.ndimage
  (scaling and squaring on the coarse grid with ``map_coordinates``, linear
  upsampling of the displacement, one ``map_coordinates`` warp of the template).

Methods run in interleaved rounds and the median rate per method is kept, so that
a busy machine slows all of them alike. It also times the generation of the whole
tutorial cohort (3D, with twins) and of the 2D tutorial cohort.

Results go to ``bench/results/generate.json`` (written atomically). Run::

    OMP_NUM_THREADS=2 python bench/bench_generate.py [--quick] [--cohorts-only]

On a machine that others share, ``OMP_NUM_THREADS=1`` compares the methods on one core
each (threads waiting for a busy core slow every method down, unevenly).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import faimi_tutorial as ft  # noqa: E402
from faimi_tutorial import anatomy, simulate  # noqa: E402

THREADS = int(os.environ["OMP_NUM_THREADS"])  # torch's threads too (default 2)
RESULTS = Path(__file__).resolve().parent / "results" / "generate.json"
TARGET_RATIO_VS_MONAI = 3.0
TARGET_TUTORIAL_COHORT_SECONDS = 30.0


def ours_rate(cfg: simulate.SimulationConfig) -> dict[str, float]:
    """Subjects (each with its twin) and distinct volumes per second."""
    start = time.perf_counter()
    cohort = simulate.generate(cfg, progress=False, device="cpu")
    seconds = time.perf_counter() - start
    n = len(cohort)
    volumes = n + int(cohort.bias_group.sum())
    return {"subjects_per_s": n / seconds, "volumes_per_s": volumes / seconds}


def monai_rate(cfg: simulate.SimulationConfig, n: int) -> float:
    """Volumes per second of MONAI Rand3DElastic (Rand2DElastic in 2D) on the template."""
    from monai.transforms import Rand2DElastic, Rand3DElastic

    template = torch.as_tensor(np.array(anatomy.load_template(cfg.grid)))[None]
    if len(cfg.shape) == 3:
        sigma = (6.0 / cfg.spacing, 10.0 / cfg.spacing)  # ~8 mm smoothness, in voxels
        transform = Rand3DElastic(sigma_range=sigma, magnitude_range=(2.0, 4.0), prob=1.0,
                                  mode="bilinear", padding_mode="zeros")
    else:
        knots = max(2, round(8.0 / cfg.spacing))  # control points ~8 mm apart, in voxels
        transform = Rand2DElastic(spacing=(knots, knots), magnitude_range=(1.0, 2.0), prob=1.0,
                                  mode="bilinear", padding_mode="zeros")
    transform.set_random_state(0)
    transform(template)  # warm-up
    start = time.perf_counter()
    for _ in range(n):
        transform(template)
    return n / (time.perf_counter() - start)


def scipy_rate(cfg: simulate.SimulationConfig, n: int) -> float:
    """Volumes per second of the same algorithm, one volume at a time with scipy."""
    from scipy import ndimage

    grid = cfg.grid
    template = np.array(anatomy.load_template(grid), dtype=np.float32)
    fine = grid.shape
    coarse = simulate._coarse_shape(fine, grid.spacing, cfg.integration_spacing_mm)
    basis = simulate.ShapeBasis.synthetic(grid, cfg.n_basis, cfg.basis_scale_mm, cfg.basis_decay)
    fields = basis.resample(grid, coarse)
    fields = fields * np.sqrt(basis.variances).reshape((-1,) + (1,) * (fields.ndim - 1))
    pts = simulate._points_mm(grid, coarse)
    dims = len(fine)
    disease_mm = simulate.effect_calibration(cfg).disease_mm
    disease = simulate.regional_field(cfg.disease, pts, dims, cfg.support) * disease_mm
    # voxel units of the coarse grid
    coarse_spacing = np.array([grid.spacing * (f - 1) / (c - 1) for f, c in zip(fine, coarse)])
    ident_c = np.stack(np.meshgrid(*[np.arange(c) for c in coarse], indexing="ij")).astype(
        np.float32)
    ident_f = np.stack(np.meshgrid(*[np.arange(f) for f in fine], indexing="ij")).astype(
        np.float32)
    zoom = [(c - 1) / (f - 1) for f, c in zip(fine, coarse)]
    rng = np.random.default_rng(0)

    def one() -> np.ndarray:
        z = rng.standard_normal(len(basis))
        v = np.tensordot(z, fields, axes=1) + rng.standard_normal() * disease
        u = (v / coarse_spacing.reshape((-1,) + (1,) * dims) / 2**cfg.squaring_steps).astype(np.float32)
        for _ in range(cfg.squaring_steps):
            where = ident_c + u
            u = u + np.stack([ndimage.map_coordinates(u[d], where, order=1, mode="nearest")
                              for d in range(dims)])
        # displacement at fine voxels: sample the coarse field at fine positions
        pos = ident_f * np.asarray(zoom, dtype=np.float32).reshape((-1,) + (1,) * dims)
        disp = np.stack([ndimage.map_coordinates(u[d], pos, order=1, mode="nearest")
                         for d in range(dims)])
        disp *= (coarse_spacing / grid.spacing).reshape((-1,) + (1,) * dims).astype(np.float32)
        return ndimage.map_coordinates(template, ident_f + disp, order=1, mode="constant")

    one()
    start = time.perf_counter()
    for _ in range(n):
        one()
    return n / (time.perf_counter() - start)


def bench_grid(name: str, cfg: simulate.SimulationConfig, n_ours: int, n_base: int,
               rounds: int) -> dict:
    runs: dict[str, list[float]] = {"ours_subjects": [], "ours_volumes": [], "monai": [],
                                    "scipy": []}
    ours_cfg = cfg.replace(n_subjects=n_ours)
    simulate.generate(ours_cfg.replace(n_subjects=8), progress=False, device="cpu")  # warm-up
    for r in range(rounds):
        o = ours_rate(ours_cfg.replace(seed=r))
        runs["ours_subjects"].append(o["subjects_per_s"])
        runs["ours_volumes"].append(o["volumes_per_s"])
        runs["monai"].append(monai_rate(cfg, n_base))
        runs["scipy"].append(scipy_rate(cfg, n_base))
        print(f"  {name} round {r + 1}: ours {o['subjects_per_s']:.1f} subjects/s "
              f"({o['volumes_per_s']:.1f} volumes/s), monai {runs['monai'][-1]:.2f}/s, "
              f"scipy {runs['scipy'][-1]:.2f}/s", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {
        "shape": list(cfg.shape),
        "spacing_mm": cfg.spacing,
        "integration_spacing_mm": cfg.integration_spacing_mm,
        "subjects_timed_ours": n_ours,
        "volumes_timed_baselines": n_base,
        "rounds": rounds,
        "ours_subjects_with_twins_per_s": round(med["ours_subjects"], 3),
        "ours_volumes_per_s": round(med["ours_volumes"], 3),
        "monai_transform": "Rand3DElastic" if len(cfg.shape) == 3 else "Rand2DElastic",
        "monai_volumes_per_s": round(med["monai"], 3),
        "scipy_per_volume_volumes_per_s": round(med["scipy"], 3),
        "ratio_vs_monai": round(med["ours_subjects"] / med["monai"], 2),
        "ratio_vs_monai_volumes": round(med["ours_volumes"] / med["monai"], 2),
        "ratio_vs_scipy": round(med["ours_subjects"] / med["scipy"], 2),
        "all_runs": {k: [round(x, 3) for x in v] for k, v in runs.items()},
    }


def cohort_seconds(cfg: simulate.SimulationConfig) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads) to generate a cohort with twins.

    On a shared machine the wall clock depends on the other processes; CPU seconds
    divided by the thread count estimate the wall clock of an otherwise idle machine.
    """
    start, cpu = time.perf_counter(), time.process_time()
    simulate.generate(cfg, progress=False, device="cpu")
    return time.perf_counter() - start, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer subjects and rounds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--cohorts-only", action="store_true",
                        help="only re-time the tutorial cohorts; keep the grid results "
                        "already in --out")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    rounds = 2 if args.quick else 3
    # the whole brain on both grids, as MONAI warps it (training crops it afterwards)
    tutorial = simulate.SimulationConfig.preset("tutorial", seed=0, crop=())
    full = simulate.SimulationConfig.preset("paper", seed=0)
    results: dict = {
        "benchmark": "simulator generation speed",
        "torch_threads": torch.get_num_threads(),
        "machine": ft.runtime.machine(),
        "grids": {},
    }
    if args.cohorts_only:
        previous = json.loads(args.out.read_text())
        results["grids"] = previous["grids"]
        results["machine"]["grids_measured_with"] = previous["machine"]
    else:
        print("tutorial 3D grid", tutorial.shape, flush=True)
        results["grids"]["tutorial_3d"] = bench_grid(
            "tutorial", tutorial, 48 if args.quick else 96, 4 if args.quick else 8, rounds)
        print("full 2 mm grid", full.shape, flush=True)
        results["grids"]["full_2mm"] = bench_grid(
            "2mm", full, 16 if args.quick else 32, 2 if args.quick else 4, rounds)
        slice_2d = simulate.SimulationConfig.preset("tutorial", dims=2, seed=0)
        print("tutorial 2D grid", slice_2d.shape, flush=True)
        results["grids"]["tutorial_2d"] = bench_grid(
            "2D", slice_2d, 500 if args.quick else 1000, 50 if args.quick else 100, rounds)
    print("tutorial cohorts", flush=True)
    runs_3d = [cohort_seconds(tutorial) for _ in range(1 if args.quick else 2)]
    tutorial_2d = simulate.SimulationConfig.preset("tutorial", dims=2, seed=0)
    runs_2d = [cohort_seconds(tutorial_2d) for _ in range(2)]
    best_3d, best_2d = min(runs_3d), min(runs_2d)
    results["tutorial_cohort"] = {
        "n_subjects": tutorial.n_subjects, "shape": list(tutorial.shape), "with_twins": True,
        "seconds": round(best_3d[0], 2), "all_seconds": [round(r[0], 2) for r in runs_3d],
        "cpu_seconds": round(best_3d[1], 2),
        "idle_estimate_seconds": round(best_3d[1] / THREADS, 2),
    }
    results["tutorial_cohort_2d"] = {
        "n_subjects": tutorial_2d.n_subjects, "shape": list(tutorial_2d.shape),
        "with_twins": True, "seconds": round(best_2d[0], 2),
        "images_per_s": round(tutorial_2d.n_subjects / best_2d[0], 1),
        "cpu_seconds": round(best_2d[1], 2),
        "idle_estimate_seconds": round(best_2d[1] / THREADS, 2),
    }
    ratios = [g["ratio_vs_monai"] for g in results["grids"].values()]
    results["targets"] = {
        "ratio_vs_monai_at_least": TARGET_RATIO_VS_MONAI,
        "tutorial_cohort_seconds_at_most": TARGET_TUTORIAL_COHORT_SECONDS,
        "ratio_met": bool(min(ratios) >= TARGET_RATIO_VS_MONAI),
        # the same target on distinct volumes per second (the measure)
        "ratio_volumes_met": bool(
            min(g["ratio_vs_monai_volumes"] for g in results["grids"].values())
            >= TARGET_RATIO_VS_MONAI
        ),
        "cohort_time_met": bool(results["tutorial_cohort"]["seconds"]
                                <= TARGET_TUTORIAL_COHORT_SECONDS),
        "cohort_time_met_idle_estimate": bool(
            results["tutorial_cohort"]["idle_estimate_seconds"]
            <= TARGET_TUTORIAL_COHORT_SECONDS),
    }
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(args.out)
    print(json.dumps({k: results[k] for k in ("targets", "tutorial_cohort",
                                               "tutorial_cohort_2d")}, indent=2))
    for name, g in results["grids"].items():
        print(f"{name}: ours {g['ours_subjects_with_twins_per_s']}/s vs {g['monai_transform']} "
              f"{g['monai_volumes_per_s']}/s (x{g['ratio_vs_monai']}; volumes "
              f"{g['ours_volumes_per_s']}/s, x{g['ratio_vs_monai_volumes']}), "
              f"vs scipy {g['scipy_per_volume_volumes_per_s']}/s (x{g['ratio_vs_scipy']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
