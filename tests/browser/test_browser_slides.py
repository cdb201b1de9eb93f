"""A slide deck of `make slides` opened in headless Chromium with no network:
reveal.js starts, every slide is there, math is typeset, nothing is fetched from
another host and no script fails. The deck is built from the small notebook of
tests/test_slides.py, so this needs neither the book build nor an executed chapter."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import sys
import threading
from pathlib import Path
from typing import Any

import nbformat
import pytest

from browser_support import SCREENSHOTS, _QuietHandler, _Server

pytest.importorskip("nbconvert", reason="nbconvert is needed for the slides")

ROOT = Path(__file__).resolve().parents[2]


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


make_slides = _module("make_slides", ROOT / "scripts" / "make_slides.py")
fixture = _module("slides_fixture", ROOT / "tests" / "test_slides.py")


@pytest.fixture(scope="module")
def deck_url(tmp_path_factory):
    work = tmp_path_factory.mktemp("slides-browser")
    notebook = work / "fixture.ipynb"
    nbformat.write(fixture.fixture_notebook(), notebook)
    out = work / "out"
    make_slides.build([notebook], out, executed_dir=work / "none", execute=False,
                      log=lambda *a: None)
    server = _Server(("127.0.0.1", 0),
                     functools.partial(_QuietHandler, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fixture.html"
    finally:
        server.shutdown()
        server.server_close()


def test_deck_opens_offline_without_errors(browser_context: Any, deck_url: str) -> None:
    base = deck_url.rsplit("/", 1)[0]
    errors, external, failed = [], [], []
    page = browser_context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    def on_console(message):
        where = message.location.get("url", "")
        if message.type == "error" and not where.endswith("favicon.ico"):
            errors.append(f"{message.text} {where}")

    page.on("console", on_console)
    page.on("request", lambda r: external.append(r.url)
            if not r.url.startswith((base, "data:", "blob:", "about:")) else None)
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("favicon.ico") else None)
    try:
        page.goto(deck_url, wait_until="load")
        page.wait_for_function("() => window.Reveal && Reveal.isReady()")
        page.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        page.evaluate("() => MathJax.startup.promise.then(() => true)")
        total = page.evaluate("() => Reveal.getTotalSlides()")
        horizontal = page.evaluate("() => Reveal.getHorizontalSlides().length")
        typeset = page.evaluate(
            "() => document.querySelectorAll('mjx-container').length")
        page.evaluate("() => Reveal.slide(1, 0)")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "slides-fixture.png"))
    finally:
        page.close()
    assert errors == [], f"script errors in the deck: {errors}"
    assert failed == [], f"local files that did not load: {failed}"
    assert external == [], f"the deck fetched from other hosts: {external}"
    assert (horizontal, total) == (5, 8)
    assert typeset >= 1, "the math on the slides was not typeset"
