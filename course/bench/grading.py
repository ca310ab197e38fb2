"""Grading speed: `python -m course grade` against plain nbgrader on the same notebooks.

Ours: `grade_class` with one job (the canary included, as a real run pays it). Baseline: plain
`nbgrader autograde` then `generate_feedback` for the whole class, unsandboxed, checks in the
kernel (what a course without our grader would run). Seconds per submission, and the largest
resident memory of any process either started.
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


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run(quick: bool = False) -> list[dict]:
    name = exercises.names()[0]
    count = 2 if quick else 6
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
            rows.append({"name": f"grade {count} x {name}, {jobs} job(s)",
                         "ours_s_per_submission": ours,
                         "nbgrader_s_per_submission": baseline, "ratio": ours / baseline,
                         "target": "<= 1.0 with 1 job", "same": full,
                         "ok": full and (jobs > 1 or ours <= baseline),
                         "peak_mb_largest_process": max(_peak_mb(), baseline_peak)})
    return rows
