"""Tests of faimi_tutorial.models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from faimi_tutorial import models, presets, seed_everything


@pytest.mark.parametrize("in_shape", [(1, 32, 32), (1, 16, 20, 16)])
def test_build_model_tiny_outputs_one_logit_in_2d_and_3d(in_shape):
    model = models.build_model("tiny", in_shape=in_shape)
    out = model(torch.rand(3, *in_shape))
    assert out.shape == (3, 1)


def test_build_model_chooses_architecture_by_preset():
    from monai.networks.nets import Classifier

    assert isinstance(models.build_model("tutorial", in_shape=(1, 64, 64)), Classifier)
    paper = models.build_model("paper", in_shape=(1, 64, 64))
    assert isinstance(paper, models.SimBACNN)
    assert len(paper.blocks) == 5
    assert paper(torch.rand(2, 1, 64, 64)).shape == (2, 1)


def test_build_model_overrides_and_config_object():
    cfg = models.ModelConfig(model="classifier", in_shape=(1, 16, 16), channels=(4, 8), strides=(2, 2))
    model = models.build_model(cfg, channels=(2, 4))
    assert models.layer_names(model) == ["net.layer_0", "net.layer_1"]
    assert model(torch.rand(1, 1, 16, 16)).shape == (1, 1)


def test_build_model_needs_in_shape_with_a_preset_name():
    with pytest.raises(ValueError, match="in_shape"):
        models.build_model("tiny")


def test_same_seed_gives_same_weights():
    seed_everything(3)
    a = models.build_model("tiny", in_shape=(1, 16, 16))
    seed_everything(3)
    b = models.build_model("tiny", in_shape=(1, 16, 16))
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)


@pytest.mark.parametrize(
    "field, value",
    [
        ("model", "resnet"),
        ("in_shape", (1, 16)),
        ("channels", ()),
        ("strides", (2,)),
        ("num_res_units", 9),
        ("dropout", 1.0),
    ],
)
def test_model_config_rejects_invalid_values_naming_the_field(field, value):
    kwargs = {"in_shape": (1, 16, 16), "channels": (4, 8), "strides": (2, 2), field: value}
    with pytest.raises(ValueError, match=field):
        models.ModelConfig(**kwargs)


def test_simba_cnn_rejects_too_small_images():
    with pytest.raises(ValueError, match="in_shape"):
        models.ModelConfig(model="simba_cnn", in_shape=(1, 16, 16), channels=(4, 4, 4, 4, 4))


def test_model_config_preset_reads_training_presets():
    cfg = models.ModelConfig.preset("paper", in_shape=(1, 64, 64))
    assert cfg.model == presets.TRAINING["paper"]["model"] == "simba_cnn"
    assert cfg.spatial_dims == 2
    assert cfg.to_dict()["channels"] == tuple(presets.TRAINING["paper"]["channels"])


def test_layer_names_exist_in_the_model_and_are_ordered():
    for name, shape in [("tutorial", (1, 64, 64)), ("paper", (1, 32, 32, 32))]:
        model = models.build_model(name, in_shape=shape)
        names = models.layer_names(model)
        modules = dict(model.named_modules())
        assert all(n in modules for n in names)
        assert len(names) == len(presets.TRAINING[name]["channels"])


def test_layer_names_rejects_unknown_models():
    with pytest.raises(ValueError, match="feature blocks"):
        models.layer_names(nn.Linear(2, 1))


def test_forward_with_features_matches_model_and_keeps_gradients():
    model = models.build_model("tiny", in_shape=(1, 16, 16))
    x = torch.rand(4, 1, 16, 16)
    logits, feats = models.forward_with_features(model, x)
    assert torch.allclose(logits, model(x)[:, 0])
    head = models.last_linear(model)
    assert feats.shape == (4, head.in_features)
    assert torch.allclose(head(feats)[:, 0], logits, atol=1e-6)
    feats.sum().backward()
    assert any(p.grad is not None for p in model.parameters())
    assert not models.penultimate_features(model, x).requires_grad


def test_last_linear_and_count_parameters():
    model = models.build_model("tiny", in_shape=(1, 16, 16))
    assert models.last_linear(model).out_features == 1
    assert models.count_parameters(model) == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="nn.Linear"):
        models.last_linear(nn.Conv2d(1, 1, 3))
