"""The learner's worker, from the trusted side: start it in its sandbox, send it requests
(cells to run, probes and references, pickled here) and read its bounded replies.

The worker itself is `worker.py`; `Spares` starts the next submission's worker ahead.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

from course.grading import sandbox
from course.grading.runtime import reference_target

MAX_REPLY = 256 * 2**20


class WorkerGone(RuntimeError):
    """The learner's worker stopped answering (it ended, or ran out of time)."""


class Worker:
    def __init__(self, runtime: Path, limits: sandbox.Limits, *, deadline: float, slot: int = 0,
                 sandboxed: bool = True, preload: tuple[str, ...] = ()):
        self.deadline = deadline
        self.cgroup = sandbox.Cgroup(limits) if sandboxed else None
        argv = [sys.executable, "/tmp/runtime/course_worker.py" if sandboxed
                else str(runtime / "course_worker.py"), *preload]
        env = sandbox.environment("/tmp" if sandboxed else str(runtime.parent / "tmp"))
        env["PYTHONPATH"] = "/tmp/runtime" if sandboxed else str(runtime)
        if sandboxed:
            argv = sandbox.worker_command(argv, runtime, limits, slot)
            preexec = sandbox.worker_limits(limits, self.cgroup, slot)
        else:
            preexec = None
            (runtime.parent / "tmp" / "home").mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env, preexec_fn=preexec,
                                     start_new_session=True,
                                     cwd=None if sandboxed else runtime.parent / "tmp")
        self.gone: str | None = None

    def _read(self, size: int) -> bytes:
        chunks, need = [], size
        fd = self.proc.stdout.fileno()
        while need:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.close()
                self.gone = "the notebook ran out of time"
                raise WorkerGone(self.gone)
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, min(need, 2**20))
            if not chunk:
                code = self.proc.wait()
                self.close()
                self.gone = (f"the notebook's Python process ended (exit code {code}; "
                             "it may have run out of memory or called exit)")
                raise WorkerGone(self.gone)
            chunks.append(chunk)
            need -= len(chunk)
        return b"".join(chunks)

    def request(self, kind: bytes, body: bytes) -> tuple[dict, bytes]:
        if self.gone:
            raise WorkerGone(self.gone)
        message = kind + b"\0" + body
        try:
            self.proc.stdin.write(struct.pack("!I", len(message)) + message)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.gone = "the notebook's Python process ended"
            self.close()
            raise WorkerGone(self.gone) from None
        head, size = struct.unpack("!II", self._read(8))
        if head > 2**20 or size > MAX_REPLY:
            self.close()
            self.gone = "the notebook's reply was too large"
            raise WorkerGone(self.gone)
        header = json.loads(self._read(head))
        return header, self._read(size)

    def run(self, source: str) -> dict:
        return self.request(b"run", source.encode())[0]

    def probe(self, name: str, probe) -> dict:
        return self.request(b"probe", name.encode() + b"\0" + pickled(probe))

    def judged(self, name: str) -> None:
        """Every test of `name` is judged: from now on the worker's stub is the reference."""
        from course.checks.core import copy_of

        target = reference_target(name)
        if target is None:
            return
        self.request(b"reference", name.encode() + b"\0" + pickled(copy_of(target)))

    def peak_mb(self) -> float | None:
        """The most memory the worker's processes held together (its cgroup), if known."""
        peak = self.cgroup.peak_bytes() if self.cgroup is not None else None
        return None if peak is None else peak / 2**20

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        if self.cgroup is not None:
            self.cgroup.close()


class Spares:
    """Workers started ahead, one per kind (runtime, limits, slot, sandboxed, preloads): a
    process grading submissions one after another starts the next submission's worker as soon
    as the last one is closed, so its start overlaps the trusted side's own work. A spare is a
    fresh worker like any other (it has run nothing); it gets its deadline when handed out."""

    def __init__(self):
        self.workers: dict[tuple, Worker] = {}

    def take(self, key: tuple, *, timeout: float) -> Worker | None:
        worker = self.workers.pop(key, None)
        if worker is not None and worker.proc.poll() is None:
            worker.deadline = time.monotonic() + timeout
            return worker
        if worker is not None:
            worker.close()
        return None

    def start(self, key: tuple) -> None:
        folder, limits, slot, sandboxed, preload = key
        if key not in self.workers:
            self.workers[key] = Worker(Path(folder), limits, deadline=float("inf"), slot=slot,
                                       sandboxed=sandboxed, preload=preload)

    def close(self) -> None:
        while self.workers:
            self.workers.popitem()[1].close()


BY_VALUE = ("course.checks", "course.oracles")  # code the worker lacks or must not rely on
_SENT_BY_VALUE: set[str] = set()


def by_value() -> None:
    """Send the checks' own code by value (the worker has none of it), every time: a topic
    module imported by a check while it runs (an earlier part's checks) counts too.

    `solutions` goes by reference: the worker imports its own runtime copy, so a probe's
    `ModelConfig` is the very class the learner's code checks with isinstance, and a graded
    object stands for the learner's version there (its reference code never crosses)."""
    import cloudpickle

    for name, module in list(sys.modules.items()):
        if name.startswith(BY_VALUE) and module is not None and name not in _SENT_BY_VALUE:
            _SENT_BY_VALUE.add(name)
            with contextlib.suppress(ValueError):
                cloudpickle.register_pickle_by_value(module)


def pickled(obj) -> bytes:
    """`obj` pickled for the worker: the checks' code by value, `solutions` by reference."""
    import cloudpickle

    by_value()
    return cloudpickle.dumps(obj)
