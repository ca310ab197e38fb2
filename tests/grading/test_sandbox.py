"""The learner's worker sandbox: what it can see, reach and use.

Each test starts the worker the grader starts (`course.grading.process.Worker`) and runs a cell in
it, as a submission would.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import grading_cases as cases
import pytest

from course.authoring import exercises
from course.grading import process, sandbox
from course.grading.runtime import build_runtime

pytestmark = pytest.mark.skipif(sandbox.bwrap() is None and not os.environ.get("CI"),
                                reason="bubblewrap (bwrap) is not installed")


@pytest.fixture(scope="module")
def runtime():
    folder = Path(tempfile.mkdtemp(prefix="course-sandbox-test-"))
    folder.chmod(0o711)
    yield build_runtime(folder / "runtime", cases.source_nb(exercises.names()[0]))
    shutil.rmtree(folder)


def run(runtime, code: str, timeout: float = 60, **limits) -> dict:
    import time

    worker = process.Worker(runtime, sandbox.Limits(**limits),
                          deadline=time.monotonic() + timeout)
    try:
        return worker.run(code)
    finally:
        worker.close()


def test_no_network_no_capabilities_its_own_user(runtime):
    reply = run(runtime, "import socket, os\n"
                         "print(sorted(n for _, n in socket.if_nameindex()))\n"
                         "print([l for l in open('/proc/self/status') if l.startswith('CapEff')])\n"
                         "print(os.getuid())")
    assert "error" not in reply, reply
    lines = reply["text"].splitlines()
    assert lines[0] == "['lo']"
    assert "0000000000000000" in lines[1]
    assert lines[2] == str(sandbox.WORKER_UID if os.geteuid() == 0 else 65534)  # not root


def test_the_course_the_answers_and_the_graders_home_are_not_there(runtime, tmp_path):
    secret = tmp_path / "gradebook.db"
    secret.write_text("everyone's grades")
    paths = [exercises.ROOT / "solutions", exercises.SOURCE, exercises.ROOT / "course" / "checks",
             exercises.ROOT / ".git", secret, Path.home() / ".ssh", "/run", "/home"]
    home = Path.home().resolve()
    reply = run(runtime, f"import os\nprint([p for p in {[str(p) for p in paths]!r} "
                         "if os.path.exists(p) and (not os.path.isdir(p) or os.listdir(p))] "
                         "or 'none')\n"
                         f"print(sorted(os.listdir({str(home)!r})) "
                         f"if os.path.isdir({str(home)!r}) else [])")
    assert "error" not in reply, reply
    visible, in_home = reply["text"].splitlines()
    assert visible == "none"
    # Of the grader's home, only the folders holding this Python are there (when it lives there).
    python_tops = sorted({p.relative_to(home).parts[0] for p in sandbox.python_paths()
                          if p.is_relative_to(home) and p != home})
    assert eval(in_home) == python_tops


def test_only_its_own_tmp_is_writable_and_it_is_capped(runtime):
    code = ("import os\n"
            "for target in ['/usr/x', '/etc/x', '/tmp/runtime/x']:\n"
            "    try:\n        open(target, 'w')\n        print('wrote', target)\n"
            "    except OSError as e:\n        print('refused', target)\n"
            "chunk = b'x' * 2**20\n"
            "try:\n"
            "    for i in range(200):\n"
            "        with open(f'/tmp/fill-{i}', 'wb') as f:\n"
            "            f.write(chunk * 1)\n"
            "    print('filled')\n"
            "except OSError as e:\n    print('full', e.errno)\n")
    reply = run(runtime, code, tmp_mb=32)
    assert "error" not in reply, reply
    assert "wrote" not in reply["text"], reply["text"]
    assert "full 28" in reply["text"], reply["text"]  # ENOSPC


def test_a_host_unix_socket_cannot_be_reached(runtime):
    (exercises.ROOT / "_build").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=exercises.ROOT / "_build"))
    folder.chmod(0o755)
    path = folder / "bus.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0course-grading-test")
    abstract.listen()
    try:
        code = ("import socket\n"
                f"for address in [{str(path)!r}, '\\0course-grading-test']:\n"
                "    s = socket.socket(socket.AF_UNIX)\n"
                "    try:\n        s.connect(address)\n        print('connected')\n"
                "    except OSError:\n        print('refused')\n")
        reply = run(runtime, code)
        assert reply["text"].split() == ["refused", "refused"], reply
        control = socket.socket(socket.AF_UNIX)
        control.connect(str(path))  # the control: reachable from outside the sandbox
        control.close()
    finally:
        server.close()
        abstract.close()
        shutil.rmtree(folder)


def test_processes_are_capped_for_the_whole_submission(runtime):
    code = ("import subprocess\nprocs = []\n"
            "try:\n"
            "    for _ in range(60):\n"
            "        procs.append(subprocess.Popen(['sleep', '5']))\n"
            "    print('started', len(procs))\n"
            "except OSError as e:\n    print('capped after', len(procs))\n"
            "for p in procs:\n    p.kill()\n")
    reply = run(runtime, code, processes=12)
    assert "capped after" in reply["text"], reply


def test_memory_is_capped_for_all_processes_together(runtime):
    if sandbox.memory_cgroup() is None:
        pytest.skip("no memory cgroup can be made here: the limit is per process")
    code = ("import subprocess, sys\n"
            "child = 'import time; x = bytearray(300 * 2**20); x[::4096] = b\"y\" * len(x[::4096]);"
            " time.sleep(3)'\n"
            "procs = [subprocess.Popen([sys.executable, '-c', child]) for _ in range(3)]\n"
            "print(sorted(p.wait() for p in procs))\n")
    reply = run(runtime, code, memory_gb=0.5)
    if "error" in reply:  # the worker itself was killed: the limit held too
        return
    codes = eval(reply["text"].strip())
    assert any(code != 0 for code in codes), codes  # 3 x 300 MiB do not fit in 512 MiB


def test_time_is_capped(runtime):
    import time

    worker = process.Worker(runtime, sandbox.Limits(), deadline=time.monotonic() + 8)
    try:
        with pytest.raises(process.WorkerGone, match="ran out of time"):
            worker.run("import time\ntime.sleep(60)")
    finally:
        worker.close()


def test_limits_given_in_whole_gibibytes_are_the_same_limits():
    """`--memory-gb 4` and the default 4.0: one canary key, one spare worker kind."""
    import json
    from dataclasses import asdict

    assert json.dumps(asdict(sandbox.Limits(memory_gb=4))) == json.dumps(asdict(sandbox.Limits()))
