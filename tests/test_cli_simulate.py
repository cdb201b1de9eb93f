"""Tests of the ``faimi simulate`` command."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch

from faimi_tutorial import cli, datasets, simulate


def run(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse exits on --help and parse errors
        code = stop.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_simulate_is_registered():
    assert "simulate" in cli.COMMANDS


def test_help_lists_every_field(capsys):
    code, out, _ = run(["simulate", "--help"], capsys)
    assert code == 0
    for f in dataclasses.fields(simulate.SimulationConfig):
        assert "--" + f.name.replace("_", "-") in out
    assert "--out" in out and "--overwrite" in out
    assert "P(bias group | disease)" in out


def test_writes_the_same_dataset_as_the_api(tmp_path, capsys):
    out_dir = tmp_path / "ds"
    code, out, err = run(["simulate", "--preset", "tiny", "--bias-prevalence", "0.8", "0.2",
                          "--n-subjects", "10", "--seed", "3", "--bias-kind", "both",
                          "--shape", "24", "28", "24", "--out", str(out_dir), "--quiet"], capsys)
    assert code == 0, err
    cohort = datasets.read_dataset(out_dir)
    cfg = simulate.SimulationConfig.preset("tiny", bias_prevalence=(0.8, 0.2), n_subjects=10,
                                           seed=3, bias_kind="both")
    assert cohort.config == cfg
    assert torch.equal(cohort.images, simulate.generate(cfg, progress=False).images)
    # and --config reproduces it from the dataset's own description
    again = tmp_path / "again"
    code, _, err = run(["simulate", "--config", str(out_dir / "dataset_description.json"),
                        "--out", str(again), "--quiet"], capsys)
    assert code == 0, err

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    for rel in ("participants.tsv", datasets.image_path("sub-0005"), "README.md"):
        assert digest(out_dir / rel) == digest(again / rel)


@pytest.mark.parametrize(
    "args, option",
    [
        (["--bias-prevalence", "1.5", "0.3"], "--bias-prevalence"),
        (["--n-subjects", "abc"], "--n-subjects"),
        (["--bias-kind", "colour"], "--bias-kind"),
        (["--noise-sd", "-1"], "--noise-sd"),
        (["--preset", "huge"], "--preset"),
        (["--disease-region", "nowhere"], "--disease-region"),
        (["--dims", "5"], "--dims"),
    ],
)
def test_bad_value_one_line_and_nothing_written(args, option, tmp_path, capsys):
    out_dir = tmp_path / "never"
    code, out, err = run(["simulate", "--preset", "tiny", *args, "--out", str(out_dir)]
                         if "--preset" not in args else
                         ["simulate", *args, "--out", str(out_dir)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert option in lines[0] and "allowed" in lines[0]
    value = args[1]
    assert value in lines[0]
    assert not out_dir.exists() and list(tmp_path.iterdir()) == []


def test_wrong_number_of_values_is_one_line(tmp_path, capsys):
    code, _, err = run(["simulate", "--bias-prevalence", "0.5", "--out", str(tmp_path / "x")],
                       capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--bias-prevalence" in err


def test_existing_folder_needs_overwrite(tmp_path, capsys):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    args = ["simulate", "--preset", "tiny", "--n-subjects", "8", "--out", str(target), "--quiet"]
    code, _, err = run(args, capsys)
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (target / "notes.txt").exists()
    code, _, err = run(args + ["--overwrite"], capsys)
    assert code == 0, err
    assert not (target / "notes.txt").exists() and (target / "participants.tsv").exists()
