"""Subgroup fairness metrics at one global operating point.

The central object is :func:`subgroup_report`: per group (and overall) it gives the
sample size, prevalence, selection rate, TPR, FPR, TNR, PPV, accuracy, AUROC, average
precision and expected calibration error, all at one global threshold; the gaps
between groups (difference, ratio, worst group, equalized-odds and demographic-parity
differences); and seeded, group-stratified bootstrap confidence intervals.

Point estimates come from fairlearn's :class:`~fairlearn.metrics.MetricFrame` with
scikit-learn's metric functions. The bootstrap uses vectorised versions of the same
metrics (tested against scikit-learn) so that a thousand replicates take a fraction
of a second.

This module holds the one definition of each quantity that the rest of the package
reports: :func:`auroc` (every AUROC in the package; :func:`auroc_of_resamples` for
bootstrap replicates), :func:`bootstrap_indices` (every
resampling bootstrap) and :func:`signed_gaps` (every gap between groups: the bias
group's value minus the mean of the other groups'). A spread between groups, max -
min, is a *range* (:attr:`SubgroupReport.gaps`' ``difference``), never called a gap
without saying so.

Also here: :func:`counterfactual_flip_rate` (how predictions change between a subject
and its counterfactual twin) and :func:`aggregate_seeds` (mean and interval of a
result across training seeds).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

#: Metrics of the report, in display order.
METRICS: tuple[str, ...] = (
    "n",
    "prevalence",
    "selection_rate",
    "TPR",
    "FPR",
    "TNR",
    "PPV",
    "accuracy",
    "AUROC",
    "AP",
    "ECE",
)
#: Per-group metrics that :func:`signed_gaps` can return as ``<metric>_g<k>``.
GROUP_METRICS: tuple[str, ...] = ("TPR", "FPR", "accuracy", "AUROC", "selection_rate")
#: Metrics for which a lower value is better (used for the worst group).
LOWER_IS_BETTER: frozenset[str] = frozenset({"FPR", "ECE"})
#: Metrics that describe the data rather than the model (no gap is reported).
DESCRIPTIVE: frozenset[str] = frozenset({"n", "prevalence"})

_DEFINED_WHEN = {
    "TPR": "the group has no positives",
    "FPR": "the group has no negatives",
    "TNR": "the group has no negatives",
    "PPV": "no member of the group is predicted positive",
    "AUROC": "the group does not contain both classes",
    "AP": "the group has no positives",
}


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for a group (for example TPR in a group with no
    positives)."""


# ---------------------------------------------------------------------------
# input checking
# ---------------------------------------------------------------------------


def check_inputs(
    y_true, scores, groups=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate and convert the three arrays of every metric function."""
    y = np.asarray(y_true)
    s = np.asarray(scores)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(
            f"y_true and scores must be one-dimensional (got shapes {y.shape} and "
            f"{s.shape})"
        )
    if len(y) != len(s):
        raise ValueError(
            f"y_true and scores have different lengths ({len(y)} and {len(s)})"
        )
    if len(y) == 0:
        raise ValueError("y_true and scores are empty")
    try:
        s = s.astype(float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"scores must be numbers in [0, 1]: {err}") from None
    if not np.all(np.isfinite(s)):
        raise ValueError(
            "scores contain NaN or infinite values; allowed range is [0, 1]"
        )
    if s.min() < 0 or s.max() > 1:
        raise ValueError(
            f"scores must lie in [0, 1] (got min {s.min():.4g}, max {s.max():.4g}); "
            "pass probabilities, for example the output of a sigmoid"
        )
    y = _check_labels(y)
    g = None
    if groups is not None:
        g = _as_groups(groups)
        if g.ndim != 1:
            raise ValueError(f"groups must be one-dimensional (got shape {g.shape})")
        if len(g) != len(y):
            raise ValueError(
                f"groups and y_true have different lengths ({len(g)} and {len(y)})"
            )
        if pd.isna(g).any():
            raise ValueError("groups contains missing values")
        labels = _check_group_labels(g)
        g = _typed(g, labels)
    return y, s, g


def _check_labels(y: np.ndarray) -> np.ndarray:
    """Binary labels (0/1, or booleans) as an integer array; anything else raises."""
    try:
        labels = set(pd.unique(y).tolist())
    except TypeError as err:
        raise ValueError(f"y_true must contain only 0 and 1 ({err})") from None
    if not labels <= {0, 1, True, False}:
        bad = sorted(map(str, labels - {0, 1, True, False}))[:5]
        raise ValueError(f"y_true must contain only 0 and 1 (found {', '.join(bad)})")
    return y.astype(int)


def _as_groups(groups) -> np.ndarray:
    """Group labels as an array without numpy's silent coercion of mixed lists to
    text."""
    if isinstance(groups, (np.ndarray, pd.Series, pd.Index, pd.Categorical)):
        return np.asarray(groups)
    items = list(groups)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _typed(g: np.ndarray, labels: list) -> np.ndarray:
    """An object array of one kind of plain labels as a typed array (bool, number,
    str)."""
    if (
        g.dtype == object
        and labels
        and _label_kind(labels[0]) in ("bool", "number", "str")
    ):
        return np.asarray(g.tolist())
    return g


#: Label of the row that pools every group; no group may carry it.
OVERALL = "overall"


def _label_kind(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(value, (str, np.str_)):
        return "str"
    return type(value).__name__


def _check_group_labels(g: np.ndarray) -> list:
    """The distinct group labels as Python values: one kind (bool, number or str, ...),
    hashable, and never the overall row's label."""
    try:
        labels = [x.item() if isinstance(x, np.generic) else x for x in pd.unique(g)]
    except TypeError as err:
        raise ValueError(f"groups must hold hashable labels ({err})") from None
    # every element, not the distinct ones: True and 1 are equal, so unique() merges
    # them
    kinds = sorted({_label_kind(x) for x in (g if g.dtype == object else labels)})
    if len(kinds) > 1:
        raise ValueError(
            f"groups mixes label types ({', '.join(kinds)}); allowed: labels of "
            "one type, e.g. all integers, all booleans or all strings"
        )
    if any(_label_kind(x) == "str" and x == OVERALL for x in labels):
        raise ValueError(
            f"groups contains the label {OVERALL!r}, which names the row of all "
            "subjects together; rename that group"
        )
    return labels


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, (bool, np.bool_, str, bytes)) or threshold is None:
        raise ValueError(f"threshold={threshold!r} must be a number in [0, 1]")
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(
            f"threshold={threshold!r} must be a number in [0, 1]"
        ) from None
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise ValueError(f"threshold={threshold!r} must lie in [0, 1]")
    return value


def _check_n_bins(n_bins) -> int:
    if (
        isinstance(n_bins, (bool, np.bool_))
        or not isinstance(n_bins, (int, np.integer))
        or n_bins < 1
    ):
        raise ValueError(f"n_bins={n_bins!r} must be a positive integer")
    return int(n_bins)


# ---------------------------------------------------------------------------
# weighted metric kernels: each row of ``weights`` is one bootstrap replicate,
# given as how many times each sample is drawn (a row of ones is the sample itself)
# ---------------------------------------------------------------------------


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _tie_blocks(
    y: np.ndarray, s: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Samples sorted by decreasing score, and weighted class counts per block of ties.

    Returns the sorted labels, scores and weights, then the (replicates x blocks)
    weighted counts of positives and of negatives in each block of tied scores.
    """
    order = np.argsort(-s, kind="stable")
    ys, ss, w = y[order].astype(float), s[order], weights[:, order].astype(float)
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    pos = np.add.reduceat(w * ys, starts, axis=1)  # weighted positives per tie block
    neg = np.add.reduceat(w * (1 - ys), starts, axis=1)
    return ys, ss, w, pos, neg


def _auroc_blocks(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC of each replicate from its tie blocks (Mann-Whitney, ties count one half).

    With unit (integer) weights every sum is exact, so the result is the exact
    ratio U / (n_pos n_neg) rounded once; NaN where a class is missing.
    """
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    neg_below = n_neg[:, None] - np.cumsum(neg, axis=1)
    return _ratio((pos * (neg_below + 0.5 * neg)).sum(axis=1), n_pos * n_neg)


def _metric_rows(
    y: np.ndarray, s: np.ndarray, weights: np.ndarray, threshold: float, n_bins: int
) -> dict[str, np.ndarray]:
    """All report metrics for each row of a (replicates x samples) weight matrix.

    The samples are sorted once by decreasing score and grouped into blocks of tied
    scores; every metric is then a weighted sum over blocks, so no replicate needs a
    sort of its own. AUROC counts ties as one half (Mann-Whitney) and average precision
    is scikit-learn's step-wise definition, both exact for a row of ones.
    """
    ys, ss, w, pos, neg = _tie_blocks(y, s, weights)
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    n = n_pos + n_neg
    cum_pos, cum_all = np.cumsum(pos, axis=1), np.cumsum(pos + neg, axis=1)
    auc = _auroc_blocks(pos, neg)
    precision = _ratio(cum_pos, cum_all)
    ap = _ratio(np.where(pos > 0, pos * precision, 0.0).sum(axis=1), n_pos)

    predicted = ss >= threshold  # a prefix of the sorted samples
    tp = (w * (ys * predicted)).sum(axis=1)
    n_pred = (w * predicted).sum(axis=1)
    fp = n_pred - tp

    bins = np.minimum((ss * n_bins).astype(int), n_bins - 1)
    onehot = np.zeros((len(ss), n_bins))
    onehot[np.arange(len(ss)), bins] = 1.0
    gap = (w * ss) @ onehot - (w * ys) @ onehot
    ece = _ratio(np.abs(gap).sum(axis=1), n)
    return {
        "n": n,
        "prevalence": _ratio(n_pos, n),
        "selection_rate": _ratio(n_pred, n),
        "TPR": _ratio(tp, n_pos),
        "FPR": _ratio(fp, n_neg),
        "TNR": _ratio(n_neg - fp, n_neg),
        "PPV": _ratio(tp, n_pred),
        "accuracy": _ratio(tp + n_neg - fp, n),
        "AUROC": auc,
        "AP": ap,
        "ECE": ece,
    }


def weighted_metrics(
    y_true: ArrayLike,
    scores: ArrayLike,
    weights: ArrayLike,
    *,
    threshold: float = 0.5,
    n_bins: int = 10,
) -> dict[str, np.ndarray]:
    """Every report metric for each row of a weight matrix, in one pass.

    The kernel of :func:`subgroup_report`'s intervals, public so that resampled or
    reweighted test sets (a row per replicate, each entry how often a sample
    counts) are measured with the same definitions as the report.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        True labels.
    scores : array-like of float in [0, 1]
        Predicted probabilities.
    weights : array-like, shape (n_rows, n_samples)
        Non-negative counts or weights; a row of ones is the sample itself.
    threshold : float, default 0.5
        The one global threshold.
    n_bins : int, default 10
        Bins of the expected calibration error.

    Returns
    -------
    dict of str to numpy.ndarray
        One array of ``n_rows`` values per name in :data:`METRICS` (NaN where
        undefined).

    Examples
    --------
    >>> weighted_metrics([0, 1, 1], [0.2, 0.8, 0.3], [[1, 1, 1], [0, 1, 0]])["TPR"]
    array([0.5, 1. ])
    """
    y, s, _ = check_inputs(y_true, scores)
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or w.shape[1] != len(y):
        raise ValueError(f"weights must have shape (n_rows, {len(y)}); got {w.shape}")
    if not np.all(np.isfinite(w)) or (w.size and w.min() < 0):
        raise ValueError("weights must be finite and non-negative")
    return _metric_rows(y, s, w, _check_threshold(threshold), _check_n_bins(n_bins))


# ---------------------------------------------------------------------------
# the one AUROC and the one bootstrap
# ---------------------------------------------------------------------------


def auroc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve: the chance a positive outscores a negative.

    Every AUROC point estimate in the package is this function: scikit-learn's
    ``roc_auc_score`` (ties count one half) behind one input check, undefined
    (NaN) rather than an error when a class is missing. Bootstrap replicates use
    :func:`auroc_of_resamples`, the same quantity in one vectorised pass.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        True labels (booleans are read as 0/1).
    scores : array-like of float
        Any finite real scores (probabilities, logits, a feature); higher means
        more likely positive.

    Returns
    -------
    float
        The AUROC in [0, 1]; NaN when fewer than two classes are present
        (including empty input), because it is undefined then.

    Raises
    ------
    ValueError
        If the arrays are not one-dimensional, differ in length, the scores are
        not finite numbers, or the labels are not 0/1.

    Examples
    --------
    >>> auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    from sklearn.metrics import roc_auc_score

    y, s = _check_auroc_inputs(y_true, scores)
    if len(y) == 0 or y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, s))


def _check_auroc_inputs(
    y_true: ArrayLike, scores: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Labels as 0/1 integers and scores as finite floats, or a ValueError saying
    why."""
    y = np.asarray(y_true)
    s = np.asarray(scores)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(
            f"y_true and scores must be one-dimensional (got shapes {y.shape} and "
            f"{s.shape})"
        )
    if len(y) != len(s):
        raise ValueError(
            f"y_true and scores have different lengths ({len(y)} and {len(s)})"
        )
    try:
        s = s.astype(float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"scores must be finite numbers: {err}") from None
    if not np.all(np.isfinite(s)):
        raise ValueError(
            "scores contain NaN or infinite values; AUROC needs finite scores"
        )
    return _check_labels(y), s


def auroc_of_resamples(
    y_true: ArrayLike, scores: ArrayLike, indices: ArrayLike
) -> np.ndarray:
    """:func:`auroc` of every bootstrap replicate, in one vectorised pass.

    Each row of ``indices`` (for example from :func:`bootstrap_indices`) is one
    replicate; the AUROC is the Mann-Whitney statistic with the replicate's counts
    as weights, the kernel of :func:`subgroup_report`'s intervals. It equals
    ``auroc(y_true[row], scores[row])`` (exactly, up to the last bit of
    scikit-learn's rounding), without a sort per replicate.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        True labels.
    scores : array-like of float
        Finite real scores.
    indices : array-like of int, shape (n_boot, m)
        Row ``b`` lists the samples drawn for replicate ``b``.

    Returns
    -------
    numpy.ndarray
        One AUROC per replicate (NaN where a replicate lacks a class).

    Examples
    --------
    >>> auroc_of_resamples([0, 1, 1], [0.2, 0.9, 0.1], [[0, 1, 2], [0, 1, 1]])
    array([0.5, 1. ])
    """
    y, s = _check_auroc_inputs(y_true, scores)
    idx = np.asarray(indices)
    if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(
            f"indices must be a 2-D integer array (got shape {idx.shape}, "
            f"dtype {idx.dtype})"
        )
    if idx.size and (idx.min() < 0 or idx.max() >= len(y)):
        raise ValueError(f"indices must lie in [0, {len(y) - 1}]")
    counts = np.zeros((len(idx), len(y)))
    if idx.size:
        np.add.at(
            counts, (np.repeat(np.arange(len(idx)), idx.shape[1]), idx.ravel()), 1.0
        )
    if len(y) == 0:
        return np.full(len(idx), np.nan)
    _, _, _, pos, neg = _tie_blocks(y, s, counts)
    return _auroc_blocks(pos, neg)


def bootstrap_indices(
    n: int,
    n_boot: int,
    *,
    seed: int | np.random.Generator = 0,
    strata: ArrayLike | None = None,
) -> np.ndarray:
    """Bootstrap resamples of ``range(n)``: indices drawn with replacement.

    Every resampling bootstrap in the package draws its replicates here.

    Parameters
    ----------
    n : int
        Number of samples (or runs) to resample.
    n_boot : int
        Number of replicates.
    seed : int or numpy.random.Generator, default 0
        Seed of the draws (same seed, same replicates), or a generator to draw from.
    strata : array-like of length n, optional
        Resample within each stratum (e.g. class), so every replicate keeps each
        stratum's size. Strata are drawn in sorted order of their labels, one
        replicate after the other, and each row lists stratum after stratum.

    Returns
    -------
    numpy.ndarray
        Integer array of shape ``(n_boot, n)``; row ``b`` indexes replicate ``b``.

    Examples
    --------
    >>> bootstrap_indices(4, 2, seed=0).shape
    (2, 4)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer")
    if (
        isinstance(n_boot, bool)
        or not isinstance(n_boot, (int, np.integer))
        or n_boot < 0
    ):
        raise ValueError(f"n_boot={n_boot!r} must be a non-negative integer")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n, n_boot = int(n), int(n_boot)
    if strata is None:
        return rng.integers(0, n, (n_boot, n))
    labels = np.asarray(strata).reshape(-1)
    if len(labels) != n:
        raise ValueError(f"strata holds {len(labels)} labels for n={n} samples")
    members = [np.flatnonzero(labels == k) for k in np.unique(labels)]
    out = np.empty((n_boot, n), dtype=np.int64)
    for b in range(n_boot):
        out[b] = np.concatenate([m[rng.integers(0, len(m), len(m))] for m in members])
    return out


# ---------------------------------------------------------------------------
# scikit-learn based point estimates, evaluated through fairlearn's MetricFrame
# ---------------------------------------------------------------------------


def expected_calibration_error(y_true, scores, n_bins: int = 10) -> float:
    """Expected calibration error with equal-width bins.

    ECE is the sum over bins of (bin size / n) times the absolute difference between the
    mean score and the fraction of positives in the bin.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        True labels.
    scores : array-like of float in [0, 1]
        Predicted probabilities of the positive class.
    n_bins : int, default 10
        Number of equal-width bins over [0, 1].

    Returns
    -------
    float
        The ECE, in [0, 1].
    """
    y, s, _ = check_inputs(y_true, scores)
    n_bins = _check_n_bins(n_bins)
    return float(_metric_rows(y, s, np.ones((1, len(y))), 0.5, n_bins)["ECE"][0])


def _sk_metrics(threshold: float, n_bins: int) -> dict:
    """Point-estimate metric functions ``(y, s) -> float`` for fairlearn's
    MetricFrame."""
    from sklearn import metrics as skm

    def binarise(s):
        return (np.asarray(s) >= threshold).astype(int)

    def tnr(y, s):
        y = np.asarray(y)
        if (y == 0).sum() == 0:
            return np.nan
        return float(
            skm.recall_score(y, binarise(s), pos_label=0, zero_division=np.nan)
        )

    def fpr(y, s):
        value = tnr(y, s)
        return np.nan if np.isnan(value) else 1.0 - value

    def ap(y, s):
        y = np.asarray(y)
        return np.nan if y.sum() == 0 else float(skm.average_precision_score(y, s))

    return {
        "n": lambda y, s: float(len(y)),
        "prevalence": lambda y, s: float(np.mean(y)),
        "selection_rate": lambda y, s: float(np.mean(binarise(s))),
        "TPR": lambda y, s: float(
            skm.recall_score(y, binarise(s), zero_division=np.nan)
        ),
        "FPR": fpr,
        "TNR": tnr,
        "PPV": lambda y, s: float(
            skm.precision_score(y, binarise(s), zero_division=np.nan)
        ),
        "accuracy": lambda y, s: float(skm.accuracy_score(y, binarise(s))),
        "AUROC": auroc,
        "AP": ap,
        "ECE": lambda y, s: expected_calibration_error(y, s, n_bins),
    }


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------


@dataclass
class SubgroupReport:
    """Result of :func:`subgroup_report`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per group plus ``"overall"``; one column per metric in :data:`METRICS`.
    ci_low, ci_high : pandas.DataFrame
        Bootstrap interval bounds, same shape as ``table`` (NaN where undefined).
    gaps : pandas.DataFrame
        One row per model metric: ``difference`` (the range, max - min over groups,
        fairlearn's "difference"; it has no interval, because max - min is never
        below zero and its bootstrap interval cannot test whether a gap exists),
        ``contrast`` (with two groups: second group minus first, signed, with its
        interval ``contrast_low``/``contrast_high``, which may include zero: the
        evidence for a gap; for groups 0 and 1 it is the gap of
        :func:`signed_gaps` with bias group 1),
        ``ratio`` (min / max), ``worst`` (value of the worst group) and ``worst_group``.
    fairness : pandas.Series
        Equalized-odds difference (max of the TPR and FPR differences) and
        demographic-parity difference (selection-rate difference).
    threshold : float
        The one global threshold used for every group.
    n_boot : int
        Number of bootstrap replicates (0: no intervals).
    confidence : float
        Level of the intervals.
    undefined : list of tuple
        ``(group, metric)`` pairs for which a metric is undefined.
    """

    table: pd.DataFrame
    ci_low: pd.DataFrame
    ci_high: pd.DataFrame
    gaps: pd.DataFrame
    fairness: pd.Series
    threshold: float
    n_boot: int
    confidence: float
    undefined: list = field(default_factory=list)

    @property
    def groups(self) -> list:
        """Group labels, in the order of the table (without the last row,
        ``"overall"``)."""
        return list(self.table.index[:-1])

    def summary(
        self, metrics: Sequence[str] = ("n", "TPR", "FPR", "PPV", "AUROC", "ECE")
    ):
        """Table of ``value [low, high]`` strings, one row per group, for display.

        Parameters
        ----------
        metrics : sequence of str
            Columns to show (names from :data:`METRICS`).

        Returns
        -------
        pandas.DataFrame
            Formatted strings; undefined values read ``"undefined"``.
        """
        check_metric_names(metrics)
        out = pd.DataFrame(index=self.table.index)
        for m in metrics:
            col = []
            for i in range(len(self.table)):  # by position: labels may be booleans
                v = self.table[m].iloc[i]
                lo, hi = self.ci_low[m].iloc[i], self.ci_high[m].iloc[i]
                if m == "n":
                    col.append(f"{int(v)}")
                elif np.isnan(v):
                    col.append("undefined")
                elif self.n_boot and np.isfinite(lo):
                    col.append(f"{v:.3f} [{lo:.3f}, {hi:.3f}]")
                else:
                    col.append(f"{v:.3f}")
            out[m] = col
        out.index.name = "group"
        return out

    def _repr_html_(self) -> str:  # pragma: no cover - display only
        level = (
            f"{self.confidence:.0%} bootstrap intervals"
            if self.n_boot
            else "no intervals"
        )
        head = f"<p>Subgroup report at threshold {self.threshold:g} ({level})</p>"
        return head + self.summary().to_html()


def check_metric_names(metrics: Sequence[str]) -> None:
    """Raise a one-line ``ValueError`` naming any metric not in :data:`METRICS`."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"metrics={unknown!r} unknown; allowed: {', '.join(METRICS)}")


def subgroup_report(
    y_true,
    scores,
    groups,
    *,
    threshold: float = 0.5,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    n_bins: int = 10,
) -> SubgroupReport:
    """Per-group classification metrics at one global threshold, with gaps and
    intervals.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        True labels.
    scores : array-like of float in [0, 1]
        Predicted probability of the positive class.
    groups : array-like
        Group membership (any hashable labels), at least two distinct values.
    threshold : float, default 0.5
        One global decision threshold: ``score >= threshold`` predicts positive.
    n_boot : int, default 1000
        Bootstrap replicates for the intervals; resampling is stratified by group, so
        every replicate keeps each group's size. 0 skips the intervals.
    confidence : float, default 0.95
        Level of the percentile intervals.
    seed : int, default 0
        Seed of the bootstrap (same seed, same intervals).
    n_bins : int, default 10
        Bins of the expected calibration error.

    Returns
    -------
    SubgroupReport

    Raises
    ------
    ValueError
        Mismatched lengths, labels other than 0/1, scores outside [0, 1] or not
        finite, a single group, or an invalid option.

    Warns
    -----
    UndefinedMetricWarning
        For each group in which a metric is undefined (for example TPR in a group with
        no positives); the value is reported as undefined (NaN), never silently.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 400); g = rng.integers(0, 2, 400)
    >>> s = np.clip(0.3 * y + 0.1 * g + rng.uniform(0, 0.6, 400), 0, 1)
    >>> rep = subgroup_report(y, s, g, n_boot=200)
    >>> sorted(rep.groups)
    [0, 1]
    """
    y, s, g = check_inputs(y_true, scores, groups)
    threshold, n_bins = _check_report_options(
        threshold, n_boot, n_bins, seed, confidence
    )
    labels = _check_group_labels(g)
    if len(labels) < 2:
        raise ValueError(
            f"groups has a single value ({labels[0]!r}); a subgroup report compares at "
            "least two groups"
        )
    try:
        labels = sorted(labels)
    except TypeError:
        pass
    table = _report_table(y, s, g, labels, threshold, n_bins)
    undefined = _warn_undefined(table, labels)
    ci_low, ci_high, contrast_low, contrast_high = _report_intervals(
        y, s, g, labels, table, threshold, n_bins, n_boot, confidence, seed
    )
    gaps = _report_gaps(table, len(labels), contrast_low, contrast_high)
    fairness = pd.Series(
        {
            "equalized_odds_difference": float(
                np.max([gaps.loc["TPR", "difference"], gaps.loc["FPR", "difference"]])
            ),
            "demographic_parity_difference": float(
                gaps.loc["selection_rate", "difference"]
            ),
        }
    )
    return SubgroupReport(
        table=table,
        ci_low=ci_low,
        ci_high=ci_high,
        gaps=gaps,
        fairness=fairness,
        threshold=threshold,
        n_boot=int(n_boot),
        confidence=float(confidence),
        undefined=undefined,
    )


def _check_report_options(
    threshold: Any, n_boot: Any, n_bins: Any, seed: Any, confidence: Any
) -> tuple[float, int]:
    """Check the options of :func:`subgroup_report`; return threshold and bin count."""
    threshold = _check_threshold(threshold)
    for name, value in (("n_boot", n_boot), ("seed", seed)):
        if (
            isinstance(value, (bool, np.bool_))
            or not isinstance(value, (int, np.integer))
            or value < 0
        ):
            raise ValueError(f"{name}={value!r} must be a non-negative integer")
    n_bins = _check_n_bins(n_bins)
    if isinstance(confidence, (bool, np.bool_, str)) or not (
        0.0 < float(confidence) < 1.0
    ):
        raise ValueError(f"confidence={confidence!r} must lie in (0, 1)")
    return threshold, n_bins


def _report_table(
    y: np.ndarray,
    s: np.ndarray,
    g: np.ndarray,
    labels: list,
    threshold: float,
    n_bins: int,
) -> pd.DataFrame:
    """Every metric per group (rows in ``labels`` order) and overall (last row)."""
    from fairlearn.metrics import MetricFrame

    frame = MetricFrame(
        metrics=_sk_metrics(threshold, n_bins),
        y_true=y,
        y_pred=s,
        sensitive_features=pd.Series(g, name="group"),
    )
    by_group = frame.by_group.astype(float)
    # rows by position (labels may be booleans, which pandas reads as masks)
    position = {
        (_label_kind(x), x): i
        for i, x in enumerate(
            x.item() if isinstance(x, np.generic) else x for x in by_group.index
        )
    }
    by_group = by_group.iloc[[position[(_label_kind(x), x)] for x in labels]]
    overall = frame.overall.astype(float)
    return pd.DataFrame(
        np.vstack([by_group.to_numpy(), overall.to_numpy()[None]]),
        index=pd.Index(labels + [OVERALL], dtype=object, name="group"),
        columns=by_group.columns,
    )[list(METRICS)]


def _warn_undefined(table: pd.DataFrame, labels: list) -> list[tuple[Any, str]]:
    """Warn once per (group, metric) that is undefined; return those pairs."""
    undefined = []
    for i, grp in enumerate(labels):
        for m, why in _DEFINED_WHEN.items():
            if np.isnan(table[m].iloc[i]):
                undefined.append((grp, m))
                warnings.warn(
                    f"{m} is undefined for group {grp!r}: {why}; reported as undefined",
                    UndefinedMetricWarning,
                    stacklevel=3,  # the caller of subgroup_report
                )
    return undefined


def _report_intervals(
    y: np.ndarray,
    s: np.ndarray,
    g: np.ndarray,
    labels: list,
    table: pd.DataFrame,
    threshold: float,
    n_bins: int,
    n_boot: int,
    confidence: float,
    seed: int,
) -> tuple:
    """Percentile intervals of every cell of ``table`` and of the two-group contrasts.

    Resampling is stratified by group (each replicate keeps every group's size); the
    overall row reuses the groups' draws.
    """
    k = len(labels)
    ci_low = pd.DataFrame(np.nan, index=table.index, columns=table.columns)
    ci_high = ci_low.copy()
    model_metrics = [m for m in METRICS if m not in DESCRIPTIVE]
    contrast_low = pd.Series(np.nan, index=model_metrics)
    contrast_high = contrast_low.copy()
    if not n_boot:
        return ci_low, ci_high, contrast_low, contrast_high
    alpha = (1.0 - confidence) / 2.0
    rng = np.random.default_rng(seed)
    boot = {}
    counts = {}
    enough = max(10, n_boot // 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for gi in range(k + 1):
            if gi == k:
                # resampled group by group too, so that group sizes stay fixed
                mask = np.ones(len(y), dtype=bool)
                w = np.zeros((n_boot, len(y)))
                for j in range(k):
                    w[:, g == labels[j]] = counts[j]
            else:
                mask = g == labels[gi]
                size = int(mask.sum())
                w = counts[gi] = rng.multinomial(
                    size, np.full(size, 1.0 / size), size=n_boot
                )
            boot[gi] = _metric_rows(y[mask], s[mask], w, threshold, n_bins)
            for m in METRICS:
                vals = boot[gi][m]
                if np.isfinite(vals).sum() >= enough:
                    col = table.columns.get_loc(m)
                    ci_low.iat[gi, col] = np.nanquantile(vals, alpha)
                    ci_high.iat[gi, col] = np.nanquantile(vals, 1 - alpha)
        if k == 2:
            for m in model_metrics:
                stacked = np.stack([boot[j][m] for j in range(k)])
                ok = np.isfinite(stacked).all(axis=0)
                if ok.sum() >= enough:
                    signed = (stacked[1] - stacked[0])[ok]
                    contrast_low[m] = np.quantile(signed, alpha)
                    contrast_high[m] = np.quantile(signed, 1 - alpha)
    return ci_low, ci_high, contrast_low, contrast_high


def _report_gaps(
    table: pd.DataFrame, k: int, contrast_low: pd.Series, contrast_high: pd.Series
) -> pd.DataFrame:
    """Differences, two-group contrast, ratio and worst group of every model metric."""
    model_metrics = [m for m in METRICS if m not in DESCRIPTIVE]
    groups_only = table.iloc[:k][model_metrics]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gmax = groups_only.max(axis=0, skipna=False)
        gmin = groups_only.min(axis=0, skipna=False)
    worst_group = [
        (groups_only[m].idxmax() if m in LOWER_IS_BETTER else groups_only[m].idxmin())
        if groups_only[m].notna().all()
        else None
        for m in model_metrics
    ]
    worst = pd.Series(
        [gmax[m] if m in LOWER_IS_BETTER else gmin[m] for m in model_metrics],
        index=model_metrics,
    )
    gaps = pd.DataFrame(
        {
            "difference": gmax - gmin,
            "contrast": (
                groups_only.iloc[1] - groups_only.iloc[0]
                if k == 2
                else pd.Series(np.nan, index=model_metrics)
            ),
            "contrast_low": contrast_low,
            "contrast_high": contrast_high,
            "ratio": _ratio(gmin.to_numpy(), gmax.to_numpy()),
            "worst": worst,
            "worst_group": worst_group,
        },
        index=model_metrics,
    )
    gaps.index.name = "metric"
    return gaps


def signed_gaps(
    label: ArrayLike,
    scores: ArrayLike,
    groups: ArrayLike,
    *,
    threshold: float = 0.5,
    bias_group: int = 1,
    per_group: bool = False,
) -> dict[str, float]:
    """Overall accuracy and AUROC, and the signed gaps: bias group minus the others.

    This is the one definition of a gap in the package. With two groups it is the
    bias group's value minus the other group's; with more, minus the mean of the
    others' (finite) values. A positive ``TPR_gap`` means the bias group is
    detected more often.

    Parameters
    ----------
    label, scores, groups : array-like
        True labels (0/1), scores in [0, 1] and integer group codes, one per subject.
    threshold : float, default 0.5
        One global decision threshold.
    bias_group : int, default 1
        Code of the group that carries the bias feature.
    per_group : bool, default False
        Also return ``<metric>_g<k>`` for every group and :data:`GROUP_METRICS`.

    Returns
    -------
    dict
        ``n_test``, ``accuracy``, ``AUROC`` and ``TPR_gap``, ``FPR_gap``,
        ``accuracy_gap``, ``AUROC_gap``: the bias group's value minus the mean of
        the other groups' (NaN when a side is missing).

    Examples
    --------
    >>> gaps = signed_gaps([1, 0, 1, 0], [0.9, 0.1, 0.2, 0.6], [1, 1, 0, 0])
    >>> gaps["TPR_gap"], gaps["FPR_gap"]
    (1.0, -1.0)
    """
    groups = np.asarray(groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = subgroup_report(
            np.asarray(label),
            np.asarray(scores, dtype=float),
            groups,
            threshold=threshold,
            n_boot=0,
        )
    table = report.table
    out: dict[str, float] = {
        "n_test": float(len(groups)),
        "accuracy": float(table.loc[OVERALL, "accuracy"]),
        "AUROC": float(table.loc[OVERALL, "AUROC"]),
    }
    present = [g for g in table.index if g != OVERALL]
    if per_group:
        for g in present:
            for m in GROUP_METRICS:
                out[f"{m}_g{int(g)}"] = float(table.loc[g, m])
    mine = [g for g in present if int(g) == bias_group]
    others = [g for g in present if int(g) != bias_group]
    for m in ("TPR", "FPR", "accuracy", "AUROC"):
        finite = [
            float(table.loc[g, m]) for g in others if np.isfinite(table.loc[g, m])
        ]
        if mine and finite:
            out[f"{m}_gap"] = float(table.loc[mine[0], m]) - float(np.mean(finite))
        else:
            out[f"{m}_gap"] = float("nan")
    return out


# ---------------------------------------------------------------------------
# counterfactual twins and seeds
# ---------------------------------------------------------------------------


def counterfactual_flip_rate(
    scores, twin_scores, *, threshold: float = 0.5, groups=None
) -> pd.DataFrame:
    """How much predictions change between each subject and its counterfactual twin.

    The twin is the same subject with only the bias effect removed, so any change is
    caused by the bias alone.

    Parameters
    ----------
    scores : array-like of float in [0, 1]
        Scores of the original subjects.
    twin_scores : array-like of float in [0, 1]
        Scores of their twins, in the same order.
    threshold : float, default 0.5
        Global decision threshold.
    groups : array-like, optional
        Group of each subject: adds one row per group.

    Returns
    -------
    pandas.DataFrame
        Rows ``"overall"`` (and each group); columns ``n``, ``flip_rate`` (share of
        subjects whose predicted class differs from their twin's), ``flip_to_negative``
        and ``flip_to_positive`` (shares of each direction), ``mean_abs_change`` and
        ``mean_change`` (score minus twin score).
    """
    s = np.asarray(scores, dtype=float)
    t = np.asarray(twin_scores, dtype=float)
    if s.shape != t.shape or s.ndim != 1:
        raise ValueError(
            f"scores and twin_scores must be one-dimensional of equal length "
            f"(got shapes {s.shape} and {t.shape})"
        )
    for name, arr in (("scores", s), ("twin_scores", t)):
        if (
            len(arr) == 0
            or not np.all(np.isfinite(arr))
            or arr.min() < 0
            or arr.max() > 1
        ):
            raise ValueError(f"{name} must be a non-empty array of values in [0, 1]")
    threshold = _check_threshold(threshold)
    rows: list[tuple[Any, np.ndarray]] = [(OVERALL, np.ones(len(s), dtype=bool))]
    if groups is not None:
        g = _as_groups(groups)
        if g.shape != s.shape:
            raise ValueError(
                f"groups and scores have different lengths ({len(g)} and {len(s)})"
            )
        if pd.isna(g).any():
            raise ValueError("groups contains missing values")
        labels = _check_group_labels(g)
        g = _typed(g, labels)
        try:
            labels = sorted(labels)
        except TypeError:
            pass
        rows += [(grp, g == grp) for grp in labels]
    records = []
    for name, mask in rows:
        p, q = s[mask] >= threshold, t[mask] >= threshold
        records.append(
            {
                "n": int(mask.sum()),
                "flip_rate": float(np.mean(p != q)),
                "flip_to_negative": float(np.mean(q & ~p)),
                "flip_to_positive": float(np.mean(p & ~q)),
                "mean_abs_change": float(np.mean(np.abs(s[mask] - t[mask]))),
                "mean_change": float(np.mean(s[mask] - t[mask])),
            }
        )
    out = pd.DataFrame(
        records, index=pd.Index([name for name, _ in rows], dtype=object, name="group")
    )
    return out


def mean_interval(
    x: Sequence[float],
    *,
    confidence: float = 0.95,
    method: str = "bootstrap",
    n_boot: int = 4000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of repeated results (seeds) and its interval.

    The default is a percentile bootstrap of the mean over the runs: it never leaves
    the range of the values, so a rate's interval stays inside ``[0, 1]``. With few
    runs it is narrower than a t-interval; ``method="t"`` gives the Student
    t-interval instead.

    Parameters
    ----------
    x : sequence of float
        One value per run (NaNs are dropped).
    confidence : float, default 0.95
        Level of the interval, in (0, 1).
    method : {"bootstrap", "t"}
        Percentile bootstrap over runs, or Student t.
    n_boot : int, default 4000
        Bootstrap resamples.
    seed : int, default 0
        Seed of the resampling (the interval is reproducible).

    Returns
    -------
    tuple of float
        ``(mean, low, high)``; the interval is NaN with fewer than two runs.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} must lie in (0, 1)")
    if method not in ("bootstrap", "t"):
        raise ValueError(f"method={method!r} is invalid; allowed: bootstrap, t")
    values = np.asarray(x, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return np.nan, np.nan, np.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, np.nan, np.nan
    alpha = 1.0 - confidence
    if method == "t":
        half = float(
            stats.t.ppf(1 - alpha / 2, len(values) - 1)
            * values.std(ddof=1)
            / np.sqrt(len(values))
        )
        return mean, mean - half, mean + half
    means = values[bootstrap_indices(len(values), int(n_boot), seed=seed)].mean(1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return mean, float(low), float(high)


def aggregate_seeds(
    df: pd.DataFrame,
    by: str | Sequence[str],
    values: str | Sequence[str],
    *,
    confidence: float = 0.95,
    method: str = "bootstrap",
) -> pd.DataFrame:
    """Mean and interval of results across seeds (or any repeated runs).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per run (for example per seed and setting).
    by : str or sequence of str
        Columns that identify a setting; runs with equal ``by`` are aggregated.
    values : str or sequence of str
        Numeric columns to aggregate.
    confidence : float, default 0.95
        Level of the interval (NaN with a single run).
    method : {"bootstrap", "t"}
        Interval of :func:`mean_interval`: percentile bootstrap over runs (stays
        inside the values' range) or Student t.

    Returns
    -------
    pandas.DataFrame
        One row per setting; for each value column ``<v>_mean``, ``<v>_sd``,
        ``<v>_low``, ``<v>_high``, plus ``n_runs``.
    """
    by = [by] if isinstance(by, str) else list(by)
    values = [values] if isinstance(values, str) else list(values)
    missing = [c for c in by + values if c not in df.columns]
    if missing:
        raise ValueError(
            f"columns {missing!r} are not in df (has {list(df.columns)!r})"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} must lie in (0, 1)")
    rows = []
    for key, part in df.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        row["n_runs"] = len(part)
        for v in values:
            x = part[v].astype(float).dropna().to_numpy()
            sd = float(np.std(x, ddof=1)) if len(x) > 1 else np.nan
            mean, low, high = mean_interval(x, confidence=confidence, method=method)
            row.update(
                {f"{v}_mean": mean, f"{v}_sd": sd, f"{v}_low": low, f"{v}_high": high}
            )
        rows.append(row)
    return pd.DataFrame(rows)


def paired_difference(
    df: pd.DataFrame,
    setting: str,
    reference: object,
    other: object,
    values: str | Sequence[str],
    *,
    pair: str = "seed",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """``other - reference`` paired by run (seed), with a t-interval over pairs.

    A difference is not bounded like a rate, so the t-interval (wider than a
    bootstrap with few seeds) is used.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per run, with columns ``setting``, ``pair`` and ``values``.
    setting : str
        Column naming the compared settings.
    reference, other : object
        The two values of ``setting`` to compare.
    values : str or sequence of str
        Metrics to compare.
    pair : str, default "seed"
        Column pairing the runs (one run per setting and pair).
    confidence : float, default 0.95
        Level of the interval.

    Returns
    -------
    pandas.DataFrame
        One row per metric: ``mean``, ``low``, ``high``, ``n_pairs`` and
        ``excludes_zero``.
    """
    values = [values] if isinstance(values, str) else list(values)
    missing = [c for c in [setting, pair, *values] if c not in df.columns]
    if missing:
        raise ValueError(
            f"columns {missing!r} are not in df (has {list(df.columns)!r})"
        )
    a = df[df[setting] == reference].set_index(pair)
    b = df[df[setting] == other].set_index(pair)
    if a.index.has_duplicates or b.index.has_duplicates:
        raise ValueError(f"pair={pair!r} must identify one run per setting")
    common = a.index.intersection(b.index)
    if len(common) == 0:
        raise ValueError(f"no {pair} has runs of both {reference!r} and {other!r}")
    rows = []
    for v in values:
        d = (b.loc[common, v].astype(float) - a.loc[common, v].astype(float)).to_numpy()
        mean, low, high = mean_interval(d, confidence=confidence, method="t")
        rows.append(
            {
                "metric": v,
                "mean": mean,
                "low": low,
                "high": high,
                "n_pairs": int(np.isfinite(d).sum()),
                "excludes_zero": bool(low > 0 or high < 0),
            }
        )
    return pd.DataFrame(rows).set_index("metric")


def trend_test(
    df: pd.DataFrame, x: str, y: str, *, pair: str = "seed", confidence: float = 0.95
) -> dict[str, float]:
    """Does ``y`` grow with ``x``? Slope per run (seed), Spearman over all runs.

    Fits a least-squares line of ``y`` on ``x`` within each ``pair`` (the runs of
    one seed over the settings), reports the mean slope with a t-interval over
    seeds, and Spearman's rank correlation with its p-value over all rows.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per run.
    x, y : str
        The varied setting (numeric) and the outcome.
    pair : str, default "seed"
        Column grouping the runs that share everything but ``x``.
    confidence : float, default 0.95
        Level of the slope's interval.

    Returns
    -------
    dict
        ``slope``, ``slope_low``, ``slope_high``, ``n_pairs``, ``spearman_rho``,
        ``spearman_p`` and ``increasing`` / ``decreasing`` (the slope's interval
        excludes 0 on that side).
    """
    missing = [c for c in (x, y, pair) if c not in df.columns]
    if missing:
        raise ValueError(
            f"columns {missing!r} are not in df (has {list(df.columns)!r})"
        )
    slopes = []
    for _, part in df.groupby(pair):
        xs, ys = part[x].astype(float).to_numpy(), part[y].astype(float).to_numpy()
        ok = np.isfinite(xs) & np.isfinite(ys)
        if ok.sum() >= 2 and np.ptp(xs[ok]) > 0:
            slopes.append(float(np.polyfit(xs[ok], ys[ok], 1)[0]))
    mean, low, high = mean_interval(slopes, confidence=confidence, method="t")
    clean = df[[x, y]].astype(float).dropna()
    rho, p = stats.spearmanr(clean[x], clean[y]) if len(clean) > 2 else (np.nan, np.nan)
    return {
        "slope": mean,
        "slope_low": low,
        "slope_high": high,
        "n_pairs": len(slopes),
        "spearman_rho": float(rho),
        "spearman_p": float(p),
        "increasing": bool(low > 0),
        "decreasing": bool(high < 0),
    }


def interval_verdict(low: float, high: float, *, null: float = 0.0) -> str:
    """What an interval establishes about a quantity against a null value.

    Parameters
    ----------
    low, high : float
        The interval's bounds.
    null : float, default 0.0
        The value of "no effect".

    Returns
    -------
    str
        ``"above {null}"``, ``"below {null}"``, ``"includes {null}: not established"``
        or ``"undefined"`` (a bound is NaN).
    """
    if not (np.isfinite(low) and np.isfinite(high)):
        return "undefined"
    if low > null:
        return f"above {null:g}"
    if high < null:
        return f"below {null:g}"
    return f"includes {null:g}: not established"
