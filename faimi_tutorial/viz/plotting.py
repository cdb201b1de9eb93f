"""Matplotlib figures used across the chapters.

Every function returns the :class:`matplotlib.figure.Figure` it drew, so a chapter
can show it, save it, or test it. Sections, one per concept: fairness metrics,
simulation, training and explanations.
"""

from __future__ import annotations


import matplotlib.pyplot as plt  # noqa: F401  (re-exported for chapters)
from ..data import anatomy
from ..experiments.probing import SUBGROUPS
from ..fairness.metrics import (
    check_inputs,
    check_metric_names,
    auroc,
    expected_calibration_error,
)

# Colours of the two groups throughout the book (colour-blind safe pair).
GROUP_COLOURS: tuple[str, ...] = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#F0E442",
    "#56B4E9",
)

#: Width of the book's text column in inches at matplotlib's 100 dpi (688 px): every
#: figure drawn here fits it, so that it is shown at full size and its labels stay
#: legible.
COLUMN_WIDTH: float = 6.9


def column_figsize(
    ncols: int, nrows: int, panel_width: float, panel_height: float
) -> tuple[float, float]:
    """Figure size of a grid of panels, shrunk (aspect kept) to fit the text column.

    Parameters
    ----------
    ncols, nrows : int
        Panels per row and rows (>= 1).
    panel_width, panel_height : float
        Size of one panel in inches before fitting (> 0).

    Returns
    -------
    tuple of float
        ``(width, height)`` in inches, with ``width <= COLUMN_WIDTH``.
    """
    if int(ncols) < 1 or int(nrows) < 1:
        raise ValueError(f"ncols={ncols!r}, nrows={nrows!r} are invalid; allowed: >= 1")
    if not (panel_width > 0 and panel_height > 0):
        raise ValueError(
            f"panel size ({panel_width!r}, {panel_height!r}) is invalid; allowed: > 0"
        )
    width = ncols * panel_width
    scale = min(1.0, COLUMN_WIDTH / width)
    return (width * scale, nrows * panel_height * scale)


# --- fairness metrics figures ----------------------------------------------


def _new_axes(n: int, ax=None, width: float = 3.6, height: float = 3.2):
    """Return (figure, flat list of n axes), creating panels that fit the column (up
    to three a row) when ``ax`` is None."""
    import numpy as np

    if ax is None:
        ncols = n if n <= 3 else 2
        nrows = -(-n // ncols)
        fig, axes = plt.subplots(
            nrows,
            ncols,
            figsize=column_figsize(ncols, nrows, width, height),
            squeeze=False,
        )
        for extra in axes.ravel()[n:]:
            extra.remove()
        return fig, list(axes.ravel()[:n])
    axes = list(np.atleast_1d(ax).ravel())
    if len(axes) != n:
        raise ValueError(f"ax has {len(axes)} axes but {n} panels are needed")
    return axes[0].figure, axes


def plot_subgroup_report(report, metrics=("TPR", "FPR"), ax=None):
    """Per-group values of a :class:`~faimi_tutorial.fairness.metrics.SubgroupReport`
    with intervals.

    Parameters
    ----------
    report : SubgroupReport
        Output of :func:`faimi_tutorial.fairness.metrics.subgroup_report`.
    metrics : sequence of str
        Metrics to draw, one panel each.
    ax : matplotlib axes or array of axes, optional
        Where to draw; a new figure if omitted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    metrics = list(metrics)
    check_metric_names(metrics)
    fig, axes = _new_axes(len(metrics), ax)
    rows = report.groups + ["overall"]
    for a, m in zip(axes, metrics):
        for i, g in enumerate(rows):
            v = report.table.loc[g, m]
            lo, hi = report.ci_low.loc[g, m], report.ci_high.loc[g, m]
            colour = "0.35" if g == "overall" else GROUP_COLOURS[i % len(GROUP_COLOURS)]
            if np.isnan(v):
                a.annotate(
                    "undefined", (i, 0.5), ha="center", rotation=90, color=colour
                )
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
    fig.suptitle(
        f"Per-group metrics at threshold {report.threshold:g} ({level})", fontsize=10
    )
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
        Global threshold whose (FPR, TPR) point is marked on each curve; None marks
        none.
    ax : matplotlib axes, optional
        Where to draw.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np
    from sklearn.metrics import roc_curve

    y, s, g = check_inputs(y_true, scores, groups)
    fig, (a,) = _new_axes(1, ax, width=4.2, height=4.0)
    for i, grp in enumerate(sorted(np.unique(g).tolist())):
        m = g == grp
        if y[m].min() == y[m].max():
            continue
        fpr, tpr, _ = roc_curve(y[m], s[m])
        colour = GROUP_COLOURS[i % len(GROUP_COLOURS)]
        a.plot(fpr, tpr, color=colour, label=f"{grp} (AUROC {auroc(y[m], s[m]):.2f})")
        if threshold is not None:
            p = s[m] >= threshold
            a.plot(
                p[y[m] == 0].mean(),
                p[y[m] == 1].mean(),
                "o",
                color=colour,
                markersize=8,
                markeredgecolor="black",
            )
    a.plot([0, 1], [0, 1], ":", color="0.6")
    a.set_xlabel("false positive rate")
    a.set_ylabel("true positive rate")
    a.set_aspect("equal")
    title = "ROC per group" + (
        f" (dots: threshold {threshold:g})" if threshold is not None else ""
    )
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

    y, s, g = check_inputs(y_true, scores, groups)
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
        a.plot(
            xs,
            ys,
            "o-",
            color=GROUP_COLOURS[i % len(GROUP_COLOURS)],
            label=f"{grp} (ECE {ece:.3f})",
        )
    a.plot([0, 1], [0, 1], ":", color="0.6", label="perfect calibration")
    a.set_xlabel("mean predicted probability")
    a.set_ylabel("observed fraction positive")
    a.set_aspect("equal")
    a.set_title("Calibration per group (bins with >= 5 samples)", fontsize=10)
    a.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


# --- simulation figures ------------------------------------------------------

#: Colours of the disease and bias regions in simulation figures.
REGION_COLOURS: dict[str, str] = {"disease": "#009E73", "bias": "#D55E00"}


def as_array(array) -> "np.ndarray":
    """An image or volume as a numpy array, without a leading channel axis.

    Parameters
    ----------
    array : numpy.ndarray or torch.Tensor
        Image ``(H, W)`` / volume ``(X, Y, Z)``, optionally with a leading channel of 1.

    Returns
    -------
    numpy.ndarray
    """
    arr = (
        array.detach().cpu().numpy() if hasattr(array, "detach") else np.asarray(array)
    )
    return arr[0] if arr.ndim in (3, 4) and arr.shape[0] == 1 else arr


def slice_index(config, z_mm: float | None) -> int | None:
    """Index of the axial slice nearest ``z_mm`` (default: the disease region's
    centre)."""
    if config is None or config.dims == 2:
        return None
    z = config.disease.centre_mm[2] if z_mm is None else float(z_mm)
    k = int(round((z - config.grid.origin[2]) / config.grid.spacing))
    return min(max(k, 0), config.grid.shape[2] - 1)


def axial_view(volume, k: int | None):
    """An axial view of a 2D image or a 3D volume, as rows = y (anterior up), cols =
    x."""
    arr = volume if k is None else volume[:, :, k]
    return arr.T


def show_image(ax, image, cmap="gray", vmin=0.0, vmax=1.0, title=None):
    """Draw ``image`` on ``ax`` without ticks (lower origin); returns the image
    artist."""
    im = ax.imshow(
        image, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
    )
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return im


def draw_regions(ax, config, k, which=("disease", "bias")):
    """Outline the disease and/or bias region of ``config`` on axial slice ``k``."""
    grid = config.grid
    for key in which:
        region = config.disease if key == "disease" else config.bias
        mask = anatomy.region_mask(region, grid, within_brain=False)
        view = axial_view(mask.astype(float), k)
        if view.max() > 0:
            ax.contour(view, levels=[0.5], colors=[REGION_COLOURS[key]], linewidths=1.0)


def show_subject(
    cohort,
    subject: int | str = 0,
    z_mm: float | None = None,
    regions: bool = True,
    diff_range: float | None = None,
):
    """One simulated subject: template, image, counterfactual twin and the effects.

    Panels: the template; the subject's image (what a model sees); its twin (the
    same draws without the bias effect); ``image - twin`` (the bias effect alone);
    ``twin - template`` (subject shape variation plus the disease effect). Disease
    (green) and bias (orange) regions are outlined.

    Parameters
    ----------
    cohort : Cohort
        A simulated cohort with twins and a configuration.
    subject : int or str, default 0
        Position in the cohort or a ``subject_id`` such as ``"sub-0003"``.
    z_mm : float, optional
        MNI z of the axial slice shown for 3D cohorts (default: the disease region's).
    regions : bool, default True
        Outline the disease and bias regions.
    diff_range : float, optional
        Colour range of the difference maps (default: from the data).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    import numpy as np

    cfg = cohort.config
    if isinstance(subject, str):
        hits = np.flatnonzero(cohort.meta["subject_id"].to_numpy() == subject)
        if not len(hits):
            raise ValueError(f"subject={subject!r} is not in the cohort")
        subject = int(hits[0])
    if not 0 <= int(subject) < len(cohort):
        raise ValueError(f"subject={subject!r} must be in [0, {len(cohort) - 1}]")
    row = cohort.meta.iloc[int(subject)]
    k = slice_index(cfg, z_mm)
    image = axial_view(as_array(cohort.images[subject]), k)
    twin = (
        axial_view(as_array(cohort.twins[subject]), k)
        if cohort.twins is not None
        else image
    )
    template = axial_view(anatomy.load_template(cfg.grid), k)
    bias_effect = image - twin
    other = twin - template
    lim = diff_range or max(
        0.05, float(np.abs(bias_effect).max()), 0.5 * float(np.abs(other).max())
    )
    fig, grid_axes = plt.subplots(
        2, 3, figsize=column_figsize(3, 2, 2.6, 2.7), constrained_layout=True
    )
    grid_axes[1, 2].remove()
    axes = list(grid_axes.ravel()[:5])
    show_image(axes[0], template, title="template (MNI152)")
    show_image(axes[1], image, title="image (what a model sees)")
    show_image(axes[2], twin, title="counterfactual twin (no bias)")
    im = show_image(
        axes[3],
        bias_effect,
        cmap="RdBu_r",
        vmin=-lim,
        vmax=lim,
        title="image − twin (bias)",
    )
    show_image(
        axes[4],
        other,
        cmap="RdBu_r",
        vmin=-lim,
        vmax=lim,
        title="twin − template (shape + disease)",
    )
    if regions:
        for ax in axes:
            draw_regions(ax, cfg, k)
    fig.colorbar(im, ax=axes[3:], shrink=0.8, label="intensity difference")
    status = "disease" if int(row["label"]) == 1 else "control"
    group = "bias group" if int(row["bias_group"]) == 1 else "no bias"
    where = (
        ""
        if k is None
        else f", axial slice z = {cfg.grid.origin[2] + k * cfg.spacing:g} mm"
    )
    fig.suptitle(
        f"{row['subject_id']}: {status}, {group} (c = {row['disease_coef']:+.2f}, "
        f"b = {row['bias_coef']:+.2f}){where}",
        fontsize=10,
    )
    return fig


def show_regions(config, regions=None, ncols: int = 4):
    """The template with regions of interest outlined, one axial slice per region.

    Parameters
    ----------
    config : SimulationConfig
        Gives the grid (3D grids show each region's own slice).
    regions : list of str or Region, optional
        Default: the configuration's disease and bias regions plus the far bias region.
    ncols : int, default 4
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """

    if regions is None:
        names = [config.disease, config.bias]
        far = anatomy.get_region("right_occipital")
        if (
            config.dims == 3
            or abs(far.centre_mm[2] - config.grid.origin[2]) < far.radius_mm
        ):
            names.append(far)
        regions = names
    regions = [anatomy.get_region(r) for r in regions]
    grid = config.grid
    template = anatomy.load_template(grid)
    n = len(regions)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=column_figsize(ncols, nrows, 3.2, 3.4),
        squeeze=False,
        constrained_layout=True,
    )
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, region in zip(axes.ravel(), regions):
        k = (
            None
            if grid.dims == 2
            else min(
                max(
                    int(round((region.centre_mm[2] - grid.origin[2]) / grid.spacing)), 0
                ),
                grid.shape[2] - 1,
            )
        )
        show_image(ax, axial_view(template, k))
        mask = anatomy.region_mask(region, grid, within_brain=False)
        colour = (
            REGION_COLOURS["disease"]
            if region == config.disease
            else REGION_COLOURS["bias"]
            if region == config.bias
            else "#CC79A7"
        )
        view = axial_view(mask.astype(float), k)
        if view.max() > 0:
            ax.contour(view, levels=[0.5], colors=[colour], linewidths=1.5)
        z = grid.origin[2] if k is None else grid.origin[2] + k * grid.spacing
        ax.set_title(
            f"{region.name}\n{region.radius_mm:g} mm at {tuple(region.centre_mm)}; "
            f"z = {z:g}",
            fontsize=8,
        )
    return fig


def show_cohort(cohort, n: int = 8, z_mm: float | None = None, twins: bool = False):
    """A gallery of subjects, one from each label x bias-group cell in turn.

    Parameters
    ----------
    cohort : Cohort
        The cohort.
    n : int, default 8
        Number of subjects shown.
    z_mm : float, optional
        MNI z of the axial slice for 3D cohorts.
    twins : bool, default False
        Show the counterfactual twins instead of the images.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    import numpy as np

    meta = cohort.meta
    cells = [
        np.flatnonzero(
            (meta["label"] == y).to_numpy() & (meta["bias_group"] == g).to_numpy()
        )
        for y in (1, 0)
        for g in (1, 0)
    ]
    order = []
    for i in range(max(len(c) for c in cells)):
        order += [int(c[i]) for c in cells if i < len(c)]
    order = order[:n]
    k = slice_index(cohort.config, z_mm)
    ncols = min(4, len(order))
    nrows = (len(order) + ncols - 1) // ncols
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=column_figsize(ncols, nrows, 2.6, 2.9),
        squeeze=False,
        constrained_layout=True,
    )
    for ax in axes.ravel()[len(order) :]:
        ax.axis("off")
    source = cohort.twins if twins else cohort.images
    for ax, i in zip(axes.ravel(), order):
        row = meta.iloc[i]
        show_image(ax, axial_view(as_array(source[i]), k))
        ax.set_title(
            f"{row['subject_id']}\n{'disease' if row['label'] else 'control'}, "
            f"group {int(row['bias_group'])}",
            fontsize=8,
            color=GROUP_COLOURS[int(row["bias_group"])],
        )
    return fig


def plot_cohort_design(cohort):
    """Who is in the cohort and what was drawn: counts, coefficients and volumes.

    Panels: subjects per label and bias group; the disease coefficient ``c`` by
    label; the disease region's volume (in the twins) by label; the bias region's
    volume by bias group.

    Parameters
    ----------
    cohort : Cohort
        A simulated cohort.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    import numpy as np

    meta = cohort.meta
    fig, grid_axes = plt.subplots(
        2, 2, figsize=column_figsize(2, 2, 3.45, 2.8), constrained_layout=True
    )
    axes = list(grid_axes.ravel())
    width = 0.38
    for g in (0, 1):
        counts = [
            int(((meta["label"] == y) & (meta["bias_group"] == g)).sum())
            for y in (0, 1)
        ]
        axes[0].bar(
            np.arange(2) + (g - 0.5) * width,
            counts,
            width,
            color=GROUP_COLOURS[g],
            label=f"bias group {g}",
        )
    axes[0].set_xticks([0, 1], ["control", "disease"])
    axes[0].set_ylabel("subjects")
    axes[0].legend(fontsize=8)
    axes[0].set_title("who is in the cohort", fontsize=9)
    bins = np.linspace(meta["disease_coef"].min(), meta["disease_coef"].max(), 25)
    for y, name, colour in ((0, "control", "#999999"), (1, "disease", "#000000")):
        axes[1].hist(
            meta.loc[meta.label == y, "disease_coef"],
            bins=bins,
            alpha=0.6,
            color=colour,
            label=name,
        )
    axes[1].set_xlabel("disease coefficient c")
    axes[1].legend(fontsize=8)
    axes[1].set_title("drawn disease effect", fontsize=9)
    col = (
        "disease_region_ml_twin"
        if "disease_region_ml_twin" in meta
        else "disease_region_ml"
    )
    axes[2].boxplot([meta.loc[meta.label == y, col] for y in (0, 1)])
    axes[2].set_xticks([1, 2], ["control", "disease"])
    axes[2].set_ylabel("mL")
    axes[2].set_title("disease region volume (twins)", fontsize=9)
    data = [meta.loc[meta.bias_group == g, "bias_region_ml"] for g in (0, 1)]
    parts = axes[3].boxplot(data, patch_artist=True)
    for patch, g in zip(parts["boxes"], (0, 1)):
        patch.set_facecolor(GROUP_COLOURS[g])
        patch.set_alpha(0.5)
    axes[3].set_xticks([1, 2], ["group 0", "group 1"])
    axes[3].set_ylabel("mL")
    axes[3].set_title("bias region volume (images)", fontsize=9)
    return fig


def plot_effect_maps(cohort, z_mm: float | None = None):
    """Where the effects live: mean differences over the whole cohort.

    Left: mean twin of disease cases minus mean twin of controls (the disease effect,
    plus sampling noise). Right: mean ``|image - twin|`` over the bias group (the
    bias effect, nothing else).

    Parameters
    ----------
    cohort : Cohort
        A simulated cohort with twins.
    z_mm : float, optional
        MNI z of the axial slice for 3D cohorts.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    import numpy as np

    cfg = cohort.config
    k = slice_index(cfg, z_mm)
    twins = cohort.twins.detach().cpu().numpy()[:, 0]
    images = cohort.images.detach().cpu().numpy()[:, 0]
    label, group = cohort.label, cohort.bias_group
    disease = twins[label == 1].mean(0) - twins[label == 0].mean(0)
    bias = (
        np.abs(images[group == 1] - twins[group == 1]).mean(0)
        if group.any()
        else np.zeros_like(disease)
    )
    template = axial_view(anatomy.load_template(cfg.grid), k)
    fig, axes = plt.subplots(
        1, 2, figsize=column_figsize(2, 1, 4.0, 3.6), constrained_layout=True
    )
    lim = max(1e-3, float(np.abs(axial_view(disease, k)).max()))
    show_image(axes[0], template)
    im0 = axes[0].imshow(
        axial_view(disease, k),
        origin="lower",
        cmap="RdBu_r",
        vmin=-lim,
        vmax=lim,
        alpha=0.75,
    )
    axes[0].set_title("disease − control (mean of twins)", fontsize=9)
    fig.colorbar(im0, ax=axes[0], shrink=0.8)
    show_image(axes[1], template)
    view = axial_view(bias, k)
    top = max(1e-3, float(view.max()))
    im1 = axes[1].imshow(
        np.ma.masked_less(view, 0.02 * top),
        origin="lower",
        cmap="magma",
        vmin=0,
        vmax=top,
        alpha=0.85,
    )
    axes[1].set_title("mean |image − twin| in the bias group", fontsize=9)
    fig.colorbar(im1, ax=axes[1], shrink=0.8)
    for ax in axes:
        draw_regions(ax, cfg, k)
    return fig


# --- training and explanation figures ---------------------------------------


def plot_training_history(history, metrics=("train_loss", "val_loss"), ax=None):
    """Learning curves: one panel per metric, one line per run.

    Parameters
    ----------
    history : DataFrame, FitResult, or mapping of name to either
        Per-epoch history (``FitResult.history``) of one or several runs.
    metrics : sequence of str
        History columns to draw, one panel each.
    ax : matplotlib axes or array of axes, optional
        Where to draw (one per metric).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import pandas as pd

    runs = history if isinstance(history, dict) else {"": history}
    runs = {k: getattr(v, "history", v) for k, v in runs.items()}
    for name, h in runs.items():
        if not isinstance(h, pd.DataFrame):
            raise ValueError(f"history of run {name!r} is not a DataFrame or FitResult")
        missing = [m for m in metrics if m not in h.columns]
        if missing:
            raise ValueError(
                f"metrics={missing!r} are not in the history of run {name!r}"
            )
    fig, axes = _new_axes(len(metrics), ax)
    for i, (name, h) in enumerate(runs.items()):
        best = getattr(
            history.get(name) if isinstance(history, dict) else history,
            "best_epoch",
            None,
        )
        for a, m in zip(axes, metrics):
            a.plot(
                h["epoch"],
                h[m],
                marker="o",
                ms=3,
                color=GROUP_COLOURS[i % len(GROUP_COLOURS)],
                label=name or None,
            )
            if best is not None:
                a.axvline(
                    best, color=GROUP_COLOURS[i % len(GROUP_COLOURS)], ls=":", lw=1
                )
    for a, m in zip(axes, metrics):
        a.set_xlabel("epoch")
        a.set_title(m.replace("_", " "))
    if any(runs):
        axes[-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_seed_summary(
    summary,
    x="value",
    metrics=("TPR_gap", "FPR_gap"),
    ax=None,
    xlabel=None,
    zero_line=True,
    labels=None,
):
    """Mean and 95 % interval over seeds of metrics against a setting.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`faimi_tutorial.experiments.sweeps.summarise` (or
        :func:`faimi_tutorial.fairness.metrics.aggregate_seeds`): columns ``<m>_mean``,
        ``<m>_low`` and ``<m>_high`` for each metric.
    x : str, default "value"
        Column holding the setting (drawn as categories, in table order).
    metrics : sequence of str
        Metrics to draw, one panel each.
    ax : matplotlib axes or array of axes, optional
        Where to draw.
    xlabel : str, optional
        Label of the x axis (default ``x``).
    zero_line : bool, default True
        Draw a dashed line at 0 (useful for gaps).
    labels : mapping of str to str, optional
        Panel titles per metric.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    for m in metrics:
        if f"{m}_mean" not in summary.columns:
            raise ValueError(f"metric {m!r} has no column {m}_mean in the summary")
    fig, axes = _new_axes(len(metrics), ax)
    pos = np.arange(len(summary))
    for i, (a, m) in enumerate(zip(axes, metrics)):
        mean = summary[f"{m}_mean"].to_numpy(float)
        low = summary.get(f"{m}_low", summary[f"{m}_mean"]).to_numpy(float)
        high = summary.get(f"{m}_high", summary[f"{m}_mean"]).to_numpy(float)
        err = np.vstack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)])
        a.errorbar(
            pos,
            mean,
            yerr=err,
            fmt="o-",
            capsize=4,
            color=GROUP_COLOURS[i % len(GROUP_COLOURS)],
        )
        if zero_line:
            a.axhline(0, color="grey", ls="--", lw=1)
        a.set_xticks(pos)
        a.set_xticklabels(
            [str(v) for v in summary[x]], rotation=30 if len(summary) > 4 else 0
        )
        a.set_xlabel(x if xlabel is None else xlabel)
        a.set_title((labels or {}).get(m, m.replace("_", " ")))
    fig.tight_layout()
    return fig


def plot_group_metrics(
    summary, x="value", metrics=("TPR", "FPR"), groups=(0, 1), ax=None, xlabel=None
):
    """Per-group metrics (mean and 95 % interval over seeds) against a setting.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`faimi_tutorial.experiments.sweeps.summarise` with columns
        ``<metric>_g<group>_mean``, ``_low`` and ``_high``.
    x : str, default "value"
        Column holding the setting (categories, in table order).
    metrics : sequence of str, default ("TPR", "FPR")
        One panel per metric.
    groups : sequence of int, default (0, 1)
        Bias-group codes to draw, one series each.
    ax : matplotlib axes or array of axes, optional
        Where to draw.
    xlabel : str, optional
        Label of the x axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    for m in metrics:
        for g in groups:
            if f"{m}_g{g}_mean" not in summary.columns:
                raise ValueError(f"summary has no column {m}_g{g}_mean")
    fig, axes = _new_axes(len(metrics), ax)
    pos = np.arange(len(summary))
    offsets = np.linspace(-0.12, 0.12, len(groups))
    for a, m in zip(axes, metrics):
        for j, g in enumerate(groups):
            mean = summary[f"{m}_g{g}_mean"].to_numpy(float)
            low = summary[f"{m}_g{g}_low"].to_numpy(float)
            high = summary[f"{m}_g{g}_high"].to_numpy(float)
            err = np.vstack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)])
            a.errorbar(
                pos + offsets[j],
                mean,
                yerr=err,
                fmt="o",
                capsize=4,
                color=GROUP_COLOURS[j % len(GROUP_COLOURS)],
                label=f"bias group {g}",
            )
        a.set_xticks(pos)
        a.set_xticklabels(
            [str(v) for v in summary[x]], rotation=30 if len(summary) > 4 else 0
        )
        a.set_xlabel(x if xlabel is None else xlabel)
        a.set_title(m)
        a.set_ylim(-0.02, 1.02)
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


_REGION_COLOURS: tuple[str, ...] = ("#00E5A0", "#56B4E9", "#F0E442", "#FFFFFF")


def plot_saliency(images, maps, masks=None, titles=None, ncols=4, alpha=0.6):
    """Images with their saliency maps overlaid and region outlines.

    Parameters
    ----------
    images : array-like
        ``(N, 1, H, W)``/``(N, H, W)`` 2D images, or 3D volumes (the axial slice
        through the map's maximum is shown).
    maps : numpy.ndarray
        ``(N, *grid)`` saliency maps (from
        :func:`faimi_tutorial.experiments.explain.saliency`).
    masks : mapping of str to numpy.ndarray, optional
        Regions to outline (boolean masks of the grid).
    titles : sequence of str, optional
        One title per image.
    ncols : int, default 4
        Panels per row.
    alpha : float, default 0.6
        Opacity of the overlay.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    imgs = np.asarray(images.cpu() if hasattr(images, "cpu") else images, dtype=float)
    maps = np.asarray(maps, dtype=float)
    if imgs.ndim == maps.ndim + 1:
        imgs = imgs[:, 0]
    if imgs.shape != maps.shape:
        raise ValueError(f"images {imgs.shape} and maps {maps.shape} do not match")
    n = len(maps)
    if n == 0:
        raise ValueError("no images to show")
    masks = dict(masks or {})
    if (
        maps.ndim == 4
    ):  # 3D: the slice through the strongest attribution of the first map
        z = int(np.unravel_index(np.argmax(maps.sum(axis=0)), maps.shape[1:])[2])
        imgs, maps = imgs[..., z], maps[..., z]
        masks = {k: np.asarray(v)[..., z] for k, v in masks.items()}
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=column_figsize(ncols, nrows, 2.6, 2.7), squeeze=False
    )
    for i, a in enumerate(axes.ravel()):
        a.axis("off")
        if i >= n:
            continue
        a.imshow(imgs[i].T, cmap="gray", origin="lower")
        top = np.percentile(maps[i], 99.5) or 1.0
        a.imshow(
            np.ma.masked_less_equal(maps[i].T, 0),
            cmap="inferno",
            origin="lower",
            alpha=alpha,
            vmin=0,
            vmax=top,
        )
        for j, (name, m) in enumerate(masks.items()):
            a.contour(
                np.asarray(m, float).T,
                levels=[0.5],
                colors=[_REGION_COLOURS[j % len(_REGION_COLOURS)]],
                linewidths=1.5,
                origin="lower",
            )
        if titles is not None:
            a.set_title(titles[i], fontsize=9)
    if masks:
        from matplotlib.lines import Line2D

        handles = [
            Line2D([], [], color=_REGION_COLOURS[j % len(_REGION_COLOURS)], label=name)
            for j, name in enumerate(masks)
        ]
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=len(handles),
            fontsize=8,
            frameon=False,
        )
    fig.tight_layout(rect=(0, 0.05 if masks else 0, 1, 1))
    return fig


def plot_attribution_shares(table, region, by="model", chance=None, ax=None):
    """Share of attribution inside one region, per bias group, for several models.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of :func:`faimi_tutorial.experiments.explain.attribution_by_group`
        (``outcome``
        ``"TP+TN"`` is used), with a column ``by`` naming the model.
    region : str
        The region to show.
    by : str, default "model"
        Column that tells the models apart (bars side by side).
    chance : float, optional
        The region's share of the image (what a uniform map gives): a dashed line.
    ax : matplotlib axes, optional
        Where to draw.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    rows = table[(table["region"] == region) & (table["outcome"] == "TP+TN")]
    if rows.empty:
        raise ValueError(f"no 'TP+TN' rows for region {region!r}")
    fig, (a,) = _new_axes(1, ax, width=4.6)
    models = list(dict.fromkeys(rows[by])) if by in rows else [""]
    groups = sorted(rows["bias_group"].unique())
    width = 0.8 / len(groups)
    for j, g in enumerate(groups):
        sub = (
            rows[rows["bias_group"] == g].set_index(by)
            if by in rows
            else rows[rows["bias_group"] == g]
        )
        mean = np.array(
            [
                float(sub.loc[m, "share"])
                if by in rows
                else float(sub["share"].iloc[0])
                for m in models
            ]
        )
        sd = np.array(
            [
                float(sub.loc[m, "sd"]) if by in rows else float(sub["sd"].iloc[0])
                for m in models
            ]
        )
        n = np.array(
            [
                float(sub.loc[m, "n"]) if by in rows else float(sub["n"].iloc[0])
                for m in models
            ]
        )
        sem = 1.96 * np.nan_to_num(sd) / np.sqrt(np.maximum(n, 1))
        a.bar(
            np.arange(len(models)) + (j - (len(groups) - 1) / 2) * width,
            mean,
            width,
            yerr=sem,
            capsize=3,
            color=GROUP_COLOURS[j % len(GROUP_COLOURS)],
            label=f"bias group {g}",
        )
    if chance is not None:
        a.axhline(chance, color="grey", ls="--", lw=1, label="uniform map")
    a.set_xticks(np.arange(len(models)))
    a.set_xticklabels([str(m) for m in models])
    a.set_ylabel(f"share of attribution in {region.replace('_', ' ')}")
    a.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- probing figures ----------------------------------------------------------


def plot_layer_probes(
    table, target="bias_group", by=None, metric="auroc", chance=0.5, ax=None, title=None
):
    """Held-out decodability of one target at every layer, with intervals.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows per layer (and per ``by`` value) with ``layer``, ``depth``, ``target`` and
        ``<metric>``, ``<metric>_low``, ``<metric>_high`` columns, e.g. from
        :func:`faimi_tutorial.experiments.probing.probe_layers` (or seed means with
        intervals).
    target : str, default "bias_group"
        Which target's rows to draw.
    by : str, optional
        Column whose values get one line each (e.g. ``"model"``).
    metric : str, default "auroc"
        ``"auroc"`` or ``"accuracy"``.
    chance : float or None, default 0.5
        Level drawn as a dashed line.
    ax : matplotlib axes, optional
        Where to draw.
    title : str, optional
        Panel title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    rows = table[table["target"] == target]
    if rows.empty:
        raise ValueError(
            f"no rows with target={target!r}; targets: "
            f"{sorted(table['target'].unique())}"
        )
    fig, (a,) = _new_axes(1, ax, width=5.0, height=3.4)
    keys = list(dict.fromkeys(rows[by])) if by is not None else [None]
    layers = list(dict.fromkeys(rows.sort_values("depth")["layer"]))
    offset = 0.08
    for j, key in enumerate(keys):
        sub = rows if key is None else rows[rows[by] == key]
        sub = sub.set_index("layer").reindex(layers)
        x = np.arange(len(layers)) + (j - (len(keys) - 1) / 2) * offset
        v = sub[metric].to_numpy(dtype=float)
        lo = sub.get(f"{metric}_low", sub[metric]).to_numpy(dtype=float)
        hi = sub.get(f"{metric}_high", sub[metric]).to_numpy(dtype=float)
        err = np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)])
        a.errorbar(
            x,
            v,
            yerr=err,
            fmt="o-",
            capsize=3,
            color=GROUP_COLOURS[j % len(GROUP_COLOURS)],
            label=None if key is None else str(key),
        )
    if chance is not None:
        a.axhline(chance, color="grey", ls="--", lw=1)
    a.set_xticks(
        range(len(layers)), [str(l).replace("net.", "") for l in layers], rotation=20
    )
    a.set_ylabel(f"held-out {metric.upper() if metric == 'auroc' else metric}")
    a.set_ylim(min(0.4, float(np.nanmin(rows[metric])) - 0.05), 1.02)
    a.set_title(title or f"decoding {target.replace('_', ' ')} by layer", fontsize=10)
    a.grid(axis="y", alpha=0.3)
    if by is not None:
        a.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_layer_curves(
    table,
    value="auroc",
    by="model",
    ax=None,
    reference=None,
    chance=None,
    ylabel=None,
    title=None,
    logy=False,
    layers=None,
):
    """One line per model across layers, with intervals and horizontal references.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows per (``by`` value, layer) with ``layer``, ``<value>`` and optionally
        ``<value>_low``/``<value>_high`` and ``depth`` (e.g. seed means from
        :func:`faimi_tutorial.experiments.probing.seed_summary`).
    value : str, default "auroc"
        Column drawn.
    by : str, default "model"
        Column whose values get one line each, in order of first appearance.
    ax : matplotlib axes, optional
        Where to draw.
    reference : dict of str to float, optional
        Horizontal reference lines, e.g. ``{"raw input": 0.93}`` (dotted, labelled).
    chance : float, optional
        A dashed grey line (e.g. 0.5 for AUROC).
    ylabel, title : str, optional
        Axis label and panel title.
    logy : bool, default False
        Logarithmic y axis.
    layers : sequence of str, optional
        Layers on the x axis, in order (default: those of ``table`` by ``depth``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    if value not in table.columns or by not in table.columns:
        raise ValueError(
            f"table needs columns {value!r} and {by!r}; has {list(table.columns)}"
        )
    fig, (a,) = _new_axes(1, ax, width=5.0, height=3.4)
    if layers is None:
        order = table.sort_values("depth") if "depth" in table.columns else table
        layers = list(dict.fromkeys(order["layer"]))
    keys = list(dict.fromkeys(table[by]))
    offset = 0.06
    for j, key in enumerate(keys):
        sub = (
            table[table[by] == key]
            .drop_duplicates("layer")
            .set_index("layer")
            .reindex(layers)
        )
        x = np.arange(len(layers)) + (j - (len(keys) - 1) / 2) * offset
        v = sub[value].to_numpy(dtype=float)
        lo = sub[f"{value}_low"].to_numpy(dtype=float) if f"{value}_low" in sub else v
        hi = sub[f"{value}_high"].to_numpy(dtype=float) if f"{value}_high" in sub else v
        err = np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)])
        a.errorbar(
            x,
            v,
            yerr=err,
            fmt="o-",
            capsize=3,
            label=str(key),
            color=GROUP_COLOURS[j % len(GROUP_COLOURS)],
        )
    styles = [":", "-."]
    for k, (name, level) in enumerate((reference or {}).items()):
        a.axhline(level, color="black", ls=styles[k % 2], lw=1.2, label=str(name))
    if chance is not None:
        a.axhline(chance, color="grey", ls="--", lw=1)
    if logy:
        a.set_yscale("log")
    a.set_xticks(
        range(len(layers)), [str(l).replace("net.", "") for l in layers], rotation=20
    )
    a.set_ylabel(ylabel or value.replace("_", " "))
    a.set_title(title or f"{value.replace('_', ' ')} by layer", fontsize=10)
    a.grid(axis="y", alpha=0.3)
    a.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_component_encoding(table, ax=None, title=None):
    """Held-out AUROC of each leading principal component alone, per target.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`faimi_tutorial.experiments.probing.component_encoding`.
    ax : matplotlib axes, optional
        Where to draw.
    title : str, optional
        Panel title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    fig, (a,) = _new_axes(1, ax, width=5.2, height=3.2)
    targets = list(dict.fromkeys(table["target"]))
    comps = sorted(table["component"].unique())
    width = 0.8 / len(targets)
    for j, t in enumerate(targets):
        sub = table[table["target"] == t].set_index("component").reindex(comps)
        v = sub["auroc"].to_numpy(dtype=float)
        err = np.vstack(
            [
                np.nan_to_num(v - sub["auroc_low"].to_numpy(dtype=float)),
                np.nan_to_num(sub["auroc_high"].to_numpy(dtype=float) - v),
            ]
        )
        a.bar(
            np.arange(len(comps)) + (j - (len(targets) - 1) / 2) * width,
            v - 0.5,
            width,
            bottom=0.5,
            yerr=err,
            capsize=2,
            color=GROUP_COLOURS[j % len(GROUP_COLOURS)],
            label=str(t).replace("_", " "),
        )
    a.axhline(0.5, color="grey", ls="--", lw=1)
    a.set_xticks(range(len(comps)), [f"PC{c}" for c in comps])
    a.set_ylabel("held-out AUROC of one component")
    a.set_ylim(0.3, 1.02)
    a.set_title(title or "what each principal component encodes", fontsize=10)
    a.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_subgroup_projection(projection, title=None):
    """Held-out subjects along the most disease-predictive component, by subgroup.

    Left: disease component against the most bias-predictive other component, one
    colour per subgroup (filled: aligned with the shortcut, crosses: misaligned).
    Right: the disease-component values of each subgroup.

    Parameters
    ----------
    projection : pandas.DataFrame
        Output of :func:`faimi_tutorial.experiments.probing.component_projection`.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    colours = {
        SUBGROUPS[0]: "#D55E00",
        SUBGROUPS[1]: "#0072B2",
        SUBGROUPS[2]: "#E69F00",
        SUBGROUPS[3]: "#56B4E9",
    }
    fig, (left, right) = plt.subplots(
        1,
        2,
        figsize=column_figsize(2, 1, 3.45, 3.4),
        gridspec_kw={"width_ratios": [1.1, 1]},
    )
    for name in SUBGROUPS:
        sub = projection[projection["subgroup"] == name]
        aligned = "(aligned)" in name
        left.scatter(
            sub["disease_component"],
            sub["bias_component"],
            s=14 if aligned else 22,
            marker="o" if aligned else "x",
            alpha=0.55 if aligned else 0.9,
            color=colours[name],
            label=f"{name} (n={len(sub)})",
        )
    d, b = (
        projection.attrs.get("disease_component"),
        projection.attrs.get("bias_component"),
    )
    left.set_xlabel(
        f"PC{d}: most disease-predictive component" if d else "disease component"
    )
    left.set_ylabel(
        f"PC{b}: most bias-predictive other component" if b else "bias component"
    )
    left.legend(fontsize=7, loc="best")
    rng = np.random.default_rng(0)
    for i, name in enumerate(SUBGROUPS):
        v = projection.loc[
            projection["subgroup"] == name, "disease_component"
        ].to_numpy()
        right.scatter(
            v,
            i + rng.uniform(-0.18, 0.18, len(v)),
            s=8,
            alpha=0.45,
            color=colours[name],
        )
        if len(v):
            right.plot([np.median(v)] * 2, [i - 0.3, i + 0.3], color="black", lw=2)
    right.set_yticks(
        range(len(SUBGROUPS)), [s.replace(" (", "\n(") for s in SUBGROUPS], fontsize=8
    )
    right.invert_yaxis()
    right.set_xlabel("disease component (black: median)")
    for a in (left, right):
        a.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_short(runs, test=None, x="encoding_auroc", y="TPR_gap", hue="lam", ax=None):
    """ShorT: fairness gap against measured encoding, one point per model.

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per model (e.g.
        :func:`faimi_tutorial.experiments.probing.short_sweep`); when
        ``<x>_low``/``<x>_high`` exist they are drawn as horizontal intervals.
    test : ShortcutTest, optional
        Result of :func:`faimi_tutorial.experiments.probing.short_test` on the same
        columns: its
        line and slope interval are drawn.
    x, y : str
        Encoding and gap columns.
    hue : str, default "lam"
        Column that colours the points (diverging map centred on zero).
    ax : matplotlib axes, optional
        Where to draw.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    fig, (a,) = _new_axes(1, ax, width=5.0, height=3.8)
    u, v = runs[x].to_numpy(dtype=float), runs[y].to_numpy(dtype=float)
    if f"{x}_low" in runs and f"{x}_high" in runs:
        err = np.vstack(
            [
                u - runs[f"{x}_low"].to_numpy(dtype=float),
                runs[f"{x}_high"].to_numpy(dtype=float) - u,
            ]
        )
        a.errorbar(
            u, v, xerr=np.nan_to_num(err), fmt="none", ecolor="0.7", lw=1, zorder=1
        )
    c = runs[hue].to_numpy(dtype=float) if hue in runs else np.zeros(len(runs))
    span = max(float(np.abs(c).max()), 1e-9)
    points = a.scatter(
        u,
        v,
        c=c,
        cmap="coolwarm",
        norm=TwoSlopeNorm(0.0, -span, span),
        s=40,
        edgecolor="black",
        zorder=2,
    )
    if hue in runs:
        fig.colorbar(points, ax=a, label=f"{hue} (<0: unlearn, >0: encode more)")
    if test is not None:
        grid = np.linspace(np.nanmin(u), np.nanmax(u), 50)
        a.plot(
            grid,
            test.intercept + test.slope * grid,
            color="black",
            lw=1.5,
            label=(
                f"slope {test.slope:.2f} [{test.slope_low:.2f}, "
                f"{test.slope_high:.2f}]; "
                f"Spearman p = {test.spearman_p:.3f}"
            ),
        )
        a.legend(fontsize=8, loc="best")
    a.axhline(0.0, color="grey", ls="--", lw=1)
    a.set_xlabel(x.replace("_", " "))
    a.set_ylabel(y.replace("_", " "))
    a.set_title("shortcut test: does the gap follow the encoding?", fontsize=10)
    a.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# --- representativeness figures ---------------------------------------------


def plot_share_sweep(
    summary, metrics=("AUROC", "TPR"), groups=("A", "B"), conditions=None, ax=None
):
    """Per-subgroup metrics (mean and interval over seeds) against the training share
    of B.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`faimi_tutorial.experiments.representation.summarise_sweep`:
        columns
        ``share``, ``subgroup``, ``<metric>_mean``, ``_low``, ``_high`` and optionally
        ``condition``.
    metrics : sequence of str, default ("AUROC", "TPR")
        One column of panels per metric.
    groups : sequence of str, default ("A", "B")
        Subgroups to draw, one series each (tested on that group's fixed test set).
    conditions : sequence of str, optional
        One row of panels per condition (default: the table's ``condition`` values, or
        a single row).
    ax : array of matplotlib axes, optional
        ``len(conditions) x len(metrics)`` axes to draw into.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    for m in metrics:
        if f"{m}_mean" not in summary.columns:
            raise ValueError(f"summary has no column {m}_mean")
    if conditions is None:
        conditions = (
            list(dict.fromkeys(summary["condition"]))
            if "condition" in summary
            else [None]
        )
    n_rows, n_cols = len(conditions), len(metrics)
    if ax is None:
        fig, axes = plt.subplots(
            n_rows,
            n_cols,
            figsize=column_figsize(n_cols, n_rows, 3.8, 3.0),
            squeeze=False,
            sharex=True,
        )
    else:
        axes = np.asarray(ax, dtype=object).reshape(n_rows, n_cols)
        fig = axes[0, 0].figure
    for r, cond in enumerate(conditions):
        part = summary if cond is None else summary[summary["condition"] == cond]
        for c, m in enumerate(metrics):
            a = axes[r, c]
            for j, g in enumerate(groups):
                rows = part[part["subgroup"].astype(str) == str(g)].sort_values("share")
                x = 100 * rows["share"].to_numpy(float)
                mean = rows[f"{m}_mean"].to_numpy(float)
                low = rows.get(f"{m}_low", rows[f"{m}_mean"]).to_numpy(float)
                high = rows.get(f"{m}_high", rows[f"{m}_mean"]).to_numpy(float)
                colour = GROUP_COLOURS[j % len(GROUP_COLOURS)]
                a.plot(
                    x + (j - 0.5) * 1.5,
                    mean,
                    "o-",
                    color=colour,
                    label=f"tested on {g}",
                )
                a.errorbar(
                    x + (j - 0.5) * 1.5,
                    mean,
                    yerr=np.vstack(
                        [np.nan_to_num(mean - low), np.nan_to_num(high - mean)]
                    ),
                    fmt="none",
                    ecolor=colour,
                    capsize=3,
                    lw=1,
                )
            a.set_ylim(0.3 if m == "AUROC" else -0.02, 1.02)
            if m == "AUROC":
                a.axhline(0.5, color="grey", ls=":", lw=1)
            a.set_title(m if cond is None else f"{cond}: {m}", fontsize=10)
            a.set_xticks([0, 25, 50, 75, 100])
            a.grid(alpha=0.3)
            if r == n_rows - 1:
                a.set_xlabel(f"share of {groups[-1]} in training (%)")
    axes[0, -1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_composition(table, attribute="subgroup", ax=None):
    """Stacked bars: the share of each value of ``attribute`` in every split.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`faimi_tutorial.experiments.representation.composition_table`.
    attribute : str, default "subgroup"
        Which attribute to draw.
    ax : matplotlib axes, optional
        Where to draw.

    Returns
    -------
    matplotlib.figure.Figure
    """
    part = table[table["attribute"] == attribute]
    if part.empty:
        raise ValueError(f"table has no attribute {attribute!r}")
    wide = part.pivot_table(
        index="split",
        columns="value",
        values="proportion",
        aggfunc="sum",
        fill_value=0.0,
        sort=False,
    )
    counts = part.pivot_table(
        index="split",
        columns="value",
        values="n",
        aggfunc="sum",
        fill_value=0,
        sort=False,
    )
    fig, (a,) = _new_axes(1, ax, width=4.6, height=2.6)
    left = [0.0] * len(wide)
    for j, value in enumerate(wide.columns):
        widths = wide[value].to_numpy(float)
        bars = a.barh(
            list(wide.index),
            widths,
            left=left,
            color=GROUP_COLOURS[j % len(GROUP_COLOURS)],
            label=str(value),
        )
        for bar, n in zip(bars, counts[value].to_numpy()):
            if bar.get_width() > 0.08:
                a.text(
                    bar.get_x() + bar.get_width() / 2,
                    bar.get_y() + bar.get_height() / 2,
                    f"{int(n)}",
                    ha="center",
                    va="center",
                    color="white",
                    fontsize=8,
                )
        left = [lo + w for lo, w in zip(left, widths)]
    a.set_xlim(0, 1)
    a.set_xlabel(f"share of subjects by {attribute} (numbers: counts)")
    a.invert_yaxis()
    a.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def plot_intervals(
    summary, value, by="strategy", order=None, colours=None, ax=None, title=None
):
    """One point with its interval per row of a seed summary, as categories.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`faimi_tutorial.fairness.metrics.aggregate_seeds`: a column
        ``by`` and
        columns ``<value>_mean``, ``<value>_low`` and ``<value>_high``.
    value : str
        The measure to draw.
    by : str, default "strategy"
        Column naming each row (drawn as the categories).
    order : sequence, optional
        Categories in drawing order (names missing from ``summary`` are skipped;
        default: table order).
    colours : mapping, optional
        Colour per category (default: the book's group colours in turn).
    ax : matplotlib axes, optional
        Where to draw; a new figure if omitted.
    title : str, optional
        Panel title.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``by`` or a ``<value>_mean/_low/_high`` column is missing.
    """
    missing = [
        c
        for c in (by, f"{value}_mean", f"{value}_low", f"{value}_high")
        if c not in summary.columns
    ]
    if missing:
        raise ValueError(
            f"summary lacks column(s) {', '.join(missing)}; allowed: a "
            f"table with {by!r} and {value}_mean/_low/_high"
        )
    table = summary.set_index(by)
    names = [s for s in (table.index if order is None else order) if s in table.index]
    fig, (a,) = _new_axes(1, ax, width=4.5, height=3.4)
    for i, name in enumerate(names):
        row = table.loc[name]
        mean, low, high = (row[f"{value}_{part}"] for part in ("mean", "low", "high"))
        colour = (
            colours[name]
            if colours is not None
            else GROUP_COLOURS[i % len(GROUP_COLOURS)]
        )
        a.errorbar(
            i,
            mean,
            yerr=[[mean - low], [high - mean]],
            fmt="o",
            capsize=4,
            color=colour,
        )
    a.set_xticks(range(len(names)), names, rotation=20)
    if title:
        a.set_title(title, fontsize=10)
    return fig


def show_bias_effect(cohort, title="", axes=None, subject=None):
    """A bias-group subject, its counterfactual twin and their difference (2D cohorts).

    Parameters
    ----------
    cohort : Cohort
        A 2D cohort with twins (:func:`faimi_tutorial.data.simulate.generate`).
    title : str, optional
        Prefix of the first panel's title (e.g. the kind of bias).
    axes : sequence of three matplotlib axes, optional
        Where to draw; a new row of three panels if omitted.
    subject : int, optional
        Row of the subject (default: the first subject of the bias group).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        Without twins, for a 3D cohort, without a bias-group subject, or for a
        subject that is out of range or not in the bias group.
    """
    import numpy as np

    if getattr(cohort, "twins", None) is None:
        raise ValueError(
            "cohort has no twins; allowed: a cohort generated with twins=True"
        )
    if cohort.images.ndim != 4:
        raise ValueError(
            f"cohort images have shape {tuple(cohort.images.shape)}; "
            "allowed: a 2D cohort (N, 1, H, W)"
        )
    members = np.flatnonzero(np.asarray(cohort.bias_group) == 1)
    if subject is None:
        if len(members) == 0:
            raise ValueError(
                "cohort has no subject in the bias group; allowed: a "
                "cohort with bias_group == 1 for some subject"
            )
        subject = int(members[0])
    elif (
        isinstance(subject, bool)
        or not isinstance(subject, (int, np.integer))
        or int(subject) not in set(members.tolist())
    ):
        raise ValueError(
            f"subject={subject!r} is invalid; allowed: a row of a bias-group subject"
        )
    i = int(subject)
    image = cohort.images[i, 0].numpy()
    twin = cohort.twins[i, 0].numpy()
    diff = image - twin
    lim = max(float(np.abs(diff).max()), 1e-6)
    head = "subject in the bias group"
    head = f"{title}: {head}" if title else head
    panels = [
        (image, "gray", 0, 1, head),
        (twin, "gray", 0, 1, "its twin without the bias"),
        (diff, "coolwarm", -lim, lim, f"difference (max {lim:.2f})"),
    ]
    fig, axes = _new_axes(3, axes, width=2.9, height=2.8)
    for a, (img, cmap, lo, hi, name) in zip(axes, panels):
        a.imshow(img.T, cmap=cmap, origin="lower", vmin=lo, vmax=hi)
        a.set_title(name, fontsize=9)
        a.axis("off")
    return fig


def plot_report_intervals(
    reports,
    metric="AUROC",
    order=None,
    labels=None,
    colours=None,
    chance=0.5,
    ylabel=None,
    ax=None,
):
    """One metric per group for several models side by side, with each model's
    bootstrap intervals.

    Parameters
    ----------
    reports : mapping of str to SubgroupReport
        One :class:`faimi_tutorial.fairness.metrics.SubgroupReport` per model (for
        example :func:`faimi_tutorial.experiments.federated.evaluate` per strategy),
        drawn in mapping order, side by side within each group.
    metric : str, default "AUROC"
        Column of the reports' tables.
    order : sequence, optional
        Groups in drawing order (default: the first report's rows, without
        ``"overall"``).
    labels : sequence of str, optional
        Tick label per group (default: the group names).
    colours : mapping, optional
        Colour per model (default: the book's group colours in turn).
    chance : float or None, default 0.5
        Height of a grey reference line (None: no line).
    ylabel : str, optional
        Label of the y axis (default: ``"<metric> per group"``).
    ax : matplotlib axes, optional
        Where to draw; a new figure as wide as the page column
        (:data:`faimi_tutorial.viz.plotting.COLUMN_WIDTH`) if omitted.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``reports`` is empty, a report lacks ``metric`` or a group, or ``labels``
        does not give one label per group.
    """
    import numpy as np

    if not reports:
        raise ValueError(
            "reports is empty; allowed: a mapping of model name to SubgroupReport"
        )
    first = next(iter(reports.values()))
    if order is None:
        order = [g for g in first.table.index if g != "overall"]
    groups = list(order)
    if labels is not None and len(labels) != len(groups):
        raise ValueError(
            f"labels has {len(labels)} entries for {len(groups)} groups; allowed: "
            "one label per group"
        )
    for name, report in reports.items():
        missing = [g for g in groups if g not in report.table.index]
        if metric not in report.table.columns or missing:
            raise ValueError(
                f"report {name!r} lacks metric {metric!r} or group(s) {missing}; "
                f"allowed: metrics {list(report.table.columns)}, groups "
                f"{list(report.table.index)}"
            )
    fig, (a,) = _new_axes(1, ax, width=COLUMN_WIDTH, height=3.4)
    offsets = (np.arange(len(reports)) - (len(reports) - 1) / 2) * 0.22
    x = np.arange(len(groups))
    for j, (name, report) in enumerate(reports.items()):
        mean = report.table.loc[groups, metric].to_numpy(float)
        low = report.ci_low.loc[groups, metric].to_numpy(float)
        high = report.ci_high.loc[groups, metric].to_numpy(float)
        colour = (
            colours[name]
            if colours is not None
            else GROUP_COLOURS[j % len(GROUP_COLOURS)]
        )
        a.errorbar(
            x + offsets[j],
            mean,
            yerr=[np.nan_to_num(mean - low), np.nan_to_num(high - mean)],
            fmt="o",
            capsize=3,
            color=colour,
            label=name,
        )
    a.set_xticks(x, [str(g) for g in groups] if labels is None else list(labels))
    a.set_ylabel(f"{metric} per group" if ylabel is None else ylabel)
    if chance is not None:
        a.axhline(chance, color="0.8", lw=1, zorder=0)
    a.legend(fontsize=8, loc="lower right")
    if ax is None:
        fig.tight_layout()
    return fig
