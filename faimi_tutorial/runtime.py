"""Where code runs: device choice, seeding and the ``about()`` banner."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
from typing import Any

import numpy as np

from . import presets
from ._version import __version__
from .validation import check_device, check_seed

_REPORTED_PACKAGES = (
    "torch",
    "monai",
    "numpy",
    "pandas",
    "scikit-learn",
    "fairlearn",
    "nibabel",
    "matplotlib",
    "ipywidgets",
)


def choose_device(prefer: str | None = None):
    """Pick the torch device: CUDA when present, else Apple MPS, else CPU.

    Parameters
    ----------
    prefer : str, optional
        Force a device (``"cpu"``, ``"cuda"``, ``"cuda:1"`` …). ``None`` (default)
        chooses automatically; ``$FAIMI_DEVICE`` overrides the automatic choice.

    Returns
    -------
    torch.device
        The chosen device.

    Raises
    ------
    ValueError
        If ``prefer`` (or ``$FAIMI_DEVICE``) is not a device or not available here
        (the message names which).
    """
    import torch

    if prefer:
        return check_device(prefer, "device")
    env = os.environ.get("FAIMI_DEVICE", "").strip()
    if env:
        return check_device(env, "FAIMI_DEVICE")
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, numpy and torch so that a CPU run repeats exactly.

    Parameters
    ----------
    seed : int
        A non-negative integer.

    Returns
    -------
    numpy.random.Generator
        A fresh generator seeded with ``seed`` for callers that want one.

    Raises
    ------
    ValueError
        If ``seed`` is negative or not an integer.
    """

    seed = check_seed(seed)
    import torch

    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    return np.random.default_rng(int(seed))


def versions() -> dict[str, str]:
    """Installed versions of Python, this package and its main dependencies.

    Returns
    -------
    dict of str to str
        Package name to version (``"not installed"`` when missing).
    """

    out = {"python": platform.python_version(), "faimi-tutorial": __version__}
    for name in _REPORTED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> dict[str, Any]:
    """Facts about this machine that a benchmark or a results file records beside its
    numbers.

    Returns
    -------
    dict
        ``platform``, ``cpus``, ``torch_threads``, ``omp_num_threads`` (the
        environment variable, or ``None``), ``load_average`` (1, 5 and 15 minutes;
        other work on the machine slows every timing), ``device`` (what
        :func:`choose_device` picks), ``gpu`` (the CUDA card's name, or ``None``)
        and ``versions`` (:func:`versions`).
    """
    import torch

    device = choose_device()
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average": [round(x, 2) for x in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "versions": versions(),
    }


def about(print_it: bool = True) -> str | None:
    """Print (and return) versions, the compute device and the active preset.

    Every chapter calls this in its first cells so that a reader (or a teacher
    helping one) sees at a glance what the chapter runs on.

    Parameters
    ----------
    print_it : bool, default True
        Print the text as well as returning it.

    Returns
    -------
    str or None
        The banner text when ``print_it`` is False (None otherwise, so that a notebook
        does not show it twice).
    """
    import torch

    device = choose_device()
    lines = ["faimi-tutorial environment"]
    lines += [f"  {name:<15}{ver}" for name, ver in versions().items()]
    threads = torch.get_num_threads()
    lines.append(f"  {'device':<15}{device} ({threads} CPU threads for torch)")
    name = presets.active_preset()
    lines.append(f"  {'preset':<15}{name}: {presets.DESCRIPTIONS[name]}")
    text = "\n".join(lines)
    if print_it:
        print(text)
        return None
    return text
