"""Tests of faimi_tutorial.data.simulate: configuration, fields, cohort and its properties."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from faimi_tutorial import anatomy, presets, simulate
from faimi_tutorial.data.simulate import ConfigError, SimulationConfig


def tiny(**kw) -> SimulationConfig:
    return SimulationConfig.preset("tiny", **kw)


@pytest.fixture(scope="module")
def cohort3():
    return simulate.generate(tiny(seed=1), progress=False)


@pytest.fixture(scope="module")
def cohort2():
    return simulate.generate(tiny(dims=2, n_subjects=200, seed=2), progress=False)


# ----------------------------------------------------------------------------- config


def test_presets_fill_the_grid():
    for name in presets.PRESET_NAMES:
        for dims in (2, 3):
            cfg = SimulationConfig.preset(name, dims=dims)
            grid = presets.SIMULATION[name][f"grid_{dims}d"]
            assert cfg.shape == tuple(grid["shape"]) and cfg.n_subjects == grid["n_subjects"]
            assert cfg.grid.dims == dims
    assert SimulationConfig.preset("paper").shape == (99, 117, 95)
    cfg = tiny(bias_prevalence=(0.9, 0.1), n_subjects=40)
    assert cfg.bias_prevalence == (0.9, 0.1) and cfg.n_subjects == 40
    assert tiny(dims=2).slice_z == anatomy.get_region("right_insula").centre_mm[2]


@pytest.mark.parametrize(
    "field, value",
    [
        ("dims", 4),
        ("shape", (10, 10)),
        ("n_subjects", 2),
        ("disease_fraction", 1.0),
        ("bias_prevalence", (1.2, 0.3)),
        ("bias_prevalence", (0.5,)),
        ("disease_region", "nowhere"),
        ("bias_kind", "colour"),
        ("intensity_factor", 0.0),
        ("intensity_scope", "local"),
        ("noise_sd", -0.1),
        ("split", (0.5, 0.5, 0.5)),
        ("seed", -1),
        ("seed", 1.5),
        ("support", 0.5),
        ("squaring_steps", 0),
        ("spacing", "abc"),
    ],
)
def test_invalid_values_name_field_value_and_range(field, value):
    with pytest.raises(ConfigError) as info:
        tiny(**{field: value})
    err = info.value
    assert err.field == field and isinstance(err, ValueError)
    assert field in str(err) and "allowed" in str(err) and repr(value) in str(err)


def test_default_constructor_uses_active_preset(monkeypatch):
    monkeypatch.setenv("FAIMI_PRESET", "tiny")
    cfg = SimulationConfig()
    assert cfg.preset == "tiny" and cfg.shape == tuple(presets.SIMULATION["tiny"]["grid_3d"]["shape"])
    assert SimulationConfig.preset().preset == "tiny"


def test_unknown_preset_and_field():
    with pytest.raises(ValueError, match="preset"):
        SimulationConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown SimulationConfig field"):
        tiny(colour="red")


def test_2d_region_must_cut_the_slice():
    with pytest.raises(ConfigError, match="bias_region"):
        tiny(dims=2, bias_region="precuneus")
    with pytest.raises(ConfigError, match="slice_z"):
        tiny(dims=3, slice_z=2.0)


def test_config_roundtrip_and_replace():
    cfg = tiny(bias_region="10,-60,8,9", bias_kind="both", seed=5)
    assert isinstance(cfg.bias_region, anatomy.Region)
    again = SimulationConfig.from_dict(cfg.to_dict())
    assert again == cfg
    import json

    assert SimulationConfig.from_dict(json.loads(cfg.to_json())) == cfg
    two = cfg.replace(dims=2)
    assert two.dims == 2 and two.shape == tuple(presets.SIMULATION["tiny"]["grid_2d"]["shape"])
    assert cfg.replace(seed=9).seed == 9 and cfg.replace(seed=9).shape == cfg.shape
    assert cfg.morphological_bias and cfg.intensity_bias
    assert "mm" in SimulationConfig.help("bias_scale_mm")
    with pytest.raises(ValueError, match="unknown"):
        SimulationConfig.from_dict({"nonsense": 1})


# ----------------------------------------------------------------------------- fields


def test_regional_field_is_compact_and_normalised():
    grid = anatomy.grid_for((40, 40, 40), 2.0)
    region = anatomy.get_region("right_insula")
    f = simulate.regional_field(region, grid.coordinates(), 3, support=2.0)
    assert f.shape == (3, 40, 40, 40)
    norm = np.linalg.norm(f, axis=0)
    dist = np.linalg.norm(grid.coordinates() - np.array(region.centre_mm), axis=-1)
    assert np.all(norm[dist >= 2 * region.radius_mm] == 0)
    assert 0.9 < norm.max() <= 1.0 + 1e-9
    # radial: points away from the centre
    rel = grid.coordinates() - np.array(region.centre_mm)
    assert np.all((f * np.moveaxis(rel, -1, 0)).sum(0) >= 0)


def test_integrate_and_warp_basics():
    zero = torch.zeros(2, 3, 8, 9, 10)
    assert torch.equal(simulate.integrate_velocity(zero, 4), zero)
    const = torch.full((1, 2, 16, 16), 0.1)
    u = simulate.integrate_velocity(const, 5)
    assert torch.allclose(u[..., 4:12, 4:12], const[..., 4:12, 4:12], atol=1e-5)
    image = torch.rand(1, 1, 12, 13)
    assert torch.allclose(simulate.warp(image, torch.zeros(3, 2, 12, 13)),
                          image.expand(3, 1, 12, 13), atol=1e-6)
    # a shift of one voxel along the last axis (grid_sample channel 0)
    shift = torch.zeros(1, 2, 12, 13)
    shift[:, 0] = 2.0 / 12
    moved = simulate.warp(image, shift)
    assert torch.allclose(moved[0, 0, :, :-1], image[0, 0, :, 1:], atol=1e-5)


def test_contrast_stretch():
    x = torch.tensor([0.0, 0.25, 0.5, 0.9])
    y = simulate.contrast_stretch(x, 1.2)
    assert torch.allclose(y, torch.tensor([0.0, 0.2, 0.5, 0.98]))
    assert torch.equal(simulate.contrast_stretch(x, 1.2, weight=torch.zeros(4)), x)
    assert simulate.contrast_stretch(np.array([1.0]), 2.0)[0] == 1.0


def test_shape_basis_synthetic_and_pca():
    grid = anatomy.grid_for((16, 20, 16), 10.0)
    basis = simulate.ShapeBasis.synthetic(grid, 12, scale_mm=3.0)
    assert len(basis) == 12 and basis.fields.shape == (12, 3, 16, 20, 16)
    assert np.isclose(basis.variances.sum(), 9.0)
    assert np.all(np.diff(basis.variances) <= 1e-12)  # decaying
    rms = np.sqrt((basis.fields**2).sum(1).mean(axis=(1, 2, 3)))
    assert np.all((rms > 0.5) & (rms < 1.5))
    rng = np.random.default_rng(0)
    samples = np.einsum("nk,k...->n...", rng.standard_normal((40, 3)) * [3, 2, 1], basis.fields[:3])
    fitted = simulate.ShapeBasis.from_samples(samples, grid, 3)
    assert fitted.name == "pca" and fitted.variances[0] > fitted.variances[2]
    with pytest.raises(ValueError, match="n_basis"):
        simulate.ShapeBasis.from_samples(samples, grid, 40)
    with pytest.raises(ValueError, match="variances"):
        simulate.ShapeBasis(basis.fields, np.ones(3), grid)
    assert basis.resample(grid, (8, 10, 8)).shape == (12, 3, 8, 10, 8)


def test_user_basis_is_used():
    cfg = tiny(n_subjects=8, n_basis=2, noise_sd=0.0)
    grid = cfg.grid
    fields = np.zeros((2, 3, *grid.shape))
    fields[0, 0] = 1.0  # a pure shift along x
    user = simulate.ShapeBasis(fields, np.array([16.0, 0.0]), grid)
    a = simulate.generate(cfg, progress=False, basis=user)
    b = simulate.generate(cfg, progress=False)
    assert not torch.equal(a.images, b.images)
    with pytest.raises(ValueError, match="n_basis"):
        simulate.generate(tiny(n_subjects=8, n_basis=3), progress=False, basis=user)


# ----------------------------------------------------------------------------- design


def test_sample_design_and_split():
    cfg = tiny(n_subjects=400, bias_prevalence=(0.8, 0.2))
    meta = simulate.sample_design(cfg)
    assert list(meta.columns[:4]) == ["subject_id", "label", "bias_group", "split"]
    assert meta["subject_id"].is_unique and meta["subject_id"].iloc[0] == "sub-0001"
    assert meta["label"].sum() == 200
    assert meta.loc[meta.label == 1, "bias_group"].mean() == 0.8
    assert meta.loc[meta.label == 0, "bias_group"].mean() == 0.2
    assert np.all(meta.loc[meta.bias_group == 0, "bias_coef"] == 0)
    cells = meta.groupby(["label", "bias_group"])["split"].value_counts(normalize=True)
    assert np.allclose(cells.xs("train", level="split"), 0.6, atol=0.02)
    # stratified draws: every class x group x split cell has near-equal coefficient
    # distributions (a cell of m draws one value per 1/m quantile stratum)
    for (label, _, _), cell in meta.groupby(["label", "bias_group", "split"], observed=True):
        target = cfg.disease_mean[1 - label]
        assert abs(cell["disease_coef"].mean() - target) < 0.6 / np.sqrt(len(cell))
        assert abs(cell["z_00"].std() - 1.0) < 0.5
    assert np.corrcoef(meta["z_00"], meta["z_01"])[0, 1] < 0.2  # columns are independent
    split = simulate.stratified_split(np.array([0, 1] * 50), np.zeros(100, int), (0.5, 0.3, 0.2))
    assert (split == "train").sum() == 50 and (split == "test").sum() == 20


# ----------------------------------------------------------------------------- cohort


def test_generate_shapes_and_ranges(cohort3):
    cfg = cohort3.config
    assert len(cohort3) == cfg.n_subjects
    assert cohort3.images.shape == (cfg.n_subjects, 1, *cfg.shape)
    assert cohort3.images.dtype == torch.float32 and cohort3.twins.shape == cohort3.images.shape
    assert cohort3.images.min() >= 0 and cohort3.images.max() <= 1
    assert cohort3.label.dtype == np.int64 and cohort3.bias_group.dtype == np.int64
    for col in ("disease_coef", "bias_coef", "z_00", "disease_region_ml", "max_velocity_mm"):
        assert col in cohort3.meta
    assert "Cohort(n=" in repr(cohort3)


def test_splits_partition_the_cohort(cohort3):
    parts = [cohort3.train, cohort3.val, cohort3.test]
    ids = np.concatenate([p.meta["subject_id"].to_numpy() for p in parts])
    assert sorted(ids) == sorted(cohort3.meta["subject_id"])
    sub = cohort3.subset([0, 2])
    assert len(sub) == 2 and torch.equal(sub.images[1], cohort3.images[2])
    mask = cohort3.label == 1
    assert np.all(cohort3.subset(mask).label == 1)
    with pytest.raises(ValueError, match="mask"):
        cohort3.subset(np.ones(3, dtype=bool))
    with pytest.raises(IndexError):
        cohort3.subset([len(cohort3)])
    swapped = cohort3.with_twins()
    assert torch.equal(swapped.images, cohort3.twins)
    counts = cohort3.counts()
    assert counts.loc[("total", ""), "total"] == len(cohort3)


def test_same_config_and_seed_give_identical_bytes(cohort3):
    again = simulate.generate(tiny(seed=1), progress=False)
    assert again.images.numpy().tobytes() == cohort3.images.numpy().tobytes()
    assert again.twins.numpy().tobytes() == cohort3.twins.numpy().tobytes()
    pd.testing.assert_frame_equal(again.meta, cohort3.meta)
    other = simulate.generate(tiny(seed=2), progress=False)
    assert not torch.equal(other.images, cohort3.images)


def test_twins_differ_only_near_the_bias_region():
    cfg = tiny(n_subjects=16, bias_prevalence=(1.0, 0.5))
    cohort = simulate.generate(cfg, progress=False)
    diff = (cohort.images - cohort.twins).abs()[:, 0].numpy()
    groups = cohort.bias_group
    assert np.all(diff[groups == 0] == 0)  # no bias effect: twin == image
    dist = np.linalg.norm(cfg.grid.coordinates() - np.array(cfg.bias.centre_mm), axis=-1)
    reach = (cfg.support * cfg.bias.radius_mm + cohort.meta["max_velocity_mm"].to_numpy()
             + 3 * cfg.integration_spacing_mm + cfg.spacing)
    for i in np.flatnonzero(groups == 1):
        assert diff[i].max() > 0
        assert np.all(diff[i][dist > reach[i]] == 0), f"subject {i} differs far from the region"
    # and the bias shrinks the bias region (positive b = atrophy)
    biased = cohort.meta[groups == 1]
    assert np.all(biased["bias_region_ml"] < biased["bias_region_ml_twin"])


def test_intensity_bias_is_regional_or_global():
    cfg = tiny(n_subjects=8, bias_prevalence=(1.0, 1.0), bias_kind="intensity", noise_sd=0.0)
    cohort = simulate.generate(cfg, progress=False)
    diff = (cohort.images - cohort.twins)[:, 0].numpy()
    weight = anatomy.region_weight(cfg.bias, cfg.grid)
    assert np.all(diff[:, weight == 0] == 0) and np.abs(diff).max() > 0.01
    bright = cohort.twins[:, 0].numpy() > 0.6
    assert np.all(diff[bright & (weight[None] == 1)] >= 0)  # more contrast: bright gets brighter
    glob = simulate.generate(cfg.replace(intensity_scope="global"), progress=False)
    gdiff = (glob.images - glob.twins).abs()[:, 0].numpy()
    assert (gdiff > 0).mean() > 0.3
    # morphology untouched by an intensity bias
    assert np.allclose(cohort.meta["bias_region_ml"], cohort.meta["bias_region_ml_twin"])


def test_proportions_match_configuration(cohort2):
    cfg = cohort2.config
    meta = cohort2.meta
    assert abs(meta["label"].mean() - cfg.disease_fraction) <= 0.01
    for cls, prev in ((1, cfg.bias_prevalence[0]), (0, cfg.bias_prevalence[1])):
        assert abs(meta.loc[meta.label == cls, "bias_group"].mean() - prev) <= 0.01
    for name, frac in zip(("train", "val", "test"), cfg.split):
        assert abs((meta["split"] == name).mean() - frac) <= 0.03


def test_disease_shrinks_the_disease_region(cohort2):
    meta = cohort2.meta
    vol = meta["disease_region_ml_twin"]
    assert vol[meta.label == 1].mean() < vol[meta.label == 0].mean()
    assert np.corrcoef(meta["disease_coef"], vol)[0, 1] < -0.8


def test_balanced_prevalence_makes_group_independent_of_label():
    cfg = tiny(dims=2, n_subjects=200, bias_prevalence=(0.5, 0.5))
    meta = simulate.sample_design(cfg)
    table = pd.crosstab(meta["label"], meta["bias_group"])
    assert (table.to_numpy() == 50).all()
    assert np.corrcoef(meta["label"], meta["bias_group"])[0, 1] == 0


def test_2d_mode_is_fast_and_valid(cohort2):
    assert cohort2.images.shape[2:] == cohort2.config.shape
    seconds = cohort2.meta.attrs["generation_seconds"]
    assert seconds < 30  # 200 images of 32x32; typically well under a second


def test_batch_size_does_not_matter():
    cfg = tiny(dims=2, n_subjects=40, seed=4)
    a = simulate.generate(cfg, progress=False)
    original = simulate.default_batch_size
    try:
        simulate.default_batch_size = lambda _cfg: 7
        b = simulate.generate(cfg, progress=False)
    finally:
        simulate.default_batch_size = original
    assert torch.equal(a.images, b.images) and torch.equal(a.twins, b.twins)


def test_generate_without_twins_and_defaults():
    cohort = simulate.generate(tiny(n_subjects=8), progress=False, twins=False)
    assert cohort.twins is None
    with pytest.raises(ValueError, match="twins"):
        cohort.with_twins()
    assert simulate.default_batch_size(tiny()) >= 1


def test_config_fields_all_have_help():
    for f in dataclasses.fields(SimulationConfig):
        assert SimulationConfig.help(f.name)


# ----------------------------------------------------------------------------- figures


def test_simulation_figures(cohort3, cohort2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from faimi_tutorial import plotting

    fig = plotting.show_subject(cohort3, subject=1)
    assert len(fig.axes) == 6 and "sub-0002" in fig._suptitle.get_text()
    plt.close(fig)
    fig = plotting.show_subject(cohort2, subject="sub-0003")
    assert "sub-0003" in fig._suptitle.get_text()
    plt.close(fig)
    with pytest.raises(ValueError, match="subject"):
        plotting.show_subject(cohort3, subject=999)
    with pytest.raises(ValueError, match="subject"):
        plotting.show_subject(cohort3, subject="sub-9999")
    fig = plotting.show_regions(cohort3.config)
    assert sum(ax.get_title() != "" for ax in fig.axes) == 3
    plt.close(fig)
    fig = plotting.show_regions(cohort2.config, regions=["right_insula", "right_putamen"])
    assert len(fig.axes) == 2
    plt.close(fig)
    fig = plotting.show_cohort(cohort3, n=6)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 6 and {"disease" in t for t in titles} == {True, False}
    plt.close(fig)
    fig = plotting.show_cohort(cohort2, n=4, twins=True)
    plt.close(fig)
    fig = plotting.plot_cohort_design(cohort2)
    assert len(fig.axes) == 4
    plt.close(fig)
    fig = plotting.plot_effect_maps(cohort3)
    assert len(fig.axes) >= 2
    plt.close(fig)


def test_cohort_explorer(cohort3, cohort2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from faimi_tutorial import widgets

    box = widgets.explore_cohort(cohort3)
    explorer = box.explorer
    assert explorer.slice.max == cohort3.config.shape[2] - 1
    explorer.subject.value = 2
    assert "sub-0003" in explorer.info.value
    for view in widgets.VIEWS:
        fig = explorer.render(1, 5, view, regions=True)
        assert fig.axes[0].get_title() == view
        plt.close(fig)
    with pytest.raises(ValueError, match="view"):
        explorer.render(0, view="x-ray")
    with pytest.raises(ValueError, match="slice_index"):
        explorer.render(0, slice_index=500)
    flat = widgets.CohortExplorer(cohort2)
    assert flat.slice.disabled
    fig = flat.render(0, view="image - twin")
    plt.close(fig)
    assert "bias group" in flat.describe(0)
    nocfg = simulate.Cohort(cohort2.images, cohort2.twins, cohort2.meta, None)
    with pytest.raises(ValueError, match="config"):
        widgets.CohortExplorer(nocfg)


# ----------------------------------------------------------------------------- effect design


def test_stratified_normal_fills_every_stratum():
    rng = np.random.default_rng(0)
    cells = np.repeat([0, 1, 2], [10, 20, 40])
    draws = simulate.stratified_normal(cells, rng, columns=3)
    assert draws.shape == (70, 3)
    from scipy.stats import norm

    for cell, m in ((0, 10), (1, 20), (2, 40)):
        for j in range(3):
            strata = np.floor(norm.cdf(draws[cells == cell, j]) * m).astype(int)
            assert sorted(strata) == list(range(m))  # exactly one draw per stratum


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("kind", ["morphological", "intensity"])
def test_bias_stays_out_of_the_disease_region(dims, kind):
    # the named near bias region never changes the disease region's volume or mean
    # intensity by 2 % of the disease effect (the tutorial grids, where leaks showed)
    n = 120 if dims == 2 else 60
    cfg = SimulationConfig.preset("tutorial", dims=dims, n_subjects=n, bias_kind=kind,
                                  bias_prevalence=(0.5, 0.5))
    table = simulate.effect_table(simulate.generate(cfg, progress=False))
    leaks = table.loc[["bias leak: disease volume", "bias leak: disease intensity"],
                      "percent_of_disease_effect"]
    assert np.all(leaks < 2.0), leaks
    assert table.loc["disease", "effect_sd"] > 1.0
    bias_row = "bias (morphological)" if kind == "morphological" else "bias (intensity)"
    assert table.loc[bias_row, "effect_sd"] > 1.0


def test_effect_calibration_puts_both_effects_in_natural_sd():
    cfg = tiny(dims=2, n_subjects=64)
    cal = simulate.effect_calibration(cfg)
    assert cal.disease_sd_ml > 0 and cal.bias_sd_ml > 0
    assert cal.disease_effect_sd == pytest.approx(cfg.disease_effect_sd, rel=0.15)
    assert cal.bias_effect_sd == pytest.approx(cfg.bias_effect_sd, rel=0.15)
    stronger = simulate.effect_calibration(cfg.replace(bias_effect_sd=2 * cfg.bias_effect_sd))
    assert stronger.bias_mm > cal.bias_mm and stronger.disease_mm == cal.disease_mm
    fixed = simulate.effect_calibration(cfg.replace(disease_scale_mm=1.25))
    assert fixed.disease_mm == 1.25
    assert set(cal.to_dict()) >= {"disease_effect_sd", "bias_effect_sd", "intensity_effect_sd"}
    with pytest.raises(ValueError, match="n_subjects"):
        simulate.effect_calibration(cfg, n_subjects=3)


def test_crop_is_a_box_around_both_regions():
    cfg = tiny(crop=(12, 12, 12), n_subjects=8)
    assert cfg.grid.shape == (12, 12, 12) and cfg.full_grid.shape == cfg.shape
    cohort = simulate.generate(cfg, progress=False)
    assert cohort.images.shape[2:] == (12, 12, 12)
    coords = cfg.grid.coordinates()
    lo, hi = coords.reshape(-1, 3).min(0), coords.reshape(-1, 3).max(0)
    for region in (cfg.disease, cfg.bias):
        assert np.all(np.asarray(region.centre_mm) > lo) and np.all(
            np.asarray(region.centre_mm) < hi)
    # the crop shows the same anatomy as the whole-brain image at the same voxels (the
    # fields are integrated on a smaller box, so values agree up to interpolation)
    whole = simulate.generate(cfg.replace(crop=()), progress=False)
    box = tuple(slice(a, a + 12) for a in cfg.crop_start)
    same = whole.images[(slice(None), 0) + box].flatten()
    assert np.corrcoef(same, cohort.images[:, 0].flatten())[0, 1] > 0.98
    for bad in [(4, 12, 12), (12, 12), (12.5, 12, 12), (99, 12, 12)]:
        with pytest.raises(ValueError, match="crop"):
            tiny(crop=bad)
    with pytest.raises(ValueError, match="crop"):
        tiny(dims=2, crop=(12, 12, 12))
