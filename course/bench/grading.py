"""Grading speed: `python -m course grade` against plain nbgrader on the same notebooks.

Ours: `grade_class` with one job, interleaved with the baseline over a few rounds (so a busy
machine slows both alike; the ratio of the medians, and of the minima), then with two jobs
once; the canary, the class folder and the grading processes' start included, as a real run
pays them. Baseline: plain `nbgrader autograde` then `generate_feedback` for the whole class,
unsandboxed, checks in the kernel (what a course without our grader would run). Seconds per
submission over a class of 10 (fixed costs spread as in a real class; `--quick`: 2), the time
100 submissions would take with two jobs (extrapolated from the measured seconds per
submission, fixed costs included in each, so an overestimate), and memory: the largest
learner sandbox of any submission (its memory cgroup, every process in it), the trusted
grading process, and the largest process plain nbgrader started.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from course.authoring import exercises
from course.grading import grade as grading

CLASS = 100  # submissions of one exercise a course grades at once
TARGET_S = 600  # ... within this many seconds on 2 cores


MEASURED = """
import resource, runpy, sys
from pathlib import Path
sys.argv = ["nbgrader", *sys.argv[2:]]
try:
    runpy.run_module("nbgrader", run_name="__main__")
finally:  # this process (VmHWM) and the kernels it waited for
    own = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text()
               .splitlines() if line.startswith("VmHWM:"))
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    Path(__peak__).write_text(str(max(own, kids) / 1024))
"""


def _nbgrader(root: Path, *args: str) -> float:
    """Run a plain nbgrader command in ROOT; the largest resident memory of it or of any
    kernel it started, MiB (measured inside: a forked process inherits its parent's peak)."""
    peak = root / ".peak"
    code = MEASURED.replace("__peak__", repr(str(peak)))
    proc = subprocess.run([sys.executable, "-c", code, "nbgrader", *args], cwd=root,
                          capture_output=True, text=True,
                          env={**os.environ, "PATH": exercises.search_path()})
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return float(peak.read_text())


def _baseline(plain: Path, name: str, count: int) -> tuple[float, float]:
    """Plain nbgrader on the class: (seconds per submission, its peak MiB)."""
    start = time.perf_counter()
    peak = max(_nbgrader(plain, "autograde", name, "--force"),
               _nbgrader(plain, "generate_feedback", name, "--force"))
    return (time.perf_counter() - start) / count, peak


def _ours(subs: Path, name: str, out: Path, count: int, jobs: int) -> tuple[float, list]:
    """`grade_class` on the class, paying for the canary as a real run does: (seconds per
    submission, its results)."""
    grading._PASSED.clear()
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    results = grading.grade_class(subs, name, out, jobs=jobs, timeout=600,
                                  progress=lambda _: None)
    return (time.perf_counter() - start) / count, results


def run(quick: bool = False) -> list[dict]:
    """Plain nbgrader and ours with one job, interleaved (`repeats` rounds of both, so a busy
    machine slows both alike); the ratio of their medians (and of their minima); then ours
    with two jobs once."""
    name = exercises.names()[0]
    count, repeats = (2, 2) if quick else (10, 3)
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
        baseline, ours, results, baseline_peak = [], [], [], 0.0
        for _ in range(repeats):
            seconds, peak = _baseline(plain, name, count)
            baseline.append(seconds)
            baseline_peak = max(baseline_peak, peak)
            seconds, results = _ours(subs, name, root / "ours-1", count, jobs=1)
            ours.append(seconds)
        two, results_two = _ours(subs, name, root / "ours-2", count, jobs=2)

        for jobs, mine, found in ((1, statistics.median(ours), results),
                                  (2, two, results_two)):
            base = statistics.median(baseline)
            full = all(r.status.startswith("graded") and r.score == r.max_score for r in found)
            row = {"name": f"grade {count} x {name}, {jobs} job(s)",
                   "ours_s_per_submission": mine, "nbgrader_s_per_submission": base,
                   "ratio": mine / base,
                   "target": "<= 1.0 with 1 job" if jobs == 1 else
                   f"{CLASS} submissions <= {TARGET_S} s",
                   "same": full,
                   "sandbox_peak_mb": max((r.peak_mb or 0.0 for r in found), default=0.0),
                   "grader_peak_mb": max((r.grader_mb or 0.0 for r in found), default=0.0),
                   "nbgrader_peak_mb": baseline_peak}
            if jobs == 1:
                row.update({"repeats": repeats, "ratio_of_minima": min(ours) / min(baseline),
                            "ours_s_each": " ".join(f"{x:.2f}" for x in ours),
                            "nbgrader_s_each": " ".join(f"{x:.2f}" for x in baseline)})
                row["ok"] = full and mine <= base
            else:
                row[f"{CLASS}_submissions_s_extrapolated"] = CLASS * mine
                row["ok"] = full and CLASS * mine <= TARGET_S
            rows.append(row)
    return rows
