"""Line lengths: modules within 88 characters, chapters' code cells within 79 (they
are read in a narrow column and printed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted((ROOT / "faimi_tutorial").rglob("*.py"))
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def long_lines(text: str, limit: int) -> list[tuple[int, int]]:
    """(line number, length) of every line longer than ``limit``."""
    return [(i, len(line)) for i, line in enumerate(text.splitlines(), 1)
            if len(line) > limit]


def test_long_lines_are_found():
    assert long_lines("short\n" + "x" * 89 + "\n", 88) == [(2, 89)]
    assert long_lines("x" * 88, 88) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_lines_within_88(path):
    assert not long_lines(path.read_text(), 88)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_code_within_79(path):
    cells = json.loads(path.read_text())["cells"]
    bad = [(n, long_lines("".join(c["source"]), 79)) for n, c in enumerate(cells)
           if c["cell_type"] == "code"]
    assert not [b for b in bad if b[1]], [b for b in bad if b[1]]
