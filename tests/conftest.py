"""Shared test set-up: every test gets its own, empty results cache."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_results_cache(tmp_path_factory, monkeypatch):
    # Cached steps (faimi_tutorial.runner) default to $FAIMI_CACHE_DIR: a test never
    # reads another test's (or the user's) results, and never writes to the home folder.
    monkeypatch.setenv("FAIMI_CACHE_DIR", str(tmp_path_factory.mktemp("faimi-cache")))


@pytest.fixture(autouse=True)
def _figures_fit_the_book_column():
    # Every figure the package draws fits the book's text column (688 px at 100 dpi), so
    # the page shows it at full size; a wider one would be shrunk and its labels with it.
    yield
    import sys

    if "matplotlib.pyplot" not in sys.modules:
        return
    import matplotlib.pyplot as plt

    from faimi_tutorial.viz.plotting import COLUMN_WIDTH

    too_wide = [
        plt.figure(n).get_size_inches()[0]
        for n in plt.get_fignums()
        if plt.figure(n).get_size_inches()[0] > COLUMN_WIDTH + 1e-6
    ]
    plt.close("all")
    assert not too_wide, f"figures wider than the column ({COLUMN_WIDTH} in): {too_wide}"
