"""plot_report_intervals: one metric per group for several models (chapter 8)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from faimi_tutorial.fairness.metrics import subgroup_report
from faimi_tutorial.viz import plotting


@pytest.fixture(scope="module")
def reports():
    rng = np.random.default_rng(0)
    n = 120
    y = np.tile([0, 1], n // 2)
    groups = np.repeat(["site-A", "site-B", "site-C"], n // 3)
    out = {}
    for name, noise in (("local", 1.0), ("central", 0.3)):
        scores = np.clip(y * 0.5 + 0.25 + rng.normal(0, 0.2 * noise, n), 0, 1)
        out[name] = subgroup_report(y, scores, groups, n_boot=50, seed=0)
    return out


def test_draws_one_series_per_model_with_intervals_inside_the_column(reports):
    fig = plotting.plot_report_intervals(
        reports, labels=["A", "B", "C"], colours={"local": "0.5", "central": "k"}
    )
    (ax,) = fig.axes
    assert fig.get_size_inches()[0] <= 6.9
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B", "C"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["local", "central"]
    # one errorbar container per model, each with one point per group
    assert len(ax.containers) == 2
    for container, report in zip(ax.containers, reports.values()):
        y = container.lines[0].get_ydata()
        expected = report.table.loc[["site-A", "site-B", "site-C"], "AUROC"]
        np.testing.assert_allclose(y, expected.to_numpy(float))
    assert ax.get_ylabel() == "AUROC per group"
    matplotlib.pyplot.close(fig)


def test_order_and_an_existing_axes(reports):
    fig, ax = matplotlib.pyplot.subplots()
    out = plotting.plot_report_intervals(
        reports, metric="TPR", order=["site-C", "site-A"], ax=ax, chance=None,
        ylabel="TPR per site",
    )
    assert out is fig
    assert [t.get_text() for t in ax.get_xticklabels()] == ["site-C", "site-A"]
    assert ax.get_ylabel() == "TPR per site"
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"metric": "nonsense"},
        {"order": ["site-Z"]},
        {"labels": ["only one"]},
    ],
)
def test_refuses_bad_input(reports, kwargs):
    with pytest.raises(ValueError, match="allowed"):
        plotting.plot_report_intervals(reports, **kwargs)


def test_refuses_no_reports():
    with pytest.raises(ValueError, match="allowed"):
        plotting.plot_report_intervals({})
