"""Figures that chapters used to draw with local helpers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from faimi_tutorial import plotting, simulate  # noqa: E402


@pytest.fixture(scope="module")
def cohort():
    return simulate.cohort_from_preset("tiny", dims=2, n_subjects=16, seed=2)


def summary():
    return pd.DataFrame({"strategy": ["central", "fedavg", "local"],
                         "auroc_mean": [0.8, 0.7, 0.6], "auroc_low": [0.75, 0.6, 0.5],
                         "auroc_high": [0.85, 0.8, 0.7]})


def test_plot_intervals_draws_each_row_in_order_with_its_interval():
    fig, ax = plt.subplots()
    colours = {"local": "k", "central": "r", "fedavg": "b", "absent": "g"}
    out = plotting.plot_intervals(summary(), "auroc",
                                  order=["local", "absent", "central"],
                                  colours=colours, ax=ax, title="t")
    assert out is fig
    assert [t.get_text() for t in ax.get_xticklabels()] == ["local", "central"]
    assert ax.get_title() == "t"
    bars = ax.containers
    points = [tuple(float(v) for v in c.lines[0].get_xydata()[0]) for c in bars]
    assert points == [(0.0, 0.6), (1.0, 0.8)]
    # the error bars span [low, high], in the category's colour
    spans = [tuple(float(v) for v in c.lines[2][0].get_segments()[0][:, 1])
             for c in bars]
    assert spans == [pytest.approx((0.5, 0.7)), pytest.approx((0.75, 0.85))]
    assert [c.lines[0].get_color() for c in bars] == ["k", "r"]
    plt.close(fig)


def test_plot_intervals_defaults_and_missing_columns():
    fig = plotting.plot_intervals(summary(), "auroc")
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["central", "fedavg", "local"]
    plt.close(fig)
    with pytest.raises(ValueError, match="auroc_low"):
        plotting.plot_intervals(summary().drop(columns="auroc_low"), "auroc")
    with pytest.raises(ValueError, match="site"):
        plotting.plot_intervals(summary(), "auroc", by="site")


def test_show_bias_effect_shows_subject_twin_and_their_difference(cohort):
    fig = plotting.show_bias_effect(cohort, "morphological")
    axes = fig.axes
    assert len(axes) == 3
    i = int(np.flatnonzero(cohort.bias_group == 1)[0])
    shown = [np.asarray(a.images[0].get_array()) for a in axes]
    assert np.allclose(shown[0], cohort.images[i, 0].numpy().T)
    assert np.allclose(shown[1], cohort.twins[i, 0].numpy().T)
    assert np.allclose(shown[2], shown[0] - shown[1])
    assert axes[0].get_title() == "morphological: subject in the bias group"
    lim = max(float(np.abs(shown[2]).max()), 1e-6)
    assert axes[2].images[0].get_clim() == pytest.approx((-lim, lim))
    plt.close(fig)


def test_show_bias_effect_refuses_bad_input(cohort):
    outside = int(np.flatnonzero(cohort.bias_group == 0)[0])
    with pytest.raises(ValueError, match="subject="):
        plotting.show_bias_effect(cohort, subject=outside)
    with pytest.raises(ValueError, match="twins"):
        plotting.show_bias_effect(_no_twins(cohort))
    _, axes = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="3 panels"):
        plotting.show_bias_effect(cohort, axes=axes)
    plt.close("all")


def _no_twins(cohort):
    return simulate.Cohort(cohort.images, None, cohort.meta, cohort.config)


def test_column_figsize_fits_the_column_and_keeps_the_aspect():
    from faimi_tutorial.viz.plotting import COLUMN_WIDTH, column_figsize

    assert column_figsize(1, 1, 3.0, 2.0) == (3.0, 2.0)
    width, height = column_figsize(5, 2, 2.6, 2.7)
    assert width == pytest.approx(COLUMN_WIDTH)
    assert height / width == pytest.approx(2 * 2.7 / (5 * 2.6))
    with pytest.raises(ValueError):
        column_figsize(0, 1, 1.0, 1.0)
    with pytest.raises(ValueError):
        column_figsize(1, 1, -1.0, 1.0)
