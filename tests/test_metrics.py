"""Tests of faimi_tutorial.fairness.metrics: values against scikit-learn, computed independently."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from faimi_tutorial import metrics
from faimi_tutorial.fairness.metrics import (
    UndefinedMetricWarning,
    aggregate_seeds,
    counterfactual_flip_rate,
    expected_calibration_error,
    subgroup_report,
)


def toy(n=600, seed=0, shift=0.15):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    g = rng.choice(["A", "B"], n, p=[0.7, 0.3])
    s = np.clip(0.3 * y + shift * (g == "B") + rng.uniform(0, 0.6, n), 0, 1)
    return y, np.round(s, 2), g  # rounded: ties exercise the tie handling


def sk_values(y, s, t=0.5):
    p = (s >= t).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, p, labels=[0, 1]).ravel()
    return {
        "n": len(y),
        "prevalence": y.mean(),
        "selection_rate": p.mean(),
        "TPR": tp / (tp + fn),
        "FPR": fp / (fp + tn),
        "TNR": tn / (tn + fp),
        "PPV": tp / (tp + fp),
        "accuracy": skm.accuracy_score(y, p),
        "AUROC": skm.roc_auc_score(y, s),
        "AP": skm.average_precision_score(y, s),
    }


def ece_reference(y, s, n_bins=10):
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        m = (s >= lo) & ((s < hi) if b < n_bins - 1 else (s <= hi))
        if m.any():
            total += m.sum() / len(y) * abs(s[m].mean() - y[m].mean())
    return total


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.72])
def test_values_match_sklearn(threshold):
    y, s, g = toy()
    rep = subgroup_report(y, s, g, threshold=threshold, n_boot=0)
    for grp in ["A", "B"]:
        m = g == grp
        ref = sk_values(y[m], s[m], threshold)
        for name, value in ref.items():
            assert rep.table.loc[grp, name] == pytest.approx(value, abs=1e-12), (grp, name)
        assert rep.table.loc[grp, "ECE"] == pytest.approx(ece_reference(y[m], s[m]), abs=1e-12)
    ref = sk_values(y, s, threshold)
    for name, value in ref.items():
        assert rep.table.loc["overall", name] == pytest.approx(value, abs=1e-12)


def test_bootstrap_kernels_match_sklearn_on_unit_weights():
    y, s, _ = toy(n=300, seed=3)
    rows = metrics._metric_rows(y, s, np.ones((1, len(y))), 0.5, 10)
    ref = sk_values(y, s)
    for name, value in ref.items():
        assert rows[name][0] == pytest.approx(value, abs=1e-12), name
    assert rows["ECE"][0] == pytest.approx(ece_reference(y, s), abs=1e-12)


def test_bootstrap_kernels_match_sklearn_on_resampled_data():
    # a weight row (counts) must equal the metric computed on the repeated samples
    y, s, _ = toy(n=200, seed=5)
    rng = np.random.default_rng(1)
    w = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=3)
    rows = metrics._metric_rows(y, s, w, 0.5, 10)
    for r in range(3):
        idx = np.repeat(np.arange(len(y)), w[r])
        ref = sk_values(y[idx], s[idx])
        for name in ("TPR", "FPR", "PPV", "AUROC", "AP"):
            assert rows[name][r] == pytest.approx(ref[name], abs=1e-12), name
        assert rows["ECE"][r] == pytest.approx(ece_reference(y[idx], s[idx]), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=4, max_value=60))
def test_auroc_and_ap_match_sklearn_property(seed, n):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = np.round(rng.uniform(0, 1, n), rng.integers(1, 3))
    rows = metrics._metric_rows(y, s, np.ones((1, n)), 0.5, 10)
    assert rows["AUROC"][0] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert rows["AP"][0] == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)


def test_gaps_ratios_worst_and_fairlearn_differences():
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    y, s, g = toy(shift=0.2)
    rep = subgroup_report(y, s, g, n_boot=0)
    a, b = rep.table.loc["A"], rep.table.loc["B"]
    assert rep.gaps.loc["TPR", "difference"] == pytest.approx(abs(a.TPR - b.TPR))
    assert rep.gaps.loc["TPR", "ratio"] == pytest.approx(min(a.TPR, b.TPR) / max(a.TPR, b.TPR))
    assert rep.gaps.loc["FPR", "worst"] == pytest.approx(max(a.FPR, b.FPR))
    assert rep.gaps.loc["FPR", "worst_group"] == ("A" if a.FPR > b.FPR else "B")
    assert rep.gaps.loc["TPR", "worst"] == pytest.approx(min(a.TPR, b.TPR))
    pred = (s >= 0.5).astype(int)
    assert rep.fairness["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=g)
    )
    assert rep.fairness["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=g)
    )


def test_bootstrap_intervals_contain_estimate_and_are_seeded():
    y, s, g = toy()
    r1 = subgroup_report(y, s, g, n_boot=300, seed=4)
    r2 = subgroup_report(y, s, g, n_boot=300, seed=4)
    r3 = subgroup_report(y, s, g, n_boot=300, seed=5)
    pd.testing.assert_frame_equal(r1.ci_low, r2.ci_low)
    assert not r1.ci_low.equals(r3.ci_low)
    for m in ("TPR", "FPR", "AUROC", "accuracy"):
        for grp in ["A", "B", "overall"]:
            assert r1.ci_low.loc[grp, m] <= r1.table.loc[grp, m] <= r1.ci_high.loc[grp, m]
    # the smaller group has the wider interval
    width = r1.ci_high - r1.ci_low
    assert width.loc["B", "TPR"] > width.loc["A", "TPR"]
    # max - min has no interval (it cannot be below 0); the signed contrast has one
    assert "difference_low" not in r1.gaps.columns
    assert r1.gaps.loc["TPR", "contrast_low"] <= r1.gaps.loc["TPR", "contrast_high"]
    # signed contrast B - A, with an interval around it
    for m in ("TPR", "FPR"):
        c = r1.gaps.loc[m]
        assert c.contrast == pytest.approx(r1.table.loc["B", m] - r1.table.loc["A", m])
        assert c.contrast_low <= c.contrast <= c.contrast_high


def test_contrast_interval_covers_zero_without_a_gap_and_excludes_it_with_one():
    rng = np.random.default_rng(11)
    n = 2000
    y = rng.integers(0, 2, n)
    g = rng.integers(0, 2, n)
    s = np.clip(0.4 * y + rng.uniform(0, 0.6, n), 0, 1)
    same = subgroup_report(y, s, g, n_boot=400).gaps.loc["FPR"]
    assert same.contrast_low < 0 < same.contrast_high
    shifted = subgroup_report(y, np.clip(s + 0.2 * g, 0, 1), g, n_boot=400).gaps.loc["FPR"]
    assert shifted.contrast_low > 0


def test_interval_coverage_is_roughly_nominal():
    # coverage of the true TPR by 90% intervals over repeated samples
    rng = np.random.default_rng(0)
    hits = 0
    for rep_i in range(60):
        n = 300
        y = rng.integers(0, 2, n)
        g = rng.integers(0, 2, n)
        s = np.clip(0.5 * y + rng.uniform(0, 0.5, n), 0, 1)  # true TPR = P(U >= 0) ... = 1
        s = np.where(y == 1, rng.uniform(0, 1, n), s)  # positives: TPR = 0.5 exactly
        rep = subgroup_report(y, s, g, n_boot=200, confidence=0.9, seed=rep_i)
        hits += rep.ci_low.loc[0, "TPR"] <= 0.5 <= rep.ci_high.loc[0, "TPR"]
    assert 0.75 <= hits / 60 <= 1.0


def test_group_without_positives_is_undefined_with_warning():
    y = np.array([0, 0, 0, 1, 0, 1, 1, 0])
    s = np.array([0.1, 0.6, 0.2, 0.9, 0.3, 0.8, 0.4, 0.7])
    g = np.array(["A", "A", "A", "B", "B", "B", "B", "B"])
    with pytest.warns(UndefinedMetricWarning, match="TPR is undefined for group 'A'"):
        rep = subgroup_report(y, s, g, n_boot=50)
    assert np.isnan(rep.table.loc["A", "TPR"])
    assert ("A", "TPR") in rep.undefined and ("A", "AUROC") in rep.undefined
    assert np.isnan(rep.gaps.loc["TPR", "difference"])
    assert pd.isna(rep.gaps.loc["TPR", "worst_group"])
    assert rep.summary().loc["A", "TPR"] == "undefined"
    assert not np.isnan(rep.table.loc["B", "TPR"])


def test_no_warning_when_everything_is_defined():
    y, s, g = toy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        subgroup_report(y, s, g, n_boot=100)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(y_true=[0, 1, 2], scores=[0.1, 0.2, 0.3], groups=[0, 1, 1]), "only 0 and 1"),
        (dict(y_true=[0, 1, 1], scores=[0.1, 1.2, 0.3], groups=[0, 1, 1]), r"\[0, 1\]"),
        (dict(y_true=[0, 1, 1], scores=[0.1, np.nan, 0.3], groups=[0, 1, 1]), "NaN"),
        (dict(y_true=[0, 1], scores=[0.1, 0.2, 0.3], groups=[0, 1, 1]), "y_true and scores"),
        (dict(y_true=[0, 1, 1], scores=[0.1, 0.2, 0.3], groups=[0, 1]), "groups and y_true"),
        (dict(y_true=[0, 1, 1], scores=[0.1, 0.2, 0.3], groups=["a", "a", "a"]), "single value"),
        (dict(y_true=[], scores=[], groups=[]), "empty"),
    ],
)
def test_bad_input_raises_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        subgroup_report(**kwargs, n_boot=10)


@pytest.mark.parametrize(
    "option, value", [("threshold", 1.5), ("n_boot", -1), ("confidence", 1.0), ("n_bins", 0)]
)
def test_bad_options_name_the_option(option, value):
    y, s, g = toy(n=50)
    with pytest.raises(ValueError, match=option):
        subgroup_report(y, s, g, **{option: value})


def test_report_plot_and_summary():
    import matplotlib

    matplotlib.use("Agg")
    from faimi_tutorial.viz.plotting import plot_subgroup_report

    y, s, g = toy()
    rep = subgroup_report(y, s, g, n_boot=100)
    fig = plot_subgroup_report(rep, ["TPR", "FPR", "AUROC"])
    assert len(fig.axes) == 3
    summary = rep.summary(["n", "TPR"])
    assert list(summary.index) == ["A", "B", "overall"]
    assert summary.loc["A", "n"] == str(int((g == "A").sum()))
    with pytest.raises(ValueError, match="unknown"):
        rep.summary(["tpr"])


def test_expected_calibration_error():
    y = np.array([0, 1, 0, 1])
    assert expected_calibration_error(y, np.array([0.0, 1.0, 0.0, 1.0])) == 0.0
    assert expected_calibration_error(y, np.full(4, 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(np.ones(4, int), np.full(4, 0.25)) == pytest.approx(0.75)


def test_counterfactual_flip_rate():
    s = np.array([0.9, 0.6, 0.2, 0.7])
    t = np.array([0.3, 0.55, 0.6, 0.8])
    out = counterfactual_flip_rate(s, t, groups=[1, 1, 0, 0])
    assert out.loc["overall", "flip_rate"] == pytest.approx(0.5)
    assert out.loc["overall", "flip_to_negative"] == pytest.approx(0.25)
    assert out.loc["overall", "flip_to_positive"] == pytest.approx(0.25)
    assert out.loc["overall", "mean_abs_change"] == pytest.approx(np.mean(np.abs(s - t)))
    assert out.loc[1, "flip_rate"] == pytest.approx(0.5)
    assert out.loc[0, "mean_change"] == pytest.approx(np.mean([0.2 - 0.6, 0.7 - 0.8]))
    with pytest.raises(ValueError, match="twin_scores"):
        counterfactual_flip_rate(s, t[:3])
    with pytest.raises(ValueError, match="scores"):
        counterfactual_flip_rate(s + 1, t)


def test_aggregate_seeds():
    from scipy import stats

    df = pd.DataFrame({"setting": ["a"] * 4 + ["b"] * 2, "gap": [0.1, 0.2, 0.3, 0.2, 1.0, 1.0]})
    out = aggregate_seeds(df, "setting", "gap", method="t").set_index("setting")
    x = np.array([0.1, 0.2, 0.3, 0.2])
    half = stats.t.ppf(0.975, 3) * x.std(ddof=1) / 2
    assert out.loc["a", "gap_mean"] == pytest.approx(0.2)
    assert out.loc["a", "gap_low"] == pytest.approx(0.2 - half)
    assert out.loc["a", "n_runs"] == 4
    assert out.loc["b", "gap_sd"] == 0
    with pytest.raises(ValueError, match="not in df"):
        aggregate_seeds(df, "seed", "gap")


def test_aggregate_seeds_bootstrap_stays_in_range():
    from faimi_tutorial.fairness.metrics import mean_interval

    # a rate near 1 over three seeds: a t-interval leaves [0, 1], the bootstrap does not
    rates = [0.99, 0.6, 0.79]
    _, t_low, t_high = mean_interval(rates, method="t")
    mean, low, high = mean_interval(rates)
    assert t_high > 1.0 and min(rates) <= low <= mean <= high <= max(rates)
    out = aggregate_seeds(pd.DataFrame({"s": ["a"] * 3, "TPR": rates}), "s", "TPR")
    assert out.loc[0, "TPR_high"] <= 1.0 and out.loc[0, "TPR_low"] >= 0.0
    assert mean_interval([0.3]) [0] == 0.3 and np.isnan(mean_interval([0.3])[1])
    assert np.isnan(mean_interval([])[0])
    with pytest.raises(ValueError, match="method"):
        mean_interval(rates, method="normal")


def test_paired_difference_pairs_by_seed():
    from faimi_tutorial.fairness.metrics import paired_difference

    df = pd.DataFrame({"region": ["near"] * 5 + ["far"] * 5, "seed": list(range(5)) * 2,
                       "gap": [0.10, 0.20, 0.30, 0.40, 0.50, 0.15, 0.24, 0.36, 0.43, 0.56]})
    out = paired_difference(df, "region", "near", "far", "gap")
    assert out.loc["gap", "mean"] == pytest.approx(0.048)
    assert out.loc["gap", "excludes_zero"] and out.loc["gap", "n_pairs"] == 5
    # unpaired, the spread between seeds would swamp the difference
    assert out.loc["gap", "high"] - out.loc["gap", "low"] < 0.05
    with pytest.raises(ValueError, match="no seed"):
        paired_difference(df, "region", "near", "nowhere", "gap")


def test_trend_test_detects_a_slope_and_a_null():
    from faimi_tutorial.fairness.metrics import trend_test

    rng = np.random.default_rng(0)
    rows = [{"seed": s, "x": x, "up": 0.1 * x + rng.normal(0, 0.02), "flat": (0.05 if s % 2 else -0.04) * x + 0.01 * s}
            for s in range(5) for x in (0.0, 1.0, 2.0, 3.0)]
    df = pd.DataFrame(rows)
    up = trend_test(df, "x", "up")
    assert up["increasing"] and up["slope"] == pytest.approx(0.1, abs=0.03)
    assert up["spearman_p"] < 0.01 and up["n_pairs"] == 5
    flat = trend_test(df, "x", "flat")
    assert not flat["increasing"] and not flat["decreasing"]


def test_interval_verdict():
    from faimi_tutorial.fairness.metrics import interval_verdict

    assert interval_verdict(0.01, 0.2) == "above 0"
    assert interval_verdict(-0.3, -0.1) == "below 0"
    assert interval_verdict(-0.1, 0.2).startswith("includes 0")
    assert interval_verdict(0.4, 0.6, null=0.5).startswith("includes 0.5")
    assert interval_verdict(float("nan"), 0.2) == "undefined"


# ----------------------------------------------------------------------------- the one AUROC


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=2, max_value=80))
def test_auroc_matches_sklearn_and_the_bootstrap_kernel(seed, n):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = np.round(rng.normal(0, 3, n), rng.integers(0, 3))  # any real scores, with ties
    value = metrics.auroc(y, s)
    assert value == skm.roc_auc_score(y, s)  # the point estimate is scikit-learn's
    # the bootstrap kernel computes the same number on every replicate
    idx = np.vstack([np.arange(n), metrics.bootstrap_indices(n, 5, seed=seed)])
    boot = metrics.auroc_of_resamples(y, s, idx)
    assert boot[0] == pytest.approx(value, abs=1e-12)
    for row, b in zip(idx[1:], boot[1:]):
        assert b == pytest.approx(metrics.auroc(y[row], s[row]), abs=1e-12, nan_ok=True)


def test_auroc_ties_order_and_undefined_cases():
    assert metrics.auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert metrics.auroc([0, 1], [0.5, 0.5]) == 0.5  # a tie counts one half
    assert metrics.auroc([1, 0], [0.9, 0.1]) == 1.0 and metrics.auroc([0, 1], [0.9, 0.1]) == 0.0
    assert metrics.auroc(np.array([False, True]), [-3.0, 7.0]) == 1.0  # booleans, any reals
    assert metrics.auroc([0.0, 1.0, 1.0], [0.2, 0.1, 0.3]) == 0.5
    assert np.isnan(metrics.auroc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert np.isnan(metrics.auroc([], []))


def test_auroc_of_resamples_counts_repeats_and_validates():
    y, s = np.array([0, 1, 1, 0]), np.array([0.3, 0.9, 0.2, 0.1])
    out = metrics.auroc_of_resamples(y, s, [[0, 1, 2, 3], [1, 1, 0, 0], [1, 2, 1, 2]])
    assert out[0] == metrics.auroc(y, s) and out[1] == 1.0 and np.isnan(out[2])
    assert metrics.auroc_of_resamples(y, s, np.zeros((0, 4), dtype=int)).shape == (0,)
    with pytest.raises(ValueError, match="2-D integer"):
        metrics.auroc_of_resamples(y, s, [0, 1, 2])
    with pytest.raises(ValueError, match="lie in"):
        metrics.auroc_of_resamples(y, s, [[0, 4]])


@pytest.mark.parametrize("y, s, match", [
    ([0, 1, 1], [0.1, 0.2], "different lengths"),
    ([0, 2], [0.1, 0.2], "only 0 and 1"),
    (["a", "b"], [0.1, 0.2], "only 0 and 1"),
    ([0, 1], [0.1, np.nan], "NaN or infinite"),
    ([0, 1], [0.1, np.inf], "NaN or infinite"),
    ([0, 1], ["x", "y"], "finite numbers"),
    ([[0, 1]], [[0.1, 0.2]], "one-dimensional"),
])
def test_auroc_rejects_bad_input(y, s, match):
    with pytest.raises(ValueError, match=match):
        metrics.auroc(y, s)


def test_report_auroc_is_the_public_auroc():
    y, s, g = toy()
    rep = subgroup_report(y, s, g, n_boot=0)
    assert rep.table.loc["B", "AUROC"] == metrics.auroc(y[g == "B"], s[g == "B"])
    assert rep.table.loc["overall", "AUROC"] == metrics.auroc(y, s)


# ----------------------------------------------------------------------------- the one bootstrap


def test_bootstrap_indices_are_seeded_resamples():
    idx = metrics.bootstrap_indices(7, 500, seed=3)
    assert idx.shape == (500, 7) and idx.min() >= 0 and idx.max() <= 6
    assert np.array_equal(idx, metrics.bootstrap_indices(7, 500, seed=3))
    assert not np.array_equal(idx, metrics.bootstrap_indices(7, 500, seed=4))
    # with replacement: some replicates repeat a sample
    assert any(len(set(row)) < 7 for row in idx)
    # the draws of a plain generator: one (n_boot, n) matrix, or row by row
    assert np.array_equal(idx, np.random.default_rng(3).integers(0, 7, (500, 7)))
    rng = np.random.default_rng(3)
    assert np.array_equal(metrics.bootstrap_indices(7, 500, seed=rng), idx)
    assert metrics.bootstrap_indices(7, 0).shape == (0, 7)


def test_bootstrap_indices_stratified_keep_stratum_sizes_and_draw_order():
    strata = np.array([1, 0, 0, 1, 1, 0, 1, 1, 1])
    idx = metrics.bootstrap_indices(len(strata), 200, seed=0, strata=strata)
    for row in idx:
        assert np.array_equal(strata[row], np.sort(strata))  # stratum 0 first, sizes kept
    # the same draws as resampling each stratum in turn with numpy's choice
    rng = np.random.default_rng(0)
    zeros, ones = np.flatnonzero(strata == 0), np.flatnonzero(strata == 1)
    for row in idx[:20]:
        expected = np.concatenate([rng.choice(zeros, len(zeros)), rng.choice(ones, len(ones))])
        assert np.array_equal(row, expected)


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0, "n_boot": 5}, "n=0"),
    ({"n": 3, "n_boot": -1}, "n_boot=-1"),
    ({"n": 3, "n_boot": True}, "n_boot=True"),
    ({"n": 3, "n_boot": 5, "strata": [0, 1]}, "strata holds 2"),
])
def test_bootstrap_indices_validate(kwargs, match):
    with pytest.raises(ValueError, match=match):
        metrics.bootstrap_indices(**kwargs)


def test_mean_interval_draws_through_bootstrap_indices():
    # the interval is the same as the one-matrix draw it always was
    x = np.array([0.1, 0.25, 0.3, 0.32, 0.5])
    mean, low, high = metrics.mean_interval(x, n_boot=1000, seed=7)
    rng = np.random.default_rng(7)
    means = x[rng.integers(0, len(x), (1000, len(x)))].mean(1)
    alpha = 1.0 - 0.95
    assert (low, high) == tuple(np.quantile(means, [alpha / 2, 1 - alpha / 2]))
    assert mean == pytest.approx(x.mean())


# ----------------------------------------------------------------------------- the one gap


def test_signed_gaps_lives_in_metrics_and_sweeps_reexports_it():
    from faimi_tutorial import sweeps

    assert sweeps.signed_gaps is metrics.signed_gaps
    assert sweeps.GROUP_METRICS is metrics.GROUP_METRICS


@pytest.mark.parametrize("seed", range(5))
def test_signed_gap_with_two_groups_is_group_one_minus_group_zero(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    g = rng.integers(0, 2, 300)
    s = np.clip(0.3 * y + 0.2 * g + rng.uniform(0, 0.6, 300), 0, 1)
    gaps = metrics.signed_gaps(y, s, g)
    table = subgroup_report(y, s, g, n_boot=0).table
    for m in ("TPR", "FPR", "accuracy", "AUROC"):
        assert gaps[f"{m}_gap"] == table.loc[1, m] - table.loc[0, m]  # exactly
    assert gaps["TPR_gap"] > 0  # the bias group (1) scores higher: a positive gap
    flipped = metrics.signed_gaps(y, s, g, bias_group=0)
    assert flipped["TPR_gap"] == -gaps["TPR_gap"]


def test_signed_gap_with_three_groups_is_bias_group_minus_mean_of_others():
    y, s, g = toy(n=900, seed=2)
    codes = np.where(g == "B", 1, np.arange(900) % 2 * 2)  # groups 0, 1, 2
    gaps = metrics.signed_gaps(y, s, codes, per_group=True)
    expected = gaps["TPR_g1"] - (gaps["TPR_g0"] + gaps["TPR_g2"]) / 2
    assert gaps["TPR_gap"] == pytest.approx(expected, abs=1e-12)
    # the range (max - min) is a different quantity, never called a gap here
    rep = subgroup_report(y, s, codes, n_boot=0)
    assert rep.gaps.loc["TPR", "difference"] >= abs(gaps["TPR_gap"]) - 1e-12


def test_report_contrast_is_the_signed_gap_for_groups_zero_and_one():
    rng = np.random.default_rng(4)
    y, g = rng.integers(0, 2, 400), rng.integers(0, 2, 400)
    s = np.clip(0.3 * y + 0.15 * g + rng.uniform(0, 0.6, 400), 0, 1)
    contrast = subgroup_report(y, s, g, n_boot=0).gaps["contrast"]
    gaps = metrics.signed_gaps(y, s, g)
    for m in ("TPR", "FPR", "accuracy", "AUROC"):
        assert contrast[m] == gaps[f"{m}_gap"]
