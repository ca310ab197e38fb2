"""Grading speed: `python -m course grade` against plain nbgrader on the same notebooks.

Ours: `grade_class` with one job, then two (the canary, the class folder and the grading
processes' start included, as a real run pays them). Baseline: plain `nbgrader autograde` then
`generate_feedback` for the whole class, unsandboxed, checks in the kernel (what a course
without our grader would run). Seconds per submission over a class of 10 (fixed costs spread
as in a real class; `--quick`: 2), the time 100 submissions would take with two jobs
(extrapolated from the measured seconds per submission, fixed costs included in each, so an
overestimate), and memory: the largest learner sandbox of any submission (its memory cgroup,
every process in it), the trusted grading process, and the largest process plain nbgrader
started.
"""

from __future__ import annotations

import resource
import shutil
import tempfile
import time
from pathlib import Path

import nbformat

from course import exercises
from course.grading import grade as grading

CLASS = 100  # submissions of one exercise a course grades at once
TARGET_S = 600  # ... within this many seconds on 2 cores


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run(quick: bool = False) -> list[dict]:
    name = exercises.names()[0]
    count = 2 if quick else 10
    source_nb = nbformat.read(exercises.SOURCE / name / f"{name}.ipynb", as_version=4)
    rows = []
    with tempfile.TemporaryDirectory(prefix="course-bench-grading-") as tmp:
        root = Path(tmp)
        subs = root / "subs"
        for i in range(count):
            (subs / f"s{i}").mkdir(parents=True)
            nbformat.write(source_nb, subs / f"s{i}" / f"{name}.ipynb")

        plain = root / "plain"
        exercises.make_course(plain, name, source_nb)
        for i in range(count):
            target = plain / "submitted" / f"s{i}" / name
            target.mkdir(parents=True)
            shutil.copyfile(subs / f"s{i}" / f"{name}.ipynb", target / f"{name}.ipynb")
        start = time.perf_counter()
        exercises.nbgrader(plain, "autograde", name, "--force")
        exercises.nbgrader(plain, "generate_feedback", name, "--force")
        baseline = (time.perf_counter() - start) / count
        baseline_peak = _peak_mb()

        for jobs in (1, 2):
            grading._PASSED.clear()  # pay for the canary, as a real run does
            start = time.perf_counter()
            results = grading.grade_class(subs, name, root / f"ours-{jobs}", jobs=jobs,
                                          timeout=600, progress=lambda _: None)
            ours = (time.perf_counter() - start) / count
            full = all(r.status == "graded" and r.score == r.max_score for r in results)
            row = {"name": f"grade {count} x {name}, {jobs} job(s)",
                   "ours_s_per_submission": ours,
                   "nbgrader_s_per_submission": baseline, "ratio": ours / baseline,
                   "target": "<= 1.0 with 1 job" if jobs == 1 else
                   f"{CLASS} submissions <= {TARGET_S} s",
                   "same": full,
                   "sandbox_peak_mb": max((r.peak_mb or 0.0 for r in results), default=0.0),
                   "grader_peak_mb": max((r.grader_mb or 0.0 for r in results), default=0.0),
                   "nbgrader_peak_mb": baseline_peak}
            if jobs == 1:
                row["ok"] = full and ours <= baseline
            else:
                row[f"{CLASS}_submissions_s_extrapolated"] = CLASS * ours
                row["ok"] = full and CLASS * ours <= TARGET_S
            rows.append(row)
    return rows
