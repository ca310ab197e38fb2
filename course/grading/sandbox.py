"""The sandbox for a learner's code: bubblewrap, a whitelist of the system, and limits.

The worker sees the system folders, this Python and the runtime copy of the course, read-only;
its own size-capped /tmp is the only writable place. No network (its own network namespace,
so no host sockets, abstract or not), no capabilities, its own user, PID, IPC and UTS
namespaces, and the limits of `Limits` for all its processes together.
"""

from __future__ import annotations

import os
import resource
import shutil
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


def require() -> str:
    """The bwrap command, or SandboxMissing with what to do."""
    exe = bwrap()
    if exe is None:
        raise SandboxMissing("bubblewrap (`bwrap`) is not installed: `apt-get install -y "
                             "bubblewrap`, or pass --unsandboxed to grade without a sandbox")
    return exe


# ---------------------------------------------------------------- the learner's worker


@dataclass(frozen=True)
class Limits:
    """What one submission's code may use, all its processes together where the system allows.

    memory: a memory cgroup for the whole process tree when one can be made (cgroup v1 or v2
    under the grader's own cgroup), otherwise an address-space limit per process;
    processes: RLIMIT_NPROC for the worker's user id (its own when grading as root; otherwise
    the grader's, which the kernel counts with the grader's other processes); disk: the
    private /tmp and /dev/shm are size-capped tmpfs, and nothing of the host is writable;
    files: RLIMIT_FSIZE caps any one file written.
    """

    memory_gb: float = 4.0
    processes: int = 64
    tmp_mb: int = 256
    file_mb: int = 128
    open_files: int = 256

    def __post_init__(self):  # 4 and 4.0 GiB are the same limits (and the same canary)
        object.__setattr__(self, "memory_gb", float(self.memory_gb))

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


WORKER_UID = 61000  # when grading as root: the worker's own user id (plus the job slot)


def worker_command(argv: list[str], runtime: Path, limits: Limits, slot: int = 0) -> list[str]:
    """bwrap argv for the learner's worker: a whitelist of the system, this Python, the
    runtime (read-only, at /tmp/runtime); a private size-capped /tmp as the working folder.

    As root, bwrap makes the mounts and `setpriv` then becomes a user id of the submission's
    own, with no capabilities (so RLIMIT_NPROC holds: the kernel never applies it to root).
    Otherwise bwrap maps the grader's user to `nobody` in a user namespace of its own.
    """
    cmd = [require(), "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
           "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if os.geteuid() != 0:
        cmd += ["--unshare-user", "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL"]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    for top in SYSTEM:
        path = Path(top)
        if path.is_symlink():
            cmd += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            cmd += ["--ro-bind", top, top]
    size = str(limits.tmp_mb * 2**20)
    cmd += ["--perms", "1777", "--size", size, "--tmpfs", "/tmp",
            "--perms", "1777", "--size", size, "--tmpfs", "/dev/shm",
            "--perms", "0777", "--dir", "/tmp/home", "--perms", "0777", "--dir", "/tmp/work"]
    made: set[Path] = set()
    for path in python_paths():
        if not any(path.is_relative_to(top) for top in SYSTEM if not Path(top).is_symlink()):
            for parent in reversed(path.parents[:-1]):  # reachable by the worker's user
                if parent not in made:
                    made.add(parent)
                    cmd += ["--perms", "0755", "--dir", str(parent)]
            cmd += ["--ro-bind", str(path), str(path)]
    cmd += ["--ro-bind", str(runtime), "/tmp/runtime", "--chdir", "/tmp/work"]
    if os.geteuid() == 0:
        uid = str(WORKER_UID + slot)
        cmd += [shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={uid}",
                f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                "--no-new-privs", "--"]
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
    """preexec_fn for the worker: its memory cgroup and rlimits."""
    uid = WORKER_UID + slot if os.geteuid() == 0 else os.getuid()
    processes = processes_of(uid) + limits.processes

    def apply():
        cgroup.join()
        os.umask(0o022)  # folders bwrap makes for mount points must be reachable by the worker
        mb = 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * mb,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
        if cgroup.path is None:
            memory = int(limits.memory_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))

    return apply
