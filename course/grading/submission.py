"""One submission, autograded: copied into its own nbgrader course folder, graded there by a
trusted grading process (`server.py`) whose judge runs the learner's code in a fresh sandboxed
worker; its scores and failures read back from that folder's gradebook and notebook.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from course.authoring import exercises
from course.grading import autograde, feedback
from course.grading.collect import NAME_RULE, STUDENT_ID
from course.grading.prepare import Setup
from course.grading.results import Result
from course.grading.server import GraderGone, Server

CELL_LINE = "failed cell "
WORK_ID = "learner"  # the student id inside each per-submission course folder
MAX_NOTEBOOK_MB = 20  # of code and text, once stored outputs and attachments are removed
MAX_FILE_MB = 200  # of the notebook as submitted
ATTACHMENT = re.compile(r"attachment:[^)\s\"']*")


def tidied(nb) -> tuple[object, list[str]]:
    """The notebook as grading reads it, and what was done, in words: stored outputs and
    attachments removed (the grade re-executes the code); a grade id used twice resolved as
    running top to bottom does (a test cell's later copies dropped, nbgrader restores the
    first; a solution cell's earlier copies kept as plain code, the last one graded)."""
    notes = []
    if any(c.get("outputs") or c.get("attachments") for c in nb.cells):
        notes.append("stored outputs and attachments removed")
    for cell in nb.cells:
        if cell.pop("attachments", None):  # its links to them go too (nbconvert refuses them)
            cell.source = ATTACHMENT.sub("", cell.source)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    last: dict[str, int] = {}
    for i, cell in enumerate(nb.cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None:
            last[grade_id] = i
    kept, seen = [], set()
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if grade_id is None or (grade_id not in seen and last[grade_id] == i):
            seen.add(grade_id)
            kept.append(cell)
        elif meta.get("solution"):  # an earlier copy of a solution cell: plain code
            cell.metadata.pop("nbgrader")
            kept.append(cell)
            notes.append(f"an earlier copy of {grade_id} run as plain code")
        elif grade_id not in seen:  # the first copy of a test cell is the test
            seen.add(grade_id)
            kept.append(cell)
        else:
            notes.append(f"a second copy of {grade_id} dropped")
    nb.cells = kept
    return nb, notes


def grade_one(student: str, notebook: Path | None, setup: Setup, *, scratch: Path, out: Path,
              slot: int = 0, server: Server | None = None, more: bool = True) -> Result:
    """Autograde one submission in its own course folder; never raises. `server`: the
    slot's grading process (by default one is started for this submission alone); `more`:
    another submission follows in it (it starts that one's worker ahead)."""
    assignment = setup.assignment
    started = time.monotonic()
    if not STUDENT_ID.match(student) or ".." in student:
        return Result(student, f"invalid student name: {NAME_RULE}")
    if notebook is None:
        return Result(student, f"missing notebook: no {assignment}.ipynb in the student's folder")
    if notebook.is_symlink():
        return Result(student, "refused: the submission is a symbolic link")
    try:
        size = notebook.stat().st_size
        if size > MAX_FILE_MB * 2**20:
            return Result(student, f"notebook too large: {size / 2**20:.0f} MiB "
                                   f"(at most {MAX_FILE_MB} MiB)")
        nb = nbformat.read(notebook, as_version=4)
        nbformat.validate(nb)
        nb, notes = tidied(nb)
        size = len(nbformat.writes(nb).encode())
        if size > MAX_NOTEBOOK_MB * 2**20:
            return Result(student, f"notebook too large: {size / 2**20:.0f} MiB of code and "
                                   f"text (at most {MAX_NOTEBOOK_MB} MiB)")
    except Exception as error:  # invalid JSON, not a notebook, bad schema...
        return Result(student, f"invalid notebook: {type(error).__name__} (not a valid "
                               "Jupyter notebook)")

    work = Path(tempfile.mkdtemp(prefix="student-", dir=scratch))
    result = Result(student, "graded")
    try:
        shutil.copytree(setup.template, work, dirs_exist_ok=True)
        (work / "nbgrader_config.py").write_text(
            exercises.nbgrader_config(work, timeout=int(setup.timeout)) + autograde.CONFIG)
        target = work / "submitted" / WORK_ID / assignment
        target.mkdir(parents=True)
        nbformat.write(nb, target / f"{assignment}.ipynb")
        if notes:
            result.status = f"graded ({'; '.join(notes)})"
        settings = dict(source=str(setup.source), runtime=str(setup.runtime),
                        limits=asdict(setup.limits), timeout=setup.timeout, slot=slot,
                        sandboxed=setup.sandboxed, spare=more and server is not None)
        request = dict(kind="grade", work=str(work), assignment=assignment, student=WORK_ID,
                       settings=settings)
        if server is None:
            with Server(work, slot) as alone:
                reply = alone.ask(request, setup.timeout + 300)
        else:
            reply = server.ask(request, setup.timeout + 300)
        result.log = str(reply.get("log", ""))[-20_000:]
        result.peak_mb, result.grader_mb = reply.get("worker_mb"), reply.get("grader_mb")
        if not reply.get("ok"):
            first = next((line for line in result.log.splitlines() if "failed" in line),
                         "the grading process reported an error")
            result.status = f"grading failed: {first}"
            return result
        result.score, result.max_score, result.parts = read_scores(work, assignment)
        result.log += "".join(f"\n{CELL_LINE}{line}" for line in failures(work, assignment))
    except subprocess.TimeoutExpired:
        result.status = f"timed out after {setup.timeout:.0f} s"
        return result
    except GraderGone as error:
        result.status = f"grading failed: {error}"
        return result
    except Exception as error:  # MissingEntry, ...
        result.status = f"grading failed: {type(error).__name__}: {str(error)[:300]}"
        return result
    finally:
        result.seconds = time.monotonic() - started

    feedback.keep(work / "feedback" / WORK_ID / assignment / f"{assignment}.html", result,
                  out / "feedback" / student / f"{assignment}.html")
    shutil.rmtree(work, ignore_errors=True)
    return result


def read_scores(work: Path, assignment: str) -> tuple[float, float, dict]:
    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gb:
        submission = gb.find_submission(assignment, WORK_ID)
        notebook = gb.find_submission_notebook(assignment, assignment, WORK_ID)
        parts = {g.name: float(g.score) for g in notebook.grades}
        return float(submission.score), float(submission.max_score), parts


def failures(work: Path, assignment: str) -> list[str]:
    """`grade id: error` for each failing test cell of the autograded notebook."""
    path = work / "autograded" / WORK_ID / assignment / f"{assignment}.ipynb"
    if not path.is_file():
        return []
    out = []
    for cell in nbformat.read(path, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                label = meta.get("grade_id", "a cell")
                out.append(f"{label}: {output.get('ename')}: {output.get('evalue')}"[:600])
    return out
