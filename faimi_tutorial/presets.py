"""The three presets of the book, defined in one place.

``tiny``
    For the tests: seconds on a CPU.
``tutorial``
    The default: what the executed book runs on a 2-core CPU.
``paper``
    SimBA scale (full 2 mm MNI grid, thousands of subjects): meant for a GPU.

Each module reads its own section of a preset from here (``SIMULATION`` for the
generator, ``TRAINING`` for model fitting), so that changing a preset is a one-file
change. The active preset of a session is taken from the ``FAIMI_PRESET``
environment variable (default ``tutorial``).
"""

from __future__ import annotations

import os
from typing import Any

#: Names of the presets, smallest first.
PRESET_NAMES: tuple[str, ...] = ("tiny", "tutorial", "paper")

#: One-line description of each preset.
DESCRIPTIONS: dict[str, str] = {
    "tiny": "tests: a few dozen small subjects, seconds on a CPU",
    "tutorial": "the executed book: minutes on a 2-core CPU",
    "paper": "SimBA scale (2 mm grid, >= 2,000 subjects): meant for a GPU",
}

#: Simulator settings per preset (read by ``faimi_tutorial.data.simulate``).
#: ``grid_2d``/``grid_3d`` hold the grid and cohort size for each ``dims``, the crop
#: (a region of interest) and ``effect_sd``, the size of one unit of the disease and
#: the bias coefficients in natural SDs of the affected region's volume (the same for
#: both effects; a coarser grid needs larger effects to show them); other keys are
#: :class:`faimi_tutorial.data.simulate.SimulationConfig` fields shared by both.
SIMULATION: dict[str, dict[str, Any]] = {
    "tiny": {
        "dims": 3,
        "grid_3d": {
            "shape": (24, 28, 24),
            "spacing": 8.0,
            "n_subjects": 24,
            "integration_spacing_mm": 16.0,
            "effect_sd": 2.0,
        },
        "grid_2d": {
            "shape": (32, 32),
            "spacing": 6.0,
            "n_subjects": 64,
            "integration_spacing_mm": 12.0,
            "effect_sd": 2.0,
        },
    },
    "tutorial": {
        "dims": 3,
        # 3D trains on a 20^3 box (80 mm) around the disease and the near bias region
        "grid_3d": {
            "shape": (48, 56, 48),
            "spacing": 4.0,
            "n_subjects": 2000,
            "integration_spacing_mm": 8.0,
            "crop": (20, 20, 20),
            "effect_sd": 3.0,
        },
        "grid_2d": {
            "shape": (64, 64),
            "spacing": 3.0,
            "n_subjects": 2000,
            "integration_spacing_mm": 6.0,
            "effect_sd": 2.0,
        },
    },
    "paper": {
        "dims": 3,
        "grid_3d": {
            "shape": (99, 117, 95),
            "spacing": 2.0,
            "n_subjects": 2000,
            "integration_spacing_mm": 6.0,
            "effect_sd": 2.0,
        },
        "grid_2d": {
            "shape": (128, 128),
            "spacing": 1.5,
            "n_subjects": 5000,
            "integration_spacing_mm": 4.5,
            "effect_sd": 2.0,
        },
    },
}

#: Training settings per preset (read by ``faimi_tutorial.training``).
TRAINING: dict[str, dict[str, Any]] = {
    "tiny": {
        "model": "classifier",
        "channels": (4, 8, 16),
        "strides": (2, 2, 2),
        "num_res_units": 0,
        "dropout": 0.0,
        "epochs": 3,
        "batch_size": 16,
        "lr": 3e-3,
        "weight_decay": 0.0,
        "patience": 2,
    },
    "tutorial": {
        "model": "classifier",
        "channels": (8, 16, 32, 64),
        "strides": (2, 2, 2, 2),
        "num_res_units": 1,
        "dropout": 0.0,
        "epochs": 12,
        "batch_size": 32,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "patience": 4,
        # keep the epoch with the best validation AUROC, not the first loss minimum
        "selection": "overall",
        "selection_metric": "auroc",
    },
    "paper": {
        "model": "simba_cnn",
        "channels": (32, 64, 128, 256, 256),
        "strides": (2, 2, 2, 2, 2),
        "num_res_units": 0,
        "dropout": 0.2,
        "epochs": 60,
        "batch_size": 32,
        "lr": 1e-4,
        "weight_decay": 1e-4,
        "patience": 10,
        "selection": "overall",
        "selection_metric": "auroc",
    },
}

#: Changes to :data:`TRAINING` for 3D volumes. A small 3D network's validation AUROC
#: stays near chance for about six epochs before it rises, so it trains a fixed number
#: of epochs without early stopping and keeps the epoch of best validation AUROC.
TRAINING_3D: dict[str, dict[str, Any]] = {
    "tiny": {},
    "tutorial": {"epochs": 12, "patience": None},
    "paper": {"patience": None},
}

#: Federated-training settings per preset (read by
#: :meth:`faimi_tutorial.experiments.federated.FedConfig.preset`): a small fast
#: network for ``tiny`` and ``tutorial``; ``paper`` trains the paper's network with
#: its optimiser.
#: Every preset takes its weight decay from :data:`TRAINING`.
FEDERATED: dict[str, dict[str, Any]] = {
    "tiny": {
        "rounds": 2,
        "batch_size": 16,
        "lr": 3e-3,
        "channels": (4, 8, 16),
        "strides": (2, 2, 2),
    },
    "tutorial": {
        "rounds": 8,
        "batch_size": 16,
        "lr": 2e-3,
        "channels": (8, 16, 32),
        "strides": (2, 2, 2),
    },
    "paper": {
        "rounds": 30,
        **{
            key: TRAINING["paper"][key]
            for key in (
                "batch_size",
                "lr",
                "channels",
                "strides",
                "model",
                "num_res_units",
                "dropout",
            )
        },
    },
}
for _name, _settings in FEDERATED.items():
    _settings["weight_decay"] = TRAINING[_name]["weight_decay"]
del _name, _settings

#: Settings of the shortcut-learning chapter and of ``scripts/shortcut_findings.py``
#: (which runs the same experiments with more subjects and seeds, and also with the
#: morphological bias): overrides of the simulator (``"simulation"``) and of training
#: (``"training"``) on top of a preset. The bias is a local contrast change in the bias
#: region (SimBA's intensity bias) on 2D slices, so that one training takes seconds.
#: ``faimi_tutorial.experiments.sweeps.SHORTCUT_SETTINGS`` is this table.
SHORTCUT: dict[str, dict[str, Any]] = {
    "simulation": {
        "dims": 2,
        "n_subjects": 1000,
        "bias_kind": "intensity",
        "intensity_factor": 1.2,
    },
    "training": {"epochs": 6, "groupdro_eta": 0.1, "unlearning_alpha": 1.0},
}


def check_preset(name: str) -> str:
    """Return ``name`` if it names a preset, else raise ``ValueError``.

    Parameters
    ----------
    name : str
        A preset name.

    Returns
    -------
    str
        The same name.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`PRESET_NAMES`.
    """
    if name not in PRESET_NAMES:
        raise ValueError(
            f"preset={name!r} is not a preset; allowed: {', '.join(PRESET_NAMES)}"
        )
    return name


def active_preset() -> str:
    """Name of the session's preset: ``$FAIMI_PRESET`` or ``"tutorial"``.

    Returns
    -------
    str
        A name from :data:`PRESET_NAMES`.

    Raises
    ------
    ValueError
        If ``FAIMI_PRESET`` is set to something that is not a preset.
    """
    name = os.environ.get("FAIMI_PRESET", "tutorial").strip() or "tutorial"
    if name not in PRESET_NAMES:
        raise ValueError(
            f"FAIMI_PRESET={name!r} is not a preset; allowed: {', '.join(PRESET_NAMES)}"
        )
    return name
