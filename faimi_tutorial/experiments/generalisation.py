"""Generalisation: unseen sites and scanners, harmonisation, shifted bias, more data.

A model is trained on some hospitals and used at others. This module runs the
experiments of the chapter "Generalisation" on the package's own pieces: sites
and scanners from :mod:`faimi_tutorial.experiments.federated`, intensity
harmonisation from :mod:`faimi_tutorial.data.harmonise`, one training loop
(:func:`faimi_tutorial.training.loop.fit` and its mitigations), one metrics core
(:func:`faimi_tutorial.fairness.metrics.subgroup_report`,
:func:`~faimi_tutorial.fairness.metrics.counterfactual_flip_rate`) and one cached
runner (:mod:`faimi_tutorial.experiments.runner`: a seed's record is kept under a key
that holds the settings, the seed and the package's source digest).

One seed of the study (:func:`run_seed`) simulates a cohort and draws three sites
from it (:func:`study_sites`): ``site-A`` (reference scanner) and ``site-B``
(bright scanner) train the model, ``site-C`` (low-contrast scanner) is held out.
It then measures, per test set and per bias group:

* the trained sites, the held-out site, the held-out site's subjects rendered by
  the seen reference scanner and by unseen ones (:data:`UNSEEN_SCANNERS`, and a
  field-of-view change, :func:`faimi_tutorial.data.harmonise.zoom`);
* leave-one-site-out: each site held out in turn;
* the same after intensity normalisation and histogram matching;
* a shifted bias: fresh subjects whose bias-disease relation is the same as in
  training, absent or reversed, with their counterfactual twins;
* when more data hurts: a second dataset whose disease rate differs and whose
  scanner marks its images, against the single-dataset model, and the fix of
  balanced sampling by site x label; the scanner's counterfactual (the first
  dataset's subjects through the second one's scanner) shows the shortcut.

Example::

    settings = GeneralisationSettings.for_preset("tutorial")
    runs = collect(settings, seeds=(0, 1, 2))
    per_seed(runs["metrics"], "harmonisation")   # one row per model, test set, seed
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import presets
from ..validation import check_finite, check_int, check_seed
from ..data import harmonise as hm
from ..data import simulate
from ..fairness.metrics import (
    UndefinedMetricWarning,
    counterfactual_flip_rate,
    paired_difference,
    subgroup_report,
)
from ..training.loop import ArrayData, FitResult, TrainConfig, fit, predict
from . import federated as fl
from .runner import ResultCache, plain, stored, step
from .sweeps import shifted_prevalence

__all__ = [
    "SITE_SCANNERS",
    "TRAIN_SITES",
    "HELD_OUT",
    "UNSEEN_SCANNERS",
    "CALIBRATION_TESTS",
    "METRICS",
    "GeneralisationSettings",
    "study_sites",
    "more_data_sites",
    "site_training_data",
    "site_test_data",
    "fit_on_sites",
    "make_study",
    "test_sets",
    "group_metrics",
    "per_seed",
    "contrasts",
    "group_differences",
    "seed_record",
    "run_seed",
    "collect",
]

#: The study's sites and their scanners (names in
#: :data:`faimi_tutorial.experiments.federated.SCANNERS`).
SITE_SCANNERS: dict[str, str] = {
    "site-A": "reference",
    "site-B": "bright",
    "site-C": "low_contrast",
}
#: Sites the main model trains on, and the one held out.
TRAIN_SITES: tuple[str, ...] = ("site-A", "site-B")
HELD_OUT = "site-C"
#: Scanners no training site has: a milder and a stronger intensity change (a
#: gamma curve, contrast and brightness), and noise.
UNSEEN_SCANNERS: dict[str, fl.Scanner] = {
    "dark": fl.SCANNERS["dark"],
    "washed_out": fl.Scanner("washed_out", gamma=0.6, contrast=0.6, brightness=0.1),
    "noisy": fl.SCANNERS["noisy"],
}
#: Test sets whose per-subject scores :func:`run_seed` keeps (for reliability curves).
CALIBRATION_TESTS: tuple[str, ...] = (
    "site-A",
    "site-C",
    "site-C on the washed_out scanner",
)
#: Metrics reported per test set and group.
METRICS: tuple[str, ...] = ("n", "AUROC", "TPR", "FPR", "ECE")


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


# ----------------------------------------------------------------------------- settings


@dataclass
class GeneralisationSettings:
    """Everything one seed of the study depends on (validated at construction).

    Parameters
    ----------
    preset : str
        Preset of the simulator and of training.
    n_subjects : int
        Subjects of the simulated cohort per seed (>= 200).
    shape : tuple of int
        2D grid of the slices.
    spacing : float
        Pixel size (mm).
    n_train, n_test : int
        Training and test subjects per site (>= 20 and >= 10).
    epochs : int
        Training epochs (no early stopping; the epoch of best validation AUROC is
        kept), >= 1.
    zoom : float
        Scale of the anatomy under the field-of-view change, in [0.5, 2].
    n_shift : int
        Fresh subjects per shifted-bias test set (>= 20).
    more_data_prevalence : float
        Disease share of the added dataset's training subjects, in (0, 1).
    more_data_scanner : str
        The added dataset's scanner (a name in
        :data:`faimi_tutorial.experiments.federated.SCANNERS`).
    bias_kind : str
        The simulator's bias: ``"intensity"`` (a local contrast change in the bias
        region, chapter 4's shortcut), ``"morphological"`` or ``"both"``.
    intensity_factor : float
        Contrast factor of an intensity bias.
    training : dict
        Overrides of :class:`faimi_tutorial.training.loop.TrainConfig`.
    """

    preset: str = "tutorial"
    n_subjects: int = 2000
    shape: tuple[int, ...] = (48, 48)
    spacing: float = 4.0
    n_train: int = 300
    n_test: int = 100
    epochs: int = 8
    zoom: float = 0.9
    n_shift: int = 400
    more_data_prevalence: float = 0.8
    more_data_scanner: str = "bright"
    bias_kind: str = "intensity"
    intensity_factor: float = 1.2
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        presets.check_preset(self.preset)
        for name, lo in (
            ("n_subjects", 200),
            ("n_train", 20),
            ("n_test", 10),
            ("epochs", 1),
            ("n_shift", 20),
        ):
            setattr(self, name, check_int(name, getattr(self, name), lo))
        self.shape = tuple(int(v) for v in self.shape)
        if len(self.shape) != 2:
            _fail("shape", self.shape, "two integers (2D slices)")
        for name, lo, hi in (("spacing", 0.5, 20.0), ("zoom", 0.5, 2.0)):
            setattr(self, name, check_finite(name, getattr(self, name), lo, hi))
        p = check_finite("more_data_prevalence", self.more_data_prevalence, 0.0, 1.0)
        if not 0.0 < p < 1.0:
            _fail("more_data_prevalence", p, "a share in (0, 1)")
        self.more_data_prevalence = p
        if self.more_data_scanner not in fl.SCANNERS:
            _fail("more_data_scanner", self.more_data_scanner, ", ".join(fl.SCANNERS))
        self.training = dict(self.training)
        self.train_config()  # validates the training overrides
        self.simulation(0)  # validates the bias

    @classmethod
    def for_preset(cls, name: str, **overrides: Any) -> GeneralisationSettings:
        """The study's settings for a preset (``tiny`` is small enough for tests).

        Parameters
        ----------
        name : str
            ``tiny``, ``tutorial`` or ``paper``.
        **overrides
            Any field.

        Returns
        -------
        GeneralisationSettings
        """
        presets.check_preset(name)
        base: dict[str, Any] = {"preset": name}
        if name == "tiny":
            base.update(
                n_subjects=400,
                shape=(32, 32),
                spacing=6.0,
                n_train=40,
                n_test=20,
                epochs=2,
                n_shift=40,
            )
        base.update(overrides)
        return cls(**base)

    def simulation(self, seed: int) -> Any:
        """The simulator configuration of one seed (2D, 70/30 bias prevalence)."""
        return simulate.SimulationConfig.preset(
            self.preset,
            dims=2,
            shape=self.shape,
            spacing=self.spacing,
            n_subjects=self.n_subjects,
            bias_kind=self.bias_kind,
            intensity_factor=self.intensity_factor,
            seed=int(seed),
        )

    def train_config(self) -> TrainConfig:
        """Training settings: the preset's network, ``epochs``, no early stopping."""
        return TrainConfig.preset(
            self.preset, dims=2, epochs=self.epochs, patience=None, **self.training
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dictionary (the cache key is built from it)."""
        return asdict(self)


# ----------------------------------------------------------------------------- sites


def study_sites(n_train: int = 300, n_test: int = 100) -> list[fl.SiteSpec]:
    """The three sites of :data:`SITE_SCANNERS`, equal populations, one scanner each.

    Parameters
    ----------
    n_train, n_test : int
        Training and test subjects per site.

    Returns
    -------
    list of SiteSpec
    """
    return [
        fl.SiteSpec(name, n_train, n_test, scanner=scanner)
        for name, scanner in SITE_SCANNERS.items()
    ]


def more_data_sites(
    n_train: int = 300,
    n_test: int = 100,
    prevalence: float = 0.8,
    scanner: str = "bright",
) -> list[fl.SiteSpec]:
    """A first dataset (``site-A``) and a second one (``site-E``) that may hurt.

    ``site-A`` has the reference scanner and half its subjects diseased;
    ``site-E`` has its own scanner, which marks its images, and a disease share
    ``prevalence`` in training. Both test sets are half diseased.

    Parameters
    ----------
    n_train, n_test : int
        Subjects per site.
    prevalence : float, default 0.8
        Disease share of ``site-E``'s training subjects.
    scanner : str, default "bright"
        ``site-E``'s scanner.

    Returns
    -------
    list of SiteSpec
    """
    return [
        fl.SiteSpec("site-A", n_train, n_test, prevalence=0.5, scanner="reference"),
        fl.SiteSpec(
            "site-E",
            n_train,
            n_test,
            prevalence=prevalence,
            scanner=scanner,
            test_prevalence=0.5,
        ),
    ]


def _rows_of(federation: fl.Federation, split: str, sites: Sequence[str]) -> np.ndarray:
    """Mask of the subjects of ``sites`` in ``split`` (read from the metadata)."""
    meta = federation.meta
    return (meta["split"].astype(str).to_numpy() == split) & meta["site"].astype(
        str
    ).isin(list(sites)).to_numpy()


def _check_sites(
    federation: fl.Federation, sites: Sequence[str], split: str
) -> list[str]:
    """Known, non-empty sites whose subjects of ``split`` hold both classes."""
    if isinstance(sites, str):
        sites = [sites]
    sites = list(sites)
    if not sites:
        _fail("sites", sites, "at least one site")
    for site in sites:
        if site not in federation.site_names:
            _fail("site", site, ", ".join(federation.site_names))
        mask = _rows_of(federation, split, [site])
        if not mask.any():
            raise ValueError(
                f"site {site!r} has no {split} subjects; allowed: sites with data"
            )
        labels = set(federation.meta.loc[mask, "label"].astype(int))
        if labels != {0, 1}:
            raise ValueError(
                f"site {site!r} has {split} subjects of one class only "
                f"(label {labels.pop()}); allowed: sites with both "
                "classes"
            )
    return sites


def site_training_data(
    federation: fl.Federation,
    sites: Sequence[str],
    *,
    group: str = "bias_group",
    method: str = "none",
    reference: np.ndarray | None = None,
) -> ArrayData:
    """Training images of some sites, pooled and harmonised, with the chosen groups.

    Parameters
    ----------
    federation : Federation
        The sites (:func:`faimi_tutorial.experiments.federated.make_sites`).
    sites : sequence of str
        Sites to pool (known, with training subjects of both classes).
    group : {"bias_group", "site"}
        What the mitigations balance: the bias group, or the site (its position
        in ``sites``), so that ``group_balanced`` samples site x label cells equally.
    method : str, default "none"
        Harmonisation (:data:`faimi_tutorial.data.harmonise.METHODS`).
    reference : numpy.ndarray, optional
        Landmarks for ``method="histogram"``.

    Returns
    -------
    ArrayData
    """
    sites = _check_sites(federation, sites, "train")
    if group not in ("bias_group", "site"):
        _fail("group", group, "bias_group, site")
    part = federation.cohort.subset(_rows_of(federation, "train", sites))
    if group == "site":
        codes = {s: i for i, s in enumerate(sites)}
        groups = part.meta["site"].map(codes).to_numpy()
    else:
        groups = part.bias_group
    return ArrayData(hm.harmonise(part.images, method, reference), part.label, groups)


def site_test_data(federation: fl.Federation, site: str) -> Any:
    """Test subjects of one site (known, non-empty, both classes), as a cohort."""
    _check_sites(federation, [site], "test")
    return federation.test_site(site)


def fit_on_sites(
    federation: fl.Federation,
    sites: Sequence[str],
    config: TrainConfig,
    *,
    seed: int = 0,
    group: str = "bias_group",
    mitigation: str = "none",
    method: str = "none",
    reference: np.ndarray | None = None,
) -> FitResult:
    """Train one model on the pooled training subjects of ``sites``.

    Parameters
    ----------
    federation : Federation
        The sites.
    sites : sequence of str
        Training sites.
    config : TrainConfig
        Training settings.
    seed : int, default 0
        Seed of training (and of the validation split).
    group : {"bias_group", "site"}
        The grouping the mitigation uses (see :func:`site_training_data`).
    mitigation : str, default "none"
        One of :data:`faimi_tutorial.training.objectives.MITIGATIONS`.
    method : str, default "none"
        Harmonisation of the training images.
    reference : numpy.ndarray, optional
        Landmarks for ``method="histogram"``.

    Returns
    -------
    FitResult
    """
    data = site_training_data(
        federation, sites, group=group, method=method, reference=reference
    )
    return fit(data, config, seed=int(seed), progress=False, mitigation=mitigation)


# ----------------------------------------------------------------------------- metrics


def group_metrics(
    label: Any,
    scores: Any,
    bias_group: Any,
    test: Any | None = None,
    *,
    threshold: float = 0.5,
    n_bins: int = 10,
) -> pd.DataFrame:
    """AUROC, TPR, FPR and ECE of test sets, for everyone and per bias group.

    Parameters
    ----------
    label, scores, bias_group : array-like
        One entry per test subject (labels 0/1, scores in [0, 1], group codes).
    test : array-like of str, optional
        The test set of each subject (default: one test set, ``"test"``); every
        test set is reported on its own.
    threshold : float, default 0.5
        One global decision threshold.
    n_bins : int, default 10
        Bins of the expected calibration error.

    Returns
    -------
    pandas.DataFrame
        One row per test set and group (``"all"`` and each bias group, as text),
        in the order the test sets first appear; columns ``test``, ``group`` and
        :data:`METRICS`.

    Raises
    ------
    ValueError
        If a test set is empty, holds one class only, or one bias group only.
    """
    y = np.asarray(label)
    s = np.asarray(scores, dtype=float)
    g = np.asarray(bias_group).astype(int)
    t = (
        np.full(len(y), "test", dtype=object)
        if test is None
        else np.asarray(test, dtype=object)
    )
    if len(y) == 0:
        raise ValueError(
            "the test set is empty (0 subjects); allowed: a non-empty test set"
        )
    if not len(s) == len(g) == len(t) == len(y):
        raise ValueError(
            f"label, scores, bias_group and test have lengths {len(y)}, "
            f"{len(s)}, {len(g)} and {len(t)}; allowed: equal lengths"
        )
    names = list(dict.fromkeys(t.tolist()))
    for name in names:
        here = t == name
        if set(np.unique(y[here]).tolist()) != {0, 1}:
            raise ValueError(
                f"test set {name!r} holds one class only (label "
                f"{int(y[here][0])}); allowed: both classes, which "
                "AUROC, TPR and FPR need"
            )
        if len(np.unique(g[here])) < 2:
            raise ValueError(
                f"test set {name!r} holds one bias group only; allowed: both groups"
            )
    combined = np.array(
        [f"{a}\t{b}" for a, b in zip(t.tolist(), g.tolist())], dtype=object
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        by_group = subgroup_report(
            y, s, combined, threshold=threshold, n_boot=0, n_bins=n_bins
        ).table
        # with one test set, "all" is the report's own overall row
        overall = subgroup_report(
            y,
            s,
            t if len(names) > 1 else g,
            threshold=threshold,
            n_boot=0,
            n_bins=n_bins,
        ).table
    if len(names) == 1:
        overall = overall.loc[["overall"]].set_axis(names)
    rows = []
    for name in names:
        rows.append(
            {
                "test": name,
                "group": "all",
                **{m: float(overall.loc[name, m]) for m in METRICS},
            }
        )
        for code in sorted(np.unique(g[t == name]).tolist()):
            row = by_group.loc[f"{name}\t{code}"]
            rows.append(
                {
                    "test": name,
                    "group": str(code),
                    **{m: float(row[m]) for m in METRICS},
                }
            )
    return pd.DataFrame(rows)


def per_seed(metrics: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """One experiment's rows, one per (model, test set, seed), groups side by side.

    The wide form that :func:`faimi_tutorial.experiments.sweeps.summarise`,
    :func:`faimi_tutorial.fairness.metrics.paired_difference` and
    :func:`faimi_tutorial.viz.plotting.plot_group_metrics` read: ``<metric>`` for
    everyone and ``<metric>_g<k>`` for bias group ``k``, plus ``setting``
    (``"<model> | <test>"``).

    Parameters
    ----------
    metrics : pandas.DataFrame
        The ``metrics`` table of :func:`run_seed` or :func:`collect`.
    experiment : str
        ``"harmonisation"``, ``"leave one site out"``, ``"shifted bias"`` or
        ``"more data"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``test``, ``setting``, ``seed`` and the metrics, in the
        order the runs wrote them.
    """
    known = (
        list(dict.fromkeys(metrics["experiment"])) if "experiment" in metrics else []
    )
    if experiment not in known:
        _fail(
            "experiment", experiment, ", ".join(known) or "an experiment of the table"
        )
    part = metrics[metrics["experiment"] == experiment]
    keys = ["model", "test", "seed"]
    out = part[part["group"] == "all"][keys + list(METRICS)].reset_index(drop=True)
    for g in sorted(set(part["group"]) - {"all"}):
        side = part[part["group"] == g][keys + list(METRICS)]
        out = out.merge(
            side.rename(columns={m: f"{m}_g{g}" for m in METRICS}), on=keys, how="left"
        )
    out.insert(2, "setting", out["model"] + " | " + out["test"])
    return out


def _rows(
    experiment: str, model: str, scored: dict[str, tuple]
) -> list[dict[str, Any]]:
    """Metric rows of one model on named test sets ``{name: (label, score, group)}``."""
    label, score, group, test = [], [], [], []
    for name, (y, sc, g) in scored.items():
        label.append(np.asarray(y))
        score.append(np.asarray(sc))
        group.append(np.asarray(g))
        test += [name] * len(y)
    table = group_metrics(
        np.concatenate(label),
        np.concatenate(score),
        np.concatenate(group),
        np.asarray(test, dtype=object),
    )
    return [
        {"experiment": experiment, "model": model, **row}
        for row in table.to_dict("records")
    ]


def contrasts(
    table: pd.DataFrame,
    pairs: dict[str, tuple[str, str]],
    values: Sequence[str] = ("AUROC",),
) -> pd.DataFrame:
    """Differences between settings, paired by seed, with t-intervals.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`per_seed` (or several, concatenated).
    pairs : dict of str to (str, str)
        ``{label: (reference setting, other setting)}``; each difference is
        other minus reference
        (:func:`faimi_tutorial.fairness.metrics.paired_difference`).
    values : sequence of str, default ("AUROC",)
        Metrics to compare.

    Returns
    -------
    pandas.DataFrame
        Indexed by (label, metric): ``mean``, ``low``, ``high``, ``n_pairs`` and
        ``excludes_zero``.
    """
    if not pairs:
        _fail("pairs", pairs, "at least one (reference, other) pair")
    known = set(table["setting"])
    for label, (reference, other) in pairs.items():
        for setting in (reference, other):
            if setting not in known:
                _fail(
                    "setting",
                    setting,
                    "a setting of the table, e.g. " + repr(sorted(known)[0]),
                )
    return pd.concat(
        {
            label: paired_difference(table, "setting", reference, other, list(values))
            for label, (reference, other) in pairs.items()
        }
    )


def group_differences(
    metrics: pd.DataFrame, experiment: str, values: Sequence[str] = ("TPR", "FPR")
) -> pd.DataFrame:
    """Bias group minus the other group, per model and test set, paired by seed.

    :func:`faimi_tutorial.fairness.metrics.paired_difference` with the group as the
    setting: the signed gap of :func:`faimi_tutorial.fairness.metrics.signed_gaps`
    (group 1 minus group 0), with a t-interval over seeds.

    Parameters
    ----------
    metrics : pandas.DataFrame
        The ``metrics`` table of :func:`run_seed` or :func:`collect`.
    experiment : str
        One experiment of the table.
    values : sequence of str, default ("TPR", "FPR")
        Metrics to compare.

    Returns
    -------
    pandas.DataFrame
        Indexed by (model, test set, metric): ``mean``, ``low``, ``high``,
        ``n_pairs`` and ``excludes_zero``.
    """
    part = metrics[metrics["experiment"] == experiment]
    if part.empty:
        _fail("experiment", experiment, ", ".join(dict.fromkeys(metrics["experiment"])))
    out = {}
    for (model, test), rows in part.groupby(["model", "test"], sort=False):
        out[(model, test)] = paired_difference(rows, "group", "0", "1", list(values))
    return pd.concat(out)


# ----------------------------------------------------------------------------- one seed


def make_study(settings: GeneralisationSettings, seed: int) -> fl.Federation:
    """One seed's cohort, split into the three sites of :func:`study_sites`.

    Parameters
    ----------
    settings : GeneralisationSettings
        The study's settings.
    seed : int
        Seed of the cohort and of the sites.

    Returns
    -------
    Federation
    """
    cohort = simulate.generate(settings.simulation(seed), progress=False)
    return fl.make_sites(
        cohort, study_sites(settings.n_train, settings.n_test), seed=seed
    )


def test_sets(
    federation: fl.Federation, settings: GeneralisationSettings, seed: int
) -> dict[str, Any]:
    """Named test cohorts: the trained sites, the held-out site and its re-renderings.

    Parameters
    ----------
    federation : Federation
        The study's sites (:func:`make_study`).
    settings : GeneralisationSettings
        The study's settings (the field-of-view change).
    seed : int
        Seed of the scanner noise.

    Returns
    -------
    dict of str to Cohort
        ``site-A``, ``site-B``, ``site-C``, ``site-C`` rendered by the reference
        scanner, by each of :data:`UNSEEN_SCANNERS`, and with the field of view
        changed.
    """
    held = site_test_data(federation, HELD_OUT)
    sets = {site: site_test_data(federation, site) for site in TRAIN_SITES}
    sets[HELD_OUT] = held
    sets[f"{HELD_OUT} on the reference scanner"] = federation.rescan(
        held, "reference", seed=seed
    )
    for name, scanner in UNSEEN_SCANNERS.items():
        sets[f"{HELD_OUT} on the {name} scanner"] = federation.rescan(
            held, scanner, seed=seed
        )
    zoomed = federation.rescan(held, "reference", seed=seed)
    zoomed.images = hm.zoom(zoomed.images, settings.zoom)
    sets[f"{HELD_OUT}, field of view x{settings.zoom:g}"] = zoomed
    return sets


@step
def seed_record(settings: GeneralisationSettings, seed: int) -> dict[str, Any]:
    """Every experiment of the study for one seed, as plain lists and numbers.

    Parameters
    ----------
    settings : GeneralisationSettings
        The study's settings.
    seed : int
        Seed of the cohort, the sites and the models (>= 0).

    Returns
    -------
    dict
        ``rows``, ``flips``, ``swaps`` (lists of row dictionaries), ``scores``
        (per-subject scores of the calibration tests, :data:`CALIBRATION_TESTS`)
        and ``seconds`` (compute time). The function :func:`run_seed` turns them
        into tables.

    Raises
    ------
    ValueError
        For a negative seed.
    """
    seed = check_seed(seed)
    start = time.perf_counter()
    config = settings.train_config()
    federation = make_study(settings, seed)
    cohort = federation.cohort
    tests = test_sets(federation, settings, seed)
    rows: list[dict[str, Any]] = []
    scores_out: dict[str, Any] = {}

    # 1 and 2: unseen sites and scanners, with and without harmonisation
    pooled = site_training_data(federation, TRAIN_SITES)
    reference = hm.reference_landmarks(pooled.images)
    main = None
    for method in hm.METHODS:
        model = fit_on_sites(
            federation,
            TRAIN_SITES,
            config,
            seed=seed,
            method=method,
            reference=reference,
        )
        main = model if method == "none" else main
        scored = {
            name: (
                test.label,
                predict(model, hm.harmonise(test.images, method, reference)),
                test.bias_group,
            )
            for name, test in tests.items()
        }
        rows += _rows("harmonisation", method, scored)
        if method == "none":
            for name in CALIBRATION_TESTS:
                y, sc, g = scored[name]
                scores_out[name] = {
                    "label": y.tolist(),
                    "bias_group": g.tolist(),
                    "score": sc.tolist(),
                }

    # leave one site out (holding out site-C is the main model above)
    for held in SITE_SCANNERS:
        train_sites = [s for s in SITE_SCANNERS if s != held]
        model = (
            main
            if held == HELD_OUT
            else fit_on_sites(federation, train_sites, config, seed=seed)
        )
        scored = {}
        for site in SITE_SCANNERS:
            test = site_test_data(federation, site)
            role = "held out" if site == held else "trained on"
            scored[f"{site} ({role})"] = (
                test.label,
                predict(model, test),
                test.bias_group,
            )
        rows += _rows("leave one site out", f"without {held}", scored)

    # 3: shifted bias at deployment, with the counterfactual twins
    base = settings.simulation(seed)
    flips: list[dict[str, Any]] = []
    scored = {}
    for shift in ("same", "none", "reversed"):
        prevalence = shifted_prevalence(base.bias_prevalence, shift)
        cfg = base.replace(
            n_subjects=settings.n_shift,
            seed=int(base.seed) + 100_003,
            bias_prevalence=prevalence,
        )
        fresh = simulate.generate(cfg, progress=False)
        sc, tw = predict(main, fresh), predict(main, fresh.twins)
        scored[shift] = (fresh.label, sc, fresh.bias_group)
        cells = np.char.add(
            np.where(fresh.label == 1, "disease", "control"),
            np.where(fresh.bias_group == 1, ", bias group", ", no bias"),
        )
        table = counterfactual_flip_rate(sc, tw, groups=cells)
        for cell, row in table.iterrows():
            flips.append({"shift": shift, "cell": str(cell), **row.to_dict()})
    rows += _rows("shifted bias", "none", scored)

    # 4: when more data hurts, and balanced sampling by site x label
    more = fl.make_sites(
        cohort,
        more_data_sites(
            settings.n_train,
            settings.n_test,
            settings.more_data_prevalence,
            settings.more_data_scanner,
        ),
        seed=seed,
    )
    variants = {
        "site-A only": (["site-A"], "none"),
        "site-A + site-E": (["site-A", "site-E"], "none"),
        "site-A + site-E, balanced site x label": (
            ["site-A", "site-E"],
            "group_balanced",
        ),
    }
    swaps: list[dict[str, Any]] = []
    for name, (sites, mitigation) in variants.items():
        model = fit_on_sites(
            more, sites, config, seed=seed, group="site", mitigation=mitigation
        )
        scored = {}
        for site in ("site-A", "site-E"):
            test = site_test_data(more, site)
            scored[site] = (test.label, predict(model, test), test.bias_group)
        rows += _rows("more data", name, scored)
        # the scanner's counterfactual: site-A's subjects through site-E's scanner
        own = site_test_data(more, "site-A")
        other = more.rescan(own, settings.more_data_scanner, seed=seed)
        table = counterfactual_flip_rate(
            predict(model, other),
            scored["site-A"][1],
            groups=np.where(own.label == 1, "disease", "control"),
        )
        for cell, row in table.iterrows():
            swaps.append({"model": name, "cell": str(cell), **row.to_dict()})
    return plain(
        {
            "rows": rows,
            "flips": flips,
            "swaps": swaps,
            "scores": scores_out,
            "seconds": time.perf_counter() - start,
        }
    )


def run_seed(
    settings: GeneralisationSettings,
    seed: int,
    *,
    cache: ResultCache | None = None,
    refresh: bool = False,
) -> dict[str, Any]:
    """Run (or read from the cache) every experiment of the study for one seed.

    Parameters
    ----------
    settings : GeneralisationSettings
        The study's settings.
    seed : int
        Seed of the cohort, the sites and the models (>= 0).
    cache : ResultCache, optional
        Default: :class:`faimi_tutorial.experiments.runner.ResultCache` in its
        default folder (:func:`seed_record` is the cached step).
    refresh : bool, default False
        Recompute even when cached.

    Returns
    -------
    dict
        ``metrics`` (one row per experiment, model, test set and group: ``n``,
        ``AUROC``, ``TPR``, ``FPR``, ``ECE``), ``flips`` (counterfactual flip
        table per shift and label x bias-group cell), ``swaps`` (the more-data
        models' decisions on ``site-A``'s test subjects rendered by ``site-E``'s
        scanner against their own, per label), ``scores`` (per-subject
        scores of :data:`CALIBRATION_TESTS`, for reliability curves), ``seconds``
        and ``cached``.
    """
    seed = int(check_seed(seed))
    hit = not refresh and stored(seed_record, settings, seed, cache=cache)
    record = seed_record(settings, seed, cache=cache, refresh=refresh)
    metrics = pd.DataFrame(record["rows"]).assign(seed=int(seed))
    flips = pd.DataFrame(record["flips"]).assign(seed=int(seed))
    swaps = pd.DataFrame(record["swaps"]).assign(seed=int(seed))
    scores = {
        name: pd.DataFrame(v).assign(seed=int(seed))
        for name, v in record["scores"].items()
    }
    return {
        "metrics": metrics,
        "flips": flips,
        "swaps": swaps,
        "scores": scores,
        "seconds": float(record["seconds"]),
        "cached": bool(hit),
    }


def collect(
    settings: GeneralisationSettings,
    seeds: Sequence[int],
    *,
    cache: ResultCache | None = None,
) -> dict[str, Any]:
    """:func:`run_seed` for several seeds, tables concatenated.

    Parameters
    ----------
    settings : GeneralisationSettings
        The study's settings.
    seeds : sequence of int
        Seeds (at least one).
    cache : ResultCache, optional
        The cache.

    Returns
    -------
    dict
        ``metrics``, ``flips`` and ``swaps`` (with a ``seed`` column), ``scores``
        (dict of test-set name to a table of every seed's subjects) and
        ``seconds`` (total compute time of the runs, cached ones count 0).
    """
    seeds = list(seeds)
    if not seeds:
        _fail("seeds", seeds, "at least one seed")
    runs = [run_seed(settings, s, cache=cache) for s in seeds]
    names = runs[0]["scores"].keys()
    return {
        "metrics": pd.concat([r["metrics"] for r in runs], ignore_index=True),
        "flips": pd.concat([r["flips"] for r in runs], ignore_index=True),
        "swaps": pd.concat([r["swaps"] for r in runs], ignore_index=True),
        "scores": {
            n: pd.concat([r["scores"][n] for r in runs], ignore_index=True)
            for n in names
        },
        "seconds": float(sum(0.0 if r["cached"] else r["seconds"] for r in runs)),
    }
