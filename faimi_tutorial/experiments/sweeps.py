"""Experiments and sweeps, cached on disk by configuration hash.

One *experiment* simulates a cohort, trains a model on it and evaluates the
model on the held-out test split: per-group TPR/FPR/accuracy/AUROC at one
global threshold, the gaps between the bias group and the others, the AUROC on
the bias-free counterfactual twins, and the counterfactual flip rate. A *sweep*
runs experiments over the values of one setting and several seeds.

Every finished experiment is written to a small JSON file named by the hash of
its full configuration (simulation and training settings, seeds, threshold,
package version), so re-running a chapter reuses finished runs and changing
any setting runs afresh. The cache lives in ``$FAIMI_CACHE_DIR`` when set,
else in ``~/.cache/faimi-tutorial/sweeps``.

>>> import faimi_tutorial as ft
>>> exp = ft.sweeps.Experiment(
...     preset="tiny", simulation={"bias_prevalence": (0.7, 0.3)})
>>> len(ft.sweeps.config_hash(exp.to_dict()))
16
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import presets

# noqa: F401 (public here too)
from ..fairness.metrics import GROUP_METRICS, auroc, signed_gaps
from ..training.loop import TrainConfig, as_data, fit, predict
from .._version import __version__
from ..data import simulate
from ..fairness.metrics import (
    aggregate_seeds,
    counterfactual_flip_rate,
    interval_verdict,
)
from ..fairness.postprocess import fit_threshold_optimizer
from ..validation import check_choice, check_integer, check_probability, config_error
from .runner import (  # noqa: F401 (the cache is the runner's; public here too)
    CACHE_FORMAT,
    ResultCache,
    cached,
    config_hash,
    default_cache_dir,
    factory_key,
    plain as _plain,
    source_digest,
)


#: Settings of the shortcut-learning chapter and of ``scripts/shortcut_findings.py``:
#: :data:`faimi_tutorial.presets.SHORTCUT` (defined with the other presets).
SHORTCUT_SETTINGS: dict[str, dict[str, Any]] = presets.SHORTCUT


# --------------------------------------------------------------------- experiments


@dataclass
class Experiment:
    """One run: simulate a cohort, train on it, evaluate on its test split.

    Parameters
    ----------
    preset : str
        Preset of the simulator and of training (``tiny``, ``tutorial``, ``paper``).
    simulation : dict
        Overrides of :class:`faimi_tutorial.data.simulate.SimulationConfig` (for
        example ``{"bias_prevalence": (0.7, 0.3)}``).
    training : dict
        Overrides of :class:`faimi_tutorial.training.loop.TrainConfig` (for example
        ``{"mitigation": "reweighing"}``).
    seed : int
        Seed of training; also of the simulated cohort unless ``data_seed`` is set.
    data_seed : int or None
        Seed of the simulated cohort (default: ``seed``).
    threshold : float
        Global decision threshold of the evaluation, in (0, 1).
    """

    preset: str = "tutorial"
    simulation: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    data_seed: int | None = None
    threshold: float = 0.5

    def __post_init__(self) -> None:
        check_choice(self, "preset", self.preset, presets.PRESET_NAMES)
        # checked, not converted: the fields enter the cache key as given
        check_integer(self, "seed", self.seed, 0)
        check_integer(self, "data_seed", self.data_seed, 0, optional=True)
        check_probability(
            self, "threshold", self.threshold, low_open=True, high_open=True
        )
        for name in ("simulation", "training"):
            if not isinstance(getattr(self, name), Mapping):
                raise config_error(
                    self, name, getattr(self, name), "a dict of field overrides"
                )
        self.simulation = dict(self.simulation)
        self.training = dict(self.training)
        self.train_config()  # validates the training overrides

    @property
    def cohort_seed(self) -> int:
        """Seed of the simulated cohort."""
        return int(self.seed if self.data_seed is None else self.data_seed)

    def train_config(self) -> TrainConfig:
        """The full training configuration."""
        dims = self.simulation.get("dims", presets.SIMULATION[self.preset].get("dims"))
        return TrainConfig.preset(self.preset, dims=dims, **self.training)

    def to_dict(self) -> dict[str, Any]:
        """Plain-type description (the cache key is built from it)."""
        return _plain(self)

    def settings_table(self, full: bool = False) -> pd.DataFrame:
        """The experiment's settings as a table, one row a setting.

        Parameters
        ----------
        full : bool
            If True, every field of the simulator's and of training's configuration;
            otherwise the experiment's own fields and the settings it overrides.

        Returns
        -------
        pandas.DataFrame
            Columns ``part`` (``experiment``, ``simulation``, ``training``),
            ``setting``, ``value`` and ``source`` (``set here`` or the preset's name).
        """
        rows = [
            ("experiment", name, getattr(self, name), "set here")
            for name in ("preset", "seed", "data_seed", "threshold")
        ]
        parts = {
            "simulation": (
                _simulation_config(self.preset, self.simulation, self.cohort_seed),
                self.simulation,
            ),
            "training": (self.train_config(), self.training),
        }
        for part, (config, overrides) in parts.items():
            for f in dataclasses.fields(config):
                if f.name in overrides or (full and f.name not in ("preset", "seed")):
                    source = "set here" if f.name in overrides else self.preset
                    value = getattr(config, f.name)
                    rows.append((part, f.name, value, source))
        table = pd.DataFrame(rows, columns=["part", "setting", "value", "source"])
        table["value"] = table["value"].map(_setting_text)
        return table

    def replace(self, **changes: Any) -> Experiment:
        """A copy with fields changed; ``simulation``/``training`` dicts are merged."""
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("simulation", "training"):
            if name in changes:
                settings[name] = {**settings[name], **changes.pop(name)}
        settings.update(changes)
        return Experiment(**settings)


def _setting_text(value: Any) -> str:
    """A setting as table text (floats in their shortest form)."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


#: A function ``(preset, overrides, seed) -> cohort`` with ``.train``, ``.val``,
#: ``.test`` splits (``.test.twins`` optional), and a hashable description.
CohortFactory = Callable[[str, Mapping[str, Any], int], Any]


def _simulation_config(preset: str, overrides: Mapping[str, Any], seed: int) -> Any:
    """The simulator configuration of an experiment: the preset, its overrides, the
    cohort seed.

    One function for the cohort and its cache key, so the key always describes the
    cohort.
    """

    return simulate.SimulationConfig.preset(
        preset, **{**dict(overrides), "seed": int(seed)}
    )


def simulate_cohort(preset: str, overrides: Mapping[str, Any], seed: int) -> Any:
    """Default cohort factory: :func:`faimi_tutorial.data.simulate.generate`.

    Parameters
    ----------
    preset : str
        Simulator preset.
    overrides : mapping
        Fields of the simulation configuration.
    seed : int
        Seed of the cohort.

    Returns
    -------
    Cohort
        The simulated cohort (with train/val/test splits and twins).
    """

    return simulate.generate(
        _simulation_config(preset, overrides, seed), progress=False
    )


def simulation_settings(
    preset: str, overrides: Mapping[str, Any], seed: int
) -> dict[str, Any]:
    """The full simulator configuration of an experiment (for the cache key).

    Parameters
    ----------
    preset : str
        Simulator preset.
    overrides : mapping
        Fields of the simulation configuration.
    seed : int
        Seed of the cohort.

    Returns
    -------
    dict
        Every field of the resolved configuration, in plain types.
    """
    return _plain(_simulation_config(preset, overrides, seed))


_COHORTS: OrderedDict[str, Any] = OrderedDict()
_COHORT_SLOTS = 2


def _cohort(
    factory: CohortFactory, preset: str, overrides: Mapping[str, Any], seed: int
) -> Any:
    """Generate a cohort, keeping the last few in memory (sweeps reuse them)."""
    key = config_hash([factory_key(factory), preset, overrides, seed])
    if key in _COHORTS:
        _COHORTS.move_to_end(key)
        return _COHORTS[key]
    cohort = factory(preset, overrides, seed)
    _COHORTS[key] = cohort
    while len(_COHORTS) > _COHORT_SLOTS:
        _COHORTS.popitem(last=False)
    return cohort


def twin_gaps(
    record: Mapping[str, Any] | str,
    cache: ResultCache | None = None,
    *,
    threshold: float = 0.5,
    bias_group: int = 1,
) -> dict[str, float]:
    """The same model's signed gaps on the counterfactual twins of its test subjects.

    The twins are the test subjects with the bias effect removed, so
    ``TPR_gap - TPR_gap_twin`` (paired, same subjects and model) is the part of the
    gap that the bias effect causes; the rest is how the two groups' test subjects
    differ otherwise.

    Parameters
    ----------
    record : mapping or str
        A record of :func:`run_experiment` (or its ``key``) whose scores are cached.
    cache : ResultCache, optional
        The cache the experiment used.
    threshold : float, default 0.5
        The decision threshold of the record.
    bias_group : int, default 1
        Code of the bias group.

    Returns
    -------
    dict
        ``TPR_gap_twin``, ``FPR_gap_twin``, ``accuracy_gap_twin``, ``AUROC_gap_twin``.

    Raises
    ------
    ValueError
        If no scores, or no twin scores, are stored for the record.
    """
    test = load_scores(record, cache)["test"]
    if "twin_score" not in test:
        raise ValueError("the experiment's cohort had no counterfactual twins")
    gaps = signed_gaps(
        test["label"],
        test["twin_score"],
        test["bias_group"],
        threshold=threshold,
        bias_group=bias_group,
    )
    return {
        f"{m}_gap_twin": gaps[f"{m}_gap"] for m in ("TPR", "FPR", "accuracy", "AUROC")
    }


def evaluate(
    model: Any,
    test: Any,
    twins: Any | None = None,
    *,
    threshold: float = 0.5,
    bias_group: int = 1,
) -> dict[str, float]:
    """Subgroup metrics, gaps and the counterfactual test of a model on test data.

    Parameters
    ----------
    model : FitResult or torch.nn.Module
        A trained model.
    test : cohort-like or ArrayData
        Test images with ``label`` and ``bias_group``.
    twins : images, optional
        The test subjects' counterfactual twins (bias removed), same order;
        default ``test.twins`` when present.
    threshold : float, default 0.5
        One global decision threshold.
    bias_group : int, default 1
        Code of the group that carries the bias feature.

    Returns
    -------
    dict
        ``accuracy``, ``AUROC`` (overall); ``<metric>_g<k>`` per group for
        :data:`~faimi_tutorial.fairness.metrics.GROUP_METRICS`; ``TPR_gap``,
        ``FPR_gap``,
        ``accuracy_gap``, ``AUROC_gap`` (bias group minus the others, signed, by
        :func:`~faimi_tutorial.fairness.metrics.signed_gaps`); ``twin_AUROC``,
        ``flip_rate``, ``mean_abs_change``, ``mean_change`` and
        ``flip_rate_bias_group`` when twins are available.
    """

    data = as_data(test)
    scores = predict(model, data)
    out = signed_gaps(
        data.label,
        scores,
        data.bias_group,
        threshold=threshold,
        bias_group=bias_group,
        per_group=True,
    )
    if twins is None:
        twins = getattr(test, "twins", None)
    if twins is not None:
        twin_scores = predict(model, twins)
        out["twin_AUROC"] = auroc(data.label, twin_scores)
        flips = counterfactual_flip_rate(
            scores, twin_scores, threshold=threshold, groups=data.bias_group
        )
        out["flip_rate"] = float(flips.loc["overall", "flip_rate"])
        out["mean_abs_change"] = float(flips.loc["overall", "mean_abs_change"])
        out["mean_change"] = float(flips.loc["overall", "mean_change"])
        if bias_group in flips.index:
            out["flip_rate_bias_group"] = float(flips.loc[bias_group, "flip_rate"])
            out["mean_abs_change_bias_group"] = float(
                flips.loc[bias_group, "mean_abs_change"]
            )
    return out


def run_experiment(
    experiment: Experiment,
    *,
    cache: ResultCache | None = None,
    refresh: bool = False,
    factory: CohortFactory | None = None,
    factory_settings: Callable[[str, Mapping[str, Any], int], Any] | None = None,
    device: str | None = None,
    return_model: bool = False,
) -> dict[str, Any] | tuple[dict[str, Any], Any, Any]:
    """Run (or fetch from the cache) one experiment.

    Parameters
    ----------
    experiment : Experiment
        What to run.
    cache : ResultCache, optional
        Default: :class:`ResultCache` in :func:`default_cache_dir`.
    refresh : bool, default False
        Run even when a cached record exists.
    factory : callable, optional
        ``(preset, overrides, seed) -> cohort``; default :func:`simulate_cohort`.
    factory_settings : callable, optional
        ``(preset, overrides, seed) -> description`` of the data for the cache key;
        default :func:`simulation_settings` (the full simulator configuration),
        or the overrides themselves for a custom factory.
    device : str, optional
        Training device (default automatic).
    return_model : bool, default False
        Also return the trained :class:`~faimi_tutorial.training.loop.FitResult` and
        the cohort (both kept in the cache beside the record).

    Returns
    -------
    dict or (dict, FitResult, cohort)
        A flat record: the experiment's settings, :func:`evaluate`'s metrics,
        ``best_epoch``, ``epochs_run``, ``train_seconds``, ``generate_seconds`` (near 0
        when
        the cohort came from the in-memory cache) and ``cached``.
    """

    factory = factory or simulate_cohort
    if factory_settings is None:
        factory_settings = (
            simulation_settings
            if factory is simulate_cohort
            else (
                lambda preset, overrides, seed: {
                    "overrides": _plain(overrides),
                    "seed": seed,
                }
            )
        )
    key_config = {
        "version": __version__,
        "source": source_digest(),
        "factory": factory_key(factory),
        "data": factory_settings(
            experiment.preset, experiment.simulation, experiment.cohort_seed
        ),
        "training": experiment.train_config().to_dict(),
        "seed": experiment.seed,
        "threshold": experiment.threshold,
    }
    trained: dict[str, Any] = {}
    cache_obj = cache if cache is not None else ResultCache()

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        cohort = _cohort(
            factory, experiment.preset, experiment.simulation, experiment.cohort_seed
        )
        generate_seconds = time.perf_counter() - start
        start = time.perf_counter()
        result = fit(
            cohort,
            experiment.train_config(),
            seed=experiment.seed,
            device=device,
            progress=False,
        )
        seconds = time.perf_counter() - start
        test = cohort.test
        record = evaluate(result, test, threshold=experiment.threshold)
        scores = {}
        for split in ("val", "test"):
            part = getattr(cohort, split)
            arrays = as_data(part)
            scores[split] = {
                "label": arrays.label.tolist(),
                "bias_group": arrays.bias_group.tolist(),
                "score": predict(result, arrays).tolist(),
            }
            twins = getattr(part, "twins", None)
            if twins is not None:
                scores[split]["twin_score"] = predict(result, twins).tolist()
        cache_obj.put(config_hash(key_config) + ".scores", scores, key_config)
        record.update(
            best_epoch=result.best_epoch,
            epochs_run=len(result.history),
            train_seconds=seconds,
            generate_seconds=generate_seconds,
        )
        trained["result"], trained["cohort"] = result, cohort
        return record

    key = config_hash(key_config)

    def valid(record: dict[str, Any]) -> bool:
        # a usable record has the overall metrics as numbers and well-formed scores
        numbers = all(
            isinstance(record.get(k), (int, float))
            and not isinstance(record.get(k), bool)
            for k in ("accuracy", "AUROC", "n_test")
        )
        return numbers and _valid_scores(cache_obj.get(f"{key}.scores", key_config))

    model_config = {"model_of": key_config}
    model_key = config_hash(model_config, length=24)
    if return_model and not refresh:
        stored, model_and_cohort = cache_obj.load(model_key, model_config)
        if stored:
            trained["result"], trained["cohort"] = model_and_cohort
    record = cached(
        key_config,
        compute,
        cache_obj,
        refresh=refresh or (return_model and not trained),
        require=[f"{key}.scores"],
        valid=valid,
    )
    if return_model and not record["cached"]:
        cache_obj.store(model_key, (trained["result"], trained["cohort"]), model_config)
    settings = {
        "preset": experiment.preset,
        "seed": experiment.seed,
        "data_seed": experiment.cohort_seed,
        "mitigation": experiment.train_config().mitigation,
        **{f"sim.{k}": setting_label(v) for k, v in experiment.simulation.items()},
        **{
            f"train.{k}": setting_label(v)
            for k, v in experiment.training.items()
            if k != "mitigation"
        },
        "key": config_hash(key_config),
    }
    record = {**settings, **record}
    if return_model:
        return record, trained["result"], trained["cohort"]
    return record


#: Test-time relations between bias group and label for :func:`run_with_shift`.
SHIFTS: tuple[str, ...] = ("same", "none", "reversed")


def shifted_prevalence(prevalence: Sequence[float], shift: str) -> tuple[float, float]:
    """The bias prevalence of a test set under a shift of the training relation.

    Parameters
    ----------
    prevalence : pair of float
        ``(P(bias | disease), P(bias | control))`` at training.
    shift : str
        ``"same"`` (as trained), ``"none"`` (the mean of the two, no association)
        or ``"reversed"`` (swapped).

    Returns
    -------
    tuple of float
        The test prevalence.
    """
    p_d, p_c = (float(v) for v in prevalence)
    if shift == "same":
        return p_d, p_c
    if shift == "none":
        return (p_d + p_c) / 2.0, (p_d + p_c) / 2.0
    if shift == "reversed":
        return p_c, p_d
    raise ValueError(f"shift={shift!r} is invalid; allowed: {', '.join(SHIFTS)}")


def run_with_shift(
    experiment: Experiment,
    *,
    n_test: int = 600,
    shifts: Sequence[str] = SHIFTS,
    cache: ResultCache | None = None,
) -> list[dict[str, Any]]:
    """Train once, then test on fresh cohorts whose bias-label relation is shifted.

    Each test cohort has ``n_test`` new subjects (its own seed, every split used
    for testing) with the bias prevalence of :func:`shifted_prevalence`; the
    model and everything else are the experiment's. Cached as one record.

    Parameters
    ----------
    experiment : Experiment
        The training experiment (simulated cohort).
    n_test : int, default 600
        Subjects per test cohort (>= 8).
    shifts : sequence of str
        Which shifts to test (see :data:`SHIFTS`).
    cache : ResultCache, optional
        Default: :class:`ResultCache` in :func:`default_cache_dir`.

    Returns
    -------
    list of dict
        One record per shift: the experiment's settings, ``shift``,
        ``test_prevalence`` and :func:`evaluate`'s metrics.
    """

    for shift in shifts:
        shifted_prevalence((0.5, 0.5), shift)  # validates the names
    if int(n_test) < 8:
        raise ValueError(f"n_test={n_test!r} is invalid; allowed: an integer >= 8")
    base = _simulation_config(
        experiment.preset, experiment.simulation, experiment.cohort_seed
    )
    key_config = {
        "version": __version__,
        "shift_of": experiment.to_dict(),
        "data": _plain(base),
        "n_test": int(n_test),
        "shifts": list(shifts),
    }

    def compute() -> dict[str, Any]:

        record, result, _ = run_experiment(experiment, cache=cache, return_model=True)
        out: dict[str, Any] = {"record": record}
        for shift in shifts:
            cfg = base.replace(
                n_subjects=int(n_test),
                seed=int(base.seed) + 100_003,
                bias_prevalence=shifted_prevalence(base.bias_prevalence, shift),
            )
            test = simulate.generate(cfg, progress=False)
            metrics = evaluate(result, test, threshold=experiment.threshold)
            out[shift] = {
                **metrics,
                "test_prevalence": setting_label(cfg.bias_prevalence),
            }
        return out

    stored = cached(key_config, compute, cache if cache is not None else ResultCache())
    rows = []
    for shift in shifts:
        rows.append(
            {
                **{
                    k: v
                    for k, v in stored["record"].items()
                    if k in ("preset", "seed", "data_seed", "mitigation", "key")
                    or "." in k
                },
                "shift": shift,
                **stored[shift],
            }
        )
    return rows


def load_scores(
    record: Mapping[str, Any] | str, cache: ResultCache | None = None
) -> dict[str, pd.DataFrame]:
    """Validation and test scores of a finished experiment, from the cache.

    Every experiment stores its model's scores beside its record, so that
    post-processing (for example a group-specific threshold) can be studied
    without training again.

    Parameters
    ----------
    record : mapping or str
        A record returned by :func:`run_experiment` (or its ``key``).
    cache : ResultCache, optional
        The cache the experiment used.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``{"val": ..., "test": ...}`` with columns ``label``, ``bias_group``,
        ``score`` (and ``twin_score`` where twins exist).

    Raises
    ------
    ValueError
        If no scores are stored for the record.
    """
    cache = cache if cache is not None else ResultCache()
    key = record if isinstance(record, str) else record["key"]
    stored = cache.get(f"{key}.scores")
    if stored is None:
        raise ValueError(
            f"no scores stored for experiment {key!r} in {cache.directory}"
        )
    if not _valid_scores(stored):
        raise ValueError(
            f"the scores stored for experiment {key!r} in {cache.directory} are "
            "malformed; run the experiment again with refresh=True"
        )
    return {split: pd.DataFrame(values) for split, values in stored.items()}


def _valid_scores(stored: Any) -> bool:
    """Stored scores: ``{"val"|"test": {"label", "bias_group", "score"[,
    "twin_score"]}}``,
    equal-length lists of numbers, scores in [0, 1]."""
    if not isinstance(stored, dict) or not {"val", "test"} <= set(stored):
        return False
    for part in stored.values():
        if not isinstance(part, dict) or not {"label", "bias_group", "score"} <= set(
            part
        ):
            return False
        lengths = set()
        for name, values in part.items():
            if not isinstance(values, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
            ):
                return False
            if name in ("score", "twin_score") and not all(
                0.0 <= v <= 1.0 for v in values
            ):
                return False
            lengths.add(len(values))
        if len(lengths) != 1:
            return False
    return True


def setting_label(value: Any) -> Any:
    """The label :func:`sweep` gives a setting's value in its ``value`` column.

    A chapter that writes a setting once, as a constant, derives its table labels,
    filters and titles from it with this function, so they cannot drift apart.

    Parameters
    ----------
    value : Any
        A setting's value, for example a bias prevalence ``(0.7, 0.3)``.

    Returns
    -------
    Any
        Tuples of shares in [0, 1] as percentages joined by ``/`` (``(0.7, 0.3)``
        gives ``"70/30"``), other tuples of numbers joined by ``/``, plain values
        unchanged and anything else as its ``str``.

    Examples
    --------
    >>> setting_label((0.7, 0.3))
    '70/30'
    >>> setting_label("groupdro")
    'groupdro'
    """
    if isinstance(value, (tuple, list)) and all(
        isinstance(v, (int, float, np.number)) for v in value
    ):
        if all(0 <= float(v) <= 1 for v in value):
            return "/".join(f"{100 * float(v):g}" for v in value)
        return "/".join(f"{float(v):g}" for v in value)
    return (
        value
        if isinstance(value, (int, float, str, bool)) or value is None
        else str(value)
    )


def run_all(
    experiments: Iterable[Experiment],
    *,
    progress: bool = True,
    **kwargs: Any,
) -> pd.DataFrame:
    """Run (or fetch) many experiments; one row per experiment.

    Experiments are run in the order given; ordering them so that runs sharing a
    cohort are adjacent lets the in-memory cohort cache skip regeneration.

    Parameters
    ----------
    experiments : iterable of Experiment
        The runs.
    progress : bool, default True
        Show a progress bar over runs.
    **kwargs
        Passed to :func:`run_experiment`.

    Returns
    -------
    pandas.DataFrame
        The records.
    """
    from tqdm.auto import tqdm

    experiments = list(experiments)
    rows = [
        run_experiment(e, **kwargs)
        for e in tqdm(
            experiments, desc="experiments", disable=not progress, leave=False
        )
    ]
    return pd.DataFrame(rows)


def sweep(
    base: Experiment,
    parameter: str,
    values: Sequence[Any],
    seeds: Sequence[int] = (0, 1, 2),
    *,
    progress: bool = True,
    **kwargs: Any,
) -> pd.DataFrame:
    """Run ``base`` for every value of one setting and every seed.

    Parameters
    ----------
    base : Experiment
        The settings shared by all runs.
    parameter : str
        ``"simulation.<field>"`` or ``"training.<field>"``; a bare field name is
        looked up in the training settings first, then taken as a simulation field.
    values : sequence
        Values of the setting.
    seeds : sequence of int, default (0, 1, 2)
        Seeds; each seed gives a fresh cohort and a fresh model.
    progress : bool, default True
        Show a progress bar.
    **kwargs
        Passed to :func:`run_experiment`.

    Returns
    -------
    pandas.DataFrame
        One row per (value, seed), with a ``value`` column (table-friendly label)
        and a ``parameter`` column.
    """
    if not values:
        raise ValueError("values=[] must hold at least one value")
    if not seeds:
        raise ValueError("seeds=[] must hold at least one seed")
    section, _, name = parameter.rpartition(".")
    if not section:
        section = (
            "training"
            if name in {f.name for f in dataclasses.fields(TrainConfig)}
            else "simulation"
        )
    if section not in ("simulation", "training"):
        raise ValueError(
            f"parameter={parameter!r} must be 'simulation.<field>' or "
            "'training.<field>'"
        )
    runs = []
    for seed in seeds:
        for value in values:
            runs.append(base.replace(seed=int(seed), **{section: {name: value}}))
    table = run_all(runs, progress=progress, **kwargs)
    table.insert(0, "value", [setting_label(v) for _ in seeds for v in values])
    table.insert(0, "parameter", name)
    order = {(setting_label(v)): i for i, v in enumerate(values)}
    table["_order"] = table["value"].map(order)
    return (
        table.sort_values(["_order", "seed"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def summarise(
    table: pd.DataFrame,
    by: str | Sequence[str] = "value",
    values: Sequence[str] = ("TPR_gap", "FPR_gap", "accuracy", "AUROC"),
) -> pd.DataFrame:
    """Mean and 95 % interval across seeds
    (:func:`faimi_tutorial.fairness.metrics.aggregate_seeds`).

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`sweep` or :func:`run_all`.
    by : str or sequence of str, default "value"
        Columns identifying a setting.
    values : sequence of str
        Columns to aggregate (missing ones are skipped).

    Returns
    -------
    pandas.DataFrame
        One row per setting, in the table's order of first appearance.
    """

    by = [by] if isinstance(by, str) else list(by)
    present = [v for v in values if v in table.columns]
    out = aggregate_seeds(table, by, present)
    first = (
        table.drop_duplicates(by)[by]
        .reset_index(drop=True)
        .reset_index()
        .rename(columns={"index": "_order"})
    )
    out = (
        out.merge(first, on=by, how="left").sort_values("_order").drop(columns="_order")
    )
    return out.reset_index(drop=True)


def format_summary(
    summary: pd.DataFrame,
    values: Sequence[str] | None = None,
    by: str | Sequence[str] = "value",
    digits: int = 3,
) -> pd.DataFrame:
    """Readable ``mean [low, high]`` strings from :func:`summarise`'s output.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`summarise` (columns ``<v>_mean``, ``<v>_low``, ``<v>_high``).
    values : sequence of str, optional
        Metrics to show (default: every metric in the summary).
    by : str or sequence of str, default "value"
        Setting columns, used as the index.
    digits : int, default 3
        Decimals.

    Returns
    -------
    pandas.DataFrame
        One row per setting, one column per metric (plus ``n_runs``).
    """
    by = [by] if isinstance(by, str) else list(by)
    if values is None:
        values = [c[: -len("_mean")] for c in summary.columns if c.endswith("_mean")]
    missing = [v for v in values if f"{v}_mean" not in summary.columns]
    if missing:
        raise ValueError(f"values={missing!r} are not in the summary")
    out = summary[by].copy()
    for v in values:
        out[v] = [
            f"{m:.{digits}f}"
            + (
                f" [{lo:.{digits}f}, {hi:.{digits}f}]"
                if np.isfinite(lo) and np.isfinite(hi)
                else ""
            )
            for m, lo, hi in zip(
                summary[f"{v}_mean"], summary[f"{v}_low"], summary[f"{v}_high"]
            )
        ]
    if "n_runs" in summary:
        out["n_runs"] = summary["n_runs"].to_numpy()
    return out.set_index(by)


def verdicts(
    summary: pd.DataFrame,
    metrics: Sequence[str],
    by: str | Sequence[str] = "value",
    null: float = 0.0,
) -> pd.DataFrame:
    """What each interval of a summary establishes (:func:`metrics.interval_verdict`).

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`summarise` (``<m>_mean``, ``<m>_low``, ``<m>_high``).
    metrics : sequence of str
        Metrics to judge.
    by : str or sequence of str, default "value"
        Setting columns.
    null : float, default 0.0
        The value of "no effect".

    Returns
    -------
    pandas.DataFrame
        One row per setting and metric: ``mean``, ``low``, ``high``, ``verdict``.
    """

    by = [by] if isinstance(by, str) else list(by)
    rows = []
    for _, row in summary.iterrows():
        for m in metrics:
            low, high = float(row[f"{m}_low"]), float(row[f"{m}_high"])
            rows.append(
                {
                    **{b: row[b] for b in by},
                    "metric": m,
                    "mean": float(row[f"{m}_mean"]),
                    "low": low,
                    "high": high,
                    "verdict": interval_verdict(low, high, null=null),
                }
            )
    return pd.DataFrame(rows).set_index(by + ["metric"])


def threshold_optimizer_runs(
    table: pd.DataFrame,
    *,
    cache: ResultCache | None = None,
    constraint: str = "equalized_odds",
    label: str = "threshold_optimizer",
) -> pd.DataFrame:
    """Post-process finished runs with fairlearn's ThresholdOptimizer.

    For every run in ``table`` the stored validation scores fit a group-specific
    decision rule (:func:`faimi_tutorial.fairness.postprocess.fit_threshold_optimizer`),
    which is then applied to the stored test scores: no training needed.

    Parameters
    ----------
    table : pandas.DataFrame
        Records of :func:`run_all`/:func:`sweep` (with their ``key`` and ``seed``).
    cache : ResultCache, optional
        The cache the runs used.
    constraint : str, default "equalized_odds"
        The fairness constraint of the rule.
    label : str, default "threshold_optimizer"
        Value of the ``mitigation`` column of the returned rows.

    Returns
    -------
    pandas.DataFrame
        One row per run: ``seed``, ``mitigation``, ``accuracy``, per-group
        ``TPR_g<k>``/``FPR_g<k>``/``accuracy_g<k>`` and ``TPR_gap``, ``FPR_gap``,
        ``accuracy_gap`` (:func:`~faimi_tutorial.fairness.metrics.signed_gaps`: bias
        group
        1 minus group 0), from the rule's decisions.
    """

    rows = []
    for _, run in table.iterrows():
        scores = load_scores(run["key"], cache)
        val, test = scores["val"], scores["test"]
        rule = fit_threshold_optimizer(
            val["label"], val["score"], val["bias_group"], constraint=constraint
        )
        decisions = rule.predict(
            test["score"], test["bias_group"], seed=int(run["seed"])
        )
        gaps = signed_gaps(
            test["label"], decisions.astype(float), test["bias_group"], per_group=True
        )
        row: dict[str, Any] = {
            "seed": int(run["seed"]),
            "mitigation": label,
            "accuracy": gaps["accuracy"],
        }
        for g in (0, 1):
            for m in ("TPR", "FPR", "accuracy"):
                row[f"{m}_g{g}"] = gaps.get(f"{m}_g{g}", float("nan"))
        for m in ("TPR", "FPR", "accuracy"):
            row[f"{m}_gap"] = gaps[f"{m}_gap"]
        rows.append(row)
    return pd.DataFrame(rows)
