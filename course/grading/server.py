"""The trusted grading process of one job slot (`python -m course.grading.autograde --serve`),
started once and asked to grade the slot's submissions in turn, one JSON line each way.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import subprocess
import sys
import time
from pathlib import Path

from course.authoring import exercises
from course.grading import sandbox

MEMORY_GB = 8  # address space of a trusted grading process: what a reply makes it build ends
# in a MemoryError (that submission's), never in the machine's memory


def _memory_limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_GB * 2**30, MEMORY_GB * 2**30))


class GraderGone(RuntimeError):
    """The trusted grading process ended while grading (that submission is not graded)."""


class Server:
    """A trusted grading process for one job slot (`python -m course.grading.autograde
    --serve`), started once and given the slot's submissions one after another: nbgrader,
    the checks and the references load once per slot, not once per submission. Each
    submission still gets its own course folder and its own fresh sandboxed worker.

    If it dies or runs out of time, the submission it was grading gets that status and the
    next request starts a new one. It ends with its standard input (or the grader)."""

    def __init__(self, scratch: Path, slot: int = 0):
        self.home = scratch / f"grader-{slot}"
        self.proc: subprocess.Popen | None = None
        self.buffer = b""

    def start(self) -> Server:
        if self.proc is not None and self.proc.poll() is None:
            return self
        (self.home / "home").mkdir(parents=True, exist_ok=True)
        env = sandbox.environment(str(self.home))
        env["PYTHONPATH"] = os.pathsep.join([str(exercises.ROOT),
                                             os.environ.get("PYTHONPATH", "")])
        with open(self.home / "log.txt", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "course.grading.autograde", "--serve"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                cwd=self.home, preexec_fn=_memory_limit)
        self.buffer = b""
        return self

    def ask(self, request: dict, timeout: float) -> dict:
        """One request, one reply; TimeoutExpired or GraderGone (the process is then ended)."""
        self.start()
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            self.stop(kill=True)
            raise GraderGone("the grading process ended") from None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop(kill=True)
                raise subprocess.TimeoutExpired("grading", timeout)
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 2**20)
            if not chunk:
                code = self.stop(kill=True)
                raise GraderGone(f"the grading process ended (exit status {code})")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def stop(self, kill: bool = False) -> int | None:
        """End the process: at once with `kill`, else when it has closed its spare worker."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None and not kill:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # it ends its spare worker and leaves
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()  # its workers' sandboxes end with it (bwrap --die-with-parent)
        code = proc.wait()
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        return code

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
