"""Where is the bias encoded? Layer activations, linear probes and the shortcut test.

Three questions, three tools:

**Is the bias attribute decodable from a layer?** :func:`collect_activations`
reads the output of chosen layers through forward hooks (any :class:`torch.nn.Module`;
``"input"`` is the image itself and ``"penultimate"`` the features entering the last
linear layer). :func:`probe` then fits, per layer, a pipeline of PCA keeping 99 % of
the variance and a logistic regression (Stanley et al., eBioMedicine 2025), and
scores it only on data it was not fitted on: the samples are split into folds, each
fold is scored by a probe fitted on the other folds (cross-fitting), so every score
is held out. Accuracy and AUROC come with bootstrap intervals over the held-out
samples. :func:`probe_layers` and :func:`probe_model` do this for every layer and
several targets (the bias group and the disease label).

A caveat that matters with biased data: when the bias group is correlated with the
label, a probe can "decode the bias" by decoding the disease. ``balance`` subsamples
the probe data so that every (target, other attribute) cell has the same size; then
the other attribute carries no information about the target.

**Which directions carry it?** :func:`component_encoding` measures, for each of the
first principal components of a layer, how well that single component decodes each
target (held out). :func:`component_projection` finds the component that best
predicts the disease (on the fitting part) and returns the held-out subjects'
coordinates on it, with their subgroup: label x bias group, aligned with the
shortcut (disease with the bias feature, controls without) or misaligned.

**Compared with what?** A visible attribute is decodable from an untrained network
too, so every measure needs references: the raw image (the ``"input"`` layer), an
untrained network of the same architecture and seed (:func:`untrained_model`) and a
model trained on the same subjects without the bias effect (their counterfactual
twins). :func:`twin_sensitivity` measures per layer how much the activations change
when only the bias effect is removed, ``||f(x) - f(twin)|| / ||f(x)||``, and
:func:`disease_shift` how far the bias effect alone moves each subject along the
disease direction. :func:`layer_report` runs probes, twin sensitivity and shift for
several models on the same subjects; :func:`seed_summary` and
:func:`compare_to_reference` turn runs over seeds into intervals and verdicts.

**Does the model use what it encodes?** Encoding alone does not prove that a model
takes a shortcut. The shortcut test ShorT (Brown et al., Nat Commun 2023) trains a
family of models whose encoding of the attribute is pushed up or down by an
attribute head whose gradient into the network is scaled by ``lam``
(:class:`GradientScale`; ``lam < 0`` is gradient reversal, i.e. unlearning,
``lam > 0`` asks for more encoding), then relates the measured encoding to the
fairness gap across those models (:func:`fit_attribute_head`, :func:`short_sweep`,
:func:`short_test`). If the gap follows the encoding (a rank-correlation trend test,
significant at a stated level), the model's decisions use the attribute.

>>> import torch
>>> import faimi_tutorial as ft
>>> model = ft.models.build_model("tiny", in_shape=(1, 32, 32))
>>> acts = ft.probing.collect_activations(model, torch.zeros(4, 1, 32, 32))
>>> sorted(acts)[:2]
['net.layer_0', 'net.layer_1']
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from ..fairness.metrics import auroc, auroc_of_resamples, bootstrap_indices
from .. import presets
from ..fairness.metrics import mean_interval
from ..models.networks import build_model, last_linear, layer_names
from ..runtime import seed_everything
from ..training.loop import (
    TrainConfig,
    as_data,
    fit,
    resolve_config,
    stratified_split,
)
from ..training.objectives import AttributeHead, AttributeTask, GradientScale
from .sweeps import evaluate
from ..validation import check_flag, check_integer, check_probability, check_range
from .runner import step

__all__ = [
    "PSEUDO_LAYERS",
    "SUBGROUPS",
    "ProbeConfig",
    "ProbeResult",
    "collect_activations",
    "balanced_index",
    "probe",
    "in_sample_scores",
    "probe_layers",
    "probe_model",
    "component_encoding",
    "component_projection",
    "subgroup_names",
    "disease_shift",
    "model_disease_shift",
    "twin_sensitivity",
    "untrained_model",
    "layer_report",
    "seed_summary",
    "compare_to_reference",
    "GradientScale",
    "AttributeHead",
    "fit_attribute_head",
    "encoding_strength",
    "short_evaluate",
    "short_sweep",
    "ShortcutTest",
    "short_test",
]

#: Layer names that are not modules: the image itself and the input of the last
#: linear layer.
PSEUDO_LAYERS: tuple[str, ...] = ("input", "penultimate")

#: The four subgroups of a binary label and a binary bias group, in plotting order.
#: "aligned" subjects agree with the shortcut (disease with the bias feature, control
#: without it); "misaligned" ones contradict it.
SUBGROUPS: tuple[str, ...] = (
    "disease, bias (aligned)",
    "control, no bias (aligned)",
    "disease, no bias (misaligned)",
    "control, bias (misaligned)",
)


# --------------------------------------------------------------------- activations


def _network(model: Any) -> nn.Module:
    return (
        model.model
        if hasattr(model, "model") and isinstance(model.model, nn.Module)
        else model
    )


def _images(data: Any) -> torch.Tensor:
    if isinstance(data, torch.Tensor):
        x = data
    elif isinstance(data, np.ndarray):
        x = torch.as_tensor(data)
    else:
        x = as_data(data).images
    x = x.float()
    return x


def _pool_to(t: torch.Tensor, max_features: int | None) -> torch.Tensor:
    """Average-pool the spatial axes of ``(N, C, *grid)`` until ``C * prod(grid) <=
    max_features``."""
    if max_features is None or t.ndim < 3 or t[0].numel() <= max_features:
        return t
    c, grid = t.shape[1], list(t.shape[2:])
    while c * int(np.prod(grid)) > max_features and max(grid) > 1:
        grid = [max(1, g // 2) if g == max(grid) else g for g in grid]
    pool = (
        F.adaptive_avg_pool3d
        if len(grid) == 3
        else F.adaptive_avg_pool2d
        if len(grid) == 2
        else F.adaptive_avg_pool1d
    )
    return pool(t, tuple(grid))


def collect_activations(
    model: Any,
    data: Any,
    layers: Sequence[str] | None = None,
    *,
    batch_size: int = 128,
    device: str | torch.device | None = None,
    max_features: int | None = 16384,
) -> dict[str, np.ndarray]:
    """Activations of chosen layers for every image, through forward hooks.

    Parameters
    ----------
    model : torch.nn.Module or FitResult
        Any network (a :class:`~faimi_tutorial.training.loop.FitResult` is unwrapped).
    data : tensor, array, cohort-like or ArrayData
        Images ``(N, C, *grid)`` or anything
        :func:`faimi_tutorial.training.loop.as_data` reads.
    layers : sequence of str, optional
        Module names (``dict(model.named_modules())``), or ``"input"`` (the images)
        or ``"penultimate"`` (the input of the last linear layer). Default: the
        feature blocks of a package model
        (:func:`faimi_tutorial.models.networks.layer_names`).
    batch_size : int, default 128
        Images per forward pass.
    device : str or torch.device, optional
        Default: where the model's parameters are.
    max_features : int or None, default 16384
        Layers with more values per image are average-pooled over space (halving the
        largest axis until they fit) so that large 3D feature maps stay in memory.
        ``None`` keeps everything.

    Returns
    -------
    dict of str to numpy.ndarray
        ``{layer: (N, F) float32}``, in the order of ``layers``.

    Raises
    ------
    ValueError
        For an unknown layer name, or a model without known blocks when ``layers``
        is not given.
    """

    net = _network(model)
    if layers is None:
        layers = layer_names(net)
    layers = list(layers)
    if not layers:
        raise ValueError("layers=[] is empty; give at least one layer name")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be >= 1")
    if max_features is not None and max_features < 1:
        raise ValueError(f"max_features={max_features!r} must be None or >= 1")
    modules = dict(net.named_modules())
    unknown = [n for n in layers if n not in modules and n not in PSEUDO_LAYERS]
    if unknown:
        names = [n for n in modules if n][:12]
        raise ValueError(
            f"layers {unknown!r} are not modules of the model; allowed: "
            f"{list(PSEUDO_LAYERS)} or module names such as {names}"
        )
    if device is None:
        try:
            device = next(net.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
    device = torch.device(device)
    images = _images(data)
    store: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    current: dict[str, torch.Tensor] = {}

    def output_hook(name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output
            current[name] = out.detach()

        return hook

    def pre_hook(name: str):
        def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            current[name] = inputs[0].detach()

        return hook

    handles = []
    was_training = net.training
    net = net.to(device).eval()
    try:
        for name in layers:
            if name == "penultimate":
                handles.append(
                    last_linear(net).register_forward_pre_hook(pre_hook(name))
                )
            elif name != "input":
                handles.append(modules[name].register_forward_hook(output_hook(name)))
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                x = images[i : i + batch_size].to(device)
                current.clear()
                if any(n != "input" for n in layers):
                    net(x)
                current["input"] = x
                for name in layers:
                    t = _pool_to(current[name].float(), max_features)
                    store[name].append(t.reshape(t.shape[0], -1).cpu())
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    return {
        n: torch.cat(store[n]).numpy().astype(np.float32, copy=False) for n in layers
    }


# --------------------------------------------------------------------- probes


@dataclass
class ProbeConfig:
    """How a linear probe is fitted and scored.

    Parameters
    ----------
    variance : float, default 0.99
        Share of variance the PCA keeps, in (0, 1]; 1 keeps every component.
    n_folds : int, default 5
        Cross-fitting folds (>= 2): each fold is scored by a probe fitted on the others.
    C : float, default 0.1
        Inverse L2 regularisation strength of the logistic regression (> 0).
    standardize : bool, default False
        Scale every principal component to unit variance before the regression.
        The default scales all components by one common factor instead, so that
        weak directions are shrunk most by the L2 penalty and ``C`` means the same
        for layers of any scale.
    max_iter : int, default 2000
        Iterations of the logistic-regression solver (>= 10).
    n_boot : int, default 500
        Bootstrap replicates of the held-out scores for the intervals (0: none).
    confidence : float, default 0.95
        Level of the intervals, in (0, 1).
    threshold : float, default 0.5
        Probability threshold for the accuracy.
    seed : int, default 0
        Seed of the folds, the balancing and the bootstrap.
    """

    variance: float = 0.99
    n_folds: int = 5
    C: float = 0.1
    standardize: bool = False
    max_iter: int = 2000
    n_boot: int = 500
    confidence: float = 0.95
    threshold: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        # numbers are checked, not converted (the settings enter cache keys as given)
        check_probability(self, "variance", self.variance, low_open=True)
        check_integer(self, "n_folds", self.n_folds, 2)
        check_range(self, "C", self.C, 0.0, low_open=True)
        check_flag(self, "standardize", self.standardize)
        check_integer(self, "max_iter", self.max_iter, 10)
        check_integer(self, "n_boot", self.n_boot, 0)
        for name in ("confidence", "threshold"):
            check_probability(
                self, name, getattr(self, name), low_open=True, high_open=True
            )
        check_integer(self, "seed", self.seed, 0)

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dictionary of the settings."""
        return asdict(self)


@dataclass
class ProbeResult:
    """Held-out decoding performance of one probe.

    Attributes
    ----------
    accuracy, auroc : float
        On held-out samples only (cross-fitted).
    accuracy_low, accuracy_high, auroc_low, auroc_high : float
        Bootstrap percentile interval bounds (NaN without bootstrap).
    n : int
        Number of samples the probe was evaluated on (after balancing).
    n_components : float
        Mean number of principal components kept over the folds.
    scores : numpy.ndarray
        Held-out probability of the positive class per evaluated sample.
    target : numpy.ndarray
        The target of each evaluated sample.
    index : numpy.ndarray
        Positions of the evaluated samples in the input.
    """

    accuracy: float
    accuracy_low: float
    accuracy_high: float
    auroc: float
    auroc_low: float
    auroc_high: float
    n: int
    n_components: float
    scores: np.ndarray = field(repr=False)
    target: np.ndarray = field(repr=False)
    index: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, float]:
        """The summary numbers (without the per-sample arrays)."""
        keys = (
            "accuracy",
            "accuracy_low",
            "accuracy_high",
            "auroc",
            "auroc_low",
            "auroc_high",
            "n",
            "n_components",
        )
        return {k: getattr(self, k) for k in keys}


def _binary_target(target: Any, name: str = "target") -> np.ndarray:
    y = np.asarray(target).reshape(-1)
    values = np.unique(y)
    if len(values) != 2:
        raise ValueError(
            f"{name} must hold exactly two classes; got {values.tolist()[:10]}"
        )
    return (y == values[1]).astype(np.int64)


def balanced_index(*codes: Any, seed: int = 0) -> np.ndarray:
    """Positions of a subsample with equally many samples in every cell of ``codes``.

    Parameters
    ----------
    *codes : array-like
        One or more equally long arrays of discrete codes (e.g. label and bias group).
    seed : int, default 0
        Seed of the subsampling.

    Returns
    -------
    numpy.ndarray
        Sorted positions; every combination of codes that occurs keeps as many
        samples as the smallest one.

    Raises
    ------
    ValueError
        Without codes, or for codes of different lengths.
    """
    if not codes:
        raise ValueError("balanced_index needs at least one array of codes")
    arrays = [np.asarray(c).reshape(-1) for c in codes]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"codes have different lengths: {[len(a) for a in arrays]}")
    keys = (
        pd.MultiIndex.from_arrays(arrays).codes
        if len(arrays) > 1
        else [pd.factorize(arrays[0])[0]]
    )
    cell = np.zeros(n, dtype=np.int64)
    for k in keys:
        cell = cell * (int(np.max(k)) + 1 if len(k) else 1) + np.asarray(k)
    values, counts = np.unique(cell, return_counts=True)
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    smallest = counts.min()
    rng = np.random.default_rng(seed)
    keep = [
        rng.choice(np.flatnonzero(cell == v), size=smallest, replace=False)
        for v in values
    ]
    return np.sort(np.concatenate(keep))


def _folds(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    fold = np.zeros(len(y), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
        fold[test] = k
    return fold


class _PCA:
    """Principal components by an eigen-decomposition of the smaller Gram/covariance
    matrix.

    Keeps the leading components that explain ``variance`` of the total (or exactly
    ``n_components``). With more features than samples the ``n x n`` Gram matrix is
    decomposed (fast for wide layer activations); results equal a standard PCA up to
    the sign of each component.
    """

    def __init__(
        self, variance: float | None = 0.99, n_components: int | None = None
    ) -> None:
        self.variance = variance
        self.n_components = n_components

    def fit(self, x: np.ndarray) -> _PCA:
        self.mean_ = x.mean(0)
        xc = x - self.mean_
        n, f = xc.shape
        if f <= n:
            w, v = np.linalg.eigh(xc.T @ xc)
            w, v = w[::-1], v[:, ::-1]
            components = v
        else:
            w, u = np.linalg.eigh(xc @ xc.T)
            w, u = w[::-1], u[:, ::-1]
            positive = w > w[0] * 1e-12 if w[0] > 0 else np.zeros_like(w, dtype=bool)
            w, u = w[positive], u[:, positive]
            components = xc.T @ (u / np.sqrt(w))
        w = np.clip(w, 0.0, None)
        total = w.sum()
        if self.n_components is not None:
            k = int(min(self.n_components, len(w)))
        elif total <= 0:
            k = 1
        elif self.variance is None or self.variance >= 1:
            k = int(max(1, (w > total * 1e-12).sum()))
        else:
            k = int(np.searchsorted(np.cumsum(w) / total, self.variance) + 1)
        k = max(1, min(k, len(w)))
        self.components_ = components[:, :k]
        self.explained_variance_ = w[:k] / max(n - 1, 1)
        self.explained_variance_ratio_ = w[:k] / total if total > 0 else np.zeros(k)
        self.n_components_ = k
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) @ self.components_


class _Probe:
    """PCA keeping a share of variance, optional scaling, then logistic regression."""

    def __init__(self, config: ProbeConfig) -> None:
        self.config = config

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Probe:
        from sklearn.linear_model import LogisticRegression

        self.pca = _PCA(self.config.variance).fit(x)
        z = self.pca.transform(x)
        if self.config.standardize:
            self.scale_ = z.std(0) + 1e-12
        else:
            # one global factor: components keep their relative variances (so the
            # L2 penalty shrinks weak directions most) and C means the same in every
            # layer
            self.scale_ = np.sqrt(np.mean(z.var(0))) + 1e-12
        self.lr = LogisticRegression(C=self.config.C, max_iter=self.config.max_iter)
        self.lr.fit(z / self.scale_, y)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.lr.predict_proba(self.pca.transform(x) / self.scale_)


def _bootstrap(
    y: np.ndarray,
    s: np.ndarray,
    threshold: float,
    n_boot: int,
    confidence: float,
    seed: int,
) -> tuple[float, float, float, float]:
    """Percentile intervals of a probe's accuracy and AUROC (class-stratified
    bootstrap)."""
    if n_boot == 0:
        return (math.nan,) * 4
    correct = ((s >= threshold).astype(np.int64) == y).astype(np.float64)
    # stratified by class, so every replicate keeps both classes; strata are drawn in
    # sorted order, so y == 0 (False first) draws the positives first, as always here
    replicates = bootstrap_indices(len(y), n_boot, seed=seed, strata=y == 0)
    acc = correct[replicates].mean(axis=1)
    auc = auroc_of_resamples(y, s, replicates)
    a = (1 - confidence) / 2 * 100
    return (
        float(np.percentile(acc, a)),
        float(np.percentile(acc, 100 - a)),
        float(np.percentile(auc, a)),
        float(np.percentile(auc, 100 - a)),
    )


def probe(
    features: Any,
    target: Any,
    config: ProbeConfig | None = None,
    *,
    balance: Any | None = None,
) -> ProbeResult:
    """Decode a binary target from features with PCA + logistic regression, held out.

    The samples are split into ``config.n_folds`` stratified folds; the PCA (keeping
    ``config.variance`` of the variance) and the logistic regression are fitted on
    all folds but one and score the remaining one, so each sample's score comes
    from a probe that never saw it.

    Parameters
    ----------
    features : array-like
        ``(N, F)`` features (more axes are flattened).
    target : array-like
        ``(N,)`` binary target (two distinct values; the larger is positive).
    config : ProbeConfig, optional
        Settings (default :class:`ProbeConfig`).
    balance : array-like, optional
        A second attribute: the samples are first subsampled so that every
        (target, balance) cell is equally large, so that ``balance`` carries no
        information about ``target`` (e.g. the label when decoding the bias group).

    Returns
    -------
    ProbeResult
        Held-out accuracy and AUROC with intervals, and the held-out scores.

    Raises
    ------
    ValueError
        For mismatched lengths, a target without two classes, or too few samples
        per class for the folds.
    """

    config = config or ProbeConfig()
    x = np.asarray(features, dtype=np.float64)
    x = x.reshape(x.shape[0], -1)
    y = _binary_target(target)
    if len(y) != len(x):
        raise ValueError(f"features hold {len(x)} samples but target holds {len(y)}")
    index = np.arange(len(y))
    if balance is not None:
        b = np.asarray(balance).reshape(-1)
        if len(b) != len(y):
            raise ValueError(f"balance holds {len(b)} entries for {len(y)} samples")
        index = balanced_index(y, b, seed=config.seed)
    x, y = x[index], y[index]
    smallest = int(min((y == 0).sum(), (y == 1).sum()))
    if smallest < config.n_folds:
        raise ValueError(
            f"the smaller class has {smallest} samples (after balancing); need at "
            "least "
            f"n_folds={config.n_folds}"
        )
    fold = _folds(y, config.n_folds, config.seed)
    scores = np.zeros(len(y))
    kept = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on collinear components
        for k in range(config.n_folds):
            fit, held = fold != k, fold == k
            pipe = _Probe(config).fit(x[fit], y[fit])
            scores[held] = pipe.predict_proba(x[held])[:, 1]
            kept.append(pipe.pca.n_components_)
    acc = float(((scores >= config.threshold).astype(np.int64) == y).mean())
    auc = float(auroc(y, scores))
    lo_acc, hi_acc, lo_auc, hi_auc = _bootstrap(
        y, scores, config.threshold, config.n_boot, config.confidence, config.seed
    )
    return ProbeResult(
        acc,
        lo_acc,
        hi_acc,
        auc,
        lo_auc,
        hi_auc,
        int(len(y)),
        float(np.mean(kept)),
        scores,
        y,
        index,
    )


def in_sample_scores(
    features: Any, target: Any, config: ProbeConfig | None = None
) -> np.ndarray:
    """Scores of one probe fitted on all samples and scored on those same samples.

    What a probe reports when it is scored on its own fitting data: the contrast
    to the held-out scores of :func:`probe` (a wide probe "decodes" even random
    labels in sample).

    Parameters
    ----------
    features : array-like
        ``(N, F)`` features (more axes are flattened).
    target : array-like
        ``(N,)`` binary target (two distinct values; the larger is positive).
    config : ProbeConfig, optional
        Settings (default :class:`ProbeConfig`; folds and bootstrap are not used).

    Returns
    -------
    numpy.ndarray
        ``(N,)`` probabilities of the positive class.

    Raises
    ------
    ValueError
        For mismatched lengths or a target without two classes.
    """
    config = config or ProbeConfig()
    x = np.asarray(features, dtype=np.float64)
    x = x.reshape(x.shape[0], -1)
    y = _binary_target(target)
    if len(y) != len(x):
        raise ValueError(f"features hold {len(x)} samples but target holds {len(y)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on collinear components
        return _Probe(config).fit(x, y).predict_proba(x)[:, 1]


def probe_layers(
    activations: Mapping[str, Any],
    targets: Mapping[str, Any],
    config: ProbeConfig | None = None,
    *,
    balance: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Probe every layer for every target.

    Parameters
    ----------
    activations : mapping of str to array
        ``{layer: (N, F)}`` (e.g. from :func:`collect_activations`), input side first.
    targets : mapping of str to array
        ``{name: (N,) binary codes}``, e.g. ``{"bias_group": ..., "label": ...}``.
    config : ProbeConfig, optional
        Probe settings.
    balance : mapping of str to array, optional
        Per target name, the attribute to balance against (see :func:`probe`).

    Returns
    -------
    pandas.DataFrame
        One row per (layer, target): ``layer``, ``depth`` (0 = first listed layer),
        ``target``, ``features`` (width of the layer), and the columns of
        :meth:`ProbeResult.as_dict`.
    """
    config = config or ProbeConfig()
    balance = dict(balance or {})
    unknown = set(balance) - set(targets)
    if unknown:
        raise ValueError(
            f"balance names {sorted(unknown)} that are not targets ({sorted(targets)})"
        )
    rows = []
    for depth, (layer, feats) in enumerate(activations.items()):
        feats = np.asarray(feats)
        for name, target in targets.items():
            result = probe(feats, target, config, balance=balance.get(name))
            rows.append(
                {
                    "layer": layer,
                    "depth": depth,
                    "target": name,
                    "features": int(np.prod(feats.shape[1:])),
                    **result.as_dict(),
                }
            )
    return pd.DataFrame(rows)


def probe_model(
    model: Any,
    data: Any,
    layers: Sequence[str] | None = None,
    config: ProbeConfig | None = None,
    *,
    targets: Sequence[str] = ("bias_group", "label"),
    balanced: bool = True,
    batch_size: int = 128,
    max_features: int | None = 16384,
) -> pd.DataFrame:
    """Activations of a model on ``data`` and held-out probes of each layer.

    Parameters
    ----------
    model : torch.nn.Module or FitResult
        The network to inspect (use data it was not trained on).
    data : cohort-like or ArrayData
        Images with ``label`` and ``bias_group``.
    layers : sequence of str, optional
        See :func:`collect_activations` (default: the model's feature blocks).
    config : ProbeConfig, optional
        Probe settings.
    targets : sequence of str, default ("bias_group", "label")
        Attributes of ``data`` to decode.
    balanced : bool, default True
        Balance each of ``bias_group`` and ``label`` against the other, so that
        neither can be decoded through its correlation with the other.
    batch_size, max_features
        Passed to :func:`collect_activations`.

    Returns
    -------
    pandas.DataFrame
        As :func:`probe_layers`.
    """

    d = as_data(data)
    attrs = {"bias_group": d.bias_group, "label": d.label}
    unknown = [t for t in targets if t not in attrs]
    if unknown:
        raise ValueError(f"targets {unknown!r} are not known; allowed: {sorted(attrs)}")
    acts = collect_activations(
        model, d.images, layers, batch_size=batch_size, max_features=max_features
    )
    other = {"bias_group": "label", "label": "bias_group"}
    balance = {t: attrs[other[t]] for t in targets} if balanced else None
    return probe_layers(acts, {t: attrs[t] for t in targets}, config, balance=balance)


# --------------------------------------------------------------------- single
# components


def component_encoding(
    features: Any,
    targets: Mapping[str, Any],
    n_components: int = 10,
    config: ProbeConfig | None = None,
    *,
    balance: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """How well each of the first principal components alone decodes each target.

    Per fold, a PCA is fitted on the fitting folds; a one-feature logistic
    regression on component ``k`` (which also learns its sign) is fitted there and
    scores the held-out fold.

    Parameters
    ----------
    features : array-like
        ``(N, F)`` activations of one layer.
    targets : mapping of str to array
        ``{name: (N,) binary codes}``.
    n_components : int, default 10
        Number of leading components to test (>= 1).
    config : ProbeConfig, optional
        Folds, bootstrap and seed (``variance`` is not used here).
    balance : mapping of str to array, optional
        Per target, an attribute to balance against (see :func:`probe`).

    Returns
    -------
    pandas.DataFrame
        One row per (component, target): ``component`` (1-based), ``target``,
        ``explained_variance`` (share, from a PCA on all samples, for orientation
        only), ``auroc``, ``auroc_low``, ``auroc_high``, ``accuracy``.
    """
    from sklearn.linear_model import LogisticRegression

    config = config or ProbeConfig()
    x_all = np.asarray(features, dtype=np.float64)
    x_all = x_all.reshape(x_all.shape[0], -1)
    if not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ValueError(f"n_components={n_components!r} must be an integer >= 1")
    k_max = int(
        min(
            n_components,
            x_all.shape[1],
            x_all.shape[0] // config.n_folds * (config.n_folds - 1) - 1,
        )
    )
    if k_max < 1:
        raise ValueError(
            f"too few samples ({x_all.shape[0]}) for {config.n_folds} folds"
        )
    explained = _PCA(n_components=k_max).fit(x_all)
    explained = explained.explained_variance_ / (x_all.var(0, ddof=1).sum() + 1e-300)
    balance = dict(balance or {})
    rows = []
    for name, target in targets.items():
        y_all = _binary_target(target, name)
        if len(y_all) != len(x_all):
            raise ValueError(
                f"target {name!r} holds {len(y_all)} entries for {len(x_all)} samples"
            )
        index = np.arange(len(y_all))
        if balance.get(name) is not None:
            index = balanced_index(
                y_all, np.asarray(balance[name]).reshape(-1), seed=config.seed
            )
        x, y = x_all[index], y_all[index]
        fold = _folds(y, config.n_folds, config.seed)
        scores = np.zeros((k_max, len(y)))
        for f in range(config.n_folds):
            fit, held = fold != f, fold == f
            pca = _PCA(n_components=k_max).fit(x[fit])
            z_fit, z_held = pca.transform(x[fit]), pca.transform(x[held])
            sd = z_fit.std(0) + 1e-12
            for k in range(k_max):
                lr = LogisticRegression(max_iter=config.max_iter)
                lr.fit(z_fit[:, [k]] / sd[k], y[fit])
                scores[k, held] = lr.predict_proba(z_held[:, [k]] / sd[k])[:, 1]
        for k in range(k_max):
            lo_acc, hi_acc, lo, hi = _bootstrap(
                y,
                scores[k],
                config.threshold,
                config.n_boot,
                config.confidence,
                config.seed,
            )
            rows.append(
                {
                    "component": k + 1,
                    "target": name,
                    "explained_variance": float(explained[k]),
                    "auroc": float(auroc(y, scores[k])),
                    "auroc_low": lo,
                    "auroc_high": hi,
                    "accuracy": float(((scores[k] >= config.threshold) == y).mean()),
                }
            )
    return pd.DataFrame(rows)


def subgroup_names(label: Any, bias_group: Any) -> np.ndarray:
    """Name of each subject's (label, bias group) subgroup, from :data:`SUBGROUPS`.

    Parameters
    ----------
    label, bias_group : array-like of {0, 1}
        Disease label and bias-group code per subject.

    Returns
    -------
    numpy.ndarray
        Strings: aligned subgroups agree with the shortcut (disease with the bias
        feature, control without it); misaligned ones contradict it.
    """
    y = np.asarray(label).astype(int).reshape(-1)
    a = np.asarray(bias_group).astype(int).reshape(-1)
    if len(y) != len(a):
        raise ValueError(f"label holds {len(y)} entries but bias_group holds {len(a)}")
    if not (set(np.unique(y)) <= {0, 1} and set(np.unique(a)) <= {0, 1}):
        raise ValueError("label and bias_group must hold codes 0 and 1")
    lookup = {
        (1, 1): SUBGROUPS[0],
        (0, 0): SUBGROUPS[1],
        (1, 0): SUBGROUPS[2],
        (0, 1): SUBGROUPS[3],
    }
    return np.array([lookup[(i, j)] for i, j in zip(y, a)], dtype=object)


class _DiseaseAxis:
    """The most disease-predictive principal component, chosen on a fitting part.

    A PCA with ``n_components`` is fitted on a stratified ``fit_fraction`` of the
    subjects; there, the component that best separates the labels (largest
    ``|AUROC - 0.5|``) is the disease component, oriented so that higher means more
    disease, and the best other component for the bias group is the bias component.
    """

    def __init__(
        self,
        features: Any,
        label: Any,
        bias_group: Any,
        n_components: int,
        fit_fraction: float,
        seed: int,
    ) -> None:

        x = np.asarray(features, dtype=np.float64)
        self.x = x.reshape(x.shape[0], -1)
        self.y = np.asarray(label).astype(int).reshape(-1)
        self.a = np.asarray(bias_group).astype(int).reshape(-1)
        self.names = subgroup_names(self.y, self.a)
        if len(self.y) != len(self.x):
            raise ValueError(
                f"features hold {len(self.x)} samples but label holds {len(self.y)}"
            )
        if not isinstance(n_components, (int, np.integer)) or n_components < 2:
            raise ValueError(f"n_components={n_components!r} must be an integer >= 2")
        if not 0 < fit_fraction < 1:
            raise ValueError(f"fit_fraction={fit_fraction!r} must be in (0, 1)")
        self.held, self.fit = stratified_split(self.y, self.a, fit_fraction, seed)
        k = int(min(n_components, self.x.shape[1], len(self.fit) - 1))
        self.pca = _PCA(n_components=k).fit(self.x[self.fit])
        z_fit = self.pca.transform(self.x[self.fit])
        self.auc_y = np.array([auroc(self.y[self.fit], z_fit[:, j]) for j in range(k)])
        self.auc_a = np.array([auroc(self.a[self.fit], z_fit[:, j]) for j in range(k)])
        self.d = int(np.argmax(np.abs(self.auc_y - 0.5)))
        rest = [j for j in range(k) if j != self.d]
        self.b = rest[int(np.argmax(np.abs(self.auc_a[rest] - 0.5)))]
        self.sign_d = 1.0 if self.auc_y[self.d] >= 0.5 else -1.0
        self.sign_b = 1.0 if self.auc_a[self.b] >= 0.5 else -1.0

    def transform(self, x: np.ndarray) -> np.ndarray:
        return self.pca.transform(
            np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1)
        )

    def disease(self, x: np.ndarray) -> np.ndarray:
        """Oriented coordinates on the disease component."""
        return self.sign_d * self.transform(x)[:, self.d]

    def attrs(self) -> dict[str, float]:
        d, b = self.d, self.b
        return {
            "disease_component": d + 1,
            "bias_component": b + 1,
            "disease_component_fit_auroc": float(max(self.auc_y[d], 1 - self.auc_y[d])),
            "bias_component_fit_auroc": float(max(self.auc_a[b], 1 - self.auc_a[b])),
            "bias_auroc_of_disease_component": float(
                max(self.auc_a[d], 1 - self.auc_a[d])
            ),
        }


def component_projection(
    features: Any,
    label: Any,
    bias_group: Any,
    n_components: int = 10,
    *,
    fit_fraction: float = 0.5,
    seed: int = 0,
) -> pd.DataFrame:
    """Held-out subjects' coordinates on the most disease- and most bias-predictive
    components.

    A PCA with ``n_components`` is fitted on a stratified ``fit_fraction`` of the
    subjects; on that same part, the component whose values best separate the
    labels (largest ``|AUROC - 0.5|``) is chosen as the disease component, oriented
    so that higher means more disease, and the best of the remaining components for
    the bias group as the bias component. Only the other subjects are returned, so
    the choice of components is never scored on the data it was made with.

    Parameters
    ----------
    features : array-like
        ``(N, F)`` activations of one layer.
    label, bias_group : array-like of {0, 1}
        Per subject.
    n_components : int, default 10
        Components to choose from (>= 2).
    fit_fraction : float, default 0.5
        Share of subjects used to fit the PCA and choose the components, in (0, 1).
    seed : int, default 0
        Seed of the split.

    Returns
    -------
    pandas.DataFrame
        Held-out subjects: ``index`` (position in the input), ``disease_component``,
        ``bias_component``, ``label``, ``bias_group``, ``subgroup``
        (:data:`SUBGROUPS`), ``aligned`` (bool). ``attrs`` holds the chosen component
        numbers (1-based) and their fitting-part AUROCs.
    """
    axis = _DiseaseAxis(features, label, bias_group, n_components, fit_fraction, seed)
    held = axis.held
    z_held = axis.transform(axis.x[held])
    out = pd.DataFrame(
        {
            "index": held,
            "disease_component": axis.sign_d * z_held[:, axis.d],
            "bias_component": axis.sign_b * z_held[:, axis.b],
            "label": axis.y[held],
            "bias_group": axis.a[held],
            "subgroup": axis.names[held],
        }
    )
    out["aligned"] = out["label"] == out["bias_group"]
    out.attrs.update(axis.attrs())
    return out


def disease_shift(
    features: Any,
    twin_features: Any,
    label: Any,
    bias_group: Any,
    n_components: int = 10,
    *,
    fit_fraction: float = 0.5,
    seed: int = 0,
) -> pd.DataFrame:
    """How far the bias effect moves each subject along the disease direction.

    The disease direction is the most disease-predictive principal component,
    chosen on a fitting part of the subjects exactly as in
    :func:`component_projection`. For every held-out subject in the bias group,
    the shift is the difference between its coordinate and its counterfactual
    twin's (same subject, bias effect removed) on that component, in standard
    deviations of the component over the held-out subjects. A positive shift
    means the bias feature alone moves the subject towards "disease": the
    representation-level signature of a shortcut. Because each subject is
    compared with its own twin, anatomy and disease drop out of the difference.

    Parameters
    ----------
    features : array-like
        ``(N, F)`` activations of one layer for the subjects' images.
    twin_features : array-like
        ``(N, F)`` activations of the same layer for their twins, same order.
    label, bias_group : array-like of {0, 1}
        Per subject.
    n_components : int, default 10
        Components to choose the disease direction from (>= 2).
    fit_fraction : float, default 0.5
        Share of subjects used to fit the PCA and choose the direction, in (0, 1).
    seed : int, default 0
        Seed of the split.

    Returns
    -------
    pandas.DataFrame
        One row per held-out subject of the bias group: ``index``, ``label``,
        ``subgroup``, ``shift``. ``attrs`` holds the chosen components (see
        :func:`component_projection`) and ``disease_separation``: the distance
        between the mean diseased and mean control subject on the component, in
        the same units (the size of a shift that would mimic the disease).

    Raises
    ------
    ValueError
        For mismatched shapes or invalid options.
    """
    twin = np.asarray(twin_features, dtype=np.float64)
    twin = twin.reshape(twin.shape[0], -1)
    axis = _DiseaseAxis(features, label, bias_group, n_components, fit_fraction, seed)
    if twin.shape != axis.x.shape:
        raise ValueError(
            f"twin_features have shape {twin.shape}; features have {axis.x.shape}"
        )
    held = axis.held
    z = axis.disease(axis.x[held])
    scale = float(z.std(ddof=1)) if len(z) > 1 else 1.0
    scale = scale if scale > 0 else 1.0
    y_held = axis.y[held]
    members = held[axis.a[held] == 1]
    shift = (axis.disease(axis.x[members]) - axis.disease(twin[members])) / scale
    out = pd.DataFrame(
        {
            "index": members,
            "label": axis.y[members],
            "subgroup": axis.names[members],
            "shift": shift,
        }
    )
    separation = (
        (z[y_held == 1].mean() - z[y_held == 0].mean()) / scale
        if len(set(y_held)) == 2
        else math.nan
    )
    out.attrs.update({**axis.attrs(), "disease_separation": float(separation)})
    return out


def model_disease_shift(
    model: Any,
    data: Any,
    layer: str,
    n_components: int = 10,
    *,
    fit_fraction: float = 0.5,
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
    max_features: int | None = 16384,
) -> dict[str, float]:
    """Summary of :func:`disease_shift` for one model and layer, with intervals.

    Parameters
    ----------
    model : torch.nn.Module or FitResult
        The network (use data it was not trained on).
    data : Cohort
        Subjects with ``images``, ``twins``, ``label`` and ``bias_group``.
    layer : str
        Layer to read (see :func:`collect_activations`).
    n_components, fit_fraction, seed
        See :func:`disease_shift`.
    n_boot : int, default 500
        Bootstrap replicates over subjects for the intervals (>= 1).
    confidence : float, default 0.95
        Level of the intervals.
    max_features : int or None, default 16384
        Passed to :func:`collect_activations`.

    Returns
    -------
    dict
        ``layer``; ``shift`` (mean over the held-out bias-group subjects) with
        ``shift_low``/``shift_high``; ``shift_controls`` and ``shift_diseased``
        (misaligned and aligned subjects); ``disease_separation``;
        ``shift_share`` (shift / disease separation); ``n``; and the attributes
        of :func:`disease_shift`.
    """
    twins = getattr(data, "twins", None)
    if twins is None:
        raise ValueError(
            "data has no twins: the shift is measured against each subject's twin"
        )

    d = as_data(data)
    acts = collect_activations(model, d.images, [layer], max_features=max_features)[
        layer
    ]
    twin_acts = collect_activations(
        model, _images(twins), [layer], max_features=max_features
    )[layer]
    table = disease_shift(
        acts,
        twin_acts,
        d.label,
        d.bias_group,
        n_components,
        fit_fraction=fit_fraction,
        seed=seed,
    )
    mean, low, high = _interval(
        table["shift"], n_boot=n_boot, confidence=confidence, seed=seed
    )
    sep = table.attrs["disease_separation"]
    return {
        "layer": layer,
        "shift": mean,
        "shift_low": low,
        "shift_high": high,
        "shift_controls": float(table.loc[table["label"] == 0, "shift"].mean()),
        "shift_diseased": float(table.loc[table["label"] == 1, "shift"].mean()),
        "disease_separation": sep,
        "shift_share": float(mean / sep) if sep and np.isfinite(sep) else math.nan,
        "n": int(len(table)),
        **table.attrs,
    }


def twin_sensitivity(
    model: Any,
    data: Any,
    layers: Sequence[str] | None = None,
    *,
    twins: Any | None = None,
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
    batch_size: int = 128,
    max_features: int | None = None,
) -> pd.DataFrame:
    """Per layer, how much removing the bias effect changes the activations.

    For each subject ``x`` of the bias group and its counterfactual twin (the
    same subject without the bias effect), the relative change
    ``||f_l(x) - f_l(twin)|| / ||f_l(x)||`` of layer ``l``'s output. On the
    ``"input"`` layer this is the share of the image the bias effect changes:
    the raw reference for every network.

    Parameters
    ----------
    model : torch.nn.Module or FitResult
        The network.
    data : Cohort or images
        Subjects (``images`` with ``twins`` and ``bias_group``), or an image tensor
        with ``twins`` given (then every subject is used).
    layers : sequence of str, optional
        See :func:`collect_activations` (default: the model's feature blocks).
    twins : images, optional
        The twins, same order (default ``data.twins``).
    n_boot : int, default 500
        Bootstrap replicates over subjects for the interval (>= 1).
    confidence : float, default 0.95
        Level of the interval.
    seed : int, default 0
        Seed of the bootstrap.
    batch_size : int, default 128
        Images per forward pass.
    max_features : int or None, default None
        Passed to :func:`collect_activations` (pooling averages away some of a
        local change, so the default keeps every value).

    Returns
    -------
    pandas.DataFrame
        One row per layer: ``layer``, ``depth``, ``sensitivity`` (mean relative
        change), ``sensitivity_low``, ``sensitivity_high`` (percentile bootstrap
        over subjects), ``median``, ``n`` (subjects).

    Raises
    ------
    ValueError
        Without twins, or without subjects in the bias group.
    """
    twins = getattr(data, "twins", None) if twins is None else twins
    if twins is None:
        raise ValueError("no twins: pass data with .twins or the twins argument")
    images = _images(data)
    twin_images = _images(twins)
    if twin_images.shape != images.shape:
        raise ValueError(
            f"twins have shape {tuple(twin_images.shape)}; images have "
            f"{tuple(images.shape)}"
        )
    if hasattr(data, "bias_group"):
        members = np.flatnonzero(np.asarray(data.bias_group) == 1)
    else:
        members = np.arange(len(images))
    if len(members) == 0:
        raise ValueError("no subject in the bias group: their twins equal the images")
    idx = torch.as_tensor(members)
    kw = dict(layers=layers, batch_size=batch_size, max_features=max_features)
    acts = collect_activations(model, images[idx], **kw)
    twin_acts = collect_activations(model, twin_images[idx], **kw)
    rows = []
    for depth, layer in enumerate(acts):
        a, t = acts[layer].astype(np.float64), twin_acts[layer].astype(np.float64)
        ratio = np.linalg.norm(a - t, axis=1) / np.maximum(
            np.linalg.norm(a, axis=1), 1e-12
        )
        mean, low, high = _interval(
            ratio, n_boot=n_boot, confidence=confidence, seed=seed
        )
        rows.append(
            {
                "layer": layer,
                "depth": depth,
                "sensitivity": mean,
                "sensitivity_low": low,
                "sensitivity_high": high,
                "median": float(np.median(ratio)),
                "n": int(len(ratio)),
            }
        )
    return pd.DataFrame(rows)


def untrained_model(
    in_shape: Sequence[int] | Any,
    config: Any = None,
    *,
    seed: int = 0,
    **overrides: Any,
) -> nn.Module:
    """The network :func:`faimi_tutorial.training.loop.fit` would start from: same
    architecture, same seed.

    A reference for probing: whatever an untrained network's layers encode comes
    from the image and the architecture, not from learning.

    Parameters
    ----------
    in_shape : sequence of int or data
        ``(channels, *grid)``, or data (a cohort, images) whose shape is read.
    config : TrainConfig or str, optional
        Training settings or preset name (default: the active preset), as given
        to :func:`~faimi_tutorial.training.loop.fit`.
    seed : int, default 0
        The training seed whose initial weights are wanted.
    **overrides
        Fields of :class:`~faimi_tutorial.training.loop.TrainConfig`.

    Returns
    -------
    torch.nn.Module
        Freshly initialised, in eval mode.
    """

    if isinstance(in_shape, (tuple, list)) and all(
        isinstance(v, (int, np.integer)) for v in in_shape
    ):
        shape = tuple(int(v) for v in in_shape)
    else:
        shape = tuple(_images(in_shape).shape[1:])
    if config is None:
        config = presets.active_preset()
    if isinstance(config, str):
        dims = len(shape) - 1
        config = TrainConfig.preset(
            config, dims=dims if dims in (2, 3) else None, **overrides
        )
    elif overrides:
        config = TrainConfig(**{**config.to_dict(), **overrides})
    seed_everything(seed)
    return build_model(config.model_config(shape)).eval()


@step
def layer_report(
    models: Mapping[str, Any],
    data: Any,
    layers: Sequence[str] | None = None,
    config: ProbeConfig | None = None,
    *,
    n_components: int = 10,
    max_features: int | None = 2048,
    targets: Sequence[str] = ("bias_group", "label"),
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Probes, twin sensitivity and disease-direction shift of several models, layer by
    layer.

    Every model is read on the same data (subjects none of them was trained on,
    with counterfactual twins), so the curves can be compared with each other and
    with the ``"input"`` layer, which is the same for every model: the raw-image
    reference.

    Parameters
    ----------
    models : mapping of str to model or sequence of models
        ``{name: FitResult or torch.nn.Module}``, e.g. an untrained network, a
        model trained without the bias effect and one trained with it; a
        sequence of models (e.g. one per seed) gives one run each.
    data : Cohort
        Probe subjects with ``images``, ``twins``, ``label`` and ``bias_group``.
    layers : sequence of str, optional
        Layers to read (default: ``"input"`` and the first model's feature blocks).
    config : ProbeConfig, optional
        Probe settings (its ``n_boot``, ``confidence`` and ``seed`` are also used
        for the intervals of the other two measures).
    n_components : int, default 10
        Components the disease direction is chosen from (:func:`disease_shift`).
    max_features : int or None, default 2048
        Pooling of wide layers for the probes and the shift (see
        :func:`collect_activations`); the twin sensitivity keeps every value.
    targets : sequence of str, default ("bias_group", "label")
        What the probes decode (each balanced against the other).
    seed : int, default 0
        Seed of the split that chooses the disease direction.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``"probes"`` (rows of :func:`probe_model`), ``"sensitivity"`` (rows of
        :func:`twin_sensitivity`) and ``"shift"`` (one row of
        :func:`model_disease_shift` per layer), each with ``model`` and ``seed``
        columns (``seed``: the model's training seed, or its position in the
        sequence when it has none).
    """

    if not models:
        raise ValueError("models is empty; give at least one {name: model}")
    config = config or ProbeConfig()
    runs = []
    for name, value in models.items():
        group = list(value) if isinstance(value, (list, tuple)) else [value]
        runs += [(name, int(getattr(m, "seed", i)), m) for i, m in enumerate(group)]
    if layers is None:
        layers = ["input", *layer_names(_network(runs[0][2]))]
    layers = list(layers)
    probes, sensitivity, shift = [], [], []
    for name, run_seed, model in runs:
        probes.append(
            probe_model(
                model, data, layers, config, targets=targets, max_features=max_features
            ).assign(model=name, seed=run_seed)
        )
        sensitivity.append(
            twin_sensitivity(
                model,
                data,
                layers,
                n_boot=max(config.n_boot, 1),
                confidence=config.confidence,
                seed=config.seed,
            ).assign(model=name, seed=run_seed)
        )
        rows = []
        for depth, layer in enumerate(layers):
            row = model_disease_shift(
                model,
                data,
                layer,
                n_components,
                n_boot=max(config.n_boot, 1),
                confidence=config.confidence,
                seed=seed,
                max_features=max_features,
            )
            rows.append({"depth": depth, **row})
        shift.append(pd.DataFrame(rows).assign(model=name, seed=run_seed))
    return {
        "probes": pd.concat(probes, ignore_index=True),
        "sensitivity": pd.concat(sensitivity, ignore_index=True),
        "shift": pd.concat(shift, ignore_index=True),
    }


# --------------------------------------------------------------------- statistics over
# seeds


def _interval(
    values: Any,
    *,
    method: str = "bootstrap",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean and interval over runs:
    :func:`faimi_tutorial.fairness.metrics.mean_interval`."""

    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot={n_boot!r} must be an integer >= 1")
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    return mean_interval(
        v, confidence=confidence, method=method, n_boot=int(n_boot), seed=seed
    )


def seed_summary(
    table: pd.DataFrame,
    value: str,
    by: str | Sequence[str],
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean of a value over runs (seeds) per setting, with a percentile-bootstrap
    interval.

    The interval is :func:`faimi_tutorial.fairness.metrics.mean_interval`'s: it stays
    inside
    the range of the values, so a mean of rates stays in [0, 1]. The table keeps
    the layout of the layer tables (``<value>``, ``<value>_low``, ``<value>_high``
    and ``depth``), ready for :func:`faimi_tutorial.viz.plotting.plot_layer_curves`.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per run and setting.
    value : str
        Numeric column.
    by : str or sequence of str
        Columns identifying a setting (e.g. ``["model", "layer"]``).
    n_boot : int, default 2000
        Bootstrap replicates (>= 1).
    confidence : float, default 0.95
        Level of the interval, in (0, 1).
    seed : int, default 0
        Seed of the resampling.

    Returns
    -------
    pandas.DataFrame
        One row per setting: the ``by`` columns, ``<value>`` (mean),
        ``<value>_low``, ``<value>_high``, ``n_runs``; settings keep their order of
        first appearance (and a ``depth`` column is kept when present).
    """
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*by, value] if c not in table.columns]
    if missing:
        raise ValueError(
            f"columns {missing!r} are not in the table (has {list(table.columns)})"
        )
    rows = []
    for key, part in table.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        mean, low, high = _interval(
            part[value], n_boot=n_boot, confidence=confidence, seed=seed
        )
        row = dict(zip(by, key))
        if "depth" in part.columns and "depth" not in by:
            row["depth"] = part["depth"].iloc[0]
        row.update(
            {
                value: mean,
                f"{value}_low": low,
                f"{value}_high": high,
                "n_runs": int(part[value].notna().sum()),
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def compare_to_reference(
    table: pd.DataFrame,
    value: str,
    column: str,
    reference: Any,
    *,
    by: str | Sequence[str] = (),
    pair: str = "seed",
    method: str = "t",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Differences to a reference setting, paired by seed, with an interval over the
    pairs.

    For every other value of ``column`` (e.g. every model), and every ``by``
    setting (e.g. every layer), the difference ``value(other) - value(reference)``
    is taken within each ``pair`` (the seed: same data, same initial weights), and
    the mean difference gets an interval over the pairs: by default a Student
    t-interval (a difference is not bounded like a rate, and with few seeds the
    t-interval is the wider, more careful one), or a percentile bootstrap.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per run.
    value : str
        Numeric column to compare.
    column : str
        Column whose values are compared (e.g. ``"model"``).
    reference : any
        The value of ``column`` everything is compared with.
    by : str or sequence of str, default ()
        Settings compared separately (e.g. ``"layer"``).
    pair : str, default "seed"
        Column that pairs runs.
    method : {"t", "bootstrap"}, default "t"
        Interval over the pairs: Student t or percentile bootstrap.
    n_boot : int, default 2000
        Bootstrap replicates (only for the bootstrap).
    confidence : float, default 0.95
        Level of the interval, in (0, 1).
    seed : int, default 0
        Seed of the resampling (only for the bootstrap).

    Returns
    -------
    pandas.DataFrame
        One row per (``by``, other): ``by`` columns, ``column``, ``reference``,
        ``difference``, ``difference_low``, ``difference_high``, ``n_pairs``,
        ``n_positive`` and ``verdict``: ``"higher"`` or ``"lower"`` when the
        interval excludes zero, otherwise ``"no difference shown"``.

    Raises
    ------
    ValueError
        For missing columns or a reference that does not occur.
    """
    if method not in ("t", "bootstrap"):
        raise ValueError(f"method={method!r} is invalid; allowed: t, bootstrap")
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*by, value, column, pair] if c not in table.columns]
    if missing:
        raise ValueError(
            f"columns {missing!r} are not in the table (has {list(table.columns)})"
        )
    if not (table[column] == reference).any():
        raise ValueError(
            f"reference={reference!r} does not occur in column {column!r}; "
            f"values: {list(dict.fromkeys(table[column]))}"
        )
    rows = []
    groups = table.groupby(by, sort=False) if by else [((), table)]
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        ref = part[part[column] == reference].groupby(pair)[value].mean()
        for other in dict.fromkeys(part[column]):
            if other == reference:
                continue
            cur = part[part[column] == other].groupby(pair)[value].mean()
            diff = (cur - ref).dropna()
            mean, low, high = _interval(
                diff, method=method, n_boot=n_boot, confidence=confidence, seed=seed
            )
            verdict = (
                "higher" if low > 0 else "lower" if high < 0 else "no difference shown"
            )
            rows.append(
                {
                    **dict(zip(by, key)),
                    column: other,
                    "reference": reference,
                    "difference": mean,
                    "difference_low": low,
                    "difference_high": high,
                    "n_pairs": int(len(diff)),
                    "n_positive": int((diff > 0).sum()),
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------- ShorT


def fit_attribute_head(
    data: Any,
    config: Any = None,
    *,
    lam: float = 0.0,
    attribute_weight: float = 1.0,
    val: Any | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    **overrides: Any,
) -> Any:
    """Train a disease classifier with a gradient-scaled bias-attribute head (ShorT).

    The loss is ``BCE(disease) + attribute_weight * CE(attribute head)``; the head
    (:class:`AttributeHead`) reads the penultimate features through
    :class:`GradientScale` ``(lam)``, so the network is pushed to encode the bias
    group less (``lam < 0``) or more (``lam > 0``). ``lam = 0`` blocks the head's
    gradient: the model is then the plain :func:`~faimi_tutorial.training.loop.fit`
    model
    of the same seed, since both keep the epoch chosen by the configuration's
    ``selection`` rule (:func:`~faimi_tutorial.training.loop.selection_score`). A strong
    reversal can stop the disease from being learnt at all. This *is*
    :func:`faimi_tutorial.training.loop.fit` with the
    :class:`~faimi_tutorial.training.objectives.AttributeTask` objective in place of a
    mitigation: same data handling, seeding, device choice, loop, early stopping
    and :class:`~faimi_tutorial.training.loop.FitResult`.

    Parameters
    ----------
    data : cohort-like, tuple, ArrayData or path
        Training data (see :func:`faimi_tutorial.training.loop.as_data`).
    config : TrainConfig or str, optional
        Training settings or a preset name (default: the active preset).
    lam : float, default 0.0
        Gradient multiplier of the attribute head into the network.
    attribute_weight : float, default 1.0
        Weight of the attribute loss (>= 0).
    val : optional
        Validation data (default: the cohort's val split or a held-out fraction).
    seed : int, default 0
        Seeds weights, batch order and the validation split.
    device : str or torch.device, optional
        Default: CUDA when present, else CPU.
    progress : bool, default True
        Progress bar over epochs.
    **overrides
        Fields of :class:`~faimi_tutorial.training.loop.TrainConfig`.

    Returns
    -------
    FitResult
        The selected model; ``history`` has ``attribute_loss`` and
        ``attribute_accuracy`` (training batches) per epoch, and ``extras`` holds
        ``lam``, ``attribute_weight`` and the head's ``attribute_head`` state dict.
    """
    objective = AttributeTask(lam, attribute_weight)  # validates both
    config = resolve_config(config, data, **overrides)
    if config.mitigation != "none":
        raise ValueError(
            f"mitigation={config.mitigation!r} is invalid here; allowed: none "
            "(the attribute head is the intervention)"
        )
    result = fit(
        data,
        config,
        val=val,
        seed=seed,
        device=device,
        progress=progress,
        objective=objective,
    )
    result.extras = {
        "lam": objective.lam,
        "attribute_weight": objective.weight,
        **result.extras,
    }
    return result


def encoding_strength(
    model: Any,
    data: Any,
    layer: str = "penultimate",
    config: ProbeConfig | None = None,
    *,
    balanced: bool = True,
) -> ProbeResult:
    """How strongly a frozen model encodes the bias group: a held-out probe on one
    layer.

    This is the "encoding" axis of ShorT: a linear read-out of the attribute from the
    model's features (Brown et al. retrain a linear head on frozen features; here the
    same PCA + logistic probe as :func:`probe`).

    Parameters
    ----------
    model : torch.nn.Module or FitResult
        The trained network.
    data : cohort-like or ArrayData
        Data the model was not trained on, with ``label`` and ``bias_group``.
    layer : str, default "penultimate"
        Which layer to read (see :func:`collect_activations`).
    config : ProbeConfig, optional
        Probe settings.
    balanced : bool, default True
        Balance the bias group against the label (see :func:`probe`).

    Returns
    -------
    ProbeResult
        Held-out decoding of the bias group.
    """

    d = as_data(data)
    feats = collect_activations(model, d.images, [layer])[layer]
    return probe(feats, d.bias_group, config, balance=d.label if balanced else None)


def short_evaluate(
    model: Any,
    test: Any,
    *,
    lam: float = 0.0,
    probe_config: ProbeConfig | None = None,
    threshold: float = 0.5,
) -> dict[str, float]:
    """One ShorT data point: a model's encoding of the bias group and its fairness gaps.

    Parameters
    ----------
    model : FitResult or torch.nn.Module
        A trained model (e.g. from :func:`fit_attribute_head`, or a plain
        :func:`faimi_tutorial.training.loop.fit` model, which is the ``lam = 0`` case).
    test : cohort-like or ArrayData
        Held-out data with ``label`` and ``bias_group`` (and ``twins`` for the flip
        rate).
    lam : float, default 0.0
        The model's gradient multiplier, recorded in the row.
    probe_config : ProbeConfig, optional
        Settings of the encoding probe (default: 5 folds, 200 bootstrap replicates).
    threshold : float, default 0.5
        Global decision threshold of the gaps.

    Returns
    -------
    dict
        ``lam``, ``seed``, ``encoding_auroc`` (with ``_low``/``_high``),
        ``encoding_accuracy``, ``attribute_accuracy`` (NaN without an attribute head),
        ``best_epoch`` and the entries of
        :func:`faimi_tutorial.experiments.sweeps.evaluate`.
    """

    enc = encoding_strength(model, test, config=probe_config or ProbeConfig(n_boot=200))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = evaluate(model, test, threshold=threshold)
    history = getattr(model, "history", None)
    attr = (
        float(history["attribute_accuracy"].iloc[-1])
        if isinstance(history, pd.DataFrame) and "attribute_accuracy" in history
        else math.nan
    )
    return {
        "lam": float(lam),
        "seed": int(getattr(model, "seed", -1)),
        "encoding_auroc": enc.auroc,
        "encoding_auroc_low": enc.auroc_low,
        "encoding_auroc_high": enc.auroc_high,
        "encoding_accuracy": enc.accuracy,
        "attribute_accuracy": attr,
        "best_epoch": int(getattr(model, "best_epoch", -1)),
        **ev,
    }


@step
def short_sweep(
    cohort: Any,
    lambdas: Sequence[float] = (-1.0, -0.5, 0.0, 0.5, 1.0),
    seeds: Sequence[int] = (0,),
    config: Any = None,
    *,
    test: Any | None = None,
    probe_config: ProbeConfig | None = None,
    attribute_weight: float = 1.0,
    threshold: float = 0.5,
    progress: bool = True,
    keep_models: bool = False,
    **overrides: Any,
) -> pd.DataFrame | tuple[pd.DataFrame, dict[tuple[float, int], Any]]:
    """The ShorT sweep: models trained with gradient-scaled attribute heads, evaluated.

    For every ``lam`` and seed, :func:`fit_attribute_head` trains a model and
    :func:`short_evaluate` measures, on the test data, how well the bias group can be
    read from its penultimate features and its subgroup gaps.

    Parameters
    ----------
    cohort : cohort-like
        Training data with train/val splits (or see :func:`fit_attribute_head`).
    lambdas : sequence of float, default (-1, -0.5, 0, 0.5, 1)
        Gradient multipliers of the attribute head.
    seeds : sequence of int, default (0,)
        Training seeds per ``lam``.
    config : TrainConfig or str, optional
        Training settings or preset name.
    test : cohort-like, optional
        Evaluation data (default ``cohort.test``).
    probe_config : ProbeConfig, optional
        Settings of the encoding probe (default: 5 folds, 200 bootstrap replicates).
    attribute_weight : float, default 1.0
        Weight of the attribute loss.
    threshold : float, default 0.5
        Global decision threshold of the gaps.
    progress : bool, default True
        Progress bar over runs.
    keep_models : bool, default False
        Also return the trained models (e.g. to probe every layer of the ``lam = 0``
        models, which are plain empirical-risk models: their head's gradient is
        blocked).
    **overrides
        Fields of :class:`~faimi_tutorial.training.loop.TrainConfig`.

    Returns
    -------
    pandas.DataFrame or (pandas.DataFrame, dict)
        One row per run: ``lam``, ``seed``, ``encoding_auroc`` (with
        ``_low``/``_high``),
        ``encoding_accuracy``, ``attribute_accuracy`` (last training epoch),
        ``best_epoch``, and the columns of
        :func:`faimi_tutorial.experiments.sweeps.evaluate`
        (``AUROC``, ``TPR_gap``, ``FPR_gap``, ``flip_rate`` …). With
        ``keep_models``, also ``{(lam, seed): FitResult}``.
    """
    from tqdm.auto import tqdm

    lambdas = [float(v) for v in lambdas]
    seeds = [int(s) for s in seeds]
    if not lambdas or not seeds:
        raise ValueError(
            f"lambdas={lambdas!r} and seeds={seeds!r} must both be non-empty"
        )
    test = cohort.test if test is None else test
    probe_config = probe_config or ProbeConfig(n_boot=200)
    rows = []
    kept: dict[tuple[float, int], Any] = {}
    runs = [(lam, s) for s in seeds for lam in lambdas]
    for lam, s in tqdm(runs, desc="ShorT sweep", disable=not progress, leave=False):
        result = fit_attribute_head(
            cohort,
            config,
            lam=lam,
            attribute_weight=attribute_weight,
            seed=s,
            progress=False,
            **overrides,
        )
        rows.append(
            short_evaluate(
                result, test, lam=lam, probe_config=probe_config, threshold=threshold
            )
        )
        if keep_models:
            kept[(lam, s)] = result
    table = pd.DataFrame(rows)
    return (table, kept) if keep_models else table


@dataclass
class ShortcutTest:
    """Result of :func:`short_test`: does the fairness gap follow the encoding?

    Attributes
    ----------
    x, y : str
        The encoding column and the gap column.
    slope, slope_low, slope_high : float
        Least-squares slope of gap on encoding and its bootstrap interval (runs
        resampled).
    intercept : float
        Intercept of that line.
    spearman, spearman_p : float
        Rank correlation across runs and its two-sided p-value: the trend test.
    n_runs : int
        Number of models.
    confidence : float
        Level of the slope interval.
    alpha : float
        Significance level of the trend test.
    within : str or None
        Column whose groups (e.g. seeds) were centred before the test, or ``None``.
    """

    x: str
    y: str
    slope: float
    slope_low: float
    slope_high: float
    intercept: float
    spearman: float
    spearman_p: float
    n_runs: int
    confidence: float
    alpha: float = 0.05
    within: str | None = None

    @property
    def shortcut(self) -> bool:
        """True only when the trend test rejects "no monotone relation" at ``alpha``.

        The verdict follows the rank-correlation test alone; the slope and its
        interval describe the size of the relation, not whether it exists.
        """
        return bool(np.isfinite(self.spearman_p) and self.spearman_p < self.alpha)

    @property
    def verdict(self) -> str:
        """One sentence stating the verdict and the test behind it."""
        where = f" within each {self.within}" if self.within else ""
        stats_text = (
            f"Spearman rho {self.spearman:+.2f}{where}, p = {self.spearman_p:.3g} "
            f"over {self.n_runs} models, alpha = {self.alpha:g}"
        )
        if self.shortcut:
            direction = "rises" if self.spearman > 0 else "falls"
            return (
                f"shortcut: the {self.y} {direction} with the {self.x} ({stats_text})"
            )
        return (
            f"no shortcut shown: no monotone trend of the {self.y} with the {self.x} "
            f"({stats_text})"
        )

    def as_dict(self) -> dict[str, Any]:
        """The fields and the verdict as a plain dictionary."""
        return {**asdict(self), "shortcut": self.shortcut, "verdict": self.verdict}


def short_test(
    runs: pd.DataFrame,
    x: str = "encoding_auroc",
    y: str = "TPR_gap",
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    alpha: float = 0.05,
    within: str | None = None,
    seed: int = 0,
) -> ShortcutTest:
    """Relate measured encoding to the fairness gap across the models of a ShorT sweep.

    Brown et al. (2023): if models that encode the attribute more also show a larger
    fairness gap, the model's predictions depend on the attribute (shortcut
    learning); if the gap does not move while encoding does, encoding alone is
    harmless for that metric. The verdict is the trend test: a Spearman rank
    correlation across the models, significant at ``alpha``. With few models the
    test has little power, so "no shortcut shown" is not "no shortcut".

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per model (e.g. from :func:`short_sweep`).
    x : str, default "encoding_auroc"
        Encoding column.
    y : str, default "TPR_gap"
        Fairness-gap column.
    n_boot : int, default 2000
        Bootstrap replicates over runs for the slope interval (>= 1).
    confidence : float, default 0.95
        Level of the slope interval.
    alpha : float, default 0.05
        Significance level of the trend test, in (0, 1).
    within : str, optional
        A column grouping runs that share everything but the intervention (the
        seed: same cohort, same initial weights). Encoding and gap are centred
        within each group before the test, so that only the changes the
        intervention makes count, not differences between cohorts.
    seed : int, default 0
        Seed of the bootstrap.

    Returns
    -------
    ShortcutTest
        Slope with interval, rank correlation and the verdict.

    Raises
    ------
    ValueError
        For missing columns, fewer than three runs, or invalid options.
    """
    from scipy import stats

    for col in (x, y) + ((within,) if within is not None else ()):
        if col not in runs.columns:
            raise ValueError(
                f"column {col!r} is not in runs (has {list(runs.columns)})"
            )
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot!r} must be >= 1")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} must be in (0, 1)")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must be in (0, 1)")
    data = runs[[x, y]].astype(float)
    if within is not None:
        data = data.assign(group=runs[within].to_numpy()).dropna()
        data[[x, y]] = data[[x, y]] - data.groupby("group")[[x, y]].transform("mean")
    data = data[[x, y]].dropna()
    if len(data) < 3:
        raise ValueError(
            f"need at least 3 runs with finite {x} and {y}; got {len(data)}"
        )
    u, v = data[x].to_numpy(), data[y].to_numpy()
    slope, intercept = np.polyfit(u, v, 1)
    slopes = []
    for idx in bootstrap_indices(len(u), n_boot, seed=seed):
        if np.ptp(u[idx]) > 0:
            slopes.append(np.polyfit(u[idx], v[idx], 1)[0])
    a = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(slopes, [a, 100 - a]) if slopes else (math.nan, math.nan)
    rho, p = stats.spearmanr(u, v)
    return ShortcutTest(
        x,
        y,
        float(slope),
        float(lo),
        float(hi),
        float(intercept),
        float(rho),
        float(p),
        int(len(u)),
        float(confidence),
        float(alpha),
        within,
    )
