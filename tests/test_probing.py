"""Tests of faimi_tutorial.experiments.probing: hooks, held-out probes, components and ShorT."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from faimi_tutorial import metrics, models, probing, training
from faimi_tutorial.experiments.probing import ProbeConfig

FAST = ProbeConfig(n_folds=3, n_boot=50)


@pytest.fixture(scope="module")
def toy():
    return training.toy_data(n=160, size=16, bias_prevalence=(0.8, 0.2), seed=0)


@pytest.fixture(scope="module")
def tiny_model(toy):
    torch.manual_seed(0)
    return models.build_model("tiny", in_shape=toy.in_shape)


def gaussian_features(n=300, d=40, shift=2.5, seed=0):
    """Features where the first axis carries a binary target."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.standard_normal((n, d))
    x[:, 0] += shift * y
    return x, y


# --------------------------------------------------------------------- activations


def test_collect_activations_reads_every_block_input_and_penultimate(toy, tiny_model):
    names = ["input", *models.layer_names(tiny_model), "penultimate"]
    acts = probing.collect_activations(tiny_model, toy.images, names, batch_size=50)
    assert list(acts) == names
    assert all(a.shape[0] == len(toy) and a.dtype == np.float32 for a in acts.values())
    assert acts["input"].shape[1] == 16 * 16
    assert np.allclose(acts["input"], toy.images.reshape(len(toy), -1).numpy())
    # penultimate = what the last linear layer reads
    expected = models.penultimate_features(tiny_model, toy.images).numpy()
    assert np.allclose(acts["penultimate"], expected, atol=1e-5)
    # hooks are removed afterwards
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in tiny_model.modules())


def test_collect_activations_default_layers_any_module_and_errors(toy, tiny_model):
    acts = probing.collect_activations(tiny_model, toy)
    assert list(acts) == models.layer_names(tiny_model)

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3)
            self.head = nn.Linear(3, 1)

        def forward(self, x):
            return self.head(self.conv(x).mean(dim=(2, 3)))

    plain = Plain()
    out = probing.collect_activations(plain, torch.zeros(5, 1, 8, 8), ["conv", "penultimate"])
    assert out["conv"].shape == (5, 3 * 6 * 6) and out["penultimate"].shape == (5, 3)
    with pytest.raises(ValueError, match="not modules"):
        probing.collect_activations(plain, torch.zeros(2, 1, 8, 8), ["nope"])
    with pytest.raises(ValueError, match="no known feature blocks"):
        probing.collect_activations(plain, torch.zeros(2, 1, 8, 8))


def test_collect_activations_pools_large_layers(toy, tiny_model):
    acts = probing.collect_activations(tiny_model, toy.images, ["input"], max_features=64)
    assert acts["input"].shape == (len(toy), 64)
    # average pooling keeps the mean intensity of each image
    assert np.allclose(acts["input"].mean(1), toy.images.reshape(len(toy), -1).numpy().mean(1), atol=1e-5)


# --------------------------------------------------------------------- probes


def test_probe_config_validates_and_names_the_field():
    for field, value in (("variance", 0.0), ("n_folds", 1), ("C", -1.0), ("n_boot", -1),
                         ("confidence", 1.0), ("seed", -2), ("max_iter", 1)):
        with pytest.raises(ValueError, match=field):
            ProbeConfig(**{field: value})


def test_probe_decodes_signal_and_random_labels_decode_at_chance():
    x, y = gaussian_features()
    strong = probing.probe(x, y, FAST)
    assert strong.auroc > 0.8 and strong.auroc_low > 0.7
    assert strong.auroc_low <= strong.auroc <= strong.auroc_high
    assert strong.accuracy_low <= strong.accuracy <= strong.accuracy_high
    assert 1 <= strong.n_components <= x.shape[1]
    # a random-label control: if scores were not held out, a high-dimensional probe
    # would fit these labels; held out, it decodes at chance
    rng = np.random.default_rng(1)
    aucs = [probing.probe(x, rng.integers(0, 2, len(y)), ProbeConfig(n_folds=3, n_boot=0, seed=s)).auroc
            for s in range(4)]
    assert abs(np.mean(aucs) - 0.5) < 0.08


def test_probe_scores_are_held_out_not_refitted():
    # more features than samples: a probe scored on its own training data separates
    # random labels perfectly; the held-out probe must not
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 200))
    y = rng.integers(0, 2, 80)
    result = probing.probe(x, y, ProbeConfig(variance=1.0, n_folds=4, n_boot=0, C=100.0))
    pipe = probing._Probe(ProbeConfig(variance=1.0, C=100.0)).fit(x, y)
    in_sample = metrics.auroc(y, pipe.predict_proba(x)[:, 1])
    assert in_sample > 0.99
    assert result.auroc < 0.75


def test_probe_balance_removes_decoding_through_a_correlated_attribute():
    # the "bias" here is readable only through the label it is correlated with
    rng = np.random.default_rng(0)
    n = 600
    label = np.arange(n) % 2
    bias = np.where(label == 1, rng.random(n) < 0.85, rng.random(n) < 0.15).astype(int)
    x = rng.standard_normal((n, 10))
    x[:, 0] += 3.0 * label
    cfg = ProbeConfig(n_folds=3, n_boot=0)
    confounded = probing.probe(x, bias, cfg)
    balanced = probing.probe(x, bias, cfg, balance=label)
    assert confounded.auroc > 0.75
    assert abs(balanced.auroc - 0.5) < 0.12
    # balanced subsample: equal cells
    cells = pd.crosstab(balanced.target, label[balanced.index])
    assert cells.to_numpy().min() == cells.to_numpy().max()


@pytest.mark.parametrize("shape", [(50, 8), (30, 120)])
def test_internal_pca_matches_sklearn(shape):
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) @ np.diag(np.linspace(3, 0.1, shape[1]))
    ours = probing._PCA(variance=0.9).fit(x)
    ref = PCA(n_components=0.9, svd_solver="full").fit(x)
    assert ours.n_components_ == ref.n_components_
    assert np.allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_)
    assert np.allclose(np.abs(ours.transform(x)), np.abs(ref.transform(x)), atol=1e-8)


def test_probe_errors():
    x, y = gaussian_features(n=20)
    with pytest.raises(ValueError, match="two classes"):
        probing.probe(x, np.zeros(20))
    with pytest.raises(ValueError, match="samples"):
        probing.probe(x, y[:10])
    with pytest.raises(ValueError, match="n_folds"):
        probing.probe(x[:6], [0, 1, 1, 1, 1, 1], ProbeConfig(n_folds=3))


def test_balanced_index_equalises_cells():
    a = np.array([0] * 10 + [1] * 4)
    b = np.array([0, 1] * 7)
    idx = probing.balanced_index(a, b, seed=0)
    table = pd.crosstab(a[idx], b[idx]).to_numpy()
    assert (table == table.min()).all() and table.min() == 2
    assert np.array_equal(idx, probing.balanced_index(a, b, seed=0))
    with pytest.raises(ValueError, match="lengths"):
        probing.balanced_index(a, b[:3])
    with pytest.raises(ValueError, match="at least one"):
        probing.balanced_index()


def test_probe_layers_and_probe_model(toy, tiny_model):
    acts = {"a": gaussian_features(seed=0)[0], "b": gaussian_features(shift=0.0, seed=1)[0]}
    y = gaussian_features()[1]
    df = probing.probe_layers(acts, {"y": y}, FAST)
    assert list(df["layer"]) == ["a", "b"] and list(df["depth"]) == [0, 1]
    assert df.loc[0, "auroc"] > df.loc[1, "auroc"]
    with pytest.raises(ValueError, match="not targets"):
        probing.probe_layers(acts, {"y": y}, FAST, balance={"z": y})

    table = probing.probe_model(tiny_model, toy, ["input", "penultimate"], FAST)
    assert set(table["target"]) == {"bias_group", "label"}
    assert len(table) == 4
    # the toy bias blob is plainly visible in the input
    row = table[(table.layer == "input") & (table.target == "bias_group")].iloc[0]
    assert row["auroc"] > 0.9
    with pytest.raises(ValueError, match="not known"):
        probing.probe_model(tiny_model, toy, ["input"], FAST, targets=("age",))


# --------------------------------------------------------------------- components


def test_component_encoding_finds_the_informative_component():
    rng = np.random.default_rng(0)
    n = 400
    y = np.arange(n) % 2
    x = rng.standard_normal((n, 6)) * np.array([5.0, 3.0, 1.0, 1.0, 1.0, 1.0])
    x[:, 1] += 4.0 * y  # the second-largest direction carries the target
    df = probing.component_encoding(x, {"y": y}, n_components=4, config=FAST)
    assert list(df["component"]) == [1, 2, 3, 4]
    best = df.loc[df["auroc"].idxmax(), "component"]
    assert best in (1, 2)
    assert df["auroc"].max() > 0.85
    assert df["explained_variance"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="n_components"):
        probing.component_encoding(x, {"y": y}, n_components=0)


def test_subgroup_names_and_projection():
    names = probing.subgroup_names([1, 0, 1, 0], [1, 0, 0, 1])
    assert list(names) == list(probing.SUBGROUPS)
    with pytest.raises(ValueError, match="codes"):
        probing.subgroup_names([2], [0])
    rng = np.random.default_rng(0)
    n = 400
    label = np.arange(n) % 2
    bias = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 8))
    x[:, 0] += 3.0 * label
    x[:, 3] += 2.0 * bias
    proj = probing.component_projection(x, label, bias, n_components=5, seed=0)
    # only held-out subjects come back, and the disease component points to disease
    assert len(proj) < n and proj["index"].is_unique
    assert proj.groupby("label")["disease_component"].mean().diff().iloc[-1] > 0
    assert proj.groupby("bias_group")["bias_component"].mean().diff().iloc[-1] > 0
    assert proj.attrs["disease_component"] != proj.attrs["bias_component"]
    assert set(proj["subgroup"]) == set(probing.SUBGROUPS)
    assert (proj["aligned"] == (proj["label"] == proj["bias_group"])).all()


# --------------------------------------------------------------------- ShorT


@pytest.mark.parametrize("lam", [-1.0, 0.0, 0.5])
def test_gradient_scale_scales_the_gradient(lam):
    x = torch.ones(3, requires_grad=True)
    y = probing.GradientScale(lam)(x)
    assert torch.equal(y, x)
    (2 * y).sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), 2 * lam))
    with pytest.raises(ValueError, match="lam"):
        probing.GradientScale(float("nan"))


def test_attribute_head_trains_its_own_weights_whatever_lambda():
    head = probing.AttributeHead(4, lam=-1.0)
    feats = torch.randn(6, 4, requires_grad=True)
    torch.nn.functional.cross_entropy(head(feats), torch.tensor([0, 1, 0, 1, 0, 1])).backward()
    plain = probing.AttributeHead(4, lam=1.0)
    plain.load_state_dict(head.state_dict())
    feats2 = feats.detach().clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(plain(feats2), torch.tensor([0, 1, 0, 1, 0, 1])).backward()
    assert torch.allclose(head.linear.weight.grad, plain.linear.weight.grad)
    assert torch.allclose(feats.grad, -feats2.grad)
    with pytest.raises(ValueError, match="in_features"):
        probing.AttributeHead(0, lam=1.0)


def test_fit_attribute_head_reverses_or_adds_encoding(toy):
    runs = {}
    for lam in (-1.0, 1.0):
        r = probing.fit_attribute_head(toy, "tiny", lam=lam, seed=0, progress=False, epochs=2, patience=None)
        assert {"attribute_loss", "attribute_accuracy", "val_loss"} <= set(r.history.columns)
        assert r.extras["lam"] == lam and "linear.weight" in r.extras["attribute_head"]
        assert len(r.history) == 2
        runs[lam] = r
    scores = training.predict(runs[1.0], toy)
    assert scores.shape == (len(toy),) and np.all((scores >= 0) & (scores <= 1))
    # same seed, different lambda: the gradient into the network differs
    w = [next(runs[lam].model.parameters()) for lam in (-1.0, 1.0)]
    assert not torch.allclose(w[0], w[1])
    with pytest.raises(ValueError, match="attribute_weight"):
        probing.fit_attribute_head(toy, "tiny", lam=0.0, attribute_weight=-1)
    with pytest.raises(ValueError, match="mitigation"):
        probing.fit_attribute_head(toy, "tiny", lam=0.0, mitigation="reweighing")


def test_encoding_strength_reads_the_bias_from_a_model(toy, tiny_model):
    result = probing.encoding_strength(tiny_model, toy, "input", config=FAST)
    assert result.auroc > 0.9  # the toy bias blob is in the image
    assert result.n < len(toy)  # balanced against the label


def test_short_sweep_and_short_test(toy):
    runs = probing.short_sweep(toy, lambdas=(-1.0, 1.0), seeds=(0,), config="tiny", test=toy,
                               probe_config=FAST, progress=False, epochs=1, patience=None)
    assert list(runs["lam"]) == [-1.0, 1.0]
    assert {"encoding_auroc", "TPR_gap", "FPR_gap", "AUROC", "attribute_accuracy"} <= set(runs.columns)
    assert runs["encoding_auroc"].between(0, 1).all()
    table, kept = probing.short_sweep(toy, lambdas=(0.0,), seeds=(1,), config="tiny", test=toy,
                                      probe_config=FAST, progress=False, keep_models=True,
                                      epochs=1, patience=None)
    assert list(kept) == [(0.0, 1)] and len(table) == 1
    # lam = 0 blocks the head's gradient: the model is the plain ERM model of that seed
    plain = training.fit(toy, "tiny", seed=1, progress=False, epochs=1, patience=None)
    assert np.allclose(training.predict(kept[(0.0, 1)], toy), training.predict(plain, toy), atol=1e-5)
    with pytest.raises(ValueError, match="non-empty"):
        probing.short_sweep(toy, lambdas=())


def test_fit_attribute_head_selects_as_fit_does(toy):
    # lam = 0 with the configuration's own selection rule: the same epoch and model as fit
    settings = dict(epochs=4, patience=None, selection="overall", selection_metric="auroc")
    plain = training.fit(toy, "tiny", seed=2, progress=False, **settings)
    short = probing.fit_attribute_head(toy, "tiny", lam=0.0, seed=2, progress=False, **settings)
    assert short.best_epoch == plain.best_epoch
    assert np.allclose(training.predict(short, toy), training.predict(plain, toy), atol=1e-5)
    best = short.history["val_auroc"].idxmax()
    assert short.best_epoch == int(short.history.loc[best, "epoch"])


def test_selection_score_follows_the_rule():
    metrics = {"auroc": 0.8, "worst_group_auroc": 0.6, "accuracy": 0.7}
    cfg = training.TrainConfig.preset("tiny")
    assert training.selection_score(cfg, metrics, 0.3) == -0.3 or cfg.selection != "loss"
    for rule, expected in (("loss", -0.3), ("overall", 0.8), ("worst_group", 0.6)):
        c = training.TrainConfig.preset("tiny", selection=rule, selection_metric="auroc")
        assert training.selection_score(c, metrics, 0.3) == pytest.approx(expected)


def test_short_evaluate_accepts_a_plain_model(toy):
    plain = training.fit(toy, "tiny", seed=0, progress=False, epochs=1, patience=None)
    row = probing.short_evaluate(plain, toy, lam=0.0, probe_config=FAST)
    assert row["lam"] == 0.0 and row["seed"] == 0 and np.isnan(row["attribute_accuracy"])
    assert 0 <= row["encoding_auroc"] <= 1 and "TPR_gap" in row and "FPR_gap" in row


def test_short_test_detects_a_relation_and_its_absence():
    rng = np.random.default_rng(0)
    enc = np.linspace(0.55, 0.95, 12)
    related = pd.DataFrame({"encoding_auroc": enc, "TPR_gap": 0.5 * enc + rng.normal(0, 0.01, 12)})
    test = probing.short_test(related, n_boot=300)
    assert test.shortcut and test.slope_low > 0.3 and test.spearman > 0.9
    flat = pd.DataFrame({"encoding_auroc": enc, "TPR_gap": 0.05 * (-1.0) ** np.arange(12)})
    assert not probing.short_test(flat, n_boot=300).shortcut
    assert probing.short_test(flat, n_boot=50).as_dict()["n_runs"] == 12
    with pytest.raises(ValueError, match="column"):
        probing.short_test(flat, y="nope")
    with pytest.raises(ValueError, match="at least 3"):
        probing.short_test(flat.head(2))


def test_short_verdict_follows_the_trend_test_not_the_slope_interval():
    # a noisy trend: the bootstrap slope interval excludes zero, the rank test does not
    enc = np.linspace(0.6, 0.9, 8)
    gap = [0.205, 0.104, 0.197, 0.262, 0.194, 0.246, 0.302, 0.235]
    runs = pd.DataFrame({"encoding_auroc": enc, "TPR_gap": gap})
    test = probing.short_test(runs, n_boot=2000)
    assert test.slope_low > 0 and test.spearman_p > 0.05
    assert not test.shortcut  # the old verdict (slope interval) said True
    assert test.verdict.startswith("no shortcut shown") and "p = " in test.verdict
    loose = probing.short_test(runs, n_boot=200, alpha=0.2)
    assert loose.shortcut and loose.verdict.startswith("shortcut: the TPR_gap rises")
    assert loose.as_dict()["verdict"] == loose.verdict and loose.as_dict()["alpha"] == 0.2
    with pytest.raises(ValueError, match="alpha"):
        probing.short_test(runs, alpha=1.0)


def test_short_test_within_seeds_ignores_differences_between_cohorts():
    # across seeds, encoding and gap rise together; within each seed the gap
    # does not follow the encoding
    rows = []
    for seed in range(5):
        for k, enc in enumerate(np.linspace(-0.02, 0.02, 5)):
            rows.append({"seed": seed, "encoding_auroc": 0.55 + 0.03 * seed + enc,
                         "TPR_gap": 0.02 * seed + 0.01 * (-1) ** k})
    runs = pd.DataFrame(rows)
    assert probing.short_test(runs, n_boot=100).shortcut
    within = probing.short_test(runs, n_boot=100, within="seed")
    assert not within.shortcut and within.within == "seed"
    assert "within each seed" in within.verdict
    with pytest.raises(ValueError, match="column"):
        probing.short_test(runs, within="nope")


# --------------------------------------------------------------------- references and twins


@pytest.fixture(scope="module")
def tiny_cohort():
    from faimi_tutorial import simulate

    cfg = simulate.SimulationConfig.preset("tiny", dims=2, n_subjects=64, bias_prevalence=(0.5, 0.5), seed=3)
    return simulate.generate(cfg, progress=False)


def test_untrained_model_is_the_start_of_fit(toy):
    net = probing.untrained_model(toy.in_shape, "tiny", seed=4)
    again = probing.untrained_model(toy, "tiny", seed=4)
    other = probing.untrained_model(toy.in_shape, "tiny", seed=5)
    state, state2, state3 = net.state_dict(), again.state_dict(), other.state_dict()
    assert not net.training
    assert all(torch.equal(state[k], state2[k]) for k in state)
    assert any(not torch.equal(state[k], state3[k]) for k in state if state[k].is_floating_point())
    # a fit with a vanishing learning rate ends where the untrained network starts
    fitted = training.fit(toy, "tiny", seed=4, progress=False, epochs=1, patience=None, lr=1e-12)
    fitted_state = fitted.model.state_dict()
    assert set(fitted_state) == set(state)
    assert all(torch.allclose(fitted_state[k].float(), state[k].float(), atol=1e-6) for k in state)


def test_twin_sensitivity_input_layer_is_the_image_change(tiny_cohort, tiny_model):
    net = probing.untrained_model(tiny_cohort, "tiny", seed=0)
    table = probing.twin_sensitivity(net, tiny_cohort, ["input", "net.layer_0", "penultimate"], n_boot=50)
    assert list(table["layer"]) == ["input", "net.layer_0", "penultimate"]
    members = np.flatnonzero(tiny_cohort.bias_group == 1)
    x = tiny_cohort.images[members].reshape(len(members), -1).double()
    t = tiny_cohort.twins[members].reshape(len(members), -1).double()
    expected = ((x - t).norm(dim=1) / x.norm(dim=1)).mean().item()
    row = table.iloc[0]
    assert row["sensitivity"] == pytest.approx(expected, rel=1e-4) and row["n"] == len(members)
    assert (table["sensitivity_low"] <= table["sensitivity"]).all()
    assert (table["sensitivity"] <= table["sensitivity_high"]).all()
    same = probing.twin_sensitivity(net, tiny_cohort.images, ["input"], twins=tiny_cohort.images, n_boot=10)
    assert same["sensitivity"].iloc[0] == 0.0
    with pytest.raises(ValueError, match="twins"):
        probing.twin_sensitivity(net, tiny_cohort.images, ["input"])


def test_disease_shift_measures_the_bias_along_the_disease_direction():
    rng = np.random.default_rng(0)
    n = 400
    y = np.arange(n) % 2
    a = (np.arange(n) // 2) % 2
    base = rng.standard_normal((n, 6)) * [1.0, 0.3, 0.3, 0.3, 0.3, 0.3]
    base[:, 0] += 3.0 * y  # the disease direction
    twins = base.copy()
    shifted = base.copy()
    shifted[:, 0] += 1.0 * a  # the bias feature pushes towards disease
    table = probing.disease_shift(shifted, twins, y, a, n_components=4)
    assert set(table["label"]) == {0, 1} and (table["subgroup"].str.contains(", bias")).all()
    assert table["shift"].mean() > 0.2
    assert table.attrs["disease_separation"] > 1.0
    orthogonal = base.copy()
    orthogonal[:, 3] += 1.0 * a  # the bias feature moves nothing along the disease
    assert abs(probing.disease_shift(orthogonal, twins, y, a, n_components=4)["shift"].mean()) < 0.05
    with pytest.raises(ValueError, match="twin_features"):
        probing.disease_shift(shifted, twins[:, :3], y, a)


def test_model_disease_shift_summarises_with_intervals(tiny_cohort):
    net = probing.untrained_model(tiny_cohort, "tiny", seed=0)
    row = probing.model_disease_shift(net, tiny_cohort, "penultimate", n_components=4, n_boot=50)
    assert row["layer"] == "penultimate" and row["n"] > 0
    assert row["shift_low"] <= row["shift"] <= row["shift_high"]
    assert {"shift_controls", "shift_diseased", "disease_separation", "disease_component"} <= set(row)
    with pytest.raises(ValueError, match="twins"):
        probing.model_disease_shift(net, tiny_cohort.images, "penultimate")


# --------------------------------------------------------------------- statistics over seeds


def test_seed_summary_and_compare_to_reference():
    rows = []
    for seed in range(5):
        for layer, depth in [("a", 0), ("b", 1)]:
            rows.append({"model": "untrained", "layer": layer, "depth": depth, "seed": seed, "auroc": 0.7 + 0.01 * seed})
            rows.append({"model": "trained", "layer": layer, "depth": depth, "seed": seed,
                         "auroc": 0.7 + 0.01 * seed + (0.1 if layer == "b" else 0.01 * (-1) ** seed)})
    table = pd.DataFrame(rows)
    summary = probing.seed_summary(table, "auroc", ["model", "layer"], n_boot=500)
    assert len(summary) == 4 and (summary["n_runs"] == 5).all() and "depth" in summary
    assert (summary["auroc_low"] <= summary["auroc"]).all() and (summary["auroc_high"] <= 1).all()
    rates = pd.DataFrame({"setting": "a", "seed": range(5), "TPR": [0.97, 0.99, 1.0, 1.0, 0.98]})
    row = probing.seed_summary(rates, "TPR", "setting").iloc[0]
    assert 0.97 <= row["TPR_low"] <= row["TPR"] <= row["TPR_high"] <= 1.0  # a t-interval passes 1
    with pytest.raises(ValueError, match="n_boot"):
        probing.seed_summary(rates, "TPR", "setting", n_boot=0)
    diff = probing.compare_to_reference(table, "auroc", "model", "untrained", by="layer", n_boot=500)
    verdicts = dict(zip(diff["layer"], diff["verdict"]))
    assert verdicts == {"a": "no difference shown", "b": "higher"}
    b = diff.set_index("layer").loc["b"]
    assert b["difference"] == pytest.approx(0.1) and b["n_pairs"] == 5 and b["n_positive"] == 5
    boot = probing.compare_to_reference(table, "auroc", "model", "untrained", by="layer", method="bootstrap")
    assert list(boot["verdict"]) == ["no difference shown", "higher"]
    with pytest.raises(ValueError, match="reference"):
        probing.compare_to_reference(table, "auroc", "model", "nope")
    with pytest.raises(ValueError, match="method"):
        probing.compare_to_reference(table, "auroc", "model", "untrained", method="z")


# --------------------------------------------------------------------- figures


def test_probing_figures_draw_from_results():
    import matplotlib

    matplotlib.use("Agg")
    from faimi_tutorial import plotting

    x, y = gaussian_features()
    acts = {"a": x, "b": x[:, 1:]}
    table = probing.probe_layers(acts, {"label": y}, FAST)
    table["model"] = "m"
    fig = plotting.plot_layer_probes(table, target="label", by="model")
    assert len(fig.axes[0].lines) >= 1
    with pytest.raises(ValueError, match="target"):
        plotting.plot_layer_probes(table, target="nope")
    comp = probing.component_encoding(x, {"label": y}, n_components=3, config=FAST)
    assert len(plotting.plot_component_encoding(comp).axes[0].patches) == 3
    bias = np.random.default_rng(0).integers(0, 2, len(y))
    proj = probing.component_projection(x, y, bias, n_components=4)
    assert len(plotting.plot_subgroup_projection(proj).axes) == 2
    runs = pd.DataFrame({"encoding_auroc": [0.6, 0.7, 0.8, 0.9], "TPR_gap": [0.0, 0.05, 0.1, 0.2],
                         "lam": [-1.0, 0.0, 0.5, 1.0]})
    curves = probing.seed_summary(table.assign(seed=0), "auroc", ["model", "layer"], n_boot=20)
    fig = plotting.plot_layer_curves(curves, "auroc", reference={"raw input": 0.9}, chance=0.5)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "raw input" in labels and "m" in labels
    with pytest.raises(ValueError, match="columns"):
        plotting.plot_layer_curves(curves, "nope")
    fig = plotting.plot_short(runs, probing.short_test(runs, n_boot=50))
    assert fig.axes[0].get_xlabel() == "encoding auroc"
    matplotlib.pyplot.close("all")


def test_layer_report_reads_every_model_on_the_same_subjects(tiny_cohort):
    nets = {"untrained": probing.untrained_model(tiny_cohort, "tiny", seed=0),
            "other": [probing.untrained_model(tiny_cohort, "tiny", seed=s) for s in (1, 2)]}
    report = probing.layer_report(nets, tiny_cohort, ["input", "net.layer_0"], FAST, n_components=3)
    assert set(report) == {"probes", "sensitivity", "shift"}
    for table in report.values():
        assert list(dict.fromkeys(table["model"])) == ["untrained", "other"]
        assert set(table["layer"]) == {"input", "net.layer_0"}
    sens = report["sensitivity"].set_index(["model", "layer"])["sensitivity"]
    assert sens["untrained", "input"] == pytest.approx(sens["other", "input"])  # the raw reference
    assert {"shift", "shift_low", "shift_high", "depth"} <= set(report["shift"].columns)
    assert sorted(set(zip(report["probes"]["model"], report["probes"]["seed"]))) == [
        ("other", 0), ("other", 1), ("untrained", 0)]  # positions: plain networks have no seed
    with pytest.raises(ValueError, match="empty"):
        probing.layer_report({}, tiny_cohort)


def _reference_bootstrap(y, s, threshold, n_boot, confidence, seed):
    """The probe intervals as first written: rank-sum AUROC, classes drawn in turn."""
    from scipy.stats import rankdata

    def rank_auroc(yy, ss):
        n1 = int(yy.sum())
        n0 = len(yy) - n1
        ranks = rankdata(ss)
        return float((ranks[yy == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))

    rng = np.random.default_rng(seed)
    acc, auc = [], []
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    correct = ((s >= threshold).astype(np.int64) == y).astype(np.float64)
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        acc.append(correct[idx].mean())
        auc.append(rank_auroc(y[idx], s[idx]))
    a = (1 - confidence) / 2 * 100
    return (float(np.percentile(acc, a)), float(np.percentile(acc, 100 - a)),
            float(np.percentile(auc, a)), float(np.percentile(auc, 100 - a)))


@pytest.mark.parametrize("seed", [0, 5])
def test_probe_intervals_unchanged_by_the_shared_bootstrap(seed):
    # same draws, same AUROC to the last bit: the published intervals do not move
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 90)
    s = np.round(np.clip(0.3 * y + rng.uniform(0, 0.7, 90), 0, 1), 2)
    got = probing._bootstrap(y, s, 0.5, 200, 0.95, seed)
    assert got == _reference_bootstrap(y, s, 0.5, 200, 0.95, seed)
    assert probing._bootstrap(y, s, 0.5, 200, 0.95, seed + 1) != got


def test_short_test_slope_interval_unchanged_by_the_shared_bootstrap():
    rng = np.random.default_rng(1)
    enc = np.linspace(0.55, 0.95, 10)
    runs = pd.DataFrame({"encoding_auroc": enc, "TPR_gap": 0.4 * enc + rng.normal(0, 0.05, 10)})
    test = probing.short_test(runs, n_boot=400, seed=3)
    u, v = runs["encoding_auroc"].to_numpy(), runs["TPR_gap"].to_numpy()
    draw = np.random.default_rng(3)
    slopes = []
    for _ in range(400):
        idx = draw.integers(0, len(u), len(u))
        if np.ptp(u[idx]) > 0:
            slopes.append(np.polyfit(u[idx], v[idx], 1)[0])
    a = (1 - 0.95) / 2 * 100
    assert (test.slope_low, test.slope_high) == tuple(np.percentile(slopes, [a, 100 - a]))
