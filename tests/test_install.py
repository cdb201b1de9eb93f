"""The package installs the way readers install it (marked ``install``: slow, run by make test).

* against a Colab-like environment (tests/colab-constraints.txt) without upgrading numpy,
  pandas, scikit-learn or ipywidgets;
* as a built wheel with the Flower extra into a clean virtual environment, where the
  command works, the template and recorded results are there, and a chapter executes
  from a folder outside the repository.

Only the configured package index is used (pip's own configuration); nothing else is
downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "tests" / "colab-constraints.txt"
TORCH = "torch==2.13.0"  # the CPU build the Makefile installs (a Colab keeps its own)

pytestmark = pytest.mark.install


def _pip(python: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert done.returncode == 0, f"pip {' '.join(args)} failed:\n{done.stdout[-3000:]}" \
                                 f"\n{done.stderr[-3000:]}"
    return done


def _venv(folder: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    return folder / "bin" / "python"


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_colab_like_environment_keeps_its_packages(tmp_path):
    pins = _pins()
    assert {"numpy", "pandas", "scikit-learn", "ipywidgets"} <= set(pins)
    python = _venv(tmp_path / "venv")
    report = tmp_path / "report.json"
    # a failed resolution (any of the pinned packages would have to change) fails here
    _pip(python, "install", "--dry-run", "--ignore-installed", "--report", str(report),
         "-c", str(CONSTRAINTS), TORCH, f"{ROOT}[fl]")
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    for name, version in pins.items():
        assert chosen[name] == version, f"{name} would change to {chosen[name]}"
    assert "nilearn" not in chosen


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A clean venv with the built wheel and its Flower extra (not editable)."""
    tmp = tmp_path_factory.mktemp("install")
    dist = tmp / "dist"
    _pip(Path(sys.executable), "wheel", "--no-deps", "-w", str(dist), str(ROOT))
    wheel = next(dist.glob("faimi_tutorial-*.whl"))
    python = _venv(tmp / "venv")
    _pip(python, "install", TORCH)
    _pip(python, "install", f"{wheel}[fl]", "nbclient>=0.9", "ipykernel>=6.0")
    return python, tmp


def _run(python: Path, code: str, cwd: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          cwd=cwd, timeout=900, env={**clean, **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_wheel_with_flower_in_a_clean_venv(installed):
    python, tmp = installed
    out = _run(python, (
        "import json, faimi_tutorial, flwr\n"
        "from faimi_tutorial import anatomy, results\n"
        "print(json.dumps({'version': faimi_tutorial.__version__,"
        " 'file': faimi_tutorial.__file__, 'results': str(results.results_dir()),"
        " 'available': results.available(),"
        " 'template': str(anatomy.template_files()['t1'])}))\n"), cwd=tmp)
    info = json.loads(out)
    site = Path(info["file"]).parent
    assert ROOT not in Path(info["file"]).parents, "not the checkout: a real install"
    assert Path(info["results"]) == site / "_results"
    assert info["available"] == sorted(p.name for p in (ROOT / "results").iterdir()
                                       if p.suffix in (".csv", ".json"))
    assert Path(info["template"]).parent == site / "data" / "mni152"
    faimi = python.parent / "faimi"
    done = subprocess.run([str(faimi), "--version"], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == f"faimi-tutorial {info['version']}"


def test_a_chapter_executes_outside_the_repository(installed):
    python, tmp = installed
    work = tmp / "reader"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / "01_measuring_fairness.ipynb", work)
    out = _run(python, (
        "import nbformat, nbclient\n"
        "nb = nbformat.read('01_measuring_fairness.ipynb', as_version=4)\n"
        "nbclient.NotebookClient(nb, timeout=900, kernel_name='python3',"
        " resources={'metadata': {'path': '.'}}).execute()\n"
        "text = ''.join(o.get('text', '') for c in nb.cells if c.cell_type == 'code'"
        " for o in c.outputs)\n"
        "print('faimi-tutorial' in text, len(nb.cells))\n"), cwd=work,
        FAIMI_PRESET="tiny", JUPYTER_PATH=str(python.parent.parent / "share" / "jupyter"),
        JUPYTER_DATA_DIR=str(tmp / "jupyter-data"), MPLBACKEND="Agg")
    assert out.split()[0] == "True", out
