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
    batches = training.loop._batches(len(p), 32, g, p)
    drawn = cells[torch.cat(batches).numpy()]
    counts = np.bincount(drawn, minlength=4) / len(drawn)
    assert np.all(np.abs(counts - 0.25) < 0.08)
    # without the sampler the data's imbalance shows
    plain = cells[torch.cat(training.loop._batches(len(p), 32, g, None)).numpy()]
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


def _head_loss_after(unlearn: bool, seed: int = 0) -> float:
    """Train encoder + bias head on vectors whose first coordinate reveals the group.

    Returns the bias head's cross-entropy on the final features: near 0 when the
    head can read the group, near log 2 when it is kept confused.
    """
    torch.manual_seed(seed)
    a = torch.randint(0, 2, (256,))
    x = torch.randn(256, 4) * 0.3
    x[:, 0] += 2.0 * a - 1.0
    encoder = torch.nn.Linear(4, 4)
    opt = torch.optim.Adam(encoder.parameters(), lr=1e-2)
    unlearner = training.BiasUnlearner(4, 2, lr=5e-2, steps=2)
    for _ in range(300):
        if unlearn:
            opt.zero_grad()
            unlearner.confusion(encoder(x)).backward()
            opt.step()
        unlearner.update(encoder(x), a)
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(unlearner.head(encoder(x)), a))


@pytest.mark.parametrize("seed", [0, 1])
def test_unlearning_keeps_the_bias_head_confused(seed):
    # the head keeps learning throughout (two steps per batch), yet with the confusion
    # loss on the encoder it cannot settle on the group; without it, it reads it at once
    assert _head_loss_after(unlearn=False, seed=seed) < 0.1
    assert _head_loss_after(unlearn=True, seed=seed) > 0.2


def test_bias_unlearner_confusion_does_not_train_the_head():
    unlearner = training.BiasUnlearner(3, 2, lr=0.1)
    feats = torch.randn(8, 3, requires_grad=True)
    unlearner.confusion(feats).backward()
    assert feats.grad is not None
    assert all(p.grad is None for p in unlearner.head.parameters())
    before = [p.detach().clone() for p in unlearner.head.parameters()]
    acc = unlearner.update(feats, torch.randint(0, 2, (8,)))
    assert 0 <= acc <= 1
    assert any(not torch.equal(b, p) for b, p in zip(before, unlearner.head.parameters()))
    with pytest.raises(ValueError, match="n_groups"):
        training.BiasUnlearner(3, 1, lr=0.1)
    with pytest.raises(ValueError, match="steps"):
        training.BiasUnlearner(3, 2, lr=0.1, steps=0)


def test_reweighing_enters_the_loss_and_is_neutral_without_correlation(biased):
    # groups assigned so that every (label, group) cell has the same size: all weights are 1
    data = training.toy_data(n=96, size=16, seed=3)
    group = np.zeros(len(data), dtype=int)
    for y in (0, 1):
        idx = np.flatnonzero(data.label == y)
        group[idx[::2]] = 1
    even = training.ArrayData(data.images, data.label, group)
    assert np.allclose(training.reweighing_weights(even.label, even.bias_group), 1.0)
    kw = dict(seed=0, progress=False, epochs=1, device="cpu")
    erm = training.fit(even, "tiny", **kw)
    rw = training.fit(even, "tiny", mitigation="reweighing", **kw)
    assert np.array_equal(erm.predict(even), rw.predict(even))
    # with label-group correlation the weights differ from 1 and change the model
    erm_b = training.fit(biased, "tiny", **kw)
    rw_b = training.fit(biased, "tiny", mitigation="reweighing", **kw)
    assert not np.allclose(erm_b.predict(biased), rw_b.predict(biased))
