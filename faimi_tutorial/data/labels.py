"""Labels as they are made: missed diagnoses, false alarms and a verified subset.

A simulated cohort knows every subject's true label. Real labels come from readers
(radiologists, reports mined by software) who miss some diagnoses, and not equally
often in every group: chest X-ray classifiers trained on such labels under-diagnose
the groups whose diagnoses were missed more often (Seyyed-Kalantari et al., Nature
Medicine 2021). :func:`noisy_labels` makes such labels from the true ones, with a
miss rate and a false-alarm rate per group and, optionally, misses concentrated on
the mildest cases; :func:`verified_sample` draws the small subset whose labels an
audit can afford to verify.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..validation import check_finite, check_int, check_seed

__all__ = ["check_binary", "noisy_labels", "verified_sample"]


def check_binary(label: ArrayLike, name: str = "label") -> np.ndarray:
    """Labels 0/1 (or booleans) as a non-empty int64 array, else ``ValueError``."""
    y = np.asarray(label)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(
            f"{name} must be a non-empty one-dimensional array (got shape {y.shape})"
        )
    try:
        values = set(np.unique(y).tolist())
    except TypeError as err:
        raise ValueError(f"{name} must contain only 0 and 1 ({err})") from None
    if not values <= {0, 1, True, False}:
        bad = sorted(map(str, values - {0, 1, True, False}))[:3]
        raise ValueError(f"{name} must contain only 0 and 1 (found {', '.join(bad)})")
    return y.astype(np.int64)


def _groups(groups: ArrayLike | None, n: int) -> np.ndarray:
    if groups is None:
        return np.zeros(n, dtype=np.int64)
    g = np.asarray(groups)
    if g.ndim != 1 or len(g) != n:
        raise ValueError(
            f"groups must be one-dimensional with {n} entries (got shape {g.shape})"
        )
    if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in g.tolist()):
        raise ValueError("groups contains missing values")
    return g


def _rates(rate: float | Mapping[Any, float], name: str, present: list) -> dict:
    """A rate per present group from one number or a mapping (absent groups: 0)."""
    if isinstance(rate, Mapping):
        unknown = [k for k in rate if k not in present]
        if unknown:
            raise ValueError(
                f"{name} names groups {unknown!r} that are not in groups "
                f"(present: {present!r})"
            )
        out = {g: rate.get(g, 0.0) for g in present}
    else:
        out = {g: rate for g in present}
    return {
        g: check_finite(f"{name} of group {g!r}", r, 0.0, 1.0) for g, r in out.items()
    }


def noisy_labels(
    label: ArrayLike,
    groups: ArrayLike | None = None,
    *,
    miss_rate: float | Mapping[Any, float] = 0.0,
    false_alarm_rate: float | Mapping[Any, float] = 0.0,
    severity: ArrayLike | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Labels a fallible reader would give: some diagnoses missed, some false alarms.

    In each group exactly ``round(miss_rate * positives)`` of its positives are
    labelled 0 and ``round(false_alarm_rate * negatives)`` of its negatives are
    labelled 1, so the noise is the one asked for, not one near it.

    Parameters
    ----------
    label : array-like of {0, 1}
        True labels.
    groups : array-like, optional
        Group of each subject (any hashable labels); ``None``: one group.
    miss_rate : float or mapping of group to float, default 0.0
        Share of each group's positives labelled 0, in [0, 1]; groups missing from
        a mapping get 0.
    false_alarm_rate : float or mapping of group to float, default 0.0
        Share of each group's negatives labelled 1, in [0, 1].
    severity : array-like of float, optional
        How plain each case's disease is (e.g. the simulator's ``disease_coef``).
        Given, a positive's chance of being missed falls with its severity: weights
        ``exp(-(severity - mean) / sd)`` within the group, so mild cases are missed
        first, as subtle findings are. Without it, misses are drawn uniformly.
    seed : int, default 0
        Seed of the draws (same inputs and seed, same labels).

    Returns
    -------
    numpy.ndarray
        The noisy labels (int64), same length as ``label``.

    Raises
    ------
    ValueError
        For labels other than 0/1, mismatched lengths, a rate outside [0, 1], a
        mapping naming an absent group, non-finite severities or a negative seed.

    Examples
    --------
    >>> y = [1, 1, 1, 1, 0, 0, 0, 0]
    >>> noisy_labels(y, [0, 0, 1, 1, 0, 0, 1, 1], miss_rate={1: 1.0}).tolist()
    [1, 1, 0, 0, 0, 0, 0, 0]
    """
    y = check_binary(label)
    g = _groups(groups, len(y))
    seed = check_seed(seed)
    sev = None
    if severity is not None:
        sev = np.asarray(severity, dtype=float)
        if sev.shape != y.shape:
            raise ValueError(f"severity has shape {sev.shape}; expected {y.shape}")
        if not np.all(np.isfinite(sev)):
            raise ValueError("severity contains NaN or infinite values")
    present = sorted(np.unique(g).tolist(), key=str)
    misses = _rates(miss_rate, "miss_rate", present)
    alarms = _rates(false_alarm_rate, "false_alarm_rate", present)
    rng = np.random.default_rng([int(seed), 41])
    out = y.copy()
    for grp in present:
        in_group = g == grp
        for cls, rate, new in ((1, misses[grp], 0), (0, alarms[grp], 1)):
            idx = np.flatnonzero(in_group & (y == cls))
            k = int(round(rate * len(idx)))
            if k == 0:
                continue
            p = None
            if cls == 1 and sev is not None and len(idx) > 1:
                s = sev[idx]
                sd = s.std()
                w = np.exp(-(s - s.mean()) / sd) if sd > 0 else np.ones(len(idx))
                p = w / w.sum()
                k = min(k, int(np.count_nonzero(p)))
            out[rng.choice(idx, size=k, replace=False, p=p)] = new
    return out


def verified_sample(
    groups: ArrayLike,
    n_per_group: int,
    *,
    strata: ArrayLike | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Positions of a random subset to verify: ``n_per_group`` subjects per group.

    Parameters
    ----------
    groups : array-like
        Group of each subject.
    n_per_group : int
        Subjects drawn (without replacement) from every group, >= 1.
    strata : array-like, optional
        Draw equally from each stratum within a group (e.g. the noisy label, so
        that positives and negatives are both verified); the split is as even as
        ``n_per_group`` allows.
    seed : int, default 0
        Seed of the draw.

    Returns
    -------
    numpy.ndarray
        Sorted integer positions.

    Raises
    ------
    ValueError
        If a group (or a stratum of one) has fewer members than it must give.

    Examples
    --------
    >>> verified_sample(["a", "a", "b", "b", "b"], 2, seed=0).size
    4
    """
    g = _groups(groups, len(np.asarray(groups)))
    if len(g) == 0:
        raise ValueError("groups is empty")
    n_per_group = check_int("n_per_group", n_per_group, 1)
    st = np.zeros(len(g), dtype=np.int64) if strata is None else np.asarray(strata)
    if st.shape != g.shape:
        raise ValueError(f"strata has shape {st.shape}; expected {g.shape}")
    rng = np.random.default_rng([int(seed), 43])
    chosen = []
    for grp in sorted(np.unique(g).tolist(), key=str):
        levels = sorted(np.unique(st[g == grp]).tolist(), key=str)
        shares = np.full(len(levels), n_per_group // len(levels))
        shares[: n_per_group % len(levels)] += 1
        for level, k in zip(levels, shares):
            idx = np.flatnonzero((g == grp) & (st == level))
            if len(idx) < k:
                raise ValueError(
                    f"group {grp!r} (stratum {level!r}) has {len(idx)} "
                    f"members, fewer than the {k} to verify"
                )
            chosen.append(rng.choice(idx, size=int(k), replace=False))
    return np.sort(np.concatenate(chosen))
