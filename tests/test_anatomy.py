"""Tests of faimi_tutorial.data.anatomy: template, grids and regions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faimi_tutorial import anatomy


@pytest.fixture(scope="module")
def grid3():
    return anatomy.grid_for((24, 28, 24), 8.0)


@pytest.fixture(scope="module")
def grid2():
    return anatomy.grid_for((32, 32), 6.0, slice_z=2.0)


def test_template_files_ship_inside_the_package():
    files = anatomy.template_files()
    assert set(files) == {"t1", "gm", "wm"}
    root = Path(anatomy.__file__).resolve().parent / "mni152"
    for path in files.values():
        assert path.is_file()
        assert path.parent == root  # package data: neither nilearn nor a download needed
    assert "Copyright" in (root / "NOTICE.txt").read_text()


def test_load_template_range_and_shape(grid3, grid2):
    t3 = anatomy.load_template(grid3)
    assert t3.shape == (24, 28, 24) and t3.dtype == np.float32
    assert 0.0 <= t3.min() and t3.max() <= 1.0 and t3.max() > 0.7
    t2 = anatomy.load_template(grid2)
    assert t2.shape == (32, 32) and t2.max() > 0.7
    assert not t3.flags.writeable  # cached: callers must copy


def test_template_matches_nilearn_on_full_grid():
    import nibabel as nib

    grid = anatomy.grid_for((99, 117, 95), 2.0)
    assert grid.origin == (-98.0, -134.0, -72.0)
    ours = anatomy.load_template(grid)
    ref = nib.load(str(anatomy.template_files()["t1"]))
    ref_data = np.asarray(ref.dataobj, dtype=np.float32)[::2, ::2, ::2] / 255.0
    corr = np.corrcoef(ours.ravel(), ref_data.ravel())[0, 1]
    assert corr > 0.95


def test_load_tissue_and_brain_mask(grid3):
    gm = anatomy.load_tissue("gm", grid3)
    wm = anatomy.load_tissue("wm", grid3)
    assert gm.shape == grid3.shape and 0 <= gm.min() and gm.max() <= 1
    assert (gm > 0.5).sum() > 100 and (wm > 0.5).sum() > 100
    with pytest.raises(ValueError, match="kind"):
        anatomy.load_tissue("csf", grid3)
    mask = anatomy.brain_mask(grid3)
    assert mask.dtype == bool and 0.1 < mask.mean() < 0.9
    assert not mask[0, 0, 0]


def test_grid_validation_and_affine():
    g = anatomy.Grid((10, 12, 14), 2.5, (-10, -20, -30))
    assert g.dims == 3 and g.slice_z is None
    assert np.allclose(g.affine @ [1, 2, 3, 1], [-7.5, -15, -22.5, 1])
    assert g.coordinates().shape == (10, 12, 14, 3)
    assert np.isclose(g.voxel_volume_ml, 2.5**3 / 1000)
    assert g.to_dict()["shape"] == [10, 12, 14]
    with pytest.raises(ValueError, match="shape"):
        anatomy.Grid((4, 12, 14), 2.0, (0, 0, 0))
    with pytest.raises(ValueError, match="spacing"):
        anatomy.Grid((10, 12, 14), 0.1, (0, 0, 0))
    with pytest.raises(ValueError, match="origin"):
        anatomy.Grid((10, 12, 14), 2.0, (0, 0))


def test_grid_for_2d_slice(grid2):
    assert grid2.dims == 2 and grid2.slice_z == 2.0
    coords = grid2.coordinates()
    assert coords.shape == (32, 32, 3) and np.all(coords[..., 2] == 2.0)
    centre = coords[15:17, 15:17].mean(axis=(0, 1))
    assert np.allclose(centre[:2], anatomy.BRAIN_CENTRE_MM[:2], atol=0.01)


def test_required_regions_exist():
    names = {r.name for r in anatomy.list_regions()}
    assert {"right_insula", "right_putamen", "right_occipital"} <= names
    assert len(names) >= 6
    assert all(r.centre_mm[0] > 0 for r in anatomy.list_regions() if r.name.startswith("right"))


def test_region_validation_and_parse():
    with pytest.raises(ValueError, match="radius_mm"):
        anatomy.Region("a", (0, 0, 0), 100)
    with pytest.raises(ValueError, match="name"):
        anatomy.Region("bad name!", (0, 0, 0), 5)
    with pytest.raises(ValueError, match="centre_mm"):
        anatomy.Region("a", (0, 0, 500), 5)
    r = anatomy.Region.parse("10, -20, 5.5, 7")
    assert r.centre_mm == (10.0, -20.0, 5.5) and r.radius_mm == 7.0
    with pytest.raises(ValueError, match="x,y,z,radius"):
        anatomy.Region.parse("1,2,three,4")
    assert anatomy.get_region("1,2,3,4").radius_mm == 4.0
    assert anatomy.get_region(r.to_dict()) == r
    with pytest.raises(ValueError, match="known"):
        anatomy.get_region("nowhere")


def test_add_region_registers(grid3):
    try:
        region = anatomy.add_region("test_blob", (0.0, -20.0, 20.0), 12.0)
        assert anatomy.get_region("test_blob") is region
        assert anatomy.region_mask("test_blob", grid3).sum() > 0
    finally:
        anatomy.REGIONS.pop("test_blob", None)


def test_region_mask_inside_sphere(grid3, grid2):
    region = anatomy.get_region("right_occipital")
    mask = anatomy.region_mask(region, grid3)
    coords = grid3.coordinates()[mask]
    dist = np.linalg.norm(coords - np.array(region.centre_mm), axis=1)
    assert mask.sum() > 0 and dist.max() <= region.radius_mm
    gm_region = anatomy.Region("g", region.centre_mm, region.radius_mm, gm_only=True)
    gm_mask = anatomy.region_mask(gm_region, grid3)
    assert gm_mask.sum() < mask.sum() and not (gm_mask & ~mask).any()
    assert anatomy.region_mask("right_insula", grid2).sum() > 0
    assert anatomy.region_mask("precuneus", grid2).sum() == 0  # the slice misses it


def test_region_weight_tapers(grid3):
    region = anatomy.get_region("right_insula")
    w = anatomy.region_weight(region, grid3)
    coords = grid3.coordinates()
    dist = np.linalg.norm(coords - np.array(region.centre_mm), axis=-1)
    assert np.all(w[dist <= region.radius_mm] == 1.0)
    assert np.all(w[dist >= 2 * region.radius_mm] == 0.0)
    between = (dist > region.radius_mm) & (dist < 2 * region.radius_mm)
    assert np.all((w[between] >= 0) & (w[between] <= 1))


def test_loading_needs_no_network(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the template must not be downloaded")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    anatomy._load_1mm.cache_clear()
    anatomy._resampled.cache_clear()
    grid = anatomy.grid_for((16, 18, 16), 12.0)
    assert anatomy.load_template(grid).max() > 0.5
    assert anatomy.load_tissue("gm", grid).max() > 0.5
