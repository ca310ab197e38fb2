"""The book builds with warnings as errors, every cell runs clean, and it needs no network; the
table of contents pairs each chapter with its exercise; chapters start with the hidden set-up."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import ROOT, toc_files

pytestmark = pytest.mark.slow


def test_every_page_in_the_toc_is_built(book):
    for name in toc_files():
        assert (book / f"{name}.html").is_file(), name


def test_no_cell_prints_an_error_or_a_warning(book):
    executed = sorted((ROOT / "_build" / "jupyter_execute").rglob("*.ipynb"))
    assert executed, "no executed chapter found"
    for path in executed:
        for cell in json.loads(path.read_text())["cells"]:
            for output in cell.get("outputs", []):
                assert output["output_type"] != "error", (path.name, output.get("ename"))
                if output["output_type"] == "stream":
                    assert output["name"] != "stderr", (path.name, "".join(output["text"]))
                    assert "Warning" not in "".join(output["text"]), path.name


def test_every_chapter_has_figures_and_they_exist(book):
    for html_path in sorted((book / "chapters").glob("*.html")):
        text = html_path.read_text()
        images = re.findall(r"<img[^>]+src=\"([^\"]+\.png)\"", text)
        assert images, f"{html_path.name} has no figure"
        for src in images:
            assert (html_path.parent / src).is_file(), src


def test_math_is_served_locally(book):
    assert (book / "_static" / "mathjax" / "tex-chtml.js").is_file()
    for html_path in book.rglob("*.html"):
        text = html_path.read_text()
        assert "cdn.jsdelivr.net" not in text and "mathjax.org" not in text, html_path.name


def test_exercises_appear_unexecuted_with_a_download_link(book):
    for name in [f for f in toc_files() if f.startswith("exercises/")]:
        text = (book / f"{name}.html").read_text()
        assert "NotImplementedError" in re.sub(r"<[^>]+>", "", text)
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
        stem = Path(name).name
        assert f"{stem}.ipynb" in text, "no download link to the notebook"


def test_each_exercise_comes_right_after_its_chapter():
    names = toc_files()
    for i, name in enumerate(names):
        if name.startswith("exercises/release/"):
            topic = Path(name).name
            assert i > 0 and names[i - 1] == f"chapters/{topic}", (
                f"{name} must follow chapters/{topic} in _toc.yml, not {names[i - 1]}")


def test_chapters_start_with_the_hidden_setup_cell():
    for name in [f for f in toc_files() if f.startswith("chapters/")]:
        text = (ROOT / f"{name}.md").read_text()
        first = re.search(r"```\{code-cell\}[^\n]*\n(.*?)```", text, flags=re.S)
        assert first, f"{name} has no code cell"
        cell = first.group(1)
        assert re.search(r"^:tags: \[[^\]]*remove-cell", cell, flags=re.M), (
            f"{name}: the first code cell must be hidden (:tags: [remove-cell])")
        assert "from course.book.chapter import setup" in cell and "setup(" in cell, (
            f"{name}: the first code cell must run course.book.chapter.setup()")
