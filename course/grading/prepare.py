"""Preparing to grade an assignment: the per-submission course folder to copy (its gradebook
released once), the worker's runtime, and the class folder whose gradebook takes the scores.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from course.authoring import exercises
from course.grading import runtime, sandbox
from course.grading.server import Server


@dataclass
class Setup:
    """What every submission of one assignment is graded with."""

    assignment: str
    template: Path  # the per-submission course folder, ready to copy
    source: Path  # the instructor notebook
    runtime: Path  # what the learner's worker sees
    limits: sandbox.Limits
    timeout: float
    sandboxed: bool


def generate(root: Path, assignment: str, server: Server | None = None) -> None:
    """nbgrader generate_assignment in the course folder ROOT (in `server` when given)."""
    if server is None:
        exercises.generate_assignment(root, assignment)
        return
    reply = server.ask(dict(kind="generate", root=str(root), assignment=assignment), 600)
    if not reply.get("ok"):
        raise RuntimeError(f"nbgrader generate_assignment failed:\n{reply.get('log')}")


def prepare(assignment: str, scratch: Path, *, timeout: float, limits: sandbox.Limits,
            sandboxed: bool, server: Server | None = None) -> Setup:
    source = exercises.SOURCE / assignment / f"{assignment}.ipynb"
    if not source.is_file():
        raise FileNotFoundError(f"unknown assignment {assignment!r}: no {source}")
    source_nb = nbformat.read(source, as_version=4)
    template = scratch / "template"
    exercises.make_course(template, assignment, source_nb,
                          release=lambda root, name: generate(root, name, server))
    shutil.rmtree(template / "release")
    (template / "nbgrader_config.py").unlink()
    folder = runtime.build_runtime(scratch / "runtime", source_nb)
    return Setup(assignment, template, source, folder, limits, timeout, sandboxed)


def class_folder(out: Path, assignment: str,
                 server: Server | None = None) -> tuple[list[str], float]:
    """Make OUT a real nbgrader course folder whose source matches the current exercise."""
    source = exercises.SOURCE / assignment / f"{assignment}.ipynb"
    mine = out / "source" / assignment / f"{assignment}.ipynb"
    if not mine.is_file() or mine.read_bytes() != source.read_bytes():
        mine.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, mine)  # the exercise changed: refresh the class source
    (out / "nbgrader_config.py").write_text(exercises.nbgrader_config(out))
    generate(out, assignment, server)
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        part_names = [c.name for c in gb.find_notebook(assignment, assignment).grade_cells]
        max_score = float(gb.find_assignment(assignment).max_score)
    return part_names, max_score
