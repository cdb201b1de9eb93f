"""Tests of faimi_tutorial.data.datasets: writing, reading and torch datasets."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from faimi_tutorial import datasets, simulate
from faimi_tutorial.data.datasets import DatasetError


@pytest.fixture(scope="module")
def cohort():
    cfg = simulate.SimulationConfig.preset("tiny", n_subjects=10, seed=7)
    return simulate.generate(cfg, progress=False)


@pytest.fixture(scope="module")
def written(cohort, tmp_path_factory):
    return datasets.write_cohort(cohort, tmp_path_factory.mktemp("ds") / "cohort")


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout(written, cohort):
    for name in ("dataset_description.json", "participants.tsv", "participants.json",
                 "README.md", ".bidsignore", "derivatives/counterfactual/dataset_description.json"):
        assert (written / name).is_file()
    sid = cohort.meta["subject_id"].iloc[0]
    assert (written / datasets.image_path(sid)).is_file()
    assert (written / datasets.image_path(sid, twin=True)).is_file()
    assert datasets.image_path("sub-0001", twin=True) == \
        "derivatives/counterfactual/sub-0001/anat/sub-0001_desc-counterfactual_T1w.nii.gz"
    assert (written / "README.md").read_text().startswith("# Datasheet")
    assert not (written / "datasheet.md").exists()
    desc = json.loads((written / "dataset_description.json").read_text())
    assert desc["faimi"]["config"] == cohort.config.to_dict()
    assert desc["faimi"]["seed"] == 7 and desc["faimi"]["package_version"]
    table = pd.read_csv(written / "participants.tsv", sep="\t")
    assert list(table["participant_id"]) == list(cohort.meta["subject_id"])
    assert {"label", "bias_group", "split", "image", "twin"} <= set(table.columns)
    assert not list(written.parent.glob(".*partial*"))


def test_affine_is_correct(written, cohort):
    img = nib.load(str(written / datasets.image_path("sub-0001")))
    assert np.allclose(img.affine, cohort.config.grid.affine)
    assert img.header.get_sform(coded=True)[1] == 4
    assert img.shape == cohort.config.shape


def test_roundtrip_is_exact(written, cohort):
    back = datasets.read_dataset(written)
    assert isinstance(back, simulate.Cohort)
    assert back.images.numpy().tobytes() == cohort.images.numpy().tobytes()
    assert torch.equal(back.twins, cohort.twins)
    assert back.config == cohort.config
    assert np.array_equal(back.label, cohort.label)
    assert np.array_equal(back.bias_group, cohort.bias_group)
    assert list(back.meta["split"].astype(str)) == list(cohort.meta["split"].astype(str))
    assert np.allclose(back.meta["disease_coef"], cohort.meta["disease_coef"])
    assert len(back.train) + len(back.val) + len(back.test) == len(cohort)


def test_same_config_gives_identical_files(written, cohort, tmp_path):
    again = simulate.generate(cohort.config, progress=False)
    other = datasets.write_cohort(again, tmp_path / "again")
    assert _digests(other) == _digests(written)


def test_existing_folder_not_overwritten(written, cohort, tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        datasets.write_cohort(cohort, target)
    assert (target / "keep.txt").read_text() == "mine"
    datasets.write_cohort(cohort, target, overwrite=True)
    assert not (target / "keep.txt").exists()
    assert (target / "participants.tsv").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    datasets.write_cohort(cohort.subset([0, 1]), empty)
    assert (empty / "README.md").is_file()


def test_interrupted_write_leaves_nothing(cohort, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = datasets._nifti_bytes

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt("simulated interruption")
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "_nifti_bytes", flaky)
    with pytest.raises(KeyboardInterrupt):
        datasets.write_cohort(cohort, tmp_path / "broken")
    assert list(tmp_path.iterdir()) == []
    # an interrupted overwrite keeps the old, complete dataset
    monkeypatch.setattr(datasets, "_nifti_bytes", real)
    done = datasets.write_cohort(cohort, tmp_path / "done")
    before = _digests(done)
    calls["n"] = 0
    monkeypatch.setattr(datasets, "_nifti_bytes", flaky)
    with pytest.raises(KeyboardInterrupt):
        datasets.write_cohort(cohort, done, overwrite=True)
    assert _digests(done) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done"]


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_missing_tsv_is_named(written, tmp_path):
    broken = _copy(written, tmp_path / "a")
    (broken / "participants.tsv").unlink()
    with pytest.raises(DatasetError, match="participants.tsv"):
        datasets.read_dataset(broken)
    with pytest.raises(DatasetError, match="not a dataset folder"):
        datasets.read_dataset(tmp_path / "nothing")


def test_corrupt_image_is_named(written, tmp_path):
    broken = _copy(written, tmp_path / "b")
    bad = broken / datasets.image_path("sub-0003")
    bad.write_bytes(b"not a nifti file")
    with pytest.raises(DatasetError, match="sub-0003_T1w.nii.gz"):
        datasets.read_dataset(broken)


def test_missing_image_is_named(written, tmp_path):
    broken = _copy(written, tmp_path / "c")
    (broken / datasets.image_path("sub-0002", twin=True)).unlink()
    with pytest.raises(DatasetError, match="sub-0002_desc-counterfactual"):
        datasets.read_dataset(broken)


def test_inconsistent_shape_is_named(written, cohort, tmp_path):
    broken = _copy(written, tmp_path / "d")
    path = broken / datasets.image_path("sub-0004")
    nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.float32), np.eye(4)), str(path))
    with pytest.raises(DatasetError, match="sub-0004_T1w.nii.gz.*shape"):
        datasets.read_dataset(broken)


def test_inconsistent_table_is_named(written, tmp_path):
    broken = _copy(written, tmp_path / "e")
    tsv = broken / "participants.tsv"
    table = pd.read_csv(tsv, sep="\t")
    table["label"] = table["label"].astype(object)
    table.loc[1, "label"] = "maybe"
    table.to_csv(tsv, sep="\t", index=False)
    with pytest.raises(DatasetError, match="participants.tsv.*label"):
        datasets.read_dataset(broken)
    table = pd.read_csv(written / "participants.tsv", sep="\t").iloc[:5]
    table.to_csv(tsv, sep="\t", index=False)
    with pytest.raises(DatasetError, match="n_subjects"):
        datasets.read_dataset(broken)
    (broken / "dataset_description.json").write_text("{not json")
    with pytest.raises(DatasetError, match="dataset_description.json"):
        datasets.read_dataset(broken)


def test_user_folder(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(20):
        sid = f"sub-u{i:02d}"
        (tmp_path / sid / "anat").mkdir(parents=True)
        data = rng.uniform(10, 500, size=(9, 10, 11)).astype(np.float32)
        nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / sid / "anat" / f"{sid}_T1w.nii"))
        rows.append({"participant_id": sid, "dx": i % 2, "sex": (i // 2) % 2})
    pd.DataFrame(rows).to_csv(tmp_path / "participants.tsv", sep="\t", index=False)
    with pytest.raises(DatasetError, match="'label'"):
        datasets.read_dataset(tmp_path)
    cohort = datasets.read_dataset(tmp_path, label_column="dx", group_column="sex")
    assert cohort.config is None and cohort.twins is None
    assert cohort.images.shape == (20, 1, 9, 10, 11)
    assert float(cohort.images.min()) == 0.0 and float(cohort.images.max()) == 1.0
    assert list(cohort.label) == [i % 2 for i in range(20)]
    assert set(cohort.meta["split"].astype(str)) == {"train", "val", "test"}


def test_lazy_and_torch_datasets(written, cohort):
    lazy = datasets.read_dataset(written, lazy=True)
    assert isinstance(lazy, datasets.NiftiDataset) and len(lazy) == len(cohort)
    image, label, group = lazy[3]
    assert torch.equal(image, cohort.images[3])
    assert int(label) == cohort.label[3] and int(group) == cohort.bias_group[3]
    assert np.array_equal(lazy.load(3, twin=True), cohort.twins[3].numpy())
    view = datasets.CohortDataset(cohort, twins=True)
    image, label, group = view[2]
    assert torch.equal(image, cohort.twins[2]) and len(view) == len(cohort)
    loader = torch.utils.data.DataLoader(lazy, batch_size=4)
    batch = next(iter(loader))
    assert batch[0].shape == (4, 1, *cohort.config.shape)


def test_2d_roundtrip(tmp_path):
    cfg = simulate.SimulationConfig.preset("tiny", dims=2, n_subjects=8)
    cohort = simulate.generate(cfg, progress=False)
    out = datasets.write_cohort(cohort, tmp_path / "flat")
    img = nib.load(str(out / datasets.image_path("sub-0001")))
    assert img.shape == (*cfg.shape, 1) and np.isclose(img.affine[2, 3], cfg.slice_z)
    back = datasets.read_dataset(out)
    assert torch.equal(back.images, cohort.images)


def test_datasheet_has_gebru_headings_and_biases(cohort):
    text = datasets.datasheet(cohort)
    for heading in ("## Motivation", "## Composition", "## Collection process",
                    "## Preprocessing/cleaning/labeling", "## Uses", "## Distribution",
                    "## Maintenance", "## Deliberately injected biases"):
        assert heading in text
    assert "| split | label | bias group 0 | bias group 1 | total |" in text
    assert "right_putamen" in text and "70%" in text and "counterfactual" in text
