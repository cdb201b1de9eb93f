"""Image harmonisation: intensity normalisation, histogram matching, field of view.

Scanners render the same anatomy with different intensities. Two classic remedies
work on the images before any model sees them:

``"zscore"``
    Intensity normalisation: every image's brain voxels (above a share
    ``threshold`` of the image's own intensity range) are standardised to mean 0
    and SD 1, then mapped to the grey level ``0.5 + 0.15 z`` (clipped to [0, 1]);
    the background is set to 0.
``"histogram"``
    Histogram standardisation (Nyul & Udupa, 1999; Nyul et al., 2000): the
    brain intensities of each image are mapped, piecewise linearly between
    percentile landmarks, onto the mean landmarks of a reference set of images
    (:func:`reference_landmarks`), so every image ends with the reference's
    intensity distribution.

Both change intensities only, never shapes: :func:`zoom` renders a field-of-view
(voxel-size) change, a geometric difference that no intensity method can undo.

Example::

    ref = reference_landmarks(train_images)
    harmonised = harmonise(test_images, "histogram", reference=ref)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..validation import check_finite

__all__ = [
    "METHODS",
    "LANDMARKS",
    "normalise_intensity",
    "reference_landmarks",
    "match_histograms",
    "harmonise",
    "zoom",
]

#: Harmonisation methods understood by :func:`harmonise`.
METHODS: tuple[str, ...] = ("none", "zscore", "histogram")

#: Percentiles of the brain intensities used as landmarks (Nyul & Udupa's deciles,
#: with the 1st and 99th percentiles as the ends of the standard scale).
LANDMARKS: tuple[float, ...] = (
    1.0,
    10.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    70.0,
    80.0,
    90.0,
    99.0,
)


def _images(images: Any) -> torch.Tensor:
    """``(N, 1, *grid)`` float32 images, or a one-line ValueError."""
    x = torch.as_tensor(images, dtype=torch.float32)
    if x.ndim not in (4, 5) or x.shape[1] != 1:
        raise ValueError(
            f"images has shape {tuple(x.shape)}; allowed: (N, 1, H, W) or "
            "(N, 1, D, H, W)"
        )
    if x.shape[0] == 0:
        raise ValueError("images is empty (0 images); allowed: at least one image")
    if not torch.isfinite(x).all():
        raise ValueError(
            "images contain NaN or infinite values; allowed: finite numbers"
        )
    return x


def _threshold(threshold: float) -> float:
    value = check_finite("threshold", threshold, 0.0, 1.0)
    if value >= 1.0:
        raise ValueError(
            f"threshold={threshold!r} is invalid; allowed: a number in [0, 1)"
        )
    return value


def _brain(flat: torch.Tensor, threshold: float) -> torch.Tensor:
    """Brain mask of flattened images: above ``min + threshold * (p99 - min)``.

    The level is relative to each image's own range, so a scanner that lifts the
    background (a brightness offset, a lower contrast) keeps the same mask.
    """
    low = flat.min(dim=1, keepdim=True).values
    high = torch.quantile(flat, 0.99, dim=1, keepdim=True)
    mask = (flat > low + threshold * (high - low)) & (high > low)
    empty = ~mask.any(dim=1)
    if bool(empty.any()):
        first = int(torch.nonzero(empty)[0])
        raise ValueError(
            f"image {first} is constant (no brain voxels); allowed: images whose brain "
            "is brighter than their background"
        )
    return mask


def normalise_intensity(images: Any, threshold: float = 0.2) -> torch.Tensor:
    """Per-image z-score of the brain voxels, mapped to ``clip(0.5 + 0.15 z, 0, 1)``.

    Parameters
    ----------
    images : tensor or array
        ``(N, 1, *grid)`` images in [0, 1].
    threshold : float, default 0.2
        Brain voxels lie above this share of each image's range (minimum to 99th
        percentile); the others are set to 0.

    Returns
    -------
    torch.Tensor
        Float32 images of the same shape, in [0, 1].
    """
    x = _images(images)
    threshold = _threshold(threshold)
    flat = x.reshape(x.shape[0], -1)
    mask = _brain(flat, threshold).float()
    count = mask.sum(dim=1, keepdim=True)
    mean = (flat * mask).sum(dim=1, keepdim=True) / count
    var = (((flat - mean) * mask) ** 2).sum(dim=1, keepdim=True) / count
    z = (flat - mean) / var.sqrt().clamp(min=1e-6)
    out = torch.where(
        mask > 0, (0.5 + 0.15 * z).clamp(0.0, 1.0), torch.zeros_like(flat)
    )
    return out.reshape(x.shape)


def _landmarks(flat: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Percentile landmarks of each image's brain voxels, ``(N, len(LANDMARKS))``."""
    q = np.asarray(LANDMARKS) / 100.0
    out = np.empty((flat.shape[0], len(q)))
    for i in range(flat.shape[0]):
        out[i] = np.quantile(flat[i][mask[i]].numpy().astype(np.float64), q)
    return out


def reference_landmarks(images: Any, threshold: float = 0.2) -> np.ndarray:
    """The standard scale: mean percentile landmarks of a set of reference images.

    Parameters
    ----------
    images : tensor or array
        ``(N, 1, *grid)`` reference images (for example the training images).
    threshold : float, default 0.2
        Brain voxels lie above this share of each image's range (minimum to 99th
        percentile).

    Returns
    -------
    numpy.ndarray
        ``len(LANDMARKS)`` increasing intensities.
    """
    x = _images(images)
    threshold = _threshold(threshold)
    flat = x.reshape(x.shape[0], -1)
    mean = _landmarks(flat, _brain(flat, threshold)).mean(axis=0)
    return np.maximum.accumulate(mean)


def match_histograms(
    images: Any, reference: Any, threshold: float = 0.2
) -> torch.Tensor:
    """Map each image's brain intensities onto the reference landmarks (Nyul-Udupa).

    Each image's own percentile landmarks are mapped to ``reference`` piecewise
    linearly (extended linearly beyond the ends), clipped to [0, 1]; the
    background (voxels outside the brain mask) is set to 0.

    Parameters
    ----------
    images : tensor or array
        ``(N, 1, *grid)`` images in [0, 1].
    reference : array-like
        Landmarks from :func:`reference_landmarks` (one per entry of :data:`LANDMARKS`).
    threshold : float, default 0.2
        Brain voxels lie above this share of each image's range (minimum to 99th
        percentile).

    Returns
    -------
    torch.Tensor
        Float32 images of the same shape, in [0, 1].
    """
    x = _images(images)
    threshold = _threshold(threshold)
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    if (
        ref.shape != (len(LANDMARKS),)
        or not np.all(np.isfinite(ref))
        or np.any(np.diff(ref) < 0)
    ):
        raise ValueError(
            f"reference has {ref.size} values; allowed: {len(LANDMARKS)} increasing "
            "finite landmarks from reference_landmarks()"
        )
    flat = x.reshape(x.shape[0], -1)
    mask = _brain(flat, threshold)
    own = _landmarks(flat, mask)
    out = torch.zeros_like(flat)
    for i in range(flat.shape[0]):
        # strictly increasing landmarks of the image
        src = np.maximum.accumulate(own[i]) + np.arange(len(ref)) * 1e-9
        v = flat[i].numpy().astype(np.float64)
        mapped = np.interp(v, src, ref)
        # linear extension beyond the first and the last landmark
        low, high = v < src[0], v > src[-1]
        slope_low = (ref[1] - ref[0]) / max(src[1] - src[0], 1e-9)
        slope_high = (ref[-1] - ref[-2]) / max(src[-1] - src[-2], 1e-9)
        mapped[low] = ref[0] + (v[low] - src[0]) * slope_low
        mapped[high] = ref[-1] + (v[high] - src[-1]) * slope_high
        mapped = np.clip(mapped, 0.0, 1.0)
        out[i] = torch.from_numpy(np.where(mask[i].numpy(), mapped, 0.0)).float()
    return out.reshape(x.shape)


def harmonise(
    images: Any, method: str, reference: Any | None = None, threshold: float = 0.2
) -> torch.Tensor:
    """Apply one of :data:`METHODS` to images.

    Parameters
    ----------
    images : tensor or array
        ``(N, 1, *grid)`` images in [0, 1].
    method : str
        ``"none"`` (a copy), ``"zscore"`` (:func:`normalise_intensity`) or
        ``"histogram"`` (:func:`match_histograms`, needs ``reference``).
    reference : array-like, optional
        Landmarks of :func:`reference_landmarks` (``"histogram"`` only).
    threshold : float, default 0.2
        Brain voxels lie above this share of each image's range (minimum to 99th
        percentile).

    Returns
    -------
    torch.Tensor
        The harmonised images.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; allowed: {', '.join(METHODS)}")
    if method == "none":
        return _images(images).clone()
    if method == "zscore":
        return normalise_intensity(images, threshold)
    if reference is None:
        raise ValueError(
            "reference=None is invalid for method='histogram'; allowed: "
            "the landmarks of reference_landmarks(training images)"
        )
    return match_histograms(images, reference, threshold)


def zoom(images: Any, factor: float) -> torch.Tensor:
    """Render images with another field of view: every structure scaled by ``factor``.

    A scanner with a larger field of view (or larger voxels) on the same matrix
    shows the head smaller (``factor < 1``). The image is resampled about its
    centre (bilinear/trilinear), with zeros outside.

    Parameters
    ----------
    images : tensor or array
        ``(N, 1, *grid)`` images.
    factor : float
        Scale of the anatomy in the image, in [0.5, 2].

    Returns
    -------
    torch.Tensor
        Float32 images of the same shape.
    """
    x = _images(images)
    factor = check_finite("factor", factor, 0.5, 2.0)
    dims = x.ndim - 2
    theta = torch.zeros(x.shape[0], dims, dims + 1)
    theta[:, range(dims), range(dims)] = 1.0 / float(factor)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(
        x, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
