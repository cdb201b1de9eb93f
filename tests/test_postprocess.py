"""Tests of faimi_tutorial.fairness.postprocess."""

import numpy as np
import pytest

from faimi_tutorial import postprocess
from faimi_tutorial.fairness.metrics import subgroup_report


def data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.choice(["A", "B"], n, p=[0.6, 0.4])
    y = rng.integers(0, 2, n)
    z = np.where(y == 1, 1.0, -1.0) + 0.8 * (g == "B") + rng.normal(0, 1, n)
    return y, 1 / (1 + np.exp(-z)), g


def test_score_classifier_passes_scores_through():
    clf = postprocess.ScoreClassifier().fit(np.zeros((3, 1)))
    p = clf.predict_proba(np.array([[0.2], [0.7], [0.5]]))
    np.testing.assert_allclose(p[:, 1], [0.2, 0.7, 0.5])
    np.testing.assert_array_equal(clf.predict(np.array([[0.2], [0.7], [0.5]])), [0, 1, 1])


def test_threshold_optimizer_reduces_equalized_odds_gap():
    y, s, g = data()
    before = subgroup_report(y, s, g, n_boot=0).fairness["equalized_odds_difference"]
    post = postprocess.fit_threshold_optimizer(y[:1500], s[:1500], g[:1500])
    pred = post.predict(s[1500:], g[1500:], seed=0)
    assert set(np.unique(pred)) <= {0, 1}
    after = subgroup_report(y[1500:], pred.astype(float), g[1500:], n_boot=0)
    assert before > 0.2
    assert after.fairness["equalized_odds_difference"] < before / 2
    np.testing.assert_array_equal(pred, post.predict(s[1500:], g[1500:], seed=0))


def test_threshold_optimizer_rejects_unknown_constraint():
    y, s, g = data(200)
    with pytest.raises(ValueError, match="constraint"):
        postprocess.fit_threshold_optimizer(y, s, g, constraint="fairness")


def test_thresholds_for_tpr_equalise_tpr():
    y, s, g = data()
    th = postprocess.thresholds_for_tpr(y, s, g, target_tpr=0.8)
    assert th["B"] > th["A"]  # B's scores are shifted up
    pred = postprocess.apply_thresholds(s, g, th)
    for grp in ("A", "B"):
        m = (g == grp) & (y == 1)
        assert 0.8 <= pred[m].mean() <= 0.8 + 2 / m.sum()
    with pytest.raises(ValueError, match="target_tpr"):
        postprocess.thresholds_for_tpr(y, s, g, target_tpr=0)
    with pytest.raises(ValueError, match="no entry"):
        postprocess.apply_thresholds(s, g, {"A": 0.5})


def test_thresholds_for_fpr_equalise_fpr():
    y, s, g = data()
    th = postprocess.thresholds_for_fpr(y, s, g, target_fpr=0.1)
    assert th["B"] > th["A"]  # B's healthy scores are shifted up
    pred = postprocess.apply_thresholds(s, g, th)
    for grp in ("A", "B"):
        m = (g == grp) & (y == 0)
        assert 0.1 - 2 / m.sum() <= pred[m].mean() <= 0.1
    assert postprocess.apply_thresholds(s, g, postprocess.thresholds_for_fpr(
        y, s, g, target_fpr=0.0))[y == 0].sum() == 0
    with pytest.raises(ValueError, match="target_fpr"):
        postprocess.thresholds_for_fpr(y, s, g, target_fpr=1.0)
    with pytest.raises(ValueError, match="no negatives"):
        postprocess.thresholds_for_fpr(np.ones(4, int), s[:4], g[:4])
