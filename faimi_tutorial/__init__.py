"""faimi_tutorial: companion package of the faimi-tutorial book.

Fairness and bias in medical-imaging AI, taught with synthetic brain MRI whose
biases are known because we put them there. Submodules are imported lazily, so
``import faimi_tutorial as ft`` is fast and ``ft.metrics`` works on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_SUBMODULES = (
    "anatomy",
    "cli",
    "datasets",
    "explain",
    "federated",
    "flower_app",
    "metrics",
    "models",
    "objectives",
    "plotting",
    "postprocess",
    "presets",
    "probing",
    "report",
    "representation",
    "results",
    "runtime",
    "simulate",
    "sweeps",
    "training",
    "validation",
    "widgets",
)

from .runtime import about, choose_device, seed_everything  # noqa: E402

__all__ = ["__version__", "about", "choose_device", "seed_everything", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
