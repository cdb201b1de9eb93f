"""Tests of data.labels and fairness.audit (chapter 7's package code)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from faimi_tutorial.data import labels
from faimi_tutorial.fairness import audit
from faimi_tutorial.fairness.metrics import expected_calibration_error, subgroup_report


def scored(n=4000, seed=0, shift=0.0):
    """Labels, groups and miscalibrated scores (over-confident, shifted up)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    g = rng.integers(0, 2, n)
    z = np.where(y == 1, 1.0, -1.0) + shift * g + rng.normal(0, 1, n)
    return y, 1 / (1 + np.exp(-(5 * z + 1))), g


# --------------------------------------------------------------------- labels


def test_noisy_labels_miss_exactly_the_asked_share_per_group():
    y, _, g = scored()
    noisy = labels.noisy_labels(y, g, miss_rate={1: 0.4}, seed=3)
    for grp, rate in ((0, 0.0), (1, 0.4)):
        pos = (y == 1) & (g == grp)
        assert (noisy[pos] == 0).sum() == round(rate * pos.sum())
    assert np.all(noisy[y == 0] == 0), "no false alarms were asked for"
    again = labels.noisy_labels(y, g, miss_rate={1: 0.4}, seed=3)
    other = labels.noisy_labels(y, g, miss_rate={1: 0.4}, seed=4)
    np.testing.assert_array_equal(noisy, again)
    assert not np.array_equal(noisy, other)


def test_noisy_labels_false_alarms_and_one_group():
    y = np.r_[np.ones(50, int), np.zeros(50, int)]
    noisy = labels.noisy_labels(y, false_alarm_rate=0.2, miss_rate=0.1, seed=0)
    assert (noisy[50:] == 1).sum() == 10 and (noisy[:50] == 0).sum() == 5


def test_severity_makes_mild_cases_missed_first():
    rng = np.random.default_rng(0)
    y = np.ones(2000, int)
    severity = rng.normal(0, 1, 2000)
    noisy = labels.noisy_labels(y, miss_rate=0.3, severity=severity, seed=0)
    uniform = labels.noisy_labels(y, miss_rate=0.3, seed=0)
    assert severity[noisy == 0].mean() < -0.5 < severity[noisy == 1].mean() + 0.5
    assert abs(severity[uniform == 0].mean()) < 0.15


@pytest.mark.parametrize("kwargs, match", [
    ({"miss_rate": 1.5}, "miss_rate"),
    ({"false_alarm_rate": -0.1}, "false_alarm_rate"),
    ({"miss_rate": {"C": 0.2}}, "not in groups"),
    ({"seed": -1}, "seed"),
    ({"severity": [0.0, 1.0]}, "severity"),
])
def test_noisy_labels_rejects_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        labels.noisy_labels([1, 0, 1], ["A", "B", "A"], **kwargs)


def test_noisy_labels_rejects_bad_labels_and_groups():
    with pytest.raises(ValueError, match="only 0 and 1"):
        labels.noisy_labels([2, 0, 1])
    with pytest.raises(ValueError, match="groups"):
        labels.noisy_labels([1, 0, 1], [0, 1])


def test_verified_sample_draws_per_group_and_stratum():
    g = np.repeat(["A", "B"], 100)
    strata = np.tile([0, 1], 100)
    idx = labels.verified_sample(g, 20, strata=strata, seed=1)
    assert len(idx) == 40 and len(set(idx)) == 40
    assert (g[idx] == "A").sum() == 20 and (strata[idx][g[idx] == "B"] == 1).sum() == 10
    again = labels.verified_sample(g, 20, strata=strata, seed=1)
    np.testing.assert_array_equal(idx, again)
    with pytest.raises(ValueError, match="fewer than"):
        labels.verified_sample(g, 101)
    with pytest.raises(ValueError, match="n_per_group"):
        labels.verified_sample(g, 0)
    with pytest.raises(ValueError, match="strata"):
        labels.verified_sample(g, 5, strata=[0, 1])


# --------------------------------------------------------------------- recalibration


@pytest.mark.parametrize("method", audit.RECALIBRATIONS)
def test_recalibration_fitted_on_validation_lowers_test_ece(method):
    y, s, _ = scored(seed=1)
    yv, sv, _ = scored(seed=2)
    before = expected_calibration_error(y, s)
    cal = audit.fit_recalibration(yv, sv, method=method)
    after = expected_calibration_error(y, cal.transform(s))
    assert before > 0.05 and after < before / 2
    assert cal.n_fit == len(yv) and cal.method == method
    out = cal.transform(s)
    assert out.min() >= 0 and out.max() <= 1
    order = np.argsort(s)
    assert np.all(np.diff(out[order]) >= -1e-12), "recalibration keeps the ranking"


def test_recalibration_rejects_bad_inputs():
    y, s, _ = scored(200)
    with pytest.raises(ValueError, match="method"):
        audit.fit_recalibration(y, s, method="beta")
    with pytest.raises(ValueError, match="single class"):
        audit.fit_recalibration(np.ones(10, int), np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        audit.fit_recalibration(y, s * 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        audit.fit_recalibration(y, s).transform([0.2, 1.5])


def test_calibration_in_the_large_is_signed_per_group():
    rng = np.random.default_rng(0)
    g = np.repeat(["A", "B"], 2000)
    risk = rng.uniform(0.1, 0.9, 4000)
    y = (rng.uniform(size=4000) < risk).astype(int)
    s = np.where(g == "B", risk * 0.7, risk)  # B's risk under-estimated
    table = audit.calibration_in_the_large(y, s, g, n_boot=300)
    assert table.loc["B", "difference_high"] < -0.1
    assert table.loc["A", "difference_low"] < 0 < table.loc["A", "difference_high"]
    assert table.loc["B", "mean_score"] == pytest.approx(s[g == "B"].mean())
    with pytest.raises(ValueError, match="n_boot"):
        audit.calibration_in_the_large(y, s, g, n_boot=1.5)
    with pytest.raises(ValueError, match="lengths"):
        audit.calibration_in_the_large(y, s[:10], g)


# --------------------------------------------------------------------- ensembles


def test_ensemble_spread_is_larger_where_members_disagree():
    rng = np.random.default_rng(0)
    g = np.repeat([0, 1], 300)
    base = rng.uniform(0.2, 0.8, 600)
    noise = np.where(g == 1, 0.15, 0.01)
    members = np.clip(base + rng.normal(0, 1, (5, 600)) * noise, 0, 1)
    table = audit.ensemble_spread(members, g, n_boot=200)
    assert list(table.index) == [0, 1, "overall"]
    assert table.loc[1, "score_sd_low"] > table.loc[0, "score_sd_high"]
    assert table.loc[1, "split_decision"] > table.loc[0, "split_decision"]
    same = audit.ensemble_spread(np.vstack([base, base]), g, n_boot=0)
    assert same["score_sd"].max() == 0 and same["split_decision"].max() == 0


def test_ensemble_spread_rejects_bad_inputs():
    with pytest.raises(ValueError, match="n_members >= 2"):
        audit.ensemble_spread(np.zeros((1, 4)), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="groups"):
        audit.ensemble_spread(np.zeros((2, 4)), [0, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        audit.ensemble_spread(np.full((2, 2), 2.0), [0, 1])
    with pytest.raises(ValueError, match="n_boot"):
        audit.ensemble_spread(np.zeros((2, 2)), [0, 1], n_boot=-1)


# --------------------------------------------------------------------- agreement


def test_agreement_and_kappa_against_scikit_learn():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 500)
    b = np.where(rng.uniform(size=500) < 0.2, 1 - a, a)
    g = rng.choice(["x", "y"], 500)
    table = audit.agreement_by_group(a, b, g, n_boot=300)
    for grp in ("x", "y"):
        m = g == grp
        assert table.loc[grp, "kappa"] == pytest.approx(cohen_kappa_score(a[m], b[m]))
        assert table.loc[grp, "agreement"] == pytest.approx((a[m] == b[m]).mean())
        row = table.loc[grp]
        assert row["kappa_low"] < row["kappa"] < row["kappa_high"]
    same = audit.agreement_by_group([1, 1], [1, 1], [0, 0], n_boot=0)
    assert np.isnan(same.loc[0, "kappa"])


def test_agreement_rejects_bad_inputs():
    with pytest.raises(ValueError, match="only 0 and 1"):
        audit.agreement_by_group([0, 2], [0, 1], [0, 0])
    with pytest.raises(ValueError, match="one-dimensional"):
        audit.agreement_by_group([0, 1], [0, 1, 1], [0, 0])


# --------------------------------------------------------------------- intersections


def test_intersection_shows_a_gap_that_neither_attribute_shows():
    rng = np.random.default_rng(0)
    n = 4000
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    y = rng.integers(0, 2, n)
    hidden = (a == b)  # an XOR pattern: worse detection where the attributes agree
    z = np.where(y == 1, np.where(hidden, 0.0, 2.0), -1.5) + rng.normal(0, 1, n)
    s = 1 / (1 + np.exp(-z))
    table = audit.intersectional_report(y, s, {"a": a, "b": b}, n_boot=200,
                                        metrics=("TPR", "FPR"), min_count=800)
    tpr = table[table["metric"] == "TPR"].set_index(["level", "group"])
    for level in ("a", "b"):
        assert tpr.loc[level, "gap_low"].max() < 0.03
        assert tpr.loc[level, "gap_high"].min() > -0.03
    assert tpr.loc[("a x b", "0 & 0"), "gap_high"] < -0.2
    assert tpr.loc[("a x b", "0 & 1"), "gap_low"] > 0.2
    assert tpr.loc["a x b", "too_small"].all() and not tpr.loc["a", "too_small"].any()
    assert set(table["level"]) == {"a", "b", "a x b"}
    # each value is the subgroup report's, on that group against the rest
    rep = subgroup_report(y, s, a, n_boot=0)
    assert tpr.loc[("a", "1"), "value"] == pytest.approx(rep.table["TPR"].iloc[1])


def test_intersectional_report_rejects_bad_inputs():
    y, s, g = scored(200)
    with pytest.raises(ValueError, match="at least two"):
        audit.intersectional_report(y, s, {"g": g})
    with pytest.raises(ValueError, match="metrics"):
        audit.intersectional_report(y, s, {"g": g, "h": 1 - g}, metrics=("n",))
    with pytest.raises(ValueError, match="single value"):
        audit.intersectional_report(y, s, {"g": g, "h": np.zeros(200)})
    with pytest.raises(ValueError, match="shape"):
        audit.intersectional_report(y, s, {"g": g, "h": g[:10]})
    with pytest.raises(ValueError, match="min_count"):
        audit.intersectional_report(y, s, {"g": g, "h": 1 - g}, min_count=-1)


# --------------------------------------------------------------------- prevalence


def test_predictive_values_follow_bayes_rule():
    table = audit.predictive_values(0.8, 0.1, [0.01, 0.5, 0.9])
    assert table["PPV"].is_monotonic_increasing and table["NPV"].is_monotonic_decreasing
    assert table.loc[1, "PPV"] == pytest.approx(0.8 / 0.9)
    assert table.loc[1, "accuracy"] == pytest.approx(0.85)
    assert np.isnan(audit.predictive_values(0.0, 0.0, [0.3])["PPV"].iloc[0])
    with pytest.raises(ValueError, match="tpr"):
        audit.predictive_values(1.2, 0.1, [0.5])
    with pytest.raises(ValueError, match="prevalence"):
        audit.predictive_values(0.8, 0.1, [1.5])


def test_prevalence_table_measures_what_bayes_predicts():
    y, s, _ = scored(6000, seed=5)
    table = audit.prevalence_table(y, s, [0.1, 0.3, 0.5], n_draws=10)
    ppv = table[table["metric"] == "PPV"].set_index("prevalence")
    assert ppv["measured"].is_monotonic_increasing
    assert np.allclose(ppv["measured"], ppv["predicted"], atol=0.03)
    tpr = table[table["metric"] == "TPR"]
    assert np.ptp(tpr["measured"]) < 0.03, "the classifier itself does not change"
    with pytest.raises(ValueError, match="prevalences"):
        audit.prevalence_table(y, s, [0.0])
    with pytest.raises(ValueError, match="n_draws"):
        audit.prevalence_table(y, s, [0.2], n_draws=1)
    with pytest.raises(ValueError, match="single class"):
        audit.prevalence_table(np.ones(5, int), np.full(5, 0.5), [0.2])


def test_weighted_metrics_is_the_report_on_a_reweighted_sample():
    from faimi_tutorial.fairness.metrics import weighted_metrics

    y, s, g = scored(300, seed=7)
    rows = weighted_metrics(y, s, np.vstack([np.ones(300), (g == 1).astype(float)]))
    report = subgroup_report(y, s, g, n_boot=0).table
    for m in ("TPR", "FPR", "PPV", "accuracy", "AUROC", "ECE"):
        assert rows[m][0] == pytest.approx(report.loc["overall", m])
        assert rows[m][1] == pytest.approx(report[m].iloc[1])
    with pytest.raises(ValueError, match="shape"):
        weighted_metrics(y, s, np.ones(300))
    with pytest.raises(ValueError, match="non-negative"):
        weighted_metrics(y, s, -np.ones((1, 300)))
    with pytest.raises(ValueError, match="threshold"):
        weighted_metrics(y, s, np.ones((1, 300)), threshold=2)


def test_check_binary():
    np.testing.assert_array_equal(labels.check_binary([True, False]), [1, 0])
    with pytest.raises(ValueError, match="non-empty"):
        labels.check_binary([])
    with pytest.raises(ValueError, match="labels_a must contain only 0 and 1"):
        labels.check_binary([0, 3], "labels_a")
