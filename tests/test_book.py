"""The book builds with warnings as errors, every cell runs clean, and it needs no network."""

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
