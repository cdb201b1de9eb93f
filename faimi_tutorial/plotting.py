"""Matplotlib figures used across the chapters.

Every function returns the :class:`matplotlib.figure.Figure` it drew, so a chapter
can show it, save it, or test it. Sections, one per concept: fairness metrics,
simulation, training and explanations.
"""

from __future__ import annotations


import matplotlib.pyplot as plt  # noqa: F401  (re-exported for chapters)

# Colours of the two groups throughout the book (colour-blind safe pair).
GROUP_COLOURS: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#F0E442", "#56B4E9")

# --- fairness metrics figures ----------------------------------------------


def _new_axes(n: int, ax=None, width: float = 3.6, height: float = 3.2):
    """Return (figure, flat list of n axes), creating a row of panels when ``ax`` is None."""
    import numpy as np

    if ax is None:
        fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
        return fig, list(axes.ravel())
    axes = list(np.atleast_1d(ax).ravel())
    if len(axes) != n:
        raise ValueError(f"ax has {len(axes)} axes but {n} panels are needed")
    return axes[0].figure, axes


def plot_subgroup_report(report, metrics=("TPR", "FPR"), ax=None):
    """Per-group values of a :class:`~faimi_tutorial.metrics.SubgroupReport` with intervals.

    Parameters
    ----------
    report : SubgroupReport
        Output of :func:`faimi_tutorial.metrics.subgroup_report`.
    metrics : sequence of str
        Metrics to draw, one panel each.
    ax : matplotlib axes or array of axes, optional
        Where to draw; a new figure if omitted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    from .metrics import _check_metric_names

    metrics = list(metrics)
    _check_metric_names(metrics)
    fig, axes = _new_axes(len(metrics), ax)
    rows = report.groups + ["overall"]
    for a, m in zip(axes, metrics):
        for i, g in enumerate(rows):
            v = report.table.loc[g, m]
            lo, hi = report.ci_low.loc[g, m], report.ci_high.loc[g, m]
            colour = "0.35" if g == "overall" else GROUP_COLOURS[i % len(GROUP_COLOURS)]
            if np.isnan(v):
                a.annotate("undefined", (i, 0.5), ha="center", rotation=90, color=colour)
                continue
            err = None
            if np.isfinite(lo) and np.isfinite(hi):
                err = [[v - lo], [hi - v]]
            a.errorbar(i, v, yerr=err, fmt="o", color=colour, capsize=4, markersize=7)
        a.set_xticks(range(len(rows)), [str(r) for r in rows])
        a.set_xlim(-0.6, len(rows) - 0.4)
        a.set_title(m)
        a.grid(axis="y", alpha=0.3)
    level = f"{report.confidence:.0%} bootstrap CI" if report.n_boot else "no intervals"
    fig.suptitle(f"Per-group metrics at threshold {report.threshold:g} ({level})", fontsize=10)
    fig.tight_layout()
    return fig


def plot_roc_by_group(y_true, scores, groups, threshold: float | None = 0.5, ax=None):
    """ROC curve of each group, with the operating point of one global threshold.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        True labels.
    scores : array-like of float in [0, 1]
        Predicted probabilities.
    groups : array-like
        Group of each sample.
    threshold : float or None, default 0.5
        Global threshold whose (FPR, TPR) point is marked on each curve; None marks none.
    ax : matplotlib axes, optional
        Where to draw.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np
    from sklearn.metrics import roc_auc_score, roc_curve

    from .metrics import _check_inputs

    y, s, g = _check_inputs(y_true, scores, groups)
    fig, (a,) = _new_axes(1, ax, width=4.2, height=4.0)
    for i, grp in enumerate(sorted(np.unique(g).tolist())):
        m = g == grp
        if y[m].min() == y[m].max():
            continue
        fpr, tpr, _ = roc_curve(y[m], s[m])
        colour = GROUP_COLOURS[i % len(GROUP_COLOURS)]
        a.plot(fpr, tpr, color=colour, label=f"{grp} (AUROC {roc_auc_score(y[m], s[m]):.2f})")
        if threshold is not None:
            p = s[m] >= threshold
            a.plot(p[y[m] == 0].mean(), p[y[m] == 1].mean(), "o", color=colour, markersize=8,
                   markeredgecolor="black")
    a.plot([0, 1], [0, 1], ":", color="0.6")
    a.set_xlabel("false positive rate")
    a.set_ylabel("true positive rate")
    a.set_aspect("equal")
    title = "ROC per group" + (f" (dots: threshold {threshold:g})" if threshold is not None else "")
    a.set_title(title, fontsize=10)
    a.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_calibration_by_group(y_true, scores, groups, n_bins: int = 10, ax=None):
    """Reliability diagram per group: mean score against observed frequency per bin.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        True labels.
    scores : array-like of float in [0, 1]
        Predicted probabilities.
    groups : array-like
        Group of each sample.
    n_bins : int, default 10
        Equal-width bins over [0, 1].
    ax : matplotlib axes, optional
        Where to draw.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    from .metrics import _check_inputs, expected_calibration_error

    y, s, g = _check_inputs(y_true, scores, groups)
    fig, (a,) = _new_axes(1, ax, width=4.2, height=4.0)
    for i, grp in enumerate(sorted(np.unique(g).tolist())):
        m = g == grp
        bins = np.minimum((s[m] * n_bins).astype(int), n_bins - 1)
        xs, ys = [], []
        for b in range(n_bins):
            inb = bins == b
            if inb.sum() >= 5:
                xs.append(s[m][inb].mean())
                ys.append(y[m][inb].mean())
        ece = expected_calibration_error(y[m], s[m], n_bins)
        a.plot(xs, ys, "o-", color=GROUP_COLOURS[i % len(GROUP_COLOURS)],
               label=f"{grp} (ECE {ece:.3f})")
    a.plot([0, 1], [0, 1], ":", color="0.6", label="perfect calibration")
    a.set_xlabel("mean predicted probability")
    a.set_ylabel("observed fraction positive")
    a.set_aspect("equal")
    a.set_title("Calibration per group (bins with >= 5 samples)", fontsize=10)
    a.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


# --- simulation figures ------------------------------------------------------

# --- training and explanation figures ---------------------------------------
