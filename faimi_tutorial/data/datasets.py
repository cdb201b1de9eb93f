"""Simulated cohorts on disk: a BIDS dataset of NIfTI images, and reading it back.

A written dataset passes the official BIDS validator without errors::

    DIR/
      dataset_description.json   name, BIDS version, authors, generator, configuration,
      seed
      README.md                  the datasheet (Gebru et al., 2021) with the injected
      biases
      participants.tsv           one row per subject: label, bias group, split,
      coefficients
      participants.json          what each column means
      sub-0001/anat/sub-0001_T1w.nii.gz                       the image a model sees
      ...
      derivatives/counterfactual/                a BIDS derivative dataset: the twins
        dataset_description.json
        sub-0001/anat/sub-0001_desc-counterfactual_T1w.nii.gz   same draws, bias removed
      .bidsignore                tells BIDS tools to skip SHA256SUMS
      SHA256SUMS                 every other file's SHA-256 (``sha256sum -c
      SHA256SUMS``)

Folders written by version 0.1 (twins beside the images, ``datasheet.md``) are still
read.

Writing is atomic: files go to a hidden ``.DIR.partial-*`` folder which replaces
``DIR`` only when complete (in one atomic exchange where the system allows it), so
an interrupted write never leaves something that looks like a finished dataset, and
a replaced dataset's name is never missing. A writer locks ``DIR`` from its checks
to the final rename (:class:`DatasetLock`), so two writers of one folder cannot both
succeed. Files are byte-identical for the same configuration and seed (gzip without
a time stamp).

Reading checks before it trusts: every file is compared with ``SHA256SUMS``, a NIfTI
header's declared size and shape are checked before its data is decoded, gzip
streams are read to their CRC trailer, and ``participants.tsv`` cannot point outside
the dataset folder.

:func:`read_dataset` reads such a folder back into a
:class:`~faimi_tutorial.data.simulate.Cohort`, and also reads a user's own folder of
NIfTI
images with a ``participants.tsv``. :class:`CohortDataset` and
:class:`NiftiDataset` wrap cohorts and folders as :class:`torch.utils.data.Dataset`.
"""

from __future__ import annotations

import gzip
import hashlib
import dataclasses
import io
import json
import os
import shutil
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__
from .. import presets
from ..runtime import choose_device
from ..validation import check_output_folder
from .simulate import check_memory as check_cohort_memory
from .simulate import (
    BIAS_KINDS,
    FIELD_HELP,
    GRID_FIELDS,
    INTENSITY_SCOPES,
    Cohort,
    ConfigError,
    SimulationConfig,
    effect_calibration,
    effect_table,
    generate,
)
from ..validation import check_memory, format_bytes, memory_bytes
from .simulate import stratified_split

__all__ = [
    "DatasetError",
    "register",
    "DatasetLock",
    "write_cohort",
    "recover_leftovers",
    "read_dataset",
    "datasheet",
    "image_path",
    "CohortDataset",
    "NiftiDataset",
    "TWIN_ENTITY",
    "TWIN_FOLDER",
    "DATASHEET",
]

#: File of a written dataset that lists every other file's SHA-256 (``sha256sum``
#format).
CHECKSUMS = "SHA256SUMS"
#: BIDS entity that marks a counterfactual twin image.
TWIN_ENTITY = "desc-counterfactual"
#: Folder (a BIDS derivative dataset) that holds the counterfactual twins.
TWIN_FOLDER = "derivatives/counterfactual"
#: The datasheet's file name: the dataset's BIDS README.
DATASHEET = "README.md"
BIDS_VERSION = "1.9.0"

_COLUMN_HELP = {
    "participant_id": "subject identifier (sub-XXXX)",
    "label": "disease label: 1 = disease, 0 = control (ground truth by construction)",
    "bias_group": "1 = subject carries the injected bias effect, 0 = does not",
    "split": "train, val or test (stratified on label x bias_group)",
    "disease_coef": "coefficient c of the disease field (positive = atrophy of the "
                    "disease region)",
    "bias_coef": "coefficient b of the bias field actually applied (0 outside the bias "
                 "group)",
    "bias_coef_drawn": "coefficient b drawn for every subject (applied only in the "
                       "bias group)",
    "disease_region_ml": "volume (mL) of the disease region in the image",
    "bias_region_ml": "volume (mL) of the bias region in the image",
    "disease_region_ml_twin": "volume (mL) of the disease region in the counterfactual "
                              "twin",
    "bias_region_ml_twin": "volume (mL) of the bias region in the counterfactual twin",
    "image": "path of the image, relative to the dataset folder",
    "twin": "path of the counterfactual twin (same draws, bias effect removed)",
}


class DatasetError(ValueError):
    """A dataset folder is missing, corrupt or inconsistent; the message names the
    file."""


# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------


def image_path(subject_id: str, twin: bool = False) -> str:
    """Relative path of a subject's image (or its counterfactual twin).

    Parameters
    ----------
    subject_id : str
        ``"sub-XXXX"``.
    twin : bool, default False
        The twin's path instead.

    Returns
    -------
    str
        E.g. ``"sub-0001/anat/sub-0001_T1w.nii.gz"``; a twin lies in the derivative
        dataset :data:`TWIN_FOLDER` (``"derivatives/counterfactual/sub-0001/anat/"``
        followed by ``"sub-0001_desc-counterfactual_T1w.nii.gz"``).
    """
    if twin:
        return f"{TWIN_FOLDER}/{subject_id}/anat/{subject_id}_{TWIN_ENTITY}_T1w.nii.gz"
    return f"{subject_id}/anat/{subject_id}_T1w.nii.gz"


def _nifti_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    """Deterministic gzipped NIfTI-1 bytes for a float32 array."""
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(array, dtype=np.float32), affine)
    img.header.set_xyzt_units("mm")
    img.header.set_sform(affine, code=4)  # MNI152 space
    img.header.set_qform(affine, code=4)
    img.header["descrip"] = b"faimi-tutorial simulated T1w"
    raw = img.to_bytes()
    buf = io.BytesIO()
    with gzip.GzipFile(
        fileobj=buf, mode="wb", compresslevel=1, mtime=0, filename=""
    ) as gz:
        gz.write(raw)
    return buf.getvalue()


def _as_volume(image: np.ndarray) -> np.ndarray:
    # (1, *grid) -> 3D volume; a 2D slice becomes a one-voxel-thick volume
    arr = np.asarray(image)[0]
    return arr[..., None] if arr.ndim == 2 else arr


def datasheet(cohort: Cohort, name: str = "faimi-tutorial simulated cohort") -> str:
    """A datasheet for a simulated cohort, with the headings of Gebru et al. (2021).

    It states what the data is, the subgroup x label table per split, and the
    biases that were injected on purpose.

    Parameters
    ----------
    cohort : Cohort
        A simulated cohort (with a configuration).
    name : str
        Dataset name used in the title.

    Returns
    -------
    str
        Markdown text.
    """
    cfg = cohort.config
    meta = cohort.meta
    n = len(cohort)
    calibration = effect_calibration(cfg) if cfg is not None else None
    split = pd.Series(
        pd.Categorical(meta["split"].astype(str), categories=["train", "val", "test"]),
        name="split",
    )
    table = pd.crosstab(
        [split, meta["label"].map({0: "control", 1: "disease"}).rename("label")],
        meta["bias_group"].map({0: "bias group 0", 1: "bias group 1"}),
        margins=True,
        margins_name="total",
        dropna=False,
    )
    lines = [f"# Datasheet: {name}", ""]
    lines += [
        "Synthetic brain MRI generated by `faimi_tutorial.data.simulate` "
        f"(faimi-tutorial {__version__}). No real person is depicted.",
        "",
        "## Motivation",
        "",
        "Created to teach and study bias in medical-imaging AI: because the disease "
        "and "
        "bias effects are put into the images on purpose, the truth about every image "
        "is "
        "known, including what it would look like without the bias (its counterfactual "
        "twin).",
        "",
        "## Composition",
        "",
    ]
    if cfg is not None:
        grid = cfg.grid
        lines += [
            f"- {n} subjects, one "
            f"{'2D axial slice' if cfg.dims == 2 else '3D T1-weighted volume'}"
            f" each, grid {' x '.join(map(str, cfg.grid.shape))} at {cfg.spacing:g} mm "
            "in MNI152 space"
            + (f" (slice at z = {grid.slice_z:g} mm)" if cfg.dims == 2 else "")
            + "."
            + (
                f" These are a subset of the {cfg.n_subjects} subjects generated with "
                "this "
                "configuration."
                if n != cfg.n_subjects
                else ""
            ),
        ]
    lines += [
        "- Every subject also has a counterfactual twin "
        f"(`{TWIN_FOLDER}/sub-*/anat/*_{TWIN_ENTITY}_T1w.nii.gz`, column `twin`): the "
        "same draws with the bias effect "
        "removed. Outside the bias group the twin equals the image.",
        "- Intensities are in [0, 1]. `participants.tsv` holds labels, bias groups, "
        "splits, "
        "every drawn coefficient and region volumes; `participants.json` describes the "
        "columns.",
        "",
        "Subjects per split, label and bias group:",
        "",
        _markdown_table(table),
        "",
    ]
    lines += ["## Deliberately injected biases", ""]
    if cfg is not None:
        prev_d, prev_c = cfg.bias_prevalence
        lines += [
            f"- **Disease effect**: a deformation of the *{cfg.disease.name}* region "
            f"({cfg.disease.description or 'sphere'}, radius {cfg.disease.radius_mm:g} "
            "mm at MNI "
            f"{tuple(cfg.disease.centre_mm)}), coefficient c ~ "
            f"N({cfg.disease_mean[0]:g}, "
            f"{cfg.disease_sd[0]:g}) for disease and N({cfg.disease_mean[1]:g}, "
            f"{cfg.disease_sd[1]:g}) for controls; one unit of c changes the region's "
            f"volume by {cfg.disease_effect_sd:g} natural SDs "
            f"({calibration.disease_mm:.2f} mm "
            "peak displacement; positive = atrophy).",
            f"- **Bias effect** ({cfg.bias_kind}): in the *{cfg.bias.name}* region "
            f"({cfg.bias.description or 'sphere'}, radius {cfg.bias.radius_mm:g} mm at "
            "MNI "
            f"{tuple(cfg.bias.centre_mm)})"
            + (
                f", b ~ N({cfg.bias_mean:g}, {cfg.bias_sd:g}); one unit of b changes "
                "the "
                f"region's volume by {cfg.bias_effect_sd:g} natural SDs "
                f"({calibration.bias_mm:.2f} mm peak displacement)"
                if cfg.morphological_bias
                else ""
            )
            + (
                f"; contrast stretched by {cfg.intensity_factor:g} about mid-grey "
                f"({cfg.intensity_scope})"
                if cfg.intensity_bias
                else ""
            )
            + ". Only the bias group carries it.",
            f"- **Prevalence**: the bias group makes up {prev_d:.0%} of disease cases "
            "and "
            f"{prev_c:.0%} of controls"
            + (
                " (no association with the label)."
                if abs(prev_d - prev_c) < 1e-9
                else ": the bias feature is correlated with the label, a shortcut a "
                     "model can learn."
            ),
            f"- **Subject variation**: {cfg.n_basis} smooth shape fields, RMS "
            f"{cfg.basis_scale_mm:g} mm; additive noise sd {cfg.noise_sd:g}. Natural "
            "spread "
            f"of the regions' volumes across subjects (SD): {cfg.disease.name} "
            f"{calibration.disease_sd_ml:.3f} mL, {cfg.bias.name} "
            f"{calibration.bias_sd_ml:.3f} mL"
            "; of the bias region's mean intensity: "
            f"{calibration.bias_intensity_sd:.4f}.",
            "",
            "Relative strength of the effects, measured on these subjects (effect in "
            "natural "
            "SDs of the same quantity across subjects; leaks as a percentage of the "
            "disease "
            "effect on the same quantity):",
            "",
            _markdown_table(_effect_rows(cohort)),
        ]
    else:
        lines += ["- Unknown: no generating configuration was recorded."]
    lines += [
        "",
        "## Collection process",
        "",
        "Generated, not collected: a SimBA-style generator (Stanley et al., MICCAI "
        "2023; "
        "JAMIA 2024) deforms the MNI152 template (shipped with nilearn) with a subject "
        "shape "
        "field plus regional disease and bias fields, integrated by scaling and "
        "squaring. "
        + (
            f"Seed {cfg.seed}; the full configuration is in "
            "`dataset_description.json`; "
            "regenerating with it gives byte-identical files."
            if cfg is not None
            else ""
        ),
        "",
        "## Preprocessing/cleaning/labeling",
        "",
        "None needed: images are in MNI space and the labels are true by construction. "
        "Splits are stratified on label x bias group, and every coefficient (disease, "
        "bias, "
        "shape) is drawn by stratified sampling within each label x bias group x split "
        "cell, "
        "so the cells share one distribution of effect sizes.",
        "",
        "## Uses",
        "",
        "Teaching and methods research on shortcut learning, subgroup performance "
        "gaps, "
        "counterfactual fairness, bias mitigation and bias encoding. Not for clinical "
        "use and "
        "not evidence about any real disease: effect sizes are chosen, not measured.",
        "",
        "## Distribution",
        "",
        "Regenerate it with `faimi simulate` (see `dataset_description.json`); the "
        "MNI152 "
        "template is distributed with nilearn under its own licence.",
        "",
        "## Maintenance",
        "",
        "Maintained with the faimi-tutorial book; a new package version may change the "
        "images for the same configuration (the version is recorded in "
        "`dataset_description.json`).",
        "",
    ]
    return "\n".join(lines)


def _effect_rows(cohort: Cohort) -> pd.DataFrame:
    """The effect table of a cohort, rounded for the datasheet (empty without twins)."""
    if cohort.twins is None:
        return pd.DataFrame({"note": ["no twins: effects not measured"]})
    table = effect_table(cohort)
    out = pd.DataFrame(
        {
            "region": table["region"],
            "quantity": table["quantity"],
            "effect": table["effect_size"].map(lambda v: f"{v:.4g}"),
            "natural SD": table["natural_sd"].map(lambda v: f"{v:.4g}"),
            "effect (SDs)": table["effect_sd"].map(lambda v: f"{v:.2f}"),
            "% of disease effect": table["percent_of_disease_effect"].map(
                lambda v: "" if not np.isfinite(v) else f"{v:.2f}"
            ),
        }
    )
    out.index.name = "effect"
    return out


def _markdown_table(table: pd.DataFrame) -> str:
    idx_names = [str(n or "") for n in table.index.names]
    header = idx_names + [str(c) for c in table.columns]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, row in table.iterrows():
        key = key if isinstance(key, tuple) else (key,)
        rows.append(
            "| " + " | ".join([str(k) for k in key] + [str(v) for v in row]) + " |"
        )
    return "\n".join(rows)


def _description(cohort: Cohort, name: str) -> dict[str, Any]:
    cfg = cohort.config
    out: dict[str, Any] = {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "License": "CC0 (synthetic data); MNI152 template: see nilearn",
        "Authors": ["faimi-tutorial contributors"],
        "GeneratedBy": [
            {
                "Name": "faimi-tutorial",
                "Version": __version__,
                "Description": "faimi_tutorial.data.simulate (SimBA-style generator)",
            }
        ],
        "ReferencesAndLinks": [
            "doi:10.1007/978-3-031-43895-0_46",
            "doi:10.1093/jamia/ocae165",
        ],
        "faimi": {
            "package_version": __version__,
            "n_subjects": len(cohort),
            "subset": cfg is not None and len(cohort) != cfg.n_subjects,
            "twins": f"{TWIN_FOLDER}/sub-*/anat/*_{TWIN_ENTITY}_T1w.nii.gz: same "
                     "draws, "
            "bias effect removed",
        },
    }
    if cfg is not None:
        out["faimi"]["seed"] = cfg.seed
        out["faimi"]["grid"] = cfg.grid.to_dict()
        out["faimi"]["config"] = cfg.to_dict()
    return out


def _twin_description(name: str) -> dict[str, Any]:
    """``dataset_description.json`` of the derivative dataset that holds the twins."""
    return {
        "Name": f"{name}: counterfactual twins",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "faimi-tutorial",
                "Version": __version__,
                "Description": "the same draws as the raw images, bias effect "
                "removed (faimi_tutorial.data.simulate)",
            }
        ],
        "SourceDatasets": [{"URL": "../../"}],
    }


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


class DatasetLock:
    """An exclusive lock on a dataset folder name, held while a writer works on it.

    The lock is a hidden file ``.NAME.lock`` beside the folder, locked with
    ``fcntl.flock`` where available (released by the system if the process dies)
    and created exclusively elsewhere. A second writer of the same folder gets a
    :class:`FileExistsError` at once instead of racing the first.

    Parameters
    ----------
    out : path
        The dataset folder.
    """

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.out = Path(out)
        self.path = _lock_path(self.out)
        self._fd: int | None = None

    def acquire(self) -> DatasetLock:
        """Take the lock (or raise :class:`FileExistsError` naming the holder)."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: exclusive creation
            fcntl = None
        while True:
            if fcntl is None:  # pragma: no cover
                try:
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
                except FileExistsError:
                    raise self._busy() from None
            else:
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    raise self._busy() from None
                # the holder before us may have removed the file after we opened it:
                # then our lock is on a stale file; start again on the current one
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
            return self

    def _busy(self) -> FileExistsError:
        try:
            holder = self.path.read_text().strip()
        except OSError:
            holder = ""
        who = f" (process {holder})" if holder.isdigit() else ""
        return FileExistsError(
            f"{self.out}: another process{who} is writing this dataset now (lock "
            f"{self.path.name}); wait for it to finish, or choose another folder"
        )

    def release(self) -> None:
        """Release the lock and remove its file."""
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> DatasetLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def recover_leftovers(out_dir: str | os.PathLike[str]) -> list[str]:
    """Clean what an interrupted writer of ``out_dir`` left behind (call under its
    lock).

    ``.NAME.partial-*`` folders (unfinished writes) are removed. ``.NAME.old-*``
    folders (a replaced dataset) are moved back to ``NAME`` when ``NAME`` is
    missing (a writer stopped between its two renames), else removed.

    Parameters
    ----------
    out_dir : path
        The dataset folder.

    Returns
    -------
    list of str
        One line per action taken.
    """
    out = Path(out_dir)
    actions: list[str] = []
    if not out.parent.is_dir():
        return actions
    olds = sorted(
        out.parent.glob(f".{out.name}.old-*"), key=lambda p: p.stat().st_mtime
    )
    if olds and not out.exists():
        olds[-1].rename(out)
        actions.append(
            f"restored {out} from {olds[-1].name} (an earlier write was interrupted)"
        )
        olds = olds[:-1]
    for p in olds + sorted(out.parent.glob(f".{out.name}.partial-*")):
        shutil.rmtree(p, ignore_errors=True)
        actions.append(f"removed {p.name} left by an interrupted write")
    return actions


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False if
    unsupported."""

    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} exists and is not empty; pass overwrite=True to replace it"
        )


def write_cohort(
    cohort: Cohort,
    out_dir: str | os.PathLike[str],
    overwrite: bool = False,
    name: str | None = None,
    progress: bool = False,
) -> Path:
    """Write a cohort as a BIDS-like folder, atomically.

    The folder is locked while it is written (:class:`DatasetLock`): a second writer
    of the same folder fails at once. The new dataset replaces an old one in one
    atomic exchange where the system allows it; leftovers of an interrupted earlier
    write are cleaned first (:func:`recover_leftovers`). Every file's SHA-256 is
    recorded in ``SHA256SUMS`` (``sha256sum -c SHA256SUMS`` checks it; so does
    :func:`read_dataset`).

    Parameters
    ----------
    cohort : Cohort
        The cohort (its twins are written beside the images when present).
    out_dir : path
        Target folder. It must not exist or be empty unless ``overwrite``.
    overwrite : bool, default False
        Replace an existing non-empty folder (only once the new one is complete).
    name : str, optional
        Dataset name (default: derived from the configuration).
    progress : bool, default False
        Show a progress bar.

    Returns
    -------
    pathlib.Path
        The dataset folder.

    Raises
    ------
    FileExistsError
        If ``out_dir`` exists, is not empty and ``overwrite`` is false (or is a file),
        or another process is writing it.
    """
    out = Path(out_dir)
    _check_target(out, overwrite)
    with DatasetLock(out):
        return _write_locked(cohort, out, overwrite, name, progress)


def _write_locked(
    cohort: Cohort, out: Path, overwrite: bool, name: str | None, progress: bool
) -> Path:
    """:func:`write_cohort` for a caller that holds the folder's
    :class:`DatasetLock`."""
    from tqdm.auto import tqdm

    recover_leftovers(out)
    _check_target(out, overwrite)
    cfg = cohort.config
    if name is None:
        name = (
            "faimi-tutorial simulated cohort"
            if cfg is None
            else (f"faimi-tutorial {cfg.preset} {cfg.dims}D cohort (seed {cfg.seed})")
        )
    affine = cfg.grid.affine if cfg is not None else np.eye(4)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    sums: dict[str, str] = {}

    def put(rel: str, data: bytes) -> None:
        (tmp / rel).write_bytes(data)
        sums[rel] = hashlib.sha256(data).hexdigest()

    try:
        meta = cohort.meta.copy()
        ids = meta["subject_id"].astype(str).tolist()
        for sid in ids:
            _check_subject_id(sid, "subject_id")
        images = (
            cohort.images.detach().cpu().numpy()
            if hasattr(cohort.images, "detach")
            else np.asarray(cohort.images)
        )
        twins = None
        if cohort.twins is not None:
            twins = (
                cohort.twins.detach().cpu().numpy()
                if hasattr(cohort.twins, "detach")
                else np.asarray(cohort.twins)
            )
        for i in tqdm(
            range(len(ids)),
            desc="writing",
            unit="subject",
            disable=not progress,
            leave=False,
        ):
            anat = tmp / ids[i] / "anat"
            anat.mkdir(parents=True)
            put(image_path(ids[i]), _nifti_bytes(_as_volume(images[i]), affine))
            if twins is not None:
                rel = image_path(ids[i], twin=True)
                (tmp / rel).parent.mkdir(parents=True)
                put(rel, _nifti_bytes(_as_volume(twins[i]), affine))
        table = meta.rename(columns={"subject_id": "participant_id"})
        table["split"] = table["split"].astype(str)
        table["image"] = [image_path(s) for s in ids]
        if twins is not None:
            table["twin"] = [image_path(s, twin=True) for s in ids]
        put(
            "participants.tsv",
            table.to_csv(sep="\t", index=False, lineterminator="\n").encode(),
        )
        sidecar = {
            c: {"Description": _COLUMN_HELP.get(c, _column_help(c))}
            for c in table.columns
        }
        sidecar["label"]["Levels"] = {"0": "control", "1": "disease"}
        sidecar["bias_group"]["Levels"] = {
            "0": "no bias effect",
            "1": "bias effect applied",
        }
        put("participants.json", (json.dumps(sidecar, indent=2) + "\n").encode())
        put(DATASHEET, datasheet(cohort, name).encode())
        put(".bidsignore", f"{CHECKSUMS}\n".encode())
        if twins is not None:
            put(
                f"{TWIN_FOLDER}/dataset_description.json",
                (json.dumps(_twin_description(name), indent=2) + "\n").encode(),
            )
            put(
                f"{TWIN_FOLDER}/README.md",
                (
                    f"# Counterfactual twins of {name}\n\nEach image is a subject of "
                    "the parent "
                    "dataset (two folders up) generated from the same draws without "
                    "the bias "
                    f"effect; see the parent's {DATASHEET} (the datasheet).\n"
                ).encode(),
            )
            # one sidecar for every twin (BIDS inheritance): what a derivative must
            # state
            put(
                f"{TWIN_FOLDER}/{TWIN_ENTITY}_T1w.json",
                (
                    json.dumps(
                        {
                            "Description": "counterfactual twin: the subject's image "
                                           "without the bias "
                            "effect (same template, shape, disease draws)",
                            "SkullStripped": True,
                        },
                        indent=2,
                    )
                    + "\n"
                ).encode(),
            )
        description = _description(cohort, name)
        description["faimi"]["checksums"] = CHECKSUMS
        try:
            text = json.dumps(description, indent=2, allow_nan=False) + "\n"
        except ValueError:
            raise ValueError(
                "the cohort's configuration holds NaN or infinite values; "
                "nothing was written"
            ) from None
        put("dataset_description.json", text.encode())
        # written last: every other file's SHA-256, in `sha256sum` format
        (tmp / CHECKSUMS).write_text(
            "".join(f"{h}  {rel}\n" for rel, h in sorted(sums.items()))
        )
        if out.exists():
            if not _exchange(tmp, out):
                # no atomic exchange here: two renames; a stop between them is repaired
                # by
                # the next writer (recover_leftovers) from the .old folder
                old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
                out.rename(old)
                try:
                    tmp.rename(out)
                except BaseException:
                    old.rename(out)
                    raise
                tmp = old
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _column_help(column: str) -> str:
    if column.startswith("z_"):
        return (
            f"coefficient z_{column[2:]} of subject shape basis field {int(column[2:])}"
        )
    return column.replace("_", " ")


# --------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------


def _check_subject_id(sid: str, column: str = "participant_id") -> str:
    """A subject identifier that is one plain folder name (never a path out of the
    dataset)."""
    bad = (
        not sid
        or sid in (".", "..")
        or "/" in sid
        or "\\" in sid
        or "\x00" in sid
        or sid != sid.strip()
        or Path(sid).is_absolute()
        or ":" in sid
    )
    if bad:
        raise DatasetError(
            f"{column} {sid!r} is not a subject identifier; allowed: one folder "
            "name such as sub-0001 (no '/', '\\', ':' or '..')"
        )
    return sid


def _inside(root: Path, rel: str, what: str, tsv: Path) -> Path:
    """``root / rel`` when it stays inside ``root`` (no absolute paths, no ``..``)."""
    if (
        not rel
        or "\x00" in rel
        or Path(rel).is_absolute()
        or rel.startswith(("/", "\\"))
    ):
        raise DatasetError(
            f"{tsv}: {what} {rel!r} is not a path inside the dataset folder"
        )
    target = root / rel
    try:
        target.resolve().relative_to(root.resolve())
    except ValueError:
        raise DatasetError(
            f"{tsv}: {what} {rel!r} points outside the dataset folder"
        ) from None
    return target


#: Largest ratio of uncompressed to compressed size that deflate can reach (~1032:1).
_MAX_GZIP_RATIO = 1100


def _header_class(first: bytes, path: Path):
    import nibabel as nib

    if len(first) < 348:
        raise DatasetError(
            f"{path}: cannot read NIfTI image (file too short for a header)"
        )
    for order in ("little", "big"):
        size = int.from_bytes(first[:4], order)
        if size == 348:
            return nib.Nifti1Header
        if size == 540:
            return nib.Nifti2Header
    raise DatasetError(
        f"{path}: cannot read NIfTI image (not a NIfTI-1 or NIfTI-2 header)"
    )


def _load_nifti(
    path: Path, expected_shape: tuple[int, ...] | None = None, sha256: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read one NIfTI file safely.

    The header is parsed first: its declared shape must match ``expected_shape`` and
    its declared size must fit in memory and be reachable from the file's size,
    before any image data is decoded. A gzip stream is decompressed completely, so
    its CRC and length trailer are checked. ``sha256``, when given, must match.
    """
    import zlib

    import nibabel as nib

    if not path.is_file():
        raise DatasetError(f"{path}: file not found (listed in participants.tsv)")
    raw = path.read_bytes()
    gz = raw[:2] == b"\x1f\x8b"
    try:
        if gz:
            head = zlib.decompressobj(wbits=31).decompress(raw, 544)
        else:
            head = raw[:544]
        header = _header_class(head, path).from_fileobj(io.BytesIO(head))
        shape = tuple(int(d) for d in header.get_data_shape())
        itemsize = int(header.get_data_dtype().itemsize)
        offset = int(header.get_data_offset())
    except DatasetError:
        raise
    except Exception as err:  # nibabel and zlib raise many kinds for corrupt files
        raise DatasetError(
            f"{path}: cannot read NIfTI image ({type(err).__name__}: {err})"
        ) from None
    if expected_shape is not None and shape != tuple(expected_shape):
        raise DatasetError(
            f"{path}: image shape {shape} differs from the dataset's "
            f"{tuple(expected_shape)} (read from its header; nothing decoded)"
        )
    declared = offset + int(np.prod(shape, dtype=np.float64)) * itemsize
    total = memory_bytes()
    if total and declared > total // 2:
        raise DatasetError(
            f"{path}: header declares {shape} ({format_bytes(declared)}), more "
            f"than half this machine's memory ({format_bytes(total)})"
        )
    reachable = len(raw) * _MAX_GZIP_RATIO + 65536 if gz else len(raw)
    if declared > reachable:
        raise DatasetError(
            f"{path}: header declares {shape} ({format_bytes(declared)}) but the "
            f"file ({format_bytes(len(raw))}) cannot hold that much; it is "
            "truncated or corrupt"
        )
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        raise DatasetError(
            f"{path}: SHA-256 differs from the one in {CHECKSUMS} (the file is "
            "corrupt or was changed after the dataset was written)"
        )
    if gz:
        d = zlib.decompressobj(wbits=31)
        try:
            body = d.decompress(raw, declared)
        except zlib.error as err:
            raise DatasetError(f"{path}: corrupt gzip data ({err})") from None
        if d.unconsumed_tail:
            raise DatasetError(
                f"{path}: holds more data than its header declares "
                f"({format_bytes(declared)})"
            )
        if not d.eof:
            raise DatasetError(
                f"{path}: gzip stream is truncated (no complete trailer; the "
                "file was cut short)"
            )
        if d.unused_data.strip(b"\x00"):
            raise DatasetError(f"{path}: unexpected bytes after the gzip stream")
    else:
        body = raw
    if len(body) < declared:
        raise DatasetError(
            f"{path}: image data is truncated ({format_bytes(len(body))} of "
            f"{format_bytes(declared)} declared)"
        )
    try:
        img = (
            nib.Nifti2Image.from_bytes(body)
            if header.sizeof_hdr == 540
            else nib.Nifti1Image.from_bytes(body)
        )
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as err:  # nibabel raises many kinds for corrupt files
        raise DatasetError(
            f"{path}: cannot read NIfTI image ({type(err).__name__}: {err})"
        ) from None
    if not np.all(np.isfinite(data)):
        raise DatasetError(f"{path}: image holds NaN or infinite values")
    return data, img.affine


def _read_checksums(root: Path, required: bool) -> dict[str, str] | None:
    """The ``SHA256SUMS`` of a dataset folder as ``{relative path: hex digest}``."""
    sums = root / CHECKSUMS
    if not sums.is_file():
        if required:
            raise DatasetError(
                f"{sums}: file not found; dataset_description.json says the "
                "dataset carries checksums"
            )
        return None
    out: dict[str, str] = {}
    try:
        lines = sums.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{sums}: cannot read ({err})") from None
    for n, line in enumerate(lines, 1):
        digest, sep, rel = line.partition("  ")
        if (
            not sep
            or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest)
        ):
            raise DatasetError(f"{sums}: line {n} is not '<sha256>  <path>'")
        out[rel.lstrip("*")] = digest
    return out


def _verify(root: Path, rel: str, sums: dict[str, str] | None) -> None:
    if sums is None:
        return
    if rel not in sums:
        raise DatasetError(f"{root / rel}: not listed in {CHECKSUMS}")
    path = root / rel
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise DatasetError(f"{path}: cannot read ({err})") from None
    if digest != sums[rel]:
        raise DatasetError(
            f"{path}: SHA-256 differs from the one in {CHECKSUMS} (the file is "
            "corrupt or was changed after the dataset was written)"
        )


def _find_image(root: Path, sid: str, twin: bool) -> Path | None:
    entity = f"_{TWIN_ENTITY}" if twin else ""
    # twins: the derivative dataset first, then beside the image (version 0.1 layout)
    folders = (
        [root / TWIN_FOLDER / sid / "anat", root / sid / "anat"]
        if twin
        else [root / sid / "anat"]
    )
    for anat in folders:
        for ext in (".nii.gz", ".nii"):
            p = anat / f"{sid}{entity}_T1w{ext}"
            if p.is_file() and p.resolve().is_relative_to(root.resolve()):
                return p
    if not twin:
        # a subject's own folder, two levels at most (sub-X/*.nii*, sub-X/anat/*.nii*);
        # nothing that resolves outside the dataset folder
        base = root.resolve()
        hits = sorted(
            p
            for pattern in ("*.nii", "*.nii.gz", "*/*.nii", "*/*.nii.gz")
            for p in (root / sid).glob(pattern)
            if TWIN_ENTITY not in p.name
            and p.is_file()
            and p.resolve().is_relative_to(base)
        )
        return hits[0] if hits else None
    return None


def _read_table(root: Path) -> pd.DataFrame:
    tsv = root / "participants.tsv"
    if not tsv.is_file():
        raise DatasetError(
            f"{tsv}: file not found; a dataset folder needs a participants.tsv"
        )
    try:
        table = pd.read_csv(tsv, sep="\t", dtype={"participant_id": str})
    except Exception as err:
        raise DatasetError(
            f"{tsv}: cannot parse ({type(err).__name__}: {err})"
        ) from None
    if "participant_id" not in table.columns:
        raise DatasetError(
            f"{tsv}: no participant_id column (columns: {', '.join(table.columns)})"
        )
    if len(table) == 0:
        raise DatasetError(f"{tsv}: no subjects (the table has a header but no rows)")
    ids = table["participant_id"]
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise DatasetError(f"{tsv}: participant_id is empty in row {row + 1}")
    for sid in ids.astype(str):
        try:
            _check_subject_id(sid)
        except DatasetError as err:
            raise DatasetError(f"{tsv}: {err}") from None
    if table["participant_id"].duplicated().any():
        dup = table.loc[table["participant_id"].duplicated(), "participant_id"].iloc[0]
        raise DatasetError(f"{tsv}: participant_id {dup!r} appears more than once")
    return table


def _read_config(root: Path) -> tuple[SimulationConfig | None, int | None, bool]:
    """The generating configuration, the number of subjects written (if recorded) and
    whether the dataset declares a checksum file."""
    desc = root / "dataset_description.json"
    if not desc.is_file():
        return None, None, False
    try:
        data = json.loads(desc.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{desc}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{desc}: expected a JSON object")
    faimi = data.get("faimi")
    if faimi is None:
        return None, None, False
    if not isinstance(faimi, dict):
        raise DatasetError(
            f"{desc}: 'faimi' holds {type(faimi).__name__}; allowed: an object"
        )
    written = faimi.get("n_subjects")
    if written is not None and (
        isinstance(written, bool) or not isinstance(written, int) or written < 0
    ):
        raise DatasetError(
            f"{desc}: faimi.n_subjects={written!r}; allowed: a non-negative integer"
        )
    checksums = faimi.get("checksums")
    if checksums is not None and checksums != CHECKSUMS:
        raise DatasetError(
            f"{desc}: faimi.checksums={checksums!r}; allowed: {CHECKSUMS!r}"
        )
    cfg = faimi.get("config")
    if cfg is None:
        return None, written, checksums is not None
    if not isinstance(cfg, dict):
        raise DatasetError(
            f"{desc}: faimi.config holds {type(cfg).__name__}; allowed: an object"
        )
    try:
        return SimulationConfig.from_dict(cfg), written, checksums is not None
    except (ValueError, TypeError, KeyError) as err:
        raise DatasetError(f"{desc}: invalid faimi configuration ({err})") from None


def _int_column(
    table: pd.DataFrame, column: str, tsv: Path, default: int | None
) -> np.ndarray:
    if column not in table.columns:
        if default is None:
            raise DatasetError(
                f"{tsv}: no {column!r} column (columns: {', '.join(table.columns)})"
            )
        return np.full(len(table), default, dtype=np.int64)
    values = pd.to_numeric(table[column], errors="coerce")
    bad = values.isna() | (values != values.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(
            f"{tsv}: column {column!r} row {row + 1} holds "
            f"{table[column].iloc[row]!r}; "
            "allowed: integers"
        )
    return values.to_numpy().astype(np.int64)


def read_dataset(
    path: str | os.PathLike[str],
    lazy: bool = False,
    twins: bool = True,
    label_column: str = "label",
    group_column: str = "bias_group",
    rescale: bool | None = None,
) -> Cohort | NiftiDataset:
    """Read a dataset folder (written by :func:`write_cohort`, or a user's own).

    A user's folder needs a ``participants.tsv`` with ``participant_id`` and a label
    column, and one NIfTI image per subject under ``sub-XXXX/`` (all on the same
    grid). A bias-group column is optional (default 0) and so is a ``split`` column
    (default: a stratified 60/20/20 split, seed 0).

    Parameters
    ----------
    path : path
        The dataset folder.
    lazy : bool, default False
        Return a :class:`NiftiDataset` that reads images on demand instead of a
        :class:`~faimi_tutorial.data.simulate.Cohort` held in memory.
    twins : bool, default True
        Also read counterfactual twins when the folder has them.
    label_column, group_column : str
        Columns of ``participants.tsv`` holding the label (0/1) and the group.
    rescale : bool, optional
        Min-max rescale each image to ``[0, 1]``; default: only for folders not
        written by this package.

    Returns
    -------
    Cohort or NiftiDataset
        The cohort (its ``config`` is the generating configuration when known).

    Raises
    ------
    DatasetError
        If the folder, ``participants.tsv``, ``dataset_description.json`` or any
        image is missing, corrupt or inconsistent; the message names the file.
    """
    import torch

    root = Path(path)
    if not root.is_dir():
        raise DatasetError(
            f"{root}: not a dataset folder (does not exist or is not a folder)"
        )
    tsv = root / "participants.tsv"
    table = _read_table(root)
    cfg, written, has_sums = _read_config(root)
    sums = _read_checksums(root, required=has_sums)
    if written is not None and len(table) != written:
        raise DatasetError(
            f"{tsv}: {len(table)} rows but dataset_description.json says {written} "
            "subjects "
            "(n_subjects) were written"
        )
    label = _int_column(table, label_column, tsv, None)
    if not set(np.unique(label)) <= {0, 1}:
        raise DatasetError(f"{tsv}: column {label_column!r} must hold 0 and 1 only")
    group = _int_column(table, group_column, tsv, 0)
    ids = table["participant_id"].astype(str).tolist()
    paths, twin_paths = [], []
    for i, sid in enumerate(ids):
        rel = table["image"].iloc[i] if "image" in table.columns else None
        p = (
            _inside(root, rel, "image", tsv)
            if isinstance(rel, str)
            else _find_image(root, sid, twin=False)
        )
        if p is None:
            raise DatasetError(
                f"{root / sid}: no NIfTI image found for {sid} (participants.tsv)"
            )
        paths.append(p)
        if twins:
            rel_t = table["twin"].iloc[i] if "twin" in table.columns else None
            twin_paths.append(
                _inside(root, rel_t, "twin", tsv)
                if isinstance(rel_t, str)
                else _find_image(root, sid, twin=True)
            )
    if twins and any(p is None for p in twin_paths):
        twin_paths = []
    meta = table.rename(columns={"participant_id": "subject_id"}).drop(
        columns=[c for c in ("image", "twin") if c in table.columns]
    )
    meta["label"] = label
    meta["bias_group"] = group
    if "split" not in meta.columns:
        meta["split"] = stratified_split(label, group, (0.6, 0.2, 0.2), seed=0)
    bad_split = ~meta["split"].astype(str).isin(["train", "val", "test"])
    if bad_split.any():
        row = int(np.flatnonzero(bad_split.to_numpy())[0])
        raise DatasetError(
            f"{tsv}: split {meta['split'].iloc[row]!r} in row {row + 1}; "
            "allowed: train, val, test"
        )
    meta["split"] = pd.Categorical(
        meta["split"].astype(str), categories=["train", "val", "test"]
    )
    if rescale is None:
        rescale = cfg is None
    expected = None
    if cfg is not None:
        expected = tuple(cfg.grid.shape) + ((1,) if cfg.dims == 2 else ())
    if sums is not None:
        # every table and image read must be the one written; images are checked as read
        for rel in ("participants.tsv", "dataset_description.json"):
            _verify(root, rel, sums)
    dataset = NiftiDataset(
        paths,
        twin_paths or None,
        meta,
        cfg,
        rescale,
        expected,
        checksums=sums,
        root=root,
    )
    if lazy:
        return dataset
    if expected is not None:
        n_arrays = len(paths) * (2 if twin_paths else 1)
        check_memory(
            n_arrays * float(np.prod(expected)) * 4 * 1.5,
            f"reading {n_arrays} images of {expected} from {root}",
            "read it with lazy=True (images on demand)",
        )
    arrays = [dataset.load(i) for i in range(len(dataset))]
    images = torch.from_numpy(np.stack(arrays))
    twin_images = None
    if dataset.twin_paths is not None:
        twin_images = torch.from_numpy(
            np.stack([dataset.load(i, twin=True) for i in range(len(dataset))])
        )
    return Cohort(images=images, twins=twin_images, meta=meta, config=cfg)


# --------------------------------------------------------------------------------------
# torch datasets
# --------------------------------------------------------------------------------------


class NiftiDataset:
    """A torch dataset over NIfTI files, read on demand.

    Items are ``(image, label, bias_group)``: a float32 tensor ``(1, *grid)`` and two
    int64 scalars. Built by :func:`read_dataset` with ``lazy=True``.

    Parameters
    ----------
    paths : sequence of pathlib.Path
        One image per subject.
    twin_paths : sequence of pathlib.Path, optional
        The counterfactual twins.
    meta : pandas.DataFrame
        One row per subject with ``label`` and ``bias_group``.
    config : SimulationConfig, optional
        Generating configuration.
    rescale : bool, default False
        Min-max rescale each image to ``[0, 1]``.
    expected_shape : tuple of int, optional
        The shape every file must have.
    checksums : dict of str to str, optional
        SHA-256 of each file, by path relative to ``root`` (from ``SHA256SUMS``):
        every file read is checked against it.
    root : pathlib.Path, optional
        The dataset folder (needed with ``checksums``).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        twin_paths: Sequence[Path] | None,
        meta: pd.DataFrame,
        config: SimulationConfig | None = None,
        rescale: bool = False,
        expected_shape: tuple[int, ...] | None = None,
        checksums: dict[str, str] | None = None,
        root: Path | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.twin_paths = None if twin_paths is None else [Path(p) for p in twin_paths]
        self.meta = meta.reset_index(drop=True)
        self.config = config
        self.rescale = rescale
        self.expected_shape = expected_shape
        self._first_shape: tuple[int, ...] | None = None
        self.checksums = checksums
        self.root = None if root is None else Path(root)
        if checksums is not None and root is None:
            raise ValueError("checksums need the dataset folder (root)")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def label(self) -> np.ndarray:
        """Disease labels (int64)."""
        return np.array(self.meta["label"], dtype=np.int64)

    @property
    def bias_group(self) -> np.ndarray:
        """Bias groups (int64)."""
        return np.array(self.meta["bias_group"], dtype=np.int64)

    def load(self, index: int, twin: bool = False) -> np.ndarray:
        """Read one image as a float32 array ``(1, *grid)``.

        Parameters
        ----------
        index : int
            Subject position.
        twin : bool, default False
            Read the counterfactual twin instead.

        Returns
        -------
        numpy.ndarray
            The image with a channel axis.

        Raises
        ------
        DatasetError
            If the file is missing, corrupt or of the wrong shape.
        """
        if twin and self.twin_paths is None:
            raise DatasetError("this dataset has no counterfactual twins")
        path = (self.twin_paths if twin else self.paths)[index]
        want = self.expected_shape or self._first_shape
        digest = None
        if self.checksums is not None:
            rel = path.relative_to(self.root).as_posix()
            if rel not in self.checksums:
                raise DatasetError(f"{path}: not listed in {CHECKSUMS}")
            digest = self.checksums[rel]
        data, _ = _load_nifti(path, want, digest)
        shape = tuple(data.shape)
        if want is not None and shape != tuple(want):
            raise DatasetError(
                f"{path}: image shape {shape} differs from the dataset's {want}"
            )
        if self._first_shape is None:
            self._first_shape = shape
        if (
            len(shape) == 3
            and shape[2] == 1
            and (self.config is None or self.config.dims == 2)
        ):
            data = data[..., 0]
        if self.rescale:
            lo, hi = float(data.min()), float(data.max())
            data = (data - lo) / (hi - lo) if hi > lo else np.zeros_like(data)
        return np.ascontiguousarray(data[None], dtype=np.float32)

    def __getitem__(self, index: int):
        import torch

        image = torch.from_numpy(self.load(int(index)))
        return (
            image,
            torch.tensor(int(self.label[index])),
            torch.tensor(int(self.bias_group[index])),
        )


class CohortDataset:
    """A torch dataset view of an in-memory cohort: items ``(image, label,
    bias_group)``.

    Parameters
    ----------
    cohort : Cohort
        The cohort.
    twins : bool, default False
        Serve the counterfactual twins instead of the images.
    """

    def __init__(self, cohort: Cohort, twins: bool = False) -> None:
        if twins and cohort.twins is None:
            raise ValueError("the cohort has no twins")
        self.cohort = cohort
        self.images = cohort.twins if twins else cohort.images
        import torch

        self._label = torch.as_tensor(cohort.label)
        self._group = torch.as_tensor(cohort.bias_group)

    def __len__(self) -> int:
        return len(self.cohort)

    def __getitem__(self, index: int):
        return self.images[index], self._label[index], self._group[index]


# --------------------------------------------------------------------------------------
# command line: faimi simulate
# --------------------------------------------------------------------------------------

_TUPLE_NARGS = {
    "shape": "+",
    "bias_prevalence": 2,
    "disease_mean": 2,
    "disease_sd": 2,
    "split": 3,
    "crop": "*",
}
_CHOICES = {
    "preset": presets.PRESET_NAMES,
    "bias_kind": BIAS_KINDS,
    "intensity_scope": INTENSITY_SCOPES,
}


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def register(subparsers) -> None:
    """Add the ``simulate`` subcommand to the ``faimi`` command.

    Every :class:`SimulationConfig` field is an option (``--bias-prevalence 0.7 0.3``,
    ``--n-subjects 100`` ...). A bad value exits with status 2 and one line naming
    the option, the value and the allowed range, and writes nothing.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``ArgumentParser.add_subparsers``.
    """
    import argparse
    import types

    parser = subparsers.add_parser(
        "simulate",
        help="generate a synthetic cohort with known biases and write it as a dataset",
        description="Generate a SimBA-style cohort (images, counterfactual twins, "
        "participants.tsv, a datasheet as README.md) and write it as a BIDS dataset to "
        "--out. "
        "Unset options take the "
        "preset's values.",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="dataset folder to write"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace DIR if it exists and is not empty",
    )
    parser.add_argument(
        "--config",
        metavar="JSON",
        default=None,
        help="start from a configuration file (SimulationConfig JSON, or a "
        "dataset_description.json written by this command)",
    )
    parser.add_argument(
        "--device", default=None, help="torch device (default: automatic)"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar or summary"
    )
    defaults = {f.name: f.default for f in dataclasses.fields(SimulationConfig)}
    defaults["preset"] = "$FAIMI_PRESET or tutorial"
    for f in dataclasses.fields(SimulationConfig):
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "type": str}
        default = defaults[f.name]
        if default is None:  # the help text says where the value comes from
            kwargs["help"] = FIELD_HELP[f.name]
        else:
            shown = (
                " ".join(map(str, default)) if isinstance(default, tuple) else default
            )
            kwargs["help"] = f"{FIELD_HELP[f.name]} (default: {shown})"
        if f.name in _TUPLE_NARGS:
            kwargs["nargs"] = _TUPLE_NARGS[f.name]
            kwargs["metavar"] = "X"
        if f.name in _CHOICES:
            kwargs["help"] += f"; one of: {', '.join(_CHOICES[f.name])}"
        parser.add_argument(_option(f.name), **kwargs)
    parser.set_defaults(func=_run_simulate)

    def one_line_error(
        self, message: str
    ) -> None:  # argparse's own errors, on one line
        self.exit(2, f"faimi simulate: error: {message}\n")

    parser.error = types.MethodType(one_line_error, parser)


def _number(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except (TypeError, ValueError):
            pass
    return text


#: Fields whose command-line values stay text.
_TEXT_FIELDS = (
    "preset",
    "bias_kind",
    "intensity_scope",
    "disease_region",
    "bias_region",
)


def _read_config_file(path: str) -> dict[str, Any]:
    """The configuration object of a ``--config`` file (one-line errors as
    ConfigError)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except UnicodeDecodeError as err:
        raise ConfigError(
            "config", path, f"a UTF-8 JSON file (byte {err.start} is not UTF-8)"
        ) from None
    except json.JSONDecodeError as err:
        raise ConfigError(
            "config",
            path,
            f"a JSON file (line {err.lineno}, column {err.colno}: {err.msg})",
        ) from None
    except IsADirectoryError:
        raise ConfigError("config", path, "a JSON file, not a folder") from None
    except OSError as err:
        raise ConfigError(
            "config", path, f"a readable JSON file ({err.strerror})"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            "config",
            path,
            f"a JSON object of SimulationConfig fields (found a {type(data).__name__})",
        )
    if "faimi" in data:  # a dataset_description.json written by this command
        faimi = data["faimi"]
        if not isinstance(faimi, dict) or not isinstance(faimi.get("config"), dict):
            raise ConfigError(
                "config",
                path,
                "a dataset_description.json whose 'faimi' "
                "object holds a 'config' object",
            )
        data = faimi["config"]
    return dict(data)


def config_from_args(args: Any) -> SimulationConfig:
    """Build the configuration from parsed ``faimi simulate`` options.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options (``None`` = not given).

    Returns
    -------
    SimulationConfig
        The validated configuration.

    Raises
    ------
    ConfigError
        For an invalid value (names the field, or ``config`` for a bad file).
    ValueError
        For an invalid ``$FAIMI_PRESET``.
    """
    base: dict[str, Any] = {}
    if getattr(args, "config", None):
        base = _read_config_file(args.config)
    given: dict[str, Any] = {}
    for f in dataclasses.fields(SimulationConfig):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if isinstance(value, list):
            value = tuple(_number(v) for v in value)
        elif f.name not in _TEXT_FIELDS:
            value = _number(value)
        given[f.name] = value
    if base:
        values = {**base, **given}
        if "dims" in given or "preset" in given:
            for key in GRID_FIELDS:
                if key not in given:
                    values[key] = None
        try:
            return SimulationConfig.from_dict(values)
        except ConfigError as err:
            if err.field in given or err.field == "config":
                raise
            raise ConfigError("config", args.config, f"valid fields ({err})") from None
        except (ValueError, TypeError, KeyError) as err:
            raise ConfigError("config", args.config, f"valid fields ({err})") from None
    preset = given.pop("preset", None)
    if preset is not None and preset not in presets.PRESET_NAMES:
        raise ConfigError("preset", preset, ", ".join(presets.PRESET_NAMES))
    return SimulationConfig.preset(preset, **given)


def _run_simulate(args: Any) -> int:

    def fail(message: str) -> int:
        print(f"faimi simulate: error: {message}", file=sys.stderr)
        return 2

    try:
        cfg = config_from_args(args)
    except ConfigError as err:
        option = "--config" if err.field == "config" else _option(err.field)
        value = (
            " ".join(map(str, err.value))
            if isinstance(err.value, (tuple, list))
            else err.value
        )
        return fail(f"{option} {value}: allowed: {err.allowed}")
    except ValueError as err:  # $FAIMI_PRESET
        return fail(str(err))
    # everything that can be checked is checked before any work
    try:
        device = choose_device(args.device)
    except ValueError as err:
        return fail(str(err).replace("device=", "--device ", 1))
    try:
        out = check_output_folder(args.out, "out")
        check_cohort_memory(cfg)
    except ValueError as err:
        return fail(str(err).replace("out=", "--out ", 1))
    try:
        with DatasetLock(out):
            for note in recover_leftovers(out):
                print(f"faimi simulate: note: {note}", file=sys.stderr)
            try:
                _check_target(out, args.overwrite)
            except FileExistsError:
                return fail(
                    f"--out {out}: exists and is not empty; allowed: a new or empty "
                    "folder, or add --overwrite"
                )
            cohort = generate(cfg, progress=not args.quiet, device=device)
            _write_locked(cohort, out, args.overwrite, None, not args.quiet)
    except FileExistsError as err:  # another writer holds the folder
        return fail(f"--out {err}")
    except OSError as err:
        return fail(
            f"--out {out}: cannot write ({err.strerror or err}); nothing was written"
        )
    if not args.quiet:
        seconds = cohort.meta.attrs.get("generation_seconds", float("nan"))
        print(
            f"wrote {len(cohort)} subjects (and their counterfactual twins) to {out} "
            f"in {seconds:.1f} s of generation; see {out / 'README.md'} (the datasheet)"
        )
    return 0
