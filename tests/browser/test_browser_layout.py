"""Layout of each chapter at 1280 px and on paper: numbered figures that fit the column,
code that never scrolls sideways, figure outputs that never scroll.

Rules a chapter follows (checked here):

* Every figure a code cell outputs is a numbered figure ("Figure 4.2: ..."), written as
  the cell's metadata ``"mystnb": {"figure": {"caption": "...", "name": "fig-..."}}``, so
  that the text can refer to it with ``{numref}`` and a reader can cite it.
* A figure is drawn at most as wide as the text column (``plotting.COLUMN_WIDTH``): the
  page shows it at (nearly) full size instead of shrinking its labels.
* Code cells hold lines of at most 79 characters: no code block scrolls sideways on a
  1280 px screen, and none is cut when the page is printed.
* Figure outputs are shown whole, never in a scrolling box.
"""

from __future__ import annotations

import re

import pytest

from browser_support import Browser, TocPage, chapter_pages

CHAPTERS = chapter_pages()
IDS = [c.file for c in CHAPTERS]

#: A figure may be drawn this much wider than the column it is shown in (retina-free
#: screens show it at >= 1 / SHRINK of its drawn size).
SHRINK = 1.15

FIGURES_JS = """
() => {
  const article = document.querySelector('article.bd-article');
  const column = article.getBoundingClientRect().width;
  const out = [];
  for (const img of article.querySelectorAll('div.cell_output img')) {
    if (img.closest('.widget-subarea')) continue;
    const figure = img.closest('figure');
    const number = figure ? figure.querySelector('figcaption .caption-number') : null;
    const cell = img.closest('div.cell');
    const code = cell ? (cell.querySelector('div.cell_input pre') || {textContent: ''}).textContent : '';
    out.push({natural: img.naturalWidth, column: column,
              number: number ? number.textContent.trim() : '',
              id: figure ? figure.id : '',
              code: code.split('\\n').slice(0, 2).join(' / ')});
  }
  return out;
}
"""

CODE_JS = """
() => Array.from(document.querySelectorAll('article.bd-article div.cell_input pre'))
  .map(pre => ({scroll: pre.scrollWidth, client: pre.clientWidth,
                first: pre.textContent.split('\\n')[0].slice(0, 60)}))
"""

FIGURE_OUTPUTS_JS = """
() => Array.from(document.querySelectorAll('article.bd-article div.cell_output'))
  .filter(out => out.querySelector('img') && !out.closest('details'))
  .map(out => ({scroll: out.scrollHeight, client: out.clientHeight,
                overflow: getComputedStyle(out).overflowY}))
"""


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_every_figure_is_numbered(browser: Browser, chapter: TocPage) -> None:
    figures = browser.evaluate(chapter.html, FIGURES_JS)
    assert figures, f"{chapter.html} has no figure"
    unnumbered = [f["code"] for f in figures if not re.match(r"^Figure \d+\.\d+", f["number"])]
    assert not unnumbered, (
        f"{chapter.html}: figures without a numbered caption; give the cell the metadata "
        '"mystnb": {"figure": {"caption": "...", "name": "fig-..."}}:\n' + "\n".join(unnumbered)
    )
    ids = [f["id"] for f in figures if f["id"]]
    assert len(ids) == len(set(ids)), f"{chapter.html}: two figures share a name: {ids}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_figures_fit_the_column(browser: Browser, chapter: TocPage) -> None:
    figures = browser.evaluate(chapter.html, FIGURES_JS)
    wide = [
        f"'{f['code']}': drawn {f['natural']} px for a {f['column']:.0f} px column"
        for f in figures
        if f["natural"] > SHRINK * f["column"]
    ]
    assert not wide, (
        f"{chapter.html}: figures drawn wider than the column and shown shrunk; draw them at "
        "most plotting.COLUMN_WIDTH inches wide (stack panels in rows):\n" + "\n".join(wide)
    )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_code_never_scrolls_sideways(browser: Browser, chapter: TocPage) -> None:
    blocks = browser.evaluate(chapter.html, CODE_JS)
    assert blocks, f"{chapter.html} has no code"
    cut = [b["first"] for b in blocks if b["scroll"] > b["client"] + 1]
    assert not cut, f"{chapter.html}: code blocks wider than the page:\n" + "\n".join(cut)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_figure_outputs_never_scroll(browser: Browser, chapter: TocPage) -> None:
    outputs = browser.evaluate(chapter.html, FIGURE_OUTPUTS_JS)
    scrolling = [o for o in outputs if o["scroll"] > o["client"] + 2]
    assert not scrolling, f"{chapter.html}: {len(scrolling)} figure outputs scroll: {scrolling}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_printed_code_is_not_cut(browser: Browser, chapter: TocPage) -> None:
    page = browser.open(chapter.html)
    try:
        page.emulate_media(media="print")
        page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
        blocks = page.evaluate(CODE_JS)
    finally:
        page.close()
    assert blocks, f"{chapter.html} has no code"
    cut = [b["first"] for b in blocks if b["scroll"] > b["client"] + 1]
    assert not cut, f"{chapter.html}: printed code blocks cut at the margin:\n" + "\n".join(cut)
