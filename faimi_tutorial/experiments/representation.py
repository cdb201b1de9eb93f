"""Representativeness: who is in a cohort, by demographic subgroup.

One concept: the *composition* of a cohort by subgroup. The module

* simulates demographic subgroups whose disease presentation may differ (each subgroup
  from its own :class:`~faimi_tutorial.data.simulate.SimulationConfig`, concatenated
  into one
  cohort with a ``subgroup`` column), with identical presentation (same configuration,
  other seed) as the control condition;
* composes training sets with a chosen share of one subgroup at a fixed size, drawn from
  the training pool, while a test set stays fixed and balanced per subgroup (the design
  of Larrazabal et al., PNAS 2020), and runs that sweep over shares and seeds;
* audits a cohort (simulated, or a real ``participants.tsv``): composition tables,
  intersectional counts with a flag for cells too small to evaluate, and a checklist.

Example
-------
>>> configs = subgroup_configs(SimulationConfig.preset("tiny", dims=2), "other_region")
>>> cohort = simulate_subgroups(configs)
>>> test = fixed_test_set(cohort, n_per_group=40)
>>> train = compose_training_set(
...     cohort, CompositionConfig(share=0.25, n_train=200))
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..data.simulate import Cohort, SimulationConfig, generate
from ..fairness.metrics import aggregate_seeds, auroc
from ..training import loop as training
from ..validation import check_integer, check_probability, check_text, config_error
from .runner import step

__all__ = [
    "SUBGROUP_COLUMN",
    "PRESENTATIONS",
    "subgroup_configs",
    "concat_cohorts",
    "simulate_subgroups",
    "CompositionConfig",
    "fixed_test_set",
    "compose_training_set",
    "share_sweep",
    "summarise_sweep",
    "composition_table",
    "intersectional_counts",
    "ChecklistItem",
    "CHECKLIST",
    "checklist",
]

#: Name of the metadata column that holds the demographic subgroup.
SUBGROUP_COLUMN: str = "subgroup"

#: How subgroup B's disease presentation may differ from A's (see
#:func:`subgroup_configs`).
PRESENTATIONS: tuple[str, ...] = ("identical", "other_region", "weaker")

_GRID_FIELDS = ("dims", "shape", "spacing", "slice_z")


def _field_error(field: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{field}={value!r} is invalid; allowed: {allowed}")


# --------------------------------------------------------------------------------------
# simulating subgroups
# --------------------------------------------------------------------------------------


def subgroup_configs(
    base: SimulationConfig,
    presentation: str = "identical",
    *,
    groups: tuple[str, str] = ("A", "B"),
    other_region: Any = "left_insula",
    weaker_factor: float = 0.4,
    seed_offset: int = 1000,
) -> dict[str, SimulationConfig]:
    """Configurations of two subgroups, A (``base``) and B (A's, changed by
    ``presentation``).

    B always gets another seed (``base.seed + seed_offset``), so its subjects are new
    people; what else differs is set by ``presentation``:

    ``"identical"``
        nothing else: the disease looks the same in both groups (the control condition);
    ``"other_region"``
        B's disease effect lies in ``other_region`` instead of A's disease region;
    ``"weaker"``
        B's disease effect is ``weaker_factor`` times A's (``disease_effect_sd``, or
        ``disease_scale_mm`` when A's is given in mm).

    Parameters
    ----------
    base : SimulationConfig
        Subgroup A's configuration.
    presentation : str, default "identical"
        One of :data:`PRESENTATIONS`.
    groups : tuple of two str, default ("A", "B")
        Names of the two subgroups.
    other_region : str or anatomy.Region, default "left_insula"
        B's disease region for ``"other_region"`` (in 2D the slice must cut it).
    weaker_factor : float, default 0.4
        Factor in [0, 1) on B's disease displacement for ``"weaker"``.
    seed_offset : int, default 1000
        Added to ``base.seed`` for B (>= 1).

    Returns
    -------
    dict of str to SimulationConfig
        ``{groups[0]: base, groups[1]: B's configuration}``, on the same grid.

    Raises
    ------
    ValueError
        For an unknown ``presentation``, bad ``groups``, ``weaker_factor`` or
        ``seed_offset`` (the message names the field).
    """
    if presentation not in PRESENTATIONS:
        raise _field_error("presentation", presentation, ", ".join(PRESENTATIONS))
    if (
        len(groups) != 2
        or len(set(groups)) != 2
        or not all(isinstance(g, str) and g for g in groups)
    ):
        raise _field_error("groups", groups, "two distinct non-empty names")
    if not 0.0 <= float(weaker_factor) < 1.0:
        raise _field_error("weaker_factor", weaker_factor, "[0, 1)")
    if int(seed_offset) < 1:
        raise _field_error("seed_offset", seed_offset, "integer >= 1")
    changes: dict[str, Any] = {"seed": int(base.seed) + int(seed_offset)}
    if base.dims == 2:
        changes["slice_z"] = base.slice_z  # B's images on A's slice
    if presentation == "other_region":
        changes["disease_region"] = other_region
    elif presentation == "weaker":
        if base.disease_scale_mm is not None:  # an explicit displacement: scale it
            changes["disease_scale_mm"] = float(base.disease_scale_mm) * float(
                weaker_factor
            )
        else:  # else the effect in natural SDs
            changes["disease_effect_sd"] = float(base.disease_effect_sd) * float(
                weaker_factor
            )
    return {groups[0]: base, groups[1]: base.replace(**changes)}


def concat_cohorts(
    cohorts: Mapping[str, Cohort], column: str = SUBGROUP_COLUMN
) -> Cohort:
    """One cohort from several, with a column naming where each subject came from.

    Subject identifiers get the subgroup name as a prefix (``sub-0001`` of group ``B``
    becomes ``sub-B0001``), so they stay unique; every split of every part is kept.
    The result's ``config`` is the first part's; all parts' configurations are kept
    in ``meta.attrs["subgroup_configs"]``.

    Parameters
    ----------
    cohorts : mapping of str to Cohort
        Subgroup name to its cohort (at least one); all on the same grid.
    column : str, default "subgroup"
        Name of the new metadata column (must not exist yet).

    Returns
    -------
    Cohort
        Images, twins and metadata of all parts, in the mapping's order.

    Raises
    ------
    ValueError
        If there are no parts, image shapes differ, only some parts have twins,
        ``column`` exists already, or a name is not alphanumeric.
    """
    import torch

    if not cohorts:
        raise _field_error("cohorts", cohorts, "at least one subgroup")
    names = list(cohorts)
    for name in names:
        if not isinstance(name, str) or not name.isalnum():
            raise _field_error(
                "cohorts", name, "subgroup names that are alphanumeric strings"
            )
    parts = [cohorts[n] for n in names]
    shapes = {tuple(p.images.shape[1:]) for p in parts}
    if len(shapes) != 1:
        raise _field_error(
            "cohorts", sorted(shapes), "cohorts whose images share one shape"
        )
    configs = [p.config for p in parts]
    if all(c is not None for c in configs):
        for f in _GRID_FIELDS:
            values = {repr(getattr(c, f)) for c in configs}
            if len(values) != 1:
                raise _field_error(
                    "cohorts", f"{f} differs: {sorted(values)}", "cohorts on one grid"
                )
    has_twins = [p.twins is not None for p in parts]
    if any(has_twins) and not all(has_twins):
        raise _field_error(
            "cohorts",
            f"twins present in {sum(has_twins)} of {len(parts)}",
            "all parts with twins or none",
        )
    metas = []
    for name, part in zip(names, parts):
        if column in part.meta.columns:
            raise _field_error(
                "column", column, "a name that is not already a metadata column"
            )
        meta = part.meta.copy()
        meta.attrs = {}
        ids = (
            meta["subject_id"].astype(str)
            if "subject_id" in meta
            else pd.Series([f"sub-{i + 1:04d}" for i in range(len(meta))])
        )
        meta["subject_id"] = [
            s.replace("sub-", f"sub-{name}", 1)
            if s.startswith("sub-")
            else f"{name}-{s}"
            for s in ids
        ]
        meta.insert(1, column, name)
        metas.append(meta)
    meta = pd.concat(metas, ignore_index=True)
    meta[column] = pd.Categorical(meta[column], categories=names)
    if "split" in meta and not isinstance(meta["split"].dtype, pd.CategoricalDtype):
        meta["split"] = pd.Categorical(
            meta["split"].astype(str), categories=["train", "val", "test"]
        )
    meta.attrs["subgroup_configs"] = {n: c for n, c in zip(names, configs)}
    images = torch.cat([p.images for p in parts], 0)
    twins = torch.cat([p.twins for p in parts], 0) if all(has_twins) else None
    return Cohort(images=images, twins=twins, meta=meta, config=configs[0])


def simulate_subgroups(
    configs: Mapping[str, SimulationConfig],
    progress: bool = False,
    device: Any = None,
    twins: bool = False,
) -> Cohort:
    """Generate each subgroup from its own configuration and concatenate them.

    Parameters
    ----------
    configs : mapping of str to SimulationConfig
        Subgroup name to configuration (e.g. from :func:`subgroup_configs`).
    progress : bool, default False
        Show the simulator's progress bars.
    device : str or torch.device, optional
        Where to simulate (default: automatic).
    twins : bool, default False
        Also generate the counterfactual twins (not needed for representation studies).

    Returns
    -------
    Cohort
        All subgroups, with a ``subgroup`` column (see :func:`concat_cohorts`).
    """
    if not configs:
        raise _field_error("configs", configs, "at least one subgroup configuration")
    parts = {
        name: generate(cfg, progress=progress, device=device, twins=twins)
        for name, cfg in configs.items()
    }
    return concat_cohorts(parts)


# --------------------------------------------------------------------------------------
# composing training sets
# --------------------------------------------------------------------------------------


@dataclass
class CompositionConfig:
    """A training set of fixed size with a chosen share of one subgroup.

    Parameters
    ----------
    share : float
        Share of ``groups[1]`` (subgroup B) in the training and validation sets, in [0,
        1].
        The number of B subjects is ``round(share * n_train)``.
    n_train : int
        Training-set size (>= 2).
    n_val : int
        Validation-set size (>= 2), composed with the same share from the validation
        pool.
    groups : tuple of two str
        Subgroup names ``(A, B)``.
    column : str
        Metadata column holding the subgroup.
    seed : int
        Seed of the draw (>= 0). Draws are nested: with one seed, the B subjects at a
        small share are among those at a larger share (and likewise for A), so shares
        differ only by who is swapped in, not by a fresh random draw.
    """

    share: float = 0.5
    n_train: int = 200
    n_val: int = 60
    groups: tuple[str, str] = ("A", "B")
    column: str = SUBGROUP_COLUMN
    seed: int = 0

    def __post_init__(self) -> None:
        self.share = check_probability(self, "share", self.share)
        for name in ("n_train", "n_val"):
            setattr(self, name, check_integer(self, name, getattr(self, name), 2))
        try:
            groups = () if isinstance(self.groups, str) else tuple(self.groups)
        except TypeError:
            groups = ()
        if len(groups) != 2 or len(set(groups)) != 2:
            raise config_error(
                self, "groups", self.groups, "two distinct subgroup names"
            )
        self.groups = groups
        check_text(self, "column", self.column)
        self.seed = check_integer(self, "seed", self.seed, 0)

    def counts(self, n: int | None = None) -> tuple[int, int]:
        """Numbers of A and B subjects in a set of size ``n`` (default ``n_train``).

        Parameters
        ----------
        n : int, optional
            Set size.

        Returns
        -------
        tuple of int
            ``(n_A, n_B)`` with ``n_B = round(share * n)`` and ``n_A = n - n_B``.
        """
        n = self.n_train if n is None else int(n)
        n_b = int(round(self.share * n))
        return n - n_b, n_b


def _meta(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    meta = getattr(data, "meta", None)
    if not isinstance(meta, pd.DataFrame):
        raise _field_error(
            "data", type(data).__name__, "a Cohort or a metadata DataFrame"
        )
    return meta


def _require(meta: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in meta.columns]
    if missing:
        raise _field_error(
            "columns",
            missing,
            f"columns of the metadata ({', '.join(map(str, meta.columns))})",
        )


def _draw_balanced(
    rng: np.random.Generator,
    positions: np.ndarray,
    label: np.ndarray,
    k: int,
    what: str,
) -> np.ndarray:
    """``k`` positions, as label-balanced as the pool allows, in a nested order.

    The pool is put in a label-alternating random order, so that the first ``k`` of it
    are balanced and a smaller draw is a prefix of a larger one.
    """
    if k > len(positions):
        raise ValueError(
            f"{what}: asked for {k} subjects but the pool holds {len(positions)}"
        )
    by_label = [
        rng.permutation(positions[label[positions] == v])
        for v in np.unique(label[positions])
    ]
    order = [
        p for row in itertools.zip_longest(*by_label) for p in row if p is not None
    ]
    return np.asarray(order[:k], dtype=np.int64)


def fixed_test_set(
    cohort: Cohort,
    n_per_group: int | None = None,
    *,
    groups: Sequence[str] | None = None,
    column: str = SUBGROUP_COLUMN,
    split: str = "test",
    seed: int = 0,
) -> Cohort:
    """A test set balanced per subgroup (and per label within it), fixed by its seed.

    It depends only on the cohort's ``split`` pool, ``n_per_group`` and ``seed``, never
    on a training share, so every model of a share sweep is tested on the same subjects.

    Parameters
    ----------
    cohort : Cohort
        A cohort with ``column`` and ``split`` in its metadata.
    n_per_group : int, optional
        Subjects per subgroup (default: the smallest group's pool, so all groups are
        equal).
    groups : sequence of str, optional
        Subgroups to include (default: all).
    column : str, default "subgroup"
        Subgroup column.
    split : str, default "test"
        The pool to draw from.
    seed : int, default 0
        Seed of the draw.

    Returns
    -------
    Cohort
        ``n_per_group`` subjects of every subgroup, labels balanced within each.

    Raises
    ------
    ValueError
        If a pool is smaller than ``n_per_group`` or ``n_per_group < 2``.
    """
    meta = cohort.meta
    _require(meta, [column, "split", "label"])
    groups = (
        list(meta[column].astype(str).unique())
        if groups is None
        else [str(g) for g in groups]
    )
    pool = meta["split"].astype(str).to_numpy() == split
    sub = meta[column].astype(str).to_numpy()
    sizes = {g: int(np.sum(pool & (sub == g))) for g in groups}
    if n_per_group is None:
        n_per_group = min(sizes.values())
    if (
        isinstance(n_per_group, bool)
        or not isinstance(n_per_group, (int, np.integer))
        or n_per_group < 2
    ):
        raise _field_error("n_per_group", n_per_group, "an integer >= 2")
    label = meta["label"].to_numpy()
    picks = []
    for i, g in enumerate(groups):
        rng = np.random.default_rng([int(seed), 101, i])
        picks.append(
            np.sort(
                _draw_balanced(
                    rng,
                    np.flatnonzero(pool & (sub == g)),
                    label,
                    int(n_per_group),
                    f"n_per_group (group {g}, {split} pool)",
                )
            )
        )
    return cohort.subset(np.concatenate(picks))


def compose_training_set(
    cohort: Cohort, config: CompositionConfig | None = None, **overrides: Any
) -> Cohort:
    """Training and validation subjects with an exact share of subgroup B.

    ``round(share * n_train)`` subjects of B and the rest of A are drawn from the
    ``train`` pool, and the validation set likewise (``n_val``, same share) from the
    ``val`` pool; labels are balanced within each subgroup as far as the pool allows.
    The ``test`` split is never touched: pair the result with :func:`fixed_test_set`.

    Parameters
    ----------
    cohort : Cohort
        A cohort with a subgroup column and train/val splits (e.g. from
        :func:`simulate_subgroups`).
    config : CompositionConfig, optional
        Share, sizes, group names and seed (default: ``CompositionConfig()``).
    **overrides
        Fields of :class:`CompositionConfig` (e.g. ``share=0.25``).

    Returns
    -------
    Cohort
        ``n_train + n_val`` subjects with their ``split`` (``train``/``val``), ready for
        :func:`faimi_tutorial.training.loop.fit`.

    Raises
    ------
    ValueError
        For an invalid field (named), or a pool too small for the requested counts.
    """
    if config is None:
        config = CompositionConfig(**overrides)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    meta = cohort.meta
    _require(meta, [config.column, "split", "label"])
    sub = meta[config.column].astype(str).to_numpy()
    split = meta["split"].astype(str).to_numpy()
    label = meta["label"].to_numpy()
    for g in config.groups:
        if not np.any(sub == g):
            raise _field_error(
                "groups",
                config.groups,
                f"names found in column {config.column!r} "
                f"({', '.join(sorted(set(sub)))})",
            )
    picks = []
    for j, (part, n) in enumerate((("train", config.n_train), ("val", config.n_val))):
        counts = config.counts(n)
        for i, (g, k) in enumerate(zip(config.groups, counts)):
            # one permutation per (seed, part, group): independent of the share ->
            # nested draws
            rng = np.random.default_rng([config.seed, 211, j, i])
            pool = np.flatnonzero((split == part) & (sub == g))
            if k > len(pool):
                raise ValueError(
                    f"share={config.share:g} with n_{part}={n} needs {k} subjects of "
                    f"group {g} "
                    f"in the {part} pool, which holds {len(pool)}; lower n_{part} or "
                    "simulate more"
                )
            picks.append(_draw_balanced(rng, pool, label, len(pool), f"group {g}")[:k])
    return cohort.subset(np.concatenate(picks))


# --------------------------------------------------------------------------------------
# the share sweep (Larrazabal et al. design)
# --------------------------------------------------------------------------------------


@step
def share_sweep(
    cohort: Cohort,
    shares: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    seeds: Sequence[int] = (0, 1, 2),
    *,
    n_train: int = 200,
    n_val: int = 60,
    test: Cohort | None = None,
    train_config: Any = "tutorial",
    groups: tuple[str, str] = ("A", "B"),
    column: str = SUBGROUP_COLUMN,
    threshold: float = 0.5,
    condition: str | None = None,
    device: Any = None,
    **train_overrides: Any,
) -> pd.DataFrame:
    """Train one model per (share of B, seed) and evaluate it per subgroup on one test
    set.

    Parameters
    ----------
    cohort : Cohort
        Subgroup cohort (see :func:`simulate_subgroups`).
    shares : sequence of float, default (0, .25, .5, .75, 1)
        Shares of ``groups[1]`` in training (each in [0, 1]).
    seeds : sequence of int, default (0, 1, 2)
        One training per seed and share; the seed also draws the training set.
    n_train, n_val : int
        Fixed training and validation sizes.
    test : Cohort, optional
        The fixed test set (default: :func:`fixed_test_set` of ``cohort``).
    train_config : TrainConfig or str, default "tutorial"
        Settings for :func:`faimi_tutorial.training.loop.fit`.
    groups : tuple of two str, default ("A", "B")
        Subgroup names (A, B).
    column : str, default "subgroup"
        Subgroup column.
    threshold : float, default 0.5
        Global decision threshold for TPR/FPR.
    condition : str, optional
        A label copied into a ``condition`` column (e.g. ``"identical"``).
    device : str or torch.device, optional
        Training device (default: automatic).
    **train_overrides
        Fields of :class:`faimi_tutorial.training.loop.TrainConfig` (e.g. ``epochs=5``).

    Returns
    -------
    pandas.DataFrame
        One row per share, seed and subgroup: ``share``, ``seed``, ``subgroup``,
        ``n_test``, ``AUROC``, ``TPR``, ``FPR``, ``accuracy``, ``n_train_B`` (and
        ``condition`` when given).
    """

    shares = [float(s) for s in shares]
    for s in shares:
        CompositionConfig(
            share=s, n_train=n_train, n_val=n_val, groups=groups, column=column
        )
    if not seeds:
        raise _field_error("seeds", seeds, "at least one seed")
    if test is None:
        test = fixed_test_set(cohort, groups=groups, column=column)
    y_test = test.label
    g_test = test.meta[column].astype(str).to_numpy()
    rows = []
    for seed in seeds:
        for share in shares:
            comp = CompositionConfig(
                share=share,
                n_train=n_train,
                n_val=n_val,
                groups=groups,
                column=column,
                seed=int(seed),
            )
            data = compose_training_set(cohort, comp)
            fitted = training.fit(
                data,
                train_config,
                seed=int(seed),
                progress=False,
                device=device,
                **train_overrides,
            )
            scores = training.predict(fitted, test)
            for g in groups:
                m = g_test == g
                y, s = y_test[m], scores[m]
                pred = s >= threshold
                row = {
                    "share": share,
                    "seed": int(seed),
                    "subgroup": g,
                    "n_test": int(m.sum()),
                    "AUROC": auroc(y, s),
                    "TPR": float(pred[y == 1].mean()) if np.any(y == 1) else np.nan,
                    "FPR": float(pred[y == 0].mean()) if np.any(y == 0) else np.nan,
                    "accuracy": float((pred == (y == 1)).mean()),
                    "n_train_B": comp.counts()[1],
                }
                if condition is not None:
                    row = {"condition": condition, **row}
                rows.append(row)
    return pd.DataFrame(rows)


def summarise_sweep(
    runs: pd.DataFrame,
    values: Sequence[str] = ("AUROC", "TPR"),
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean and t-interval over seeds of each (condition,) share and subgroup.

    Parameters
    ----------
    runs : pandas.DataFrame
        Output of :func:`share_sweep` (several may be concatenated).
    values : sequence of str, default ("AUROC", "TPR")
        Metric columns.
    confidence : float, default 0.95
        Interval level.

    Returns
    -------
    pandas.DataFrame
        One row per setting with ``<v>_mean``, ``<v>_low``, ``<v>_high`` (see
        :func:`faimi_tutorial.fairness.metrics.aggregate_seeds`).
    """

    by = [c for c in ("condition", "share", "subgroup") if c in runs.columns]
    return aggregate_seeds(runs, by, list(values), confidence=confidence)


# --------------------------------------------------------------------------------------
# auditing
# --------------------------------------------------------------------------------------


def composition_table(
    data: Any,
    attributes: Sequence[str] = (SUBGROUP_COLUMN, "label", "bias_group"),
    split_column: str | None = "split",
) -> pd.DataFrame:
    """Counts and proportions of every value of every attribute, per split.

    Parameters
    ----------
    data : Cohort or pandas.DataFrame
        A cohort, or a metadata table (e.g. a real ``participants.tsv`` read by pandas).
    attributes : sequence of str
        Columns to tabulate (missing ones raise; values are tabulated as they are,
        missing values as ``"<missing>"``).
    split_column : str or None, default "split"
        Column of the split; ``None`` (or absent) tabulates the whole table as
        ``"all"``.

    Returns
    -------
    pandas.DataFrame
        Long table with columns ``split``, ``attribute``, ``value``, ``n`` and
        ``proportion`` (within the split), plus the rows of split ``"all"``.
    """
    meta = _meta(data)
    attributes = list(attributes)
    _require(meta, attributes)
    if split_column is not None and split_column in meta.columns:
        splits = meta[split_column].astype(str)
    else:
        splits = pd.Series("all", index=meta.index)
    rows = []
    split_names = list(dict.fromkeys(splits))
    for name in split_names + (["all"] if "all" not in split_names else []):
        part = meta if name == "all" else meta[splits == name]
        for attr in attributes:
            counts = (
                part[attr]
                .astype(object)
                .where(part[attr].notna(), "<missing>")
                .astype(str)
                .value_counts()
            )
            for value, n in sorted(counts.items()):
                rows.append(
                    {
                        "split": name,
                        "attribute": attr,
                        "value": value,
                        "n": int(n),
                        "proportion": float(n) / max(len(part), 1),
                    }
                )
    return pd.DataFrame(
        rows, columns=["split", "attribute", "value", "n", "proportion"]
    )


def intersectional_counts(
    data: Any,
    attributes: Sequence[str] = (SUBGROUP_COLUMN, "label"),
    min_count: int = 30,
    split: str | None = None,
    split_column: str = "split",
) -> pd.DataFrame:
    """Subjects in every combination of attribute values, flagging cells too small to
    evaluate.

    Every combination of the observed values is listed, including empty ones (an
    empty intersection is the most important finding of an audit).

    Parameters
    ----------
    data : Cohort or pandas.DataFrame
        A cohort or a metadata table.
    attributes : sequence of str, default ("subgroup", "label")
        Columns to cross (at least one).
    min_count : int, default 30
        Smallest cell size considered large enough to estimate a rate in that cell
        (a proportion from 30 subjects has a 95 % interval of about +-0.18).
    split : str, optional
        Restrict to one split (e.g. ``"test"``: can each cell be evaluated?).
    split_column : str, default "split"
        Column of the split.

    Returns
    -------
    pandas.DataFrame
        One row per combination: the attribute columns, ``n``, ``proportion`` and
        ``too_small`` (``n < min_count``), smallest cells first.
    """
    meta = _meta(data)
    attributes = list(attributes)
    if not attributes:
        raise _field_error("attributes", attributes, "at least one column")
    _require(meta, attributes)
    if (
        isinstance(min_count, bool)
        or not isinstance(min_count, (int, np.integer))
        or min_count < 1
    ):
        raise _field_error("min_count", min_count, "an integer >= 1")
    if split is not None:
        _require(meta, [split_column])
        meta = meta[meta[split_column].astype(str) == split]
    values = [sorted(meta[a].dropna().astype(str).unique()) for a in attributes]
    keys = meta[attributes].astype(str)
    observed = keys.value_counts().to_dict() if len(keys) else {}
    rows = []
    for combo in itertools.product(*values):
        n = int(observed.get(tuple(combo), 0))
        rows.append({**dict(zip(attributes, combo)), "n": n})
    table = pd.DataFrame(rows, columns=attributes + ["n"])
    table["proportion"] = table["n"] / max(len(meta), 1)
    table["too_small"] = table["n"] < min_count
    return table.sort_values(["n"] + attributes, kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class ChecklistItem:
    """One question of the representativeness checklist.

    Attributes
    ----------
    topic : str
        Short heading.
    question : str
        What to ask of a dataset.
    why : str
        What goes wrong when the answer is "no".
    how : str
        How to answer it (with this package, or by hand).
    """

    topic: str
    question: str
    why: str
    how: str


#: The checklist a reader can apply to a real dataset (rendered by :func:`checklist`).
CHECKLIST: tuple[ChecklistItem, ...] = (
    ChecklistItem(
        "attributes recorded",
        "Are the attributes you must be fair across (sex, age band, ethnicity, site, "
        "scanner) "
        "recorded for every subject?",
        "What is not recorded cannot be audited or evaluated per group.",
        "Count missing values per attribute (composition_table shows '<missing>').",
    ),
    ChecklistItem(
        "target population",
        "Does the training composition match the population the model will serve?",
        "A group rare in training gets worse performance when its disease looks "
        "different.",
        "Compare composition_table with published prevalence of each group in the "
        "clinic.",
    ),
    ChecklistItem(
        "every group in every split",
        "Does every subgroup appear in the training, validation and test splits?",
        "A group absent from training is served by a model that never saw it; absent "
        "from "
        "test, its performance is unknown.",
        "composition_table by split.",
    ),
    ChecklistItem(
        "labels per group",
        "Are both classes present in every subgroup, with similar label prevalence?",
        "Label prevalence that differs by group lets a model learn group as a proxy "
        "for disease.",
        "intersectional_counts over (subgroup, label).",
    ),
    ChecklistItem(
        "intersections",
        "Are the intersections (e.g. older women at one site) large enough to "
        "evaluate?",
        "Gaps hide in intersections that no single attribute reveals; tiny cells give "
        "intervals too wide to read.",
        "intersectional_counts with min_count; report the cells flagged too_small.",
    ),
    ChecklistItem(
        "presentation",
        "Is there evidence that the disease presents differently in some group "
        "(anatomy, severity, imaging appearance)?",
        "Representativeness matters most where presentation differs: a model cannot "
        "learn "
        "a presentation it has not seen.",
        "Literature, clinicians; per-group performance of models trained on other "
        "groups.",
    ),
    ChecklistItem(
        "acquisition",
        "Were the groups scanned on the same scanners and sites?",
        "Site and scanner confound group membership and open shortcuts.",
        "intersectional_counts over (subgroup, site).",
    ),
    ChecklistItem(
        "documentation",
        "Is the composition documented in a datasheet that ships with the data?",
        "Users cannot judge what a dataset can be used for without it (Gebru et al. "
        "2021).",
        "faimi_tutorial.data.datasets.datasheet for a simulated cohort; write one for "
        "real data.",
    ),
)


def checklist(
    data: Any = None,
    column: str = SUBGROUP_COLUMN,
    min_count: int = 30,
    split_column: str = "split",
) -> pd.DataFrame:
    """The representativeness checklist as a table, answered where the data can answer
    it.

    Parameters
    ----------
    data : Cohort or pandas.DataFrame, optional
        A cohort or metadata table. Without it, the ``finding`` column is empty.
    column : str, default "subgroup"
        Subgroup column.
    min_count : int, default 30
        Smallest evaluable cell (see :func:`intersectional_counts`).
    split_column : str, default "split"
        Split column.

    Returns
    -------
    pandas.DataFrame
        One row per :data:`CHECKLIST` item: ``topic``, ``question``, ``why``, ``how``
        and ``finding`` (what the data says, or ``"check by hand"``).
    """
    table = pd.DataFrame([dataclasses.asdict(item) for item in CHECKLIST])
    table["finding"] = ""
    if data is None:
        return table
    meta = _meta(data)
    findings = {t: "check by hand" for t in table["topic"]}
    if column in meta.columns:
        n_missing = int(meta[column].isna().sum())
        findings["attributes recorded"] = (
            f"{column}: {n_missing} missing of {len(meta)}"
        )
        shares = meta[column].astype(str).value_counts(normalize=True).sort_index()
        findings["target population"] = (
            "shares "
            + ", ".join(f"{k}: {v:.0%}" for k, v in shares.items())
            + " (compare with the clinic)"
        )
        if split_column in meta.columns:
            crossed = intersectional_counts(meta, [split_column, column], min_count=1)
            empty = crossed[crossed["n"] == 0]
            findings["every group in every split"] = (
                "yes"
                if empty.empty
                else "no: "
                + "; ".join(
                    f"{r[column]} absent from {r[split_column]}"
                    for _, r in empty.iterrows()
                )
            )
        if "label" in meta.columns:
            prev = meta.groupby(meta[column].astype(str), observed=True)["label"].mean()
            findings["labels per group"] = "disease prevalence " + ", ".join(
                f"{k}: {v:.0%}" for k, v in prev.items()
            )
            cells = intersectional_counts(meta, [column, "label"], min_count=min_count)
            small = cells[cells["too_small"]]
            findings["intersections"] = (
                f"all {len(cells)} subgroup x label cells have >= {min_count}"
                if small.empty
                else f"{len(small)} of {len(cells)} cells below {min_count} "
                f"(smallest n = {int(cells['n'].min())})"
            )
    else:
        findings["attributes recorded"] = f"no column {column!r}: subgroup not recorded"
    table["finding"] = table["topic"].map(findings)
    return table
