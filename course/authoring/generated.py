"""What says a generated exercise notebook is generated, and from what: its metadata (both
notebooks) and a first markdown cell in the instructor notebook, which nbgrader's
`generate_assignment` drops (`DropBanner`), so learners never see it.
"""

from __future__ import annotations

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

KEY = "course"  # the notebook's and the banner cell's metadata key


def origin(name: str) -> dict:
    """Where exercise `name` comes from, as the notebook metadata says it."""
    return {"generated_from": [f"exercises/templates/{name}.md", "solutions/"],
            "generated_by": f"python -m course build-exercises {name}"}


def banner(name: str) -> nbformat.NotebookNode:
    """The instructor notebook's first cell: generated, from what, and how to rebuild it."""
    cell = nbformat.v4.new_markdown_cell(
        f"*Instructor notebook, generated from `exercises/templates/{name}.md` and `solutions/` "
        f"by `python -m course build-exercises {name}`: edit those, not this notebook. "
        "nbgrader's `generate_assignment` makes the student notebook from it, without this "
        "cell.*")
    cell.metadata[KEY] = {"banner": True}
    cell["id"] = "generated"
    return cell


class DropBanner(NbGraderPreprocessor):
    """nbgrader's release leaves out the instructor notebook's banner cell."""

    def preprocess(self, nb, resources):
        nb.cells = [c for c in nb.cells if not c.metadata.get(KEY, {}).get("banner")]
        return nb, resources
