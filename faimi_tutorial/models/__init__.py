"""Models: the classifiers the chapters train (SimBA CNN and MONAI networks) and the
helpers that read their layers."""

from . import networks
from .networks import (
    ARCHITECTURE_KEYS,
    MODEL_NAMES,
    ModelConfig,
    SimBACNN,
    build_model,
    count_parameters,
    forward_with_features,
    last_linear,
    layer_names,
    penultimate_features,
)

__all__ = [
    "networks",
    "ARCHITECTURE_KEYS",
    "MODEL_NAMES",
    "ModelConfig",
    "SimBACNN",
    "build_model",
    "count_parameters",
    "forward_with_features",
    "last_linear",
    "layer_names",
    "penultimate_features",
]
