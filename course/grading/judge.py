"""The trusted judge: the learner's cells run in a sandboxed worker, the test cells and every
check run here, on `Remote` handles whose probes only send plain results back. `JudgedExecute`
replaces nbgrader's Execute in autograde. AUTHORING.md, "Grading", tells the whole design.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import functools
import importlib
import io
import json
import os
import pkgutil
import re
import time
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

from course.grading import runtime, sandbox
from course.grading.order import NEEDS, Order, test_mentions
from course.grading.process import Spares, Worker, WorkerGone
from course.grading.remote import BEFORE, CURRENT, REMOTES, RETIRED, install, remote

SETTINGS = "COURSE_JUDGE"  # environment variable: JSON settings for JudgedExecute
FAILURE_CHARS = 4000  # of a failure message, whatever the check or the learner printed


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


def trusted_imports(source_nb) -> dict:
    """The import statements of the instructor notebook's plain cells, run here."""
    namespace: dict = {"__name__": "__course_judge__"}
    imports = runtime.plain_imports(source_nb)
    if imports:
        exec(compile(ast.Module(imports, []), "<imports>", "exec"), namespace)
    return namespace


BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HIDDEN_FAILED = ("a hidden test failed (the visible ones above passed). Its message is not shown: "
                 "it could quote the hidden inputs. Try your code on more cases: other shapes, "
                 "edge values, other settings.")


def chunks(source: str) -> list[tuple[bool, str]]:
    """A test cell's code as (hidden, code) pieces in order; each piece keeps its line
    numbers (the other lines are blank)."""
    lines, pieces, hidden, start = source.splitlines(), [], False, 0
    for i in range(len(lines) + 1):
        marker = lines[i].strip() if i < len(lines) else None
        if marker in (BEGIN_HIDDEN, END_HIDDEN, None):
            code = "\n" * start + "\n".join(lines[start:i])
            if code.strip():
                pieces.append((hidden, code))
            hidden, start = marker == BEGIN_HIDDEN, i + 1
    return pieces


@functools.cache
def known_hints() -> frozenset[str]:
    """Every hint of the course's catalogues of mistakes."""
    import course.checks

    hints = set()
    for info in pkgutil.iter_modules(course.checks.__path__):
        module = importlib.import_module(f"course.checks.{info.name}")
        hints |= {m.hint for m in getattr(module, "MISTAKES", [])}
    return frozenset(hints)


# the engine's notes on an earlier part that fails (course/checks/engine: mode.py, tape.py)
NOTE = re.compile(r"Part (\d+) \(`(\w+)`\) fails first(; this part was checked with the "
                  r"reference Part \1|, and this part uses it: fix Part \1 first)\.")


def _hidden_error(error: BaseException, graded: frozenset) -> dict:
    """What a failure in hidden tests may say: its kind (the check's, a built-in exception's
    name, else Exception), a fixed text, and of its message only the catalogue's hints, the
    engine's notes on an earlier part that fails, and the parts it reached before they were
    graded (texts of the course naming graded parts, never the learner's)."""
    from course.checks.engine.diagnosis import HINT, OR
    from course.checks.engine.registry import part_of
    from course.checks.engine.results import CheckFailed

    ename = type(error).__name__
    if isinstance(error, CheckFailed):
        ename = "CheckFailed"
    elif not isinstance(getattr(builtins, ename, None), type) or \
            not issubclass(getattr(builtins, ename), BaseException):
        ename = "Exception"
    message, kept = str(error), []
    for line in message.splitlines():
        note = NOTE.fullmatch(line)
        if line.partition(": ")[2] in known_hints() and \
                any(line.startswith(p.lstrip("\n")) for p in (HINT, OR)) or \
                note and note[2] in graded:
            kept.append(line)
    for pair in NEEDS.findall(message):
        kept += [BEFORE.format(part=part_of(runtime.reference_target(n) or n), name=n)
                 for n in pair if n in graded]
    return _error(ename, "\n".join([HIDDEN_FAILED, *dict.fromkeys(kept)]))


def judge_test(source: str, trusted: dict, graded: frozenset = frozenset()) -> list:
    """Run one test cell here; its outputs (an error output when a check fails). What its
    hidden tests print is dropped, and their failure says only what `_hidden_error` keeps."""
    install()
    printed = io.StringIO()
    outputs = []
    namespace, names = dict(trusted), _Names(trusted)
    for hidden, code in chunks(source):
        shown = printed if not hidden else io.StringIO()
        try:
            with contextlib.redirect_stdout(shown):
                exec(compile(code, "<test>", "exec"), namespace, names)
        except WorkerGone as error:
            outputs.append(_error("WorkerGone", str(error)))
        except Exception as error:  # a failed check, or a check that could not run
            outputs.append(_hidden_error(error, graded) if hidden else
                           _error(type(error).__name__, str(error)))
        else:
            continue
        break
    if printed.getvalue():
        outputs.insert(0, nbformat.v4.new_output("stream", name="stdout",
                                                 text=printed.getvalue()[-20_000:]))
    return outputs


def _error(ename: str, evalue: str):
    if len(evalue) > FAILURE_CHARS:
        evalue = evalue[:FAILURE_CHARS] + " [...]"
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue,
                                  traceback=[f"{ename}: {evalue}"])


AFTER_TESTS = ("(not shown in feedback: this cell ran after the tests began, when what it "
               "prints could quote the grader's hidden inputs; run your notebook to see it)")


def _outputs(reply: dict, *, kept: bool) -> list:
    """A learner cell's outputs: what it printed and its error, bounded; once the tests began,
    only whether it failed (the learner's own code may print what the checks gave it)."""
    outputs = []
    if reply.get("text"):
        text = str(reply["text"])[-20_000:] if kept else AFTER_TESTS
        outputs.append(nbformat.v4.new_output("stream", name="stdout", text=text))
    if reply.get("error"):
        ename, evalue = (str(x)[:2000] for x in reply["error"][:2])
        outputs.append(_error(ename if ename.isidentifier() else "Exception",
                              evalue if kept else AFTER_TESTS))
    return outputs


SPARES: Spares | None = None  # set by a process that grades many submissions in sequence
PEAKS: list[float] = []  # the last notebooks' worker memory peaks, MiB (read by the grader)


def execute(nb, source_nb, folder: Path, limits: sandbox.Limits, *, timeout: float,
            slot: int = 0, sandboxed: bool = True, spare: bool = True):
    """Run the learner's cells in the worker and judge the test cells here, in order.

    A test cell is judged with the instructor notebook's source for its grade id (nbgrader
    has already restored it); a cell marked as a test that is not one of the exercise's
    tests is never run here. A learner cell that prints or fails after the tests began
    keeps only a notice (`AFTER_TESTS`): its output could quote hidden inputs. With `spare`
    (and SPARES set), the next submission's worker starts as this one ends."""
    trusted = trusted_imports(source_nb)
    graded = frozenset(runtime.graded_names(source_nb))
    order = Order(test_mentions(source_nb))
    tests = {c.metadata["nbgrader"].get("grade_id"): c.source
             for c in runtime.code_cells(source_nb, test=True)}
    key = (str(folder), limits, slot, sandboxed, runtime.preloads(source_nb))
    worker = SPARES.take(key, timeout=timeout) if SPARES is not None else None
    if worker is None:
        worker = Worker(folder, limits, deadline=time.monotonic() + timeout, slot=slot,
                        sandboxed=sandboxed, preload=key[-1])
    worker.graded, worker.pending = set(order.pending), set(order.pending)
    CURRENT.append(worker)
    RETIRED.extend(REMOTES.values())
    REMOTES.clear()
    testing = False  # a test cell has run: the worker may hold hidden inputs and references
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
                testing = True
                order.judge(cell, lambda c, source=source: judge_test(source, trusted, graded),
                            worker)
                continue
            try:
                reply = worker.run(cell.source)
            except WorkerGone as error:
                cell.outputs = [_error("WorkerGone", str(error))]
                continue
            cell.outputs = _outputs(reply, kept=not testing)
    finally:
        CURRENT.pop()
        peak = worker.peak_mb()
        worker.close()
        RETIRED.extend(REMOTES.values())
        REMOTES.clear()
        if peak is not None:
            PEAKS.append(peak)
        if SPARES is not None and spare:
            SPARES.start(key)
    return nb


class JudgedExecute(NbGraderPreprocessor):
    """nbgrader's Execute, replaced: learner cells in the sandboxed worker, tests judged here.

    Settings come from the COURSE_JUDGE environment variable (JSON: source notebook, runtime,
    limits, timeout, slot, sandboxed, spare), set by the trusted grader.
    """

    def preprocess(self, nb, resources):
        settings = json.loads(os.environ[SETTINGS])
        source_nb = nbformat.read(settings["source"], as_version=4)
        limits = sandbox.Limits(**settings["limits"])
        nb = execute(nb, source_nb, Path(settings["runtime"]), limits,
                     timeout=float(settings["timeout"]), slot=int(settings.get("slot", 0)),
                     sandboxed=bool(settings.get("sandboxed", True)),
                     spare=bool(settings.get("spare", True)))
        return nb, resources
