"""A whole exercise graded in process, for the tests: the fast proof of what a slip or a
catalogued mistake costs (the nbgrader run is tested separately)."""

from __future__ import annotations

import io
import linecache
from contextlib import redirect_stdout
from dataclasses import dataclass
from typing import Any

from course.authoring.source import made
from course.checks.engine.catalogue import Mistake, Slip
from course.checks.engine.notebook import demonstrations, notebook_cells


@dataclass
class TestCell:
    __test__ = False  # not a pytest test class

    grade_id: str
    points: int
    failure: str | None  # the learner-facing message, None if it passed


def grade_in_process(exercise: str, *, slip: Slip | None = None,
                     mistake: Mistake | None = None, blank: bool = False) -> list[TestCell]:
    """Run an exercise's instructor notebook (hidden tests included) in this process, with one
    slip or one catalogued mistake made in its solution cell, or with every region the learner
    writes left as released (`blank`); return every test cell's result."""
    cells = notebook_cells(exercise)
    last = max(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("grade"))
    namespace: dict[str, Any] = {"__name__": "__main__"}
    results = []
    changed = slip is None and mistake is None and not blank  # before a change: the reference's
    demos = demonstrations(exercise)
    for index, cell in enumerate(cells[:last + 1]):  # the cells after the last test: ungraded
        if cell.cell_type != "code" or index in demos:
            continue
        meta = cell.metadata.get("nbgrader", {})
        source = cell.source
        if meta.get("solution"):
            source = made(source, mistake=mistake, slip=slip, blank=blank)
            changed = changed or source != cell.source
        if meta.get("grade") and not changed:  # unchanged code before it: the reference's result
            results.append(TestCell(meta["grade_id"], int(meta["points"]), None))
            continue
        filename = f"<cell {index}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            with redirect_stdout(io.StringIO()):
                exec(compile(source, filename, "exec", dont_inherit=True), namespace)
            failure = None
        except Exception as error:  # a failing cell: its message is what the learner reads
            failure = f"{type(error).__name__}: {error}"
        if meta.get("grade"):
            results.append(TestCell(meta["grade_id"], int(meta["points"]), failure))
    return results


def hints_in(message: str) -> list[str]:
    """The hints a failure message gives ("Likely mistake: ..." / "Or: ...", one line each)."""
    return [line.split(": ", 1)[1] for line in message.splitlines()
            if line.startswith(("Likely mistake: ", "Or: "))]
