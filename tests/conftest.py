"""Shared fixtures: an isolated Jupyter/Matplotlib environment and the built book."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
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
