"""Every line of a chapter's code cells fits the book's column as written: the page never wraps
code (``_static/course.css``), and ``tests/book/test_browser.py`` checks in Chromium that no chapter
code block scrolls at a 1280-px window."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT, toc_files

CODE_COLUMNS = 88  # what fits the column at a 1280-px window; AUTHORING.md says the same
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", flags=re.S | re.M)
CHAPTERS = [name for name in toc_files() if name.startswith("chapters/")]


def long_lines(text: str) -> list[str]:
    """The code-cell lines of a MyST chapter longer than CODE_COLUMNS, with their numbers."""
    found = []
    for cell in CELL.finditer(text):
        first = text.count("\n", 0, cell.start(1)) + 1
        for i, line in enumerate(cell.group(1).splitlines()):
            if len(line) > CODE_COLUMNS:
                found.append(f"line {first + i} ({len(line)} characters): {line.strip()[:60]}")
    return found


def test_long_lines_are_found():
    text = "```{code-cell} ipython3\nx = 1\n" + "y" * 89 + "\n```\n" + "z" * 100 + "\n"
    assert long_lines(text) == ["line 3 (89 characters): " + "y" * 60]


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_code_fits_the_column(name):
    found = long_lines((ROOT / f"{name}.md").read_text())
    assert not found, f"{name}: {len(found)} code lines over {CODE_COLUMNS} columns: {found[:5]}"
