"""Shared test set-up: every test gets its own, empty results cache."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_results_cache(tmp_path_factory, monkeypatch):
    # Cached steps (faimi_tutorial.runner) default to $FAIMI_CACHE_DIR: a test never
    # reads another test's (or the user's) results, and never writes to the home folder.
    monkeypatch.setenv("FAIMI_CACHE_DIR", str(tmp_path_factory.mktemp("faimi-cache")))
