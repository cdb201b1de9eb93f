"""Shared helpers and fixtures of the browser tests (imported by conftest.py)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import socketserver
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
HTML = Path(os.environ.get("FAIMI_BOOK_HTML", ROOT / "_build" / "html")).resolve()
ARTIFACTS = Path(os.environ.get("FAIMI_ARTIFACTS", ROOT / "test-artifacts")).resolve()
SCREENSHOTS = ARTIFACTS / "screenshots"

#: Flags for a root user on a machine without network: no sandbox (root), no GPU, and no
#: background traffic of the browser itself (updates, sync, QUIC probes).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The size of a laptop or projector screen: the screenshots show a chapter's first screen.
VIEWPORT = {"width": 1280, "height": 800}
#: Longest wait for one page (load, fonts, widgets), in milliseconds.
PAGE_TIMEOUT_MS = 30_000


def on_ci() -> bool:
    """Whether the tests run under continuous integration (``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def unavailable(reason: str) -> None:
    """Skip the test on a developer's machine; fail it under CI, where nothing may be missing."""
    if on_ci():
        pytest.fail(f"{reason} (CI=true: the browser tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    """Path of the Chromium executable to drive, or None when there is none."""
    explicit = os.environ.get("FAIMI_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    # chromium-browser is left out on purpose: on Ubuntu it is a wrapper that asks for a snap.
    for name in ("chromium", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


# --------------------------------------------------------------------------------------
# Selection: these tests run when asked for (make test-browser / pytest tests/browser).
# --------------------------------------------------------------------------------------


def _asked_for_browser_tests(config: pytest.Config) -> bool:
    if os.environ.get("FAIMI_BROWSER_TESTS", "") == "1":
        return True
    start = Path(config.invocation_params.dir)
    for arg in config.args:
        target = (start / arg.split("::", 1)[0]).resolve()
        if target == HERE or HERE in target.parents:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the browser tests out of a whole-suite run (``make test-unit``).

    They need the built book, so ``make test`` runs them after ``make test-book``.
    """
    if _asked_for_browser_tests(config):
        return
    mine = [item for item in items if HERE in Path(str(item.path)).resolve().parents]
    if mine:
        config.hook.pytest_deselected(items=mine)
        items[:] = [item for item in items if item not in mine]


# --------------------------------------------------------------------------------------
# The table of contents and the repository settings, read from the book's own files.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TocPage:
    """One page of ``_toc.yml``: its source ``file`` (no suffix) and where it is built."""

    file: str

    @property
    def html(self) -> str:
        """Path of the built page, relative to the site root."""
        return f"{self.file}.html"

    @property
    def notebook(self) -> Path | None:
        """The chapter's notebook in the repository, or None for a prose page."""
        path = ROOT / f"{self.file}.ipynb"
        return path if path.exists() else None

    @property
    def is_chapter(self) -> bool:
        """Whether the page is an executable chapter (a notebook)."""
        return self.notebook is not None


def _toc_files(entries: list[dict[str, Any]]) -> Iterator[str]:
    for entry in entries:
        if "file" in entry:
            yield str(entry["file"]).removesuffix(".md").removesuffix(".ipynb")
        for key in ("chapters", "sections", "parts"):
            if key in entry:
                yield from _toc_files(entry[key])


@functools.lru_cache(maxsize=1)
def toc_pages() -> tuple[TocPage, ...]:
    """Every page listed in ``_toc.yml``, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [str(toc["root"])]
    files += list(_toc_files(toc.get("parts", []) + toc.get("chapters", [])))
    return tuple(TocPage(f) for f in dict.fromkeys(files))


def chapter_pages() -> tuple[TocPage, ...]:
    """The chapters (notebooks) listed in ``_toc.yml``."""
    return tuple(p for p in toc_pages() if p.is_chapter)


@functools.lru_cache(maxsize=1)
def book_config() -> dict[str, Any]:
    """The parsed ``_config.yml``."""
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------
# The local server.
# --------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class Site:
    """The built book served on 127.0.0.1."""

    root: Path
    base: str

    def url(self, path: str) -> str:
        """Absolute URL of a path relative to the site root."""
        return f"{self.base}/{path.lstrip('/')}"

    def is_local(self, url: str) -> bool:
        """Whether a URL is served by this site (and not fetched from elsewhere)."""
        return url.startswith(self.base + "/") or url == self.base

    def path_of(self, url: str) -> str:
        """Path of a local URL relative to the site root (no query, no fragment)."""
        return urlsplit(url).path.lstrip("/")


@pytest.fixture(scope="session")
def site() -> Iterator[Site]:
    """Serve the built book on a free port of 127.0.0.1 for the whole session."""
    if not (HTML / "index.html").exists():
        unavailable(f"the book is not built ({HTML} has no index.html): run `make test-book` first")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="book-server", daemon=True)
    thread.start()
    try:
        yield Site(root=HTML, base=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --------------------------------------------------------------------------------------
# The browser.
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium with a fresh profile (user data dir) for the session."""
    executable = find_chromium()
    if executable is None:
        unavailable(
            "Chromium is not installed: `make test-browser` installs Debian's chromium and "
            "chromium-driver when run as root; otherwise install them (or set FAIMI_CHROMIUM)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed: pip install -e '.[test]'")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        try:
            context = playwright.chromium.launch_persistent_context(
                str(profile),
                executable_path=executable,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport=VIEWPORT,
                # Screenshots identical from run to run: no animation, a fixed colour mode.
                reduced_motion="reduce",
                color_scheme="light",
            )
        except Exception as error:  # the binary is there but cannot start
            unavailable(f"Chromium at {executable} does not start: {error}")
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


# --------------------------------------------------------------------------------------
# What the browser saw on each page.
# --------------------------------------------------------------------------------------

#: Console errors of third-party code that the book cannot change from its configuration,
#: each with the reason it is harmless. Everything else logged as an error fails a test.
KNOWN_THIRD_PARTY_ERRORS = {
    "Identifier 'THEBE_JS_URL' has already been declared": (
        "sphinx-thebe 0.3.1 registers its inline configuration script after the HTML "
        "builder starts; Sphinx 7.4 then writes it twice (once as filename None, once as ''). "
        "The second copy re-declares the same constants and is ignored by the browser."
    ),
}

#: External resources that the theme or Sphinx asks for and that cannot load offline, each
#: with what is lost without them. Any other request to another host fails a test. Empty:
#: MathJax and the ipywidgets manager are served with the book (book/_vendor); by default
#: Sphinx would fetch MathJax 3 from cdn.jsdelivr.net and myst-nb would fetch RequireJS from
#: cdnjs.cloudflare.com and @jupyter-widgets/html-manager from cdn.jsdelivr.net.
KNOWN_EXTERNAL_RESOURCES: dict[str, str] = {}

# Waits (up to the page timeout) until MathJax has typeset the page, if it has math.
_MATH_READY_JS = """
async () => {
  if (!document.querySelector('.math')) return true;
  const deadline = Date.now() + 20000;
  while (!(window.MathJax && window.MathJax.startup && window.MathJax.startup.promise)) {
    if (Date.now() > deadline) return false;
    await new Promise(r => setTimeout(r, 50));
  }
  await window.MathJax.startup.promise;
  return true;
}
"""

# JavaScript run once a page has loaded: everything the tests need from the DOM.
_COLLECT_JS = """
() => {
  const article = document.querySelector('article.bd-article') || document.body;
  const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id);
  const names = Array.from(document.querySelectorAll('a[name]')).map(e => e.getAttribute('name'));
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => ({
    href: a.href, raw: a.getAttribute('href'), text: (a.textContent || '').trim().slice(0, 80),
    title: a.getAttribute('title') || a.getAttribute('data-bs-original-title') || ''}));
  const images = Array.from(document.querySelectorAll('img')).map(img => ({
    src: img.currentSrc || img.src, alt: img.getAttribute('alt') || '',
    complete: img.complete, naturalWidth: img.naturalWidth,
    inArticle: article.contains(img),
    inOutput: !!img.closest('.cell_output'),
    inWidget: !!img.closest('.widget-subarea')}));
  const math = Array.from(document.querySelectorAll('span.math, div.math'));
  const untypeset = math.filter(m => !m.querySelector('mjx-container'))
    .map(m => (m.textContent || '').trim().slice(0, 60));
  return {title: document.title, ids: ids.concat(names), links: links, images: images,
          text: (article.innerText || ''), math: math.length, untypeset: untypeset};
}
"""


@dataclass
class PageVisit:
    """What the browser saw while it opened one page."""

    path: str
    url: str
    status: int | None
    title: str = ""
    load_seconds: float = 0.0
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    failed_local: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    links: list[dict[str, str]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""
    math: int = 0
    untypeset_math: list[str] = field(default_factory=list)
    page: Any = None  # the open tab, kept for further inspection


class Browser:
    """Opens each page once and keeps what it saw; tests share the visits."""

    def __init__(self, site: Site, context: Any) -> None:
        self.site = site
        self.context = context
        self.visits: dict[str, PageVisit] = {}

    def open(self, path: str) -> Any:
        """A new browser tab showing ``path`` (the caller closes it)."""
        page = self.context.new_page()
        page.goto(self.site.url(path), wait_until="load")
        return page

    def visit(self, path: str) -> PageVisit:
        """Open ``path`` (once per session) and record what happened."""
        if path in self.visits:
            return self.visits[path]
        site = self.site
        page = self.context.new_page()
        visit = PageVisit(path=path, url=site.url(path), status=None)

        def on_console(message: Any) -> None:
            if message.type != "error":
                return
            where = (message.location or {}).get("url", "")
            if where and not site.is_local(where):
                return  # a resource of another host failed to load: recorded as external
            if where == site.url("favicon.ico"):
                return  # the browser's own request for a site icon, not the book's
            visit.console_errors.append(f"{message.text} [{where}]")

        def on_request(request: Any) -> None:
            url = request.url
            if not url.startswith(("data:", "blob:", "about:")) and not site.is_local(url):
                visit.external_requests.append(url)

        def on_response(response: Any) -> None:
            if site.is_local(response.url) and response.status >= 400:
                if response.url != site.url("favicon.ico"):
                    visit.failed_local.append(f"{response.status} {response.url}")

        def on_failed(request: Any) -> None:
            if site.is_local(request.url) and request.url != site.url("favicon.ico"):
                visit.failed_local.append(f"{request.failure} {request.url}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: visit.page_errors.append(str(error)))
        page.on("request", on_request)
        page.on("response", on_response)
        page.on("requestfailed", on_failed)
        start = time.perf_counter()
        response = page.goto(visit.url, wait_until="load")
        visit.status = response.status if response is not None else None
        page.evaluate(_MATH_READY_JS)
        wait_for_widgets(page)
        page.evaluate("document.fonts.ready.then(() => true)")
        visit.load_seconds = time.perf_counter() - start
        data = page.evaluate(_COLLECT_JS)
        visit.title = data["title"]
        visit.ids = set(data["ids"])
        visit.links = data["links"]
        visit.images = data["images"]
        visit.text = data["text"]
        visit.math = data["math"]
        visit.untypeset_math = data["untypeset"]
        if path.startswith("notebooks/"):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(SCREENSHOTS / f"{Path(path).stem}.png"))
        visit.page = page
        self.visits[path] = visit
        return visit

    def evaluate(self, path: str, script: str) -> Any:
        """Run JavaScript on the page as it was visited (the tab stays open)."""
        return self.visit(path).page.evaluate(script)

    def close(self) -> None:
        """Close the tabs kept open."""
        for visit in self.visits.values():
            if visit.page is not None:
                visit.page.close()
                visit.page = None


# Widget views saved in the page, and whether the widget manager drew each of them.
WIDGETS_JS = """
() => Array.from(document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"]')).map(s => {
  const area = s.previousElementSibling;
  const drawn = !!area && area.classList.contains('widget-subarea');
  const box = drawn ? area.getBoundingClientRect() : null;
  return {drawn: drawn, height: box ? box.height : 0, width: box ? box.width : 0,
          controls: drawn ? area.querySelectorAll('.jupyter-widgets').length : 0,
          text: drawn ? (area.innerText || '').slice(0, 200) : ''};
})
"""


def wait_for_widgets(page: Any, timeout_ms: int = 15_000) -> None:
    """Wait until the widget manager has drawn every saved widget view (if the page has any)."""
    views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
    if not views:
        return
    try:
        page.wait_for_function(
            """() => Array.from(document.querySelectorAll(
                 'script[type="application/vnd.jupyter.widget-view+json"]')).every(s =>
                 s.previousElementSibling &&
                 s.previousElementSibling.classList.contains('widget-subarea') &&
                 s.previousElementSibling.childElementCount > 0)""",
            timeout=timeout_ms,
        )
    except Exception:
        pass  # the widget test reports which views were not drawn


@pytest.fixture(scope="session")
def browser(site: Site, browser_context: Any) -> Iterator[Browser]:
    """The shared browser; writes test-artifacts/browser-report.json at the end."""
    shared = Browser(site, browser_context)
    yield shared
    shared.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = {
        path: {
            "load_seconds": round(v.load_seconds, 2),
            "console_errors": v.console_errors,
            "page_errors": v.page_errors,
            "external_requests": v.external_requests,
            "failed_local": v.failed_local,
        }
        for path, v in shared.visits.items()
    }
    (ARTIFACTS / "browser-report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
