"""What grading writes: the class gradebook (nbgrader's), grades.csv, the export across
assignments, and OUT/results.json, the ledger that lets a killed batch resume.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from course.authoring import exercises


@dataclass
class Result:
    student: str
    status: str  # "graded" or what went wrong, in words (never the submission's contents)
    score: float = 0.0
    max_score: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    feedback: Path | None = None
    log: str = ""
    digest: str = ""
    seconds: float = 0.0
    peak_mb: float | None = None  # the learner's sandbox, all its processes (memory cgroup)
    grader_mb: float | None = None  # the trusted grading process of its slot (largest RSS)


def digest(notebook: Path, source: Path) -> str:
    """What a grade depends on: the submission, the instructor notebook and the grader."""
    h = hashlib.sha256()
    for path in [notebook, source, *sorted(Path(__file__).parent.glob("*.py")),
                 *sorted((exercises.ROOT / "course" / "checks").rglob("*.py"))]:
        h.update(path.read_bytes())
    return h.hexdigest()


def record(gradebook: Path, assignment: str, result: Result) -> None:
    """Write one student's scores into the class gradebook (trusted side only).

    A student who could not be graded is in the gradebook with no submission for this
    assignment, so an older score never looks current; the status is in grades.csv.
    """
    with Gradebook(f"sqlite:///{gradebook}") as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # raised inside nbgrader's add_submission
        gb.update_or_create_student(result.student)
        try:
            gb.remove_submission(assignment, result.student)
        except MissingEntry:
            pass
        if not result.status.startswith("graded"):
            return
        gb.add_submission(assignment, result.student)
        notebook = gb.find_submission_notebook(assignment, assignment, result.student)
        for grade in notebook.grades:
            grade.auto_score = result.parts.get(grade.name, 0.0)
        gb.db.commit()


CSV_HEAD = ["assignment", "student", "status", "score", "max_score"]


def write_csv(path: Path, results: list[Result], part_names: list[str],
              assignment: str = "") -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*CSV_HEAD, *part_names])
        for r in results:
            writer.writerow([assignment, r.student, r.status, f"{r.score:g}",
                             f"{r.max_score:g}",
                             *(f"{r.parts.get(p, 0.0):g}" for p in part_names)])


class Ledger:
    """OUT/results.json: each student's last result and what it was computed from.

    Written atomically after every student, so a batch killed at any point and run again
    completes the rest: unchanged, graded submissions are kept, nobody is lost or doubled.
    """

    def __init__(self, path: Path):
        self.path = path
        try:
            self.entries: dict[str, dict] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def reusable(self, student: str, key: str, out: Path) -> Result | None:
        entry = self.entries.get(student)
        if not entry or entry.get("digest") != key \
                or not str(entry.get("status", "")).startswith("graded"):
            return None
        result = Result(**{k: v for k, v in entry.items() if k != "feedback"})
        if entry.get("feedback"):
            result.feedback = out / entry["feedback"]
            if not result.feedback.is_file():
                return None
        return result

    def save(self, result: Result, out: Path) -> None:
        entry = asdict(result)
        entry["log"] = ""
        entry["feedback"] = (str(result.feedback.relative_to(out)) if result.feedback else None)
        self.entries[result.student] = entry
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries, indent=1, ensure_ascii=False))
        os.replace(tmp, self.path)


EXPORT_HEAD = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name",
               "email", "raw_score", "late_submission_penalty", "score", "max_score"]


def write_export(path: Path, results: dict[str, list[Result]]) -> None:
    """One CSV across assignments, in the layout of `nbgrader export`: a row per assignment
    and student, every student of the class in every assignment (0 when not graded)."""
    students = sorted({r.student for rs in results.values() for r in rs})
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(EXPORT_HEAD)
        for assignment, rs in results.items():
            by_student = {r.student: r for r in rs}
            max_score = max((r.max_score for r in rs), default=0.0)
            for student in students:
                r = by_student.get(student)
                score = r.score if r is not None and r.status.startswith("graded") else 0.0
                writer.writerow([assignment, "", "", student, "", "", "", f"{score:g}", "0",
                                 f"{score:g}", f"{max_score:g}"])


def summary(results: list[Result]) -> str:
    width = max([len(r.student) for r in results] + [7])
    lines = [f"{'student':<{width}}  {'score':>11}  status"]
    for r in results:
        score = f"{r.score:g}/{r.max_score:g}" if r.status.startswith("graded") else "-"
        lines.append(f"{r.student:<{width}}  {score:>11}  {r.status}")
    return "\n".join(lines)


def to_json(result: Result, out: Path) -> dict:
    entry = asdict(result)
    entry["feedback"] = str(result.feedback.relative_to(out)) if result.feedback else None
    return entry
