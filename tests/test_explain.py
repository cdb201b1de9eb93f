"""Tests of faimi_tutorial.experiments.explain: saliency maps and attribution per region."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from faimi_tutorial import explain, training

SIZE = 16


class KeepCorner(nn.Module):
    """Zero every feature outside the top-left corner."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros_like(x)
        mask[:, :, 1:5, 1:5] = 1.0
        return x * mask


class CornerModel(nn.Module):
    """A fixed 'model' whose logit is the mean brightness of the top-left corner minus 0.5."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), KeepCorner())
        self.final = nn.Linear(1, 1)
        with torch.no_grad():
            self.net[0].weight.fill_(1.0)
            self.final.weight.fill_(1.0)
            self.final.bias.fill_(-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x)[:, :, 1:5, 1:5].mean(dim=(1, 2, 3))
        return self.final(h[:, None])


def _masks():
    corner = np.zeros((SIZE, SIZE), bool)
    corner[1:5, 1:5] = True
    centre = np.zeros((SIZE, SIZE), bool)
    centre[6:10, 6:10] = True
    return {"corner": corner, "centre": centre}


@pytest.fixture(scope="module")
def data():
    return training.toy_data(n=40, size=SIZE, bias_prevalence=(1.0, 0.0), seed=0)


def test_two_class_view():
    model = CornerModel()
    x = torch.rand(3, 1, SIZE, SIZE)
    out = explain.TwoClassView(model)(x)
    assert out.shape == (3, 2)
    assert torch.allclose(out[:, 0], -out[:, 1])


@pytest.mark.parametrize("method", explain.METHODS)
def test_saliency_of_a_corner_model_lies_in_the_corner(method, data):
    maps = explain.saliency(CornerModel(), data.images[:6], method, target="positive", mask_size=4)
    assert maps.shape == (6, SIZE, SIZE)
    assert maps.min() >= 0
    shares = explain.attribution_share(maps, _masks())
    assert (shares["corner"] > shares["centre"]).all()
    chance = explain.chance_share(_masks())
    assert shares["corner"].mean() > 2 * chance["corner"]


def test_saliency_validates_arguments(data):
    model = CornerModel()
    with pytest.raises(ValueError, match="method"):
        explain.saliency(model, data.images[:1], "lime")
    with pytest.raises(ValueError, match="target"):
        explain.saliency(model, data.images[:1], target="both")
    with pytest.raises(ValueError, match="n_samples"):
        explain.saliency(model, data.images[:1], n_samples=0)
    with pytest.raises(ValueError, match="noise"):
        explain.saliency(model, data.images[:1], noise=-1)
    with pytest.raises(ValueError, match="overlap"):
        explain.saliency(model, data.images[:1], "occlusion", overlap=1.0)


def test_smoothgrad_is_seeded_and_restores_training_mode(data):
    model = CornerModel().train()
    a = explain.saliency(model, data.images[:2], seed=1, noise=0.2)
    b = explain.saliency(model, data.images[:2], seed=1, noise=0.2)
    assert np.array_equal(a, b)
    assert model.training


def test_attribution_share_sums_and_validates():
    maps = np.zeros((2, SIZE, SIZE))
    maps[0, 2, 2] = 1.0
    maps[0, 7, 7] = 3.0
    shares = explain.attribution_share(maps, _masks())
    assert shares.loc[0, "corner"] == pytest.approx(0.25)
    assert shares.loc[0, "centre"] == pytest.approx(0.75)
    assert np.isnan(shares.loc[1, "corner"])  # an all-zero map has no shares
    with pytest.raises(ValueError, match="non-negative"):
        explain.attribution_share(-maps - 1, _masks())
    with pytest.raises(ValueError, match="shape"):
        explain.attribution_share(maps, {"bad": np.zeros((3, 3), bool)})


def test_chance_share_within_a_mask():
    masks = _masks()
    assert explain.chance_share(masks)["corner"] == pytest.approx(16 / SIZE**2)
    within = np.zeros((SIZE, SIZE), bool)
    within[:8, :8] = True
    assert explain.chance_share(masks, within)["corner"] == pytest.approx(16 / 64)


def test_region_masks_from_masks_and_from_anatomy_names():
    masks = explain.region_masks(_masks(), shape=(SIZE, SIZE))
    assert set(masks) == {"corner", "centre"}
    with pytest.raises(ValueError, match="grid"):
        explain.region_masks(["right_insula"])
    with pytest.raises(ValueError, match="shape"):
        explain.region_masks(_masks(), shape=(8, 8))
    from faimi_tutorial import anatomy

    grid = anatomy.grid_for((24, 28), 6.0, slice_z=2.0)
    named = explain.region_masks(["right_insula", "right_putamen"], grid=grid)
    assert named["right_insula"].shape == (24, 28) and named["right_insula"].any()
    assert not (named["right_insula"] & named["right_putamen"]).all()


def test_attribution_by_group_separates_tp_and_tn_per_group(data):
    table = explain.attribution_table(CornerModel(), data, _masks(), max_per_cell=5, n_samples=2)
    assert set(table["outcome"]) <= {"TP", "TN"}
    assert (table.groupby(["bias_group", "outcome"]).size() <= 5).all()
    tp = table[table["outcome"] == "TP"]
    assert (tp["label"] == 1).all() and (tp["score"] >= 0.5).all()
    summary = explain.attribution_by_group(CornerModel(), data, _masks(), max_per_cell=5, n_samples=2)
    assert {"bias_group", "outcome", "region", "n", "share", "sd"} <= set(summary.columns)
    both = summary[summary["outcome"] == "TP+TN"]
    per = summary[summary["outcome"] != "TP+TN"]
    assert both["n"].sum() == per["n"].sum()
    corner = both[both["region"] == "corner"]["share"]
    centre = both[both["region"] == "centre"]["share"]
    assert corner.mean() > centre.mean()


def test_attribution_table_with_no_correct_predictions_is_empty():
    d = training.toy_data(n=8, size=SIZE, seed=0)

    class Wrong(nn.Module):
        def __init__(self):
            super().__init__()
            self.final = nn.Linear(1, 1)

        def forward(self, x):
            y = torch.as_tensor(d.label, dtype=torch.float32)[: x.shape[0]]
            return (10 - 20 * y)[:, None] + 0 * self.final(x.mean(dim=(1, 2, 3))[:, None])

    table = explain.attribution_table(Wrong(), d, _masks())
    assert isinstance(table, pd.DataFrame) and len(table) == 0


def test_plot_saliency_and_attribution_shares(data):
    import matplotlib

    matplotlib.use("Agg")
    from faimi_tutorial import plotting

    maps = explain.saliency(CornerModel(), data.images[:3], target="positive")
    fig = plotting.plot_saliency(data.images[:3], maps, _masks(), titles=["a", "b", "c"], ncols=2)
    assert sum(1 for a in fig.axes if a.get_title()) == 3
    vol = np.random.default_rng(0).random((2, 8, 8, 8))
    fig3 = plotting.plot_saliency(vol, vol, {"r": vol[0] > 0.5})
    assert len(fig3.axes) == 2
    with pytest.raises(ValueError, match="match"):
        plotting.plot_saliency(data.images[:2], maps)
    table = pd.concat([
        explain.attribution_by_group(CornerModel(), data, _masks(), max_per_cell=4, n_samples=2).assign(model=m)
        for m in ("one", "two")
    ])
    fig = plotting.plot_attribution_shares(table, "corner", chance=0.1)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["one", "two"]
    assert len(ax.patches) == 2 * table["bias_group"].nunique()
    with pytest.raises(ValueError, match="region"):
        plotting.plot_attribution_shares(table, "elsewhere")
    matplotlib.pyplot.close("all")
