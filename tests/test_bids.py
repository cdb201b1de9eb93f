"""A dataset written by ``faimi simulate`` is valid BIDS (the official validator).

The validator is ``bids-validator-deno`` from PyPI (the ``test`` extra); it runs
offline. ``-r`` also validates the derivative dataset that holds the twins.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faimi_tutorial import cli, datasets


def _validator() -> str | None:
    here = Path(sys.executable).parent / "bids-validator-deno"
    return str(here) if here.is_file() else shutil.which("bids-validator-deno")


VALIDATOR = _validator()
needs_validator = pytest.mark.skipif(
    VALIDATOR is None and not os.environ.get("CI"),
    reason="bids-validator-deno is not installed (pip install -e .[test])")


def _issues(folder: Path) -> tuple[int, list[dict]]:
    """Exit status and every issue the validator reports (raw and derivative datasets)."""
    assert VALIDATOR is not None, "bids-validator-deno is not installed"
    done = subprocess.run([VALIDATOR, "-r", "--format", "json", str(folder)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1"})
    report = json.loads(done.stdout)
    issues = list(report["issues"]["issues"])
    for derivative in report.get("derivativesSummary", {}).values():
        issues += derivative["issues"]["issues"]
    return done.returncode, issues


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    out = tmp_path_factory.mktemp("bids") / "ds"
    code = cli.main(["simulate", "--preset", "tiny", "--n-subjects", "8", "--seed", "2",
                     "--out", str(out), "--quiet"])
    assert code == 0
    return out


@needs_validator
def test_simulated_dataset_passes_the_bids_validator(simulated):
    code, issues = _issues(simulated)
    errors = [f"{i['code']} {i.get('location', '')}" for i in issues
              if i["severity"] == "error"]
    assert errors == [], errors
    assert code == 0
    codes = {i["code"] for i in issues}
    assert "README_FILE_MISSING" not in codes and "NO_AUTHORS" not in codes


@needs_validator
def test_the_validator_catches_a_twin_beside_the_image(simulated, tmp_path):
    # the 0.1 layout (twin in the raw dataset) is what the validator rejected
    old = tmp_path / "old"
    shutil.copytree(simulated, old)
    twin = datasets.image_path("sub-0001", twin=True)
    (old / twin).rename(old / "sub-0001" / "anat" / Path(twin).name)
    _, issues = _issues(old)
    assert any(i["severity"] == "error" for i in issues)


def test_layout_twins_in_a_derivative_dataset(simulated):
    twin = datasets.image_path("sub-0003", twin=True)
    assert twin.startswith(datasets.TWIN_FOLDER + "/sub-0003/anat/")
    assert (simulated / twin).is_file()
    described = json.loads((simulated / datasets.TWIN_FOLDER /
                            "dataset_description.json").read_text())
    assert described["DatasetType"] == "derivative" and described["GeneratedBy"]
    assert (simulated / datasets.DATASHEET).read_text().startswith("# Datasheet")
    assert (simulated / ".bidsignore").read_text().split() == [datasets.CHECKSUMS]
    raw = json.loads((simulated / "dataset_description.json").read_text())
    assert raw["Authors"] and raw["DatasetType"] == "raw"


def test_read_dataset_reads_the_old_layout(simulated, tmp_path):
    # version 0.1 wrote each twin beside its image
    new = datasets.read_dataset(simulated)
    old = tmp_path / "old"
    shutil.copytree(simulated, old)
    shutil.rmtree(old / "derivatives")
    for sid in new.meta["subject_id"]:
        twin = datasets.image_path(sid, twin=True)
        shutil.copy(simulated / twin, old / sid / "anat" / Path(twin).name)
    tsv = old / "participants.tsv"
    tsv.write_text(tsv.read_text().replace(datasets.TWIN_FOLDER + "/", ""))
    files = sorted(p for p in old.rglob("*") if p.is_file() and p.name != datasets.CHECKSUMS)
    (old / datasets.CHECKSUMS).write_text("".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(old).as_posix()}\n"
        for p in files))
    again = datasets.read_dataset(old)
    assert np.array_equal(again.twins.numpy(), new.twins.numpy())
    assert np.array_equal(again.images.numpy(), new.images.numpy())
