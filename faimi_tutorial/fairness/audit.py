"""Audits beyond one report: recalibration, agreement, intersections, prevalence.

Every number here is built from the package's single definitions: per-group rates
and their intervals come from :func:`faimi_tutorial.fairness.metrics.subgroup_report`,
resampling from :func:`faimi_tutorial.fairness.metrics.bootstrap_indices`, means over
runs
from :func:`faimi_tutorial.fairness.metrics.mean_interval`.

- :func:`fit_recalibration`: Platt scaling (Platt 1999) or isotonic regression
  (Zadrozny & Elkan 2002) fitted on validation scores, applied to test scores;
- :func:`calibration_in_the_large`: each group's mean score against its observed
  rate (signed: over- or under-estimated risk), with intervals;
- :func:`ensemble_spread`: how much the members of an ensemble (models of several
  seeds) disagree about each group's subjects, with intervals;
- :func:`agreement_by_group`: agreement and Cohen's kappa between two sets of labels
  (two readers, or a reader and a model) per group, with intervals;
- :func:`intersectional_report`: a metric on every group of each attribute and of
  their intersection, each against the rest, with intervals and a flag for cells
  too small to read;
- :func:`predictive_values` and :func:`prevalence_table`: PPV, NPV and accuracy of
  one classifier (fixed TPR and FPR) as the prevalence changes.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ..validation import check_finite, check_int
from .metrics import (
    DESCRIPTIVE,
    METRICS,
    bootstrap_indices,
    check_inputs,
    mean_interval,
    subgroup_report,
    weighted_metrics,
)

__all__ = [
    "RECALIBRATIONS",
    "Recalibrator",
    "fit_recalibration",
    "calibration_in_the_large",
    "ensemble_spread",
    "agreement_by_group",
    "intersectional_report",
    "predictive_values",
    "prevalence_table",
]

#: Recalibration methods of :func:`fit_recalibration`.
RECALIBRATIONS: tuple[str, ...] = ("platt", "isotonic")

_EPS = 1e-6


def _binary(labels: ArrayLike, name: str) -> np.ndarray:
    """0/1 labels (or booleans) as an int64 array, else ``ValueError`` naming them."""
    y = np.asarray(labels)
    try:
        values = set(np.unique(y).tolist())
    except TypeError as err:
        raise ValueError(f"{name} must contain only 0 and 1 ({err})") from None
    if not values <= {0, 1, True, False}:
        bad = sorted(map(str, values - {0, 1, True, False}))[:3]
        raise ValueError(f"{name} must contain only 0 and 1 (found {', '.join(bad)})")
    if y.size == 0:
        raise ValueError(f"{name} is empty")
    return y.astype(np.int64)


def _check_n_boot(n_boot: Any) -> int:
    return check_int("n_boot", n_boot, 0)


def _check_confidence(confidence: Any) -> float:
    value = check_finite("confidence", confidence, 0.0, 1.0)
    if not 0.0 < value < 1.0:
        raise ValueError(f"confidence={confidence!r} must lie in (0, 1)")
    return value


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if len(values) < 10:
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


# --------------------------------------------------------------------- recalibration


@dataclass(frozen=True)
class Recalibrator:
    """A fitted map from a model's scores to recalibrated probabilities.

    Attributes
    ----------
    method : str
        ``"platt"`` or ``"isotonic"``.
    model : object
        The fitted scikit-learn estimator.
    n_fit : int
        Number of (validation) samples it was fitted on.
    """

    method: str
    model: Any
    n_fit: int

    def transform(self, scores: ArrayLike) -> np.ndarray:
        """Recalibrated probabilities of ``scores`` (values in [0, 1]).

        Parameters
        ----------
        scores : array-like of float in [0, 1]
            Scores of the same model, e.g. on the test set.

        Returns
        -------
        numpy.ndarray
        """
        s = _scores_only(scores)
        if self.method == "platt":
            return self.model.predict_proba(_logit(s)[:, None])[:, 1]
        return np.clip(self.model.predict(s), 0.0, 1.0)


def _scores_only(scores: ArrayLike) -> np.ndarray:
    s = np.asarray(scores)
    check_inputs(np.zeros(len(s), dtype=int) if s.ndim == 1 else s, s)
    return s.astype(float)


def _logit(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, _EPS, 1.0 - _EPS)
    return np.log(s) - np.log1p(-s)


def fit_recalibration(
    y_val: ArrayLike, scores_val: ArrayLike, method: str = "platt"
) -> Recalibrator:
    """Fit a recalibration map on validation data (never on the test set).

    Parameters
    ----------
    y_val : array-like of {0, 1}
        Validation labels (both classes needed).
    scores_val : array-like of float in [0, 1]
        The model's validation scores.
    method : {"platt", "isotonic"}, default "platt"
        ``"platt"``: a logistic regression on the score's logit, two parameters
        (Platt 1999); ``"isotonic"``: a non-decreasing step function (Zadrozny &
        Elkan 2002), more flexible and hungrier for data.

    Returns
    -------
    Recalibrator
        Apply it with ``.transform(test_scores)``.

    Raises
    ------
    ValueError
        For an unknown method, invalid inputs or a single class.
    """
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    if method not in RECALIBRATIONS:
        raise ValueError(
            f"method={method!r} is invalid; allowed: {', '.join(RECALIBRATIONS)}"
        )
    y, s, _ = check_inputs(y_val, scores_val)
    if y.min() == y.max():
        raise ValueError("y_val holds a single class; recalibration needs both")
    if method == "platt":
        model = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(s)[:, None], y)
    else:
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
    return Recalibrator(method=method, model=model, n_fit=len(y))


def calibration_in_the_large(
    y_true: ArrayLike,
    scores: ArrayLike,
    groups: ArrayLike,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean score against observed rate per group: the signed part of miscalibration.

    ECE (:func:`~faimi_tutorial.fairness.metrics.expected_calibration_error`) says how
    far
    scores are from the observed rates but not in which direction; this says
    whether a group's risk is over- (positive) or under-estimated (negative) on
    average, with a bootstrap interval over the group's subjects.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        True labels.
    scores : array-like of float in [0, 1]
        Predicted probabilities.
    groups : array-like
        Group of each subject.
    n_boot : int, default 1000
        Bootstrap replicates (0: no intervals).
    confidence : float, default 0.95
        Level of the percentile intervals.
    seed : int, default 0
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row per group and ``"overall"``: ``n``, ``mean_score``, ``observed``
        (fraction positive), ``difference`` (mean score minus observed) with
        ``difference_low`` and ``difference_high``.

    Examples
    --------
    >>> calibration_in_the_large([1, 0, 1, 0], [0.5] * 4, ["a"] * 4, n_boot=0).loc[
    ...     "a", "difference"]
    0.0
    """
    y, s, g = check_inputs(y_true, scores, groups)
    n_boot = _check_n_boot(n_boot)
    confidence = _check_confidence(confidence)
    rng = np.random.default_rng(seed)
    rows, names = [], []
    for grp in sorted(np.unique(g).tolist(), key=str) + ["overall"]:
        idx = np.arange(len(g)) if grp == "overall" else np.flatnonzero(g == grp)
        diff = s[idx] - y[idx]
        row = {
            "n": float(len(idx)),
            "mean_score": float(s[idx].mean()),
            "observed": float(y[idx].mean()),
            "difference": float(diff.mean()),
        }
        low, high = (
            _percentiles(
                diff[bootstrap_indices(len(idx), n_boot, seed=rng)].mean(axis=1),
                confidence,
            )
            if n_boot
            else (np.nan, np.nan)
        )
        row["difference_low"], row["difference_high"] = low, high
        rows.append(row)
        names.append(grp)
    return pd.DataFrame(rows, index=pd.Index(names, dtype=object, name="group"))


# --------------------------------------------------------------------- ensembles


def ensemble_spread(
    member_scores: ArrayLike,
    groups: ArrayLike,
    *,
    threshold: float = 0.5,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Disagreement between ensemble members, per group, with bootstrap intervals.

    Parameters
    ----------
    member_scores : array-like, shape (n_members, n_subjects)
        Scores in [0, 1] of each member (e.g. the same network trained with
        different seeds) for the same subjects; at least two members.
    groups : array-like of length n_subjects
        Group of each subject.
    threshold : float, default 0.5
        Decision threshold for ``split_decision``.
    n_boot : int, default 1000
        Bootstrap replicates over the group's subjects (0: no intervals).
    confidence : float, default 0.95
        Level of the percentile intervals.
    seed : int, default 0
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row per group (sorted) and ``"overall"``: ``n``, ``score_sd`` (mean
        over subjects of the members' standard deviation), ``split_decision`` (share
        of subjects on whom the members' decisions differ), each with ``_low`` and
        ``_high``.

    Raises
    ------
    ValueError
        For fewer than two members, mismatched lengths or scores outside [0, 1].
    """
    m = np.asarray(member_scores, dtype=float)
    if m.ndim != 2 or m.shape[0] < 2:
        raise ValueError(
            f"member_scores must have shape (n_members >= 2, n_subjects); got {m.shape}"
        )
    if not np.all(np.isfinite(m)) or m.min() < 0 or m.max() > 1:
        raise ValueError("member_scores must be finite values in [0, 1]")
    g = np.asarray(groups)
    if g.shape != (m.shape[1],):
        raise ValueError(f"groups has shape {g.shape}; expected ({m.shape[1]},)")
    n_boot = _check_n_boot(n_boot)
    confidence = _check_confidence(confidence)
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold={threshold!r} must lie in [0, 1]")
    sd = m.std(axis=0, ddof=1)
    decisions = m >= threshold
    split = (decisions.any(axis=0) & ~decisions.all(axis=0)).astype(float)
    rng = np.random.default_rng(seed)
    rows, names = [], []
    for grp in sorted(np.unique(g).tolist(), key=str) + ["overall"]:
        idx = np.arange(len(g)) if grp == "overall" else np.flatnonzero(g == grp)
        row: dict[str, float] = {"n": float(len(idx))}
        draws = bootstrap_indices(len(idx), n_boot, seed=rng) if n_boot else None
        for name, values in (("score_sd", sd[idx]), ("split_decision", split[idx])):
            row[name] = float(values.mean())
            low, high = (
                _percentiles(values[draws].mean(axis=1), confidence)
                if n_boot
                else (np.nan, np.nan)
            )
            row[f"{name}_low"], row[f"{name}_high"] = low, high
        rows.append(row)
        names.append(grp)
    return pd.DataFrame(rows, index=pd.Index(names, dtype=object, name="group"))


# --------------------------------------------------------------------- agreement


def _agreement_and_kappa(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observed agreement and Cohen's kappa of each row of two (rows x n) arrays."""
    po = (a == b).mean(axis=1)
    pa, pb = a.mean(axis=1), b.mean(axis=1)
    pe = pa * pb + (1 - pa) * (1 - pb)
    kappa = np.full(len(po), np.nan)
    np.divide(po - pe, 1.0 - pe, out=kappa, where=(1.0 - pe) > 1e-12)
    return po, kappa


def agreement_by_group(
    labels_a: ArrayLike,
    labels_b: ArrayLike,
    groups: ArrayLike,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Agreement and Cohen's kappa between two labellings, per group, with intervals.

    Kappa is the agreement beyond what the two labellings' rates of positives
    would give by chance: 1 is perfect, 0 is chance (undefined, NaN, when both
    label everyone alike). Neither labelling is taken as the truth.

    Parameters
    ----------
    labels_a, labels_b : array-like of {0, 1}
        Two labellings of the same subjects (two readers, or a reader and a
        model's decisions).
    groups : array-like
        Group of each subject.
    n_boot : int, default 1000
        Bootstrap replicates over each group's subjects (0: no intervals).
    confidence : float, default 0.95
        Level of the percentile intervals.
    seed : int, default 0
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row per group and ``"overall"``: ``n``, ``positive_a``,
        ``positive_b`` (shares labelled 1), ``agreement``, ``kappa``, and
        ``_low``/``_high`` bounds of the last two.

    Raises
    ------
    ValueError
        For labels other than 0/1 or mismatched lengths.

    Examples
    --------
    >>> table = agreement_by_group([1, 0, 1, 0], [1, 0, 0, 0], ["x"] * 4, n_boot=0)
    >>> table.loc["x", "agreement"]
    0.75
    """
    a = _binary(labels_a, "labels_a")
    b = _binary(labels_b, "labels_b")
    g = np.asarray(groups)
    if not (a.ndim == b.ndim == g.ndim == 1 and len(a) == len(b) == len(g)):
        raise ValueError(
            "labels_a, labels_b and groups must be one-dimensional of "
            f"one length (got {len(a)}, {len(b)} and {len(g)})"
        )
    n_boot = _check_n_boot(n_boot)
    confidence = _check_confidence(confidence)
    rng = np.random.default_rng(seed)
    rows, names = [], []
    for grp in sorted(np.unique(g).tolist(), key=str) + ["overall"]:
        idx = np.arange(len(g)) if grp == "overall" else np.flatnonzero(g == grp)
        po, kappa = _agreement_and_kappa(a[idx][None], b[idx][None])
        row = {
            "n": float(len(idx)),
            "positive_a": float(a[idx].mean()),
            "positive_b": float(b[idx].mean()),
            "agreement": float(po[0]),
            "kappa": float(kappa[0]),
        }
        if n_boot:
            draws = idx[bootstrap_indices(len(idx), n_boot, seed=rng)]
            bpo, bkappa = _agreement_and_kappa(a[draws], b[draws])
            row["agreement_low"], row["agreement_high"] = _percentiles(bpo, confidence)
            row["kappa_low"], row["kappa_high"] = _percentiles(bkappa, confidence)
        else:
            row.update(
                agreement_low=np.nan,
                agreement_high=np.nan,
                kappa_low=np.nan,
                kappa_high=np.nan,
            )
        rows.append(row)
        names.append(grp)
    return pd.DataFrame(rows, index=pd.Index(names, dtype=object, name="group"))


# --------------------------------------------------------------------- intersections


def intersectional_report(
    y_true: ArrayLike,
    scores: ArrayLike,
    attributes: Mapping[str, ArrayLike],
    *,
    metrics: Sequence[str] = ("TPR",),
    threshold: float = 0.5,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_count: int = 30,
) -> pd.DataFrame:
    """A metric on each group of each attribute and of their intersection, vs the rest.

    For every group (each value of each attribute, then each combination of all
    attributes) the report's metrics
    (:func:`~faimi_tutorial.fairness.metrics.weighted_metrics`)
    give the group's value and the signed gap, group minus everyone else, as
    :func:`subgroup_report` would with the group and the rest as its two groups;
    intervals resample within the group and within the rest
    (:func:`~faimi_tutorial.fairness.metrics.bootstrap_indices`). One global threshold
    throughout.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        True labels.
    scores : array-like of float in [0, 1]
        Model scores.
    attributes : mapping of str to array-like
        Two or more attributes by name (e.g. ``{"group": ..., "site": ...}``).
    metrics : sequence of str, default ("TPR",)
        Names from :data:`faimi_tutorial.fairness.metrics.METRICS` (not ``n`` or
        ``prevalence``).
    threshold : float, default 0.5
        The one global threshold.
    n_boot : int, default 1000
        Bootstrap replicates (0: no intervals).
    confidence : float, default 0.95
        Level of the intervals.
    seed : int, default 0
        Seed of the bootstrap.
    min_count : int, default 30
        A group whose metric rests on fewer subjects (positives for TPR,
        negatives for FPR/TNR, everyone otherwise) is flagged ``too_small``.

    Returns
    -------
    pandas.DataFrame
        One row per (level, group, metric): ``level`` (an attribute's name, or the
        names joined by " x "), ``group``, ``metric``, ``n``, ``n_metric`` (the
        subjects the metric rests on), ``value``, ``low``, ``high``, ``gap`` (group
        minus rest), ``gap_low``, ``gap_high`` and ``too_small``.

    Raises
    ------
    ValueError
        For fewer than two attributes, lengths that differ, unknown metrics or an
        attribute with a single value.
    """
    y, s, _ = check_inputs(y_true, scores)
    if not isinstance(attributes, Mapping) or len(attributes) < 2:
        raise ValueError("attributes must map at least two names to arrays")
    metrics = list(metrics)
    bad = [m for m in metrics if m not in METRICS or m in DESCRIPTIVE]
    if bad or not metrics:
        raise ValueError(
            f"metrics={bad or metrics!r} invalid; allowed: "
            f"{', '.join(m for m in METRICS if m not in DESCRIPTIVE)}"
        )
    min_count = check_int("min_count", min_count, 0)
    columns = {}
    for name, values in attributes.items():
        v = np.asarray(values)
        if v.shape != y.shape:
            raise ValueError(
                f"attribute {name!r} has shape {v.shape}; expected {y.shape}"
            )
        if len(np.unique(v.astype(str))) < 2:
            raise ValueError(f"attribute {name!r} has a single value")
        columns[str(name)] = v.astype(str)
    joint_name = " x ".join(columns)
    joint = np.array([" & ".join(parts) for parts in zip(*columns.values())])
    levels = [*columns.items(), (joint_name, joint)]
    base = {"TPR": y == 1, "FPR": y == 0, "TNR": y == 0}
    rng = np.random.default_rng(seed)
    rows = []
    for level, values in levels:
        for grp in sorted(np.unique(values).tolist()):
            member = values == grp
            if member.all():
                continue
            sides = [np.flatnonzero(member), np.flatnonzero(~member)]
            point = weighted_metrics(
                y, s, np.vstack([member, ~member]).astype(float), threshold=threshold
            )
            boot = []
            for idx in sides:  # resampled within the group and within the rest
                w = np.zeros((n_boot, len(y)))
                if n_boot:
                    draws = idx[bootstrap_indices(len(idx), n_boot, seed=rng)]
                    np.add.at(
                        w, (np.repeat(np.arange(n_boot), len(idx)), draws.ravel()), 1.0
                    )
                boot.append(
                    weighted_metrics(y, s, w, threshold=threshold) if n_boot else None
                )
            for m in metrics:
                n_metric = int((member & base.get(m, np.ones_like(member))).sum())
                low = high = gap_low = gap_high = float("nan")
                if n_boot:
                    low, high = _percentiles(boot[0][m], confidence)
                    gap_low, gap_high = _percentiles(
                        boot[0][m] - boot[1][m], confidence
                    )
                rows.append(
                    {
                        "level": level,
                        "group": grp,
                        "metric": m,
                        "n": int(member.sum()),
                        "n_metric": n_metric,
                        "value": float(point[m][0]),
                        "low": low,
                        "high": high,
                        "gap": float(point[m][0] - point[m][1]),
                        "gap_low": gap_low,
                        "gap_high": gap_high,
                        "too_small": n_metric < min_count,
                    }
                )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------- prevalence


def predictive_values(tpr: float, fpr: float, prevalence: ArrayLike) -> pd.DataFrame:
    """PPV, NPV and accuracy of a classifier with fixed TPR and FPR, by prevalence.

    Bayes' rule: PPV = TPR p / (TPR p + FPR (1 - p)), NPV = (1 - FPR)(1 - p) /
    ((1 - FPR)(1 - p) + (1 - TPR) p), accuracy = TPR p + (1 - FPR)(1 - p).

    Parameters
    ----------
    tpr, fpr : float
        The classifier's rates, in [0, 1].
    prevalence : array-like of float
        Prevalences in [0, 1].

    Returns
    -------
    pandas.DataFrame
        Columns ``prevalence``, ``PPV``, ``NPV``, ``accuracy`` (NaN where a
        predictive value is undefined).

    Examples
    --------
    >>> predictive_values(0.9, 0.1, [0.5])["PPV"].round(2).tolist()
    [0.9]
    """
    tpr = check_finite("tpr", tpr, 0.0, 1.0)
    fpr = check_finite("fpr", fpr, 0.0, 1.0)
    p = np.atleast_1d(np.asarray(prevalence, dtype=float))
    if p.ndim != 1 or not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("prevalence must be numbers in [0, 1]")
    tp, fp = tpr * p, fpr * (1 - p)
    tn, fn = (1 - fpr) * (1 - p), (1 - tpr) * p
    with np.errstate(invalid="ignore", divide="ignore"):
        ppv = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        npv = np.where(tn + fn > 0, tn / (tn + fn), np.nan)
    return pd.DataFrame({"prevalence": p, "PPV": ppv, "NPV": npv, "accuracy": tp + tn})


def prevalence_table(
    y_true: ArrayLike,
    scores: ArrayLike,
    prevalences: Sequence[float],
    *,
    threshold: float = 0.5,
    n_draws: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """One model's scores on test sets of other prevalences, beside Bayes' rule.

    For each prevalence the test set is subsampled without replacement (all of the
    scarcer class kept as far as the target allows) ``n_draws`` times; TPR, FPR,
    PPV, NPV and accuracy come from the kernel of :func:`subgroup_report` (NPV
    from its TNR, prevalence and selection rate), averaged over draws with
    an interval (:func:`~faimi_tutorial.fairness.metrics.mean_interval`), and set beside
    :func:`predictive_values` of the full set's TPR and FPR.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        True labels (both classes).
    scores : array-like of float in [0, 1]
        Model scores.
    prevalences : sequence of float
        Target prevalences, each in (0, 1).
    threshold : float, default 0.5
        The decision threshold.
    n_draws : int, default 20
        Subsamples per prevalence (>= 2).
    seed : int, default 0
        Seed of the subsampling.

    Returns
    -------
    pandas.DataFrame
        One row per prevalence and metric (``PPV``, ``NPV``, ``accuracy``,
        ``TPR``, ``FPR``): ``measured``, ``low``, ``high`` and ``predicted``
        (Bayes' rule; for TPR and FPR the full set's value), and ``n``, the size of
        each subsample.
    """
    y, s, _ = check_inputs(y_true, scores)
    if y.min() == y.max():
        raise ValueError("y_true holds a single class; prevalence needs both")
    p = np.asarray(prevalences, dtype=float)
    if p.ndim != 1 or len(p) == 0 or not np.all((p > 0) & (p < 1)):
        raise ValueError("prevalences must be numbers in (0, 1)")
    n_draws = check_int("n_draws", n_draws, 2)

    def rates(weights: np.ndarray) -> dict[str, np.ndarray]:
        """The report's kernel on each row of 0/1 weights (one subsample per row)."""
        r = weighted_metrics(y, s, weights, threshold=threshold)
        with np.errstate(invalid="ignore", divide="ignore"):
            npv = np.where(
                r["selection_rate"] < 1,
                r["TNR"] * (1 - r["prevalence"]) / (1 - r["selection_rate"]),
                np.nan,
            )
        return {
            "PPV": r["PPV"],
            "NPV": npv,
            "accuracy": r["accuracy"],
            "TPR": r["TPR"],
            "FPR": r["FPR"],
        }

    full = {k: float(v[0]) for k, v in rates(np.ones((1, len(y)))).items()}
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    rng = np.random.default_rng([int(seed), 47])
    rows = []
    for prev in p:
        n_pos = min(len(pos), int(np.floor(len(neg) * prev / (1 - prev))))
        n_neg = min(len(neg), int(np.floor(len(pos) * (1 - prev) / prev)))
        if n_pos < 1 or n_neg < 1:
            raise ValueError(
                f"prevalence {prev:g} cannot be reached with {len(pos)} "
                f"positives and {len(neg)} negatives"
            )
        weights = np.zeros((int(n_draws), len(y)))
        for row in weights:
            row[rng.choice(pos, n_pos, replace=False)] = 1.0
            row[rng.choice(neg, n_neg, replace=False)] = 1.0
        draws = rates(weights)
        bayes = predictive_values(full["TPR"], full["FPR"], [prev]).iloc[0]
        for m in ("PPV", "NPV", "accuracy", "TPR", "FPR"):
            mean, low, high = mean_interval(draws[m], seed=seed)
            rows.append(
                {
                    "prevalence": float(prev),
                    "metric": m,
                    "n": n_pos + n_neg,
                    "measured": mean,
                    "low": low,
                    "high": high,
                    "predicted": float(bayes[m]) if m in bayes else full[m],
                }
            )
    return pd.DataFrame(rows)
