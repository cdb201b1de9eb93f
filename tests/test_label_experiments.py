"""Tests of faimi_tutorial.experiments.label_experiments (chapter 7's runs)."""

from __future__ import annotations

import numpy as np
import pytest

from faimi_tutorial.experiments import label_experiments as lx
from faimi_tutorial.experiments.sweeps import ResultCache
from faimi_tutorial.training import TrainConfig


@pytest.fixture(scope="module")
def cohort():
    return lx.two_site_cohort(n_per_site=40, noise_sd=(0.02, 0.06), seed=3)


def test_two_site_cohort_has_sites_and_a_group_unrelated_to_disease(cohort):
    meta = cohort.meta
    assert list(meta[lx.SITE_COLUMN].cat.categories) == ["S1", "S2"]
    assert len(cohort) == 80 and cohort.twins is not None
    rates = meta.groupby("bias_group")["label"].mean()
    assert rates[0] == rates[1] == 0.5
    assert tuple(cohort.images.shape[1:]) == (1, 64, 64)


def test_two_site_cohort_rejects_bad_inputs():
    with pytest.raises(ValueError, match="n_per_site"):
        lx.two_site_cohort(n_per_site=10)
    with pytest.raises(ValueError, match="noise_sd"):
        lx.two_site_cohort(n_per_site=40, noise_sd=(0.02,))


def test_fit_scores_trains_on_the_given_labels_and_caches(cohort, tmp_path):
    config = TrainConfig.preset("tiny", epochs=1)
    split = cohort.meta["split"].astype(str).to_numpy()
    y = cohort.label
    cache = ResultCache(tmp_path)
    first = lx.fit_scores(cohort, y[split == "train"], y[split == "val"], config,
                          seed=0, cache=cache)
    assert set(first) == {"val", "test", "twins"}
    assert first["test"].shape == ((split == "test").sum(),)
    assert np.all((first["test"] >= 0) & (first["test"] <= 1))
    assert len(cache) == 1
    again = lx.fit_scores(cohort, y[split == "train"], y[split == "val"], config,
                          seed=0, cache=cache)
    np.testing.assert_allclose(again["test"], first["test"])
    other = y.copy()
    other[(split == "train") & (y == 1)] = 0
    lx.fit_scores(cohort, other[split == "train"], y[split == "val"], config,
                  seed=0, cache=cache)
    assert len(cache) == 2, "other labels are another run"


def test_fit_scores_goes_through_the_runner_whose_key_holds_the_source(
        cohort, tmp_path, monkeypatch):
    from faimi_tutorial.experiments import runner

    config = TrainConfig.preset("tiny", epochs=1)
    split = cohort.meta["split"].astype(str).to_numpy()
    y = cohort.label
    cache = ResultCache(tmp_path)
    lx.fit_scores(cohort, y[split == "train"], y[split == "val"], config, seed=1,
                  cache=cache)
    assert len(list(tmp_path.glob("*.pkl"))) == 1 and not list(tmp_path.glob("*.json"))
    monkeypatch.setattr(runner, "source_digest", lambda: "edited-package")
    lx.fit_scores(cohort, y[split == "train"], y[split == "val"], config, seed=1,
                  cache=cache)
    assert len(cache) == 2, "a changed package computes again"


def test_fit_scores_rejects_bad_labels(cohort):
    config = TrainConfig.preset("tiny", epochs=1)
    split = cohort.meta["split"].astype(str).to_numpy()
    y = cohort.label
    with pytest.raises(ValueError, match="train split has"):
        lx.fit_scores(cohort, y[:3], y[split == "val"], config)
    with pytest.raises(ValueError, match="only 0 and 1"):
        lx.fit_scores(cohort, y[split == "train"] + 2, y[split == "val"], config)
    with pytest.raises(ValueError, match="TrainConfig"):
        lx.fit_scores(cohort, y[split == "train"], y[split == "val"], "tiny")
