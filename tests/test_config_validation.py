"""The shared field checks and every configuration dataclass that uses them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faimi_tutorial import anatomy, federated, flower_app, models, presets, probing
from faimi_tutorial import representation, simulate, sweeps, training
from faimi_tutorial.validation import (
    ConfigError,
    check_choice,
    check_flag,
    check_integer,
    check_integers,
    check_numbers,
    check_positive_int,
    check_probability,
    check_range,
    check_text,
    config_error,
)


class Owner:
    """A stand-in configuration: messages are prefixed with its class name."""


def one_line(err: pytest.ExceptionInfo, *parts: str) -> None:
    text = str(err.value)
    assert "\n" not in text
    for part in parts:
        assert part in text, (part, text)


# ------------------------------------------------------------------ the helpers


def test_config_error_names_config_field_value_and_range():
    err = config_error(Owner(), "lr", -1, "a finite number > 0")
    assert isinstance(err, ValueError) and isinstance(err, ConfigError)
    assert str(err) == "Owner.lr=-1 is invalid; allowed: a finite number > 0"
    assert (err.config, err.field, err.value) == ("Owner", "lr", -1)
    assert err.allowed == "a finite number > 0"
    assert str(config_error("Named", "x", 1, "y")).startswith("Named.x=1")
    assert str(config_error(Owner, "x", 1, "y")).startswith("Owner.x=1")
    assert str(ConfigError("x", 1, "y")) == "x=1 is invalid; allowed: y"


def test_check_choice():
    assert check_choice(Owner(), "kind", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError) as err:
        check_choice(Owner(), "kind", "c", ("a", "b"))
    one_line(err, "Owner.kind='c'", "allowed: a, b")
    for bad in (True, ["a"], None):
        with pytest.raises(ValueError):
            check_choice(Owner(), "kind", bad, ("a", "b", 1))


@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.25), np.int64(2)])
def test_check_range_accepts_numbers_and_returns_floats(value):
    out = check_range(Owner(), "x", value, 0, 2)
    assert isinstance(out, float) and out == float(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, np.bool_(True),
                                   "1", None, [1.0], -0.1, 2.1])
def test_check_range_refuses(value):
    with pytest.raises(ValueError) as err:
        check_range(Owner(), "x", value, 0, 2)
    one_line(err, "Owner.x=", "allowed: a finite number in [0, 2]")


def test_check_range_open_bounds_optional_and_half_lines():
    with pytest.raises(ValueError, match=r"allowed: a finite number in \(0, 1\]"):
        check_range(Owner(), "x", 0, 0, 1, low_open=True)
    with pytest.raises(ValueError, match=r"allowed: a finite number in \[0, 1\)"):
        check_range(Owner(), "x", 1, 0, 1, high_open=True)
    with pytest.raises(ValueError, match="allowed: a finite number > 0"):
        check_range(Owner(), "x", 0, 0, low_open=True)
    with pytest.raises(ValueError, match="allowed: a finite number <= 3"):
        check_range(Owner(), "x", 4, hi=3)
    assert check_range(Owner(), "x", None, 0, 1, optional=True) is None
    with pytest.raises(ValueError, match="allowed: None or a finite number"):
        check_range(Owner(), "x", -1, 0, 1, optional=True)
    with pytest.raises(ValueError):
        check_range(Owner(), "x", None, 0, 1)


def test_check_probability():
    assert check_probability(Owner(), "p", 1) == 1.0
    for bad, kw in [(1.5, {}), (-0.1, {}), (0.0, {"low_open": True}),
                    (1.0, {"high_open": True})]:
        with pytest.raises(ValueError, match="Owner.p="):
            check_probability(Owner(), "p", bad, **kw)
    assert check_probability(Owner(), "p", None, optional=True) is None


def test_check_integer_and_positive_int():
    assert check_integer(Owner(), "n", np.int64(3), 0, 5) == 3
    assert type(check_integer(Owner(), "n", np.int64(3), 0, 5)) is int
    assert check_integer(Owner(), "n", 3.0, 0, 5, whole_floats=True) == 3
    assert check_integer(Owner(), "n", None, optional=True) is None
    for bad in (3.0, 3.5, True, "3", None, 6, -1):
        with pytest.raises(ValueError) as err:
            check_integer(Owner(), "n", bad, 0, 5)
        one_line(err, "Owner.n=", "allowed: an integer in [0, 5]")
    with pytest.raises(ValueError, match="allowed: an integer >= 1"):
        check_positive_int(Owner(), "epochs", 0)
    with pytest.raises(ValueError, match="allowed: an integer <= 2"):
        check_integer(Owner(), "n", 3, hi=2)
    assert check_positive_int(Owner(), "patience", None, optional=True) is None
    assert check_positive_int(Owner(), "epochs", 7) == 7


def test_check_numbers():
    assert check_numbers(Owner(), "pair", [0.2, 1], 2, 0, 1) == (0.2, 1.0)
    for bad in ("01", (0.5,), (0.5, 0.5, 0.5), (0.5, math.nan), (0.5, 2.0), (0.5, True),
                0.5, None):
        with pytest.raises(ValueError) as err:
            check_numbers(Owner(), "pair", bad, 2, 0, 1)
        one_line(err, "Owner.pair=", "allowed: 2 finite numbers in [0, 1]")
    with pytest.raises(ValueError, match="allowed: 3 finite numbers >= 0"):
        check_numbers(Owner(), "t", (1, -1, 1), 3, 0)


def test_check_integers():
    assert check_integers(Owner(), "c", [4, np.int64(8)]) == (4, 8)
    assert check_integers(Owner(), "s", (8.0, 9.0), 8, 512, whole_floats=True) == (8, 9)
    for bad, kw in [((), {}), ((0, 4), {}), ((4, 2.5), {}), ("48", {}),
                    ((4, 4), {"n": 3}), ((600,), {"hi": 512})]:
        with pytest.raises(ValueError, match="Owner.c="):
            check_integers(Owner(), "c", bad, **kw)
    with pytest.raises(ValueError, match=r"allowed: 3 integers in \[8, 512\]"):
        check_integers(Owner(), "c", (8, 8), 8, 512, n=3)


def test_check_text_and_flag():
    assert check_text(Owner(), "name", "a") == "a"
    assert check_text(Owner(), "dir", "", empty=True) == ""
    for bad in ("", "  ", None, 3):
        with pytest.raises(ValueError, match="allowed: a non-empty string"):
            check_text(Owner(), "name", bad)
    with pytest.raises(ValueError, match="allowed: a string"):
        check_text(Owner(), "dir", 3, empty=True)
    assert check_flag(Owner(), "f", np.bool_(False)) is False
    for bad in (0, 1, "True", None):
        with pytest.raises(ValueError, match="allowed: True or False"):
            check_flag(Owner(), "f", bad)


# ------------------------------------------------------------------ every configuration

#: (constructor, bad field, bad value, words the message must hold)
SIM = simulate.SimulationConfig.preset
TRAIN = training.TrainConfig.preset
FED = federated.FedConfig.preset
CASES = [
    (lambda **kw: SIM("tiny", **kw), "noise_sd", 0.9, "a finite number in [0, 0.5]"),
    (lambda **kw: SIM("tiny", **kw), "bias_kind", "x",
     "morphological, intensity, both"),
    (lambda **kw: SIM("tiny", **kw), "split", (0.5, 0.5, 0.5),
     "three positive fractions summing to 1"),
    (lambda **kw: TRAIN("tiny", **kw), "lr", 0, "a finite number in (0, 10]"),
    (lambda **kw: TRAIN("tiny", **kw), "patience", 0, "None or an integer >= 1"),
    (lambda **kw: TRAIN("tiny", **kw), "mitigation", "magic", "reweighing"),
    (lambda **kw: models.ModelConfig(**kw), "dropout", 1.0,
     "a finite number in [0, 1)"),
    (lambda **kw: models.ModelConfig(**kw), "channels", (), "integers >= 1"),
    (lambda **kw: FED("tiny", **kw), "rounds", 0, "an integer >= 1"),
    (lambda **kw: FED("tiny", **kw), "proximal_mu", -1, "a finite number >= 0"),
    (lambda **kw: FED("tiny", **kw), "groupdro_eta", 0.0, "a finite number > 0"),
    (lambda **kw: FED("tiny", **kw), "mitigation", "magic", "reweighing"),
    (lambda **kw: federated.Scanner(**kw), "contrast", 0.0,
     "a finite number in (0, 4]"),
    (lambda **kw: federated.SiteSpec(**{"name": "s", "n_train": 4, **kw}), "prevalence",
     2, "a finite number in [0, 1]"),
    (lambda **kw: flower_app.FlowerSettings(**kw), "strategy", "fedsgd",
     "fedavg, fedprox"),
    (lambda **kw: flower_app.FlowerSettings(**kw), "mitigation", "magic", "groupdro"),
    (lambda **kw: flower_app.FlowerSettings(**kw), "num_sites", 27,
     "an integer in [1, 26]"),
    (lambda **kw: probing.ProbeConfig(**kw), "n_folds", 1, "an integer >= 2"),
    (lambda **kw: probing.ProbeConfig(**kw), "standardize", 1, "True or False"),
    (lambda **kw: representation.CompositionConfig(**kw), "share", 1.5,
     "a finite number in [0, 1]"),
    (lambda **kw: sweeps.Experiment(**kw), "threshold", 1.0,
     "a finite number in (0, 1)"),
    (lambda **kw: sweeps.Experiment(**kw), "preset", "huge", "tiny, tutorial, paper"),
    (lambda **kw: anatomy.Grid(**{"shape": (8, 8), "spacing": 2.0,
                                  "origin": (0, 0, 0), **kw}),
     "spacing", 30.0, "a finite number in [0.5, 20]"),
    (lambda **kw: anatomy.Region(**{"name": "r", "centre_mm": (0, 0, 0),
                                    "radius_mm": 5.0, **kw}),
     "radius_mm", math.nan, "a finite number in [2, 60]"),
]


@pytest.mark.parametrize("make, field, value, allowed", CASES,
                         ids=[f"{c[1]}={c[2]!r}" for c in CASES])
def test_every_config_names_itself_the_field_the_value_and_the_range(make, field, value,
                                                                     allowed):
    with pytest.raises(ValueError) as err:
        make(**{field: value})
    text = str(err.value)
    assert "\n" not in text
    assert f".{field}={value!r} is invalid; allowed: " in text, text
    assert allowed in text, text
    assert text.split(".")[0] in {
        "SimulationConfig", "TrainConfig", "ModelConfig", "FedConfig", "Scanner",
        "SiteSpec", "FlowerSettings", "ProbeConfig", "CompositionConfig", "Experiment",
        "Grid", "Region"}


def test_valid_defaults_and_presets_construct():
    for name in presets.PRESET_NAMES:
        simulate.SimulationConfig.preset(name)
        training.TrainConfig.preset(name, dims=3)
        federated.FedConfig.preset(name)
    models.ModelConfig()
    federated.Scanner()
    flower_app.FlowerSettings()
    probing.ProbeConfig()
    representation.CompositionConfig()
    sweeps.Experiment(preset="tiny")


def test_checked_numbers_keep_their_type_in_cache_keys():
    # an int learning rate stays an int, so cache keys of existing runs do not change
    config = training.TrainConfig.preset("tiny", weight_decay=0)
    assert config.to_dict()["weight_decay"] == 0
    assert isinstance(config.weight_decay, int)
    assert federated.FedConfig.preset("tiny", lr=1).lr == 1


def test_preset_tables_live_in_presets():
    assert sweeps.SHORTCUT_SETTINGS is presets.SHORTCUT
    for name in presets.PRESET_NAMES:
        cfg = federated.FedConfig.preset(name)
        for key, value in presets.FEDERATED[name].items():
            assert getattr(cfg, key) == value
        assert cfg.weight_decay == presets.TRAINING[name]["weight_decay"]
    assert presets.FEDERATED["paper"]["model"] == presets.TRAINING["paper"]["model"]
