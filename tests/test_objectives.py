"""Training objectives and the one training loop (training.run_epochs)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from faimi_tutorial import objectives as O
from faimi_tutorial import training
from faimi_tutorial.models import build_model, forward_with_features


@pytest.fixture(scope="module")
def toy():
    return training.toy_data(n=96, size=16, seed=0)


def _model(toy, seed=0):
    torch.manual_seed(seed)
    config = training.TrainConfig.preset("tiny")
    return build_model(config.model_config(toy.in_shape))


def _batch(toy, index):
    idx = torch.as_tensor(index)
    y = torch.as_tensor(toy.label[index], dtype=torch.float32)
    return O.Batch(idx, toy.images[idx], y, torch.as_tensor(toy.bias_group[index]))


def _per_sample(model, batch):
    logits = model(batch.x).reshape(len(batch.index), -1)[:, 0]
    return F.binary_cross_entropy_with_logits(logits, batch.y, reduction="none")


def _setup(objective, model, toy):
    objective.setup(model, toy.label, toy.bias_group, torch.device("cpu"))
    return objective


# --------------------------------------------------------------------- objectives


def test_erm_is_the_mean_cross_entropy(toy):
    model = _model(toy)
    batch = _batch(toy, np.arange(8))
    per_sample = _per_sample(model, batch)
    loss = _setup(O.ERM(), model, toy).loss(per_sample, batch)
    assert float(loss.detach()) == pytest.approx(float(per_sample.detach().mean()))
    assert O.ERM().sampling_weights() is None and O.ERM().param_groups() == []


def test_reweighing_weighs_each_sample_by_its_cell(toy):
    model = _model(toy)
    batch = _batch(toy, np.arange(10, 30))
    per_sample = _per_sample(model, batch)
    obj = _setup(O.Reweighing(), model, toy)
    weights = O.reweighing_weights(toy.label, toy.bias_group)[10:30]
    expected = float((per_sample.detach().numpy() * weights).mean())
    loss = obj.loss(per_sample, batch).detach()
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert not np.allclose(weights, 1.0), "the toy data's cells are unbalanced"


def test_group_balanced_samples_cells_equally(toy):
    obj = _setup(O.GroupBalanced(), _model(toy), toy)
    p = obj.sampling_weights()
    cells = O.cell_ids(toy.label, toy.bias_group)
    shares = [p[cells == c].sum() for c in np.unique(cells)]
    assert np.allclose(shares, 1 / len(shares))


def test_groupdro_upweights_the_worst_cell_and_reports_it(toy):
    model = _model(toy)
    obj = _setup(O.GroupDRO(eta=1.0), model, toy)
    batch = _batch(toy, np.arange(32))
    per_sample = torch.zeros(32)
    worst = batch.y.long() * 2 + batch.groups
    per_sample[worst == int(worst[0])] = 3.0
    obj.loss(per_sample, batch)
    q = obj.dro.q
    assert int(q.argmax()) == int(worst[0])
    assert obj.epoch_metrics()["groupdro_max_weight"] == pytest.approx(float(q.max()))
    _setup(obj, model, toy)  # setup again starts from uniform weights
    assert torch.allclose(obj.dro.q, torch.full_like(obj.dro.q, 0.25))


def test_unlearning_adds_confusion_and_trains_its_head(toy):
    model = _model(toy)
    obj = _setup(O.Unlearning(alpha=2.0, head_lr=0.1, steps=1), model, toy)
    assert obj.needs_features
    batch = _batch(toy, np.arange(16))
    logits, features = forward_with_features(model, batch.x)
    per_sample = F.binary_cross_entropy_with_logits(logits, batch.y, reduction="none")
    confusion = obj.unlearner.confusion(features)
    loss = obj.loss(per_sample, batch, features)
    expected = float((per_sample.mean() + 2.0 * confusion).detach())
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)
    before = obj.unlearner.head.weight.detach().clone()
    obj.after_step(batch, features)
    assert not torch.equal(before, obj.unlearner.head.weight)
    assert 0.0 <= obj.epoch_metrics()["bias_head_accuracy"] <= 1.0


def test_attribute_task_adds_a_head_with_its_own_parameter_group(toy):
    model = _model(toy)
    obj = _setup(O.AttributeTask(lam=-1.0, weight=0.5), model, toy)
    groups = obj.param_groups()
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.0
    batch = _batch(toy, np.arange(16))
    logits, features = forward_with_features(model, batch.x)
    per_sample = F.binary_cross_entropy_with_logits(logits, batch.y, reduction="none")
    loss = obj.loss(per_sample, batch, features)
    metrics = obj.epoch_metrics()
    expected = float(per_sample.detach().mean()) + 0.5 * metrics["attribute_loss"]
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert 0.0 <= metrics["attribute_accuracy"] <= 1.0
    assert set(obj.best_state()["attribute_head"]) >= {"linear.weight", "linear.bias"}
    assert obj.label == "lambda=-1"


def test_fedprox_adds_the_proximal_term_to_any_objective(toy):
    model = _model(toy)
    batch = _batch(toy, np.arange(16))
    obj = _setup(O.FedProx(4.0, inner=O.GroupDRO()), model, toy)
    inner_alone = _setup(O.GroupDRO(), model, toy)
    per_sample = _per_sample(model, batch)
    at_start = obj.loss(per_sample, batch)
    alone = inner_alone.loss(per_sample, batch).detach()
    assert float(at_start.detach()) == pytest.approx(float(alone))
    plain = _setup(O.FedProx(4.0), model, toy)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    n = sum(p.numel() for p in model.parameters())
    per_sample = _per_sample(model, batch)
    moved = plain.loss(per_sample, batch) - per_sample.mean()
    assert float(moved.detach()) == pytest.approx(0.5 * 4.0 * n * 0.01, rel=1e-3)
    assert O.FedProx(0.1).label == "fedprox+none"
    assert O.FedProx(0.1, inner=O.Unlearning()).needs_features


def test_from_mitigation_maps_every_name_once():
    kinds = {name: type(O.from_mitigation(name)) for name in O.MITIGATIONS}
    assert kinds == {"none": O.ERM, "reweighing": O.Reweighing,
                     "group_balanced": O.GroupBalanced, "groupdro": O.GroupDRO,
                     "unlearning": O.Unlearning}
    unlearning = O.from_mitigation("unlearning", lr=2e-3, unlearning_alpha=0.5)
    assert unlearning.head_lr == pytest.approx(2e-2) and unlearning.alpha == 0.5
    assert O.from_mitigation("groupdro", groupdro_eta=0.3).eta == 0.3
    config = training.TrainConfig(mitigation="groupdro", groupdro_eta=0.2)
    assert isinstance(config.objective(), O.GroupDRO) and config.objective().eta == 0.2
    assert training.MITIGATIONS is O.MITIGATIONS


@pytest.mark.parametrize(
    "make, match",
    [(lambda: O.GroupDRO(eta=0), "eta"), (lambda: O.Unlearning(alpha=-1), "alpha"),
     (lambda: O.Unlearning(head_lr=0), "head_lr"),
     (lambda: O.Unlearning(steps=0), "steps"),
     (lambda: O.AttributeTask(lam=math.nan), "lam"),
     (lambda: O.AttributeTask(weight=-1), "attribute_weight"),
     (lambda: O.FedProx(-0.1), "mu"), (lambda: O.FedProx(0.1, inner="erm"), "inner"),
     (lambda: O.from_mitigation("bogus"), "mitigation"),
     (lambda: O.from_mitigation("unlearning", lr=0), "lr")],
)
def test_objectives_reject_bad_settings(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_objective_used_before_setup_says_so(toy):
    batch = _batch(toy, np.arange(4))
    with pytest.raises(ValueError, match="setup"):
        O.Reweighing().loss(torch.zeros(4), batch)


# --------------------------------------------------------------------- the loop


def test_run_epochs_trains_repeatably_and_keeps_last_weights_without_val(toy):
    runs = []
    for _ in range(2):
        model = _model(toy)
        run = training.run_epochs(model, toy, O.ERM(), epochs=3, batch_size=16, lr=1e-2,
                                  seed=4)
        runs.append((model, run))
    (m1, r1), (m2, r2) = runs
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(),
                                                 m2.state_dict().values()))
    assert r1.best_epoch == 3 and not r1.stopped_early and r1.steps == 3 * 6
    assert list(r1.history.columns) == ["epoch", "train_loss", "seconds"]
    assert r1.history["train_loss"].iloc[-1] < r1.history["train_loss"].iloc[0]
    assert r1.train_loss == pytest.approx(r1.history["train_loss"].mean())


def test_run_epochs_selects_on_validation_and_stops_early(toy):
    train, val = toy.subset(np.arange(64)), toy.subset(np.arange(64, 96))
    model = _model(toy)
    run = training.run_epochs(model, train, O.GroupDRO(), epochs=8, batch_size=16,
                              lr=0.2, val=val, patience=1, seed=0)
    hist = run.history
    assert {"val_loss", "val_auroc", "groupdro_max_weight"} <= set(hist.columns)
    assert run.best_epoch == int(hist["epoch"][hist["val_loss"].idxmin()])
    if run.stopped_early:
        assert len(hist) < 8
    _, loss = training.loop._scores_and_loss(model, val, torch.device("cpu"))
    assert loss == pytest.approx(hist["val_loss"].min(), rel=1e-5)


def test_run_epochs_seeds_new_heads_without_touching_the_global_stream(toy):
    heads = []
    for global_seed in (123, 456):
        model = _model(toy)
        torch.manual_seed(global_seed)
        before = torch.random.get_rng_state()
        obj = O.Unlearning()
        obj.setup(model, toy.label, toy.bias_group, torch.device("cpu"))
        assert not torch.equal(torch.random.get_rng_state(), before), "setup draws"
        torch.manual_seed(global_seed)
        training.run_epochs(model, toy, obj, epochs=1, batch_size=200, lr=1e-9,
                            head_seed=7)
        assert torch.equal(torch.random.get_rng_state(), before)
        heads.append(obj.unlearner.head.weight.detach().clone())
    assert torch.allclose(heads[0], heads[1], atol=1e-6)


def test_run_epochs_continues_an_optimizer_state(toy):
    model = _model(toy)
    first = training.run_epochs(model, toy, O.ERM(), epochs=1, batch_size=32, lr=1e-3)
    second = training.run_epochs(model, toy, O.ERM(), epochs=1, batch_size=32, lr=1e-3,
                                 optimizer_state=first.optimiser.state_dict())
    assert int(second.optimiser.state_dict()["state"][0]["step"]) == 2 * first.steps


@pytest.mark.parametrize(
    "kwargs, match",
    [({"objective": "none"}, "objective"), ({"epochs": 0}, "epochs"),
     ({"batch_size": 0}, "batch_size"), ({"lr": 0.0}, "lr"),
     ({"selection": "best"}, "selection"), ({"patience": 0}, "patience")],
)
def test_run_epochs_rejects_bad_settings(toy, kwargs, match):
    settings = {"objective": O.ERM(), "epochs": 1, "batch_size": 8, "lr": 1e-3,
                **kwargs}
    objective = settings.pop("objective")
    with pytest.raises(ValueError, match=match):
        training.run_epochs(_model(toy), toy, objective, **settings)


def test_run_epochs_rejects_empty_data(toy):
    with pytest.raises(ValueError, match="non-empty"):
        training.run_epochs(_model(toy), toy.subset(np.arange(0)), O.ERM(), epochs=1,
                            batch_size=8, lr=1e-3)


def test_fit_takes_an_objective_and_keeps_its_state(toy):
    result = training.fit(toy, "tiny", seed=0, progress=False, epochs=2, patience=None,
                          objective=O.AttributeTask(lam=0.5))
    assert "attribute_head" in result.extras
    assert {"attribute_loss", "attribute_accuracy"} <= set(result.history.columns)


def test_resolve_config_reads_presets_overrides_and_rejects_others(toy):
    base = training.resolve_config("tiny", toy, lr=0.01)
    assert base.lr == 0.01
    assert training.resolve_config(base, toy, epochs=2).epochs == 2
    assert training.resolve_config(base) is base
    with pytest.raises(ValueError, match="config"):
        training.resolve_config(3)


def test_setup_again_builds_a_fresh_head(toy):
    obj = O.AttributeTask()
    _setup(obj, _model(toy, 0), toy)
    first = obj.head
    _setup(obj, _model(toy, 1), toy)
    assert obj.head is not first and isinstance(obj.head, nn.Module)
