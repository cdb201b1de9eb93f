"""Post-processing: group-specific decision rules fitted on a model's scores.

Post-processing leaves the model alone and changes only how its scores become
decisions. :func:`fit_threshold_optimizer` wraps fairlearn's
:class:`~fairlearn.postprocessing.ThresholdOptimizer` so that it works directly on
scores that were already computed (of any model, CNN included), and
:func:`thresholds_for_tpr` and :func:`thresholds_for_fpr` give the simpler
deterministic rule "one threshold per group, chosen so that every group reaches the
same TPR" (or keeps the same FPR).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from .metrics import check_inputs

#: Constraints accepted by :func:`fit_threshold_optimizer` (fairlearn's names).
CONSTRAINTS: tuple[str, ...] = (
    "equalized_odds",
    "demographic_parity",
    "true_positive_rate_parity",
    "false_positive_rate_parity",
)


class ScoreClassifier(ClassifierMixin, BaseEstimator):
    """A 'classifier' whose input already is its score: ``predict_proba(X)[:, 1] = X[:,
    0]``.

    It lets scikit-learn style post-processors run on scores that some other model
    (for example a CNN) produced.
    """

    def fit(self, X, y=None):
        """Nothing to learn; records the classes.

        Parameters
        ----------
        X : array-like of shape (n, 1)
            Scores.
        y : array-like, optional
            Labels (ignored).

        Returns
        -------
        ScoreClassifier
            ``self``.
        """
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        """Return ``[1 - score, score]`` per row.

        Parameters
        ----------
        X : array-like of shape (n, 1)
            Scores in [0, 1].

        Returns
        -------
        numpy.ndarray of shape (n, 2)
        """
        s = np.asarray(X, dtype=float).reshape(len(X), -1)[:, 0]
        return np.column_stack([1 - s, s])

    def predict(self, X):
        """Return ``score >= 0.5`` as 0/1.

        Parameters
        ----------
        X : array-like of shape (n, 1)
            Scores in [0, 1].

        Returns
        -------
        numpy.ndarray of int
        """
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


@dataclass
class FittedPostprocessor:
    """A fitted :class:`~fairlearn.postprocessing.ThresholdOptimizer` on scores.

    Attributes
    ----------
    optimizer : fairlearn.postprocessing.ThresholdOptimizer
        The fitted fairlearn object (its ``interpolated_thresholder_`` holds the rules).
    constraint : str
        The fairness constraint it satisfies on the fitting data.
    """

    optimizer: object
    constraint: str

    def predict(self, scores, groups, seed: int = 0) -> np.ndarray:
        """Decisions (0/1) for new scores; the rule may randomise between two
        thresholds.

        Parameters
        ----------
        scores : array-like of float in [0, 1]
            Model scores.
        groups : array-like
            Group of each sample (the rule is group specific).
        seed : int, default 0
            Seed of the randomisation, so that results repeat.

        Returns
        -------
        numpy.ndarray of int
        """
        s = np.asarray(scores, dtype=float)
        check_inputs(np.zeros(len(s), dtype=int), s, groups)
        return np.asarray(
            self.optimizer.predict(
                s.reshape(-1, 1),
                sensitive_features=np.asarray(groups),
                random_state=seed,
            )
        ).astype(int)


def fit_threshold_optimizer(
    y_true,
    scores,
    groups,
    *,
    constraint: str = "equalized_odds",
    objective: str = "accuracy_score",
) -> FittedPostprocessor:
    """Fit fairlearn's ThresholdOptimizer on precomputed scores.

    Fit it on held-out data (a validation split), never on the test set.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        True labels.
    scores : array-like of float in [0, 1]
        Model scores.
    groups : array-like
        Group of each sample.
    constraint : str, default "equalized_odds"
        One of :data:`CONSTRAINTS`.
    objective : str, default "accuracy_score"
        What to maximise under the constraint (fairlearn's ``objective``).

    Returns
    -------
    FittedPostprocessor
    """
    from fairlearn.postprocessing import ThresholdOptimizer

    if constraint not in CONSTRAINTS:
        raise ValueError(
            f"constraint={constraint!r} unknown; allowed: {', '.join(CONSTRAINTS)}"
        )
    y, s, g = check_inputs(y_true, scores, groups)
    opt = ThresholdOptimizer(
        estimator=ScoreClassifier().fit(s.reshape(-1, 1)),
        constraints=constraint,
        objective=objective,
        prefit=True,
        predict_method="predict_proba",
    )
    opt.fit(s.reshape(-1, 1), y, sensitive_features=g)
    return FittedPostprocessor(optimizer=opt, constraint=constraint)


def thresholds_for_tpr(y_true, scores, groups, target_tpr: float = 0.8) -> dict:
    """One threshold per group, the highest that gives each group at least
    ``target_tpr``.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        True labels.
    scores : array-like of float in [0, 1]
        Model scores.
    groups : array-like
        Group of each sample.
    target_tpr : float, default 0.8
        TPR every group must reach, in (0, 1].

    Returns
    -------
    dict
        Group label to threshold (``score >= threshold`` predicts positive).
    """
    if not 0.0 < target_tpr <= 1.0:
        raise ValueError(f"target_tpr={target_tpr!r} must lie in (0, 1]")
    y, s, g = check_inputs(y_true, scores, groups)
    out = {}
    for grp in sorted(np.unique(g).tolist()):
        pos = np.sort(s[(g == grp) & (y == 1)])[::-1]
        if len(pos) == 0:
            raise ValueError(
                f"group {grp!r} has no positives: no threshold reaches a TPR"
            )
        k = int(np.ceil(target_tpr * len(pos)))  # need the k highest positives above it
        out[grp] = float(pos[k - 1])
    return out


def thresholds_for_fpr(y_true, scores, groups, target_fpr: float = 0.1) -> dict:
    """One threshold per group, the lowest that keeps its FPR at most ``target_fpr``.

    Where the groups' healthy members score differently, equal FPRs need different
    thresholds (equal TPRs need them where the diseased members score differently).

    Parameters
    ----------
    y_true : array-like of {0, 1}
        True labels.
    scores : array-like of float in [0, 1]
        Model scores.
    groups : array-like
        Group of each sample.
    target_fpr : float, default 0.1
        Largest FPR any group may have, in [0, 1).

    Returns
    -------
    dict
        Group label to threshold (``score >= threshold`` predicts positive).
    """
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f"target_fpr={target_fpr!r} must lie in [0, 1)")
    y, s, g = check_inputs(y_true, scores, groups)
    out = {}
    for grp in sorted(np.unique(g).tolist()):
        neg = np.sort(s[(g == grp) & (y == 0)])[::-1]
        if len(neg) == 0:
            raise ValueError(
                f"group {grp!r} has no negatives: no threshold sets an FPR"
            )
        k = int(np.floor(target_fpr * len(neg)))  # at most k negatives at or above it
        # just above the (k+1)-th highest negative score: ties stay below
        out[grp] = float(np.nextafter(neg[k], np.inf))
    return out


def apply_thresholds(scores, groups, thresholds: dict) -> np.ndarray:
    """Decisions (0/1) with a group-specific threshold.

    Parameters
    ----------
    scores : array-like of float in [0, 1]
        Model scores.
    groups : array-like
        Group of each sample.
    thresholds : dict
        Group label to threshold, as from :func:`thresholds_for_tpr`.

    Returns
    -------
    numpy.ndarray of int
    """
    s = np.asarray(scores, dtype=float)
    g = np.asarray(groups)
    missing = sorted(set(np.unique(g).tolist()) - set(thresholds))
    if missing:
        raise ValueError(f"thresholds has no entry for groups {missing!r}")
    t = np.array([thresholds[k] for k in g.tolist()], dtype=float)
    return (s >= t).astype(int)
