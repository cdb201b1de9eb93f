"""Experiments: the studies the chapters run on the lower layers: sweeps over bias
settings with their cache, representativeness, probing and ShorT, federated training
(also on Flower) and explanations.

Modules are imported on first use, so ``faimi_tutorial.experiments.sweeps`` does not
load Flower.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = (
    "explain",
    "federated",
    "flower_app",
    "generalisation",
    "label_experiments",
    "probing",
    "representation",
    "runner",
    "sweeps",
)

__all__ = list(_MODULES)


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
