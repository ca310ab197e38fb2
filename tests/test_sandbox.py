"""The grading sandbox: read-only system, private /tmp, no network, time and memory limits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from course.exercises import ROOT
from course.grading import sandbox

pytestmark = pytest.mark.skipif(sandbox.bwrap() is None and not os.environ.get("CI"),
                                reason="bubblewrap (bwrap) is not installed")


def python(code: str, work: Path, **options) -> subprocess.CompletedProcess:
    return sandbox.run([sys.executable, "-c", code], work, **options)


def test_only_the_loopback_interface_exists(tmp_path):
    out = python("import socket; print(sorted(n for _, n in socket.if_nameindex()))", tmp_path)
    assert out.returncode == 0, out.stdout
    assert out.stdout.strip() == "['lo']"


def test_the_system_and_the_course_are_read_only(tmp_path):
    target = ROOT / "exercises" / "sandbox-probe.txt"
    out = python(f"open({str(target)!r}, 'w').write('x')", tmp_path)
    assert out.returncode != 0 and "Read-only file system" in out.stdout
    assert not target.exists()


def test_only_the_work_folder_is_writable_and_tmp_is_private(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    # Outside /tmp (which the sandbox replaces anyway), so that hiding is what is tested.
    (ROOT / "_build").mkdir(exist_ok=True)
    hidden = Path(tempfile.mkdtemp(prefix="hidden-", dir=ROOT / "_build"))
    (hidden / "secret.txt").write_text("other student's answer")
    code = ("import os, pathlib; pathlib.Path('mine.txt').write_text('ok');"
            "pathlib.Path('/tmp/scratch.txt').write_text('gone after the run');"
            f"print(os.path.exists({str(hidden / 'secret.txt')!r}))")
    out = python(code, work, hide=[hidden])
    assert out.returncode == 0, out.stdout
    assert out.stdout.strip() == "False"  # hidden folders appear empty
    assert (work / "mine.txt").read_text() == "ok"
    assert not Path("/tmp/scratch.txt").exists()
    visible = python(f"import os; print(os.path.exists({str(hidden / 'secret.txt')!r}))", work)
    assert visible.stdout.strip() == "True"  # the control: without `hide` it is readable
    shutil.rmtree(hidden)


def test_time_limit_kills_the_run(tmp_path):
    with pytest.raises(subprocess.TimeoutExpired):
        python("import time; time.sleep(60)", tmp_path, timeout=2)


def test_memory_limit_stops_a_runaway_allocation(tmp_path):
    out = python("x = bytearray(3 * 2**30); print('allocated')", tmp_path, memory_gb=1)
    assert out.returncode != 0 and "MemoryError" in out.stdout
