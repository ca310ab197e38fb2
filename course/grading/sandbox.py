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
from dataclasses import dataclass
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


# ---------------------------------------------------------------- the learner's worker


@dataclass(frozen=True)
class Limits:
    """What one submission's code may use, all its processes together where the system allows.

    memory: a memory cgroup for the whole process tree when one can be made (cgroup v1 or v2
    under the grader's own cgroup), otherwise an address-space limit per process;
    processes: RLIMIT_NPROC, at most `processes` more than the grader's user already runs (the
    kernel counts per user); disk: the private /tmp and /dev/shm are size-capped tmpfs, and
    nothing of the host is writable; files: RLIMIT_FSIZE caps any one file written.
    """

    memory_gb: float = 4.0
    processes: int = 64
    tmp_mb: int = 256
    file_mb: int = 128
    open_files: int = 256

    def describe(self, cgroup: bool) -> str:
        memory = ("for the whole submission (memory cgroup)" if cgroup
                  else "per process (address space; no memory cgroup available)")
        return (f"memory {self.memory_gb:g} GiB {memory}; at most {self.processes} processes; "
                f"/tmp and /dev/shm {self.tmp_mb} MiB each (RAM-backed, counted in memory); "
                f"files at most {self.file_mb} MiB; {self.open_files} open files; "
                "no network; nothing of the host writable")


SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


def python_paths() -> list[Path]:
    """The folders this Python needs (its prefixes and the site-packages folders)."""
    import site

    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).parent,
             Path(sys.executable).resolve().parent}
    paths |= {Path(p) for p in site.getsitepackages()}
    paths |= {p.resolve() for p in list(paths)}
    return sorted(p for p in paths if p.exists())


def worker_command(argv: list[str], runtime: Path, limits: Limits) -> list[str]:
    """bwrap argv for the learner's worker: a whitelist of the system, this Python, the
    runtime (read-only, at /tmp/runtime); a private size-capped /tmp as the working folder."""
    exe = bwrap()
    if exe is None:
        raise SandboxMissing("bubblewrap (`bwrap`) is not installed: `apt-get install -y "
                             "bubblewrap`")
    cmd = [exe, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534",
           "--die-with-parent", "--new-session", "--cap-drop", "ALL",
           "--proc", "/proc", "--dev", "/dev"]
    for top in SYSTEM:
        path = Path(top)
        if path.is_symlink():
            cmd += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            cmd += ["--ro-bind", top, top]
    size = str(limits.tmp_mb * 2**20)
    cmd += ["--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/dev/shm",
            "--dir", "/tmp/home", "--dir", "/tmp/work"]
    for path in python_paths():
        if not any(path.is_relative_to(top) for top in SYSTEM if not Path(top).is_symlink()):
            cmd += ["--ro-bind", str(path), str(path)]
    cmd += ["--ro-bind", str(runtime), "/tmp/runtime", "--chdir", "/tmp/work"]
    return [*cmd, *argv]


def memory_cgroup() -> Path | None:
    """A folder where a child memory cgroup can be made, or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
        elif controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
        else:
            continue
        if os.access(base, os.W_OK):
            return base
    return None


class Cgroup:
    """A memory cgroup for one submission (removed on close)."""

    def __init__(self, limits: Limits):
        base = memory_cgroup()
        self.path = None
        if base is None:
            return
        path = base / f"course-grade-{os.getpid()}-{id(self)}"
        try:
            path.mkdir()
            limit = str(int(limits.memory_gb * 2**30))
            name = "memory.limit_in_bytes" if (path / "memory.limit_in_bytes").exists() \
                else "memory.max"
            (path / name).write_text(limit)
            swap = path / "memory.memsw.limit_in_bytes"
            if swap.exists():
                try:
                    swap.write_text(limit)
                except OSError:
                    pass
            self.path = path
        except OSError:
            if path.exists():
                path.rmdir()

    def join(self) -> None:
        """Called in the child before exec: move this process into the cgroup."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def peak_bytes(self) -> int | None:
        for name in ("memory.max_usage_in_bytes", "memory.peak"):
            if self.path is not None and (self.path / name).exists():
                return int((self.path / name).read_text())
        return None

    def close(self) -> None:
        if self.path is not None:
            for _ in range(50):
                try:
                    self.path.rmdir()
                    break
                except OSError:
                    import time

                    time.sleep(0.05)


def processes_of(uid: int) -> int:
    """How many processes the user `uid` runs now (RLIMIT_NPROC counts them all)."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("Uid:"):
                    count += int(line.split()[1]) == uid
                    break
        except (OSError, ValueError):
            continue
    return count


def worker_limits(limits: Limits, cgroup: Cgroup, slot: int = 0):
    """preexec_fn for the worker: cgroup and rlimits (bwrap then drops every capability and
    maps the grader's user to `nobody` in a user namespace of its own)."""
    processes = processes_of(os.getuid()) + limits.processes

    def apply():
        cgroup.join()
        mb = 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * mb,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
        if cgroup.path is None:
            memory = int(limits.memory_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))

    return apply
