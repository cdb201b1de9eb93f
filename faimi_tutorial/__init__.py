"""faimi_tutorial: companion package of the faimi-tutorial book.

Fairness and bias in medical-imaging AI, taught with synthetic brain MRI whose
biases are known because we put them there. The package is layered, and each
layer imports only the layers below it (``tests/test_layers.py`` checks this):

- bottom: ``presets`` (preset tables), ``validation`` (shared input checks),
  ``runtime`` (device, seeds) and ``results`` (the recorded results);
- ``data``: template and regions, the simulator, BIDS datasets;
- ``fairness``: the one metrics core and post-processing;
- ``models``: the networks;
- ``training``: the one training loop and its objectives (the mitigations);
- ``experiments``: sweeps, representativeness, probing, federated training,
  explanations;
- ``viz``: figures and widgets;
- top: ``report`` (``faimi report``) and ``cli`` (the ``faimi`` command).

Everything is imported on first use, so ``import faimi_tutorial as ft`` is fast.
The chapters' short names (``ft.simulate``, ``ft.metrics``, ``ft.plotting`` ...)
name the modules inside the layers.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .runtime import about, choose_device, seed_everything

#: Short name -> module inside the layers (``ft.simulate`` is ``ft.data.simulate``).
ALIASES: dict[str, str] = {
    "anatomy": "data.anatomy",
    "simulate": "data.simulate",
    "datasets": "data.datasets",
    "harmonise": "data.harmonise",
    "labels": "data.labels",
    "metrics": "fairness.metrics",
    "postprocess": "fairness.postprocess",
    "audit": "fairness.audit",
    "objectives": "training.objectives",
    "sweeps": "experiments.sweeps",
    "runner": "experiments.runner",
    "representation": "experiments.representation",
    "probing": "experiments.probing",
    "federated": "experiments.federated",
    "generalisation": "experiments.generalisation",
    "flower_app": "experiments.flower_app",
    "explain": "experiments.explain",
    "label_experiments": "experiments.label_experiments",
    "plotting": "viz.plotting",
    "widgets": "viz.widgets",
}

_SUBMODULES = (
    "cli",
    "data",
    "experiments",
    "fairness",
    "models",
    "presets",
    "report",
    "results",
    "runtime",
    "training",
    "validation",
    "viz",
)

__all__ = [
    "__version__",
    "about",
    "choose_device",
    "seed_everything",
    *_SUBMODULES,
    *ALIASES,
]


def __getattr__(name: str) -> Any:
    if name in ALIASES:
        return importlib.import_module(f".{ALIASES[name]}", __name__)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
