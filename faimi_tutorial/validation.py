"""Shared checks of user input: numbers, seeds, devices, paths and memory.

Every check raises :class:`ValueError` whose message names the setting, the
rejected value and what is allowed, so that the command line can print it as one
line (and the API raises something a reader can act on).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "check_finite",
    "check_int",
    "check_seed",
    "check_device",
    "check_output_folder",
    "check_output_file",
    "memory_bytes",
    "check_memory",
    "format_bytes",
]


def check_finite(name: str, value: Any, lo: float = -math.inf, hi: float = math.inf) -> float:
    """A finite real number in ``[lo, hi]`` (booleans and strings are refused).

    Parameters
    ----------
    name : str
        The setting, used in the message.
    value : any
        The value to check.
    lo, hi : float
        Inclusive bounds.

    Returns
    -------
    float
        The value as a float.

    Raises
    ------
    ValueError
        If the value is not a finite number within the bounds.
    """
    allowed = f"a finite number in [{lo:g}, {hi:g}]"
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")
    return v


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """An integer (not a bool, not a float) in ``[lo, hi]``.

    Parameters
    ----------
    name : str
        The setting, used in the message.
    value : any
        The value to check.
    lo, hi : int, optional
        Inclusive bounds.

    Returns
    -------
    int
        The value.

    Raises
    ------
    ValueError
        If the value is not an integer within the bounds.
    """
    bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r} is invalid; allowed: an integer in {bounds}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name}={value!r} is invalid; allowed: an integer in {bounds}")
    return int(value)


def check_seed(value: Any, name: str = "seed") -> int:
    """A non-negative integer seed (what numpy and torch accept).

    Parameters
    ----------
    value : any
        The seed.
    name : str, default "seed"
        The setting, used in the message.

    Returns
    -------
    int
        The seed.
    """
    return check_int(name, value, 0, 2**63 - 1)


def check_device(device: Any, name: str = "device"):
    """A torch device that exists on this machine.

    Parameters
    ----------
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` ...
    name : str, default "device"
        The setting, used in the message (e.g. ``"FAIMI_DEVICE"``).

    Returns
    -------
    torch.device
        The device.

    Raises
    ------
    ValueError
        If the text is not a device, or the device is not available here.
    """
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name}={device!r} is not a torch device; allowed: cpu, cuda, "
                         "cuda:N or mps (where available)") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{name}={device!r} is not available: this machine has no CUDA "
                             "GPU; allowed: cpu")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{name}={device!r} is not available; allowed: cpu or cuda:0 to "
                             f"cuda:{count - 1}")
        return dev
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"{name}={device!r} is not available on this machine; allowed: cpu")
        return dev
    raise ValueError(f"{name}={device!r} is not supported; allowed: cpu, cuda, cuda:N or mps")


def _check_nearest_parent(out: Path, name: str, text: str, inside_file: str,
                          not_writable: str) -> None:
    """Raise if the nearest existing parent of ``out`` is a file or cannot be written in."""
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{name}={text!r} lies inside the file {parent}; allowed: "
                                 f"{inside_file}")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ValueError(f"{name}={text!r}: cannot write in {parent}; allowed: "
                                 f"{not_writable}")
            return


def check_output_folder(path: str | os.PathLike[str], name: str = "out") -> Path:
    """A folder path that can be created or replaced: not a file, not inside a file, not ``.``.

    Parameters
    ----------
    path : path
        The folder.
    name : str, default "out"
        The setting, used in the message.

    Returns
    -------
    pathlib.Path
        The path as given.

    Raises
    ------
    ValueError
        If the path is a file, lies below a file, or is the current folder, the
        file-system root or a parent of the current folder.
    """
    out = Path(path)
    text = str(path)
    if not text.strip():
        raise ValueError(f"{name}={text!r} is invalid; allowed: a folder path")
    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents or resolved.parent == resolved:
        raise ValueError(f"{name}={text!r} is the current folder, one of its parents or the "
                         "root; allowed: a new or empty folder below them (e.g. ./dataset)")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{name}={text!r} is a file; allowed: a new or empty folder")
    _check_nearest_parent(out, name, text, "a folder path", "a folder in a writable place")
    return out


def check_output_file(path: str | os.PathLike[str], name: str = "checkpoint") -> Path:
    """A file path that can be written: not a folder, not inside a file.

    Parameters
    ----------
    path : path
        The file.
    name : str, default "checkpoint"
        The setting, used in the message.

    Returns
    -------
    pathlib.Path
        The path as given.

    Raises
    ------
    ValueError
        If the path is a folder, lies below a file or in a folder that cannot be written.
    """
    out = Path(path)
    text = str(path)
    if not text.strip() or text.endswith(("/", os.sep)):
        raise ValueError(f"{name}={text!r} is invalid; allowed: a file path (e.g. model.pt)")
    if out.is_dir():
        raise ValueError(f"{name}={text!r} is a folder; allowed: a file path (e.g. "
                         f"{Path(text) / 'model.pt'})")
    _check_nearest_parent(out, name, text, "a file path in a folder",
                          "a file in a writable folder")
    return out


def memory_bytes() -> int:
    """Physical memory of this machine in bytes (0 when unknown).

    ``$FAIMI_MEMORY_BYTES`` overrides it (for tests, or to keep a job within a share
    of a larger machine).

    Returns
    -------
    int
        Bytes.
    """
    env = os.environ.get("FAIMI_MEMORY_BYTES", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"FAIMI_MEMORY_BYTES={env!r} is invalid; allowed: a positive "
                             "integer (bytes)") from None
        if value <= 0:
            raise ValueError(f"FAIMI_MEMORY_BYTES={env!r} is invalid; allowed: a positive "
                             "integer (bytes)")
        return value
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 0


def format_bytes(n: float) -> str:
    """``1.5 GB``-style text for a byte count.

    Parameters
    ----------
    n : float
        Bytes.

    Returns
    -------
    str
        The size with a unit.
    """
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000.0
    return f"{n:.3g} PB"  # pragma: no cover


def check_memory(estimate: float, what: str, hint: str = "") -> None:
    """Refuse work whose memory estimate exceeds this machine's memory.

    Parameters
    ----------
    estimate : float
        Bytes the work needs (at least).
    what : str
        What needs it, for the message (e.g. ``"n_subjects=5000 on a 512^3 grid"``).
    hint : str, optional
        What to change, appended to the message.

    Raises
    ------
    ValueError
        With the estimate and the machine's memory in the message.
    """
    total = memory_bytes()
    if total and estimate > total:
        raise ValueError(f"{what} needs about {format_bytes(estimate)} of memory, more than "
                         f"this machine's {format_bytes(total)}" + (f"; {hint}" if hint else ""))
