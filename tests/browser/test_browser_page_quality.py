"""Page quality of each chapter, as rendered in the browser.

Rules a chapter follows (checked here):

* Top of the page: the title, then "Learning goals", "Prerequisites" and "Estimated run time",
  all above the first code cell.
* Figures: every image that a code cell outputs has a caption: a numbered myst-nb figure
  caption (cell metadata ``"mystnb": {"figure": {"caption": ..., "name": ...}}``; see
  test_browser_layout.py, which checks the numbers), or, for a widget's static picture, a
  real alt text (``"mystnb": {"image": {"alt": "..."}}``; not a file name).
* Long outputs are collapsed: no text output box is taller than 24em;
  ``nb_scroll_outputs`` in _config.yml turns longer ones into scrolling boxes, and
  ``hide-output`` puts one in a dropdown. A figure is shown whole (book/_static/faimi.css),
  at most 60em tall (about a screen).
* No debris in the outputs: no tracebacks, no warnings, no stderr, no text progress bars, no
  object reprs such as ``<Figure size 640x480 with 1 Axes>`` or ``<... at 0x7f...>``.
"""

from __future__ import annotations

import re

import pytest

from browser_support import Browser, TocPage, chapter_pages

CHAPTERS = chapter_pages()
IDS = [c.file for c in CHAPTERS]

HEADER_JS = """
() => {
  const article = document.querySelector('article.bd-article');
  const firstCell = article.querySelector('div.cell');
  const limit = firstCell ? firstCell.getBoundingClientRect().top + window.scrollY : Infinity;
  const found = {};
  for (const el of article.querySelectorAll('p, li, h2, h3, dt, strong')) {
    const text = (el.innerText || '').trim();
    const top = el.getBoundingClientRect().top + window.scrollY;
    for (const key of ['Learning goals', 'Prerequisites', 'Estimated run time']) {
      if (text.toLowerCase().startsWith(key.toLowerCase()) && !(key in found)) {
        found[key] = {top: top, beforeFirstCell: top < limit, text: text.slice(0, 160)};
      }
    }
  }
  const h1 = article.querySelector('h1');
  return {found: found, h1: h1 ? h1.innerText : '', h1Top: h1 ? h1.getBoundingClientRect().top : null};
}
"""

CAPTIONS_JS = """
() => {
  const out = [];
  for (const cell of document.querySelectorAll('article.bd-article div.cell')) {
    const images = Array.from(cell.querySelectorAll('div.cell_output img'))
      .filter(img => !img.closest('.widget-subarea'));
    if (!images.length) continue;
    const next = cell.nextElementSibling;
    const nextText = next && next.tagName === 'P' ? (next.innerText || '').trim() : '';
    const italic = !!(next && next.tagName === 'P' && next.querySelector('em'));
    const code = (cell.querySelector('div.cell_input pre') || {textContent: ''}).textContent;
    for (const img of images) {
      const figure = img.closest('figure');
      const caption = figure && figure.querySelector('figcaption');
      out.push({
        src: img.getAttribute('src'),
        alt: img.getAttribute('alt') || '',
        figcaption: caption ? caption.innerText.trim() : '',
        nextText: nextText.slice(0, 120), nextItalic: italic,
        code: code.split('\\n').slice(0, 2).join(' / ')});
    }
  }
  return out;
}
"""

OUTPUTS_JS = """
() => {
  const em = parseFloat(getComputedStyle(document.documentElement).fontSize);
  return Array.from(document.querySelectorAll('article.bd-article div.cell_output')).map(out => {
    const box = out.getBoundingClientRect();
    const style = getComputedStyle(out);
    const cell = out.closest('div.cell');
    const code = cell ? (cell.querySelector('div.cell_input pre') || {textContent: ''}).textContent : '';
    return {height: box.height, scrollHeight: out.scrollHeight, overflowY: style.overflowY,
            hasImage: !!out.querySelector('img'), em: em, viewport: window.innerHeight,
            code: code.split('\\n').slice(0, 2).join(' / ')};
  });
}
"""

DEBRIS_JS = """
() => {
  const article = document.querySelector('article.bd-article');
  const outputs = Array.from(article.querySelectorAll('div.cell_output'));
  return {
    stderr: article.querySelectorAll('div.cell_output .stderr, div.cell_output .output.error, div.cell_output .traceback').length,
    texts: outputs.map(o => {
      const clone = o.cloneNode(true);
      clone.querySelectorAll('.widget-subarea, script').forEach(w => w.remove());
      return clone.textContent || '';
    })
  };
}
"""

#: Text that must not appear in a rendered output, with what it means.
DEBRIS = {
    r"Traceback \(most recent call last\)": "a raw traceback",
    r"\b[A-Z]\w*(Warning|Error):": "a warning or error message",
    r"\d+%\|": "a text progress bar (tqdm): pass progress=False or use tqdm.auto",
    r"(it/s|s/it)\]": "a text progress bar (tqdm): pass progress=False or use tqdm.auto",
    r"<Figure size \d+(\.\d+)?x\d+": "a matplotlib Figure repr: end the cell with plt.show() or ';'",
    r"<[\w.]+ (object )?at 0x[0-9a-fA-F]+>": "an object repr with a memory address: end the line with ';'",
}


def _evaluate(browser: Browser, chapter: TocPage, script: str):
    return browser.evaluate(chapter.html, script)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_chapter_opens_with_goals_prerequisites_and_run_time(browser: Browser, chapter: TocPage) -> None:
    header = _evaluate(browser, chapter, HEADER_JS)
    for key in ("Learning goals", "Prerequisites", "Estimated run time"):
        assert key in header["found"], f"{chapter.html}: no {key!r} at the top of the page"
        assert header["found"][key]["beforeFirstCell"], (
            f"{chapter.html}: {key!r} comes after the first code cell; put it in the first cell"
        )
    assert header["h1Top"] is not None and header["h1Top"] < 400, "the title is not on the first screen"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_chapter_title_is_numbered_once(browser: Browser, chapter: TocPage) -> None:
    header = _evaluate(browser, chapter, HEADER_JS)
    title = header["h1"].replace("#", "").strip()
    assert not re.match(r"^\d+(\.\d+)*\.\s+\d+(\.\d+)*\.?\s", title), f"title numbered twice: {title!r}"


def _looks_like_a_file_name(alt: str) -> bool:
    return bool(re.search(r"(_images/|\.(png|jpe?g|svg|gif)$)", alt.strip(), flags=re.I))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_every_figure_has_a_caption_or_alt_text(browser: Browser, chapter: TocPage) -> None:
    images = _evaluate(browser, chapter, CAPTIONS_JS)
    assert images, f"{chapter.html} has no figure output"
    missing = []
    for img in images:
        if img["figcaption"] or (img["alt"].strip() and not _looks_like_a_file_name(img["alt"])):
            continue
        missing.append(f"figure of the cell '{img['code']}' (next paragraph: {img['nextText']!r})")
    assert not missing, (
        f"{chapter.html}: figures without a caption; give the cell the metadata "
        '"mystnb": {"figure": {"caption": "...", "name": "fig-..."}}:\n' + "\n".join(missing)
    )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_long_outputs_are_collapsed(browser: Browser, chapter: TocPage) -> None:
    outputs = _evaluate(browser, chapter, OUTPUTS_JS)
    assert outputs, f"{chapter.html} has no outputs"
    too_tall = []
    for out in outputs:
        em = out["em"]
        if out["hasImage"]:
            # a figure is shown whole (never in a scrolling box): at most about a screen
            limit = 60 * em
        else:
            limit = 24 * em
        if out["height"] > limit + 2:
            too_tall.append(f"'{out['code']}': {out['height']:.0f}px > {limit:.0f}px")
    assert not too_tall, (
        f"{chapter.html}: outputs shown at full length; let them scroll (nb_scroll_outputs or "
        "the scroll-output tag) or hide them (hide-output):\n" + "\n".join(too_tall)
    )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_outputs_hold_no_tracebacks_warnings_or_progress_debris(browser: Browser, chapter: TocPage) -> None:
    found = _evaluate(browser, chapter, DEBRIS_JS)
    assert found["stderr"] == 0, f"{chapter.html}: {found['stderr']} stderr/error outputs are shown"
    problems = []
    for i, text in enumerate(found["texts"]):
        for pattern, meaning in DEBRIS.items():
            match = re.search(pattern, text)
            if match:
                problems.append(f"output {i}: {meaning}: ...{text[max(0, match.start() - 60):match.end() + 60]!r}")
    assert not problems, f"{chapter.html}:\n" + "\n".join(problems)
