"""A SimBA-style generator of synthetic brain MRI with known disease and bias effects.

The generative model follows Stanley, Wilms and Forkert (MICCAI 2023; JAMIA 2024),
re-implemented from the papers' description:

* **Template.** The MNI152 T1 template (:mod:`faimi_tutorial.data.anatomy`).
* **Subject variation.** A velocity field ``sum_k sqrt(lambda_k) z_k phi_k`` over a
  smooth basis with decaying variances; every ``z_k ~ N(0, 1)`` is drawn
  independently. SimBA fits its basis by PCA on real subjects; offline we have none,
  so a synthetic basis of low-frequency cosine fields stands in
  (:meth:`ShapeBasis.synthetic`), and a fitted basis can be passed instead
  (:meth:`ShapeBasis.from_samples`).
* **Disease effect.** A radial velocity field centred on the disease region, scaled by
  a coefficient ``c`` drawn from ``N(mean, sd)`` per class (default ``N(+1, 1)`` for
  disease and ``N(-1, 1)`` for controls). A positive coefficient shrinks the region
  (atrophy), a negative one enlarges it.
* **Bias effect.** The same kind of field in the bias region with ``b ~ N(2, 1)``,
  applied only to the bias group (``bias_kind="morphological"``); or a contrast
  stretch by ``intensity_factor`` about mid-grey (``"intensity"``); or both.
* **Effect sizes in one unit.** As in SimBA, one unit of ``c`` or ``b`` changes the
  affected region's volume by ``disease_effect_sd`` (``bias_effect_sd``) natural
  standard deviations of that volume across subjects (:func:`effect_calibration`
  measures both on the template and the shape basis), so the two effects are
  comparable whatever the regions' sizes.
* **Confined effects.** Every field vanishes beyond ``support`` region radii; the
  named near bias region is placed so that its effect never reaches the disease
  region (tested: < 2 % of the disease effect on the disease region's volume and
  mean intensity).
* **Stratified draws.** Every coefficient is drawn by stratified sampling within each
  class x bias group x split cell (SimBA's stratified distributions), so the cells
  have the same effect-size distributions by construction.
* **Integration.** The summed velocity field is integrated by scaling and squaring
  on a coarse grid and the displacement is upsampled once; the template is then
  warped with :func:`torch.nn.functional.grid_sample`, in batches, on CPU or GPU. On
  the CPU, 3D cohorts take a faster path with the same arithmetic to float32
  rounding: PyTorch's 3D kernel is scalar there, its 2D kernel vectorised, so each
  trilinear sample is two bilinear samples of the two slices around the point
  (:func:`_integrate_3d`, :meth:`_Engine._warp_3d`), one subject at a time on one
  thread; a biased subject's image is re-warped only where the bias can move it.
* **Cohort.** Exact class counts, bias-group counts per class from the bias
  prevalence, train/val/test splits stratified on class x bias group.
* **Counterfactual twins.** Every subject is generated twice from the same draws:
  with its bias effect and without it. Subjects outside the bias group have no bias
  effect, so their twin equals the original.

The same configuration and seed give byte-identical images on the same device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import faimi_tutorial.data.anatomy as anatomy
from .. import presets
from ..runtime import choose_device
from ..validation import check_memory as _check
from ..validation import (
    ConfigError,
    check_choice,
    check_integer,
    check_integers,
    check_numbers,
    check_range,
    config_error,
)

__all__ = [
    "ConfigError",
    "SimulationConfig",
    "ShapeBasis",
    "Cohort",
    "generate",
    "cohort_from_preset",
    "regional_field",
    "integrate_velocity",
    "warp",
    "contrast_stretch",
    "sample_design",
    "memory_estimate",
    "check_memory",
    "stratified_split",
    "stratified_normal",
    "effect_calibration",
    "EffectCalibration",
    "effect_table",
    "bias_energy",
    "match_bias_energy",
]

BIAS_KINDS: tuple[str, ...] = ("morphological", "intensity", "both")
INTENSITY_SCOPES: tuple[str, ...] = ("region", "global")

# Peak of s * (1 - s^2)^3 on [0, 1] (at s = 1/sqrt(7)): normalises the radial bump.
_BUMP_PEAK = (1 / math.sqrt(7)) * (6 / 7) ** 3


#: Margin (mm) around a crop within which displacements are integrated.
_CROP_MARGIN_MM = 24.0

#: Fields taken from the preset's grid entry for ``dims`` when left unset (``None``);
#: :meth:`SimulationConfig.replace` re-derives them when ``dims`` or ``preset`` changes.
GRID_FIELDS: tuple[str, ...] = (
    "shape",
    "spacing",
    "n_subjects",
    "slice_z",
    "integration_spacing_mm",
    "crop",
    "disease_effect_sd",
    "bias_effect_sd",
)


# --------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------

FIELD_HELP: dict[str, str] = {
    "preset": "preset whose grid and cohort size fill unset fields "
    "(tiny, tutorial, paper)",
    "dims": "2 for an axial slice through the disease region, 3 for volumes",
    "shape": "grid size in voxels (2 or 3 numbers); "
    "default: the preset's grid for dims",
    "spacing": "voxel size in mm; default: the preset's",
    "slice_z": "2D only: MNI z (mm) of the axial slice; "
    "default: the disease region's centre",
    "n_subjects": "number of subjects; default: the preset's for dims",
    "disease_fraction": "fraction of subjects with the disease (class balance)",
    "bias_prevalence": "P(bias group | disease) and P(bias group | control)",
    "disease_region": "region of the disease effect: a name or 'x,y,z,radius' in mm",
    "disease_mean": "mean of the disease coefficient c for (disease, control)",
    "disease_sd": "standard deviation of c for (disease, control)",
    "disease_effect_sd": "change of the disease region's volume per unit of c, in "
    "natural standard deviations of that volume across subjects; "
    "default: the preset's for dims",
    "disease_scale_mm": "peak displacement (mm) of the disease field per unit of c; "
    "default: calibrated from disease_effect_sd",
    "bias_region": "region of the bias effect: a name or 'x,y,z,radius' in mm",
    "bias_mean": "mean of the bias coefficient b (bias group only)",
    "bias_sd": "standard deviation of b",
    "bias_effect_sd": "change of the bias region's volume per unit of b, in natural "
    "standard deviations of that volume across subjects; "
    "default: the preset's for dims",
    "bias_scale_mm": "peak displacement (mm) of the bias field per unit of b; "
    "default: calibrated from bias_effect_sd",
    "bias_kind": "morphological (a deformation), intensity (a contrast change) or both",
    "intensity_factor": "contrast stretch about mid-grey for an intensity bias",
    "intensity_scope": "region (the bias region only, smoothly tapered) or global",
    "n_basis": "number of subject-variation basis fields",
    "basis_scale_mm": "root-mean-square displacement (mm) of the subject variation",
    "basis_decay": "variance of basis field k decays as (frequency^2)^-decay",
    "support": "support radius of the regional fields, in region radii",
    "noise_sd": "standard deviation of additive Gaussian noise (image range [0, 1])",
    "split": "fractions of subjects in train, val and test",
    "integration_spacing_mm": "grid spacing (mm) on which velocity fields are "
    "integrated; default: the preset's",
    "crop": "3D only: keep a box of this many voxels centred between the disease and "
    "bias regions (a region of interest for training); default: the preset's; "
    "() for none",
    "squaring_steps": "scaling-and-squaring steps",
    "seed": "random seed: the same configuration and seed give identical images",
}


def _hfield(default: Any = None, **kw: Any) -> Any:
    return field(default=default, **kw)


@dataclass
class SimulationConfig:
    """Everything that defines a simulated cohort (validated at construction).

    Fields left as ``None`` are filled from the preset (:data:`presets.SIMULATION`):
    the grid and cohort size depend on the preset and on ``dims``. Build one with
    :meth:`preset` and override any field::

        cfg = SimulationConfig.preset("tutorial", bias_prevalence=(0.7, 0.3))

    Parameters
    ----------
    preset : str
        ``"tiny"``, ``"tutorial"`` or ``"paper"``.
    dims : int
        2 (an axial slice through the disease region) or 3.
    shape : tuple of int, optional
        Grid size (2 or 3 numbers matching ``dims``).
    spacing : float, optional
        Voxel size (mm).
    slice_z : float, optional
        2D only: MNI z of the slice (default: the disease region's centre).
    n_subjects : int, optional
        Cohort size, >= 8.
    disease_fraction : float
        Fraction with the disease, in (0, 1).
    bias_prevalence : tuple of float
        ``(P(bias | disease), P(bias | control))``, each in [0, 1].
    disease_region, bias_region : str or anatomy.Region
        Regions of the effects (names from :data:`anatomy.REGIONS` or
        ``"x,y,z,radius"``).
    disease_mean, disease_sd : tuple of float
        Distribution of the disease coefficient for (disease, control).
    disease_effect_sd, bias_effect_sd : float, optional
        Size of one unit of the disease (bias) coefficient: the change of the
        affected region's volume, in natural standard deviations of that volume
        across subjects, in [0, 20] (SimBA's common unit for both effects; default:
        the preset's ``effect_sd`` for ``dims``, the same for both).
    disease_scale_mm, bias_scale_mm : float, optional
        Peak displacement per unit coefficient (mm). Default (``None``): derived from
        ``*_effect_sd`` by :func:`effect_calibration` when the cohort is generated;
        a number given here overrides the calibration.
    bias_mean, bias_sd : float
        Distribution of the bias coefficient.
    bias_kind : str
        ``"morphological"``, ``"intensity"`` or ``"both"``.
    intensity_factor : float
        Contrast factor of an intensity bias, in (0, 5].
    intensity_scope : str
        ``"region"`` or ``"global"``.
    n_basis : int
        Number of subject-variation basis fields, in [0, 200].
    basis_scale_mm : float
        RMS displacement of subject variation (mm).
    basis_decay : float
        Decay exponent of the basis variances.
    support : float
        Support radius of the regional fields in region radii, in [1.2, 5].
    noise_sd : float
        Additive Gaussian noise, in [0, 0.5].
    split : tuple of float
        Train, val and test fractions (positive, summing to 1).
    integration_spacing_mm : float, optional
        Spacing of the integration grid (default: the preset's).
    crop : tuple of int, optional
        3D only: the images are cut to a box of this many voxels centred half-way
        between the disease and the bias regions (``None``: the preset's; ``()``:
        no crop, the whole brain).
    squaring_steps : int
        Scaling-and-squaring steps, in [1, 12].
    seed : int
        Non-negative seed.
    """

    preset: str = "tutorial"
    dims: int = 3
    shape: tuple[int, ...] | None = None
    spacing: float | None = None
    slice_z: float | None = None
    n_subjects: int | None = None
    disease_fraction: float = 0.5
    bias_prevalence: tuple[float, float] = (0.7, 0.3)
    disease_region: Any = "right_insula"
    disease_mean: tuple[float, float] = (1.0, -1.0)
    disease_sd: tuple[float, float] = (1.0, 1.0)
    disease_effect_sd: float | None = None
    disease_scale_mm: float | None = None
    bias_region: Any = "right_putamen"
    bias_mean: float = 2.0
    bias_sd: float = 1.0
    bias_effect_sd: float | None = None
    bias_scale_mm: float | None = None
    bias_kind: str = "morphological"
    intensity_factor: float = 1.2
    intensity_scope: str = "region"
    n_basis: int = 40
    basis_scale_mm: float = 4.0
    basis_decay: float = 0.5
    support: float = 1.5
    noise_sd: float = 0.02
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    integration_spacing_mm: float | None = None
    crop: tuple[int, ...] | None = None
    squaring_steps: int = 5
    seed: int = 0

    # ---------------------------------------------------------------- validation
    def __post_init__(self) -> None:
        if not isinstance(self.preset, str):
            # the class attribute ``preset`` is the constructor below, not a default
            self.preset = presets.active_preset()
        check_choice(self, "preset", self.preset, presets.PRESET_NAMES)
        self.dims = check_integer(self, "dims", self.dims, 2, 3, whole_floats=True)
        _fill_grid_defaults(self)
        self.shape = check_integers(
            self, "shape", self.shape, 8, 512, n=self.dims, whole_floats=True
        )
        for name, (lo, hi, low_open, high_open, optional) in _NUMBER_RANGES.items():
            setattr(
                self,
                name,
                check_range(
                    self,
                    name,
                    getattr(self, name),
                    lo,
                    hi,
                    low_open=low_open,
                    high_open=high_open,
                    optional=optional,
                ),
            )
        for name, (lo, hi) in _INTEGER_RANGES.items():
            setattr(
                self,
                name,
                check_integer(
                    self, name, getattr(self, name), lo, hi, whole_floats=True
                ),
            )
        for name, (n, lo, hi) in _TUPLE_RANGES.items():
            setattr(
                self, name, check_numbers(self, name, getattr(self, name), n, lo, hi)
            )
        if any(s <= 0 for s in self.split) or abs(sum(self.split) - 1.0) > 1e-6:
            raise config_error(
                self, "split", self.split, "three positive fractions summing to 1"
            )
        self.integration_spacing_mm = check_range(
            self,
            "integration_spacing_mm",
            self.integration_spacing_mm,
            self.spacing,
            40.0,
        )
        check_choice(self, "bias_kind", self.bias_kind, BIAS_KINDS)
        check_choice(self, "intensity_scope", self.intensity_scope, INTENSITY_SCOPES)
        for name in ("disease_region", "bias_region"):
            setattr(self, name, _checked_region(self, name))
        _check_slice(self)
        self.crop = _checked_crop(self)

    # ---------------------------------------------------------------- constructors
    @classmethod
    def preset(cls, name: str | None = None, **overrides: Any) -> SimulationConfig:
        """The configuration of a preset, with fields overridden.

        Parameters
        ----------
        name : str, optional
            ``"tiny"``, ``"tutorial"`` or ``"paper"`` (default: the active preset,
            ``$FAIMI_PRESET`` or ``"tutorial"``).
        **overrides
            Any field of :class:`SimulationConfig`.

        Returns
        -------
        SimulationConfig
            The validated configuration.

        Raises
        ------
        ValueError
            For an unknown field or an invalid value (a :class:`ConfigError`).
        """
        name = presets.active_preset() if name is None else name
        check_choice(cls, "preset", name, presets.PRESET_NAMES)
        known = _check_known_fields(overrides)
        values = {k: v for k, v in _preset_values(name).items() if k in known}
        values.update(overrides)
        values["preset"] = name
        return cls(**values)

    def replace(self, **changes: Any) -> SimulationConfig:
        """A copy with some fields changed (re-validated).

        Grid fields (shape, spacing, n_subjects, slice_z, integration spacing and the
        two effect scales, calibrated per grid) are re-derived from the preset when
        ``dims`` or ``preset`` changes and they are not given.

        Parameters
        ----------
        **changes
            Fields to change.

        Returns
        -------
        SimulationConfig
            The new configuration.
        """
        values = dataclasses.asdict(self)
        values["disease_region"] = self.disease_region
        values["bias_region"] = self.bias_region
        if ("dims" in changes and changes["dims"] != self.dims) or (
            "preset" in changes and changes["preset"] != self.preset
        ):
            for key in GRID_FIELDS:
                values[key] = None
        values.update(changes)
        return SimulationConfig(**values)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of every field (regions as names or dicts).

        Returns
        -------
        dict
            Field name to value.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, anatomy.Region):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulationConfig:
        """Rebuild a configuration from :meth:`to_dict` output (or its JSON).

        Parameters
        ----------
        data : dict
            Field name to value; unknown keys raise.

        Returns
        -------
        SimulationConfig
            The validated configuration.
        """
        if not isinstance(data, dict):
            raise ConfigError(
                "config",
                type(data).__name__,
                "a JSON object of SimulationConfig fields",
            )
        _check_known_fields(data)
        values = _values_from_json(data)
        return cls(**values)

    def to_json(self) -> str:
        """The configuration as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    # ---------------------------------------------------------------- derived
    @property
    def full_grid(self) -> anatomy.Grid:
        """The grid the anatomy is simulated on (the whole brain)."""
        return anatomy.grid_for(self.shape, self.spacing, slice_z=self.slice_z)

    @property
    def crop_start(self) -> tuple[int, ...] | None:
        """First voxel (per axis) of the crop in :attr:`full_grid`, or ``None``."""
        return _crop_start(self)

    @property
    def grid(self) -> anatomy.Grid:
        """The grid of the images (:class:`anatomy.Grid`): the crop, if there is one."""
        return _image_grid(self)

    @property
    def _work_box(self) -> tuple[anatomy.Grid, tuple[slice, ...] | None]:
        """The grid the generator works on and where the images lie in it (see
        :func:`_work_box`)."""
        return _work_box(self)

    @property
    def disease(self) -> anatomy.Region:
        """The disease region as an :class:`anatomy.Region`."""
        return anatomy.get_region(self.disease_region)

    @property
    def bias(self) -> anatomy.Region:
        """The bias region as an :class:`anatomy.Region`."""
        return anatomy.get_region(self.bias_region)

    @property
    def morphological_bias(self) -> bool:
        """Whether the bias deforms the anatomy."""
        return self.bias_kind in ("morphological", "both")

    @property
    def intensity_bias(self) -> bool:
        """Whether the bias changes image contrast."""
        return self.bias_kind in ("intensity", "both")

    @staticmethod
    def help(name: str) -> str:
        """One-line description of a field (used by the command line).

        Parameters
        ----------
        name : str
            Field name.

        Returns
        -------
        str
            The description.
        """
        return FIELD_HELP[name]


def _preset_values(name: str) -> dict[str, Any]:
    values = presets.SIMULATION.get(name) or {}
    if "grid_3d" not in values or "grid_2d" not in values:
        raise ValueError(
            f"presets.SIMULATION[{name!r}] lacks 'grid_2d'/'grid_3d' entries"
        )
    return values


def _check_known_fields(names: Any) -> set[str]:
    """Raise for names that are not :class:`SimulationConfig` fields; return all."""
    known = {f.name for f in dataclasses.fields(SimulationConfig)}
    unknown = sorted(set(names) - known, key=str)
    if unknown:
        raise ValueError(
            "unknown SimulationConfig field(s): "
            f"{', '.join(map(str, unknown))}; known: "
            f"{', '.join(sorted(known))}"
        )
    return known


def _values_from_json(data: dict[str, Any]) -> dict[str, Any]:
    """Field values of :meth:`SimulationConfig.to_dict` output: lists as tuples, region
    objects as :class:`anatomy.Region`."""
    values = dict(data)
    for key in (
        "shape",
        "bias_prevalence",
        "disease_mean",
        "disease_sd",
        "split",
        "crop",
    ):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    for key in ("disease_region", "bias_region"):
        if isinstance(values.get(key), dict):
            try:
                values[key] = anatomy.get_region(values[key])
            except (ValueError, TypeError) as err:
                raise config_error(
                    SimulationConfig,
                    key,
                    values[key],
                    "a region name or an object with name, centre_mm, "
                    f"radius_mm ({err})",
                ) from None
    return values


# ------------------------------------------------------------- crop geometry


def _crop_start(cfg: SimulationConfig) -> tuple[int, ...] | None:
    """First voxel (per axis) of the crop in ``cfg.full_grid``; ``None`` without one."""
    if not cfg.crop:
        return None
    full = cfg.full_grid
    mid = (np.asarray(cfg.disease.centre_mm) + np.asarray(cfg.bias.centre_mm)) / 2.0
    start = []
    for d, (n, c) in enumerate(zip(full.shape, cfg.crop)):
        centre_vox = (mid[d] - full.origin[d]) / full.spacing
        start.append(int(min(max(round(centre_vox - (c - 1) / 2.0), 0), n - c)))
    return tuple(start)


def _image_grid(cfg: SimulationConfig) -> anatomy.Grid:
    """The grid of the images: the crop when there is one, else the whole brain."""
    full = cfg.full_grid
    start = _crop_start(cfg)
    if start is None:
        return full
    origin = tuple(full.origin[d] + full.spacing * start[d] for d in range(3))
    return anatomy.Grid(cfg.crop, full.spacing, origin)


def _work_box(cfg: SimulationConfig) -> tuple[anatomy.Grid, tuple[slice, ...] | None]:
    """The grid the generator works on and where the images lie in it.

    Without a crop, the whole brain grid. With one, the crop plus a margin of
    ``_CROP_MARGIN_MM`` on every side (within the brain grid, on its voxels), so
    that displacements are integrated only where they can reach the crop.
    """
    full = cfg.full_grid
    start = _crop_start(cfg)
    if start is None:
        return full, None
    margin = int(math.ceil(_CROP_MARGIN_MM / full.spacing))
    lo = [max(a - margin, 0) for a in start]
    hi = [min(a + c + margin, n) for a, c, n in zip(start, cfg.crop, full.shape)]
    origin = tuple(full.origin[d] + full.spacing * lo[d] for d in range(3))
    work = anatomy.Grid(tuple(h - a for a, h in zip(lo, hi)), full.spacing, origin)
    box = tuple(slice(a - w, a - w + c) for a, w, c in zip(start, lo, cfg.crop))
    return work, box


# ------------------------------------------------------------- validation of the fields

#: Number fields of :class:`SimulationConfig`:
#: (low, high, low open, high open, optional).
_NUMBER_RANGES: dict[str, tuple[float, float, bool, bool, bool]] = {
    "spacing": (0.5, 20.0, False, False, False),
    "disease_fraction": (0.0, 1.0, True, True, False),
    "disease_effect_sd": (0.0, 20.0, False, False, False),
    "disease_scale_mm": (0.0, 30.0, False, False, True),
    "bias_mean": (-20.0, 20.0, False, False, False),
    "bias_sd": (0.0, 20.0, False, False, False),
    "bias_effect_sd": (0.0, 20.0, False, False, False),
    "bias_scale_mm": (0.0, 30.0, False, False, True),
    "intensity_factor": (0.0, 5.0, True, False, False),
    "basis_scale_mm": (0.0, 30.0, False, False, False),
    "basis_decay": (0.0, 4.0, False, False, False),
    "support": (1.2, 5.0, False, False, False),
    "noise_sd": (0.0, 0.5, False, False, False),
}

#: Integer fields: (low, high), inclusive.
_INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "n_subjects": (8, 1_000_000),
    "n_basis": (0, 200),
    "squaring_steps": (1, 12),
    "seed": (0, 2**63 - 1),
}

#: Fields holding a fixed number of numbers: (how many, low, high).
_TUPLE_RANGES: dict[str, tuple[int, float, float]] = {
    "bias_prevalence": (2, 0.0, 1.0),
    "disease_mean": (2, -20.0, 20.0),
    "disease_sd": (2, 0.0, 20.0),
    "split": (3, 0.0, 1.0),
}


def _fill_grid_defaults(cfg: SimulationConfig) -> None:
    """Fill the grid fields left as ``None`` from the preset's entry for ``dims``."""
    grid = _preset_values(cfg.preset)[f"grid_{cfg.dims}d"]
    for key, convert in (
        ("shape", tuple),
        ("spacing", float),
        ("n_subjects", int),
        ("integration_spacing_mm", float),
    ):
        if getattr(cfg, key) is None:
            setattr(cfg, key, convert(grid[key]))
    if cfg.crop is None:
        cfg.crop = grid.get("crop")
    elif isinstance(cfg.crop, (tuple, list)) and len(cfg.crop) == 0:
        cfg.crop = ()  # explicitly the whole brain
    for key in ("disease_effect_sd", "bias_effect_sd"):
        if getattr(cfg, key) is None:
            setattr(cfg, key, float(grid.get("effect_sd", 2.0)))


def _checked_region(cfg: SimulationConfig, name: str) -> str | anatomy.Region:
    """A region field as a name (a known region) or an :class:`anatomy.Region`."""
    value = getattr(cfg, name)
    try:
        region = anatomy.get_region(value)
    except (ValueError, KeyError, TypeError):
        raise config_error(
            cfg,
            name,
            value,
            "a region name ("
            + ", ".join(sorted(anatomy.REGIONS))
            + ") or 'x,y,z,radius' in mm",
        ) from None
    # keep names as names (readable in JSON); keep custom regions as Region objects
    return region.name if anatomy.REGIONS.get(region.name) == region else region


def _check_slice(cfg: SimulationConfig) -> None:
    """2D: ``slice_z`` defaults to the disease centre and must cut both regions."""
    if cfg.dims == 3:
        if cfg.slice_z is not None:
            raise config_error(
                cfg, "slice_z", cfg.slice_z, "None for dims=3 (only 2D has a slice)"
            )
        return
    if cfg.slice_z is None:
        cfg.slice_z = anatomy.get_region(cfg.disease_region).centre_mm[2]
    cfg.slice_z = check_range(cfg, "slice_z", cfg.slice_z, -100.0, 120.0)
    for name in ("disease_region", "bias_region"):
        region = anatomy.get_region(getattr(cfg, name))
        if abs(region.centre_mm[2] - cfg.slice_z) >= region.radius_mm:
            raise config_error(
                cfg,
                name,
                region.name,
                f"in 2D, a region that the slice z={cfg.slice_z:g} mm "
                f"cuts (|z - {region.centre_mm[2]:g}| < "
                f"{region.radius_mm:g})",
            )


def _checked_crop(cfg: SimulationConfig) -> tuple[int, ...] | None:
    """``None``, ``()`` or three integers in ``[8, shape]`` (3D only)."""
    if cfg.crop is None or cfg.crop == ():
        return cfg.crop
    allowed = "None (the preset's), () (no crop) or 3 integers in [8, shape] (dims=3)"
    try:
        crop = tuple(int(c) for c in cfg.crop)
    except (TypeError, ValueError):
        raise config_error(cfg, "crop", cfg.crop, allowed) from None
    if (
        cfg.dims != 3
        or len(crop) != 3
        or any(not 8 <= c <= s for c, s in zip(crop, cfg.shape))
        or any(float(c) != float(o) for c, o in zip(crop, cfg.crop))
    ):
        raise config_error(cfg, "crop", cfg.crop, allowed)
    return crop


# --------------------------------------------------------------------------------------
# fields
# --------------------------------------------------------------------------------------


def _torch():
    import torch

    return torch


def _coarse_shape(
    shape: tuple[int, ...], spacing: float, coarse_spacing: float
) -> tuple:
    factor = max(1.0, coarse_spacing / spacing)
    return tuple(max(4, int(math.ceil((s - 1) / factor)) + 1) for s in shape)


def _points_mm(grid: anatomy.Grid, shape: tuple[int, ...]) -> np.ndarray:
    """MNI coordinates of a grid of ``shape`` points with the extent of ``grid``."""
    axes = []
    for d, n in enumerate(shape):
        lo = grid.origin[d]
        hi = grid.origin[d] + grid.spacing * (grid.shape[d] - 1)
        axes.append(np.linspace(lo, hi, n))
    mesh = list(np.meshgrid(*axes, indexing="ij"))
    if grid.dims == 2:
        mesh.append(np.full_like(mesh[0], grid.origin[2]))
    return np.stack(mesh, axis=-1)


def regional_field(
    region: anatomy.Region | str, points_mm: np.ndarray, dims: int, support: float = 2.0
) -> np.ndarray:
    """A unit radial velocity field centred on a region (mm per unit coefficient).

    ``v(x) = (x - c) / R * (1 - |x - c|^2 / R^2)^3 / peak`` inside the support
    radius ``R = support * radius`` and zero outside: smooth, compactly supported,
    with a peak displacement of 1 mm. Under the pull-back warp used here a positive
    coefficient shrinks the region (atrophy) and a negative one enlarges it.

    Parameters
    ----------
    region : anatomy.Region or str
        The region.
    points_mm : numpy.ndarray
        MNI coordinates, shape ``(*grid, 3)``.
    dims : int
        2 (in-plane components only) or 3.
    support : float, default 2.0
        Support radius in region radii.

    Returns
    -------
    numpy.ndarray
        float64 field of shape ``(dims, *grid)`` in mm (x, y[, z] components).
    """
    region = anatomy.get_region(region)
    big_r = support * region.radius_mm
    rel = points_mm - np.asarray(region.centre_mm)
    s2 = (rel**2).sum(-1) / big_r**2
    bump = np.where(s2 < 1.0, (1.0 - np.minimum(s2, 1.0)) ** 3, 0.0) / _BUMP_PEAK
    comps = [rel[..., d] / big_r * bump for d in range(dims)]
    return np.stack(comps, axis=0)


def _cosine_modes(
    points_mm: np.ndarray, dims: int, n_basis: int, scale_mm: float, decay: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine fields at ``points_mm`` (see :meth:`ShapeBasis.synthetic`)."""
    box_lo = np.array([-75.0, -110.0, -60.0])[:dims]
    box_len = np.array([150.0, 190.0, 150.0])[:dims]
    freqs = [n for n in np.ndindex(*([9] * dims)) if any(n)]
    modes = sorted((sum(v * v for v in n), d, n) for n in freqs for d in range(dims))[
        :n_basis
    ]
    pts = points_mm[..., :dims]
    shape = pts.shape[:-1]
    fields = np.zeros((len(modes), dims, *shape))
    variances = np.zeros(len(modes))
    for k, (n2, d, n) in enumerate(modes):
        val = np.ones(shape)
        for i in range(dims):
            if n[i]:
                val = val * np.cos(
                    math.pi * n[i] * (pts[..., i] - box_lo[i]) / box_len[i]
                )
        # unit RMS over the box (cos^2 averages 1/2 per non-zero frequency)
        fields[k, d] = val * math.sqrt(2.0 ** sum(1 for v in n if v))
        variances[k] = float(n2) ** (-decay)
    if len(modes):
        variances *= scale_mm**2 / variances.sum()
    return fields, variances


@dataclass
class ShapeBasis:
    """A basis of smooth velocity fields for subject-to-subject shape variation.

    Parameters
    ----------
    fields : numpy.ndarray
        Shape ``(K, dims, *grid)``: unit fields in mm on the grid ``grid`` (components
        x, y[, z]).
    variances : numpy.ndarray
        Shape ``(K,)``: the variance ``lambda_k`` (mm^2) of each field's coefficient.
    grid : anatomy.Grid
        Grid on which ``fields`` are sampled.
    name : str
        A label ("synthetic-cosine", "pca", ...).
    """

    fields: np.ndarray
    variances: np.ndarray
    grid: anatomy.Grid
    name: str = "custom"

    def __post_init__(self) -> None:
        self.fields = np.asarray(self.fields, dtype=np.float64)
        self.variances = np.asarray(self.variances, dtype=np.float64).reshape(-1)
        if (
            self.fields.ndim != self.grid.dims + 2
            or self.fields.shape[1] != self.grid.dims
        ):
            raise ValueError(
                f"fields shape {self.fields.shape} must be (K, {self.grid.dims}, *grid)"
            )
        if tuple(self.fields.shape[2:]) != tuple(self.grid.shape):
            raise ValueError(
                f"fields grid {self.fields.shape[2:]} does not match grid.shape "
                f"{self.grid.shape}"
            )
        if self.variances.shape[0] != self.fields.shape[0] or np.any(
            self.variances < 0
        ):
            raise ValueError(
                f"variances must be {self.fields.shape[0]} non-negative numbers, "
                f"got shape {self.variances.shape}"
            )

    def __len__(self) -> int:
        return int(self.fields.shape[0])

    @classmethod
    def synthetic(
        cls, grid: anatomy.Grid, n_basis: int, scale_mm: float = 2.0, decay: float = 1.0
    ) -> ShapeBasis:
        """Low-frequency cosine fields with decaying variances (stand-in for a PCA).

        Mode ``k`` is ``e_d * prod_i cos(pi n_i (x_i - lo_i) / L_i)`` over a box
        around the brain, for frequency vectors ``n`` ordered by ``|n|^2`` (the
        constant field excluded) and each component ``d``; each field has unit RMS
        over the box and variance ``lambda_k proportional to (|n|^2)^-decay``, scaled
        so that the expected RMS displacement is ``scale_mm``.

        Parameters
        ----------
        grid : anatomy.Grid
            Grid to sample the fields on.
        n_basis : int
            Number of fields K.
        scale_mm : float, default 2.0
            Expected RMS displacement (mm).
        decay : float, default 1.0
            Decay exponent of the variances.

        Returns
        -------
        ShapeBasis
            The basis.
        """
        fields, variances = _cosine_modes(
            grid.coordinates(), grid.dims, n_basis, scale_mm, decay
        )
        return cls(fields, variances, grid, name="synthetic-cosine")

    @classmethod
    def from_samples(
        cls, samples: np.ndarray, grid: anatomy.Grid, n_basis: int
    ) -> ShapeBasis:
        """Fit a basis by PCA on sample velocity (or displacement) fields.

        This is how SimBA builds its basis from real subjects' registrations.

        Parameters
        ----------
        samples : numpy.ndarray
            Shape ``(n_samples, dims, *grid)`` in mm.
        grid : anatomy.Grid
            Grid of the samples.
        n_basis : int
            Number of principal components to keep (<= n_samples - 1).

        Returns
        -------
        ShapeBasis
            Principal directions (unit RMS) and their variances.
        """
        samples = np.asarray(samples, dtype=np.float64)
        n = samples.shape[0]
        if not 1 <= n_basis <= n - 1:
            raise ValueError(
                f"n_basis={n_basis} must be in [1, {n - 1}] for {n} samples"
            )
        flat = samples.reshape(n, -1)
        flat = flat - flat.mean(0, keepdims=True)
        _, svals, vt = np.linalg.svd(flat, full_matrices=False)
        m = flat.shape[1]
        comps = vt[:n_basis] * math.sqrt(m / grid.dims)  # unit RMS per component field
        variances = svals[:n_basis] ** 2 / (n - 1) / (m / grid.dims)
        return cls(
            comps.reshape(n_basis, *samples.shape[1:]), variances, grid, name="pca"
        )

    def resample(self, grid: anatomy.Grid, shape: tuple[int, ...]) -> np.ndarray:
        """Fields sampled (linearly) on a grid of the same extent with ``shape`` points.

        Parameters
        ----------
        grid : anatomy.Grid
            Grid whose extent the output spans (must equal :attr:`grid`'s extent).
        shape : tuple of int
            Number of points per axis.

        Returns
        -------
        numpy.ndarray
            Shape ``(K, dims, *shape)``.
        """
        if tuple(shape) == tuple(self.grid.shape):
            return self.fields
        torch = _torch()
        import torch.nn.functional as F

        mode = "bilinear" if self.grid.dims == 2 else "trilinear"
        t = torch.from_numpy(self.fields.reshape(-1, *self.grid.shape)[None])
        out = F.interpolate(t, size=tuple(shape), mode=mode, align_corners=True)[0]
        return out.numpy().reshape(len(self), self.grid.dims, *shape)


# --------------------------------------------------------------------------------------
# integration and warping (torch)
# --------------------------------------------------------------------------------------


def _identity(shape: tuple[int, ...], device=None):
    """Identity sampling grid of ``shape``, grid_sample order: (1, *shape, D)."""
    torch = _torch()
    axes = [torch.linspace(-1.0, 1.0, n, device=device) for n in shape]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(mesh[::-1], dim=-1)[None]


def integrate_velocity(velocity, steps: int = 6):
    """Integrate a stationary velocity field by scaling and squaring.

    Parameters
    ----------
    velocity : torch.Tensor
        Shape ``(B, D, *grid)`` in normalised grid units (``[-1, 1]`` spans the grid,
        ``align_corners=True``), channels in :func:`torch.nn.functional.grid_sample`
        order (channel 0 displaces along the last spatial axis).
    steps : int, default 6
        Number of squarings; the field is first divided by ``2**steps``.

    Returns
    -------
    torch.Tensor
        Displacement ``u`` of ``exp(v) = id + u``, same shape as ``velocity``.
    """
    import torch.nn.functional as F

    base = _identity(tuple(velocity.shape[2:]), velocity.device)
    u = velocity / float(2**steps)
    for _ in range(steps):
        grid = base + u.movedim(1, -1)
        u = u + F.grid_sample(
            u, grid, mode="bilinear", padding_mode="border", align_corners=True
        )
    return u


def warp(image, displacement):
    """Warp images with displacement fields (pull-back: ``out(x) = image(x + u(x))``).

    Parameters
    ----------
    image : torch.Tensor
        Shape ``(B or 1, C, *grid)``; a batch of one is shared by all displacements.
    displacement : torch.Tensor
        Shape ``(B, D, *grid)`` in normalised units, grid_sample channel order.

    Returns
    -------
    torch.Tensor
        Shape ``(B, C, *grid)``; outside the grid is 0.
    """
    import torch.nn.functional as F

    b = displacement.shape[0]
    shape = tuple(displacement.shape[2:])
    grid = _identity(shape, displacement.device) + displacement.movedim(1, -1)
    if image.shape[0] == 1 and b > 1:
        # one shared image: stack the batch along the first spatial axis of the grid
        big = grid.reshape(1, b * shape[0], *shape[1:], len(shape))
        out = F.grid_sample(
            image, big, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        c = image.shape[1]
        return out.reshape(c, b, *shape).transpose(0, 1)
    return F.grid_sample(
        image, grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )


# Fast 3D sampling on the CPU. PyTorch's 3D ``grid_sample`` kernel is scalar code on the
# CPU (and uses one thread per batch entry); its 2D kernel is vectorised. A trilinear
# sample is two bilinear samples in the two slices around a point, blended along the
# slice axis: the 3D path (:class:`_Engine`, CPU only) lays slices out in 2D images and
# samples them with the 2D kernel.


def _tiles(n: int) -> tuple[int, int]:
    """Rows and columns of a near-square mosaic of ``n`` tiles."""
    cols = int(math.ceil(math.sqrt(n)))
    return int(math.ceil(n / cols)), cols


def _slice_pairs(volume):
    """A mosaic of the slice pairs of a ``(1, 1, D, H, W)`` volume, framed by zeros.

    The volume gains a frame of zeros on every side (so zero padding is a matter of
    clamping coordinates into the frame); tile ``k`` (of ``D + 1``, at
    ``divmod(k, cols)``) holds framed slice ``k`` in channel 0 and slice ``k + 1`` in
    channel 1, so one bilinear sample reads both slices around a point.

    Returns
    -------
    tuple
        The image ``(1, 2, rows * (H + 2), cols * (W + 2))`` and the layout
        ``(rows, cols, H + 2, W + 2)``.
    """
    torch = _torch()
    import torch.nn.functional as F

    padded = F.pad(volume, (1, 1, 1, 1, 1, 1))
    pairs = torch.cat([padded[:, :, :-1], padded[:, :, 1:]], 1)  # (1, 2, D + 1, h, w)
    n, c, t, h, w = pairs.shape
    rows, cols = _tiles(t)
    pairs = F.pad(pairs, (0, 0, 0, 0, 0, rows * cols - t))
    image = (
        pairs.reshape(n, c, rows, cols, h, w)
        .permute(0, 1, 2, 4, 3, 5)
        .reshape(n, c, rows * h, cols * w)
    )
    return image.contiguous(), (rows, cols, h, w)


def _integrate_3d(velocity, steps: int):
    """Scaling and squaring of 3D velocity fields: :func:`integrate_velocity` on CPUs.

    The same algorithm and units (trilinear resampling with border padding), equal to
    :func:`integrate_velocity` to float32 rounding. Each field's slices are stacked in
    one 2D image (``H + 1`` rows per slice, the last a copy of the one before). In a
    squaring step no point moves more than ``m`` slices, so the points of slice ``k``
    only read slices ``k - m ... k + m + 1``: a window of the stack, one image per
    slice (all strided views of the same memory, nothing is copied). Two vectorised 2D
    samples, in the window and in the window one slice further, give the two slices
    around each point, blended along the slice axis. The windows keep row numbers
    small, so float32 coordinates stay as precise as the 3D kernel's.

    Parameters
    ----------
    velocity : torch.Tensor
        Shape ``(B, 3, D, H, W)`` in normalised units, grid_sample channel order
        (channel 0 along the last axis).
    steps : int
        Number of squarings.

    Returns
    -------
    torch.Tensor
        Displacement ``u`` of ``exp(v) = id + u``, same shape and units.
    """
    torch = _torch()
    import torch.nn.functional as F

    b, _, d, h, w = velocity.shape
    if min(d, h, w) < 2:
        raise ValueError(
            f"fields of shape {tuple(velocity.shape)} need >= 2 points per axis"
        )
    dev, dt = velocity.device, velocity.dtype
    h1 = h + 1
    plane = h1 * w
    # displacements in voxels (channels along W, H, D)
    units = torch.tensor(
        [(w - 1) / 2.0, (h - 1) / 2.0, (d - 1) / 2.0], dtype=dt, device=dev
    )
    units = units.view(3, 1, 1, 1)
    kx = torch.arange(w, dtype=dt, device=dev).view(1, 1, w)
    ky = torch.arange(h1, dtype=dt, device=dev).clamp_(max=h - 1).view(1, h1, 1)
    kz = torch.arange(d, dtype=dt, device=dev).view(d, 1, 1)
    pad = d - 1  # no window reaches further
    store = torch.zeros((3, d + 2 * pad, h1, w), dtype=dt, device=dev)
    u = store[:, pad : pad + d]
    planar = torch.empty((2, d, h1, w), dtype=dt, device=dev)
    # (D, H + 1, W, 2), W contiguous: the kernel's fast case
    grid = planar.permute(1, 2, 3, 0)
    out = torch.empty_like(velocity)
    for i in range(b):
        torch.mul(velocity[i], units / float(2**steps), out=u[:, :, :h])
        u[:, :, h] = u[:, :, h - 1]
        for _ in range(steps):
            m = min(int(math.ceil(float(u[2].abs().max()))), d - 1)
            rows = (2 * m + 1) * h1
            z = torch.add(u[2], kz).clamp_(0.0, d - 1.0)
            z0 = z.floor().clamp_(max=d - 2.0)
            frac = z.sub_(z0).unsqueeze(1)
            # the slice below each point, within its window
            window = z0.sub_(kz).add_(m)
            # the copied last row has the same coordinates as the row it copies
            torch.add(u[0], kx, out=planar[0]).mul_(2.0 / (w - 1)).sub_(1.0)
            y = torch.add(u[1], ky).clamp_(0.0, h - 1.0)
            torch.add(y, window, alpha=h1, out=planar[1]).mul_(2.0 / (rows - 1)).sub_(
                1.0
            )
            size, stride = (d, 3, rows, w), (plane, store.stride(0), w, 1)
            first = store.storage_offset() + (pad - m) * plane
            below = F.grid_sample(
                store.as_strided(size, stride, first),
                grid,
                mode="bilinear",
                padding_mode="border",
                align_corners=True,
            )
            above = F.grid_sample(
                store.as_strided(size, stride, first + plane),
                grid,
                mode="bilinear",
                padding_mode="border",
                align_corners=True,
            )
            u.add_(torch.lerp(below, above, frac).transpose(0, 1))
        torch.div(u[:, :, :h], units, out=out[i])
    return out


def _interp_matrix(n_fine: int, n_coarse: int, index: np.ndarray) -> np.ndarray:
    """Linear-interpolation weights ``(len(index), n_coarse)``, coarse to fine axis.

    Both axes span the same extent (``align_corners=True``); row ``r`` gives fine
    point ``index[r]``.
    """
    t = np.asarray(index, dtype=np.float64) * (n_coarse - 1) / max(n_fine - 1, 1)
    lo = np.minimum(np.floor(t).astype(np.int64), n_coarse - 2)
    frac = t - lo
    out = np.zeros((len(t), n_coarse))
    rows = np.arange(len(t))
    out[rows, lo] = 1.0 - frac
    out[rows, lo + 1] += frac
    return out


def contrast_stretch(image, factor: float, weight=None):
    """Stretch contrast about mid-grey (0.5), clip to ``[0, 1]``, optionally blended.

    Parameters
    ----------
    image : torch.Tensor or numpy.ndarray
        Values in ``[0, 1]``.
    factor : float
        Contrast factor (1.2 = 20 % more contrast).
    weight : array-like, optional
        Blend weight in ``[0, 1]`` broadcastable to ``image`` (1 = fully stretched).

    Returns
    -------
    same type as ``image``
        The stretched image.
    """
    stretched = (image - 0.5) * factor + 0.5
    stretched = stretched.clip(0.0, 1.0)
    if weight is None:
        return stretched
    return image + weight * (stretched - image)


# --------------------------------------------------------------------------------------
# cohort design
# --------------------------------------------------------------------------------------


def stratified_split(
    label: np.ndarray,
    group: np.ndarray,
    fractions: tuple[float, ...],
    seed: int = 0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Assign train/val/test within every label x group cell.

    Parameters
    ----------
    label, group : numpy.ndarray
        Integer codes per subject.
    fractions : tuple of float
        Train, val and test fractions (summing to 1).
    seed : int, default 0
        Seed when ``rng`` is not given.
    rng : numpy.random.Generator, optional
        Generator to draw from.

    Returns
    -------
    numpy.ndarray
        Object array of ``"train"``, ``"val"`` and ``"test"``.
    """
    rng = np.random.default_rng(seed) if rng is None else rng
    label = np.asarray(label)
    group = np.asarray(group)
    split = np.empty(len(label), dtype=object)
    fr = np.asarray(fractions, dtype=float)
    for cls in np.unique(label):
        for grp in np.unique(group):
            idx = rng.permutation(np.flatnonzero((label == cls) & (group == grp)))
            n_cell = len(idx)
            n_train = int(round(n_cell * fr[0]))
            n_val = int(round(n_cell * (fr[0] + fr[1]))) - n_train
            split[idx[:n_train]] = "train"
            split[idx[n_train : n_train + n_val]] = "val"
            split[idx[n_train + n_val :]] = "test"
    return split


def stratified_normal(
    cells: np.ndarray, rng: np.random.Generator, columns: int = 1
) -> np.ndarray:
    """Standard-normal draws, stratified within each cell.

    In a cell of ``m`` subjects, column ``j`` takes one value from each of the ``m``
    equal-probability strata of ``N(0, 1)`` (``ndtri((rank + U) / m)``, in random
    order), so every cell's empirical distribution follows the normal closely and
    all cells look alike (SimBA's stratified distributions).

    Parameters
    ----------
    cells : numpy.ndarray
        One cell code per subject.
    rng : numpy.random.Generator
        Random generator.
    columns : int, default 1
        Number of independent columns.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(cells), columns)``.
    """
    from scipy.special import ndtri

    cells = np.asarray(cells)
    out = np.zeros((len(cells), int(columns)))
    for cell in np.unique(cells):
        idx = np.flatnonzero(cells == cell)
        m = len(idx)
        ranks = np.argsort(rng.random((m, columns)), axis=0)
        out[idx] = ndtri((ranks + rng.random((m, columns))) / m)
    return out


def sample_design(cfg: SimulationConfig) -> pd.DataFrame:
    """Draw who is who: labels, bias groups, splits and every coefficient.

    Class counts are exact (``round(n * disease_fraction)`` with the disease); within
    each class the bias-group size is ``round(n_class * prevalence)``; splits are
    assigned within each class x bias-group cell. The coefficients ``c`` (disease),
    ``b`` (bias) and ``z_k`` (shape) are drawn for everyone by stratified sampling
    within each class x bias group x split cell (:func:`stratified_normal`), so every
    cell has the same distribution of effect sizes and anatomy; ``bias_coef`` is 0
    where the bias is not applied.

    Parameters
    ----------
    cfg : SimulationConfig
        The configuration.

    Returns
    -------
    pandas.DataFrame
        One row per subject: ``subject_id``, ``label``, ``bias_group``, ``split``,
        ``disease_coef``, ``bias_coef``, ``bias_coef_drawn``, ``z_00`` ... ``z_{K-1}``.
    """
    rng = np.random.default_rng([int(cfg.seed), 11])
    n = cfg.n_subjects
    n_dis = int(round(n * cfg.disease_fraction))
    n_dis = min(max(n_dis, 1), n - 1)
    label = np.zeros(n, dtype=np.int64)
    label[rng.permutation(n)[:n_dis]] = 1
    bias = np.zeros(n, dtype=np.int64)
    for cls, prev in ((1, cfg.bias_prevalence[0]), (0, cfg.bias_prevalence[1])):
        idx = np.flatnonzero(label == cls)
        k = int(round(len(idx) * prev))
        bias[rng.permutation(idx)[:k]] = 1
    split = stratified_split(label, bias, cfg.split, rng=rng)
    coef_rng = np.random.default_rng([int(cfg.seed), 23])
    codes = pd.Categorical(split, categories=["train", "val", "test"]).codes
    cells = label * 100 + bias * 10 + codes
    u_c = stratified_normal(cells, coef_rng)[:, 0]
    u_b = stratified_normal(cells, coef_rng)[:, 0]
    z = stratified_normal(cells, coef_rng, cfg.n_basis)
    mean = np.where(label == 1, cfg.disease_mean[0], cfg.disease_mean[1])
    sd = np.where(label == 1, cfg.disease_sd[0], cfg.disease_sd[1])
    c = mean + sd * u_c
    b_drawn = cfg.bias_mean + cfg.bias_sd * u_b
    meta = pd.DataFrame(
        {
            "subject_id": [f"sub-{i + 1:04d}" for i in range(n)],
            "label": label,
            "bias_group": bias,
            "split": pd.Categorical(split, categories=["train", "val", "test"]),
            "disease_coef": c,
            "bias_coef": np.where(bias == 1, b_drawn, 0.0),
            "bias_coef_drawn": b_drawn,
        }
    )
    for k in range(cfg.n_basis):
        meta[f"z_{k:02d}"] = z[:, k]
    return meta


# --------------------------------------------------------------------------------------
# the cohort
# --------------------------------------------------------------------------------------


@dataclass
class Cohort:
    """A simulated cohort: images, counterfactual twins and per-subject metadata.

    Attributes
    ----------
    images : torch.Tensor
        float32, shape ``(N, 1, *grid)``, values in ``[0, 1]``.
    twins : torch.Tensor
        Same shape: the same subjects generated from the same draws with the bias
        effect removed (equal to ``images`` outside the bias group).
    meta : pandas.DataFrame
        One row per subject (``subject_id``, ``label``, ``bias_group``, ``split``,
        coefficients, region volumes).
    config : SimulationConfig or None
        The configuration that generated the cohort (``None`` for a user's own data).
    """

    images: Any
    twins: Any
    meta: pd.DataFrame
    config: SimulationConfig | None = None

    def __post_init__(self) -> None:
        n = len(self.meta)
        if self.images.shape[0] != n or (
            self.twins is not None and self.twins.shape[0] != n
        ):
            raise ValueError(
                f"images ({self.images.shape[0]}), twins and meta ({n}) disagree in "
                "length"
            )

    def __len__(self) -> int:
        return len(self.meta)

    def __repr__(self) -> str:
        shape = tuple(self.images.shape[2:])
        counts = self.meta.groupby(["label", "bias_group"]).size().to_dict()
        return (
            f"Cohort(n={len(self)}, grid={shape}, label x bias_group counts={counts})"
        )

    @property
    def label(self) -> np.ndarray:
        """Disease labels (1 = disease), int64 numpy array."""
        return np.array(self.meta["label"], dtype=np.int64)

    @property
    def bias_group(self) -> np.ndarray:
        """Bias-group membership (1 = carries the bias effect), int64 numpy array."""
        return np.array(self.meta["bias_group"], dtype=np.int64)

    @property
    def grid(self) -> anatomy.Grid | None:
        """The simulation grid (``None`` without a configuration)."""
        return None if self.config is None else self.config.grid

    def subset(self, index: Any) -> Cohort:
        """The sub-cohort selected by a boolean mask or integer indices.

        Parameters
        ----------
        index : array-like of bool or int
            A mask of length ``len(self)`` or positions.

        Returns
        -------
        Cohort
            A new cohort sharing the configuration (image tensors are indexed copies).
        """
        torch = _torch()
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(
                    f"boolean mask of length {idx.shape} does not match {len(self)}"
                )
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"index out of range for a cohort of {len(self)}")
        t_idx = torch.as_tensor(idx)
        return Cohort(
            images=self.images[t_idx],
            twins=None if self.twins is None else self.twins[t_idx],
            meta=self.meta.iloc[idx].reset_index(drop=True),
            config=self.config,
        )

    def _split(self, name: str) -> Cohort:
        return self.subset(self.meta["split"].astype(str).to_numpy() == name)

    @property
    def train(self) -> Cohort:
        """The training sub-cohort."""
        return self._split("train")

    @property
    def val(self) -> Cohort:
        """The validation sub-cohort."""
        return self._split("val")

    @property
    def test(self) -> Cohort:
        """The test sub-cohort."""
        return self._split("test")

    def with_twins(self) -> Cohort:
        """The cohort whose images are the counterfactual twins (bias removed).

        Returns
        -------
        Cohort
            Same metadata, ``images`` replaced by ``twins`` (and ``twins`` by the
            originals), so any model or metric can be run on the twins directly.
        """
        if self.twins is None:
            raise ValueError("this cohort has no twins")
        return Cohort(self.twins, self.images, self.meta.copy(), self.config)

    def counts(self) -> pd.DataFrame:
        """Number of subjects per split, label and bias group.

        Returns
        -------
        pandas.DataFrame
            Rows ``(split, label)``, columns bias group 0/1 and total.
        """
        table = pd.crosstab(
            [self.meta["split"], self.meta["label"]],
            self.meta["bias_group"],
            margins=True,
            margins_name="total",
        )
        return table


# --------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _serial(active: bool = True):
    """Run torch on one thread inside (when ``active``), then restore the thread count.

    The fast 3D path works one subject at a time with many small operations; threads
    would share each of them at a cost larger than their work (on a busy machine,
    waiting for a descheduled thread costs milliseconds per operation).
    """
    torch = _torch()
    threads = torch.get_num_threads()
    if not active or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


#: Whether 3D cohorts on the CPU take the fast path (:func:`_integrate_3d`,
#: :meth:`_Engine._warp_3d`); ``False`` selects the reference path (3D ``grid_sample``,
#: as on GPUs), which gives the same images to float32 rounding.
_FAST_3D = True

#: Working grids (voxels) from which 3D cohorts take the fast path. Smaller ones keep
#: the reference arithmetic bit for bit: the book trains on its 3D region of interest
#: (a 32^3 working grid), and training turns float32-rounding differences in the images
#: into visibly different models (measured on chapter 5's 3D run: AUROC 0.865 against
#: 0.864, the group FPRs 0.15/0.20 against 0.14/0.13).
_FAST_3D_MIN_VOXELS = 65_536

#: Most rows of a float32 window image (:meth:`_Engine._warp_window`): coordinates
#: within it stay precise to ~1e-5 voxel. Fields that need taller windows take the
#: float64 mosaic.
_WINDOW_ROWS = 256


class _Engine:
    """Precomputed tensors for one configuration on one device."""

    def __init__(
        self,
        cfg: SimulationConfig,
        device,
        basis: ShapeBasis | None,
        disease_mm: float,
        bias_mm: float,
    ) -> None:
        torch = _torch()
        self.cfg = cfg
        self.device = device
        grid, box = cfg._work_box
        self.grid = grid
        dims = cfg.dims
        self.fine = tuple(grid.shape)
        self.coarse = _coarse_shape(self.fine, grid.spacing, cfg.integration_spacing_mm)
        # mm -> normalised units per axis (x, y[, z]); then reverse to grid_sample order
        half = np.array([grid.spacing * (n - 1) / 2.0 for n in self.fine])
        pts = _points_mm(grid, self.coarse)

        def to_t(field_mm: np.ndarray):
            # (..., dims, *coarse) mm, x-first  ->  normalised, grid_sample order
            f = field_mm / half.reshape((dims,) + (1,) * dims)
            f = np.flip(f, axis=-dims - 1).copy()
            return torch.as_tensor(f, dtype=torch.float32, device=device)

        self.disease_field = to_t(
            regional_field(cfg.disease, pts, dims, cfg.support) * disease_mm
        )
        self.bias_field = to_t(
            regional_field(cfg.bias, pts, dims, cfg.support) * bias_mm
        )
        if basis is not None and len(basis) != cfg.n_basis:
            raise ValueError(f"basis has {len(basis)} fields but n_basis={cfg.n_basis}")
        if basis is not None:
            fields, variances = basis.resample(grid, self.coarse), basis.variances
        elif cfg.n_basis:
            # the synthetic basis, evaluated straight on the integration grid
            fields, variances = _cosine_modes(
                pts, dims, cfg.n_basis, cfg.basis_scale_mm, cfg.basis_decay
            )
        if cfg.n_basis:
            fields = fields * np.sqrt(variances).reshape((-1,) + (1,) * (dims + 1))
            self.basis = to_t(fields)  # (K, dims, *coarse)
        else:
            self.basis = None
        template = anatomy.load_template(grid)
        self.template = torch.as_tensor(
            np.array(template, dtype=np.float32), device=device
        )[None, None]
        # voxels within margin_mm of the brain: the only ones that can be non-zero while
        # every displacement is shorter than the margin
        from scipy import ndimage

        brain = template > 0.0
        margin_mm = 12.0
        self.margin_mm = margin_mm
        outside = ndimage.distance_transform_edt(~brain) * grid.spacing
        near = outside <= margin_mm
        # the output voxels: the crop (only those are ever rendered) or the whole grid
        self.crop = box
        self.out_shape = self.fine if self.crop is None else tuple(cfg.crop)
        index = np.arange(int(np.prod(self.fine))).reshape(self.fine)
        out_index = (index if self.crop is None else index[self.crop]).ravel()
        identity = _identity(self.fine, device).reshape(-1, dims)  # (V, D)
        self.all_points = identity[torch.as_tensor(out_index, device=device)]  # (O, D)
        flat = np.flatnonzero(near.ravel()[out_index])
        self.near_index = torch.as_tensor(flat, device=device)
        self.near_points = self.all_points[self.near_index]  # (P, D)
        # region masks (for volumes): the points that can reach each region
        self.masks = {}
        self.out_masks = {}
        self.region_points = {}
        for key, region in (("disease", cfg.disease), ("bias", cfg.bias)):
            m = anatomy.region_mask(region, grid, within_brain=True)
            self.masks[key] = torch.as_tensor(m.astype(np.float32), device=device)[
                None, None
            ]
            self.out_masks[key] = torch.as_tensor(m.ravel()[out_index], device=device)
            if not m.any():
                self.region_points[key] = None
                continue
            reach = ndimage.distance_transform_edt(~m) * grid.spacing <= margin_mm
            self.region_points[key] = identity[
                torch.as_tensor(np.flatnonzero(reach.ravel()), device=device)
            ]
        if cfg.intensity_scope == "region":
            # the contrast change reaches exactly as far as a regional field
            w = anatomy.region_weight(
                cfg.bias, grid, taper_mm=(cfg.support - 1.0) * cfg.bias.radius_mm
            )
            w = w if self.crop is None else w[self.crop]
            self.intensity_weight = torch.as_tensor(
                np.ascontiguousarray(w), device=device
            )[None, None]
        else:
            self.intensity_weight = None
        self.voxel_ml = grid.voxel_volume_ml

        # distances (mm) of coarse points to the bias centre, for exact twin locality
        dist = np.sqrt(((pts - np.asarray(cfg.bias.centre_mm)) ** 2).sum(-1))
        self.bias_dist = torch.as_tensor(dist, dtype=torch.float32, device=device)
        self.bias_support_mm = cfg.support * cfg.bias.radius_mm
        extent = np.array([grid.spacing * (n - 1) for n in self.fine])
        self.coarse_spacing_mm = float(np.max(extent / (np.array(self.coarse) - 1)))
        self.half_t = torch.as_tensor(
            half[::-1].copy(), dtype=torch.float32, device=device
        )
        # the fast 3D path is for CPUs; on GPUs the 3D kernel is fast already
        self.fast = (
            _FAST_3D
            and dims == 3
            and torch.device(device).type == "cpu"
            and math.prod(self.fine) >= _FAST_3D_MIN_VOXELS
        )
        if self.fast:
            self._init_3d(outside, near)

    def _init_3d(self, outside: np.ndarray, near: np.ndarray) -> None:
        """Tensors of the fast 3D path: template images, upsampling, unit scales."""
        torch = _torch()
        dev = self.device
        fine, coarse = self.fine, self.coarse
        # coarse voxels per normalised unit (grid_sample channel ch: along axis 2 - ch)
        self._cscale = torch.as_tensor(
            [(coarse[2 - ch] - 1) / 2.0 for ch in range(3)],
            dtype=torch.float32,
            device=dev,
        ).view(1, 3, 1, 1, 1)
        # sampled in float64: the mosaic is large, and float32 coordinates would lose
        # ~1e-4 voxel of precision (the 2D kernel's cost grows by about half)
        wdt = self._wdt = torch.float64
        self._tmpl_mosaic, self._layout = _slice_pairs(self.template.to(wdt))
        rows, cols, th, tw = self._layout
        sx, sy = 2.0 / (cols * tw - 1), 2.0 / (rows * th - 1)
        self._clamp = (
            (-1.0, -1.0, 0.0),
            ((fine[2] + 1) * sx - 1.0, (fine[1] + 1) * sy - 1.0, fine[0] + 1.0),
        )
        # coarse positions (in fine voxels, +1 for the zero frame) mapped to the
        # mosaic's units: X, Y normalised and shifted to tile 0, Z in slices; linear,
        # so they are mapped on the coarse grid and upsampled once
        ratio = [(f - 1) / (c - 1) for f, c in zip(fine, coarse)]
        scale = [ratio[2] * sx, ratio[1] * sy, ratio[0]]
        shift = [sx - 1.0, sy - 1.0, 1.0]
        self._fscale = torch.as_tensor(scale, dtype=wdt, device=dev).view(1, 3, 1, 1, 1)
        self._fshift = torch.as_tensor(shift, dtype=wdt, device=dev).view(1, 3, 1, 1, 1)
        axes = [torch.arange(n, dtype=wdt, device=dev) for n in coarse]
        kz, ky, kx = torch.meshgrid(*axes, indexing="ij")
        # (1, 3, *coarse), grid_sample order
        self._ident_c = torch.stack([kx, ky, kz])[None]
        box = self.crop if self.crop is not None else tuple(slice(0, n) for n in fine)
        index = [np.arange(n)[sl] for n, sl in zip(fine, box)]
        mats = [_interp_matrix(f, c, i) for f, c, i in zip(fine, coarse, index)]
        self._up = tuple(
            torch.as_tensor(np.ascontiguousarray(a), dtype=wdt, device=dev)
            for a in (mats[0], mats[1], mats[2].T)
        )
        # the float32 path (_warp_window): the framed slice pairs as tiles, two per row
        # of tiles, in two copies one tile apart; zero tiles around them
        th, tw = fine[1] + 2, fine[2] + 2
        self._tile = (th, tw)
        # windows of ``half`` + 1 rows of tiles, at most _WINDOW_ROWS rows in all
        self._half = max(_WINDOW_ROWS // th - 1, 0)
        lead = self._half + 1
        n_tiles = lead + fine[0] + 1 + self._half + 4
        framed = torch.nn.functional.pad(self.template[0, 0], (1, 1, 1, 1, 1, 1))
        tiles = torch.zeros((2, n_tiles, th, tw), dtype=torch.float32, device=dev)
        tiles[0, lead : lead + fine[0] + 1] = framed[:-1]
        tiles[1, lead : lead + fine[0] + 1] = framed[1:]
        pairs = (n_tiles - 1) // 2
        self._pair_rows = tuple(
            tiles[:, shift : shift + 2 * pairs]
            .reshape(2, pairs, 2, th, tw)
            .permute(0, 1, 3, 2, 4)
            .reshape(2, pairs, th, 2 * tw)
            .contiguous()
            for shift in (0, 1)
        )
        self._first_tile = (0 if self.crop is None else self.crop[0].start) + 1 + lead
        self._up32 = tuple(m.float() for m in self._up)
        self._ratio_t = torch.as_tensor(
            [ratio[2], ratio[1], ratio[0]], dtype=torch.float32, device=dev
        ).view(3, 1, 1, 1)
        self._ident_f = torch.stack([kx, ky, torch.zeros_like(kz)]).float()
        # normalised u_z -> fine voxels
        self._slice_scale = (coarse[0] - 1) / 2.0 * ratio[0]
        # distance (mm) of each output voxel to the brain: a voxel farther than the
        # longest displacement plus a cell's diagonal samples only zeros
        out_mm = outside if self.crop is None else outside[self.crop]
        self._out_mm = torch.as_tensor(out_mm.ravel(), dtype=torch.float32, device=dev)
        self._corner_mm = math.sqrt(3.0) * self.grid.spacing * 1.001 + 1e-3
        self._near_mask = torch.as_tensor(
            (near if self.crop is None else near[self.crop]).ravel().astype(np.float32),
            device=dev,
        )

    # ------------------------------------------------------------------
    def speed_mm(self, v) -> np.ndarray:
        """Largest speed (mm per unit time) of each velocity field."""
        if v.shape[0] == 0:
            return np.zeros(0)
        mm = v * self.half_t.view(1, -1, *([1] * self.cfg.dims))
        return mm.pow(2).sum(1).sqrt().flatten(1).amax(1).double().cpu().numpy()

    def localise(self, u, n_twin: int, biased: np.ndarray, speed: np.ndarray):
        """Copy twin displacements into biased ones beyond the bias field's reach."""
        torch = _torch()
        reach = (
            self.bias_support_mm
            + torch.as_tensor(speed, dtype=torch.float32, device=self.device)
            + 2.0 * self.coarse_spacing_mm
        )
        keep = self.bias_dist[None] <= reach.view(-1, *([1] * self.cfg.dims))
        twin_u = u[torch.as_tensor(biased, device=self.device)]
        u = u.clone()
        u[n_twin:] = torch.where(keep[:, None], u[n_twin:], twin_u)
        return u

    def velocity(self, z: np.ndarray, c: np.ndarray):
        torch = _torch()
        b = len(c)
        v = torch.zeros(
            (b, self.cfg.dims, *self.coarse), dtype=torch.float32, device=self.device
        )
        if self.basis is not None:
            zt = torch.as_tensor(z, dtype=torch.float32, device=self.device)
            view = (-1,) + (1,) * (self.cfg.dims + 1)
            for k in range(
                self.basis.shape[0]
            ):  # elementwise: batch-independent results
                v.addcmul_(zt[:, k].view(view), self.basis[k].unsqueeze(0))
        ct = torch.as_tensor(c, dtype=torch.float32, device=self.device)
        v.addcmul_(
            ct.view(-1, *([1] * (self.cfg.dims + 1))), self.disease_field.unsqueeze(0)
        )
        return v

    def integrate(self, v):
        """Displacements of velocity fields ``v`` (normalised, see :meth:`velocity`).

        The result, in the same units, equals :func:`integrate_velocity`'s to float32
        rounding (in 3D it is computed by :func:`_integrate_3d`).
        """
        if self.fast:
            return _integrate_3d(v, self.cfg.squaring_steps)
        return integrate_velocity(v, self.cfg.squaring_steps)

    def use_near(self, u_coarse) -> bool:
        """Whether all displacements are short enough to leave far voxels at 0."""
        if u_coarse.shape[0] == 0:
            return True
        dims = self.cfg.dims
        max_mm = float(
            (
                u_coarse.abs().amax(dim=tuple(range(2, dims + 2)))
                * self.half_t.view(1, -1)
            ).max()
        )
        return max_mm < self.margin_mm - self.grid.spacing

    def volumes(self, u_coarse) -> dict[str, np.ndarray]:
        """Volumes (mL) of the warped disease and bias regions."""
        b = u_coarse.shape[0]
        vols = {}
        for key, mask in self.masks.items():
            where = self.region_points[key]
            if where is None:
                vols[key] = np.zeros(b)
                continue
            warped = self._sample(mask, u_coarse, where)
            vols[key] = warped.double().sum(1).cpu().numpy() * self.voxel_ml
        return vols

    def render(self, u_coarse):
        """Warp the template with coarse displacements (normalised, :meth:`integrate`).

        Returns the images ``(B, 1, *out_shape)`` and the region volumes.
        """
        torch = _torch()
        b = u_coarse.shape[0]
        out = torch.empty(
            (b, 1, *self.out_shape), dtype=torch.float32, device=self.device
        )
        self.render_into(u_coarse, out, self.use_near(u_coarse))
        return out, self.volumes(u_coarse)

    def render_into(self, u_coarse, out, use_near: bool, box=None, reach=None) -> None:
        """Write the warped template into ``out`` ``(B, 1, *out_shape)``.

        ``box`` (slices of the output grid; fast 3D path only) limits the work to the
        voxels inside it and leaves the others as they are; ``reach``: see
        :meth:`_warp_3d`.
        """
        torch = _torch()
        b = u_coarse.shape[0]
        if b == 0:
            return
        if self.fast:
            self._warp_3d(u_coarse, out.view(b, *self.out_shape), use_near, box, reach)
            return
        # the same arithmetic either way: a subject's image never depends on its batch
        points = self.near_points if use_near else self.all_points  # (P, D)
        values = self._sample(self.template, u_coarse, points)
        if use_near:
            result = torch.zeros(
                (b, self.all_points.shape[0]), dtype=torch.float32, device=self.device
            )
            result[:, self.near_index] = values
        else:
            result = values
        out.copy_(result.reshape(out.shape))

    def bias_box(self, speed: np.ndarray) -> tuple[slice, ...]:
        """Output voxels whose displacement the bias can change (see :meth:`localise`).

        Beyond it every coarse node around a voxel holds the twin's displacement, so
        the biased image equals the twin's there, bit for bit.
        """
        reach = (
            self.bias_support_mm
            + float(np.max(speed, initial=0.0))
            + (2.0 + math.sqrt(3.0)) * self.coarse_spacing_mm
            + 1e-3
        )
        start = [0, 0, 0] if self.crop is None else [sl.start for sl in self.crop]
        box = []
        for a in range(3):
            centre = (
                self.cfg.bias.centre_mm[a] - self.grid.origin[a]
            ) / self.grid.spacing
            lo = int(math.floor(centre - reach / self.grid.spacing)) - start[a]
            hi = int(math.ceil(centre + reach / self.grid.spacing)) + 1 - start[a]
            box.append(
                slice(
                    min(max(lo, 0), self.out_shape[a]),
                    min(max(hi, 0), self.out_shape[a]),
                )
            )
        return tuple(box)

    def _warp_3d(self, u_coarse, out, use_near: bool, box=None, reach=None) -> None:
        """The template warped by each displacement (normalised), written into ``out``.

        ``out``: ``(B, *out_shape)``; ``box``: slices of the output grid to write (all
        by default). The coarse positions are mapped linearly to the units of the
        template's slice images (on the coarse grid) and upsampled once (separable
        linear interpolation, :func:`_interp_matrix`); then every voxel is one bilinear
        sample of an image holding the two slices around it (:meth:`_warp_window`,
        float32, or :meth:`_warp_mosaic`, float64, for long displacements), blended
        along the slice axis. ``reach``: per field, the longest displacement along the
        slice axis that decides between the two (default: the field's own,
        :meth:`slice_reach`); a twin and its biased image share theirs, so that both
        take the same arithmetic and stay equal, bit for bit, where their
        displacements are.
        """
        torch = _torch()

        b = u_coarse.shape[0]
        box = tuple(slice(0, n) for n in self.out_shape) if box is None else box
        if b == 0 or any(sl.stop <= sl.start for sl in box):
            return
        up = [
            (m[0][box[0]], m[1][box[1]], m[2][:, box[2]])
            for m in (self._up32, self._up)
        ]
        near = self._near_mask.view(self.out_shape)[box] if use_near else None
        reach = self.slice_reach(u_coarse) if reach is None else np.asarray(reach)
        mosaic = []
        for i in range(b):
            if self._fits_window(float(reach[i])):
                self._warp_window(u_coarse[i], out[i][box], up[0], box)
            else:
                mosaic.append(i)
        if mosaic:
            self._warp_mosaic(
                u_coarse[mosaic], [out[i][box] for i in mosaic], up[1], box
            )
        if near is not None:  # voxels far from the brain stay exactly 0, as in 2D
            for i in range(b):
                out[i][box].mul_(near)

    def slice_reach(self, u_coarse) -> np.ndarray:
        """Longest displacement along the slice axis of each field (fine voxels).

        No interpolated displacement is longer than the coarse ones around it.
        """
        if not self.fast or u_coarse.shape[0] == 0:
            return np.zeros(u_coarse.shape[0])
        amax = u_coarse[:, 2].abs().flatten(1).amax(1).double()
        return amax.cpu().numpy() * self._slice_scale

    def _fits_window(self, reach: float) -> bool:
        """Whether a field's voxels all find their two slices in their window."""
        # a margin for rounding: upsampled displacements are averages of coarse ones
        return self._half >= 1 and reach * (1.0 + 1e-5) + 1e-5 < self._half

    def _upsample(self, fields, up):
        """Separable linear upsampling of ``(3, *coarse)`` fields to ``(3, n)``."""
        torch = _torch()
        c0, c1, c2 = self.coarse
        up0, up1, up2 = up
        o0, o1, o2 = up0.shape[0], up1.shape[0], up2.shape[1]
        a = fields.reshape(3 * c0 * c1, c2) @ up2
        a = torch.matmul(up1, a.view(3 * c0, c1, o2))
        return torch.matmul(up0, a.view(3, c0, o1 * o2)).view(3, o0 * o1 * o2)

    def _warp_window(self, u, target, up, box) -> None:
        """One field: each output slice samples a window of ``2 half + 1`` tile pairs.

        The framed template's slice pairs are stacked two per row of tiles
        (:attr:`_pair_rows`, two copies one tile apart); the window of output slice
        ``k`` starts ``half`` tiles before the voxel's own slice, so that every voxel
        of the slice finds the two slices around it in its window, and the windows of
        every other slice are strided views of one copy. Rows and columns stay few:
        float32 coordinates keep the 3D kernel's precision.
        """
        torch = _torch()
        import torch.nn.functional as F

        th, tw = self._tile
        half = self._half  # the same for every field: the same arithmetic for all
        o0, o1, o2 = target.shape
        rows = (half + 1) * th
        sx, sy = 2.0 / (2 * tw - 1), 2.0 / (rows - 1)
        # coarse fields: columns, rows (normalised, tile 0), slice displacement
        fields = torch.addcmul(self._ident_f, u, self._cscale[0]).mul_(self._ratio_t)
        fields[0].add_(1.0).mul_(sx).sub_(1.0)  # + 1: the zero frame
        fields[1].add_(1.0).mul_(sy).sub_(1.0)
        a = self._upsample(fields, up)
        x, y, z = a
        x.clamp_(-1.0, (tw - 1) * sx - 1.0)
        y.clamp_(-1.0, (th - 1) * sy - 1.0)
        step = z.floor()
        frac = z.sub_(step)
        step.add_(half)  # the tile (slice pair) within the window, 0 ... 2 half
        tile_row = step.mul(0.5).floor_()
        x.add_(step.sub_(tile_row, alpha=2.0), alpha=tw * sx)
        y.add_(tile_row, alpha=th * sy)
        plane = self._pair_rows[0].stride(1)  # one row of tiles
        n_pts = o1 * o2
        planar = a.view(3, o0, n_pts)
        frac = frac.view(o0, n_pts)
        first = box[0].start + self._first_tile - half  # first tile of slice 0's window
        for parity in (0, 1):
            k0 = (first + parity) % 2  # output slices whose window starts on this copy
            slices = slice(k0, o0, 2)
            n_img = len(range(k0, o0, 2))
            if n_img == 0:
                continue
            # tile row of the first window in copy parity
            start = (first + k0 - parity) // 2
            store = self._pair_rows[parity]
            image = store.as_strided(
                (n_img, 2, rows, 2 * tw),
                (plane, store.stride(0), 2 * tw, 1),
                store.storage_offset() + start * plane,
            )
            grid = planar[:2, slices].permute(1, 2, 0).unsqueeze(1)  # (n, 1, pts, 2)
            s = F.grid_sample(
                image, grid, mode="bilinear", padding_mode="zeros", align_corners=True
            )  # (n, 2, 1, pts)
            target[slices].copy_(
                torch.lerp(s[:, 0, 0], s[:, 1, 0], frac[slices]).view(n_img, o1, o2)
            )

    def _warp_mosaic(self, u_coarse, targets, up, box) -> None:
        """Fields with long displacements: all slice pairs in one float64 mosaic.

        Voxels too far from the brain for any of the displacements to reach it are
        exactly 0 and are not sampled.
        """
        torch = _torch()
        import torch.nn.functional as F

        o0, o1, o2 = up[0].shape[0], up[1].shape[0], up[2].shape[1]
        n_box = o0 * o1 * o2
        out_mm = self._out_mm.view(self.out_shape)[box].reshape(-1)
        reach = float(
            (u_coarse * self.half_t.view(1, 3, 1, 1, 1)).pow(2).sum(1).sqrt().max()
        )
        keep = torch.nonzero(out_mm <= reach + self._corner_mm).view(-1)
        n = keep.shape[0]
        if n == n_box:
            keep = None
        else:
            keep3 = torch.cat([keep, keep + n_box, keep + 2 * n_box])
        lo, hi = self._clamp
        rows, cols, th, tw = self._layout
        step_x, step_y = 2.0 * tw / (cols * tw - 1), 2.0 * th / (rows * th - 1)
        n_slices = float(self.fine[0])
        fields = torch.addcmul(self._ident_c, u_coarse.to(self._wdt), self._cscale)
        fields.mul_(self._fscale).add_(self._fshift)
        values = torch.zeros(n_box, dtype=targets[0].dtype, device=self.device)
        for i, target in enumerate(targets):
            a = self._upsample(fields[i], up)
            if keep is not None:
                a = a.view(-1).index_select(0, keep3).view(3, n)
            x, y, z = a
            x.clamp_(lo[0], hi[0])
            y.clamp_(lo[1], hi[1])
            z.clamp_(lo[2], hi[2])
            z0 = z.floor().clamp_(max=n_slices)
            frac = z.sub_(z0)
            tile_row = z0.add(0.5).mul_(1.0 / cols).floor_()
            tile_col = z0.add_(tile_row, alpha=-cols)
            x.add_(tile_col, alpha=step_x)
            y.add_(tile_row, alpha=step_y)
            # (1, 1, n, 2), n contiguous: the kernel's fast case
            grid = a[:2].t()[None, None]
            s = F.grid_sample(
                self._tmpl_mosaic,
                grid,
                mode="bilinear",
                padding_mode="zeros",
                align_corners=True,
            ).view(2, n)
            blend = torch.lerp(s[0], s[1], frac)
            if keep is None:
                values.copy_(blend)
            else:
                values.index_copy_(0, keep, blend.to(values.dtype))
            target.copy_(values.view(o0, o1, o2))

    def _sample(self, volume, u_coarse, points):
        """``volume(x + u(x))`` at ``points`` (P, D) for each displacement: (B, P)."""
        import torch.nn.functional as F

        b, dims = u_coarse.shape[0], self.cfg.dims
        n_pts = points.shape[0]
        shape = (b, n_pts) + (1,) * (dims - 1) + (dims,)
        where = points.view(1, n_pts, *([1] * (dims - 1)), dims).expand(*shape)
        disp = F.grid_sample(
            u_coarse, where, mode="bilinear", padding_mode="border", align_corners=True
        )  # (B, D, P, 1[, 1])
        grid = where + disp.movedim(1, -1)  # (B, P, 1[, 1], D)
        grid = grid.reshape(1, b, n_pts, *([1] * (dims - 2)), dims)
        values = F.grid_sample(
            volume, grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        return values.reshape(b, n_pts)


@dataclass(frozen=True)
class EffectCalibration:
    """Natural variation of the two regions and the effect sizes it implies.

    Attributes
    ----------
    disease_sd_ml, bias_sd_ml : float
        Standard deviation of the disease (bias) region's volume across subjects
        from subject variation alone (mL; in 2D, a slice one voxel thick).
    disease_ml_per_mm, bias_ml_per_mm : float
        Volume lost by the region per mm of peak displacement of its field.
    disease_mm, bias_mm : float
        Peak displacement (mm) per unit of ``c`` and ``b`` used for generation.
    bias_intensity_sd : float
        Standard deviation of the bias region's mean intensity across subjects.
    bias_intensity_change : float
        Change of the bias region's mean intensity made by the intensity bias
        (``intensity_factor``) on the same subjects.
    n_subjects : int
        Subjects drawn for the calibration.
    """

    disease_sd_ml: float
    bias_sd_ml: float
    disease_ml_per_mm: float
    bias_ml_per_mm: float
    disease_mm: float
    bias_mm: float
    bias_intensity_sd: float
    bias_intensity_change: float
    n_subjects: int

    @property
    def disease_effect_sd(self) -> float:
        """Volume change per unit of ``c``, in natural SDs of the disease region."""
        return self.disease_mm * self.disease_ml_per_mm / self.disease_sd_ml

    @property
    def bias_effect_sd(self) -> float:
        """Volume change per unit of ``b``, in natural SDs of the bias region."""
        return self.bias_mm * self.bias_ml_per_mm / self.bias_sd_ml

    @property
    def intensity_effect_sd(self) -> float:
        """The intensity bias's change of the region's mean intensity, in its SDs."""
        return self.bias_intensity_change / self.bias_intensity_sd

    def to_dict(self) -> dict[str, float]:
        """Plain numbers (the fields and the three derived effect sizes)."""
        out = dataclasses.asdict(self)
        out.update(
            disease_effect_sd=self.disease_effect_sd,
            bias_effect_sd=self.bias_effect_sd,
            intensity_effect_sd=self.intensity_effect_sd,
        )
        return {k: float(v) for k, v in out.items()}


_CALIBRATION_CACHE: dict[tuple, tuple[float, ...]] = {}
#: Solved effect sizes per calibration key and effect settings (slopes need renders).
_SCALE_CACHE: dict[tuple, tuple[float, float, float, float]] = {}
#: Fields that do not change the calibration (everything else does).
_NOT_CALIBRATION = (
    "n_subjects",
    "seed",
    "bias_prevalence",
    "disease_fraction",
    "split",
    "disease_mean",
    "disease_sd",
    "bias_mean",
    "bias_sd",
    "noise_sd",
    "disease_effect_sd",
    "bias_effect_sd",
    "disease_scale_mm",
    "bias_scale_mm",
    "bias_kind",
    "preset",
)


#: The last engines :func:`generate` built (they depend only on the calibration key and
#: the two effect sizes), so that generating again with other seeds or cohort sizes
#: does not recompute the template's tensors.
_ENGINE_CACHE: dict[tuple, _Engine] = {}
_ENGINE_CACHE_SIZE = 2


def _engine(
    cfg: SimulationConfig,
    device: Any,
    basis: ShapeBasis | None,
    disease_mm: float,
    bias_mm: float,
) -> _Engine:
    """An :class:`_Engine`, reused from :data:`_ENGINE_CACHE` when it has one."""
    if basis is not None:
        return _Engine(cfg, device, basis, disease_mm, bias_mm)
    settings = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_CALIBRATION}
    key = (
        json.dumps(settings, sort_keys=True, default=str),
        str(device),
        float(disease_mm),
        float(bias_mm),
        _FAST_3D,
        _FAST_3D_MIN_VOXELS,
    )
    engine = _ENGINE_CACHE.pop(key, None)
    if engine is None:
        engine = _Engine(cfg, device, basis, disease_mm, bias_mm)
    _ENGINE_CACHE[key] = engine  # the most recent last
    while len(_ENGINE_CACHE) > _ENGINE_CACHE_SIZE:
        _ENGINE_CACHE.pop(next(iter(_ENGINE_CACHE)))
    return engine


def effect_calibration(
    cfg: SimulationConfig,
    basis: ShapeBasis | None = None,
    device: Any = None,
    n_subjects: int = 200,
) -> EffectCalibration:
    """Measure natural regional variation and set both effects in its units.

    ``n_subjects`` subjects with subject variation only (no disease, no bias;
    fixed draws) give the standard deviation of each region's volume and of the
    bias region's mean intensity (cached per grid, regions and basis). The
    displacement per unit is then found on the template so that one unit of ``c``
    changes the disease region's volume by ``disease_effect_sd`` natural SDs
    (half the volume difference between ``c = -1`` and ``c = +1``) and one unit of
    ``b`` the bias region's by ``bias_effect_sd`` SDs (the change at ``b =
    bias_mean``, per unit), correcting for the non-linearity of large deformations
    in a few fixed-point steps. Explicit ``*_scale_mm`` values override.

    Parameters
    ----------
    cfg : SimulationConfig
        The configuration.
    basis : ShapeBasis, optional
        A user's subject-variation basis (default: the synthetic one).
    device : str or torch.device, optional
        Where to compute (default: automatic).
    n_subjects : int, default 200
        Subjects drawn for the natural variation (>= 20).

    Returns
    -------
    EffectCalibration
        The measured variation and the effect sizes in mm.
    """
    torch = _torch()

    if int(n_subjects) < 20:
        raise ValueError(
            f"n_subjects={n_subjects!r} is invalid; allowed: an integer >= 20"
        )
    device = choose_device(device if device is None else str(device))
    settings = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_CALIBRATION}
    key = (
        json.dumps(settings, sort_keys=True, default=str),
        str(device),
        int(n_subjects),
    )
    measured = _CALIBRATION_CACHE.get(key) if basis is None else None
    if measured is None:
        engine = _Engine(cfg, device, basis, 0.0, 0.0)
        rng = np.random.default_rng(20230916)
        z = rng.standard_normal((int(n_subjects), cfg.n_basis))
        vols: dict[str, list] = {"disease": [], "bias": []}
        means = []
        changes = []
        bias_mask = engine.out_masks["bias"]
        with torch.no_grad(), _serial(engine.fast):
            for idx in _iter_batches(len(z), default_batch_size(cfg)):
                v = engine.velocity(z[idx], np.zeros(len(idx)))
                # integrate_velocity here (not engine.integrate): the region volumes,
                # and so the effect sizes, come out bit for bit as they always have
                images, batch_vols = engine.render(
                    integrate_velocity(v, cfg.squaring_steps)
                )
                for name in vols:
                    vols[name].append(batch_vols[name])
                flat = images.reshape(len(idx), -1)
                stretched = contrast_stretch(
                    images, cfg.intensity_factor, engine.intensity_weight
                ).reshape(len(idx), -1)
                means.append(flat[:, bias_mask].double().mean(1).cpu().numpy())
                changes.append(
                    (stretched - flat)[:, bias_mask].double().mean(1).cpu().numpy()
                )
        d_sd = float(np.std(np.concatenate(vols["disease"]), ddof=1))
        b_sd = float(np.std(np.concatenate(vols["bias"]), ddof=1))
        i_sd = float(np.std(np.concatenate(means), ddof=1))
        i_change = float(np.mean(np.concatenate(changes)))
        measured = (d_sd, b_sd, i_sd, i_change)
        if basis is None:
            _CALIBRATION_CACHE[key] = measured
    d_sd, b_sd, i_sd, i_change = measured
    if min(d_sd, b_sd) <= 0:
        raise ValueError(
            "cannot calibrate the effects: a region has no volume on this grid or no "
            f"natural variation (SD {d_sd:.3g} / {b_sd:.3g} mL); give disease_scale_mm "
            "and bias_scale_mm"
        )
    scale_key = key + (
        cfg.disease_effect_sd,
        cfg.bias_effect_sd,
        cfg.bias_mean,
        cfg.disease_scale_mm,
        cfg.bias_scale_mm,
    )
    solved = _SCALE_CACHE.get(scale_key) if basis is None else None
    if solved is None:
        slopes = _unit_slopes(cfg, device, basis)
        disease_mm, d_slope = _solve_scale(
            lambda mm: slopes("disease", mm),
            cfg.disease_effect_sd * d_sd,
            cfg.disease_scale_mm,
        )
        bias_mm, b_slope = _solve_scale(
            lambda mm: slopes("bias", mm), cfg.bias_effect_sd * b_sd, cfg.bias_scale_mm
        )
        solved = (disease_mm, d_slope, bias_mm, b_slope)
        if basis is None:
            _SCALE_CACHE[scale_key] = solved
    disease_mm, d_slope, bias_mm, b_slope = solved
    return EffectCalibration(
        d_sd,
        b_sd,
        d_slope,
        b_slope,
        float(disease_mm),
        float(bias_mm),
        max(i_sd, 1e-12),
        i_change,
        int(n_subjects),
    )


def _unit_slopes(cfg: SimulationConfig, device: Any, basis: ShapeBasis | None):
    """A function (region, mm per unit) -> volume lost per unit of coefficient (mL)."""
    torch = _torch()
    engine = _Engine(cfg, device, basis, 1.0, 1.0)
    zero = np.zeros((2, cfg.n_basis))
    view = (-1,) + (1,) * (cfg.dims + 1)

    def slope(region: str, mm: float) -> float:
        if region == "disease":
            coef = np.array([1.0, -1.0])  # the two class means
            v = engine.velocity(zero, coef * mm)
            units = 2.0
        else:
            b = cfg.bias_mean if abs(cfg.bias_mean) > 1e-6 else 1.0
            coef = np.array([b, 0.0])  # the bias group's mean against no bias
            v = (
                engine.velocity(zero, np.zeros(2))
                + torch.as_tensor(coef * mm, dtype=torch.float32, device=device).view(
                    view
                )
                * engine.bias_field
            )
            units = abs(b)
        with torch.no_grad(), _serial(engine.fast):
            _, vols = engine.render(integrate_velocity(v, cfg.squaring_steps))
        return (
            float(vols[region][1] - vols[region][0])
            * np.sign(coef[0])
            / units
            / max(mm, 1e-9)
        )

    return slope


def _solve_scale(
    slope, target_ml: float, given_mm: float | None, steps: int = 4
) -> tuple[float, float]:
    """Peak displacement per unit giving ``target_ml`` per unit (fixed-point steps)."""
    mm = 1.0 if given_mm is None else float(given_mm)
    rate = slope(max(mm, 1e-3))
    if given_mm is not None:
        return float(given_mm), rate
    if target_ml <= 0:
        return 0.0, rate
    for _ in range(steps):
        if rate <= 0:
            raise ValueError(
                "cannot calibrate the effects: a regional field does not change "
                "its region's volume on this grid; give *_scale_mm"
            )
        mm = min(30.0, target_ml / rate)
        rate = slope(mm)
    return float(mm), rate


def effect_table(cohort: Cohort) -> pd.DataFrame:
    """The effects a cohort carries, measured on it, in natural standard deviations.

    Rows: the disease effect (mean disease-region volume of controls minus that of
    disease cases, on the twins), the morphological bias (mean loss of bias-region
    volume in the bias group, image against twin), the intensity bias (mean change
    of the bias region's mean intensity in the bias group) and the two leaks of the
    bias into the disease region (its volume and its mean intensity, mean absolute
    change in the bias group), the leaks also as a percentage of the disease effect
    on the same quantity. Natural SDs come from :func:`effect_calibration`.

    Parameters
    ----------
    cohort : Cohort
        A simulated cohort with twins and a configuration.

    Returns
    -------
    pandas.DataFrame
        Indexed by effect, columns ``region``, ``quantity``, ``effect`` (mL or
        intensity), ``natural_sd``, ``effect_sd`` and ``percent_of_disease_effect``.
    """
    cfg = cohort.config
    if cfg is None or cohort.twins is None:
        raise ValueError(
            "effect_table needs a simulated cohort with twins and a configuration"
        )
    cal = effect_calibration(cfg)
    meta = cohort.meta
    label = cohort.label == 1
    group = cohort.bias_group == 1
    grid = cfg.grid
    dmask = anatomy.region_mask(cfg.disease, grid).reshape(-1)
    bmask = anatomy.region_mask(cfg.bias, grid).reshape(-1)
    images = cohort.images.reshape(len(cohort), -1).double().numpy()
    twins = cohort.twins.reshape(len(cohort), -1).double().numpy()

    def mean_over(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return x[:, mask].mean(1) if mask.any() else np.full(len(x), np.nan)

    def diff(values: np.ndarray, rows: np.ndarray) -> float:
        return float(np.mean(values[rows])) if rows.any() else float("nan")

    d_twin = meta["disease_region_ml_twin"].to_numpy()
    disease_ml = diff(d_twin, ~label) - diff(d_twin, label)
    d_int_twin = mean_over(twins, dmask)
    disease_int = diff(d_int_twin, ~label) - diff(d_int_twin, label)
    bias_ml = diff(
        meta["bias_region_ml_twin"].to_numpy() - meta["bias_region_ml"].to_numpy(),
        group,
    )
    b_int = mean_over(images, bmask) - mean_over(twins, bmask)
    leak_ml = diff(np.abs(meta["disease_region_ml"].to_numpy() - d_twin), group)
    leak_int = diff(np.abs(mean_over(images, dmask) - d_int_twin), group)
    d_int_sd = (
        float(np.std(d_int_twin[~label], ddof=1)) if (~label).sum() > 1 else np.nan
    )
    rows = [
        (
            "disease",
            cfg.disease.name,
            "volume (mL)",
            disease_ml,
            cal.disease_sd_ml,
            np.nan,
        ),
        (
            "bias (morphological)",
            cfg.bias.name,
            "volume (mL)",
            bias_ml,
            cal.bias_sd_ml,
            np.nan,
        ),
        (
            "bias (intensity)",
            cfg.bias.name,
            "mean intensity",
            diff(b_int, group),
            cal.bias_intensity_sd,
            np.nan,
        ),
        (
            "bias leak: disease volume",
            cfg.disease.name,
            "volume (mL)",
            leak_ml,
            cal.disease_sd_ml,
            100.0 * leak_ml / abs(disease_ml) if disease_ml else np.nan,
        ),
        (
            "bias leak: disease intensity",
            cfg.disease.name,
            "mean intensity",
            leak_int,
            d_int_sd,
            100.0 * leak_int / abs(disease_int) if disease_int else np.nan,
        ),
    ]
    table = pd.DataFrame(
        rows,
        columns=[
            "effect",
            "region",
            "quantity",
            "effect_size",
            "natural_sd",
            "percent_of_disease_effect",
        ],
    )
    table["effect_sd"] = table["effect_size"] / table["natural_sd"]
    return table.set_index("effect")[
        [
            "region",
            "quantity",
            "effect_size",
            "natural_sd",
            "effect_sd",
            "percent_of_disease_effect",
        ]
    ]


def bias_energy(cfg: SimulationConfig, n_subjects: int = 48) -> float:
    """Mean squared image change the bias makes: ``mean ||image - twin||^2``.

    Measured on ``n_subjects`` subjects who all carry the bias (same draws as
    ``cfg`` otherwise, no noise), so that biases in different regions or of
    different kinds can be compared at equal signal.

    Parameters
    ----------
    cfg : SimulationConfig
        The configuration.
    n_subjects : int, default 48
        Subjects to average over (>= 8).

    Returns
    -------
    float
        Sum of squared voxel differences, averaged over subjects.
    """
    probe = cfg.replace(
        n_subjects=max(8, int(n_subjects)), bias_prevalence=(1.0, 1.0), noise_sd=0.0
    )
    cohort = generate(probe, progress=False)
    diff = (cohort.images - cohort.twins).double()
    return float(diff.pow(2).flatten(1).sum(1).mean())


def match_bias_energy(
    cfg: SimulationConfig,
    reference: SimulationConfig,
    n_subjects: int = 48,
    steps: int = 5,
    rtol: float = 0.03,
) -> SimulationConfig:
    """``cfg`` with a bias strength whose :func:`bias_energy` matches ``reference``'s.

    The strength is ``bias_effect_sd`` for a morphological bias and the contrast
    change ``intensity_factor - 1`` for an intensity bias; it is found by secant
    steps on the square root of the energy (nearly linear in the strength).

    Parameters
    ----------
    cfg : SimulationConfig
        The configuration to adjust (e.g. a far bias region).
    reference : SimulationConfig
        The configuration whose bias energy to match (e.g. the near region).
    n_subjects : int, default 48
        Subjects per energy estimate.
    steps : int, default 5
        Largest number of secant steps.
    rtol : float, default 0.03
        Relative tolerance on the energy.

    Returns
    -------
    SimulationConfig
        The adjusted configuration (its ``bias_energy`` within ``rtol`` of the
        reference's when reachable).
    """
    if cfg.bias_kind == "both":
        raise ValueError(
            "bias_kind='both' has two strengths; match each kind separately"
        )
    target = math.sqrt(bias_energy(reference, n_subjects))
    field_name = "bias_effect_sd" if cfg.morphological_bias else "intensity_factor"

    def strength(config: SimulationConfig) -> float:
        value = getattr(config, field_name)
        return value if field_name == "bias_effect_sd" else value - 1.0

    def with_strength(x: float) -> SimulationConfig:
        x = float(min(max(x, 1e-3), 19.0 if field_name == "bias_effect_sd" else 3.9))
        return cfg.replace(
            **{field_name: x if field_name == "bias_effect_sd" else 1.0 + x}
        )

    x0, y0 = 0.0, 0.0  # no bias, no energy
    x1 = strength(cfg)
    current = with_strength(x1)
    y1 = math.sqrt(bias_energy(current, n_subjects))
    for _ in range(steps):
        if abs(y1 * y1 - target * target) <= rtol * target * target or y1 == y0:
            break
        x2 = x1 + (target - y1) * (x1 - x0) / (y1 - y0)
        x0, y0 = x1, y1
        current = with_strength(x2)
        x1 = strength(current)
        y1 = math.sqrt(bias_energy(current, n_subjects))
    return current


def _iter_batches(n: int, size: int):
    for start in range(0, n, size):
        yield np.arange(start, min(n, start + size))


def default_batch_size(cfg: SimulationConfig) -> int:
    """Subjects per generation batch (fixed per grid: results never depend on it).

    Parameters
    ----------
    cfg : SimulationConfig
        The configuration.

    Returns
    -------
    int
        Batch size.
    """
    voxels = int(np.prod(cfg.shape))
    return int(max(4, min(512, 16_000_000 // voxels)))


def memory_estimate(cfg: SimulationConfig, twins: bool = True) -> int:
    """Bytes of memory :func:`generate` needs at least (images, twins, one batch).

    Parameters
    ----------
    cfg : SimulationConfig
        The configuration.
    twins : bool, default True
        Whether the counterfactual twins are generated too.

    Returns
    -------
    int
        The estimate in bytes.
    """
    voxels = float(np.prod(cfg.shape))
    stored = cfg.n_subjects * float(np.prod(cfg.grid.shape)) * 4 * (2 if twins else 1)
    # a batch of originals and twins: velocity and displacement fields (dims channels),
    # the warped images and their copies
    working = 2 * default_batch_size(cfg) * voxels * 4 * (2 * cfg.dims + 4)
    return int(stored + working)


def check_memory(cfg: SimulationConfig, twins: bool = True) -> None:
    """Refuse a configuration whose :func:`memory_estimate` exceeds the memory.

    Parameters
    ----------
    cfg : SimulationConfig
        The configuration.
    twins : bool, default True
        Whether the counterfactual twins are generated too.

    Raises
    ------
    ValueError
        With the estimate and the machine's memory.
    """

    _check(
        memory_estimate(cfg, twins),
        f"simulating n_subjects={cfg.n_subjects} on a "
        f"{'x'.join(map(str, cfg.shape))} grid",
        "lower n_subjects or the grid size (shape, spacing)",
    )


def _renders_in_place(device: Any) -> bool:
    """Whether images are rendered straight into the cohort's (CPU) tensors."""
    return _torch().device(device).type == "cpu"


def _noise(seed: int, subject: int, shape: tuple[int, ...]) -> np.ndarray:
    """The standard-normal noise of one subject (float32, its own random stream)."""
    return np.random.default_rng([int(seed), 37, int(subject)]).standard_normal(
        shape, dtype=np.float32
    )


def generate(
    cfg: SimulationConfig | None = None,
    progress: bool = True,
    device: Any = None,
    basis: ShapeBasis | None = None,
    twins: bool = True,
) -> Cohort:
    """Generate a cohort with counterfactual twins.

    Parameters
    ----------
    cfg : SimulationConfig, optional
        The configuration (default: the active preset's).
    progress : bool, default True
        Show a progress bar (``tqdm.auto``).
    device : str or torch.device, optional
        Where to compute (default: :func:`faimi_tutorial.choose_device`). Results
        are returned on the CPU. Identical bytes are guaranteed on the same device.
    basis : ShapeBasis, optional
        A subject-variation basis (default: :meth:`ShapeBasis.synthetic`); it must
        have ``cfg.n_basis`` fields and be sampled on ``cfg.grid``.
    twins : bool, default True
        Also generate the counterfactual twins (else ``cohort.twins`` is ``None``).

    Returns
    -------
    Cohort
        Images, twins, metadata and the configuration.
    """
    torch = _torch()
    from tqdm.auto import tqdm

    cfg = SimulationConfig.preset() if cfg is None else cfg
    device = choose_device(device if device is None else str(device))
    check_memory(cfg, twins)
    calibration = effect_calibration(cfg, basis=basis, device=device)
    meta = sample_design(cfg)
    n = len(meta)
    engine = _engine(cfg, device, basis, calibration.disease_mm, calibration.bias_mm)
    out_shape = tuple(cfg.grid.shape)
    images = torch.empty((n, 1, *out_shape), dtype=torch.float32)
    twin_images = (
        torch.empty((n, 1, *out_shape), dtype=torch.float32) if twins else None
    )
    z = meta[[f"z_{k:02d}" for k in range(cfg.n_basis)]].to_numpy()
    c = meta["disease_coef"].to_numpy()
    b = meta["bias_coef"].to_numpy()
    group = meta["bias_group"].to_numpy()
    vol_cols = {
        "max_velocity_mm": np.zeros(n),
        "disease_region_ml": np.zeros(n),
        "bias_region_ml": np.zeros(n),
        "disease_region_ml_twin": np.zeros(n),
        "bias_region_ml_twin": np.zeros(n),
    }
    bs = default_batch_size(cfg)
    batches = list(_iter_batches(n, bs))
    bar = tqdm(
        total=n, desc="simulating", unit="subject", disable=not progress, leave=False
    )
    start = time.perf_counter()
    dims_view = (-1,) + (1,) * (cfg.dims + 1)
    on_cpu = _renders_in_place(device)
    with torch.inference_mode(), _serial(engine.fast):
        for idx in batches:
            n_b = len(idx)
            rows = slice(int(idx[0]), int(idx[-1]) + 1)
            v_twin = engine.velocity(z[idx], c[idx])
            biased = np.flatnonzero(group[idx] == 1)
            need_orig = (
                cfg.morphological_bias and len(biased) > 0 and calibration.bias_mm > 0
            )
            if need_orig:
                bt = torch.as_tensor(b[idx][biased], dtype=torch.float32, device=device)
                v_orig = (
                    v_twin[torch.as_tensor(biased, device=device)]
                    + bt.view(dims_view) * engine.bias_field
                )
                v_all = torch.cat([v_twin, v_orig], 0)
            else:
                v_all = v_twin
            u = engine.integrate(v_all)
            speed = engine.speed_mm(v_all)
            speed_orig = speed[:n_b].copy()
            if need_orig:
                # The bias field is zero beyond its support, so in the continuous model
                # the two flows agree exactly wherever a trajectory (length <= max
                # speed) cannot reach that support. Scaling and squaring smears tiny
                # differences further through interpolation; restore exact equality
                # there.
                u = engine.localise(u, n_b, biased, speed[n_b:])
                speed_orig[biased] = speed[n_b:]
            vol_cols["max_velocity_mm"][idx] = speed_orig
            vols = engine.volumes(u)
            use_near = engine.use_near(u)
            # render straight into the cohort's tensors where they live on the device
            twin_batch = (
                twin_images[rows]
                if twin_images is not None and on_cpu
                else torch.empty(
                    (n_b, 1, *out_shape), dtype=torch.float32, device=device
                )
            )
            orig_batch = images[rows] if on_cpu else torch.empty_like(twin_batch)
            # a twin and its biased image take the same path (the longer reach of the
            # two), so that they stay equal, bit for bit, where their displacements are
            reach = engine.slice_reach(u)
            pair_reach = reach[:n_b].copy()
            if need_orig:
                pair_reach[biased] = np.maximum(pair_reach[biased], reach[n_b:])
            engine.render_into(u[:n_b], twin_batch, use_near, reach=pair_reach)
            orig_batch.copy_(twin_batch)
            vol_d_t, vol_b_t = vols["disease"][:n_b], vols["bias"][:n_b]
            vol_d, vol_b = vol_d_t.copy(), vol_b_t.copy()
            if need_orig:
                if engine.fast:
                    # only the voxels the bias can reach differ from the twin
                    box = engine.bias_box(speed[n_b:])
                    for j, k in enumerate(biased):
                        engine.render_into(
                            u[n_b + j : n_b + j + 1],
                            orig_batch[k : k + 1],
                            use_near,
                            box,
                            reach=pair_reach[k : k + 1],
                        )
                else:
                    rendered = torch.empty(
                        (len(biased), 1, *out_shape), dtype=torch.float32, device=device
                    )
                    engine.render_into(u[n_b:], rendered, use_near)
                    orig_batch[torch.as_tensor(biased, device=device)] = rendered
                vol_d[biased] = vols["disease"][n_b:]
                vol_b[biased] = vols["bias"][n_b:]
            if cfg.intensity_bias and len(biased):
                bi = torch.as_tensor(biased, device=device)
                orig_batch[bi] = contrast_stretch(
                    orig_batch[bi], cfg.intensity_factor, engine.intensity_weight
                )
            if engine.fast:  # one subject at a time: its images stay in cache
                for j, i in enumerate(idx):
                    if cfg.noise_sd > 0:
                        noise_t = torch.as_tensor(
                            _noise(cfg.seed, i, out_shape)
                        ) * float(cfg.noise_sd)
                        orig_batch[j, 0] += noise_t
                        twin_batch[j, 0] += noise_t
                    orig_batch[j].clamp_(0.0, 1.0)
                    twin_batch[j].clamp_(0.0, 1.0)
            else:  # the same arithmetic on the whole batch (small images, or a GPU)
                if cfg.noise_sd > 0:
                    noise = np.stack([_noise(cfg.seed, i, out_shape) for i in idx])[
                        :, None
                    ]
                    noise_t = torch.as_tensor(noise, device=device) * float(
                        cfg.noise_sd
                    )
                    orig_batch += noise_t
                    twin_batch += noise_t
                orig_batch.clamp_(0.0, 1.0)
                twin_batch.clamp_(0.0, 1.0)
            if not on_cpu:
                images[rows] = orig_batch.cpu()
                if twin_images is not None:
                    twin_images[rows] = twin_batch.cpu()
            vol_cols["disease_region_ml"][idx] = vol_d
            vol_cols["bias_region_ml"][idx] = vol_b
            vol_cols["disease_region_ml_twin"][idx] = vol_d_t
            vol_cols["bias_region_ml_twin"][idx] = vol_b_t
            bar.update(n_b)
    bar.close()
    for key, values in vol_cols.items():
        meta[key] = np.round(values, 6)
    meta.attrs["generation_seconds"] = time.perf_counter() - start
    meta.attrs["effect_calibration"] = calibration.to_dict()
    return Cohort(images=images, twins=twin_images, meta=meta, config=cfg)


def cohort_from_preset(
    preset: str | None = None,
    *,
    progress: bool = False,
    twins: bool = True,
    device: Any = None,
    **overrides: Any,
) -> Cohort:
    """Generate the cohort of a preset with some fields overridden, in one call.

    The same as ``generate(SimulationConfig.preset(preset, **overrides))``: the
    chapters' way to draw a cohort per seed or per setting.

    Parameters
    ----------
    preset : str, optional
        ``"tiny"``, ``"tutorial"`` or ``"paper"`` (default: the active preset).
    progress : bool, default False
        Show a progress bar.
    twins : bool, default True
        Also generate the counterfactual twins.
    device : str or torch.device, optional
        Where to compute (default: chosen automatically).
    **overrides
        Any field of :class:`SimulationConfig` (e.g. ``seed``, ``dims``).

    Returns
    -------
    Cohort
        Images, twins, metadata and the configuration.

    Raises
    ------
    ValueError
        For an unknown preset or field, or an invalid value.
    """
    cfg = SimulationConfig.preset(preset, **overrides)
    return generate(cfg, progress=progress, device=device, twins=twins)
