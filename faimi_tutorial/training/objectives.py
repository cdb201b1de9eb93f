"""Training objectives: what one training loop minimises, one small class each.

Every way this package trains a network (:func:`faimi_tutorial.training.loop.fit`,
ShorT's attribute heads, federated clients, the Flower app) runs the same loop,
:func:`faimi_tutorial.training.loop.run_epochs` (in
:mod:`faimi_tutorial.training.loop`).
What differs is the *objective*, an
:class:`Objective` that the loop asks, in turn:

``setup(model, label, bias_group, device)``
    once, before training: per-sample weights, group tables, extra heads;
``param_groups()``
    extra parameter groups for the loop's AdamW (an attribute head);
``sampling_weights()``
    per-sample sampling probabilities of every epoch (``None``: a shuffle);
``loss(per_sample, batch, features)``
    the scalar loss of a mini-batch, from the per-sample disease cross-entropy of
    the logits, the batch's labels and groups and (when ``needs_features``) the
    penultimate features;
``after_step(batch, features)``
    after each optimiser step (a bias head's own update);
``epoch_metrics()`` and ``best_state()``
    extra history columns, and state kept with the selected epoch.

Objectives: :class:`ERM`, :class:`Reweighing`, :class:`GroupBalanced`,
:class:`GroupDRO`, :class:`Unlearning`, :class:`AttributeTask` (ShorT) and
:class:`FedProx`, which adds the proximal term to any other objective
(``FedProx(0.1, inner=GroupDRO())``). :func:`from_mitigation` maps the
mitigation names of the configurations (:data:`MITIGATIONS`) to objectives.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..models.networks import last_linear

__all__ = [
    "MITIGATIONS",
    "Batch",
    "Objective",
    "ERM",
    "Reweighing",
    "GroupBalanced",
    "GroupDRO",
    "Unlearning",
    "AttributeTask",
    "FedProx",
    "from_mitigation",
    "cell_ids",
    "reweighing_weights",
    "balanced_sampling_weights",
    "GroupDROLoss",
    "confusion_loss",
    "BiasUnlearner",
    "GradientScale",
    "AttributeHead",
]

#: Names of the mitigation strategies (mapped to objectives by :func:`from_mitigation`).
MITIGATIONS: tuple[str, ...] = (
    "none",
    "reweighing",
    "group_balanced",
    "groupdro",
    "unlearning",
)


def _number(name: str, value: Any, ok: Any, allowed: str) -> float:
    """``float(value)`` when it is a finite real number passing ``ok``."""
    real = isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, bool) or not real or not math.isfinite(value) or not ok(value):
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")
    return float(value)


# --------------------------------------------------------------------- building blocks


def cell_ids(
    label: np.ndarray, bias_group: np.ndarray, n_groups: int | None = None
) -> np.ndarray:
    """Index of each sample's (label, bias group) cell: ``label * n_groups + group``.

    Parameters
    ----------
    label, bias_group : numpy.ndarray
        Integer codes.
    n_groups : int, optional
        Number of bias groups (default ``max(bias_group) + 1``, at least 2).

    Returns
    -------
    numpy.ndarray
        Integer cell index per sample.
    """
    label = np.asarray(label, dtype=np.int64)
    bias_group = np.asarray(bias_group, dtype=np.int64)
    if n_groups is None:
        n_groups = max(2, int(bias_group.max()) + 1 if bias_group.size else 2)
    return label * n_groups + bias_group


def reweighing_weights(label: np.ndarray, bias_group: np.ndarray) -> np.ndarray:
    """Kamiran & Calders reweighing: ``w(y, a) = P(y) P(a) / P(y, a)``.

    Under these weights the label and the bias group are statistically
    independent, and each label and group keeps its original total weight.

    Parameters
    ----------
    label, bias_group : numpy.ndarray
        Integer codes per training sample.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` float weights with mean 1.
    """
    label = np.asarray(label, dtype=np.int64)
    bias_group = np.asarray(bias_group, dtype=np.int64)
    n = len(label)
    if n == 0:
        return np.zeros(0)
    weights = np.empty(n, dtype=np.float64)
    for y in np.unique(label):
        p_y = np.mean(label == y)
        for a in np.unique(bias_group):
            cell = (label == y) & (bias_group == a)
            if cell.any():
                weights[cell] = p_y * np.mean(bias_group == a) / np.mean(cell)
    return weights


def balanced_sampling_weights(label: np.ndarray, bias_group: np.ndarray) -> np.ndarray:
    """Sampling probability per sample that draws every (label, group) cell equally.

    Parameters
    ----------
    label, bias_group : numpy.ndarray
        Integer codes per training sample.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` probabilities summing to 1 (``1 / (n_cells * cell size)``).
    """
    cells = cell_ids(label, bias_group)
    values, counts = np.unique(cells, return_counts=True)
    size = dict(zip(values.tolist(), counts.tolist()))
    p = np.array([1.0 / size[c] for c in cells.tolist()])
    return p / p.sum()


class GroupDROLoss:
    """Online group DRO objective (Sagawa et al., 2020).

    Keeps a probability ``q`` over groups. Each call computes the mean loss of
    every group present in the batch, multiplies ``q_g`` by
    ``exp(eta * loss_g)``, renormalises, and returns ``sum_g q_g loss_g``.

    Parameters
    ----------
    n_groups : int
        Number of groups (here the (label, bias group) cells).
    eta : float, default 0.01
        Step size of the group weights (> 0).
    device : torch.device, optional
        Where ``q`` lives.
    """

    def __init__(
        self, n_groups: int, eta: float = 0.01, device: torch.device | None = None
    ) -> None:
        if n_groups < 1:
            raise ValueError(f"n_groups={n_groups!r} must be >= 1")
        if not eta > 0:
            raise ValueError(f"eta={eta!r} must be > 0")
        self.n_groups = int(n_groups)
        self.eta = float(eta)
        self.q = torch.full((self.n_groups,), 1.0 / self.n_groups, device=device)

    def group_losses(
        self, losses: torch.Tensor, groups: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss per group and a mask of groups present in the batch."""
        total = torch.zeros(self.n_groups, device=losses.device, dtype=losses.dtype)
        total = total.scatter_add(0, groups, losses)
        count = torch.zeros(self.n_groups, device=losses.device, dtype=losses.dtype)
        count = count.scatter_add(0, groups, torch.ones_like(losses))
        present = count > 0
        return total / count.clamp(min=1), present

    def __call__(self, losses: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Update the group weights and return the weighted loss.

        Parameters
        ----------
        losses : torch.Tensor
            ``(B,)`` per-sample losses (with gradients).
        groups : torch.Tensor
            ``(B,)`` group index per sample.

        Returns
        -------
        torch.Tensor
            Scalar ``sum_g q_g * mean_loss_g``.
        """
        mean, present = self.group_losses(losses, groups)
        with torch.no_grad():
            self.q = self.q.to(losses.device)
            step = torch.where(
                present, torch.exp(self.eta * mean.detach()), torch.ones_like(mean)
            )
            self.q = self.q * step
            self.q = self.q / self.q.sum()
        return (self.q * mean).sum()


def confusion_loss(bias_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between the bias head's prediction and the uniform distribution.

    Minimal (``log K`` for ``K`` groups) when the bias head cannot tell the
    groups apart; this is the loss the encoder minimises in bias unlearning
    (Dinsdale et al., 2021).

    Parameters
    ----------
    bias_logits : torch.Tensor
        ``(B, K)`` logits of the bias head.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    return -F.log_softmax(bias_logits, dim=1).mean(dim=1).mean()


class BiasUnlearner:
    """The bias head and its two losses in bias unlearning (Dinsdale et al., 2021).

    A linear *bias head* learns to predict the bias group from the penultimate
    features (:meth:`update`, features detached so the encoder is untouched);
    the encoder is trained with :meth:`confusion` added to its task loss, which
    pushes the features towards making the head's prediction uniform.

    Parameters
    ----------
    n_features : int
        Width of the penultimate features.
    n_groups : int
        Number of bias groups (>= 2).
    lr : float
        Learning rate of the bias head (Adam).
    steps : int, default 1
        Head updates per batch (a head that keeps up makes the confusion
        objective harder to fool).
    device : torch.device, optional
        Where the head lives.
    """

    def __init__(
        self,
        n_features: int,
        n_groups: int,
        lr: float,
        steps: int = 1,
        device: torch.device | None = None,
    ) -> None:
        if n_groups < 2:
            raise ValueError(f"n_groups={n_groups!r} must be >= 2")
        if steps < 1:
            raise ValueError(f"steps={steps!r} must be >= 1")
        self.head = nn.Linear(int(n_features), int(n_groups)).to(device)
        self.optimiser = torch.optim.Adam(self.head.parameters(), lr=lr)
        self.steps = int(steps)

    def confusion(self, features: torch.Tensor) -> torch.Tensor:
        """Confusion loss of the current head (gradients reach the encoder only)."""
        for p in self.head.parameters():
            p.requires_grad_(False)
        try:
            return confusion_loss(self.head(features))
        finally:
            for p in self.head.parameters():
                p.requires_grad_(True)

    def update(self, features: torch.Tensor, groups: torch.Tensor) -> float:
        """Train the head to predict ``groups`` from detached features.

        Returns
        -------
        float
            The head's accuracy on the batch before its update.
        """
        features = features.detach()
        accuracy = float("nan")
        for step in range(self.steps):
            logits = self.head(features)
            if step == 0:
                accuracy = float((logits.argmax(1) == groups).float().mean())
            self.optimiser.zero_grad(set_to_none=True)
            F.cross_entropy(logits, groups).backward()
            self.optimiser.step()
        return accuracy


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, lam: float
    ) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor, None]:
        return grad * ctx.lam, None


class GradientScale(nn.Module):
    """Identity in the forward pass; multiplies the gradient by ``lam`` going back.

    ``lam = -1`` is the gradient-reversal layer of domain-adversarial training
    (Ganin & Lempitsky 2015): layers below are pushed to *remove* what the layer
    above learns to predict. ``lam = 0`` blocks the gradient; ``lam > 0`` passes it
    on (scaled), so layers below are pushed to encode it more.

    Parameters
    ----------
    lam : float
        Gradient multiplier (any finite number).
    """

    def __init__(self, lam: float) -> None:
        super().__init__()
        self.lam = _number("lam", lam, lambda v: True, "a finite number")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` unchanged (the gradient is scaled on the way back)."""
        return _ScaleGradient.apply(x, self.lam)

    def extra_repr(self) -> str:
        return f"lam={self.lam:g}"


class AttributeHead(nn.Module):
    """A linear head that predicts the bias attribute, behind a :class:`GradientScale`.

    The head itself always learns to predict the attribute; what reaches the
    network below is that gradient times ``lam``. The head reads the features after
    a batch standardisation without learnable parameters: otherwise, with
    ``lam < 0``, the network can defeat the head just by inflating the scale of its
    features, which makes the attribute loss (and its reversed gradient) grow
    without bound.

    Parameters
    ----------
    in_features : int
        Width of the features it reads.
    lam : float
        Gradient multiplier into the network.
    n_classes : int, default 2
        Number of attribute values.
    """

    def __init__(self, in_features: int, lam: float, n_classes: int = 2) -> None:
        super().__init__()
        if in_features < 1 or n_classes < 2:
            raise ValueError(
                f"in_features={in_features!r} must be >= 1 and "
                f"n_classes={n_classes!r} >= 2"
            )
        self.scale = GradientScale(lam)
        self.norm = nn.BatchNorm1d(int(in_features), affine=False)
        self.linear = nn.Linear(int(in_features), int(n_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Attribute logits ``(N, n_classes)``."""
        return self.linear(self.norm(self.scale(features)))


# --------------------------------------------------------------------- the protocol


@dataclass
class Batch:
    """One mini-batch as the loop hands it to an objective.

    Attributes
    ----------
    index : torch.Tensor
        ``(B,)`` positions of the samples in the training data (CPU, long).
    x : torch.Tensor
        ``(B, 1, *grid)`` images on the training device.
    y : torch.Tensor
        ``(B,)`` float disease labels on the device.
    groups : torch.Tensor
        ``(B,)`` long bias-group codes on the device.
    """

    index: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    groups: torch.Tensor


def _n_groups(bias_group: np.ndarray) -> int:
    return max(2, int(np.max(bias_group)) + 1) if len(bias_group) else 2


class Objective:
    """Base objective: empirical risk (mean cross-entropy); subclasses change parts.

    Attributes
    ----------
    label : str
        Short name shown in progress bars.
    needs_features : bool
        Whether :meth:`loss` reads the penultimate features.
    """

    label = "objective"
    needs_features = False

    def setup(
        self,
        model: nn.Module,
        label: np.ndarray,
        bias_group: np.ndarray,
        device: torch.device,
    ) -> None:
        """Prepare for training ``model`` on data with these labels and groups.

        Called once by the loop before its optimiser is built; calling it again
        resets all state, so one objective can train several models in turn.
        """
        self._ready = True

    def param_groups(self) -> list[dict[str, Any]]:
        """Extra AdamW parameter groups (default: none)."""
        return []

    def sampling_weights(self) -> np.ndarray | None:
        """Per-sample sampling probabilities of each epoch (``None``: a shuffle)."""
        return None

    def start_epoch(self) -> None:
        """Reset per-epoch counters (called at the start of every epoch)."""

    def loss(
        self,
        per_sample: torch.Tensor,
        batch: Batch,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scalar training loss of a batch.

        Parameters
        ----------
        per_sample : torch.Tensor
            ``(B,)`` disease cross-entropy of each sample's logit (with gradients).
        batch : Batch
            The batch (its ``index``, labels and groups).
        features : torch.Tensor, optional
            ``(B, F)`` penultimate features (given when ``needs_features``).

        Returns
        -------
        torch.Tensor
            The loss to back-propagate.
        """
        return per_sample.mean()

    def after_step(self, batch: Batch, features: torch.Tensor | None = None) -> None:
        """Called after every optimiser step (default: nothing)."""

    def epoch_metrics(self) -> dict[str, float]:
        """Extra history columns of the epoch just trained (default: none)."""
        return {}

    def best_state(self) -> dict[str, Any]:
        """State to keep with the selected epoch (default: none)."""
        return {}

    def _check_ready(self) -> None:
        if not getattr(self, "_ready", False):
            raise ValueError(f"{type(self).__name__}.setup() must run before training")


class ERM(Objective):
    """Empirical risk minimisation: the mean binary cross-entropy."""

    label = "none"


class Reweighing(Objective):
    """Kamiran & Calders reweighing: each sample's loss times ``P(y) P(a) / P(y, a)``.

    The weights (:func:`reweighing_weights`) come from the training data given to
    :meth:`setup`, so a federated client reweighs its own site's data.
    """

    label = "reweighing"

    def setup(
        self,
        model: nn.Module,
        label: np.ndarray,
        bias_group: np.ndarray,
        device: torch.device,
    ) -> None:
        """Compute the per-sample weights."""
        super().setup(model, label, bias_group, device)
        weights = reweighing_weights(label, bias_group)
        self.weights = torch.as_tensor(weights, dtype=torch.float32)

    def loss(
        self,
        per_sample: torch.Tensor,
        batch: Batch,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Weighted mean cross-entropy."""
        self._check_ready()
        return (per_sample * self.weights[batch.index].to(per_sample.device)).mean()


class GroupBalanced(Objective):
    """Group-balanced sampling: batches drawn with replacement, cells equally often."""

    label = "group_balanced"

    def setup(
        self,
        model: nn.Module,
        label: np.ndarray,
        bias_group: np.ndarray,
        device: torch.device,
    ) -> None:
        """Compute the sampling probabilities (:func:`balanced_sampling_weights`)."""
        super().setup(model, label, bias_group, device)
        self.probs = balanced_sampling_weights(label, bias_group)

    def sampling_weights(self) -> np.ndarray | None:
        """The balanced sampling probabilities."""
        self._check_ready()
        return self.probs


class GroupDRO(Objective):
    """Group DRO over the (label, bias group) cells (:class:`GroupDROLoss`).

    Parameters
    ----------
    eta : float, default 0.01
        Step size of the group weights (> 0).
    """

    label = "groupdro"

    def __init__(self, eta: float = 0.01) -> None:
        self.eta = _number("eta", eta, lambda v: v > 0, "a number > 0")

    def setup(
        self,
        model: nn.Module,
        label: np.ndarray,
        bias_group: np.ndarray,
        device: torch.device,
    ) -> None:
        """Fresh group weights; cell index of every training sample."""
        super().setup(model, label, bias_group, device)
        n_groups = _n_groups(bias_group)
        self.cells = torch.as_tensor(cell_ids(label, bias_group, n_groups))
        self.dro = GroupDROLoss(2 * n_groups, self.eta, device)

    def loss(
        self,
        per_sample: torch.Tensor,
        batch: Batch,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Group-weighted loss (updates the group weights)."""
        self._check_ready()
        return self.dro(per_sample, self.cells[batch.index].to(per_sample.device))

    def epoch_metrics(self) -> dict[str, float]:
        """``groupdro_max_weight``: the largest group weight."""
        return {"groupdro_max_weight": float(self.dro.q.max())}


class Unlearning(Objective):
    """Bias unlearning (Dinsdale et al., 2021) with a :class:`BiasUnlearner`.

    Parameters
    ----------
    alpha : float, default 1.0
        Weight of the confusion loss (>= 0).
    head_lr : float, default 1e-2
        Learning rate of the bias head (> 0).
    steps : int, default 2
        Bias-head updates per batch (>= 1).
    """

    label = "unlearning"
    needs_features = True

    def __init__(
        self, alpha: float = 1.0, head_lr: float = 1e-2, steps: int = 2
    ) -> None:
        self.alpha = _number("alpha", alpha, lambda v: v >= 0, "a number >= 0")
        self.head_lr = _number("head_lr", head_lr, lambda v: v > 0, "a number > 0")
        integer = isinstance(steps, (int, np.integer)) and not isinstance(steps, bool)
        if not integer or steps < 1:
            raise ValueError(f"steps={steps!r} is invalid; allowed: an integer >= 1")
        self.steps = int(steps)

    def setup(
        self,
        model: nn.Module,
        label: np.ndarray,
        bias_group: np.ndarray,
        device: torch.device,
    ) -> None:
        """A fresh bias head on the model's penultimate features."""
        super().setup(model, label, bias_group, device)
        width = last_linear(model).in_features
        self.unlearner = BiasUnlearner(
            width,
            _n_groups(bias_group),
            lr=self.head_lr,
            steps=self.steps,
            device=device,
        )
        self.start_epoch()

    def start_epoch(self) -> None:
        """Reset the bias head's accuracy count."""
        self._correct, self._count = 0.0, 0

    def loss(
        self,
        per_sample: torch.Tensor,
        batch: Batch,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean cross-entropy plus ``alpha`` times the confusion loss."""
        self._check_ready()
        return per_sample.mean() + self.alpha * self.unlearner.confusion(features)

    def after_step(self, batch: Batch, features: torch.Tensor | None = None) -> None:
        """The bias head learns the group from the (detached) features."""
        accuracy = self.unlearner.update(features, batch.groups)
        self._correct += accuracy * len(batch.index)
        self._count += len(batch.index)

    def epoch_metrics(self) -> dict[str, float]:
        """``bias_head_accuracy`` on the epoch's training batches."""
        return {"bias_head_accuracy": self._correct / max(self._count, 1)}


class AttributeTask(Objective):
    """ShorT's attribute head: disease loss plus a gradient-scaled attribute loss.

    The loss is ``BCE + weight * CE(attribute head)``; the head
    (:class:`AttributeHead`) reads the penultimate features through
    :class:`GradientScale` ``(lam)``: ``lam < 0`` pushes the network to encode the
    bias group less, ``lam > 0`` more, ``lam = 0`` leaves the network's training
    unchanged (the head then probes a network that is trained as with ERM).

    Parameters
    ----------
    lam : float, default 0.0
        Gradient multiplier of the head into the network (finite).
    weight : float, default 1.0
        Weight of the attribute loss (>= 0).
    """

    needs_features = True

    def __init__(self, lam: float = 0.0, weight: float = 1.0) -> None:
        self.lam = GradientScale(lam).lam
        self.weight = _number(
            "attribute_weight", weight, lambda v: v >= 0, "a number >= 0"
        )
        self.label = f"lambda={self.lam:g}"

    def setup(
        self,
        model: nn.Module,
        label: np.ndarray,
        bias_group: np.ndarray,
        device: torch.device,
    ) -> None:
        """A fresh attribute head on the model's penultimate features."""
        super().setup(model, label, bias_group, device)
        width = last_linear(model).in_features
        self.head = AttributeHead(width, self.lam, _n_groups(bias_group)).to(device)
        self.start_epoch()

    def param_groups(self) -> list[dict[str, Any]]:
        """The head's parameters, trained without weight decay."""
        self._check_ready()
        return [{"params": self.head.parameters(), "weight_decay": 0.0}]

    def start_epoch(self) -> None:
        """Head in training mode; reset the attribute loss and accuracy counts."""
        self.head.train()
        self._loss, self._correct, self._count = 0.0, 0, 0

    def loss(
        self,
        per_sample: torch.Tensor,
        batch: Batch,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean cross-entropy plus ``weight`` times the attribute cross-entropy."""
        self._check_ready()
        logits = self.head(features)
        attr_loss = F.cross_entropy(logits, batch.groups)
        self._loss += float(attr_loss.detach()) * len(batch.index)
        self._correct += int((logits.argmax(1) == batch.groups).sum())
        self._count += len(batch.index)
        return per_sample.mean() + self.weight * attr_loss

    def epoch_metrics(self) -> dict[str, float]:
        """``attribute_loss`` and ``attribute_accuracy`` on the training batches."""
        n = max(self._count, 1)
        return {
            "attribute_loss": self._loss / n,
            "attribute_accuracy": self._correct / n,
        }

    def best_state(self) -> dict[str, Any]:
        """``attribute_head``: a CPU copy of the head's state dict."""
        state = copy.deepcopy(self.head.state_dict())
        return {"attribute_head": {k: v.detach().cpu() for k, v in state.items()}}


class FedProx(Objective):
    """FedProx's proximal term ``mu/2 ||w - w_start||^2`` added to another objective.

    ``w_start`` are the model's weights when :meth:`setup` runs (in federated
    training, the global model the client received).

    Parameters
    ----------
    mu : float
        Proximal weight (>= 0).
    inner : Objective, optional
        The objective the term is added to (default :class:`ERM`).
    """

    def __init__(self, mu: float, inner: Objective | None = None) -> None:
        self.mu = _number("mu", mu, lambda v: v >= 0, "a number >= 0")
        inner = ERM() if inner is None else inner
        if not isinstance(inner, Objective):
            raise ValueError(f"inner={inner!r} is invalid; allowed: an Objective")
        self.inner = inner
        self.label = f"fedprox+{inner.label}"
        self.needs_features = inner.needs_features

    def setup(
        self,
        model: nn.Module,
        label: np.ndarray,
        bias_group: np.ndarray,
        device: torch.device,
    ) -> None:
        """Set up the inner objective and remember the starting weights."""
        super().setup(model, label, bias_group, device)
        self.inner.setup(model, label, bias_group, device)
        self._params = list(model.parameters())
        self.anchor = [p.detach().clone() for p in self._params]

    def param_groups(self) -> list[dict[str, Any]]:
        """The inner objective's groups."""
        return self.inner.param_groups()

    def sampling_weights(self) -> np.ndarray | None:
        """The inner objective's sampling probabilities."""
        return self.inner.sampling_weights()

    def start_epoch(self) -> None:
        """The inner objective's reset."""
        self.inner.start_epoch()

    def loss(
        self,
        per_sample: torch.Tensor,
        batch: Batch,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The inner loss plus ``mu / 2`` times the squared distance to the start."""
        self._check_ready()
        loss = self.inner.loss(per_sample, batch, features)
        prox = sum(((p - a) ** 2).sum() for p, a in zip(self._params, self.anchor))
        return loss + 0.5 * self.mu * prox

    def after_step(self, batch: Batch, features: torch.Tensor | None = None) -> None:
        """The inner objective's hook."""
        self.inner.after_step(batch, features)

    def epoch_metrics(self) -> dict[str, float]:
        """The inner objective's columns."""
        return self.inner.epoch_metrics()

    def best_state(self) -> dict[str, Any]:
        """The inner objective's state."""
        return self.inner.best_state()


def from_mitigation(
    name: str,
    *,
    lr: float = 1e-3,
    groupdro_eta: float = 0.01,
    unlearning_alpha: float = 1.0,
) -> Objective:
    """The objective of a mitigation named in a configuration.

    This is the one place where the names of :data:`MITIGATIONS` become objectives:
    ``"none"`` -> :class:`ERM`, ``"reweighing"`` -> :class:`Reweighing`,
    ``"group_balanced"`` -> :class:`GroupBalanced`, ``"groupdro"`` ->
    :class:`GroupDRO` ``(groupdro_eta)``, ``"unlearning"`` -> :class:`Unlearning`
    ``(unlearning_alpha)`` with a bias head learning at ``10 * lr``, two steps per
    batch.

    Parameters
    ----------
    name : str
        One of :data:`MITIGATIONS`.
    lr : float, default 1e-3
        The network's learning rate.
    groupdro_eta, unlearning_alpha : float
        Settings of GroupDRO and unlearning.

    Returns
    -------
    Objective
        A new objective (not yet set up).
    """
    if name == "none":
        return ERM()
    if name == "reweighing":
        return Reweighing()
    if name == "group_balanced":
        return GroupBalanced()
    if name == "groupdro":
        return GroupDRO(groupdro_eta)
    if name == "unlearning":
        head_lr = 10 * _number("lr", lr, lambda v: v > 0, "a number > 0")
        return Unlearning(unlearning_alpha, head_lr=head_lr, steps=2)
    allowed = ", ".join(MITIGATIONS)
    raise ValueError(f"mitigation={name!r} is invalid; allowed: {allowed}")
