"""Shared fixtures: an isolated Jupyter/Matplotlib environment and the built book; how tests are
spread over parallel workers (`pytest -n N`); the suite's time by tier."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

# Nothing a test starts (kernels, nbgrader, matplotlib) writes to the home folder.
_scratch = tempfile.mkdtemp(prefix="course-tests-")
for _var, _sub in [("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"),
                   ("MPLCONFIGDIR", "matplotlib"), ("JUPYTER_DATA_DIR", "data")]:
    os.environ[_var] = os.path.join(_scratch, _sub)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Parallel workers share the cores: one thread each (and in what they start), so no worker's
# PyTorch spins waiting for a core another worker holds.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

# How tests are spread over workers (`pytest -n N`): the tests of one file run on one worker (its
# module fixtures are built once), except those of SPREAD, which share no expensive fixture and
# go one by one, and those of BY_EXERCISE, which go by exercise (its grading tests and its
# attacks on one worker, so its canary is graded once there); the book's build tests and its
# browser tests share one worker (the book is built once). The longest units are handed out
# first: the book, then every unit with an end-to-end test, then the rest in file order.
SPREAD = {"test_checks.py", "test_slips.py"}
BY_EXERCISE = {"test_attacks.py", "test_grading.py"}
GROUPS = {"test_book.py": "book", "test_browser.py": "book"}
EXERCISE_ID = re.compile(r"\[(\d\d_[a-z]+)\b")  # a test id that starts with an exercise's name


def work_unit(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    name = path.rsplit("/", 1)[-1]
    if name in SPREAD:
        return nodeid
    exercise = EXERCISE_ID.search(nodeid) if name in BY_EXERCISE else None
    return f"grading {exercise[1]}" if exercise else GROUPS.get(name, path)


def pytest_collection_modifyitems(items):
    slow = {work_unit(item.nodeid) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (work_unit(item.nodeid) != "book",
                                 work_unit(item.nodeid) not in slow))  # stable


if importlib.util.find_spec("xdist"):
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        """pytest-xdist's scope scheduling, with `work_unit` as the scope, in collection order."""

        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    def pytest_xdist_make_scheduler(config, log):
        config.option.loadscopereorder = False
        return ByWorkUnit(config, log)


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


@pytest.fixture(scope="session")
def book() -> Path:
    """Build the book once per session (execution is cached in _build/.jupyter_cache)."""
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(jb), "build", str(ROOT), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, timeout=1800)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    # Sphinx warnings (the kernel's own notice about TCP transport is not one of them).
    warnings = [line for line in log.splitlines()
                if "WARNING" in line and not line.startswith("[IPKernelApp]")]
    assert not warnings, warnings
    return ROOT / "_build" / "html"


def tier(report) -> str:
    if "browser" in report.keywords:
        return "browser (Chromium, JupyterLab)"
    if "slow" in report.keywords:
        return "end to end (book build, grading)"
    if report.nodeid.split("::")[0].endswith(tuple(SPREAD)):
        return "catalogues (every mistake and slip, in process)"
    return "unit"


def pytest_terminal_summary(terminalreporter):
    """The suite's time by tier (setup, call and teardown of every test, summed over workers)."""
    seconds: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) in ("setup", "call", "teardown"):
                seconds[tier(report)] += report.duration
                counts[tier(report)] += report.when == "call"
    if seconds:
        terminalreporter.section("time by tier")
        for name in sorted(seconds, key=seconds.get, reverse=True):
            terminalreporter.write_line(f"{seconds[name]:8.1f} s  {counts[name]:5d} tests  {name}")
