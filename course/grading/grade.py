"""`python -m course grade`: a class's submissions -> gradebook, grades.csv and feedback, in
steps with one job each: collect, prepare, canary, grade each submission (in parallel job
slots), write the results. AUTHORING.md, "Grading", tells the design.
"""

from __future__ import annotations

import contextlib
import json
import queue
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

from course.authoring import exercises
from course.capstone import EXERCISE as CAPSTONE
from course.grading import sandbox
from course.grading.collect import extract, find, present
from course.grading.prepare import Setup, class_folder, prepare
from course.grading.results import Ledger, Result, digest, record, to_json, write_csv, write_export
from course.grading.server import Server
from course.grading.submission import CELL_LINE, grade_one


class GradingBroken(RuntimeError):
    """The grader itself does not work here (the canary failed); no grades were written."""


_PASSED: set[str] = set()  # canaries already passed in this process (same grader, same notebook)


def canary(setup: Setup, scratch: Path, server: Server | None = None) -> None:
    """Grade the instructor notebook first, the same way (the first submission's worker
    starts as it ends); anything but full marks stops."""
    key = json.dumps([digest(setup.source, setup.source), asdict(setup.limits), setup.timeout,
                      setup.sandboxed])
    if key in _PASSED:
        return
    result = grade_one("instructor", setup.source, setup, scratch=scratch, out=scratch / "canary",
                       server=server)
    graded = result.status.startswith("graded")
    if graded and result.max_score > 0 and result.score == result.max_score:
        _PASSED.add(key)
        return
    cells = [line for line in result.log.splitlines() if line.startswith(CELL_LINE)]
    distinct = list(dict.fromkeys(line.split(": ", 1)[1] for line in cells))[:4]
    lines = distinct or [line for line in result.log.splitlines() if line.strip()][-8:]
    raise GradingBroken(
        f"the grader does not work here: the instructor notebook of {setup.assignment} got "
        f"{result.status}"
        + (f" {result.score:g}/{result.max_score:g}" if graded else "")
        + " instead of full marks, so no student was graded and no grades were written.\n"
        "Cause:\n  " + "\n  ".join(lines))


def grade_class(submissions: Path, assignment: str, out: Path, *, jobs: int = 2,
                timeout: float = 600, memory_gb: float = 4, sandboxed: bool = True,
                limits: sandbox.Limits | None = None, progress=print,
                strict: bool = False) -> list[Result]:
    """Grade every submission; write OUT/gradebook.db, OUT/grades.csv and OUT/feedback/.

    The instructor notebook is graded first (the canary): unless it gets full marks,
    GradingBroken is raised and nothing is written. Unchanged submissions already graded
    (OUT/results.json) are not graded again.
    """
    source = exercises.SOURCE / assignment / f"{assignment}.ipynb"
    if not source.is_file():
        raise FileNotFoundError(f"unknown assignment {assignment!r}: no {source}")
    if assignment == CAPSTONE:
        raise ValueError(f"{CAPSTONE} is not auto-graded: it collects and trains the learner's "
                         "whole workspace, which a submission of one notebook does not hold; "
                         "its checks run in the learner's own kernel")
    if sandboxed:
        sandbox.require()  # raises SandboxMissing with advice
    limits = limits or sandbox.Limits(memory_gb=memory_gb)
    submissions, out = Path(submissions).resolve(), Path(out).resolve()

    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp, \
            contextlib.ExitStack() as stack:
        scratch = Path(tmp)
        scratch.chmod(0o711)  # the worker's user reaches the runtime, nothing else
        # One trusted grading process per job slot, loading while the rest is prepared.
        servers = [stack.enter_context(Server(scratch, slot)) for slot in range(max(1, jobs))]
        found = find(submissions, assignment, scratch, strict=strict)
        setup = prepare(assignment, scratch, timeout=timeout, limits=limits,
                        sandboxed=sandboxed, server=servers[0])
        canary(setup, scratch, servers[0])
        out.mkdir(parents=True, exist_ok=True)
        part_names, max_score = class_folder(out, assignment, servers[0])
        ledger = Ledger(out / "results.json")
        lock = threading.Lock()
        slots: queue.Queue[int] = queue.Queue()
        for slot in range(max(1, jobs)):
            slots.put(slot)

        waiting = [len(found.notebooks)]  # submissions no job has begun

        def one(student: str, notebook: Path | None) -> Result:
            with lock:
                waiting[0] -= 1
                more = waiting[0] > 0  # so the slot starts a worker ahead
            if student in found.problems:
                return Result(student, found.problems[student])
            key = digest(notebook, source) if notebook is not None and notebook.is_file() \
                and not notebook.is_symlink() else ""
            if key and (kept := ledger.reusable(student, key, out)) is not None:
                kept.status = "graded"
                return kept
            slot = slots.get()
            try:
                result = grade_one(student, notebook, setup, scratch=scratch, out=out,
                                   slot=slot, server=servers[slot], more=more)
            finally:
                slots.put(slot)
            result.digest = key
            if student in found.notes and result.status.startswith("graded"):
                said = result.status.removeprefix("graded").strip(" ()")
                result.status = f"graded ({'; '.join(filter(None, [found.notes[student], said]))})"
            return result

        results: list[Result] = []
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(one, student, nb) for student, nb in found.notebooks.items()]
            for future in as_completed(futures):
                result = future.result()
                if not result.status.startswith("graded"):
                    result.max_score = max_score
                with lock:
                    record(out / "gradebook.db", assignment, result)
                    ledger.save(result, out)
                results.append(result)
                progress(f"  {result.student}: {result.status}"
                         + (f" {result.score:g}/{result.max_score:g}"
                            if result.status.startswith("graded") else ""))
    results.sort(key=lambda r: r.student)
    write_csv(out / "grades.csv", results, part_names, assignment)
    return results


def grade_all(submissions: Path, out: Path, *, progress=print, **options) -> dict[str, list]:
    """`grade --assignment all`: every exercise the submissions hold a notebook for, each into
    its own class folder OUT/<assignment>/ (as `grade` makes it), and OUT/grades.csv across
    them in nbgrader's export layout. Each assignment's canary runs first, as in `grade`."""
    submissions, out = Path(submissions).resolve(), Path(out).resolve()
    with tempfile.TemporaryDirectory(prefix="course-grade-all-") as tmp:
        if submissions.is_file() and submissions.suffix == ".zip":
            folder = Path(tmp) / "unzipped"
            folder.mkdir()
            extract(submissions, folder)
            submissions = folder
        if not submissions.is_dir():
            raise FileNotFoundError(f"no submissions folder or zip at {submissions}")
        names = present(submissions)
        if not names:
            raise FileNotFoundError(f"no notebook in {submissions} is named for an exercise "
                                    f"({', '.join(exercises.names())})")
        results = {}
        if CAPSTONE in names:
            progress(f"{CAPSTONE}: left out (not auto-graded: it trains the learner's workspace)")
        for name in (n for n in names if n != CAPSTONE):
            progress(f"{name}:")
            results[name] = grade_class(submissions, name, out / name, progress=progress,
                                        strict=True, **options)
    write_export(out / "grades.csv", results)
    return results


def grade_single(notebook: Path, assignment: str, out: Path, *, student: str | None = None,
                 timeout: float = 600, limits: sandbox.Limits | None = None,
                 sandboxed: bool = True) -> dict:
    """`grade-one`: grade one notebook with no shared state (a scheduler's array job).

    The canary runs first, as in `grade`; the feedback goes to OUT/feedback/<student>/; the
    result (JSON-ready) is what `grade --merge` folds into the class gradebook.
    """
    if sandboxed:
        sandbox.require()
    notebook, out = Path(notebook).resolve(), Path(out).resolve()
    student = student or notebook.stem.removesuffix(f"_{assignment}")
    if student == assignment:
        student = notebook.parent.name
    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        scratch = Path(tmp)
        scratch.chmod(0o711)
        with Server(scratch) as server:
            setup = prepare(assignment, scratch, timeout=timeout,
                            limits=limits or sandbox.Limits(), sandboxed=sandboxed,
                            server=server)
            canary(setup, scratch, server)
            result = grade_one(student, notebook, setup, scratch=scratch, out=out,
                               server=server, more=False)
    result.digest = digest(notebook, setup.source) if notebook.is_file() else ""
    entry = to_json(result, out)
    entry["assignment"] = assignment
    return entry


def merge(results: list[Path], out: Path, progress=print) -> list[Result]:
    """`grade --merge`: fold grade-one results (JSON files) into OUT's class gradebook."""
    out = Path(out).resolve()
    entries = [json.loads(Path(p).read_text()) for p in results]
    assignments = {e.get("assignment") for e in entries}
    if len(assignments) != 1 or None in assignments:
        raise ValueError("--merge takes results of one assignment (each JSON names it)")
    (assignment,) = assignments
    part_names, max_score = class_folder(out, assignment)
    ledger = Ledger(out / "results.json")
    merged = []
    for entry in entries:
        entry.pop("assignment")
        feedback = entry.pop("feedback", None)
        result = Result(**entry)
        result.feedback = out / feedback if feedback else None
        if not result.status.startswith("graded"):
            result.max_score = max_score
        record(out / "gradebook.db", assignment, result)
        ledger.save(result, out)
        merged.append(result)
        progress(f"  {result.student}: {result.status}")
    everyone = sorted((Result(**{k: v for k, v in e.items() if k != "feedback"})
                       for e in ledger.entries.values()), key=lambda r: r.student)
    write_csv(out / "grades.csv", everyone, part_names, assignment)
    return merged
