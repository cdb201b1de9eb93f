"""Benchmark: training and inference throughput (samples/s) of each preset's model.

For every preset (``tiny``, ``tutorial``, ``paper``) and both image kinds (2D slice
and 3D volume, at the preset's simulation grid), the preset's network is trained on
random images with the preset's batch size for a fixed number of optimiser steps
(after one warm-up step), then run in inference mode. All models are timed in the
same run, one after another, so their ratios compare like with like; the machine's
load average is recorded beside them because other work on the machine slows
every number down.

Results go to ``bench/results/training.json``.

Usage::

    python bench/bench_training.py [--steps 10] [--presets tiny tutorial paper]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch.nn import functional as F

import faimi_tutorial as ft
from faimi_tutorial import models, presets

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def time_model(preset: str, dims: int, steps: int, device: torch.device) -> dict:
    """Train and infer with one preset's model on random data; return throughputs.

    Parameters
    ----------
    preset : str
        Preset name.
    dims : int
        2 or 3.
    steps : int
        Timed optimiser steps.
    device : torch.device
        Where to run.

    Returns
    -------
    dict
        Shape, batch size, parameters, seconds and samples/s for training and inference.
    """
    grid = presets.SIMULATION[preset][f"grid_{dims}d"]["shape"]
    batch = int(presets.TRAINING[preset]["batch_size"])
    in_shape = (1, *grid)
    ft.seed_everything(0)
    model = models.build_model(preset, in_shape=in_shape).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=float(presets.TRAINING[preset]["lr"]))
    x = torch.rand(batch, *in_shape, device=device)
    y = (torch.rand(batch, device=device) > 0.5).float()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(model(x)[:, 0], y)
        loss.backward()
        opt.step()

    model.train()
    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(steps):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        infer_s = time.perf_counter() - start
    return {
        "preset": preset,
        "dims": dims,
        "grid": list(grid),
        "model": presets.TRAINING[preset]["model"],
        "parameters": models.count_parameters(model),
        "batch_size": batch,
        "steps": steps,
        "train_seconds": train_s,
        "train_samples_per_s": steps * batch / train_s,
        "inference_samples_per_s": steps * batch / infer_s,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write ``bench/results/training.json``.

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
    parser.add_argument("--steps", type=int, default=10, help="timed optimiser steps per model")
    parser.add_argument("--presets", nargs="+", default=list(presets.PRESET_NAMES))
    parser.add_argument("--dims", nargs="+", type=int, default=[2, 3])
    parser.add_argument("--paper-3d-on-cpu", action="store_true", help="also time the paper preset's 3D model on a CPU")
    args = parser.parse_args(argv)
    device = ft.choose_device()
    machine_before = ft.runtime.machine()
    rows = []
    skipped = []
    for name in args.presets:
        for dims in args.dims:
            if device.type == "cpu" and name == "paper" and dims == 3 and not args.paper_3d_on_cpu:
                skipped.append({"preset": name, "dims": dims,
                                "reason": "full 2 mm volumes in batches of 32 need a GPU (tens of GB of activations)"})
                print("paper     3D skipped on a CPU (use --paper-3d-on-cpu to force)", flush=True)
                continue
            steps = args.steps if not (name == "paper" and device.type == "cpu") else max(2, args.steps // 5)
            row = time_model(name, dims, steps, device)
            rows.append(row)
            print(f"{name:9s} {dims}D {str(tuple(row['grid'])):16s} {row['model']:11s} "
                  f"train {row['train_samples_per_s']:8.1f} samples/s  "
                  f"inference {row['inference_samples_per_s']:8.1f} samples/s", flush=True)
    reference = {r["dims"]: r["train_samples_per_s"] for r in rows if r["preset"] == "tutorial"}
    for r in rows:
        if r["dims"] in reference:
            r["train_speed_vs_tutorial"] = r["train_samples_per_s"] / reference[r["dims"]]
    out = {
        "benchmark": "training throughput of each preset's model",
        "device": str(device),
        "machine": machine_before,
        "load_average_after": list(os.getloadavg()),
        "results": rows,
        "skipped": skipped,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "training.json").write_text(json.dumps(out, indent=2))
    print(f"wrote {RESULTS / 'training.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
