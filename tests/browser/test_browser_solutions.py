"""Exercise solutions, as a reader meets them on a chapter page.

Each solution's code *and* output sit behind a toggle titled "Solution to exercise N"
(the ``hide-cell`` tag with ``code_prompt_show`` in the cell's metadata), and its
explanation follows in a closed dropdown with the same title. Nothing of the answer is on
the screen until the reader opens it; after a click, the output is there.
"""

from __future__ import annotations

import pytest

from browser_support import Browser, TocPage, chapter_pages

CHAPTERS = chapter_pages()
IDS = [c.file for c in CHAPTERS]

# Marks each solution cell and the dropdown that explains it with data-solution="N" and
# returns what the page holds before anything is clicked.
MARK_SOLUTIONS_JS = r"""
() => {
  const article = document.querySelector('article.bd-article');
  const out = [];
  for (const cell of article.querySelectorAll('div.cell')) {
    const pre = cell.querySelector('div.cell_input pre');
    const match = pre && (pre.textContent || '').trim().match(/^# Solution to exercise (\d+)/);
    if (!match) continue;
    const n = match[1];
    cell.setAttribute('data-solution', n);
    const toggle = cell.querySelector('details');
    let explained = null;
    for (let el = cell.nextElementSibling; el && !el.matches('div.cell'); el = el.nextElementSibling) {
      const dropdown = el.matches('details') ? el : el.querySelector('details');
      if (dropdown) { explained = dropdown; break; }
    }
    if (explained) explained.setAttribute('data-solution-explained', n);
    out.push({
      n: n,
      toggle: !!toggle,
      open: toggle ? toggle.open : null,
      summary: toggle ? (toggle.querySelector('summary').textContent || '').trim() : '',
      inputInside: !!(toggle && toggle.querySelector('div.cell_input')),
      outputs: cell.querySelectorAll('div.cell_output').length,
      outputsInside: toggle ? toggle.querySelectorAll('div.cell_output').length : 0,
      explained: !!explained,
      explainedOpen: explained ? explained.open : null,
      explainedTitle: explained ? (explained.querySelector('summary').textContent || '').trim() : '',
    });
  }
  return out;
}
"""


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_solutions_are_hidden_with_their_outputs_until_clicked(browser: Browser, chapter: TocPage) -> None:
    page = browser.open(chapter.html)  # a tab of its own: the clicks change the page
    try:
        page.wait_for_load_state("load")
        solutions = page.evaluate(MARK_SOLUTIONS_JS)
        assert solutions, f"{chapter.html}: no solution cells found"
        for s in solutions:
            where = f"{chapter.html}, solution to exercise {s['n']}"
            assert s["toggle"] and s["inputInside"], f"{where}: the code is not behind a toggle"
            assert s["outputs"] >= 1, f"{where}: the executed solution shows no output"
            assert s["outputsInside"] == s["outputs"], f"{where}: an output sits outside the toggle"
            assert s["open"] is False, f"{where}: the toggle is open when the page loads"
            assert f"Solution to exercise {s['n']}" in s["summary"], (
                f"{where}: the toggle is titled {s['summary']!r}"
            )
            assert s["explained"], f"{where}: no explanation dropdown after the solution"
            assert s["explainedOpen"] is False, f"{where}: the explanation is open on load"
            assert f"Solution to exercise {s['n']}" in s["explainedTitle"], (
                f"{where}: the explanation is titled {s['explainedTitle']!r}"
            )

            cell = page.locator(f'div.cell[data-solution="{s["n"]}"]')
            outputs = cell.locator("div.cell_output")
            code = cell.locator("div.cell_input")
            assert not code.first.is_visible(), f"{where}: the code is visible before a click"
            for i in range(outputs.count()):
                assert not outputs.nth(i).is_visible(), f"{where}: an output is visible before a click"
            cell.locator("summary").first.click()
            outputs.first.wait_for(state="visible", timeout=5_000)
            assert code.first.is_visible(), f"{where}: the click did not show the code"

            explained = page.locator(f'details[data-solution-explained="{s["n"]}"]')
            body = explained.locator(":scope > :not(summary)").first
            assert not body.is_visible(), f"{where}: the explanation is visible before a click"
            explained.locator("summary").first.click()
            body.wait_for(state="visible", timeout=5_000)
    finally:
        page.close()
