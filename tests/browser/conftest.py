"""Fixtures of the browser tests: the built book served on 127.0.0.1, headless Chromium.

The tests read the book as a reader does: each page of ``_toc.yml`` is opened once in
headless Chromium (driven by Playwright with the system's Chromium, never a downloaded
browser) and what the browser saw is kept in a :class:`PageVisit`; the tests then assert on
those visits. Run them with ``make test-browser`` (after ``make test-book``) or
``pytest tests/browser``; a plain ``pytest`` run of the whole suite leaves them out.

Environment
-----------
FAIMI_BOOK_HTML
    Folder of the built book to test (default: ``_build/html`` in the repository).
FAIMI_CHROMIUM
    Chromium (or Chrome) executable (default: ``/usr/bin/chromium``, then ``chromium``,
    ``google-chrome`` or ``google-chrome-stable`` on the PATH).
FAIMI_ARTIFACTS
    Where screenshots and the browser report go (default: ``test-artifacts``).
CI
    When ``true``, a missing Chromium, Playwright or built book fails the tests instead of
    skipping them.
"""

from browser_support import (  # noqa: F401 - fixtures and hooks that pytest looks up here
    browser,
    browser_context,
    pytest_collection_modifyitems,
    site,
)
