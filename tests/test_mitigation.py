"""Each mitigation strategy does what it must, on tiny problems."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faimi_tutorial import models, training


@pytest.fixture(scope="module")
def biased():
    return training.toy_data(n=240, size=16, bias_prevalence=(0.85, 0.15), seed=2)


def test_reweighing_makes_label_and_group_independent():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    a = np.where(y == 1, rng.random(1000) < 0.8, rng.random(1000) < 0.2).astype(int)
    w = training.reweighing_weights(y, a)
    assert w.mean() == pytest.approx(1.0)
    total = w.sum()
    for yy in (0, 1):
        for aa in (0, 1):
            joint = w[(y == yy) & (a == aa)].sum() / total
            p_y = w[y == yy].sum() / total
            p_a = w[a == aa].sum() / total
            assert joint == pytest.approx(p_y * p_a)
            # marginals are kept
            assert p_y == pytest.approx(np.mean(y == yy))
    # under-represented cells get weight > 1
    assert w[(y == 1) & (a == 0)][0] > 1 > w[(y == 1) & (a == 1)][0]


def test_reweighing_is_one_when_already_independent():
    y = np.array([0, 0, 1, 1] * 5)
    a = np.array([0, 1, 0, 1] * 5)
    assert np.allclose(training.reweighing_weights(y, a), 1.0)


def test_balanced_sampling_draws_every_cell_equally(biased):
    p = training.balanced_sampling_weights(biased.label, biased.bias_group)
    assert p.sum() == pytest.approx(1.0)
    cells = training.cell_ids(biased.label, biased.bias_group)
    per_cell = [p[cells == c].sum() for c in np.unique(cells)]
    assert np.allclose(per_cell, 0.25)
    g = torch.Generator().manual_seed(0)
    batches = training._batches(len(p), 32, g, p)
    drawn = cells[torch.cat(batches).numpy()]
    counts = np.bincount(drawn, minlength=4) / len(drawn)
    assert np.all(np.abs(counts - 0.25) < 0.08)
    # without the sampler the data's imbalance shows
    plain = cells[torch.cat(training._batches(len(p), 32, g, None)).numpy()]
    assert np.bincount(plain, minlength=4).min() / len(plain) < 0.1


def test_groupdro_upweights_the_group_with_the_highest_loss():
    dro = training.GroupDROLoss(n_groups=3, eta=0.5)
    losses = torch.tensor([0.1, 0.1, 2.0, 2.0, 0.5], requires_grad=True)
    groups = torch.tensor([0, 0, 1, 1, 2])
    for _ in range(5):
        out = dro(losses, groups)
    assert dro.q.sum().item() == pytest.approx(1.0)
    assert dro.q[1] > dro.q[2] > dro.q[0]
    # the objective is the q-weighted mean of group losses, and it has gradients
    assert out.item() == pytest.approx(float(dro.q @ torch.tensor([0.1, 2.0, 0.5])), rel=1e-5)
    out.backward()
    assert losses.grad is not None and losses.grad[2] > losses.grad[0]


def test_groupdro_leaves_absent_groups_unchanged():
    dro = training.GroupDROLoss(n_groups=2, eta=1.0)
    dro(torch.tensor([1.0, 1.0]), torch.tensor([0, 0]))
    assert dro.q[0] > 0.5
    with pytest.raises(ValueError, match="eta"):
        training.GroupDROLoss(2, eta=0)
    with pytest.raises(ValueError, match="n_groups"):
        training.GroupDROLoss(0)


def test_confusion_loss_is_minimal_for_uniform_predictions():
    uniform = torch.zeros(4, 2)
    confident = torch.tensor([[5.0, -5.0]] * 4)
    assert training.confusion_loss(uniform).item() == pytest.approx(np.log(2))
    assert training.confusion_loss(confident).item() > np.log(2) + 1
    three = torch.zeros(2, 3)
    assert training.confusion_loss(three).item() == pytest.approx(np.log(3))


@pytest.mark.parametrize("mitigation", training.MITIGATIONS)
def test_every_mitigation_trains(biased, mitigation):
    r = training.fit(biased, "tiny", mitigation=mitigation, seed=0, progress=False, epochs=2)
    assert r.config.mitigation == mitigation
    assert np.isfinite(r.history["train_loss"]).all()
    if mitigation == "groupdro":
        assert (r.history["groupdro_max_weight"] > 0.25).all()
    if mitigation == "unlearning":
        assert r.history["bias_head_accuracy"].between(0, 1).all()


def _bias_decodability(result, data) -> float:
    """Training accuracy of a logistic probe of the bias group on the penultimate features."""
    from sklearn.linear_model import LogisticRegression

    feats = models.penultimate_features(result.model, data.images).numpy()
    probe = LogisticRegression(max_iter=2000).fit(feats, data.bias_group)
    return probe.score(feats, data.bias_group)


def test_unlearning_makes_the_bias_harder_to_decode_than_erm():
    # a strong, easy bias and no disease signal: ERM features encode the bias
    data = training.toy_data(n=200, size=16, bias_prevalence=(0.9, 0.1), disease_strength=0.0, bias_strength=0.8, seed=0)
    erm = training.fit(data, "tiny", seed=0, progress=False, epochs=6, patience=None, lr=3e-3)
    unl = training.fit(
        data, "tiny", seed=0, progress=False, epochs=6, patience=None, lr=3e-3,
        mitigation="unlearning", unlearning_alpha=5.0,
    )
    assert _bias_decodability(unl, data) < _bias_decodability(erm, data)


def test_reweighing_loss_equals_weighted_mean(biased):
    # one step of reweighing and of ERM differ exactly by the sample weights
    w = torch.as_tensor(training.reweighing_weights(biased.label, biased.bias_group), dtype=torch.float32)
    per = torch.rand(len(w))
    assert float((per * w).mean()) != pytest.approx(float(per.mean()))
