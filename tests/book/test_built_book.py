"""Checks on the built HTML book (run by `make test` after the strict build)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.skipif(not (HTML / "index.html").exists(), reason="book not built")


def page(path: str) -> str:
    return (HTML / path).read_text(encoding="utf-8")


def test_index_exists():
    assert (HTML / "index.html").exists()


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_page_executed_with_figures_and_no_errors(nb):
    html = page(f"notebooks/{nb.stem}.html")
    assert "cell_output" in html, "the chapter was not executed"
    assert re.search(r'<img[^>]+src="[^"]*_images/[^"]+\.png"', html), "no figure on the page"
    # errors, warnings and progress bars in what the cells printed (the code itself may
    # name an exception, as the install cell's `except ImportError` does)
    outputs = "".join(str(div) for div in BeautifulSoup(html, "html.parser")
                      .select("div.cell_output"))
    assert outputs, "no cell outputs found on the page"
    for debris in ("Traceback (most recent call last)", "Error</span>", "Warning:", "it/s]"):
        assert debris not in outputs, f"{debris!r} in the chapter's outputs"
    assert "Traceback (most recent call last)" not in html


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_launch_buttons_point_to_the_notebook(nb):
    html = page(f"notebooks/{nb.stem}.html")
    assert f"colab.research.google.com/github/" in html
    assert f"/blob/main/notebooks/{nb.stem}.ipynb" in html


def test_execution_table_lists_every_chapter():
    html = page("book/exec_times.html")
    for nb in NOTEBOOKS:
        assert nb.stem in html


def test_bibliography_and_api_pages():
    assert "Stanley" in page("book/bibliography.html")
    assert "subgroup_report" in page("book/api.html")


def test_benchmarks_page_shows_the_recorded_results():
    html = page("book/benchmarks.html")
    assert "cell_output" in html, "the benchmarks page was not executed"
    results = ROOT / "bench" / "results"
    if (results / "generate.json").exists():
        assert "ratio_vs_monai" in html
    if (results / "chapters.json").exists():
        recorded = json.loads((results / "chapters.json").read_text())
        for chapter in recorded["chapters"]:
            assert chapter["chapter"] in html
    if not (results / "paper.json").exists():
        assert "has not been benchmarked on a GPU here yet" in html


EXECUTED = ROOT / "_build" / "jupyter_execute" / "notebooks"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_cell_carries_a_numbered_caption(nb):
    """A cell that outputs a figure outputs one, with a caption and a name in its metadata
    (myst-nb numbers it: "Figure 4.2"); the browser tests check the rendered numbers."""
    executed = json.loads((EXECUTED / nb.name).read_text(encoding="utf-8"))
    problems = []
    figures = 0
    for cell in executed["cells"]:
        if cell["cell_type"] != "code":
            continue
        images = sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))
        if not images:
            continue
        figures += images
        first = "".join(cell["source"]).splitlines()[:1]
        figure = cell["metadata"].get("mystnb", {}).get("figure", {})
        if images > 1:
            problems.append(f"{first}: {images} figures in one cell (one a cell)")
        if not str(figure.get("caption", "")).strip() or not figure.get("name"):
            problems.append(f"{first}: no mystnb.figure caption and name in the metadata")
    assert figures, f"{nb.name} draws no figure"
    assert not problems, f"{nb.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_code_links_to_the_api_reference(nb):
    """The package's names in a chapter's code cells link to the API reference."""
    soup = BeautifulSoup(page(f"notebooks/{nb.stem}.html"), "html.parser")
    links = {
        a["href"].split("#", 1)[1]
        for a in soup.select("div.cell_input a.sphinx-codeautolink-a")
        if "#" in a.get("href", "") and "api.html" in a["href"]
    }
    assert any(target.startswith("faimi_tutorial.") for target in links), (
        f"{nb.name}: no package name in the code links to book/api"
    )
