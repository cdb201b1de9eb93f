"""Public functions that replace the chapters' local helpers and private calls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faimi_tutorial import federated as F
from faimi_tutorial import metrics, probing, simulate


def test_cohort_from_preset_equals_generate_of_the_preset():
    cohort = simulate.cohort_from_preset("tiny", dims=2, n_subjects=16, seed=4)
    config = simulate.SimulationConfig.preset("tiny", dims=2, n_subjects=16, seed=4)
    expected = simulate.generate(config, progress=False)
    assert cohort.config == expected.config
    assert torch.equal(cohort.images, expected.images)
    assert torch.equal(cohort.twins, expected.twins)
    plain = simulate.cohort_from_preset("tiny", dims=2, n_subjects=16, twins=False)
    assert plain.twins is None


def test_cohort_from_preset_refuses_bad_settings():
    with pytest.raises(ValueError, match="preset"):
        simulate.cohort_from_preset("huge")
    with pytest.raises(ValueError, match="noise_sd"):
        simulate.cohort_from_preset("tiny", noise_sd=2.0)
    with pytest.raises(ValueError, match="unknown"):
        simulate.cohort_from_preset("tiny", colour="red")


def test_in_sample_scores_decode_noise_that_held_out_scores_do_not():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 200))
    y = rng.integers(0, 2, 120)
    cfg = probing.ProbeConfig(n_folds=3, n_boot=0, C=10.0, variance=1.0)
    scores = probing.in_sample_scores(x, y, cfg)
    assert scores.shape == (120,) and ((scores >= 0) & (scores <= 1)).all()
    assert metrics.auroc(y, scores) > 0.9
    assert abs(probing.probe(x, y, cfg).auroc - 0.5) < 0.15
    with pytest.raises(ValueError, match="samples"):
        probing.in_sample_scores(x[:10], y)
    with pytest.raises(ValueError, match="two classes"):
        probing.in_sample_scores(x, np.zeros(120))


@pytest.fixture(scope="module")
def fed():
    cohort = simulate.cohort_from_preset("tiny", dims=2, n_subjects=120, seed=3)
    specs = [F.SiteSpec("a", n_train=12), F.SiteSpec("b", n_train=2),
             F.SiteSpec("c", n_train=1, scanner="noisy")]
    return F.make_sites(cohort, specs, seed=1)


def test_travelling_without_optimiser_state_restarts_the_optimiser_at_every_site(fed):
    cfg = F.FedConfig.preset("tiny", rounds=2, batch_size=8)
    result = F.train_travelling(fed, cfg, seed=0, keep_optimizer_state=False)
    # the same visits by hand, each with a fresh optimiser
    sites = [s for s in fed.site_names if fed.sizes[s] > 0]
    params = F.init_params(cfg, tuple(fed.cohort.images.shape[1:]), seed=0)
    rng = np.random.default_rng([0, 17])
    for cycle in range(cfg.rounds):
        for i in rng.permutation(len(sites)):
            params = F.client_update(params, fed.train_site(sites[i]), cfg,
                                     optimizer_state=None,
                                     seed=F.client_seed(0, cycle, i)).params
    assert all(torch.equal(result.params[k], params[k]) for k in params)
    kept = F.train_travelling(fed, cfg, seed=0)
    assert any(not torch.equal(kept.params[k], params[k]) for k in params)
    with pytest.raises(ValueError, match="keep_optimizer_state"):
        F.train_travelling(fed, cfg, seed=0, keep_optimizer_state="no")
