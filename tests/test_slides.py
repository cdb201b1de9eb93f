"""`make slides` (scripts/make_slides.py) on a small notebook with known slide tags:
one deck per input, nothing loaded from other hosts, every asset there, the expected
slides."""

from __future__ import annotations

import html.parser
import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

pytest.importorskip(
    "nbconvert", reason="nbconvert is needed for the slides: pip install nbconvert"
)

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location(
    "make_slides", ROOT / "scripts" / "make_slides.py")
make_slides = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(make_slides)

#: A 1x1 PNG, the "figure" of the fixture.
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAE"
       "hQGAhKmMIQAAAABJRU5ErkJggg==")


def figure_output():
    return new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})


def fixture_notebook():
    """Five slides: the title; section A with a figure sub-slide; section B (a heading
    inside a cell); a tagged code slide with a ### sub-slide holding a fragment; a quiz
    with its answers on a sub-slide. Everything else is left out."""
    cells = [
        new_markdown_cell("# A small chapter\n\nWhy it matters, in one line."),
        new_code_cell("import numpy as np", outputs=[]),                     # left out
        new_markdown_cell("## Section A\n\nSome prose with $x^2$ and a "
                          "[link](https://example.org) {cite:p}`stanley2023simba`; "
                          "[a page](../book/benchmarks.md)."),
        new_code_cell("plot()", outputs=[figure_output()]),                  # figure
        new_markdown_cell("*Figure: the caption stays with its figure.*\n\n"
                          "## Section B\n\nA heading inside a cell opens a slide."),
        new_markdown_cell("Left out on purpose.", metadata={"tags": ["skip"]}),
        new_code_cell("print('shown')", metadata={"tags": ["slide"]},
                      outputs=[new_output("stream", name="stdout", text="shown\n")]),
        new_markdown_cell("### A sub-slide"),
        new_markdown_cell("Appears on a click.", metadata={"tags": ["fragment"]}),
        new_markdown_cell(":::{note} Take-away\nThe main point.\n:::"),
        new_markdown_cell("## Quiz\n\n- **Q1.** A question?\n\n"
                          ":::{dropdown} Answers\n- **Q1.** The answer to Q1.\n:::"),
        new_code_cell("# Solution to exercise 1\nplot()",
                      metadata={"tags": ["hide-cell"]}, outputs=[figure_output()]),
        new_markdown_cell(":::{dropdown} Solution to exercise 1\nThe answer.\n:::"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


class Sections(html.parser.HTMLParser):
    """Counts <section> elements and how deep each one is."""

    def __init__(self):
        super().__init__()
        self.depth = 0
        self.by_depth: dict[int, int] = {}
        self.fragments = 0

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.depth += 1
            self.by_depth[self.depth] = self.by_depth.get(self.depth, 0) + 1
        if tag == "div" and "fragment" in (dict(attrs).get("class") or "").split():
            self.fragments += 1

    def handle_endtag(self, tag):
        if tag == "section":
            self.depth -= 1


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("slides")
    paths = []
    for name in ("01_first", "02_second"):
        path = work / f"{name}.ipynb"
        nbformat.write(fixture_notebook(), path)
        paths.append(path)
    out = work / "out"
    decks = make_slides.build(paths, out, executed_dir=work / "none", execute=False,
                              log=lambda *a: None)
    return out, paths, decks


def test_one_deck_per_input(built):
    out, paths, decks = built
    assert sorted(p.name for p in decks) == ["01_first.html", "02_second.html"]
    assert sorted(p.name for p in out.glob("*.html")) == [
        "01_first.html", "02_second.html", "index.html"]
    index = (out / "index.html").read_text()
    assert 'href="01_first.html"' in index and "A small chapter" in index


def test_decks_load_nothing_from_other_hosts(built):
    out, _, decks = built
    for deck in decks + [out / "index.html"]:
        page = deck.read_text()
        assert make_slides.external_references(page) == [], deck.name
        # plain hyperlinks in the text are allowed (they are not loaded)
        assert "https://example.org" in page or deck.name == "index.html"
        assert "cdn" not in " ".join(u for _, u in make_slides.loaded_references(page))


def test_referenced_assets_exist(built):
    out, _, decks = built
    for deck in decks:
        loaded = [u for _, u in make_slides.loaded_references(deck.read_text())]
        assert "reveal.js/dist/reveal.js" in loaded
        assert "reveal.js/dist/reveal.css" in loaded
        assert "mathjax/tex-mml-chtml.js" in loaded
        assert make_slides.missing_local_files(deck) == []
    assert (out / "reveal.js" / "LICENSE").exists()


def test_expected_slides_from_the_tags(built):
    _, _, decks = built
    page = decks[0].read_text()
    sections = Sections()
    sections.feed(page)
    # 5 slides; inside them 1 + 2 + 1 + 2 + 2 vertical sub-slides
    assert sections.by_depth == {1: 5, 2: 8}
    assert page.count("<section") == 13
    quiz = page[page.index('id="Quiz"'):]
    assert quiz.index("A question?") < quiz.index("</section><section") < quiz.index(
        "The answer to Q1.")                                # answers one key press later
    assert sections.fragments == 1
    assert "data:image/png;base64," in page                 # the figure, embedded
    assert "import numpy" not in page                       # untagged code left out
    assert "plot()" not in page                             # a figure shows no code
    assert page.count('class="jp-CodeMirrorEditor') == 1  # only tagged code is shown
    assert '<span class="nb">print</span>' in page
    assert "Left out on purpose" not in page
    assert "The answer." not in page and "Solution to exercise" not in page
    assert "(Stanley et al. 2023)" in page and "{cite" not in page
    # links to the book's pages point to the published book
    assert f'href="{make_slides.book_address()}book/benchmarks.html"' in page
    assert "Take-away" in page and ":::" not in page


def test_the_check_finds_external_references():
    page = ('<script src="https://cdn.example/x.js"></script>'
            '<link rel="stylesheet" href="//fonts.example/css">'
            '<style>@import url("https://fonts.example/a.css");</style>'
            '<img src="local.png"><a href="https://example.org">text</a>')
    assert make_slides.external_references(page) == [
        "https://cdn.example/x.js", "//fonts.example/css",
        "https://fonts.example/a.css"]


def test_vendored_reveal_is_documented():
    source = (ROOT / "slides" / "reveal.js" / "SOURCE.txt").read_text()
    assert "reveal.js 6.0.2" in source
    for name in ("dist/reveal.js", "dist/reveal.css", "dist/theme/white.css",
                 "dist/plugin/notes.js", "LICENSE"):
        assert (ROOT / "slides" / "reveal.js" / name).exists(), name
        assert name.split("/")[-1] in source
