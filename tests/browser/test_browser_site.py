"""The built book as a website, read in headless Chromium.

Every page of ``_toc.yml`` opens without JavaScript errors and loads nothing from another
host except the known resources listed in conftest; every image of a chapter loads; the
launch buttons open the chapter's own notebook; the search finds each chapter; every
internal link and anchor resolves; saved widgets render without a kernel.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, unquote, urldefrag, urljoin, urlsplit

import pytest

from browser_support import (
    KNOWN_EXTERNAL_RESOURCES,
    KNOWN_THIRD_PARTY_ERRORS,
    ROOT,
    SCREENSHOTS,
    WIDGETS_JS,
    Browser,
    Site,
    TocPage,
    book_config,
    chapter_pages,
    toc_pages,
)

PAGES = toc_pages()
CHAPTERS = chapter_pages()
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _ids(pages: tuple[TocPage, ...]) -> list[str]:
    return [p.file for p in pages]


# --------------------------------------------------------------------------------------
# Every page opens cleanly.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("toc_page", PAGES, ids=_ids(PAGES))
def test_page_opens_without_javascript_errors(browser: Browser, toc_page: TocPage) -> None:
    visit = browser.visit(toc_page.html)
    assert visit.status == 200, f"{toc_page.html} answered {visit.status}"
    page_errors = [e for e in visit.page_errors if e not in KNOWN_THIRD_PARTY_ERRORS]
    assert not page_errors, f"uncaught JavaScript errors on {toc_page.html}: {page_errors}"
    assert not visit.console_errors, f"console errors on {toc_page.html}: {visit.console_errors}"
    assert not visit.failed_local, f"{toc_page.html} asked for missing files: {visit.failed_local}"


@pytest.mark.parametrize("toc_page", PAGES, ids=_ids(PAGES))
def test_page_needs_nothing_from_other_hosts(browser: Browser, toc_page: TocPage) -> None:
    """The book works offline: the only requests to other hosts are the known ones."""
    visit = browser.visit(toc_page.html)
    unknown = [
        url for url in visit.external_requests
        if not any(url.startswith(prefix) for prefix in KNOWN_EXTERNAL_RESOURCES)
    ]
    assert not unknown, (
        f"{toc_page.html} fetches from other hosts (it must work offline; serve a copy with "
        f"the book, or list it in KNOWN_EXTERNAL_RESOURCES with what is lost): {unknown}"
    )


@pytest.mark.parametrize("toc_page", PAGES, ids=_ids(PAGES))
def test_math_is_typeset(browser: Browser, toc_page: TocPage) -> None:
    """Every formula is typeset by the MathJax served with the book (no TeX source left)."""
    visit = browser.visit(toc_page.html)
    assert not visit.untypeset_math, (
        f"{toc_page.html}: {len(visit.untypeset_math)} of {visit.math} formulas not typeset, "
        f"e.g. {visit.untypeset_math[:3]}"
    )


def test_the_site_root_opens_the_book(browser: Browser) -> None:
    page = browser.open("index.html")
    try:
        page.wait_for_load_state("load")
        root = PAGES[0].html
        page.wait_for_url(re.compile(re.escape(root) + r"$"))
        assert page.locator("article h1").count() >= 1
    finally:
        page.close()


# --------------------------------------------------------------------------------------
# Chapters: images, launch buttons, screenshots.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("chapter", CHAPTERS, ids=_ids(CHAPTERS))
def test_every_image_of_a_chapter_loads(browser: Browser, chapter: TocPage) -> None:
    visit = browser.visit(chapter.html)
    figures = [img for img in visit.images if img["inOutput"]]
    assert figures, f"{chapter.html} shows no figure from its code"
    broken = [img["src"] for img in visit.images if not (img["complete"] and img["naturalWidth"] > 0)]
    assert not broken, f"images that did not load on {chapter.html}: {broken}"


def _repository() -> tuple[str, str]:
    config = book_config()
    url = str(config["repository"]["url"]).rstrip("/").removesuffix(".git")
    owner_repo = urlsplit(url).path.strip("/")
    return owner_repo, str(config["repository"].get("branch", "main"))


def _notebook_in_repository(chapter: TocPage) -> str:
    path_to_book = str(book_config()["repository"].get("path_to_book", "") or "").strip("/")
    path = f"{chapter.file}.ipynb"
    return f"{path_to_book}/{path}" if path_to_book else path


@pytest.mark.parametrize("chapter", CHAPTERS, ids=_ids(CHAPTERS))
def test_launch_buttons_open_the_chapter_notebook(browser: Browser, chapter: TocPage) -> None:
    visit = browser.visit(chapter.html)
    owner_repo, branch = _repository()
    notebook = _notebook_in_repository(chapter)
    assert (ROOT / notebook).is_file(), f"{notebook} is not in the repository"
    launch = book_config()["launch_buttons"]
    colab = f"{launch['colab_url'].rstrip('/')}/github/{owner_repo}/blob/{branch}/{notebook}"
    interface = "lab/tree" if launch.get("notebook_interface") == "jupyterlab" else "tree"
    binder = f"{launch['binderhub_url'].rstrip('/')}/v2/gh/{owner_repo}/{branch}?urlpath={interface}/{notebook}"
    by_title = {link["title"]: link["href"] for link in visit.links if link["title"]}
    assert by_title.get("Launch on Colab") == colab, f"Colab button: {by_title.get('Launch on Colab')}"
    assert by_title.get("Launch on Binder") == binder, f"Binder button: {by_title.get('Launch on Binder')}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=_ids(CHAPTERS))
def test_screenshot_of_the_first_screen(browser: Browser, chapter: TocPage) -> None:
    browser.visit(chapter.html)
    shot = SCREENSHOTS / f"{Path(chapter.file).stem}.png"
    assert shot.is_file() and shot.stat().st_size > 10_000, f"no screenshot at {shot}"


# --------------------------------------------------------------------------------------
# Search.
# --------------------------------------------------------------------------------------


def _chapter_title(chapter: TocPage) -> str:
    """The chapter's title as written in its notebook, without a leading number."""
    nb = json.loads(chapter.notebook.read_text(encoding="utf-8"))
    first = "".join(nb["cells"][0]["source"])
    title = re.search(r"^#\s+(.+)$", first, flags=re.M).group(1)
    return re.sub(r"^[\d.\s]+", "", title).strip()


@pytest.mark.parametrize("chapter", CHAPTERS, ids=_ids(CHAPTERS))
def test_search_finds_the_chapter(browser: Browser, chapter: TocPage) -> None:
    words = _chapter_title(chapter)
    page = browser.open(f"search.html?q={quote(words)}")
    try:
        link = page.locator(f'#search-results a[href*="{chapter.html}"]').first
        link.wait_for(state="attached", timeout=20_000)
        summary = page.locator("#search-results").inner_text()
        assert "found" in summary.lower() or link.count() == 1
    finally:
        page.close()


# --------------------------------------------------------------------------------------
# Internal links and cross-references.
# --------------------------------------------------------------------------------------


class _LinkParser(HTMLParser):
    """Collects hrefs and ids of one HTML page (for pages outside the table of contents)."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        if tag == "a" and values.get("name"):
            self.ids.add(values["name"])
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"])


def _fetch(url: str) -> tuple[int, str | None]:
    """Status and, for HTML, the text of a local URL."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read()
            kind = response.headers.get_content_type()
            return response.status, body.decode("utf-8", "replace") if kind == "text/html" else None
    except urllib.error.HTTPError as error:
        return error.code, None


def test_internal_links_and_anchors_resolve(browser: Browser, site: Site) -> None:
    """Crawl every internal link from every page: no 404 on the local server, anchors exist."""
    ids: dict[str, set[str]] = {}
    status: dict[str, int] = {}
    queue: list[tuple[str, str]] = []  # (source page, absolute href)
    for toc_page in PAGES:
        visit = browser.visit(toc_page.html)
        ids[site.path_of(visit.url)] = visit.ids
        status[site.path_of(visit.url)] = visit.status or 0
        queue += [(toc_page.html, link["href"]) for link in visit.links]
    problems: list[str] = []
    checked: set[str] = set()
    while queue:
        source, href = queue.pop()
        if not site.is_local(href) or href in checked:
            continue
        checked.add(href)
        url, fragment = urldefrag(href)
        path = site.path_of(url)
        if path == "" or path.endswith("/"):
            path += "index.html"
        if path not in status:
            code, text = _fetch(site.url(path))
            status[path] = code
            if text is not None:
                parser = _LinkParser()
                parser.feed(text)
                ids[path] = parser.ids
                queue += [(path, urljoin(site.url(path), h)) for h in parser.hrefs]
        if status[path] != 200:
            problems.append(f"{source}: {href} -> HTTP {status[path]}")
        elif fragment and path in ids and unquote(fragment) not in ids[path]:
            problems.append(f"{source}: {href} -> no element with id {unquote(fragment)!r}")
    assert len(checked) > len(PAGES), "the crawl found almost no internal links"
    assert not problems, "broken internal links:\n" + "\n".join(sorted(problems))


# --------------------------------------------------------------------------------------
# Widgets: drawn from the state saved at execution, with no kernel.
# --------------------------------------------------------------------------------------


def _uses_widgets(chapter: TocPage) -> bool:
    nb = json.loads(chapter.notebook.read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    return bool(re.search(r"\bipywidgets\b|\bft\.widgets\b|faimi_tutorial\.widgets|\bwidgets\.\w+\(", code))


WIDGET_CHAPTERS = tuple(c for c in CHAPTERS if _uses_widgets(c))


@pytest.mark.parametrize("chapter", WIDGET_CHAPTERS, ids=_ids(WIDGET_CHAPTERS))
def test_widgets_render_from_saved_state(browser: Browser, site: Site, chapter: TocPage) -> None:
    html = (site.root / chapter.html).read_text(encoding="utf-8")
    assert f'type="{WIDGET_STATE}"' in html, (
        f"{chapter.html} uses widgets but the page holds no saved widget state"
    )
    assert f'type="{WIDGET_VIEW}"' in html, f"{chapter.html} displays no widget"
    visit = browser.visit(chapter.html)  # waits for the widget manager to draw
    views = browser.evaluate(chapter.html, WIDGETS_JS)
    assert views, f"{chapter.html}: no widget view found in the browser"
    not_drawn = [i for i, v in enumerate(views) if not v["drawn"] or v["height"] < 10 or v["width"] < 10]
    assert not not_drawn, f"{chapter.html}: widget views {not_drawn} not drawn from the saved state: {views}"
    failed = [v["text"] for v in views if "error" in v["text"].lower()]
    assert not failed, f"{chapter.html}: the widget manager reported errors: {failed}"
    raw_tex = [v["text"] for v in views if re.search(r"\$[^$\n]+\$", v["text"])]
    assert not raw_tex, (
        f"{chapter.html}: widget labels show TeX source (MathJax does not typeset widget "
        f"labels here): write them in plain text: {raw_tex}"
    )
    assert not [e for e in visit.page_errors if e not in KNOWN_THIRD_PARTY_ERRORS]


@pytest.mark.parametrize("chapter", WIDGET_CHAPTERS, ids=_ids(WIDGET_CHAPTERS))
def test_widget_pages_offer_a_static_figure_and_say_so(browser: Browser, chapter: TocPage) -> None:
    """Readers without a kernel see a static figure, and the page tells them the explorer needs one."""
    visit = browser.visit(chapter.html)
    static = [img for img in visit.images if img["inOutput"] and not img["inWidget"]]
    assert static, f"{chapter.html}: no static figure beside the widgets"
    assert re.search(r"\bkernel\b|\b(live|running|interactive) (notebook|session)\b", visit.text, flags=re.I), (
        f"{chapter.html}: the page should say that the explorer responds only in a live "
        "notebook (a running kernel) and that the static figure beside it is for readers of the book"
    )
