"""`python -m course grade`: a class's submissions -> gradebook, grades.csv and feedback.

Each submission is autograded on its own, in a fresh temporary nbgrader course folder holding
only the instructor notebook, that one submission and a throw-away gradebook; its code runs in
a fresh sandboxed worker of its own. nbgrader itself runs in one trusted grading process per
job slot (`Server`), which grades that slot's submissions in turn. The trusted parent reads the
scores back and writes them into the class gradebook (nbgrader's `Gradebook`). Original submissions are only ever read. A broken or hostile submission is
reported and never stops the batch. `--assignment all` grades every exercise the submissions
hold, each into its own class folder, with one CSV across them (`grade_all`).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import queue
import re
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from course import exercises
from course.grading import autograde, judge, sandbox

STUDENT_ID = re.compile(r"^\w(?:[\w .@'-]{0,98}[\w.])?$")
NAME_RULE = ("a student name is 1-100 letters (any language), digits, spaces and . _ @ ' -, "
             "starting with a letter or digit and not ending with a space")
CELL_LINE = "failed cell "
WORK_ID = "learner"  # the student id inside each per-submission course folder
MAX_NOTEBOOK_MB = 20
MAX_FEEDBACK_MB = 5
MAX_ARCHIVE_GB = 2.0  # a class zip may expand to at most this much
MAX_RATIO = 200  # and no member may expand more than this many times


class GradingBroken(RuntimeError):
    """The grader itself does not work here (the canary failed); no grades were written."""


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


# ---------------------------------------------------------------- collecting submissions


def _safe_extract(archive: Path, target: Path) -> None:
    """Extract a class archive, refusing unsafe paths, links and zip bombs."""
    limit = int(MAX_ARCHIVE_GB * 2**30)
    with zipfile.ZipFile(archive) as zf:
        total = 0
        for info in zf.infolist():
            path = (target / info.filename).resolve()
            if not path.is_relative_to(target.resolve()):
                raise ValueError(f"{archive.name}: unsafe path in zip: {info.filename}")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ValueError(f"{archive.name}: the zip holds a symbolic link: "
                                 f"{info.filename}")
            total += info.file_size
            if info.file_size > MAX_RATIO * max(info.compress_size, 1024):
                raise ValueError(f"{archive.name}: {info.filename} would expand "
                                 f"{info.file_size / max(info.compress_size, 1):.0f} times "
                                 f"(at most {MAX_RATIO}); refusing a possible zip bomb")
        if total > limit:
            raise ValueError(f"{archive.name}: the zip would expand to {total / 2**30:.1f} GiB, "
                             f"more than the {MAX_ARCHIVE_GB:g} GiB allowed; refusing a "
                             "possible zip bomb")
        zf.extractall(target)


@dataclass
class Found:
    """Where each student's notebook is, and students that cannot be graded as found."""

    notebooks: dict[str, Path | None] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def collect(submissions: Path, assignment: str, scratch: Path) -> dict[str, Path | None]:
    """student -> notebook path (None when the student's folder holds no notebook)."""
    return find(submissions, assignment, scratch).notebooks


def find(submissions: Path, assignment: str, scratch: Path, *, strict: bool = False) -> Found:
    """Accepts a folder `SUBMISSIONS/<student>/<assignment>.ipynb`, a folder of
    `<student>_<assignment>.ipynb` files (LMS exports), or a .zip of either. Symbolic links
    and a student with both a folder and a file are reported, never silently picked.
    `strict` (a folder holding several assignments): only notebooks named for this one."""
    if submissions.is_file() and submissions.suffix == ".zip":
        root = scratch / "unzipped"
        root.mkdir()
        _safe_extract(submissions, root)
        entries = [p for p in root.iterdir() if not p.name.startswith(("__MACOSX", "."))]
        submissions = entries[0] if len(entries) == 1 and entries[0].is_dir() and not any(
            entries[0].glob(f"{assignment}.ipynb")) else root
    if not submissions.is_dir():
        raise FileNotFoundError(f"no submissions folder or zip at {submissions}")
    found = Found()
    seen: dict[str, Path] = {}
    for entry in sorted(submissions.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and not entry.is_symlink():
            student = entry.name
            exact = entry / f"{assignment}.ipynb"
            others = sorted(entry.rglob("*.ipynb"))
            notebook = exact if exact.exists() or exact.is_symlink() else (
                others[0] if len(others) == 1 and not strict else None)
        elif strict and not entry.name.endswith(f"_{assignment}.ipynb"):
            continue
        elif entry.suffix == ".ipynb" or entry.is_symlink():
            student = entry.name.removesuffix(".ipynb").removesuffix(f"_{assignment}")
            notebook = entry
        else:
            continue
        if student in seen:
            found.problems[student] = (f"duplicate submission: both {seen[student].name} and "
                                       f"{entry.name}; keep one and grade again")
            found.notebooks[student] = None
            continue
        seen[student] = entry
        found.notebooks[student] = notebook
        if entry.is_symlink() or (notebook is not None and notebook.is_symlink()):
            found.problems[student] = "refused: the submission is a symbolic link"
    return found


def digest(notebook: Path, source: Path) -> str:
    """What a grade depends on: the submission, the instructor notebook and the grader."""
    h = hashlib.sha256()
    for path in [notebook, source, *sorted(Path(__file__).parent.glob("*.py")),
                 *sorted((exercises.ROOT / "course" / "checks").glob("*.py"))]:
        h.update(path.read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------- one student


def _read_scores(work: Path, assignment: str) -> tuple[float, float, dict]:
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


class GraderGone(RuntimeError):
    """The trusted grading process ended while grading (that submission is not graded)."""


class Server:
    """A trusted grading process for one job slot (`python -m course.grading.autograde
    --serve`), started once and given the slot's submissions one after another: nbgrader,
    the checks and the references load once per slot, not once per submission. Each
    submission still gets its own course folder and its own fresh sandboxed worker.

    If it dies or runs out of time, the submission it was grading gets that status and the
    next request starts a new one. It ends with its standard input (or the grader)."""

    def __init__(self, scratch: Path, slot: int = 0):
        self.home = scratch / f"grader-{slot}"
        self.proc: subprocess.Popen | None = None
        self.buffer = b""

    def start(self) -> Server:
        if self.proc is not None and self.proc.poll() is None:
            return self
        (self.home / "home").mkdir(parents=True, exist_ok=True)
        env = sandbox.environment(str(self.home))
        env["PYTHONPATH"] = os.pathsep.join([str(exercises.ROOT),
                                             os.environ.get("PYTHONPATH", "")])
        with open(self.home / "log.txt", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "course.grading.autograde", "--serve"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                cwd=self.home)
        self.buffer = b""
        return self

    def ask(self, request: dict, timeout: float) -> dict:
        """One request, one reply; TimeoutExpired or GraderGone (the process is then ended)."""
        self.start()
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            self.stop(kill=True)
            raise GraderGone("the grading process ended") from None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop(kill=True)
                raise subprocess.TimeoutExpired("grading", timeout)
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 2**20)
            if not chunk:
                code = self.stop(kill=True)
                raise GraderGone(f"the grading process ended (exit status {code})")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def stop(self, kill: bool = False) -> int | None:
        """End the process: at once with `kill`, else when it has closed its spare worker."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None and not kill:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # it ends its spare worker and leaves
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()  # its workers' sandboxes end with it (bwrap --die-with-parent)
        code = proc.wait()
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        return code

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


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


def grade_one(student: str, notebook: Path | None, setup: Setup, *, scratch: Path, out: Path,
              slot: int = 0, server: Server | None = None) -> Result:
    """Autograde one submission in its own course folder; never raises. `server`: the
    slot's grading process (by default one is started for this submission alone)."""
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
        if size > MAX_NOTEBOOK_MB * 2**20:
            return Result(student, f"notebook too large: {size / 2**20:.0f} MiB "
                                   f"(at most {MAX_NOTEBOOK_MB} MiB)")
        nbformat.validate(nbformat.read(notebook, as_version=4))
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
        shutil.copyfile(notebook, target / f"{assignment}.ipynb", follow_symlinks=False)
        settings = dict(source=str(setup.source), runtime=str(setup.runtime),
                        limits=asdict(setup.limits), timeout=setup.timeout, slot=slot,
                        sandboxed=setup.sandboxed)
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
        result.score, result.max_score, result.parts = _read_scores(work, assignment)
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

    html = work / "feedback" / WORK_ID / assignment / f"{assignment}.html"
    if html.is_file() and not html.is_symlink():
        if html.stat().st_size > MAX_FEEDBACK_MB * 2**20:
            result.status = f"graded (feedback over {MAX_FEEDBACK_MB} MiB, not kept)"
        else:
            result.feedback = out / "feedback" / student / f"{assignment}.html"
            result.feedback.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(html, result.feedback, follow_symlinks=False)
    shutil.rmtree(work, ignore_errors=True)
    return result


# ---------------------------------------------------------------- the class


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
        if not entry or entry.get("digest") != key or entry.get("status") != "graded":
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
    runtime = judge.build_runtime(scratch / "runtime", source_nb)
    return Setup(assignment, template, source, runtime, limits, timeout, sandboxed)


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


_PASSED: set[str] = set()  # canaries already passed in this process (same grader, same notebook)


def canary(setup: Setup, scratch: Path, server: Server | None = None) -> None:
    """Grade the instructor notebook first, the same way; anything but full marks stops."""
    key = json.dumps([digest(setup.source, setup.source), asdict(setup.limits), setup.timeout,
                      setup.sandboxed])
    if key in _PASSED:
        return
    result = grade_one("instructor", setup.source, setup, scratch=scratch, out=scratch / "canary",
                       server=server)
    if result.status == "graded" and result.max_score > 0 and result.score == result.max_score:
        _PASSED.add(key)
        return
    cells = [line for line in result.log.splitlines() if line.startswith(CELL_LINE)]
    distinct = list(dict.fromkeys(line.split(": ", 1)[1] for line in cells))[:4]
    lines = distinct or [line for line in result.log.splitlines() if line.strip()][-8:]
    raise GradingBroken(
        f"the grader does not work here: the instructor notebook of {setup.assignment} got "
        f"{result.status}"
        + (f" {result.score:g}/{result.max_score:g}" if result.status == "graded" else "")
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
        slots: queue.Queue[int] = queue.Queue()
        for slot in range(max(1, jobs)):
            slots.put(slot)

        def one(student: str, notebook: Path | None) -> Result:
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
                                   slot=slot, server=servers[slot])
            finally:
                slots.put(slot)
            result.digest = key
            return result

        results: list[Result] = []
        lock = threading.Lock()
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


def present(submissions: Path) -> list[str]:
    """The exercises that at least one notebook in the folder SUBMISSIONS is named for."""
    found = {p.name for p in submissions.rglob("*.ipynb")}
    return [name for name in exercises.names()
            if any(f == f"{name}.ipynb" or f.endswith(f"_{name}.ipynb") for f in found)]


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


def grade_all(submissions: Path, out: Path, *, progress=print, **options) -> dict[str, list]:
    """`grade --assignment all`: every exercise the submissions hold a notebook for, each into
    its own class folder OUT/<assignment>/ (as `grade` makes it), and OUT/grades.csv across
    them in nbgrader's export layout. Each assignment's canary runs first, as in `grade`."""
    submissions, out = Path(submissions).resolve(), Path(out).resolve()
    with tempfile.TemporaryDirectory(prefix="course-grade-all-") as tmp:
        if submissions.is_file() and submissions.suffix == ".zip":
            folder = Path(tmp) / "unzipped"
            folder.mkdir()
            _safe_extract(submissions, folder)
            submissions = folder
        if not submissions.is_dir():
            raise FileNotFoundError(f"no submissions folder or zip at {submissions}")
        names = present(submissions)
        if not names:
            raise FileNotFoundError(f"no notebook in {submissions} is named for an exercise "
                                    f"({', '.join(exercises.names())})")
        results = {}
        for name in names:
            progress(f"{name}:")
            results[name] = grade_class(submissions, name, out / name, progress=progress,
                                        strict=True, **options)
    write_export(out / "grades.csv", results)
    return results


def summary(results: list[Result]) -> str:
    width = max([len(r.student) for r in results] + [7])
    lines = [f"{'student':<{width}}  {'score':>11}  status"]
    for r in results:
        score = f"{r.score:g}/{r.max_score:g}" if r.status.startswith("graded") else "-"
        lines.append(f"{r.student:<{width}}  {score:>11}  {r.status}")
    return "\n".join(lines)


# ---------------------------------------------------------------- beyond one machine


def to_json(result: Result, out: Path) -> dict:
    entry = asdict(result)
    entry["feedback"] = str(result.feedback.relative_to(out)) if result.feedback else None
    return entry


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
                               server=server)
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
