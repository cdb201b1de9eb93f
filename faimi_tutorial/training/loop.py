"""Fit and predict, with seeds, early stopping and bias-mitigation strategies.

The same two verbs serve every chapter::

    result = ft.training.fit(cohort, mitigation="reweighing", seed=0)
    scores = ft.training.predict(result, cohort.test)     # P(disease) per image

``fit`` takes in-memory data (a simulated cohort, anything with ``.images``,
``.label`` and ``.bias_group``, or plain ``(images, label, bias_group)``
tensors/arrays) or a dataset folder written by :mod:`faimi_tutorial.data.datasets`.
It seeds torch and numpy so that a CPU run repeats exactly, picks the device
(CUDA when present), shows a progress bar (``progress=False`` for silence),
stops early when the validation loss stops improving, keeps the weights of the
best validation epoch (by loss, by overall metric or by worst-group metric) and
returns the per-epoch history.

Every model of the package is trained by one loop, :func:`run_epochs`, with an
objective from :mod:`faimi_tutorial.training.objectives`; ``fit`` maps the
configuration's
mitigation name to its objective (:meth:`TrainConfig.objective`). Mitigation
strategies, chosen by name (:data:`MITIGATIONS`):

``"none"``
    Empirical risk minimisation (ERM): mean binary cross-entropy.
``"reweighing"``
    Kamiran & Calders (2012): each sample of label ``y`` and group ``a`` is
    weighted ``P(y) P(a) / P(y, a)``, which makes label and group independent in
    the weighted training data
    (:func:`~faimi_tutorial.training.objectives.reweighing_weights`).
``"group_balanced"``
    Mini-batches are sampled with replacement so that every (label, group) cell is
    drawn equally often
    (:func:`~faimi_tutorial.training.objectives.balanced_sampling_weights`).
``"groupdro"``
    Group distributionally robust optimisation (Sagawa et al., 2020): a weight per
    (label, group) cell grows exponentially with that cell's loss, so training
    minimises (approximately) the worst cell's loss
    (:class:`~faimi_tutorial.training.objectives.GroupDROLoss`).
``"unlearning"``
    Bias unlearning (Dinsdale et al., 2021): a bias head learns to predict the
    bias group from the penultimate features, while the network is trained to
    make that head maximally confused
    (:func:`~faimi_tutorial.training.objectives.confusion_loss`).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from tqdm.auto import tqdm

from .. import presets
from .._version import __version__
from ..data import datasets
from ..fairness.metrics import auroc
from ..models.networks import (
    ARCHITECTURE_KEYS,
    ModelConfig,
    build_model,
    forward_with_features,
)
from ..runtime import choose_device, seed_everything
from ..validation import (
    check_choice,
    check_output_file,
    check_positive_int,
    check_probability,
    check_range,
    check_seed,
)
import faimi_tutorial.training.objectives as objectives
from .objectives import (  # noqa: F401  (the mitigations' building blocks, re-exported)
    MITIGATIONS,
    BiasUnlearner,
    GroupDROLoss,
    Objective,
    balanced_sampling_weights,
    cell_ids,
    confusion_loss,
    reweighing_weights,
)

#: Model-selection rules: minimum validation loss, best overall validation
#: metric, or best worst-group validation metric.
SELECTIONS: tuple[str, ...] = ("loss", "overall", "worst_group")

#: Metrics usable for model selection.
SELECTION_METRICS: tuple[str, ...] = ("accuracy", "auroc")

#: Format tag written into checkpoints.
CHECKPOINT_FORMAT = "faimi-tutorial-checkpoint-1"


# --------------------------------------------------------------------------- data


@dataclass
class ArrayData:
    """Images with their labels and bias groups, in memory.

    Parameters
    ----------
    images : torch.Tensor
        ``(N, 1, *grid)`` float32 images.
    label : numpy.ndarray
        ``(N,)`` integer labels (1 = disease).
    bias_group : numpy.ndarray
        ``(N,)`` integer bias-group codes (1 = carries the bias feature).
    """

    images: torch.Tensor
    label: np.ndarray
    bias_group: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor):
            self.images = torch.as_tensor(np.asarray(self.images))
        self.images = self.images.float()
        if self.images.ndim == 3 or self.images.ndim == 4 and self.images.shape[1] != 1:
            # (N, H, W) or (N, D, H, W) without a channel axis
            self.images = self.images.unsqueeze(1)
        if self.images.ndim not in (4, 5):
            raise ValueError(
                f"images has shape {tuple(self.images.shape)}; expected (N, 1, H, W) "
                "or (N, 1, D, H, W)"
            )
        n = self.images.shape[0]
        self.label = np.asarray(self.label).astype(np.int64).reshape(-1)
        self.bias_group = np.asarray(self.bias_group).astype(np.int64).reshape(-1)
        for name in ("label", "bias_group"):
            values = getattr(self, name)
            if values.shape[0] != n:
                raise ValueError(f"{name} has {values.shape[0]} entries for {n} images")
            if values.size and values.min() < 0:
                raise ValueError(f"{name} holds negative codes; allowed: integers >= 0")
        if self.label.size and self.label.max() > 1:
            raise ValueError(
                f"label holds values {sorted(set(self.label.tolist()))}; allowed: 0 "
                "and 1"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: np.ndarray | Sequence[int]) -> ArrayData:
        """The images at ``index`` (integer positions or a boolean mask)."""
        index = np.asarray(index)
        index = (
            np.flatnonzero(index)
            if index.dtype == bool
            else index.astype(np.int64).reshape(-1)
        )
        t = torch.as_tensor(index, dtype=torch.long)
        return ArrayData(self.images[t], self.label[index], self.bias_group[index])

    @property
    def in_shape(self) -> tuple[int, ...]:
        """``(channels, *grid)`` of one image."""
        return tuple(int(v) for v in self.images.shape[1:])


def _load_folder(path: str | os.PathLike[str]) -> Any:

    for name in ("load_cohort", "load_dataset", "read_dataset", "load"):
        loader = getattr(datasets, name, None)
        if callable(loader):
            return loader(path)
    raise ValueError(
        f"faimi_tutorial.data.datasets cannot read a dataset folder ({path})"
    )


def as_data(
    data: Any,
    label: Any | None = None,
    bias_group: Any | None = None,
) -> ArrayData:
    """Turn any supported input into :class:`ArrayData`.

    Parameters
    ----------
    data : ArrayData, cohort-like, tuple, tensor, array or path
        * anything with ``.images``, ``.label`` and ``.bias_group`` (a simulated
          cohort or sub-cohort);
        * a tuple ``(images, label)`` or ``(images, label, bias_group)``;
        * an image tensor/array (labels from ``label``/``bias_group``; zeros when
          missing, which is fine for :func:`predict`);
        * a dataset folder written by :mod:`faimi_tutorial.data.datasets`.
    label, bias_group : array-like, optional
        Used when ``data`` carries none.

    Returns
    -------
    ArrayData
        The images (float32, with a channel axis), labels and groups.
    """
    if isinstance(data, ArrayData):
        return data
    if isinstance(data, (str, os.PathLike)):
        data = _load_folder(data)
    if isinstance(data, tuple):
        images = data[0]
        label = data[1] if len(data) > 1 else label
        bias_group = data[2] if len(data) > 2 else bias_group
    elif hasattr(data, "images"):
        images = data.images
        label = getattr(data, "label", None) if label is None else label
        bias_group = (
            getattr(data, "bias_group", None) if bias_group is None else bias_group
        )
        meta = getattr(data, "meta", None)
        if label is None and isinstance(meta, pd.DataFrame) and "label" in meta:
            label = meta["label"].to_numpy()
        if (
            bias_group is None
            and isinstance(meta, pd.DataFrame)
            and "bias_group" in meta
        ):
            bias_group = meta["bias_group"].to_numpy()
    else:
        images = data
    n = len(images)
    label = np.zeros(n, dtype=np.int64) if label is None else label
    bias_group = np.zeros(n, dtype=np.int64) if bias_group is None else bias_group
    return ArrayData(images, label, bias_group)


def stratified_split(
    label: np.ndarray, bias_group: np.ndarray, fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into two parts, stratified on (label, bias group).

    Parameters
    ----------
    label, bias_group : numpy.ndarray
        Integer codes per sample.
    fraction : float
        Share in (0, 1) of each cell that goes to the second part.
    seed : int, default 0
        Seed of the shuffle.

    Returns
    -------
    first, second : numpy.ndarray
        Sorted index arrays.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction={fraction!r} must be in (0, 1)")
    rng = np.random.default_rng(seed)
    cells = cell_ids(label, bias_group)
    second = []
    for cell in np.unique(cells):
        members = np.flatnonzero(cells == cell)
        rng.shuffle(members)
        k = int(round(fraction * len(members)))
        if len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        second.append(members[:k])
    second_idx = (
        np.sort(np.concatenate(second)) if second else np.array([], dtype=np.int64)
    )
    first_idx = np.setdiff1d(np.arange(len(label)), second_idx)
    return first_idx, second_idx


def _train_val(
    data: Any, val: Any, fraction: float, seed: int
) -> tuple[ArrayData, ArrayData]:
    if val is not None:
        return as_data(data if not _has_split(data) else data.train), as_data(val)
    if _has_split(data):
        return as_data(data.train), as_data(data.val)
    full = as_data(data)
    first, second = stratified_split(full.label, full.bias_group, fraction, seed)
    return full.subset(first), full.subset(second)


def _has_split(data: Any) -> bool:
    """True for a cohort with train and val splits (in its metadata, or as
    attributes)."""
    if isinstance(data, (ArrayData, tuple, str, os.PathLike, torch.Tensor, np.ndarray)):
        return False
    if not hasattr(data, "images"):
        return hasattr(data, "train") and hasattr(data, "val")
    meta = getattr(data, "meta", None)
    if not isinstance(meta, pd.DataFrame) or "split" not in meta:
        return False
    splits = set(meta["split"].astype(str))
    return (
        {"train", "val"} <= splits and hasattr(data, "train") and hasattr(data, "val")
    )


# --------------------------------------------------------------------- configuration


@dataclass
class TrainConfig:
    """How to train: architecture, optimisation, stopping, selection, mitigation.

    Parameters
    ----------
    model, channels, strides, num_res_units, dropout
        Architecture (see :class:`faimi_tutorial.models.networks.ModelConfig`).
    epochs : int
        Maximum number of epochs (>= 1).
    batch_size : int
        Mini-batch size (>= 1).
    lr : float
        Learning rate of AdamW (> 0).
    weight_decay : float
        Weight decay of AdamW (>= 0).
    patience : int or None
        Stop when the validation loss has not improved for this many epochs;
        ``None`` trains all epochs.
    mitigation : str
        One of :data:`MITIGATIONS`.
    selection : str
        Which epoch's weights to keep, one of :data:`SELECTIONS`: lowest
        validation loss, best overall validation metric, or best worst-group
        validation metric.
    selection_metric : str
        ``"accuracy"`` (at threshold 0.5; worst group = worst (label, group)
        cell, as in GroupDRO) or ``"auroc"`` (worst group = worst bias group).
    groupdro_eta : float
        Step size of the GroupDRO weights (> 0).
    unlearning_alpha : float
        Weight of the confusion loss in bias unlearning (>= 0).
    val_fraction : float
        Share of the data held out for validation when the data has no split.
    """

    model: str = "classifier"
    channels: tuple[int, ...] = (8, 16, 32, 64)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = 1
    dropout: float = 0.0
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = 3
    mitigation: str = "none"
    selection: str = "loss"
    selection_metric: str = "accuracy"
    groupdro_eta: float = 0.01
    unlearning_alpha: float = 1.0
    val_fraction: float = 0.2

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            setattr(self, name, check_positive_int(self, name, getattr(self, name)))
        self.patience = check_positive_int(
            self, "patience", self.patience, optional=True
        )
        # numbers are checked, not converted: an int stays an int in cache keys
        check_range(self, "lr", self.lr, 0.0, 10.0, low_open=True)
        check_range(self, "weight_decay", self.weight_decay, 0.0)
        check_range(self, "groupdro_eta", self.groupdro_eta, 0.0, low_open=True)
        check_range(self, "unlearning_alpha", self.unlearning_alpha, 0.0)
        check_probability(
            self, "val_fraction", self.val_fraction, low_open=True, high_open=True
        )
        check_choice(self, "mitigation", self.mitigation, MITIGATIONS)
        check_choice(self, "selection", self.selection, SELECTIONS)
        check_choice(self, "selection_metric", self.selection_metric, SELECTION_METRICS)
        self.channels = tuple(int(v) for v in self.channels)
        self.strides = tuple(int(v) for v in self.strides)
        # validate the architecture fields on a shape large enough for any depth
        self.model_config((1,) + (2 ** (len(self.channels) + 1),) * 2)

    @classmethod
    def preset(
        cls, name: str, dims: int | None = None, **overrides: Any
    ) -> TrainConfig:
        """The training settings of a preset, with ``overrides`` applied.

        Parameters
        ----------
        name : str
            ``tiny``, ``tutorial`` or ``paper``.
        dims : int, optional
            2 or 3: 3D volumes take the preset's :data:`presets.TRAINING_3D` changes.
        **overrides
            Any field of :class:`TrainConfig`.

        Returns
        -------
        TrainConfig
            The validated configuration.
        """
        presets.check_preset(name)
        settings = dict(presets.TRAINING[name])
        if dims not in (None, 2, 3):
            raise ValueError(f"dims={dims!r} is invalid; allowed: None, 2 or 3")
        if dims == 3:
            settings.update(presets.TRAINING_3D.get(name, {}))
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(
                f"unknown training setting(s) {sorted(unknown)}; allowed: "
                f"{[f.name for f in fields(cls)]}"
            )
        settings.update(overrides)
        return cls(**settings)

    def model_config(self, in_shape: Sequence[int]) -> ModelConfig:
        """The architecture for images of ``in_shape`` (``(channels, *grid)``)."""
        return ModelConfig(
            in_shape=tuple(in_shape), **{k: getattr(self, k) for k in ARCHITECTURE_KEYS}
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dictionary (for checkpoints and cache keys)."""
        return asdict(self)

    def objective(self) -> Objective:
        """The objective of ``mitigation`` (:func:`objectives.from_mitigation`)."""
        return objectives.from_mitigation(
            self.mitigation,
            lr=self.lr,
            groupdro_eta=self.groupdro_eta,
            unlearning_alpha=self.unlearning_alpha,
        )


# --------------------------------------------------------------------- results


@dataclass
class FitResult:
    """A trained model with everything needed to use, plot and reload it.

    Attributes
    ----------
    model : torch.nn.Module
        The network with the selected epoch's weights, in eval mode.
    history : pandas.DataFrame
        One row per epoch: ``train_loss``, ``val_loss``, ``val_accuracy``,
        ``val_auroc``, ``val_worst_group_accuracy``, ``val_worst_group_auroc``,
        ``seconds`` (and ``bias_head_accuracy`` for unlearning,
        ``groupdro_max_weight`` for GroupDRO).
    config : TrainConfig
        The training settings.
    model_config : ModelConfig
        The architecture.
    best_epoch : int
        The epoch (1-based) whose weights were kept.
    seed : int
        The seed of the run.
    stopped_early : bool
        Whether early stopping ended training before ``config.epochs``.
    """

    model: nn.Module
    history: pd.DataFrame
    config: TrainConfig
    model_config: ModelConfig
    best_epoch: int
    seed: int
    stopped_early: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    def predict(self, data: Any, **kwargs: Any) -> np.ndarray:
        """Disease probabilities for ``data`` (see :func:`predict`)."""
        return predict(self, data, **kwargs)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint (see :func:`save_checkpoint`)."""
        return save_checkpoint(self, path)


# --------------------------------------------------------------------- metrics


def selection_score(
    config: TrainConfig, metrics: dict[str, float], val_loss: float
) -> float:
    """The score an epoch is selected on (higher is better), by ``config.selection``.

    Parameters
    ----------
    config : TrainConfig
        Its ``selection`` ("loss", "overall" or "worst_group") and ``selection_metric``.
    metrics : dict
        The epoch's :func:`validation_metrics`.
    val_loss : float
        The epoch's validation loss.

    Returns
    -------
    float
        ``-val_loss`` for "loss", else the (worst-group) validation metric; may be NaN.
    """
    return _score(config.selection, config.selection_metric, metrics, val_loss)


def _score(
    selection: str, metric: str, metrics: dict[str, float], val_loss: float
) -> float:
    if selection == "loss":
        return -float(val_loss)
    if selection == "overall":
        return float(metrics[metric])
    return float(metrics[f"worst_group_{metric}"])


def validation_metrics(
    label: np.ndarray,
    scores: np.ndarray,
    bias_group: np.ndarray,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Overall and worst-group accuracy and AUROC used for model selection.

    Parameters
    ----------
    label, bias_group : numpy.ndarray
        Integer codes.
    scores : numpy.ndarray
        Predicted probabilities.
    threshold : float, default 0.5
        Operating point for accuracy.

    Returns
    -------
    dict
        ``accuracy``, ``auroc``, ``worst_group_accuracy`` (lowest accuracy over
        (label, group) cells) and ``worst_group_auroc`` (lowest AUROC over bias
        groups that hold both labels).
    """
    label = np.asarray(label)
    bias_group = np.asarray(bias_group)
    pred = (np.asarray(scores) >= threshold).astype(int)
    correct = pred == label
    cells = cell_ids(label, bias_group)
    cell_acc = [correct[cells == c].mean() for c in np.unique(cells)]
    group_auc = [
        auroc(label[bias_group == g], scores[bias_group == g])
        for g in np.unique(bias_group)
    ]
    group_auc = [a for a in group_auc if not math.isnan(a)]
    return {
        "accuracy": float(correct.mean()) if len(correct) else float("nan"),
        "auroc": auroc(label, scores),
        "worst_group_accuracy": float(min(cell_acc)) if cell_acc else float("nan"),
        "worst_group_auroc": float(min(group_auc)) if group_auc else float("nan"),
    }


# --------------------------------------------------------------------- fit / predict


def _batches(
    n: int, batch_size: int, generator: torch.Generator, probs: np.ndarray | None
) -> list[torch.Tensor]:
    if probs is None:
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.multinomial(
            torch.as_tensor(probs, dtype=torch.float64),
            n,
            replacement=True,
            generator=generator,
        )
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _scores_and_loss(
    model: nn.Module, data: ArrayData, device: torch.device, batch_size: int = 256
) -> tuple[np.ndarray, float]:
    model.eval()
    logits = []
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            x = data.images[i : i + batch_size].to(device)
            logits.append(model(x).reshape(x.shape[0], -1)[:, 0].float().cpu())
    z = torch.cat(logits) if logits else torch.zeros(0)
    y = torch.as_tensor(data.label, dtype=torch.float32)
    loss = float(F.binary_cross_entropy_with_logits(z, y)) if len(z) else float("nan")
    return torch.sigmoid(z).numpy().astype(np.float64), loss


def _data_dims(data: Any) -> int | None:
    """Spatial dimensions of cohort-like or array data (``None`` when unknown)."""
    images = getattr(data, "images", None)
    if images is None and isinstance(data, tuple) and data:
        images = data[0]
    ndim = getattr(images, "ndim", None)
    return ndim - 2 if ndim in (4, 5) else None


def resolve_config(
    config: TrainConfig | str | None, data: Any = None, **overrides: Any
) -> TrainConfig:
    """The :class:`TrainConfig` that ``fit`` trains with.

    Parameters
    ----------
    config : TrainConfig, str or None
        Settings, a preset name, or ``None`` for the active preset.
    data : optional
        The training data: 3D volumes take the preset's 3D settings.
    **overrides
        Fields of :class:`TrainConfig`.

    Returns
    -------
    TrainConfig
        The validated settings.
    """
    if config is None:
        config = presets.active_preset()
    if isinstance(config, str):
        return TrainConfig.preset(config, dims=_data_dims(data), **overrides)
    if not isinstance(config, TrainConfig):
        raise ValueError(
            f"config={config!r} is invalid; allowed: a TrainConfig or a preset name"
        )
    if overrides:
        return TrainConfig(**{**config.to_dict(), **overrides})
    return config


@dataclass
class EpochsResult:
    """What :func:`run_epochs` returns.

    Attributes
    ----------
    history : pandas.DataFrame
        One row per epoch: ``epoch``, ``train_loss`` (mean disease cross-entropy),
        with validation data ``val_loss`` and ``val_*`` metrics, ``seconds`` and
        the objective's columns.
    best_epoch : int
        The epoch (1-based) whose weights the model holds now.
    stopped_early : bool
        Whether early stopping ended training.
    steps : int
        Optimiser steps taken.
    train_loss : float
        Mean disease cross-entropy over every training sample seen.
    optimiser : torch.optim.Optimizer
        The AdamW optimiser (its state travels with a travelling model).
    extras : dict
        The objective's :meth:`~faimi_tutorial.training.objectives.Objective.best_state`
        at the selected epoch.
    """

    history: pd.DataFrame
    best_epoch: int
    stopped_early: bool
    steps: int
    train_loss: float
    optimiser: torch.optim.Optimizer
    extras: dict[str, Any] = field(default_factory=dict)


def _check_loop_settings(
    objective: Any,
    epochs: Any,
    batch_size: Any,
    lr: Any,
    weight_decay: Any,
    selection: str,
    selection_metric: str,
    patience: Any,
) -> None:
    if not isinstance(objective, Objective):
        raise ValueError(f"objective={objective!r} is invalid; allowed: an Objective")
    TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        selection=selection,
        selection_metric=selection_metric,
        patience=patience,
    )


class _Selector:
    """Keeps the weights of the best validation epoch and counts stale epochs."""

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        selection: str,
        metric: str,
        patience: int | None,
    ) -> None:
        self.rule, self.metric, self.patience = selection, metric, patience
        self.best_score, self.best_loss = -math.inf, math.inf
        self.best_epoch, self.stale = 1, 0
        self.state = copy.deepcopy(model.state_dict())
        self.extras = objective.best_state()

    def update(
        self,
        epoch: int,
        metrics: dict[str, float],
        val_loss: float,
        model: nn.Module,
        objective: Objective,
    ) -> bool:
        """Record one epoch; True when early stopping says stop."""
        score = _score(self.rule, self.metric, metrics, val_loss)
        if not math.isnan(score) and score > self.best_score:
            self.best_score, self.best_epoch = score, epoch
            self.state = copy.deepcopy(model.state_dict())
            self.extras = objective.best_state()
        if val_loss < self.best_loss - 1e-4:
            self.best_loss, self.stale = val_loss, 0
        else:
            self.stale += 1
        return self.patience is not None and self.stale >= self.patience


def _train_epoch(
    model: nn.Module,
    tensors: tuple[torch.Tensor, ...],
    objective: Objective,
    optimiser: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[float, int, int]:
    """One pass over ``(images, labels, groups)``: (summed loss, samples, steps)."""
    model.train()
    objective.start_epoch()
    images, y_all, a_all = tensors
    total, count, steps = 0.0, 0, 0
    probs = objective.sampling_weights()
    for idx in _batches(len(y_all), batch_size, generator, probs):
        batch = objectives.Batch(
            idx,
            images[idx.to(images.device)],
            y_all[idx].to(device),
            a_all[idx].to(device),
        )
        if objective.needs_features:
            logits, features = forward_with_features(model, batch.x)
        else:
            logits, features = model(batch.x).reshape(len(idx), -1)[:, 0], None
        per_sample = F.binary_cross_entropy_with_logits(
            logits, batch.y, reduction="none"
        )
        loss = objective.loss(per_sample, batch, features)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        objective.after_step(batch, features)
        total += float(per_sample.detach().sum())
        count, steps = count + len(idx), steps + 1
    return total, count, steps


def _start(
    model: nn.Module,
    train: ArrayData,
    objective: Objective,
    lr: float,
    weight_decay: float,
    optimizer_state: Mapping[str, Any] | None,
    head_seed: int | None,
) -> torch.optim.Optimizer:
    """Set the objective up (its heads seeded by ``head_seed``) and build AdamW."""
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[], enabled=head_seed is not None):
        if head_seed is not None:
            torch.manual_seed(int(head_seed))
        objective.setup(model, train.label, train.bias_group, device)
    groups = [{"params": model.parameters()}, *objective.param_groups()]
    optimiser = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    if optimizer_state is not None:
        optimiser.load_state_dict(optimizer_state)
    return optimiser


def run_epochs(
    model: nn.Module,
    data: Any,
    objective: Objective,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.0,
    seed: int = 0,
    val: Any | None = None,
    selection: str = "loss",
    selection_metric: str = "accuracy",
    patience: int | None = None,
    optimizer_state: Mapping[str, Any] | None = None,
    head_seed: int | None = None,
    progress: bool = False,
) -> EpochsResult:
    """The training loop of every model: ``epochs`` passes of AdamW on an objective.

    The objective is set up on the training data (``head_seed``: its new heads are
    initialised from that seed, leaving the global random stream alone), AdamW is
    built over the model's and the objective's parameters (loading
    ``optimizer_state`` when given), and each epoch draws seeded mini-batches
    (shuffled, or sampled by the objective's weights). With ``val``, every epoch is
    validated, the weights of the best epoch by ``selection`` are kept and loaded
    at the end, and training stops once the validation loss has not improved for
    ``patience`` epochs; without it the model keeps its last weights.

    Parameters
    ----------
    model : torch.nn.Module
        The network, on the training device (it is trained in place).
    data : any form accepted by :func:`as_data`
        Training images, labels and bias groups.
    objective : Objective
        What to minimise (see :mod:`faimi_tutorial.training.objectives`).
    epochs, batch_size : int
        Passes over the data and samples per batch (>= 1).
    lr, weight_decay : float
        AdamW's learning rate (> 0) and weight decay (>= 0).
    seed : int, default 0
        Seed of the batch order.
    val : optional
        Validation data (same forms as ``data``).
    selection, selection_metric : str
        The epoch kept (see :data:`SELECTIONS`, :data:`SELECTION_METRICS`).
    patience : int or None
        Early-stopping patience in epochs (needs ``val``).
    optimizer_state : mapping, optional
        An AdamW ``state_dict`` to continue from.
    head_seed : int, optional
        Seed of the objective's new heads.
    progress : bool, default False
        Progress bar over epochs.

    Returns
    -------
    EpochsResult
        History, selected epoch, steps, mean training loss, optimiser.
    """
    _check_loop_settings(
        objective,
        epochs,
        batch_size,
        lr,
        weight_decay,
        selection,
        selection_metric,
        patience,
    )
    train = as_data(data)
    valid = None if val is None else as_data(val)
    if len(train) == 0 or valid is not None and len(valid) == 0:
        raise ValueError(
            "need non-empty training and validation data; got "
            f"{len(train)} and {0 if valid is None else len(valid)}"
        )
    device = next(model.parameters()).device
    optimiser = _start(
        model, train, objective, lr, weight_decay, optimizer_state, head_seed
    )
    selector = _Selector(model, objective, selection, selection_metric, patience)
    generator = torch.Generator().manual_seed(int(seed))
    tensors = (
        train.images.to(device) if device.type != "cpu" else train.images,
        torch.as_tensor(train.label, dtype=torch.float32),
        torch.as_tensor(train.bias_group, dtype=torch.long),
    )
    rows: list[dict[str, float]] = []
    total, count, steps, stopped = 0.0, 0, 0, False
    bar = tqdm(
        range(1, epochs + 1),
        desc=f"training ({objective.label})",
        disable=not progress,
        leave=False,
    )
    for epoch in bar:
        start = time.perf_counter()
        loss, n, k = _train_epoch(
            model, tensors, objective, optimiser, batch_size, generator, device
        )
        total, count, steps = total + loss, count + n, steps + k
        row: dict[str, float] = {"epoch": epoch, "train_loss": loss / max(n, 1)}
        if valid is not None:
            row.update(_validate(model, valid, device))
        row["seconds"] = time.perf_counter() - start
        rows.append({**row, **objective.epoch_metrics()})
        bar.set_postfix(
            {
                k: f"{v:.3f}"
                for k, v in row.items()
                if k in ("train_loss", "val_loss", "val_auroc")
            }
        )
        if valid is not None:
            metrics = {k[4:]: v for k, v in row.items() if k.startswith("val_")}
            stop = selector.update(epoch, metrics, row["val_loss"], model, objective)
            if stop and epoch < epochs:
                stopped = True
                break
    bar.close()
    if valid is not None:
        model.load_state_dict(selector.state)
    best = selector.best_epoch if valid is not None else len(rows)
    extras = selector.extras if valid is not None else objective.best_state()
    return EpochsResult(
        pd.DataFrame(rows),
        best,
        stopped,
        steps,
        total / max(count, 1),
        optimiser,
        extras,
    )


def _validate(
    model: nn.Module, valid: ArrayData, device: torch.device
) -> dict[str, float]:
    """``val_loss`` and the ``val_*`` :func:`validation_metrics` of one epoch."""
    scores, val_loss = _scores_and_loss(model, valid, device)
    metrics = validation_metrics(valid.label, scores, valid.bias_group)
    return {"val_loss": val_loss, **{f"val_{k}": v for k, v in metrics.items()}}


def fit(
    data: Any,
    config: TrainConfig | str | None = None,
    *,
    val: Any | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike[str] | None = None,
    objective: Objective | None = None,
    **overrides: Any,
) -> FitResult:
    """Train a classifier of disease from images.

    Parameters
    ----------
    data : cohort-like, tuple, ArrayData or path
        Training data (see :func:`as_data`). A simulated cohort with train and val
        splits uses them; otherwise ``val`` is used, or ``config.val_fraction`` of
        the data is held out (stratified on label x bias group).
    config : TrainConfig or str, optional
        Settings, or a preset name (default: the active preset).
    val : optional
        Validation data, same forms as ``data``.
    seed : int, default 0
        Seeds weight initialisation, batch order and the validation split.
    device : str or torch.device, optional
        Default: CUDA when present, else CPU.
    progress : bool, default True
        Show a progress bar over epochs.
    checkpoint : path, optional
        Where to save the selected model (see :func:`save_checkpoint`).
    objective : Objective, optional
        What to minimise, instead of the configuration's mitigation
        (:meth:`TrainConfig.objective`), e.g. an
        :class:`~faimi_tutorial.training.objectives.AttributeTask`.
    **overrides
        Fields of :class:`TrainConfig`, e.g. ``mitigation="reweighing"``.

    Returns
    -------
    FitResult
        Model (selected epoch, eval mode), history, settings and the objective's
        kept state in ``extras``.
    """
    config = resolve_config(config, data, **overrides)
    if checkpoint is not None:  # a bad path fails now, not after training
        check_output_file(checkpoint, "checkpoint")
    seed_everything(seed)
    device = choose_device(str(device) if device is not None else None)
    train, valid = _train_val(data, val, config.val_fraction, seed)
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(
            f"need non-empty training and validation data; got {len(train)} and "
            f"{len(valid)}"
        )
    model_config = config.model_config(train.in_shape)
    model = build_model(model_config).to(device)
    run = run_epochs(
        model,
        train,
        config.objective() if objective is None else objective,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        weight_decay=config.weight_decay,
        seed=seed,
        val=valid,
        selection=config.selection,
        selection_metric=config.selection_metric,
        patience=config.patience,
        progress=progress,
    )
    model.eval()
    result = FitResult(
        model=model,
        history=run.history,
        config=config,
        model_config=model_config,
        best_epoch=run.best_epoch,
        seed=int(seed),
        stopped_early=run.stopped_early,
        extras=run.extras,
    )
    if checkpoint is not None:
        save_checkpoint(result, checkpoint)
    return result


def predict(
    model: FitResult | nn.Module,
    data: Any,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    logits: bool = False,
) -> np.ndarray:
    """Disease probability (or logit) for every image of ``data``.

    Parameters
    ----------
    model : FitResult or torch.nn.Module
        A trained model.
    data : any form accepted by :func:`as_data`
        Images (labels are not needed).
    batch_size : int, default 256
        Images per forward pass.
    device : str or torch.device, optional
        Default: where the model's parameters are.
    logits : bool, default False
        Return logits instead of probabilities.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` float64 scores.
    """
    net = model.model if isinstance(model, FitResult) else model
    images = as_data(data).images
    if device is None:
        try:
            device = next(net.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
    device = torch.device(device)
    net = net.to(device).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = images[i : i + batch_size].to(device)
            out.append(net(x).reshape(x.shape[0], -1)[:, 0].float().cpu())
    z = torch.cat(out) if out else torch.zeros(0)
    return (z if logits else torch.sigmoid(z)).numpy().astype(np.float64)


# --------------------------------------------------------------------- checkpoints


def save_checkpoint(result: FitResult, path: str | os.PathLike[str]) -> Path:
    """Save a trained model as a checkpoint that loads with ``weights_only=True``.

    Only tensors and plain Python values are stored (no pickled classes), so
    :func:`load_checkpoint` can use ``torch.load(..., weights_only=True)``.

    Parameters
    ----------
    result : FitResult
        What :func:`fit` returned.
    path : path
        File to write (parent folders are created).

    Returns
    -------
    pathlib.Path
        The written file.
    """

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    history = {
        c: [float(v) for v in result.history[c].to_numpy()]
        for c in result.history.columns
    }
    payload = {
        "format": CHECKPOINT_FORMAT,
        "package_version": __version__,
        "state_dict": {
            k: v.detach().cpu() for k, v in result.model.state_dict().items()
        },
        "model_config": result.model_config.to_dict(),
        "train_config": result.config.to_dict(),
        "history": history,
        "best_epoch": int(result.best_epoch),
        "seed": int(result.seed),
        "stopped_early": bool(result.stopped_early),
    }
    import uuid

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device | None = None
) -> FitResult:
    """Load a checkpoint written by :func:`save_checkpoint` (safely,
    ``weights_only=True``).

    Parameters
    ----------
    path : path
        The checkpoint file.
    device : str or torch.device, optional
        Where to put the model (default: automatic choice).

    Returns
    -------
    FitResult
        Model in eval mode, with history and settings.

    Raises
    ------
    ValueError
        If the file is not a faimi-tutorial checkpoint.
    """
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, Mapping) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is not a faimi-tutorial checkpoint (format {CHECKPOINT_FORMAT})"
        )
    model_config = ModelConfig(**payload["model_config"])
    config = TrainConfig(**payload["train_config"])
    model = build_model(model_config)
    model.load_state_dict(payload["state_dict"])
    model = model.to(choose_device(str(device) if device is not None else None)).eval()
    history = pd.DataFrame(payload["history"])
    if "epoch" in history:
        history["epoch"] = history["epoch"].astype(int)
    return FitResult(
        model=model,
        history=history,
        config=config,
        model_config=model_config,
        best_epoch=int(payload["best_epoch"]),
        seed=int(payload["seed"]),
        stopped_early=bool(payload["stopped_early"]),
    )


# --------------------------------------------------------------------- toy data


def toy_data(
    n: int = 200,
    size: int = 16,
    bias_prevalence: tuple[float, float] = (0.7, 0.3),
    disease_strength: float = 0.6,
    bias_strength: float = 0.6,
    noise: float = 0.1,
    seed: int = 0,
) -> ArrayData:
    """A 2D toy shortcut problem, for tests and quick experiments.

    The disease is a brighter square in the centre (its brightness varies per
    image, so classes overlap a little); the bias feature is a bright blob in the
    top-left corner, present in a share ``bias_prevalence[0]`` of diseased and
    ``bias_prevalence[1]`` of healthy images. Classes are balanced.

    Parameters
    ----------
    n : int, default 200
        Number of images (>= 4).
    size : int, default 16
        Image side in pixels (>= 8).
    bias_prevalence : (float, float), default (0.7, 0.3)
        Share of the bias group among diseased and among healthy images.
    disease_strength, bias_strength : float, default 0.6
        Mean added brightness of the disease square and of the bias blob.
    noise : float, default 0.1
        Standard deviation of the pixel noise.
    seed : int, default 0
        Seed of the draws.

    Returns
    -------
    ArrayData
        ``(n, 1, size, size)`` images in [0, 1], labels and bias groups.
    """
    if n < 4:
        raise ValueError(f"n={n!r} must be >= 4")
    if size < 8:
        raise ValueError(f"size={size!r} must be >= 8")
    for p in bias_prevalence:
        if not 0.0 <= p <= 1.0:
            raise ValueError(
                f"bias_prevalence={bias_prevalence!r} must hold two shares in [0, 1]"
            )
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 2
    rng.shuffle(label)
    bias = np.where(
        label == 1,
        rng.random(n) < bias_prevalence[0],
        rng.random(n) < bias_prevalence[1],
    )
    images = 0.3 + noise * rng.standard_normal((n, 1, size, size))
    q = size // 4
    c = size // 2
    strength = disease_strength * (1 + 0.5 * rng.standard_normal(n)) * label
    images[:, 0, c - q // 2 - 1 : c + q // 2 + 1, c - q // 2 - 1 : c + q // 2 + 1] += (
        strength[:, None, None]
    )
    images[:, 0, 1 : 1 + q, 1 : 1 + q] += (bias_strength * bias)[:, None, None]
    images = np.clip(images, 0.0, 1.0).astype(np.float32)
    return ArrayData(torch.from_numpy(images), label, bias.astype(np.int64))


# --------------------------------------------------------------------- command line


def register(subparsers: Any) -> None:
    """Add the ``train`` subcommand to the ``faimi`` command.

    ``faimi train DATASET --checkpoint model.pt`` trains on a dataset folder
    (written by ``faimi simulate`` or a user's own, see
    :func:`faimi_tutorial.data.datasets.read_dataset`), prints the validation history
    and, when the folder has a test split, the test metrics per bias group.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        "train",
        help="train a classifier on a dataset folder (with a bias mitigation if asked)",
        description="Train the preset's network on a dataset folder and save a "
                    "checkpoint.",
    )
    parser.add_argument(
        "dataset", metavar="DATASET", help="dataset folder (participants.tsv + NIfTI)"
    )
    parser.add_argument(
        "--preset",
        default=None,
        help="training preset (default: $FAIMI_PRESET or tutorial)",
    )
    parser.add_argument(
        "--mitigation",
        default="none",
        choices=MITIGATIONS,
        help="bias mitigation: none (plain training), reweighing, "
        "group-balanced sampling, GroupDRO or adversarial unlearning "
        "(default: none)",
    )
    parser.add_argument(
        "--selection",
        default=None,
        choices=SELECTIONS,
        help="how the epoch kept is chosen on the validation split "
        "(default: the preset's)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="most epochs to train (default: the preset's)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="subjects per batch (default: the preset's)",
    )
    parser.add_argument(
        "--lr", type=float, default=None, help="learning rate (default: the preset's)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of initialisation, batches and augmentation (default: 0)",
    )
    parser.add_argument(
        "--device", default=None, help="torch device (default: automatic)"
    )
    parser.add_argument(
        "--checkpoint", default=None, metavar="FILE", help="where to save the model"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run_cli)


def _run_cli(args: Any) -> int:
    import sys

    overrides = {"mitigation": args.mitigation}
    for name in ("selection", "epochs", "batch_size", "lr"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value

    # every argument is checked before reading data or training, so no work is lost
    try:
        seed = check_seed(args.seed, "--seed")
        device = choose_device(args.device)
        if args.checkpoint is not None:
            check_output_file(args.checkpoint, "--checkpoint")
        config = TrainConfig.preset(args.preset or presets.active_preset(), **overrides)
        data = _load_folder(args.dataset)
    except ValueError as err:
        message = " ".join(str(err).replace("device=", "--device ", 1).split())
        if args.preset is not None:
            message = message.replace("preset=", "--preset ", 1)
        print(f"faimi train: error: {message}", file=sys.stderr)
        return 2
    result = fit(
        data,
        config,
        seed=seed,
        device=device,
        progress=not args.quiet,
        checkpoint=args.checkpoint,
    )
    print(result.history.round(4).to_string(index=False))
    print(
        f"selected epoch: {result.best_epoch}"
        + (" (stopped early)" if result.stopped_early else "")
    )
    meta = getattr(data, "meta", None)
    if (
        isinstance(meta, pd.DataFrame)
        and "split" in meta
        and (meta["split"].astype(str) == "test").any()
    ):
        test = as_data(data.test)
        metrics = validation_metrics(test.label, predict(result, test), test.bias_group)
        print("test: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    if args.checkpoint:
        print(f"checkpoint written to {args.checkpoint}")
    return 0
