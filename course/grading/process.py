"""The learner's worker, from the trusted side: start it in its sandbox, send it requests
(cells to run, probes and references, pickled here) and read its bounded replies.

The worker itself is `worker.py`; `Spares` starts the next submission's worker ahead.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
import types
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
        self.graded: set[str] = set()  # the exercise's graded parts
        self.pending: set[str] = set()  # graded parts whose reference the worker may not have

    def ungraded(self) -> set[str]:
        """The exercise's graded parts not judged yet (their reference stays here)."""
        return self.pending

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
        try:
            header = json.loads(self._read(head))
        except (ValueError, RecursionError):
            header = None
        if not isinstance(header, dict):  # (a reply the learner's code forged)
            self.close()
            self.gone = "the notebook's reply was not one the worker sends"
            raise WorkerGone(self.gone)
        return header, self._read(size)

    def run(self, source: str) -> dict:
        return self.request(b"run", source.encode())[0]

    def probe(self, name: str, probe) -> dict:
        return self.request(b"probe", name.encode() + b"\0" + pickled(probe, graded=self.graded))

    def judged(self, name: str) -> None:
        """Every test of `name` is judged: from now on the worker's stub is the reference."""
        from course.checks.core import copy_of

        self.pending.discard(name)
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


BY_VALUE = ("course.checks", "course.checks.oracles")  # code the worker lacks or must not rely on
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


def pickled(obj, *, graded: set[str] | None = None) -> bytes:
    """`obj` pickled for the worker: the checks' code by value, `solutions` by reference.

    With `graded` (the exercise's graded parts; a probe), no reference object rebuilt from
    solution source crosses, whether an argument, a closure, a default or a global: each goes
    as the worker's own object of that name instead (`lent`)."""
    import cloudpickle

    by_value()
    if graded is None:
        return cloudpickle.dumps(obj)
    buffer = io.BytesIO()
    _Probe(buffer, graded).dump(obj)
    return buffer.getvalue()


def lent(name: str, graded: bool) -> str:
    """What the worker evaluates for a reference the check holds: the judged reference of a
    graded part (a part not judged yet refuses, so the judge waits for it), else the runtime's
    own given object."""
    if graded:
        return f"__import__('course_stand_in').judged({name!r})"
    module, _, attr = (reference_target(name) or "").rpartition(".")
    return f"getattr(__import__({module!r}, fromlist=['_']), {attr!r})"


def _probe_pickler():
    import cloudpickle

    from course.authoring.source import COPIES

    class Probe(cloudpickle.Pickler):
        def __init__(self, file, graded: set[str]):
            super().__init__(file)
            self.graded = graded

        def reducer_override(self, obj):
            kind = obj if isinstance(obj, (type, types.FunctionType)) else type(obj)
            if getattr(kind, "__module__", None) == COPIES:
                if kind is not obj:
                    raise pickle.PicklingError(
                        f"a check's probe holds a {kind.__name__} built from solution source")
                name, *attrs = kind.__qualname__.split(".")  # a method: Cls.forward
                if reference_target(name) is None or not all(map(str.isidentifier, attrs)):
                    raise pickle.PicklingError(f"a check's probe holds the reference {name}")
                return eval, ("".join([f"({lent(name, name in self.graded)})",
                                       *(f".{a}" for a in attrs)]),)
            return super().reducer_override(obj)

    return Probe


class _Probe:
    """The probe pickler, made on first use (cloudpickle loads with the checks)."""

    def __init__(self, file, graded: set[str]):
        global _Probe
        _Probe = _probe_pickler()
        self.pickler = _Probe(file, graded)

    def dump(self, obj) -> None:
        self.pickler.dump(obj)
