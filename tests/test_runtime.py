"""Tests of the runtime helpers, the presets registry and the `faimi` command."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import faimi_tutorial as ft
from faimi_tutorial import cli, presets, runtime


def test_choose_device_defaults_to_cuda_or_cpu(monkeypatch):
    monkeypatch.delenv("FAIMI_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert ft.choose_device().type == expected
    assert ft.choose_device("cpu").type == "cpu"
    monkeypatch.setenv("FAIMI_DEVICE", "cpu")
    assert ft.choose_device().type == "cpu"


def test_seed_everything_repeats_numpy_and_torch():
    ft.seed_everything(3)
    a = (np.random.rand(3), torch.rand(3))
    rng = ft.seed_everything(3)
    b = (np.random.rand(3), torch.rand(3))
    np.testing.assert_array_equal(a[0], b[0])
    assert torch.equal(a[1], b[1])
    assert isinstance(rng, np.random.Generator)
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="seed"):
            ft.seed_everything(bad)


def test_versions_and_about(capsys, monkeypatch):
    monkeypatch.setenv("FAIMI_PRESET", "tiny")
    v = runtime.versions()
    assert v["faimi-tutorial"] == ft.__version__
    assert v["torch"].startswith(torch.__version__.split("+")[0])
    assert ft.about() is None
    out = capsys.readouterr().out
    for word in ("torch", "monai", "fairlearn", "device", "preset", "tiny"):
        assert word in out
    text = ft.about(print_it=False)
    assert text.strip() == out.strip()


def test_presets_registry(monkeypatch):
    assert presets.PRESET_NAMES == ("tiny", "tutorial", "paper")
    for name in presets.PRESET_NAMES:
        assert name in presets.DESCRIPTIONS and name in presets.SIMULATION and name in presets.TRAINING
    assert presets.check_preset("tiny") == "tiny"
    with pytest.raises(ValueError, match="preset='huge'.*tiny, tutorial, paper"):
        presets.check_preset("huge")
    monkeypatch.delenv("FAIMI_PRESET", raising=False)
    assert presets.active_preset() == "tutorial"
    monkeypatch.setenv("FAIMI_PRESET", "paper")
    assert presets.active_preset() == "paper"
    monkeypatch.setenv("FAIMI_PRESET", "nope")
    with pytest.raises(ValueError, match="nope"):
        presets.active_preset()


def test_lazy_submodules():
    assert ft.metrics.subgroup_report is not None
    with pytest.raises(AttributeError):
        ft.not_a_module  # noqa: B018


def test_cli_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert ft.__version__ in capsys.readouterr().out
    assert cli.main([]) == 0
    assert "usage: faimi" in capsys.readouterr().out
    assert cli.main(["about"]) == 0
    assert "preset" in capsys.readouterr().out


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "faimi_tutorial.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "faimi" in out and "--version" in out


def test_machine_facts():
    import faimi_tutorial as ft

    facts = ft.runtime.machine()
    assert facts["cpus"] >= 1 and facts["torch_threads"] >= 1
    assert facts["device"] == str(ft.choose_device())
    assert (facts["gpu"] is None) == (not facts["device"].startswith("cuda"))
    assert facts["versions"]["faimi-tutorial"] == ft.__version__
