"""The trusted judge: the learner's code runs in a sandboxed worker, the checks run here.

Only the worker (`course.grading.worker`, in bubblewrap) runs the learner's cells. It sees a
*runtime* copy of the course made for the exercise being graded: the `course` package without
its checks, grading and benchmarks, and `solutions/` with the exercise's graded objects replaced
by stubs. The instructor notebook, the hidden tests, the gradebook and nbgrader's configuration
stay on this side.

Test cells never run in the worker. The judge runs each one here, with the real checks: a name
the test passes for the learner's object becomes a `Remote` handle, and whenever a check calls a
probe on it (`course.checks.core.call`), the probe is pickled, applied to the learner's object in
the worker, and only its *result* comes back (tensors and plain containers, read with
`torch.load(weights_only=True)`, or tagged JSON read by `untag` when the worker has no torch
loaded); nothing from the worker is ever unpickled here. Comparing with the oracle, diagnosing mistakes and deciding the
score all happen here. Whatever the learner's code patches, rebinds or transforms, it does so in
the worker, where nothing is judged. The checks' code is sent by value; `solutions` objects go
by reference to the worker's copy, where a graded object's stub is the learner's own version
until every test of its part is judged, and the reference after (see `Order`), so given helpers
behave as in the in-process run without the reference of a part still to be judged ever
reaching the worker.

`JudgedExecute` is the nbgrader preprocessor that replaces nbgrader's `Execute` in `autograde`,
so nbgrader itself (run by the trusted grader, outside the sandbox) records the grades.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import functools
import io
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

from course.grading import sandbox

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SETTINGS = "COURSE_JUDGE"  # environment variable: JSON settings for JudgedExecute
MAX_REPLY = 256 * 2**20


# ---------------------------------------------------------------- the worker's runtime


def graded_names(source_nb) -> set[str]:
    """Top-level functions and classes the learner writes (the instructor's solution cells)."""
    found = set()
    for cell in source_nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            for node in ast.parse(cell.source).body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    found.add(node.name)
    return found


def test_mentions(source_nb) -> dict[str, set[str]]:
    """grade id of each test cell -> the graded names its source mentions (the parts it
    tests; a part is judged once every test cell that mentions it has been)."""
    graded = graded_names(source_nb)
    mentions: dict[str, set[str]] = {}
    for cell in source_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        try:
            used = {n.id for n in ast.walk(ast.parse(cell.source)) if isinstance(n, ast.Name)}
        except SyntaxError:
            used = set()
        mentions[meta["grade_id"]] = used & graded
    return mentions


def reference_target(name: str) -> str | None:
    """'solutions.module.name' for a top-level definition in solutions/, or None."""
    return _definitions().get(name)


@functools.cache
def _definitions() -> dict[str, str]:
    """Each top-level definition of solutions/ -> 'solutions.module.name' (the first module
    in name order that defines it), read once per process."""
    found: dict[str, str] = {}
    for module in sorted((ROOT / "solutions").glob("*.py")):
        for node in ast.parse(module.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.setdefault(node.name, f"solutions.{module.stem}.{node.name}")
    return found


def _stub(name: str, is_class: bool) -> str:
    """A graded object in the worker's `solutions`. Once every test cell of its part has been
    judged, it is the reference (sent then by the judge), so a given helper that calls it works
    as in-process and a slip costs its own part only; before that it stands for the learner's
    own version, and refuses when the learner has none but this stub (the reference imported).
    No reference code of a part still to be judged ever reaches the worker."""
    message = (f"{name} is imported from the reference `solutions` package, which is not "
               "available while grading. Write your own implementation to earn these points.")
    lookup = (f"    import builtins\n"
              f"    judged = getattr(builtins, '__course_reference__', {{}}).get({name!r})\n"
              f"    if judged is not None:  # its part is judged: the reference, as in-process\n"
              f"        return judged\n"
              f"    try:\n"
              f"        own = builtins.__course_learner__({name!r})\n"
              f"    except Exception:\n"
              f"        own = None\n"
              f"    if own is None or getattr(own, '__course_stub__', False):\n"
              f"        raise RuntimeError({message!r})\n"
              f"    return own\n")
    if is_class:  # calls, class attributes, isinstance and unpickled instances: the learner's
        return (f"def _own_{name}():\n{lookup}\n\n"
                f"class _StandIn_{name}(type):\n"
                f"    def __call__(cls, *args, **kwargs):\n"
                f"        if '__course_stub__' not in vars(cls):\n"
                f"            return super().__call__(*args, **kwargs)\n"
                f"        return _own_{name}()(*args, **kwargs)\n\n"
                f"    def __getattr__(cls, attr):\n"
                f"        if attr.startswith('__'):\n"
                f"            raise AttributeError(attr)\n"
                f"        return getattr(_own_{name}(), attr)\n\n"
                f"    def __instancecheck__(cls, obj):\n"
                f"        try:\n"
                f"            return isinstance(obj, _own_{name}())\n"
                f"        except RuntimeError:\n"
                f"            return False\n\n"
                f"    def __subclasscheck__(cls, sub):\n"
                f"        try:\n"
                f"            return issubclass(sub, _own_{name}())\n"
                f"        except RuntimeError:\n"
                f"            return False\n\n\n"
                f"class {name}(metaclass=_StandIn_{name}):\n    __course_stub__ = True\n\n"
                f"    def __new__(cls, *args, **kwargs):  # only unpickling calls it\n"
                f"        own = _own_{name}()\n"
                f"        return own.__new__(own)\n")
    return (f"def _own_{name}():\n{lookup}\n\n"
            f"def {name}(*args, **kwargs):\n    return _own_{name}()(*args, **kwargs)\n\n\n"
            f"{name}.__course_stub__ = True\n")


def redact(source: str, names: set[str]) -> str:
    """The module's source with each top-level definition of `names` replaced by a stub."""
    lines = source.splitlines(keepends=True)
    nodes = [n for n in ast.parse(source).body
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
             and n.name in names]
    for node in sorted(nodes, key=lambda n: n.lineno, reverse=True):
        first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
        lines[first:node.end_lineno] = [_stub(node.name, isinstance(node, ast.ClassDef))]
    return "".join(lines)


CHECKS_STUB = '''"""Checks are not available while grading (the grader runs them outside)."""


def _not_here(*args, **kwargs):
    return None


def __getattr__(name):
    return _not_here
'''


def build_runtime(dest: Path, source_nb) -> Path:
    """The course as the learner's worker sees it, for one exercise (see the module doc)."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "course", dest / "course", ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "checks", "grading", "bench"))
    checks = dest / "course" / "checks"
    checks.mkdir()
    for module in (ROOT / "course" / "checks").glob("*.py"):
        (checks / module.name).write_text(CHECKS_STUB)
    shutil.copytree(ROOT / "solutions", dest / "solutions", ignore=skip)
    names = graded_names(source_nb)
    for module in (dest / "solutions").rglob("*.py"):
        module.write_text(redact(module.read_text(), names))
    shutil.copyfile(HERE / "worker.py", dest / "course_worker.py")
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


# ---------------------------------------------------------------- talking to the worker


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
        import cloudpickle

        _by_value()
        payload = cloudpickle.dumps(probe)
        return self.request(b"probe", name.encode() + b"\0" + payload)

    def judged(self, name: str) -> None:
        """Every test of `name` is judged: from now on the worker's stub is the reference."""
        from course.checks.core import copy_of

        target = reference_target(name)
        if target is None:
            return
        import cloudpickle

        _by_value()
        self.request(b"reference", name.encode() + b"\0" + cloudpickle.dumps(copy_of(target)))

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


# ---------------------------------------------------------------- judging here


class Remote:
    """Stands for the learner's object `name` inside the worker."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<your {self.name}>"

    def __reduce__(self):  # a probe that captured it finds the learner's object in the worker
        return (eval, (f"__course_learner__({self.name!r})",))


_CURRENT: list[Worker] = []
_REMOTES: dict[str, Remote] = {}  # one handle per name and notebook, so checks can cache
# Every earlier notebook's handles stay alive: a check's cache keyed by a handle's id() can
# never meet a later notebook (a process grading many notebooks reuses no id).
_RETIRED: list[Remote] = []


def remote(name: str) -> Remote:
    return _REMOTES.setdefault(name, Remote(name))


class RemoteNamespace:
    """The learner's namespace in the worker, as far as the checks need it: look a name up,
    lend it the reference version of an earlier (already judged) part, give it back."""

    def __init__(self, worker: Worker):
        self.worker = worker

    def get(self, name: str, default=None):
        return remote(name) if self.worker.request(b"has", name.encode())[0]["has"] else default

    def __setitem__(self, name: str, value) -> None:
        if isinstance(value, Remote) and value.name == name:
            self.worker.request(b"restore", name.encode())
            return
        import cloudpickle

        _by_value()
        self.worker.request(b"bind", name.encode() + b"\0" + cloudpickle.dumps(value))

    def pop(self, name: str, default=None):
        self.worker.request(b"restore", name.encode())
        return default


def untag(value, depth: int = 0):
    """A torch-free result from the worker (JSON, tagged by the worker's `_tagged`) as the
    plain values it stands for: nothing but None, bool, int, float, str, bytes, list, tuple
    and dict is ever built."""
    if depth > 40:
        raise ValueError("a result nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "b" and isinstance(inner, str):
            return bytes.fromhex(inner)
        if tag in ("l", "t") and isinstance(inner, list):
            items = [untag(v, depth + 1) for v in inner]
            return items if tag == "l" else tuple(items)
        if tag == "d" and isinstance(inner, list):
            return {untag(k, depth + 1): untag(v, depth + 1) for k, v in inner}
    raise ValueError("the notebook's reply is not a plain result")


def _replay(header: dict, payload: bytes):
    """A zero-argument function that gives back what the probe gave in the worker."""
    from course.checks.core import CheckFailed

    status = header.get("status")

    def replay():
        if status == "ok" and header.get("format") == "json":
            return untag(json.loads(payload))
        if status == "ok":
            import torch

            return torch.load(io.BytesIO(payload), weights_only=True)
        if status == "not-implemented":
            raise NotImplementedError
        if status == "check-failed":
            raise CheckFailed(header.get("message", ""))
        kind = str(header.get("kind", "Exception"))
        error = type(kind if kind.isidentifier() else "Exception", (Exception,), {})(
            str(header.get("message", "")))
        raise error

    return replay


def install() -> None:
    """Route the checks' probes on `Remote` objects to the worker (idempotent)."""
    from course.checks import core

    original = getattr(core.call, "__wrapped_call__", core.call)

    def judged_call(obj, probe, *args, **kwargs):
        if isinstance(obj, Remote):
            header, payload = _CURRENT[-1].probe(obj.name, probe)
            return original(_replay(header, payload), lambda replay: replay(), *args, **kwargs)
        return original(obj, probe, *args, **kwargs)

    judged_call.__wrapped_call__ = original
    if hasattr(core, "_namespace"):  # the checks rebind earlier parts in the learner's namespace
        namespace_of = getattr(core._namespace, "__wrapped_namespace__", core._namespace)

        def judged_namespace(obj):
            if isinstance(obj, Remote):
                return RemoteNamespace(_CURRENT[-1])
            return namespace_of(obj)

        judged_namespace.__wrapped_namespace__ = namespace_of
        core._namespace = judged_namespace
    for name, module in list(sys.modules.items()):
        if name.startswith("course.checks") and getattr(module, "call", None) in (original,
                                                                                 core.call):
            module.call = judged_call
    _by_value()


BY_VALUE = ("course.checks", "course.oracles")  # code the worker lacks or must not rely on
_SENT_BY_VALUE: set[str] = set()


def _by_value() -> None:
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


class _Names(dict):
    """Test-cell names: the trusted imports, then builtins, else the learner's object."""

    def __init__(self, trusted: dict):
        super().__init__()
        self.trusted = trusted

    def __missing__(self, key):
        if key in self.trusted:
            return self.trusted[key]
        if hasattr(builtins, key):
            return getattr(builtins, key)
        return remote(key)


def plain_imports(source_nb) -> list[ast.stmt]:
    """The top-level import statements of the instructor notebook's plain cells."""
    imports = []
    for cell in source_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("solution") or meta.get("grade"):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        imports += [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    return imports


def trusted_imports(source_nb) -> dict:
    """The import statements of the instructor notebook's plain cells, run here."""
    namespace: dict = {"__name__": "__course_judge__"}
    imports = plain_imports(source_nb)
    if imports:
        exec(compile(ast.Module(imports, []), "<imports>", "exec"), namespace)
    return namespace


def judge_test(source: str, trusted: dict) -> list:
    """Run one test cell here; its outputs (an error output when a check fails)."""
    install()
    printed = io.StringIO()
    outputs = []
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(source, "<test>", "exec"), dict(trusted), _Names(trusted))
    except WorkerGone as error:
        outputs.append(_error("WorkerGone", str(error)))
    except Exception as error:  # a failed check, or a check that could not run
        outputs.append(_error(type(error).__name__, str(error)))
    if printed.getvalue():
        outputs.insert(0, nbformat.v4.new_output("stream", name="stdout",
                                                 text=printed.getvalue()[-20_000:]))
    return outputs


def _error(ename: str, evalue: str):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue,
                                  traceback=[f"{ename}: {evalue}"])


NEEDS = re.compile(r"(\w+) is imported from the reference `solutions` package, which is not "
                   r"available while grading")


class Order:
    """When each part is judged, and test cells that must wait for a later part.

    A part is judged once every test cell that mentions it has been; then the worker gets its
    reference (`Worker.judged`). A test cell whose probe reached a later part the learner has
    not written yet (given code calling it: GPT's cached forward calls the KV-cache attention
    of Part 2) waits, and is judged again as soon as that part is judged, so it meets the
    reference there as it would in-process. Its own parts stay unjudged meanwhile, so their
    reference never reaches the worker while they are still tested.
    """

    def __init__(self, mentions: dict[str, set[str]]):
        self.mentions = mentions
        self.pending = {name: {g for g, names in mentions.items() if name in names}
                        for names in mentions.values() for name in names}
        self.closed: set[str] = set()
        self.waiting: list[tuple[object, set[str], object]] = []  # (cell, names, judge)

    def _needs(self, cell) -> set[str]:
        """Later parts this cell's failures say it reached before they were judged."""
        own = self.mentions.get(cell.metadata["nbgrader"].get("grade_id"), set())
        text = " ".join(str(o.get("evalue", "")) for o in cell.outputs
                        if o.get("output_type") == "error")
        return {n for n in NEEDS.findall(text)
                if n in self.pending and n not in self.closed and n not in own}

    def judge(self, cell, run, worker: Worker) -> None:
        cell.outputs = run(cell)
        needs = self._needs(cell)
        if needs:
            self.waiting.append((cell, needs, run))
        else:
            self._done(cell, worker)

    def _done(self, cell, worker: Worker) -> None:
        grade_id = cell.metadata["nbgrader"].get("grade_id")
        for name in sorted(self.mentions.get(grade_id, set())):
            self.pending[name].discard(grade_id)
            if not self.pending[name] and name not in self.closed:
                self.closed.add(name)
                with contextlib.suppress(WorkerGone):
                    worker.judged(name)
        for entry in list(self.waiting):
            waiting_cell, needs, run = entry
            if needs <= self.closed and entry in self.waiting:
                self.waiting.remove(entry)
                self.judge(waiting_cell, run, worker)


def preloads(source_nb) -> tuple[str, ...]:
    """Modules the exercise's own cells import, other than the course's (the worker imports
    them before its submission's first cell: a worker started ahead has them ready)."""
    found: dict[str, None] = {}
    for node in plain_imports(source_nb):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module] if node.module and not node.level else [])
        for name in names:
            if name.split(".")[0] not in ("course", "solutions"):
                found[name] = None
    return tuple(found)


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
        runtime, limits, slot, sandboxed, preload = key
        if key not in self.workers:
            self.workers[key] = Worker(Path(runtime), limits, deadline=float("inf"), slot=slot,
                                       sandboxed=sandboxed, preload=preload)

    def close(self) -> None:
        while self.workers:
            self.workers.popitem()[1].close()


SPARES: Spares | None = None  # set by a process that grades many submissions in sequence
PEAKS: list[float] = []  # the last notebooks' worker memory peaks, MiB (read by the grader)


def execute(nb, source_nb, runtime: Path, limits: sandbox.Limits, *, timeout: float,
            slot: int = 0, sandboxed: bool = True):
    """Run the learner's cells in the worker and judge the test cells here, in order.

    A test cell is judged with the instructor notebook's source for its grade id (nbgrader
    has already restored it); a cell marked as a test that is not one of the exercise's
    tests is never run here."""
    trusted = trusted_imports(source_nb)
    order = Order(test_mentions(source_nb))
    tests = {c.metadata["nbgrader"].get("grade_id"): c.source for c in source_nb.cells
             if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
             and not c.metadata["nbgrader"].get("solution")}
    key = (str(runtime), limits, slot, sandboxed, preloads(source_nb))
    worker = SPARES.take(key, timeout=timeout) if SPARES is not None else None
    if worker is None:
        worker = Worker(runtime, limits, deadline=time.monotonic() + timeout, slot=slot,
                        sandboxed=sandboxed, preload=key[-1])
    _CURRENT.append(worker)
    _RETIRED.extend(_REMOTES.values())
    _REMOTES.clear()
    try:
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution"):
                source = tests.get(meta.get("grade_id"))
                if source is None:
                    cell.outputs = [_error("NotATest", "this cell is marked as a test but is "
                                           "not one of the exercise's tests; it was not run")]
                    continue
                order.judge(cell, lambda c, source=source: judge_test(source, trusted), worker)
                continue
            try:
                reply = worker.run(cell.source)
            except WorkerGone as error:
                cell.outputs = [_error("WorkerGone", str(error))]
                continue
            outputs = []
            if reply.get("text"):
                outputs.append(nbformat.v4.new_output("stream", name="stdout",
                                                      text=str(reply["text"])[-20_000:]))
            if reply.get("error"):
                ename, evalue = (str(x) for x in reply["error"][:2])
                outputs.append(_error(ename, evalue))
            cell.outputs = outputs
    finally:
        _CURRENT.pop()
        peak = worker.peak_mb()
        worker.close()
        _RETIRED.extend(_REMOTES.values())
        _REMOTES.clear()
        if peak is not None:
            PEAKS.append(peak)
        if SPARES is not None:
            SPARES.start(key)
    return nb


class JudgedExecute(NbGraderPreprocessor):
    """nbgrader's Execute, replaced: learner cells in the sandboxed worker, tests judged here.

    Settings come from the COURSE_JUDGE environment variable (JSON: source notebook, runtime,
    limits, timeout, slot, sandboxed), set by the trusted grader.
    """

    def preprocess(self, nb, resources):
        settings = json.loads(os.environ[SETTINGS])
        source_nb = nbformat.read(settings["source"], as_version=4)
        limits = sandbox.Limits(**settings["limits"])
        nb = execute(nb, source_nb, Path(settings["runtime"]), limits,
                     timeout=float(settings["timeout"]), slot=int(settings.get("slot", 0)),
                     sandboxed=bool(settings.get("sandboxed", True)))
        return nb, resources
