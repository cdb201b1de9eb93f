"""Training on labels other than the truth: the runs of the labels-and-metrics chapter.

:func:`two_site_cohort` simulates a cohort from two sites whose scanners differ in
noise, with a demographic group that is visible in the images (a local contrast
change in half of each class) but says nothing about disease. :func:`fit_scores`
trains the package's one training loop on any labelling of its training and
validation splits and returns the model's scores on validation, test and the
test subjects' counterfactual twins, through the package's cached runner
(:mod:`faimi_tutorial.experiments.runner`: the key holds the images, labels,
settings, seed and the package's source digest).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.simulate import Cohort, SimulationConfig, generate
from ..training import TrainConfig, fit, predict
from ..validation import check_int
from .representation import concat_cohorts
from .runner import ResultCache, step

__all__ = ["SITE_COLUMN", "two_site_cohort", "fit_scores"]

#: Metadata column naming each subject's site.
SITE_COLUMN: str = "site"


def two_site_cohort(
    n_per_site: int = 1000,
    noise_sd: Sequence[float] = (0.02, 0.08),
    *,
    seed: int = 0,
    twins: bool = True,
    **overrides: Any,
) -> Cohort:
    """Two sites of 2D subjects; the group marker is visible but unrelated to disease.

    Each site is simulated from the tutorial preset in 2D with the bias effect
    present in half of the diseased and half of the controls
    (``bias_prevalence=(0.5, 0.5)``): ``bias_group`` is then a demographic group
    that a network can see, like sex on a chest X-ray, with the same prevalence of
    disease in both groups. The sites differ in their scanner's noise.

    Parameters
    ----------
    n_per_site : int, default 1000
        Subjects per site (>= 40).
    noise_sd : sequence of two float, default (0.02, 0.08)
        Image noise of site ``S1`` and site ``S2``.
    seed : int, default 0
        Seed of site S1 (S2 uses ``seed + 1000``: other people).
    twins : bool, default True
        Also generate the counterfactual twins (the same subjects without the
        group's marker).
    **overrides
        Other :class:`~faimi_tutorial.data.simulate.SimulationConfig` fields.

    Returns
    -------
    Cohort
        Both sites, with a ``site`` column (``"S1"``, ``"S2"``).

    Raises
    ------
    ValueError
        For a bad size, noise or simulator field (the message names it).
    """
    n_per_site = check_int("n_per_site", n_per_site, 40)
    noise = tuple(noise_sd)
    if len(noise) != 2:
        raise ValueError(f"noise_sd={noise_sd!r} must hold two values (one per site)")
    settings = {
        "dims": 2,
        "bias_prevalence": (0.5, 0.5),
        "bias_kind": "intensity",
        "intensity_factor": 1.3,
        "disease_effect_sd": 3.0,
        "split": (0.5, 0.2, 0.3),
        **overrides,
    }
    base = SimulationConfig.preset(
        "tutorial", n_subjects=n_per_site, seed=int(seed), noise_sd=noise[0], **settings
    )
    sites = {"S1": base, "S2": base.replace(seed=int(seed) + 1000, noise_sd=noise[1])}
    return concat_cohorts(
        {k: generate(c, progress=False, twins=twins) for k, c in sites.items()},
        column=SITE_COLUMN,
    )


def _split_labels(cohort: Cohort, name: str, labels: Any) -> np.ndarray:
    n = int((cohort.meta["split"].astype(str) == name).sum())
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(
            f"{name}_labels has shape {y.shape}; the {name} split has {n} subjects"
        )
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise ValueError(f"{name}_labels must contain only 0 and 1")
    return y.astype(np.int64)


@step
def _train_and_score(
    cohort: Cohort,
    y_train: np.ndarray,
    y_val: np.ndarray,
    config: TrainConfig,
    seed: int,
) -> dict[str, Any]:
    """One training run of :func:`fit_scores` (validated labels): scores as lists."""
    train, val, test = cohort.train, cohort.val, cohort.test
    result = fit(
        (train.images, y_train, train.bias_group),
        config,
        val=(val.images, y_val, val.bias_group),
        seed=int(seed),
        progress=False,
    )
    out = {
        "val": predict(result, val).tolist(),
        "test": predict(result, test).tolist(),
        "best_epoch": int(result.best_epoch),
    }
    if test.twins is not None:
        out["twins"] = predict(result, test.with_twins()).tolist()
    return out


def fit_scores(
    cohort: Cohort,
    train_labels: Any,
    val_labels: Any,
    config: TrainConfig,
    *,
    seed: int = 0,
    cache: ResultCache | None = None,
) -> dict[str, np.ndarray]:
    """Train on the given labels of the train and val splits; score val, test and twins.

    Validation uses the given validation labels too: whoever labelled the
    training data usually labelled the validation data, so model selection sees
    the same errors.

    Parameters
    ----------
    cohort : Cohort
        A cohort with train, val and test splits (twins optional).
    train_labels, val_labels : array-like of {0, 1}
        One label per subject of the train and of the val split, in cohort order.
    config : TrainConfig
        Training settings.
    seed : int, default 0
        Seed of the training.
    cache : ResultCache, optional
        Where finished runs are kept (default: ``$FAIMI_CACHE_DIR`` or the user's
        cache folder).

    Returns
    -------
    dict of str to numpy.ndarray
        ``"val"``, ``"test"`` and (with twins) ``"twins"``: scores in [0, 1].

    Raises
    ------
    ValueError
        For labels of the wrong length or values.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig (got {type(config).__name__})")
    y_train = _split_labels(cohort, "train", train_labels)
    y_val = _split_labels(cohort, "val", val_labels)
    record = _train_and_score(cohort, y_train, y_val, config, int(seed), cache=cache)
    return {
        k: np.asarray(record[k], dtype=float)
        for k in ("val", "test", "twins")
        if k in record
    }
