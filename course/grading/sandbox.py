"""Run an untrusted command with bubblewrap: read-only system, private /tmp and home, no network.

Only `work` is writable; `hide` folders (the class's submissions and results) appear empty.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path


class SandboxMissing(RuntimeError):
    pass


def bwrap() -> str | None:
    return shutil.which("bwrap")


def environment(tmp: str) -> dict[str, str]:
    """A small, clean environment: nothing of the grader's home or tokens leaks in."""
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                 os.environ.get("PATH", "/usr/bin:/bin")]),
        "LANG": "C.UTF-8",
        "HOME": f"{tmp}/home",
        "JUPYTER_RUNTIME_DIR": f"{tmp}/jupyter-runtime",
        "JUPYTER_CONFIG_DIR": f"{tmp}/jupyter-config",
        "JUPYTER_DATA_DIR": f"{tmp}/jupyter-data",
        "IPYTHONDIR": f"{tmp}/ipython",
        "MPLCONFIGDIR": f"{tmp}/matplotlib",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
    }


def _needed_paths() -> set[Path]:
    from course.exercises import ROOT

    return {ROOT, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(),
            Path(sys.executable).resolve().parent}


def command(argv: list[str], work: Path, hide: list[Path] = ()) -> list[str]:
    """The bwrap command line that runs `argv` inside `work`."""
    exe = bwrap()
    if exe is None:
        raise SandboxMissing("bubblewrap (`bwrap`) is not installed: `apt-get install -y "
                             "bubblewrap`, or pass --unsandboxed to grade without a sandbox")
    cmd = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
           "--tmpfs", "/tmp", "--dir", "/tmp/home", "--unshare-net", "--unshare-pid",
           "--die-with-parent", "--new-session"]
    # The course and its Python stay visible (read-only) even when they live under /tmp.
    for needed in sorted(_needed_paths()):
        if needed.is_relative_to("/tmp"):
            cmd += ["--ro-bind", str(needed), str(needed)]
    home = Path.home().resolve()
    if home != Path("/") and not any(p.is_relative_to(home) for p in _needed_paths()):
        cmd += ["--tmpfs", str(home)]  # hide the grader's home unless Python lives there
    for folder in hide:
        cmd += ["--tmpfs", str(Path(folder).resolve())]
    work = str(Path(work).resolve())
    return [*cmd, "--bind", work, work, "--chdir", work, *argv]


def run(argv: list[str], work: Path, *, hide: list[Path] = (), timeout: float = 600,
        memory_gb: float = 8, sandboxed: bool = True) -> subprocess.CompletedProcess:
    """Run argv (sandboxed unless told otherwise) with a time and memory limit.

    Raises subprocess.TimeoutExpired after killing the whole process group.
    """
    full = command(argv, work, hide) if sandboxed else argv
    limit = int(memory_gb * 2**30)

    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    tmp = "/tmp" if sandboxed else str(Path(work).resolve() / ".tmp")
    if not sandboxed:
        Path(tmp, "home").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(full, cwd=work, env=environment(tmp),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=limits)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(full, proc.returncode, out, "")
