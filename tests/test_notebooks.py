"""The chapters' conventions: every notebook follows the same shape (see README)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

import importlib.util

import faimi_tutorial

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def load_runtimes():
    """bench/runtimes.py: the run-time sentence each chapter states, from the benchmark."""
    spec = importlib.util.spec_from_file_location("runtimes", ROOT / "bench" / "runtimes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUNTIMES = load_runtimes()


def toc_files(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(node["file"])
        if "root" in node:
            out.append(node["root"])
        for value in node.values():
            out += toc_files(value)
    elif isinstance(node, list):
        for item in node:
            out += toc_files(item)
    return out


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_chapters():
    assert NOTEBOOKS, "no notebooks in notebooks/"


def test_every_toc_entry_exists_and_every_notebook_is_listed():
    files = toc_files(TOC)
    for f in files:
        assert any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".ipynb")), f
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in files, f"{nb.name} is not in _toc.yml"


def test_chapter_names_are_numbered_in_order():
    numbers = [int(re.match(r"(\d\d)_", nb.name).group(1)) for nb in NOTEBOOKS]
    assert numbers == list(range(1, len(numbers) + 1))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
class TestChapter:
    def test_valid_and_outputs_cleared(self, path):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in code_cells(nb):
            assert cell.outputs == [], f"outputs left in {path.name}"
            assert cell.execution_count is None, f"execution count left in {path.name}"

    def test_opening_cell_has_goals_prerequisites_and_run_time(self, path):
        first = nbformat.read(path, as_version=4).cells[0]
        assert first.cell_type == "markdown"
        assert first.source.lstrip().startswith("# ")
        assert not re.match(r"#\s*\d", first.source.lstrip()), "no number in the title: _toc.yml numbers chapters"
        for heading in ("Learning goals", "Prerequisites", "Estimated run time"):
            assert heading in first.source, f"{heading!r} missing at the top of {path.name}"

    def test_run_time_comes_from_the_recorded_benchmark(self, path):
        """The stated run time is bench/results/chapters.json's, rounded up to minutes
        (`python bench/runtimes.py` rewrites it; `make bench` runs that)."""
        recorded = RUNTIMES.recorded_seconds()
        assert path.stem in recorded, f"{path.stem} has no time in bench/results/chapters.json"
        stated = RUNTIMES.stated_minutes(path)
        assert stated is not None, (
            f"{path.name}: the run time is not the sentence bench/runtimes.py writes"
        )
        expected = RUNTIMES.minutes(recorded[path.stem])
        assert stated == expected, (
            f"{path.name} states about {stated} min, the benchmark recorded "
            f"{recorded[path.stem]:.0f} s: run python bench/runtimes.py"
        )
        first = nbformat.read(path, as_version=4).cells[0].source
        assert len(re.findall(r"\bminutes?\b", first.split("**Estimated run time.**")[1]
                              .split("\n\n")[0])) == 1, (
            f"{path.name}: the run-time paragraph states one time, the recorded one"
        )

    def test_first_code_cells_install_import_and_about(self, path):
        cells = code_cells(nbformat.read(path, as_version=4))
        install, imports, about = cells[0].source, cells[1].source, cells[2].source
        assert "google.colab" not in install, "the install cell works wherever Jupyter runs"
        assert "%pip install" in install
        repo = CONFIG["repository"]["url"]
        assert f'REPO = "{repo}"' in install, "install from the configured repository"
        # pinned to this version's release tag (tag scheme v<version>, see CHANGELOG.md)
        assert f'RELEASE = "v{faimi_tutorial.__version__}"' in install
        extra = "[fl]" if "flwr" in install else ""
        assert f'"faimi-tutorial{extra} @ git+{{REPO}}@{{RELEASE}}"' in install
        assert "import faimi_tutorial as ft" in imports
        assert re.search(r"\bft\.about\(\)", about)

    @pytest.mark.parametrize("importable", [True, False])
    def test_install_cell_installs_only_when_the_import_fails(self, path, importable):
        from IPython.core.inputtransformer2 import TransformerManager

        source = code_cells(nbformat.read(path, as_version=4))[0].source
        python = TransformerManager().transform_cell(source)
        calls = []

        class Shell:
            def run_line_magic(self, name, line):
                calls.append((name, line))

        def fake_import(name, *args, **kwargs):
            if name in ("faimi_tutorial", "flwr") and not importable:
                raise ImportError(name)
            return __import__(name, *args, **kwargs)

        env = {"get_ipython": Shell, "__builtins__": {**__builtins__, "__import__": fake_import}
               if isinstance(__builtins__, dict) else {**vars(__builtins__),
                                                        "__import__": fake_import}}
        exec(compile(python, path.name, "exec"), env)
        if importable:
            assert calls == []
        else:
            assert len(calls) == 1 and calls[0][0] == "pip"
            assert "@{RELEASE}" in calls[0][1] and calls[0][1].startswith("install -q")

    def test_recap_and_exercises_with_hidden_executed_solutions(self, path):
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert "## Recap" in text and "## Exercises" in text
        start = next(
            i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## Exercises" in c.source
        )
        solutions = [
            c for c in nb.cells[start:]
            if c.cell_type == "code" and c.source.startswith("# Solution to exercise")
        ]
        assert solutions, f"no solution cells after the exercises in {path.name}"
        for c in solutions:
            assert "skip-execution" not in c.metadata.get("tags", []), "solutions are executed"
        n_exercises = len(re.findall(r"^\d+\. ", text[text.index("## Exercises"):], flags=re.M))
        assert len(solutions) >= n_exercises

    def test_solutions_collapsed_with_outputs_and_explained_in_markdown(self, path):
        """Each solution hides its code *and* output behind a titled toggle (``hide-cell``),
        and its explanation follows in a collapsed Markdown dropdown, not in code comments."""
        nb = nbformat.read(path, as_version=4)
        cells = nb.cells
        found = []
        for i, cell in enumerate(cells):
            match = re.match(r"# Solution to exercise (\d+)\n", cell.source)
            if cell.cell_type != "code" or not match:
                continue
            n = match.group(1)
            found.append(n)
            tags = cell.metadata.get("tags", [])
            where = f"{path.name}, solution to exercise {n}"
            assert "hide-cell" in tags, f"{where}: tag it hide-cell (hides code and output)"
            assert "hide-input" not in tags and "hide-output" not in tags, where
            prompts = cell.metadata.get("mystnb", {})
            for key in ("code_prompt_show", "code_prompt_hide"):
                assert prompts.get(key, "").startswith(f"Solution to exercise {n}:"), (
                    f"{where}: metadata mystnb.{key} must title the toggle"
                )
            body = cell.source.rstrip().split("\n")[1:]
            assert body and not body[-1].lstrip().startswith("#"), (
                f"{where}: the explanation belongs in the Markdown dropdown, not in comments"
            )
            after = cells[i + 1] if i + 1 < len(cells) else None
            assert after is not None and after.cell_type == "markdown", (
                f"{where}: no Markdown explanation right after the solution"
            )
            text = after.source.strip()
            assert re.match(rf":::{{dropdown}} Solution to exercise {n}\b", text), (
                f"{where}: the next cell must open ':::{{dropdown}} Solution to exercise {n}'"
            )
            assert text.endswith("\n:::") and len(text.splitlines()) >= 3, (
                f"{where}: the dropdown holds an explanation and is closed with ':::'"
            )
        assert found == sorted(set(found), key=int), f"{path.name}: solutions out of order"

    def test_no_machine_paths(self, path):
        raw = path.read_text()
        assert not re.search(r"/(work|root|home|tmp)/", raw), "absolute machine path in the notebook"


def test_colab_and_binder_buttons_are_configured():
    launch = CONFIG["launch_buttons"]
    assert launch["colab_url"].startswith("https://colab.research.google.com")
    assert launch["binderhub_url"].startswith("https://")
    assert CONFIG["repository"]["url"].startswith("https://github.com/")


def test_build_is_strict_and_executes_everything():
    assert CONFIG["execute"]["execute_notebooks"] == "force"
    assert CONFIG["execute"]["timeout"] > 0
    assert CONFIG["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert CONFIG["only_build_toc_files"] is True
    makefile = (ROOT / "Makefile").read_text()
    assert "--warningiserror" in makefile and "--nitpick" in makefile
