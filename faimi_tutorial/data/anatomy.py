"""The brain template, the grids we simulate on, and named regions of interest.

Everything here comes from the MNI152 (ICBM 2009a symmetric) T1 template and its
grey/white-matter probability maps, which ship *inside* this package (copies of
nilearn's), so nothing is downloaded. The 1 mm template is smoothed and resampled onto
the grid of a preset (a :class:`Grid`: shape, voxel spacing and origin in MNI
millimetres).

Regions of interest are spheres at MNI coordinates (optionally intersected with
grey matter). No volumetric atlas ships offline, and spheres are enough for a
simulator: the disease and bias effects are smooth fields centred on a region.
Add your own with :func:`add_region` or pass a :class:`Region` directly.

Axis convention: array index ``(i, j, k)`` runs along MNI ``(x, y, z)`` (RAS), as in
nilearn's images; a 2D grid is an axial slice ``(x, y)`` at a fixed ``z``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..validation import check_integers, check_numbers, check_range, config_error

__all__ = [
    "Grid",
    "Region",
    "REGIONS",
    "add_region",
    "get_region",
    "grid_for",
    "template_files",
    "load_template",
    "load_tissue",
    "brain_mask",
    "region_mask",
    "region_weight",
    "list_regions",
]

#: MNI coordinates (mm) of the centre of the brain's bounding box (rounded).
BRAIN_CENTRE_MM: tuple[float, float, float] = (0.0, -17.0, 5.0)

# The 1 mm files in faimi_tutorial/data/mni152 (copies of nilearn/datasets/data).
_TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


def template_files() -> dict[str, Path]:
    """Paths of the 1 mm MNI152 T1, grey-matter and white-matter images.

    The files ship inside this package (``faimi_tutorial/data/mni152``: byte-identical
    copies of the ones distributed with nilearn, with their copyright notice); using
    them never triggers a download. Where the package copy is missing, an installed
    nilearn's copy is used.

    Returns
    -------
    dict of str to pathlib.Path
        Keys ``"t1"``, ``"gm"``, ``"wm"``.

    Raises
    ------
    FileNotFoundError
        If neither this package nor an installed nilearn holds the files.
    """
    import importlib.util

    folders = [Path(__file__).resolve().parent / "mni152"]
    spec = importlib.util.find_spec("nilearn")
    if spec is not None and spec.origin is not None:
        folders.append(Path(spec.origin).parent / "datasets" / "data")
    for folder in folders:
        out = {key: folder / name for key, name in _TEMPLATE_FILES.items()}
        if all(path.is_file() for path in out.values()):
            return out
    raise FileNotFoundError(
        "the MNI152 template files are missing from faimi_tutorial/data/mni152 (and no "
        "installed nilearn ships them); reinstall faimi-tutorial"
    )


@dataclass(frozen=True)
class Grid:
    """A regular voxel grid in MNI space.

    Parameters
    ----------
    shape : tuple of int
        Two (an axial slice) or three sizes, each >= 8.
    spacing : float
        Voxel size in mm (isotropic), in ``(0.5, 20]``.
    origin : tuple of float
        MNI coordinates (mm) of the centre of voxel ``(0, 0[, 0])``; three numbers
        (for a 2D grid the third is the z of the slice).

    Examples
    --------
    >>> g = Grid((48, 56, 48), 4.0, (-94.0, -127.0, -89.0))
    >>> g.affine[0, 0]
    4.0
    """

    shape: tuple[int, ...]
    spacing: float
    origin: tuple[float, float, float]

    def __post_init__(self) -> None:
        shape = check_integers(self, "shape", self.shape, 8, whole_floats=True)
        if len(shape) not in (2, 3):
            raise config_error(self, "shape", self.shape, "2 or 3 integers >= 8")
        spacing = check_range(self, "spacing", self.spacing, 0.5, 20.0)
        origin = check_numbers(self, "origin", self.origin, 3)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)

    @property
    def dims(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return len(self.shape)

    @property
    def slice_z(self) -> float | None:
        """MNI z (mm) of a 2D grid's slice; ``None`` for a 3D grid."""
        return self.origin[2] if self.dims == 2 else None

    @property
    def affine(self) -> np.ndarray:
        """The 4x4 voxel-to-MNI affine (a 2D grid is a one-voxel-thick volume)."""
        a = np.eye(4)
        a[0, 0] = a[1, 1] = a[2, 2] = self.spacing
        a[:3, 3] = self.origin
        return a

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL (a 2D voxel counts as ``spacing`` mm thick)."""
        return self.spacing**3 / 1000.0

    def coordinates(self) -> np.ndarray:
        """MNI coordinates (mm) of every voxel centre.

        Returns
        -------
        numpy.ndarray
            Shape ``(*shape, 3)``, float64.
        """
        axes = [
            self.origin[d] + self.spacing * np.arange(n)
            for d, n in enumerate(self.shape)
        ]
        if self.dims == 2:
            x, y = np.meshgrid(axes[0], axes[1], indexing="ij")
            return np.stack([x, y, np.full_like(x, self.origin[2])], axis=-1)
        x, y, z = np.meshgrid(*axes, indexing="ij")
        return np.stack([x, y, z], axis=-1)

    def to_dict(self) -> dict:
        """A JSON-ready description (shape, spacing, origin)."""
        return {
            "shape": list(self.shape),
            "spacing": self.spacing,
            "origin": list(self.origin),
        }


def grid_for(
    shape: tuple[int, ...],
    spacing: float,
    slice_z: float | None = None,
    centre: tuple[float, float, float] = BRAIN_CENTRE_MM,
) -> Grid:
    """A grid of ``shape`` and ``spacing`` centred on the brain.

    The full 2 mm grid of the MNI152 template (``(99, 117, 95)`` at 2 mm) is
    returned with nilearn's own origin so that images line up voxel for voxel.

    Parameters
    ----------
    shape : tuple of int
        Two or three sizes.
    spacing : float
        Voxel size (mm).
    slice_z : float, optional
        For a 2D grid: MNI z (mm) of the axial slice (default: the brain centre's z).
    centre : tuple of float
        MNI point (mm) at the centre of the grid.

    Returns
    -------
    Grid
        The grid.
    """
    shape = tuple(int(s) for s in shape)
    if shape == (99, 117, 95) and float(spacing) == 2.0:
        return Grid(shape, 2.0, (-98.0, -134.0, -72.0))
    origin = [
        round(centre[d] - float(spacing) * (shape[d] - 1) / 2.0, 3)
        for d in range(len(shape))
    ]
    if len(shape) == 2:
        origin.append(float(centre[2] if slice_z is None else slice_z))
    return Grid(shape, float(spacing), tuple(origin))


@functools.lru_cache(maxsize=4)
def _load_1mm(kind: str) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    img = nib.load(str(template_files()[kind]))
    data = np.asarray(img.dataobj, dtype=np.float32) / 255.0
    return data, img.affine.copy()


@functools.lru_cache(maxsize=16)
def _resampled(kind: str, grid: Grid) -> np.ndarray:
    from scipy import ndimage

    data, affine = _load_1mm(kind)
    # Anti-aliasing: a Gaussian whose FWHM is about the target voxel size.
    sigma = max(0.0, 0.4 * (grid.spacing - 1.0) / abs(affine[0, 0]))
    if sigma > 0:
        data = ndimage.gaussian_filter(data, sigma, mode="constant")
    mm = grid.coordinates().reshape(-1, 3)
    vox = (mm - affine[:3, 3]) / np.diag(affine)[:3]
    out = ndimage.map_coordinates(data, vox.T, order=1, mode="constant", cval=0.0)
    out = np.clip(out.reshape(grid.shape), 0.0, 1.0).astype(np.float32)
    out.setflags(write=False)
    return out


def load_template(grid: Grid) -> np.ndarray:
    """The MNI152 T1 template resampled onto ``grid``, values in ``[0, 1]``.

    Parameters
    ----------
    grid : Grid
        Target grid (2D grids give the axial slice at ``grid.slice_z``).

    Returns
    -------
    numpy.ndarray
        float32 array of ``grid.shape`` (read-only; copy before editing).
    """
    return _resampled("t1", grid)


def load_tissue(kind: str, grid: Grid) -> np.ndarray:
    """A tissue probability map (``"gm"`` or ``"wm"``) resampled onto ``grid``.

    Parameters
    ----------
    kind : {"gm", "wm"}
        Grey or white matter.
    grid : Grid
        Target grid.

    Returns
    -------
    numpy.ndarray
        float32 probabilities in ``[0, 1]`` of ``grid.shape`` (read-only).

    Raises
    ------
    ValueError
        If ``kind`` is not ``"gm"`` or ``"wm"``.
    """
    if kind not in ("gm", "wm"):
        raise ValueError(f"kind={kind!r} must be 'gm' or 'wm'")
    return _resampled(kind, grid)


def brain_mask(grid: Grid, threshold: float = 0.05) -> np.ndarray:
    """Voxels of ``grid`` inside the (skull-stripped) template brain.

    Parameters
    ----------
    grid : Grid
        Target grid.
    threshold : float, default 0.05
        Template intensity above which a voxel counts as brain.

    Returns
    -------
    numpy.ndarray
        Boolean array of ``grid.shape``.
    """
    return load_template(grid) > threshold


@dataclass(frozen=True)
class Region:
    """A spherical region of interest at an MNI coordinate.

    Parameters
    ----------
    name : str
        Identifier (letters, digits, underscores).
    centre_mm : tuple of float
        MNI coordinates (x, y, z) in mm; x > 0 is the right hemisphere.
    radius_mm : float
        Radius in mm, in ``[2, 60]``.
    gm_only : bool, default False
        Intersect the sphere with grey matter (probability > 0.3) in
        :func:`region_mask`.
    description : str, optional
        Human-readable name.
    """

    name: str
    centre_mm: tuple[float, float, float]
    radius_mm: float
    gm_only: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.replace("_", "").isalnum():
            raise config_error(
                self, "name", self.name, "a non-empty identifier (letters, digits, _)"
            )
        centre = check_numbers(self, "centre_mm", self.centre_mm, 3, -150.0, 150.0)
        radius = check_range(self, "radius_mm", self.radius_mm, 2.0, 60.0)
        object.__setattr__(self, "centre_mm", centre)
        object.__setattr__(self, "radius_mm", radius)

    def to_dict(self) -> dict:
        """A JSON-ready description."""
        return {
            "name": self.name,
            "centre_mm": list(self.centre_mm),
            "radius_mm": self.radius_mm,
            "gm_only": self.gm_only,
            "description": self.description,
        }

    @classmethod
    def parse(cls, text: str) -> Region:
        """Parse ``"x,y,z,r"`` (mm) into a region named ``custom_x_y_z``.

        Parameters
        ----------
        text : str
            Four comma-separated numbers.

        Returns
        -------
        Region
            The region.

        Raises
        ------
        ValueError
            If the text is not four numbers.
        """
        parts = [p.strip() for p in str(text).split(",")]
        try:
            x, y, z, r = (float(p) for p in parts)
        except ValueError:
            raise ValueError(
                f"region={text!r} must be a region name or four numbers "
                "'x,y,z,radius' (mm)"
            ) from None
        name = "custom_" + "_".join(
            f"{v:g}".replace("-", "m").replace(".", "p") for v in (x, y, z)
        )
        return cls(
            name,
            (x, y, z),
            r,
            description=f"sphere of {r:g} mm at ({x:g}, {y:g}, {z:g})",
        )


#: Named regions: spheres at approximate MNI centres (mm). Right is x > 0.
REGIONS: dict[str, Region] = {
    r.name: r
    for r in [
        Region(
            "right_insula",
            (41.0, 2.0, 2.0),
            9.0,
            description="right insula (disease region)",
        ),
        Region("left_insula", (-41.0, 2.0, 2.0), 9.0, description="left insula"),
        Region(
            "right_putamen",
            (18.0, 4.0, 1.0),
            7.0,
            description="right putamen, medial part (near bias)",
        ),
        Region(
            "left_putamen",
            (-18.0, 4.0, 1.0),
            7.0,
            description="left putamen, medial part",
        ),
        Region(
            "right_occipital",
            (20.0, -90.0, 4.0),
            7.0,
            description="right occipital lobe (far bias)",
        ),
        Region(
            "left_occipital",
            (-20.0, -90.0, 4.0),
            7.0,
            description="left occipital lobe",
        ),
        Region("right_thalamus", (12.0, -18.0, 6.0), 7.0, description="right thalamus"),
        Region(
            "right_hippocampus",
            (28.0, -22.0, -14.0),
            7.0,
            description="right hippocampus",
        ),
        Region(
            "left_hippocampus",
            (-28.0, -22.0, -14.0),
            7.0,
            description="left hippocampus",
        ),
        Region("right_caudate", (14.0, 12.0, 10.0), 6.0, description="right caudate"),
        Region("precuneus", (0.0, -60.0, 40.0), 10.0, description="precuneus"),
        Region(
            "right_frontal",
            (30.0, 40.0, 20.0),
            10.0,
            description="right middle frontal gyrus",
        ),
    ]
}


def add_region(
    name: str,
    centre_mm: tuple[float, float, float],
    radius_mm: float,
    gm_only: bool = False,
    description: str = "",
) -> Region:
    """Register a new named region (a sphere at an MNI coordinate).

    Parameters
    ----------
    name : str
        Identifier; an existing name is replaced.
    centre_mm : tuple of float
        MNI coordinates (mm).
    radius_mm : float
        Radius (mm).
    gm_only : bool, default False
        Intersect with grey matter in masks.
    description : str, optional
        Human-readable name.

    Returns
    -------
    Region
        The registered region; it can now be named in a simulation configuration.
    """
    region = Region(
        name, centre_mm, radius_mm, gm_only, description or name.replace("_", " ")
    )
    REGIONS[name] = region
    return region


def get_region(region: str | Region | dict) -> Region:
    """Resolve a region given by name, by ``"x,y,z,r"``, as a dict or a :class:`Region`.

    Parameters
    ----------
    region : str, dict or Region
        The region.

    Returns
    -------
    Region
        The resolved region.

    Raises
    ------
    ValueError
        If a name is unknown (the message lists the known names).
    """
    if isinstance(region, Region):
        return region
    if isinstance(region, dict):
        missing = [k for k in ("name", "centre_mm", "radius_mm") if k not in region]
        if (
            missing
            or not isinstance(region.get("gm_only", False), bool)
            or not isinstance(region["centre_mm"], (list, tuple))
        ):
            raise ValueError(
                f"region={region!r} needs name, centre_mm (three numbers), radius_mm "
                "and optionally gm_only (true/false) and description"
                + (f"; missing: {', '.join(missing)}" if missing else "")
            )
        return Region(
            str(region["name"]),
            tuple(region["centre_mm"]),
            region["radius_mm"],
            region.get("gm_only", False),
            str(region.get("description", "")),
        )
    if isinstance(region, str) and region in REGIONS:
        return REGIONS[region]
    if isinstance(region, str) and region.count(",") == 3:
        return Region.parse(region)
    raise ValueError(
        f"region={region!r} is not a known region; known: {', '.join(sorted(REGIONS))} "
        "(or give 'x,y,z,radius' in mm)"
    )


def list_regions() -> list[Region]:
    """All named regions, sorted by name.

    Returns
    -------
    list of Region
        The registered regions.
    """
    return [REGIONS[k] for k in sorted(REGIONS)]


def _distance_mm(region: Region, grid: Grid) -> np.ndarray:
    coords = grid.coordinates()
    return np.sqrt(((coords - np.asarray(region.centre_mm)) ** 2).sum(-1))


def region_mask(
    region: str | Region, grid: Grid, within_brain: bool = True
) -> np.ndarray:
    """Voxels of ``grid`` inside a region.

    Parameters
    ----------
    region : str or Region
        The region.
    grid : Grid
        Target grid (for a 2D grid: the disc where the sphere cuts the slice).
    within_brain : bool, default True
        Keep only voxels inside the template brain.

    Returns
    -------
    numpy.ndarray
        Boolean array of ``grid.shape``.
    """
    region = get_region(region)
    mask = _distance_mm(region, grid) <= region.radius_mm
    if within_brain:
        mask &= brain_mask(grid)
    if region.gm_only:
        mask &= load_tissue("gm", grid) > 0.3
    return mask


def region_weight(
    region: str | Region, grid: Grid, taper_mm: float | None = None
) -> np.ndarray:
    """A smooth weight: 1 inside the region's sphere, falling to 0 over ``taper_mm``.

    Used to confine an intensity effect to a region without a visible edge.

    Parameters
    ----------
    region : str or Region
        The region.
    grid : Grid
        Target grid.
    taper_mm : float, optional
        Width of the cosine taper (default: half the region's radius, so that the
        weight reaches as far as a regional field of support 1.5).

    Returns
    -------
    numpy.ndarray
        float32 weights in ``[0, 1]`` of ``grid.shape``.
    """
    region = get_region(region)
    taper = 0.5 * region.radius_mm if taper_mm is None else float(taper_mm)
    d = _distance_mm(region, grid)
    t = np.clip((d - region.radius_mm) / max(taper, 1e-6), 0.0, 1.0)
    return (0.5 * (1.0 + np.cos(math.pi * t))).astype(np.float32)
