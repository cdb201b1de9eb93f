"""Where does the model look? Saliency maps and attribution per region.

Three saliency methods, one call (:func:`saliency`):

``"smoothgrad"``
    Mean absolute input gradient of the target logit over noisy copies of the
    image (Smilkov et al., 2017).
``"gradcam"``
    MONAI :class:`~monai.visualize.GradCAM` on the last feature block.
``"occlusion"``
    MONAI :class:`~monai.visualize.OcclusionSensitivity`: how much the target
    logit drops when a patch is blurred away (positive part kept).

Maps are non-negative, one per image, with the image's spatial shape. The
*share* of a map inside a region (:func:`attribution_share`) is the fraction of
all attribution that falls in it; compare it with the region's share of the
image (:func:`chance_share`), which is what an uninformed map would give.
:func:`attribution_by_group` averages the shares over true positives and true
negatives of each bias group: if a model has learned the shortcut, the bias
group's maps light up the bias region.

Regions are given as plain boolean masks (``{"disease": mask, ...}``) or as
names of :mod:`faimi_tutorial.data.anatomy` regions together with the image grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import warnings

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..models.networks import layer_names
from ..training.loop import FitResult, as_data, predict
from ..data import anatomy

#: Saliency methods understood by :func:`saliency`.
METHODS: tuple[str, ...] = ("smoothgrad", "gradcam", "occlusion")

#: Whose evidence a map shows: the predicted class, disease, or healthy.
TARGETS: tuple[str, ...] = ("predicted", "positive", "negative")


class TwoClassView(nn.Module):
    """Wrap a one-logit model as a two-class model ``[-z, z]``.

    Class 1 is disease (logit ``z``), class 0 is healthy (``-z``), so that MONAI's
    class-indexed explainers can show the evidence for either class.

    Parameters
    ----------
    model : torch.nn.Module
        A model returning logits of shape ``(N, 1)`` or ``(N,)``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 2)`` logits ``[-z, z]``."""
        z = self.model(x).reshape(x.shape[0], -1)[:, :1]
        return torch.cat([-z, z], dim=1)


def _network(model: FitResult | nn.Module) -> nn.Module:
    return model.model if isinstance(model, FitResult) else model


def _sign(model: nn.Module, x: torch.Tensor, target: str) -> torch.Tensor:
    """+1 where the target class is disease, -1 where healthy."""
    if target == "positive":
        return torch.ones(x.shape[0], device=x.device)
    if target == "negative":
        return -torch.ones(x.shape[0], device=x.device)
    with torch.no_grad():
        z = model(x).reshape(x.shape[0], -1)[:, 0]
    return torch.where(z >= 0, 1.0, -1.0)


def _smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    sign: torch.Tensor,
    n_samples: int,
    noise: float,
    seed: int,
) -> torch.Tensor:
    generator = torch.Generator(device="cpu").manual_seed(seed)
    span = (
        x.amax(dim=tuple(range(1, x.ndim)), keepdim=True)
        - x.amin(dim=tuple(range(1, x.ndim)), keepdim=True)
    ).clamp(min=1e-6)
    total = torch.zeros_like(x)
    for _ in range(n_samples):
        eps = (
            torch.randn(x.shape, generator=generator).to(x.device) * noise * span
            if noise > 0
            else 0.0
        )
        xi = (x + eps).detach().requires_grad_(True)
        z = model(xi).reshape(x.shape[0], -1)[:, 0]
        (grad,) = torch.autograd.grad((z * sign).sum(), xi)
        total += grad.abs()
    return (total / n_samples)[:, 0]


def _gradcam(
    model: nn.Module, x: torch.Tensor, sign: torch.Tensor, layer: str | None
) -> torch.Tensor:
    from monai.visualize import GradCAM

    view = TwoClassView(model)
    target_layer = "model." + (layer or layer_names(model)[-1])
    cam = GradCAM(view, target_layers=target_layer, postprocessing=lambda m: m)
    maps = []
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", UserWarning
        )  # torch's note on full backward hooks
        for i in range(x.shape[0]):
            class_idx = 1 if sign[i] > 0 else 0
            maps.append(cam(x[i : i + 1], class_idx=class_idx).detach())
    return torch.cat(maps)[:, 0].clamp(min=0)


def _occlusion(
    model: nn.Module,
    x: torch.Tensor,
    sign: torch.Tensor,
    mask_size: int,
    overlap: float,
) -> torch.Tensor:
    from monai.visualize import OcclusionSensitivity

    view = TwoClassView(model)
    occ = OcclusionSensitivity(
        view,
        mask_size=mask_size,
        n_batch=64,
        verbose=False,
        overlap=overlap,
        activate=False,
    )
    maps = []
    spatial = tuple(x.shape[2:])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", UserWarning
        )  # MONAI's indexing deprecation notices
        for i in range(x.shape[0]):
            c = 1 if sign[i] > 0 else 0
            base = view(x[i : i + 1])[0, c]
            occ_map, _ = occ(x[i : i + 1])
            occ_map = torch.as_tensor(occ_map)
            if tuple(occ_map.shape[-len(spatial) :]) == spatial:  # (1, classes, *grid)
                occluded = occ_map.reshape(-1, *spatial)[c]
            else:  # (1, 1, *grid, classes)
                occluded = occ_map[..., c].reshape(spatial)
            maps.append((base - occluded).clamp(min=0))
    return torch.stack(maps)


def saliency(
    model: FitResult | nn.Module,
    images: Any,
    method: str = "smoothgrad",
    *,
    target: str = "predicted",
    n_samples: int = 16,
    noise: float = 0.1,
    layer: str | None = None,
    mask_size: int = 8,
    overlap: float = 0.5,
    batch_size: int = 32,
    seed: int = 0,
) -> np.ndarray:
    """Non-negative saliency maps, one per image.

    Parameters
    ----------
    model : FitResult or torch.nn.Module
        A trained one-logit model.
    images : any form accepted by :func:`faimi_tutorial.training.loop.as_data`
        ``(N, 1, *grid)`` images.
    method : {"smoothgrad", "gradcam", "occlusion"}, default "smoothgrad"
        See the module description.
    target : {"predicted", "positive", "negative"}, default "predicted"
        Explain the predicted class, the disease class or the healthy class.
    n_samples : int, default 16
        Noisy copies per image (SmoothGrad).
    noise : float, default 0.1
        Noise standard deviation as a share of each image's intensity range
        (SmoothGrad).
    layer : str, optional
        GradCAM target layer (default: the last block, see
        :func:`faimi_tutorial.models.networks.layer_names`).
    mask_size : int, default 8
        Occlusion patch size in voxels.
    overlap : float, default 0.5
        Overlap of occlusion patches, in [0, 1).
    batch_size : int, default 32
        Images per pass.
    seed : int, default 0
        Seed of the SmoothGrad noise.

    Returns
    -------
    numpy.ndarray
        ``(N, *grid)`` float32 maps (zero or positive).

    Raises
    ------
    ValueError
        For an unknown method or target, or invalid numbers.
    """
    if method not in METHODS:
        raise ValueError(
            f"method={method!r} is not known; allowed: {', '.join(METHODS)}"
        )
    if target not in TARGETS:
        raise ValueError(
            f"target={target!r} is not known; allowed: {', '.join(TARGETS)}"
        )
    if n_samples < 1:
        raise ValueError(f"n_samples={n_samples!r} must be >= 1")
    if noise < 0:
        raise ValueError(f"noise={noise!r} must be >= 0")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap={overlap!r} must be in [0, 1)")
    net = _network(model)
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    x_all = as_data(images).images
    out = []
    try:
        for i in range(0, x_all.shape[0], batch_size):
            x = x_all[i : i + batch_size].to(device)
            sign = _sign(net, x, target)
            if method == "smoothgrad":
                maps = _smoothgrad(net, x, sign, n_samples, noise, seed + i)
            elif method == "gradcam":
                maps = _gradcam(net, x, sign, layer)
            else:
                maps = _occlusion(net, x, sign, mask_size, overlap)
            out.append(maps.detach().float().cpu())
    finally:
        net.train(was_training)
    return (
        torch.cat(out).numpy()
        if out
        else np.zeros((0, *x_all.shape[2:]), dtype=np.float32)
    )


def region_masks(
    regions: Mapping[str, Any] | Sequence[Any],
    grid: Any | None = None,
    shape: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """Resolve regions into boolean masks.

    Parameters
    ----------
    regions : mapping or sequence
        ``{name: boolean mask}``, ``{name: region}`` or a list of regions, where a
        region is a name or :class:`faimi_tutorial.data.anatomy.Region` (these need
        ``grid``).
    grid : faimi_tutorial.data.anatomy.Grid, optional
        Grid of the images, to rasterise named regions.
    shape : sequence of int, optional
        Expected spatial shape; masks of another shape raise ``ValueError``.

    Returns
    -------
    dict of str to numpy.ndarray
        Boolean masks by name.
    """
    if not isinstance(regions, Mapping):
        items: list[tuple[str, Any]] = []
        for r in regions:
            name = r if isinstance(r, str) else getattr(r, "name", str(r))
            items.append((name, r))
    else:
        items = list(regions.items())
    masks: dict[str, np.ndarray] = {}
    for name, value in items:
        if isinstance(value, (np.ndarray, torch.Tensor)):
            mask = np.asarray(
                value.cpu() if isinstance(value, torch.Tensor) else value
            ).astype(bool)
        else:
            if grid is None:
                raise ValueError(
                    f"region {name!r} is given by name; pass grid= to rasterise it"
                )

            mask = np.asarray(anatomy.region_mask(value, grid)).astype(bool)
        if shape is not None and tuple(mask.shape) != tuple(shape):
            raise ValueError(
                f"mask of region {name!r} has shape {mask.shape}; images have "
                f"{tuple(shape)}"
            )
        masks[str(name)] = mask
    return masks


def attribution_share(
    maps: np.ndarray, masks: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """Share of each map's total attribution that lies inside each region.

    Parameters
    ----------
    maps : numpy.ndarray
        ``(N, *grid)`` non-negative maps.
    masks : mapping of str to numpy.ndarray
        Boolean masks of shape ``grid``.

    Returns
    -------
    pandas.DataFrame
        ``(N, n_regions)`` shares in [0, 1] (NaN for an all-zero map).
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim < 3:
        raise ValueError(
            f"maps has shape {maps.shape}; expected (N, *grid) with a 2D or 3D grid"
        )
    if maps.size and maps.min() < 0:
        raise ValueError("maps must be non-negative")
    flat = maps.reshape(maps.shape[0], -1)
    total = flat.sum(axis=1)
    out = {}
    for name, mask in masks.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != maps.shape[1:]:
            raise ValueError(
                f"mask {name!r} has shape {mask.shape}; maps have {maps.shape[1:]}"
            )
        inside = flat[:, mask.reshape(-1)].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = np.where(
                total > 0, inside / np.where(total > 0, total, 1), np.nan
            )
    return pd.DataFrame(out)


def chance_share(
    masks: Mapping[str, np.ndarray], within: np.ndarray | None = None
) -> pd.Series:
    """Share each region would get from a uniform map (its share of the voxels).

    Parameters
    ----------
    masks : mapping of str to numpy.ndarray
        Boolean masks.
    within : numpy.ndarray, optional
        Count only voxels inside this mask (e.g. the brain); default the whole image.

    Returns
    -------
    pandas.Series
        Share per region.
    """
    out = {}
    for name, mask in masks.items():
        mask = np.asarray(mask, dtype=bool)
        base = np.ones_like(mask) if within is None else np.asarray(within, dtype=bool)
        out[name] = float((mask & base).sum() / max(base.sum(), 1))
    return pd.Series(out, name="chance_share")


def attribution_table(
    model: FitResult | nn.Module,
    data: Any,
    regions: Mapping[str, Any] | Sequence[Any],
    *,
    grid: Any | None = None,
    method: str = "smoothgrad",
    threshold: float = 0.5,
    max_per_cell: int | None = 32,
    seed: int = 0,
    **saliency_kwargs: Any,
) -> pd.DataFrame:
    """Per-image attribution shares for true positives and true negatives.

    Parameters
    ----------
    model : FitResult or torch.nn.Module
        A trained model.
    data : cohort-like or ArrayData
        Images with ``label`` and ``bias_group``.
    regions : mapping or sequence
        Regions (see :func:`region_masks`).
    grid : faimi_tutorial.data.anatomy.Grid, optional
        Needed for named regions; taken from ``data.grid`` when it has one.
    method : str, default "smoothgrad"
        Saliency method (:data:`METHODS`).
    threshold : float, default 0.5
        Operating point that defines true positives and negatives.
    max_per_cell : int or None, default 32
        At most this many images per (bias group, outcome), drawn at random.
    seed : int, default 0
        Seed of that draw (and of the SmoothGrad noise).
    **saliency_kwargs
        Passed to :func:`saliency`.

    Returns
    -------
    pandas.DataFrame
        One row per explained image: ``index`` (position in ``data``), ``label``,
        ``bias_group``, ``score``, ``outcome`` (``"TP"`` or ``"TN"``) and one share
        column per region.
    """
    arrays = as_data(data)
    if grid is None:
        grid = getattr(data, "grid", None)
    masks = region_masks(regions, grid, shape=arrays.in_shape[1:])
    scores = predict(model, arrays)
    pred = scores >= threshold
    outcome = np.where(
        pred & (arrays.label == 1),
        "TP",
        np.where(~pred & (arrays.label == 0), "TN", ""),
    )
    rng = np.random.default_rng(seed)
    chosen = []
    for g in np.unique(arrays.bias_group):
        for o in ("TP", "TN"):
            idx = np.flatnonzero((arrays.bias_group == g) & (outcome == o))
            if max_per_cell is not None and len(idx) > max_per_cell:
                idx = np.sort(rng.choice(idx, size=max_per_cell, replace=False))
            chosen.append(idx)
    index = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=int)
    columns = ["index", "label", "bias_group", "score", "outcome", *masks]
    if len(index) == 0:
        return pd.DataFrame(columns=columns)
    maps = saliency(
        model,
        arrays.images[torch.as_tensor(index)],
        method,
        seed=seed,
        **saliency_kwargs,
    )
    shares = attribution_share(maps, masks)
    table = pd.DataFrame(
        {
            "index": index,
            "label": arrays.label[index],
            "bias_group": arrays.bias_group[index],
            "score": scores[index],
            "outcome": outcome[index],
        }
    )
    return pd.concat([table, shares], axis=1)[columns]


def attribution_by_group(
    model: FitResult | nn.Module,
    data: Any,
    regions: Mapping[str, Any] | Sequence[Any],
    **kwargs: Any,
) -> pd.DataFrame:
    """Mean attribution share per region for TP and TN of each bias group.

    Parameters
    ----------
    model : FitResult or torch.nn.Module
        A trained model.
    data : cohort-like or ArrayData
        Images with labels and bias groups.
    regions : mapping or sequence
        Regions (see :func:`region_masks`).
    **kwargs
        Passed to :func:`attribution_table`.

    Returns
    -------
    pandas.DataFrame
        One row per (bias group, outcome, region): ``n``, ``share`` (mean) and
        ``sd``; plus one ``"TP+TN"`` row per group and region averaging both.
    """
    table = attribution_table(model, data, regions, **kwargs)
    region_names = [
        c
        for c in table.columns
        if c not in ("index", "label", "bias_group", "score", "outcome")
    ]
    long = table.melt(
        id_vars=["bias_group", "outcome"],
        value_vars=region_names,
        var_name="region",
        value_name="share",
    )
    both = long.assign(outcome="TP+TN")
    long = pd.concat([long, both], ignore_index=True)
    out = (
        long.groupby(["bias_group", "outcome", "region"], sort=True)["share"]
        .agg(n="count", share="mean", sd="std")
        .reset_index()
    )
    return out
