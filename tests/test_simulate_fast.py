"""The fast 3D path of the generator (CPU) against the reference path it replaces.

The reference path (3D ``grid_sample``, also used on GPUs and on small grids) is
selected with ``simulate._FAST_3D = False``; both must give the same cohorts to float32
rounding, and the fast path must keep the generator's own guarantees (batch
independence, twins equal to their subjects away from the bias region). The tests force
the fast path on the tiny grid (``_FAST_3D_MIN_VOXELS = 0``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faimi_tutorial import simulate
from faimi_tutorial.data.simulate import SimulationConfig

#: Largest image difference allowed between the paths (images lie in [0, 1]).
IMAGE_TOL = 2e-5


def tiny(**kw) -> SimulationConfig:
    return SimulationConfig.preset("tiny", **kw)


def generate(cfg, fast: bool, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(simulate, "_FAST_3D", fast)
        m.setattr(simulate, "_FAST_3D_MIN_VOXELS", 0)  # the tiny grid too
        for cache in ("_ENGINE_CACHE", "_CALIBRATION_CACHE", "_SCALE_CACHE"):
            m.setattr(simulate, cache, {})
        return simulate.generate(cfg, progress=False, device="cpu")


def smooth_velocity(shape, scale, seed=0):
    """Smooth random 3D velocity fields (normalised units)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn((shape[0], 3, 4, 4, 4), generator=g, dtype=torch.float64)
    v = torch.nn.functional.interpolate(
        coarse, size=shape[2:], mode="trilinear", align_corners=True
    )
    return (v * scale).float()


def voxels(u):
    """Normalised displacements (B, 3, D, H, W) in voxels along each channel's axis."""
    d, h, w = u.shape[2:]
    return u.double() * torch.tensor(
        [(w - 1) / 2, (h - 1) / 2, (d - 1) / 2], dtype=torch.float64
    ).view(1, 3, 1, 1, 1)


@pytest.mark.parametrize(
    "scale", [0.05, 0.4]
)  # up to a few voxels: border clamping too
def test_integrate_3d_matches_integrate_velocity(scale):
    v = smooth_velocity((3, 3, 9, 11, 10), scale)
    fast = simulate._integrate_3d(v, 5)
    exact = simulate.integrate_velocity(v.double(), 5)
    reference = simulate.integrate_velocity(v, 5)
    assert fast.shape == v.shape and fast.dtype == v.dtype
    assert float(voxels(exact).abs().max()) > (2.0 if scale > 0.1 else 0.1)
    # as close to the exact (float64) result as the float32 reference path is
    err_fast = float((voxels(fast) - voxels(exact)).abs().max())
    err_ref = float((voxels(reference) - voxels(exact)).abs().max())
    assert err_fast < max(10 * err_ref, 1e-5)
    assert torch.equal(
        simulate._integrate_3d(torch.zeros(2, 3, 5, 6, 7), 4),
        torch.zeros(2, 3, 5, 6, 7),
    )
    # each field on its own: the result does not depend on the others
    assert torch.equal(simulate._integrate_3d(v[1:2], 5), fast[1:2])
    with pytest.raises(ValueError, match="2 points"):
        simulate._integrate_3d(torch.zeros(1, 3, 1, 4, 4), 3)


def test_slice_pairs_hold_both_slices_of_every_tile():
    volume = torch.arange(3 * 4 * 5, dtype=torch.float64).view(1, 1, 3, 4, 5) + 1
    image, (rows, cols, h, w) = simulate._slice_pairs(volume)
    assert (
        (h, w) == (6, 7)
        and rows * cols >= 4
        and image.shape == (1, 2, rows * h, cols * w)
    )
    padded = torch.nn.functional.pad(volume, (1, 1, 1, 1, 1, 1))[0, 0]
    for k in range(4):  # framed slices k and k + 1 in tile k
        r, c = divmod(k, cols)
        tile = image[0, :, r * h : (r + 1) * h, c * w : (c + 1) * w]
        assert torch.equal(tile[0], padded[k]) and torch.equal(tile[1], padded[k + 1])


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"bias_kind": "both", "intensity_scope": "global", "seed": 3},
        {"crop": (12, 12, 12), "seed": 5, "noise_sd": 0.0},
    ],
)
def test_fast_path_gives_the_reference_cohort(overrides, monkeypatch):
    cfg = tiny(n_subjects=16, **overrides)
    fast = generate(cfg, True, monkeypatch)
    reference = generate(cfg, False, monkeypatch)
    assert fast.images.shape == reference.images.shape
    assert float((fast.images - reference.images).abs().max()) < IMAGE_TOL
    assert float((fast.twins - reference.twins).abs().max()) < IMAGE_TOL
    volumes = [c for c in fast.meta.columns if "_ml" in c]
    others = [c for c in fast.meta.columns if c not in volumes]
    assert fast.meta[others].equals(reference.meta[others])  # design and speeds: exact
    for col in volumes:  # region volumes (mL, rounded to 1e-6): to float32 rounding
        assert np.allclose(fast.meta[col], reference.meta[col], rtol=1e-5, atol=1e-5)
    # the effect sizes come from the reference integration either way
    cal_fast = fast.meta.attrs["effect_calibration"]
    cal_ref = reference.meta.attrs["effect_calibration"]
    for key in ("disease_mm", "bias_mm", "disease_sd_ml", "bias_sd_ml"):
        assert cal_fast[key] == cal_ref[key]


def test_fast_path_results_do_not_depend_on_the_batch(monkeypatch):
    cfg = tiny(n_subjects=20, seed=4)
    a = generate(cfg, True, monkeypatch)
    monkeypatch.setattr(simulate, "default_batch_size", lambda _cfg: 7)
    b = generate(cfg, True, monkeypatch)
    assert torch.equal(a.images, b.images) and torch.equal(a.twins, b.twins)


def mosaic_only(monkeypatch):
    """Every field through the float64 mosaic (as long displacements are)."""
    original = simulate._Engine._init_3d

    def init_3d(self, outside, near):
        original(self, outside, near)
        self._half = 0  # no window fits

    monkeypatch.setattr(simulate._Engine, "_init_3d", init_3d)


def count_paths(monkeypatch) -> dict[str, int]:
    """Calls of the two warps (fields through each)."""
    counts = {"window": 0, "mosaic": 0}
    window, mosaic = simulate._Engine._warp_window, simulate._Engine._warp_mosaic

    def count_window(self, *args):
        counts["window"] += 1
        return window(self, *args)

    def count_mosaic(self, u_coarse, *args):
        counts["mosaic"] += u_coarse.shape[0]
        return mosaic(self, u_coarse, *args)

    monkeypatch.setattr(simulate._Engine, "_warp_window", count_window)
    monkeypatch.setattr(simulate._Engine, "_warp_mosaic", count_mosaic)
    return counts


def test_window_and_mosaic_warps_agree(monkeypatch):
    cfg = tiny(n_subjects=12, seed=7)
    counts = count_paths(monkeypatch)
    window = generate(cfg, True, monkeypatch)
    assert counts["window"] > 0 and counts["mosaic"] == 0
    mosaic_only(monkeypatch)
    mosaic = generate(cfg, True, monkeypatch)
    assert counts["mosaic"] > 0
    assert float((window.images - mosaic.images).abs().max()) < IMAGE_TOL
    assert float((window.twins - mosaic.twins).abs().max()) < IMAGE_TOL


@pytest.mark.parametrize("path", ["window", "mosaic"])
def test_shortcuts_change_no_voxel(path, monkeypatch):
    """Re-warping only around the bias region; skipping voxels far from the brain."""
    if path == "mosaic":
        mosaic_only(monkeypatch)
    counts = count_paths(monkeypatch)
    cfg = tiny(n_subjects=16, seed=6, bias_prevalence=(1.0, 1.0))
    quick = generate(cfg, True, monkeypatch)
    assert counts[path] > 0 and counts["mosaic" if path == "window" else "window"] == 0
    everything = tuple(slice(0, n) for n in cfg.grid.shape)
    monkeypatch.setattr(simulate._Engine, "bias_box", lambda self, speed: everything)
    original = simulate._Engine._init_3d

    def init_3d(self, outside, near):
        original(self, outside, near)
        self._corner_mm = 1e9  # every voxel sampled

    monkeypatch.setattr(simulate._Engine, "_init_3d", init_3d)
    full = generate(cfg, True, monkeypatch)
    assert torch.equal(quick.images, full.images) and torch.equal(
        quick.twins, full.twins
    )
    changed = (quick.images != quick.twins).flatten(1).any(1)
    assert bool(changed.all())  # every subject carries the bias


def test_device_branch_gives_the_same_cohort(monkeypatch):
    """The branch GPUs take (render into device buffers, then copy), run on the CPU."""
    cfg = tiny(n_subjects=12, seed=8, bias_kind="both")
    direct = generate(cfg, False, monkeypatch)
    monkeypatch.setattr(simulate, "_renders_in_place", lambda device: False)
    buffered = generate(cfg, False, monkeypatch)
    assert torch.equal(direct.images, buffered.images)
    assert torch.equal(direct.twins, buffered.twins)
    assert direct.meta.equals(buffered.meta)


def test_small_grids_keep_the_reference_path():
    """The book trains on its 3D region of interest: those cohorts stay bit for bit."""
    cpu = torch.device("cpu")
    for cfg, fast in (
        (tiny(), False),
        (SimulationConfig.preset("tutorial"), False),  # the 20^3 crop (32^3 working)
        (SimulationConfig.preset("tutorial", crop=()), True),
        (SimulationConfig.preset("tutorial", dims=2), False),
    ):
        assert simulate._Engine(cfg, cpu, None, 1.0, 1.0).fast is fast


def test_twin_and_biased_image_share_their_arithmetic(monkeypatch):
    """Where a biased image's displacement equals its twin's, so do their voxels."""
    cfg = tiny(n_subjects=12, seed=9, bias_prevalence=(1.0, 1.0), noise_sd=0.0)
    # a zero bias field: every biased image is its twin, although the path a field
    # takes depends on its reach (shared by the pair)
    original = simulate._engine

    def engine(*args):
        built = original(*args)
        built.bias_field = built.bias_field * 0.0
        return built

    monkeypatch.setattr(simulate, "_engine", engine)
    cohort = generate(cfg, True, monkeypatch)
    assert torch.equal(cohort.images, cohort.twins)


def test_twin_and_biased_image_take_the_same_path(monkeypatch):
    """generate hands a biased image and its twin the longer reach of the two."""
    calls = []
    original = simulate._Engine.render_into

    def render_into(self, u, out, use_near, box=None, reach=None):
        calls.append((self.slice_reach(u), None if reach is None else np.array(reach)))
        return original(self, u, out, use_near, box, reach)

    monkeypatch.setattr(simulate._Engine, "render_into", render_into)
    cfg = tiny(n_subjects=12, seed=10, bias_prevalence=(0.5, 0.5))
    cohort = generate(cfg, True, monkeypatch)
    calls = [c for c in calls if c[1] is not None]  # generate's (not calibration's)
    biased = np.flatnonzero(cohort.bias_group == 1)
    twins_own, twins_shared = calls[0]
    assert len(calls) == 1 + len(biased)
    for j, k in enumerate(biased):
        own, shared = calls[1 + j]
        assert shared[0] == twins_shared[k] == max(own[0], twins_own[k])
    others = np.flatnonzero(cohort.bias_group == 0)
    assert np.array_equal(twins_shared[others], twins_own[others])
