"""The install paths readers take: conda, Binder, releases and the GitHub workflow."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

import faimi_tutorial

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
TEST_TOOLS = ("pytest", "hypothesis", "playwright", "bids-validator")


def _conda(path: Path) -> tuple[list[str], list[str]]:
    env = yaml.safe_load(path.read_text())
    assert env["channels"][0] == "conda-forge"
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = [p for d in env["dependencies"] if isinstance(d, dict) for p in d.get("pip", [])]
    return conda, pip


def test_notebooks_extra_brings_jupyterlab():
    assert any(r.startswith("jupyterlab") for r in EXTRAS["notebooks"])
    assert any(r.startswith("flwr[simulation]==") for r in EXTRAS["fl"])
    assert any(r.startswith("bids-validator-deno") for r in EXTRAS["test"])


def test_environment_yml_is_complete_and_cpu_only():
    conda, pip = _conda(ROOT / "environment.yml")
    torch = [d for d in conda if d.startswith("pytorch")]
    assert torch and "cpu" in torch[0], "CPU pytorch from conda-forge"
    assert not any(p.startswith("torch") for p in pip), "torch never from pip here"
    assert any(d.startswith("jupyterlab") for d in conda)
    assert pip == ["-e .[notebooks,fl]"]
    text = " ".join(conda + pip)
    assert not any(tool in text for tool in TEST_TOOLS) and "test]" not in text


def test_binder_configuration():
    conda, _ = _conda(ROOT / "binder" / "environment.yml")
    assert any(d.startswith("pytorch") and "cpu" in d for d in conda)
    assert any(d.startswith("jupyterlab") for d in conda)
    post = ROOT / "binder" / "postBuild"
    assert post.stat().st_mode & 0o111, "postBuild must be executable"
    assert '".[notebooks,fl]"' in post.read_text()
    assert (ROOT / "binder" / "start").stat().st_mode & 0o111


def test_release_files_agree_on_the_version():
    version = faimi_tutorial.__version__
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["version"] == version and citation["cff-version"]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{version}]" in changelog and "`v<version>`" in changelog


def test_dependency_floors_keep_a_colab_environment():
    deps = {re.split(r"[<>=!\[ ]", d, maxsplit=1)[0]: d for d in PYPROJECT["project"]["dependencies"]}
    assert "nilearn" not in deps, "the template ships in the package"
    assert deps["ipywidgets"] == "ipywidgets>=7.6"
    assert deps["torch"] == "torch>=2.8"  # what monai 1.6 needs
    assert not any("<" in d or "==" in d for d in deps.values()), "no caps on core packages"


def test_workflow_permissions_cache_cpu_torch_and_pages():
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    assert flow["permissions"] == {}
    test, deploy = flow["jobs"]["test"], flow["jobs"]["deploy"]
    assert test["permissions"] == {"contents": "read"}
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["concurrency"]["cancel-in-progress"] is False
    assert "download.pytorch.org/whl/cpu" in test["env"]["PIP_EXTRA_INDEX_URL"]
    assert test["env"]["CI"] == "true"
    steps = test["steps"]
    assert any(s.get("with", {}).get("cache") == "pip" for s in steps)
    assert any(s.get("uses", "").startswith("actions/cache") and s["with"]["path"] == ".venv"
               for s in steps)
    # the local build keeps working offline: PyTorch's index is named in the workflow only
    assert "download.pytorch.org" not in (ROOT / "Makefile").read_text()
    assert "sudo" in (ROOT / "Makefile").read_text()
