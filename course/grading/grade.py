"""`python -m course grade`: a class's submissions -> gradebook, grades.csv and feedback.

Each submission is autograded on its own, in a fresh temporary nbgrader course folder holding
only the instructor notebook, that one submission and a throw-away gradebook, inside a sandbox.
The trusted parent reads the scores back and writes them into the class gradebook (nbgrader's
`Gradebook`). Original submissions are only ever read. A broken or hostile submission is
reported and never stops the batch.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from course import exercises
from course.grading import sandbox

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


@dataclass
class Result:
    student: str
    status: str  # "graded" or what went wrong, in words
    score: float = 0.0
    max_score: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    feedback: Path | None = None
    log: str = ""


# ---------------------------------------------------------------- collecting submissions


def _safe_extract(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = (target / info.filename).resolve()
            if not path.is_relative_to(target.resolve()):
                raise ValueError(f"{archive.name}: unsafe path in zip: {info.filename}")
        zf.extractall(target)


def collect(submissions: Path, assignment: str, scratch: Path) -> dict[str, Path | None]:
    """student -> notebook path (None when the student's folder holds no notebook).

    Accepts a folder `SUBMISSIONS/<student>/<assignment>.ipynb`, a folder of
    `<student>_<assignment>.ipynb` files (LMS exports), or a .zip of either.
    """
    if submissions.is_file() and submissions.suffix == ".zip":
        root = scratch / "unzipped"
        root.mkdir()
        _safe_extract(submissions, root)
        entries = [p for p in root.iterdir() if not p.name.startswith(("__MACOSX", "."))]
        submissions = entries[0] if len(entries) == 1 and entries[0].is_dir() and not any(
            entries[0].glob(f"{assignment}.ipynb")) else root
    if not submissions.is_dir():
        raise FileNotFoundError(f"no submissions folder or zip at {submissions}")
    found: dict[str, Path | None] = {}
    for entry in sorted(submissions.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            exact = entry / f"{assignment}.ipynb"
            others = sorted(entry.rglob("*.ipynb"))
            found[entry.name] = exact if exact.is_file() else (others[0] if len(others) == 1
                                                                else None)
        elif entry.suffix == ".ipynb":
            found[entry.stem.removesuffix(f"_{assignment}")] = entry
    return found


# ---------------------------------------------------------------- one student


def _read_scores(work: Path, assignment: str, student: str) -> tuple[float, float, dict]:
    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gb:
        submission = gb.find_submission(assignment, student)
        notebook = gb.find_submission_notebook(assignment, assignment, student)
        parts = {g.name: float(g.score) for g in notebook.grades}
        return float(submission.score), float(submission.max_score), parts


def grade_one(student: str, notebook: Path | None, *, assignment: str, template: Path,
              scratch: Path, out: Path, hide: list[Path], timeout: float, memory_gb: float,
              sandboxed: bool) -> Result:
    """Autograde one submission in its own course folder; never raises."""
    if not STUDENT_ID.match(student):
        return Result(student, "invalid student folder name")
    if notebook is None:
        return Result(student, f"missing notebook: no {assignment}.ipynb in the student's folder")
    try:
        nbformat.validate(nbformat.read(notebook, as_version=4))
    except Exception as error:  # invalid JSON, not a notebook, bad schema...
        return Result(student, f"invalid notebook: {type(error).__name__}: {str(error)[:200]}")

    work = scratch / f"student-{student}"
    shutil.copytree(template, work)
    (work / "nbgrader_config.py").write_text(exercises.nbgrader_config(work))
    target = work / "submitted" / student / assignment
    target.mkdir(parents=True)
    shutil.copyfile(notebook, target / f"{assignment}.ipynb")

    log = []
    nbgrader = [sys.executable, "-m", "nbgrader"]
    steps = [[*nbgrader, "autograde", assignment, "--student", student, "--force"],
             [*nbgrader, "generate_feedback", assignment, "--student", student, "--force"]]
    try:
        for argv in steps:
            proc = sandbox.run(argv, work, hide=hide, timeout=timeout, memory_gb=memory_gb,
                               sandboxed=sandboxed)
            log.append(proc.stdout)
        score, max_score, parts = _read_scores(work, assignment, student)
    except subprocess.TimeoutExpired:
        return Result(student, f"timed out after {timeout:.0f} s", log="\n".join(log))
    except Exception as error:  # MissingEntry, a gradebook the submission destroyed, ...
        return Result(student, f"grading failed: {type(error).__name__}: {error}",
                      log="\n".join(log))

    result = Result(student, "graded", score, max_score, parts, log="\n".join(log))
    html = work / "feedback" / student / assignment / f"{assignment}.html"
    if html.is_file():
        result.feedback = out / "feedback" / student / f"{assignment}.html"
        result.feedback.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(html, result.feedback)
    return result


# ---------------------------------------------------------------- the class


def record(gradebook: Path, assignment: str, result: Result) -> None:
    """Write one student's scores into the class gradebook (trusted side only)."""
    with Gradebook(f"sqlite:///{gradebook}") as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # raised inside nbgrader's add_submission
        gb.update_or_create_student(result.student)
        try:
            gb.remove_submission(assignment, result.student)
        except MissingEntry:
            pass
        gb.add_submission(assignment, result.student)
        notebook = gb.find_submission_notebook(assignment, assignment, result.student)
        for grade in notebook.grades:
            grade.auto_score = result.parts.get(grade.name, 0.0)
        gb.db.commit()


def write_csv(path: Path, results: list[Result], part_names: list[str]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "status", "score", "max_score", *part_names])
        for r in results:
            writer.writerow([r.student, r.status, f"{r.score:g}", f"{r.max_score:g}",
                             *(f"{r.parts.get(p, 0.0):g}" for p in part_names)])


def grade_class(submissions: Path, assignment: str, out: Path, *, jobs: int = 2,
                timeout: float = 600, memory_gb: float = 8, sandboxed: bool = True,
                progress=print) -> list[Result]:
    """Grade every submission; write OUT/gradebook.db, OUT/grades.csv and OUT/feedback/."""
    source = exercises.SOURCE / assignment / f"{assignment}.ipynb"
    if not source.is_file():
        raise FileNotFoundError(f"unknown assignment {assignment!r}: no {source}")
    if sandboxed:
        sandbox.command(["true"], out)  # raises SandboxMissing with advice
    submissions, out = Path(submissions).resolve(), Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        scratch = Path(tmp)
        found = collect(submissions, assignment, scratch)
        source_nb = nbformat.read(source, as_version=4)
        template = scratch / "template"
        exercises.make_course(template, assignment, source_nb)
        shutil.rmtree(template / "release")
        # The class gradebook is a real nbgrader course folder too.
        if not (out / "source" / assignment).is_dir():
            (out / "source" / assignment).mkdir(parents=True)
            nbformat.write(source_nb, out / "source" / assignment / f"{assignment}.ipynb")
        (out / "nbgrader_config.py").write_text(exercises.nbgrader_config(out))
        exercises.nbgrader(out, "generate_assignment", assignment, "--force")
        with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
            part_names = [c.name for c in gb.find_notebook(assignment, assignment).grade_cells]
            max_score = float(gb.find_assignment(assignment).max_score)

        hide = [submissions if submissions.is_dir() else submissions.parent, out]
        results: list[Result] = []
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {pool.submit(grade_one, student, nb, assignment=assignment,
                                   template=template, scratch=scratch, out=out, hide=hide,
                                   timeout=timeout, memory_gb=memory_gb,
                                   sandboxed=sandboxed): student
                       for student, nb in found.items()}
            for future in as_completed(futures):
                result = future.result()
                if result.status == "graded":
                    record(out / "gradebook.db", assignment, result)
                else:
                    result.max_score = max_score
                results.append(result)
                progress(f"  {result.student}: {result.status}"
                         + (f" {result.score:g}/{result.max_score:g}"
                            if result.status == "graded" else ""))
    results.sort(key=lambda r: r.student)
    write_csv(out / "grades.csv", results, part_names)
    return results


def summary(results: list[Result]) -> str:
    width = max([len(r.student) for r in results] + [7])
    lines = [f"{'student':<{width}}  {'score':>11}  status"]
    for r in results:
        score = f"{r.score:g}/{r.max_score:g}" if r.status == "graded" else "-"
        lines.append(f"{r.student:<{width}}  {score:>11}  {r.status}")
    return "\n".join(lines)
