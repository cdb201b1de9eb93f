"""Tests of faimi_tutorial.training: data handling, fit/predict, selection, checkpoints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from faimi_tutorial import training
from faimi_tutorial.training import ArrayData, TrainConfig


@pytest.fixture(scope="module")
def toy():
    return training.toy_data(n=160, size=16, bias_prevalence=(0.8, 0.2), seed=0)


def test_toy_data_has_the_requested_structure():
    d = training.toy_data(n=400, size=16, bias_prevalence=(0.9, 0.1), seed=1)
    assert d.images.shape == (400, 1, 16, 16)
    assert d.images.min() >= 0 and d.images.max() <= 1
    assert d.label.mean() == 0.5
    assert d.bias_group[d.label == 1].mean() > 0.8
    assert d.bias_group[d.label == 0].mean() < 0.2
    with pytest.raises(ValueError, match="size"):
        training.toy_data(size=4)
    with pytest.raises(ValueError, match="n="):
        training.toy_data(n=2)
    with pytest.raises(ValueError, match="bias_prevalence"):
        training.toy_data(bias_prevalence=(1.5, 0.1))


def test_array_data_adds_channel_axis_and_validates():
    d = ArrayData(np.zeros((5, 8, 8)), [0, 1, 0, 1, 0], [0, 0, 1, 1, 0])
    assert d.images.shape == (5, 1, 8, 8) and d.images.dtype == torch.float32
    assert d.in_shape == (1, 8, 8)
    assert len(d.subset([0, 2])) == 2
    assert len(d.subset(np.array([True, False, True, False, False]))) == 2
    with pytest.raises(ValueError, match="label"):
        ArrayData(np.zeros((5, 8, 8)), [0, 1], [0] * 5)
    with pytest.raises(ValueError, match="label"):
        ArrayData(np.zeros((2, 8, 8)), [0, 2], [0, 0])
    with pytest.raises(ValueError, match="bias_group"):
        ArrayData(np.zeros((2, 8, 8)), [0, 1], [0, -1])
    with pytest.raises(ValueError, match="images"):
        ArrayData(np.zeros((2, 8)), [0, 1], [0, 0])


def test_as_data_accepts_tuples_duck_typed_objects_and_tensors(toy):
    t = training.as_data((toy.images, toy.label, toy.bias_group))
    assert np.array_equal(t.label, toy.label)

    class Duck:
        images = toy.images
        meta = pd.DataFrame({"label": toy.label, "bias_group": toy.bias_group})

    d = training.as_data(Duck())
    assert np.array_equal(d.bias_group, toy.bias_group)
    bare = training.as_data(toy.images)
    assert len(bare) == len(toy) and bare.label.sum() == 0
    assert training.as_data(toy) is toy


def test_stratified_split_keeps_cells_and_is_disjoint(toy):
    a, b = training.stratified_split(toy.label, toy.bias_group, 0.25, seed=0)
    assert len(np.intersect1d(a, b)) == 0 and len(a) + len(b) == len(toy)
    cells = training.cell_ids(toy.label, toy.bias_group)
    for c in np.unique(cells):
        share = np.isin(np.flatnonzero(cells == c), b).mean()
        assert 0.1 < share < 0.45
    with pytest.raises(ValueError, match="fraction"):
        training.stratified_split(toy.label, toy.bias_group, 1.0)


def test_cell_ids():
    assert training.cell_ids(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("lr", 0.0),
        ("weight_decay", -1.0),
        ("patience", 0),
        ("mitigation", "magic"),
        ("selection", "best"),
        ("selection_metric", "f1"),
        ("groupdro_eta", 0.0),
        ("unlearning_alpha", -1.0),
        ("val_fraction", 1.0),
        ("model", "resnet"),
    ],
)
def test_train_config_rejects_invalid_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_train_config_preset_and_unknown_override():
    cfg = TrainConfig.preset("tiny", mitigation="groupdro")
    assert cfg.mitigation == "groupdro" and cfg.epochs == 3
    assert cfg.model_config((1, 16, 16)).channels == cfg.channels
    assert cfg.to_dict()["mitigation"] == "groupdro"
    with pytest.raises(ValueError, match="unknown training setting"):
        TrainConfig.preset("tiny", epochz=3)
    with pytest.raises(ValueError, match="preset"):
        TrainConfig.preset("huge")


def test_fit_learns_the_toy_problem_and_returns_history(toy):
    result = training.fit(toy, "tiny", seed=0, progress=False, epochs=4)
    hist = result.history
    assert list(hist["epoch"]) == list(range(1, len(hist) + 1))
    for col in ("train_loss", "val_loss", "val_accuracy", "val_auroc", "val_worst_group_accuracy", "seconds"):
        assert col in hist
    assert hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0]
    assert 1 <= result.best_epoch <= len(hist)
    assert not result.model.training
    scores = result.predict(toy)
    assert scores.shape == (len(toy),) and scores.min() >= 0 and scores.max() <= 1
    assert training.validation_metrics(toy.label, scores, toy.bias_group)["auroc"] > 0.8


def test_fit_repeats_exactly_on_cpu_with_the_same_seed(toy):
    a = training.fit(toy, "tiny", seed=5, progress=False, epochs=2, device="cpu")
    b = training.fit(toy, "tiny", seed=5, progress=False, epochs=2, device="cpu")
    c = training.fit(toy, "tiny", seed=6, progress=False, epochs=2, device="cpu")
    assert np.array_equal(a.predict(toy), b.predict(toy))
    pd.testing.assert_frame_equal(a.history.drop(columns="seconds"), b.history.drop(columns="seconds"))
    assert not np.array_equal(a.predict(toy), c.predict(toy))


def test_early_stopping_stops_when_validation_loss_stalls(toy):
    # lr so small that validation loss barely moves: patience 1 stops after two epochs
    result = training.fit(toy, "tiny", seed=0, progress=False, epochs=10, lr=1e-9, patience=1)
    assert result.stopped_early
    assert len(result.history) < 10
    full = training.fit(toy, "tiny", seed=0, progress=False, epochs=3, lr=1e-9, patience=None)
    assert len(full.history) == 3 and not full.stopped_early


def test_selection_keeps_the_best_epoch_by_its_rule(toy):
    for rule, column, best in [
        ("loss", "val_loss", "min"),
        ("overall", "val_accuracy", "max"),
        ("worst_group", "val_worst_group_accuracy", "max"),
    ]:
        r = training.fit(toy, "tiny", seed=1, progress=False, epochs=4, patience=None, selection=rule)
        values = r.history[column]
        target = values.min() if best == "min" else values.max()
        assert values.iloc[r.best_epoch - 1] == target
        # the kept weights are that epoch's: recomputing its metric reproduces it
        if column == "val_loss":
            continue
        val = training.loop._train_val(toy, None, r.config.val_fraction, 1)[1]
        metric = training.validation_metrics(val.label, r.predict(val), val.bias_group)
        assert metric[column.removeprefix("val_")] == pytest.approx(target)


def test_fit_uses_explicit_validation_data(toy):
    train, val = toy.subset(np.arange(100)), toy.subset(np.arange(100, 160))
    r = training.fit(train, "tiny", val=val, seed=0, progress=False, epochs=1)
    _, loss = training.loop._scores_and_loss(r.model, val, torch.device("cpu"))
    assert r.history["val_loss"].iloc[0] == pytest.approx(loss)


def test_fit_rejects_empty_validation():
    d = training.toy_data(n=8, size=8, seed=0)
    with pytest.raises(ValueError, match="validation"):
        training.fit(d, "tiny", val=d.subset([]), progress=False)


def test_predict_logits_and_plain_module(toy):
    r = training.fit(toy, "tiny", seed=0, progress=False, epochs=1)
    z = training.predict(r.model, toy.images, logits=True)
    p = training.predict(r, toy)
    assert np.allclose(1 / (1 + np.exp(-z)), p, atol=1e-6)


def test_checkpoint_round_trip_with_weights_only(tmp_path, toy):
    r = training.fit(toy, "tiny", seed=0, progress=False, epochs=2, checkpoint=tmp_path / "m.pt")
    assert (tmp_path / "m.pt").exists()
    payload = torch.load(tmp_path / "m.pt", weights_only=True)  # must not need pickled classes
    assert payload["format"] == training.CHECKPOINT_FORMAT
    back = training.load_checkpoint(tmp_path / "m.pt", device="cpu")
    assert np.allclose(back.predict(toy), r.predict(toy))
    assert back.best_epoch == r.best_epoch and back.config == r.config
    pd.testing.assert_frame_equal(back.history, r.history, check_dtype=False)
    again = r.save(tmp_path / "sub" / "again.pt")
    assert again.exists() and training.load_checkpoint(again).best_epoch == r.best_epoch
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="checkpoint"):
        training.load_checkpoint(tmp_path / "other.pt")


def test_fit_accepts_a_cohort_like_with_splits(toy):
    class Cohort:
        def __init__(self, data):
            self.images, self.label, self.bias_group = data.images, data.label, data.bias_group
            self.meta = pd.DataFrame({"split": ["train"] * 120 + ["val"] * 40})

        @property
        def train(self):
            return toy.subset(np.arange(120))

        @property
        def val(self):
            return toy.subset(np.arange(120, 160))

    r = training.fit(Cohort(toy), "tiny", seed=0, progress=False, epochs=1)
    val = toy.subset(np.arange(120, 160))
    _, loss = training.loop._scores_and_loss(r.model, val, torch.device("cpu"))
    assert r.history["val_loss"].iloc[0] == pytest.approx(loss)


def test_validation_metrics_worst_group():
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    g = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.9, 0.8, 0.1, 0.2, 0.9, 0.4, 0.1, 0.6])
    m = training.validation_metrics(y, s, g)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["worst_group_accuracy"] == pytest.approx(0.5)
    assert m["worst_group_auroc"] <= m["auroc"] <= 1


def test_fit_reads_a_dataset_folder_and_the_train_command(tmp_path, capsys):
    simulate = pytest.importorskip("faimi_tutorial.data.simulate")
    datasets = pytest.importorskip("faimi_tutorial.data.datasets")
    from faimi_tutorial import cli

    cfg = simulate.SimulationConfig.preset("tiny", dims=2, n_subjects=24, seed=0)
    cohort = simulate.generate(cfg, progress=False)
    folder = tmp_path / "ds"
    datasets.write_cohort(cohort, folder)
    r = training.fit(folder, "tiny", seed=0, progress=False, epochs=1)
    assert r.model_config.in_shape == tuple(cohort.images.shape[1:])
    code = cli.main(["train", str(folder), "--preset", "tiny", "--epochs", "1", "--quiet",
                     "--mitigation", "reweighing", "--checkpoint", str(tmp_path / "m.pt")])
    out = capsys.readouterr().out
    assert code == 0 and "selected epoch" in out and "test:" in out
    assert training.load_checkpoint(tmp_path / "m.pt").config.mitigation == "reweighing"
    assert cli.main(["train", str(tmp_path / "missing"), "--preset", "tiny", "--quiet"]) == 2


def test_plot_training_history(toy):
    import matplotlib

    matplotlib.use("Agg")
    from faimi_tutorial import plotting

    r = training.fit(toy, "tiny", seed=0, progress=False, epochs=2)
    fig = plotting.plot_training_history(r, metrics=("train_loss", "val_auroc"))
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines[0].get_xdata()) == len(r.history)
    fig = plotting.plot_training_history({"a": r, "b": r.history})
    assert len(fig.axes[-1].get_legend().get_texts()) == 2
    with pytest.raises(ValueError, match="metrics"):
        plotting.plot_training_history(r, metrics=("nope",))
    with pytest.raises(ValueError, match="DataFrame"):
        plotting.plot_training_history({"a": 3})
    matplotlib.pyplot.close("all")
