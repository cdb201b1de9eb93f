"""Small networks for the chapters: MONAI ``Classifier`` and a SimBA-like CNN.

Every model here maps an image batch ``(N, 1, *grid)`` to one logit per image,
shape ``(N, 1)`` (the disease score before the sigmoid), and ends with a single
:class:`torch.nn.Linear` layer: :func:`penultimate_features` reads the input of
that layer, which is what bias unlearning and linear probes work on.

``tiny`` and ``tutorial`` presets use MONAI's residual ``Classifier`` (fast on a
CPU, in 2D and 3D); the ``paper`` preset uses a five-block CNN in the spirit of
the network of Stanley et al. (SimBA): convolution, batch normalisation, ReLU and
max pooling per block, then global average pooling, dropout and a linear layer.

>>> import faimi_tutorial as ft
>>> model = ft.models.build_model("tiny", in_shape=(1, 32, 32))
>>> ft.models.layer_names(model)
['net.layer_0', 'net.layer_1', 'net.layer_2']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .. import presets
from ..validation import (
    check_choice,
    check_integer,
    check_integers,
    check_range,
    config_error,
)

#: Architectures known to :func:`build_model`.
MODEL_NAMES: tuple[str, ...] = ("classifier", "simba_cnn")

#: Architecture settings per preset (the rest of a preset's training settings
#: live in :data:`faimi_tutorial.presets.TRAINING`).
ARCHITECTURE_KEYS = ("model", "channels", "strides", "num_res_units", "dropout")


@dataclass
class ModelConfig:
    """Architecture of a classifier.

    Parameters
    ----------
    model : {"classifier", "simba_cnn"}
        ``"classifier"``: MONAI :class:`monai.networks.nets.Classifier` (residual
        units, instance norm, PReLU). ``"simba_cnn"``: five blocks of
        convolution, batch norm, ReLU and max pooling (:class:`SimBACNN`).
    in_shape : tuple of int
        Shape of one image with its channel axis, e.g. ``(1, 64, 64)`` or
        ``(1, 48, 56, 48)``. 2D and 3D are told apart by its length.
    channels : tuple of int
        Output channels of each block (one block per entry).
    strides : tuple of int
        Stride of each block (``classifier`` only; one per channel entry).
    num_res_units : int
        Residual units per block (``classifier`` only; 0 uses plain convolutions).
    dropout : float
        Dropout probability in [0, 1) before the last layer.
    """

    model: str = "classifier"
    in_shape: tuple[int, ...] = (1, 64, 64)
    channels: tuple[int, ...] = (8, 16, 32, 64)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_choice(self, "model", self.model, MODEL_NAMES)
        for name in ("in_shape", "channels"):
            setattr(
                self,
                name,
                check_integers(self, name, getattr(self, name), 1, whole_floats=True),
            )
        if len(self.in_shape) not in (3, 4):
            raise config_error(
                self,
                "in_shape",
                self.in_shape,
                "(channels, H, W) or (channels, D, H, W), positive sizes",
            )
        # strides are used by "classifier" only: one per block there
        blocks = len(self.channels) if self.model == "classifier" else None
        self.strides = check_integers(
            self, "strides", self.strides, 1, n=blocks, whole_floats=True
        )
        smallest = min(self.in_shape[1:])
        if self.model == "simba_cnn" and smallest < 2 ** len(self.channels):
            raise config_error(
                self,
                "in_shape",
                self.in_shape,
                f"spatial sizes >= {2 ** len(self.channels)} for "
                f"{len(self.channels)} pooling blocks",
            )
        self.num_res_units = check_integer(
            self, "num_res_units", self.num_res_units, 0, 4
        )
        self.dropout = check_range(
            self, "dropout", self.dropout, 0.0, 1.0, high_open=True
        )

    @property
    def spatial_dims(self) -> int:
        """2 for images, 3 for volumes."""
        return len(self.in_shape) - 1

    @classmethod
    def preset(
        cls, name: str, in_shape: Sequence[int], **overrides: Any
    ) -> ModelConfig:
        """The architecture of a preset for images of ``in_shape``.

        Parameters
        ----------
        name : str
            A preset name (``tiny``, ``tutorial`` or ``paper``).
        in_shape : sequence of int
            ``(channels, *grid)`` of one image.
        **overrides
            Any field of :class:`ModelConfig`.

        Returns
        -------
        ModelConfig
            The validated configuration.
        """
        presets.check_preset(name)
        settings = {
            k: v for k, v in presets.TRAINING[name].items() if k in ARCHITECTURE_KEYS
        }
        settings.update(overrides)
        return cls(in_shape=tuple(in_shape), **settings)

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dictionary (for checkpoints and cache keys)."""
        return asdict(self)


class SimBACNN(nn.Module):
    """Five-block CNN in the spirit of the SimBA experiments (2D or 3D).

    Each block: 3x3(x3) convolution, batch normalisation, ReLU, 2x max pooling.
    Then global average pooling, dropout and one linear layer to a single logit.

    Parameters
    ----------
    in_shape : sequence of int
        ``(channels, *grid)`` of one image.
    channels : sequence of int, default (32, 64, 128, 256, 256)
        Output channels of each block.
    dropout : float, default 0.2
        Dropout before the linear layer.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        channels: Sequence[int] = (32, 64, 128, 256, 256),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        dims = len(in_shape) - 1
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        norm = nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d
        pool = nn.MaxPool3d if dims == 3 else nn.MaxPool2d
        gap = nn.AdaptiveAvgPool3d if dims == 3 else nn.AdaptiveAvgPool2d
        blocks = []
        previous = int(in_shape[0])
        for width in channels:
            blocks.append(
                nn.Sequential(
                    conv(previous, int(width), kernel_size=3, padding=1),
                    norm(int(width)),
                    nn.ReLU(inplace=False),
                    pool(2),
                )
            )
            previous = int(width)
        self.blocks = nn.Sequential(*blocks)
        self.pool = gap(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.final = nn.Linear(previous, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1)`` for images ``x`` of shape ``(N, C, *grid)``."""
        return self.final(self.dropout(self.flatten(self.pool(self.blocks(x)))))


def build_model(
    config: ModelConfig | str | None = None,
    in_shape: Sequence[int] | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a freshly initialised classifier.

    Parameters
    ----------
    config : ModelConfig or str, optional
        A configuration, or a preset name (default: the active preset).
    in_shape : sequence of int, optional
        ``(channels, *grid)``; required when ``config`` is a preset name.
    **overrides
        Fields of :class:`ModelConfig` that replace the preset's.

    Returns
    -------
    torch.nn.Module
        A network mapping ``(N, *in_shape)`` to logits ``(N, 1)``. Seed torch
        (:func:`faimi_tutorial.seed_everything`) first for repeatable weights.

    Raises
    ------
    ValueError
        If a preset name is given without ``in_shape``, or the configuration is invalid.
    """
    if config is None:
        config = presets.active_preset()
    if isinstance(config, str):
        if in_shape is None:
            raise ValueError(
                "in_shape=None: give the (channels, *grid) shape with a preset name"
            )
        config = ModelConfig.preset(config, in_shape, **overrides)
    elif overrides or in_shape is not None:
        settings = config.to_dict()
        settings.update(overrides)
        if in_shape is not None:
            settings["in_shape"] = tuple(in_shape)
        config = ModelConfig(**settings)
    if config.model == "simba_cnn":
        return SimBACNN(config.in_shape, config.channels, dropout=config.dropout)
    from monai.networks.nets import Classifier

    return Classifier(
        in_shape=config.in_shape,
        classes=1,
        channels=config.channels,
        strides=config.strides,
        num_res_units=config.num_res_units,
        dropout=config.dropout or None,
    )


def layer_names(model: nn.Module) -> list[str]:
    """Names of the model's feature blocks, input side first.

    These are the layers a probing analysis reads (through forward hooks on
    ``dict(model.named_modules())[name]``) and the default GradCAM target is the
    last of them.

    Parameters
    ----------
    model : torch.nn.Module
        A model from :func:`build_model` (or any MONAI ``Classifier``/``Regressor``).

    Returns
    -------
    list of str
        Module names, e.g. ``['net.layer_0', ..., 'net.layer_3']`` for a MONAI
        classifier or ``['blocks.0', ..., 'blocks.4']`` for :class:`SimBACNN`.

    Raises
    ------
    ValueError
        For a model whose blocks are not known.
    """
    if isinstance(model, SimBACNN):
        return [f"blocks.{i}" for i in range(len(model.blocks))]
    net = getattr(model, "net", None)
    if isinstance(net, nn.Sequential):
        return [f"net.{name}" for name, _ in net.named_children()]
    raise ValueError(
        f"model of type {type(model).__name__} has no known feature blocks; "
        "use a model from faimi_tutorial.models.networks.build_model"
    )


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's final :class:`torch.nn.Linear` layer (its classification head).

    Parameters
    ----------
    model : torch.nn.Module
        Any network whose last linear layer produces the logit.

    Returns
    -------
    torch.nn.Linear
        That layer.

    Raises
    ------
    ValueError
        If the model has no linear layer.
    """
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"model of type {type(model).__name__} has no nn.Linear layer")
    return linears[-1]


@dataclass
class _FeatureTap:
    """Forward pre-hook that keeps the input of the last linear layer."""

    features: torch.Tensor | None = None
    handle: Any = field(default=None, repr=False)

    def __call__(self, _module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self.features = inputs[0]


def forward_with_features(
    model: nn.Module, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the model and also return the features entering its last linear layer.

    The features keep their autograd graph, so a loss on them (for example the
    confusion loss of bias unlearning) trains the layers below.

    Parameters
    ----------
    model : torch.nn.Module
        A model with a final linear layer.
    x : torch.Tensor
        Input batch.

    Returns
    -------
    logits : torch.Tensor
        ``(N,)`` logits.
    features : torch.Tensor
        ``(N, F)`` penultimate features.
    """
    tap = _FeatureTap()
    handle = last_linear(model).register_forward_pre_hook(tap)
    try:
        logits = model(x)
    finally:
        handle.remove()
    assert tap.features is not None
    return logits.reshape(logits.shape[0], -1)[:, 0], tap.features.reshape(
        x.shape[0], -1
    )


def penultimate_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Features entering the last linear layer, without gradients.

    Parameters
    ----------
    model : torch.nn.Module
        A model with a final linear layer.
    x : torch.Tensor
        Input batch.

    Returns
    -------
    torch.Tensor
        ``(N, F)`` features.
    """
    with torch.no_grad():
        return forward_with_features(model, x)[1]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters.

    Parameters
    ----------
    model : torch.nn.Module
        Any model.

    Returns
    -------
    int
        Sum of the sizes of parameters that require gradients.
    """
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))
