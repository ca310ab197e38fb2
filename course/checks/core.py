"""The checks engine as a topic's checks module uses it: `@check` registers a check of one
solution target, `compare` grades the learner's result against the oracle's and names the
mistake. The rules every topic keeps are in AUTHORING.md ("Writing checks")."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from course.authoring.source import code_only, edit, made, replace_definition, source_of  # noqa: F401
from course.checks.engine.catalogue import Mistake, Slip, mutant  # noqa: F401
from course.checks.engine.diagnosis import compare, diagnose, fail  # noqa: F401
from course.checks.engine.mode import MISSING, Context, current
from course.checks.engine.notebook import demonstrations, notebook_cells
from course.checks.engine.registry import (  # noqa: F401
    REGISTRY,
    Spec,
    checks_for,
    namespace_of,
    register,
    run_checks,
    topic_module,
)
from course.checks.engine.results import (  # noqa: F401
    CheckFailed,
    NotWritten,
    Raised,
    Raises,
    Staged,
    call,
    close,
    cpu_tensor_spy,
    require_own,
    same,
    short,
)
from course.checks.engine.tape import (  # noqa: F401
    TAPE,
    fails_first,
    learners_code,
    recording,
    replaying,
)

_namespace = namespace_of  # as `_checking` looks the learner's namespace up: the judge replaces it
_notebook_cells, _demonstrations = notebook_cells, demonstrations  # bundle.py reads them


def check(target: str, *, part: int, uses: Sequence[str] = ()):
    """Register a check of `target` (graded in Part `part`, the template's `part`-th `:part:`
    cell); `uses`: the earlier parts the target calls by name."""

    def wrap(fn: Callable) -> Callable:
        spec = Spec(target, part, tuple(uses), fn, topic_module(fn.__module__))

        @functools.wraps(fn)
        def run(obj: Any, hidden: bool = False) -> None:
            __tracebackhide__ = True
            mode = current()
            try:
                require_own(obj, spec.name)
                with _checking(spec, obj, hidden) as context:
                    checked = mode.run(fn, context, hidden)
            except CheckFailed as error:
                mode.remember(spec, obj, hidden, str(error).splitlines()[0] if str(error)
                              else "fails")
                raise
            if checked:
                mode.remember(spec, obj, hidden, None)

        run.spec = spec
        spec.check = run
        register(spec)
        return run

    return wrap


def copy_of(target: str):
    """The reference rebuilt from its source, as a learner who typed it would have it (in a
    student bundle, which has no reference: the learner's own object of that name)."""
    return current().reference(target)


def _verdict(target: str, obj: Any, hidden: bool) -> str | None:
    """None if `obj` passes every check of `target`, else the first line of its failure."""
    return current().verdict(target, obj, hidden)


@contextmanager
def _checking(spec: Spec, obj: Any, hidden: bool) -> Iterator[Context]:
    """While a check runs: torch on one thread, and the earlier parts it calls lent by the run
    mode in the learner's namespace (`_namespace`, which the judge routes to its worker); its
    notes end the failure message, or are printed when it passes."""
    mode = current()
    context = Context(spec, obj)
    namespace = _namespace(obj)
    threads = _one_thread()
    saved = mode.lend(context, namespace, hidden)
    mode.active.append(context)
    try:
        yield context
    except CheckFailed as error:
        if context.notes:
            raise CheckFailed(str(error) + "\n" + "\n".join(dict.fromkeys(context.notes))) \
                from None
        raise
    else:
        for note in dict.fromkeys(context.notes):
            print("Note:", note)
    finally:
        threads()
        mode.active.pop()
        for name, value in saved.items():
            if value is MISSING:
                namespace.pop(name, None)
            else:
                namespace[name] = value


def _one_thread() -> Callable[[], None]:
    """Run torch on one thread while checking (a check's tensors are tiny: threads only wait
    for each other, ten times slower on a busy machine); returns the function that restores."""
    torch = sys.modules.get("torch")
    if torch is None:
        return lambda: None
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return lambda: torch.set_num_threads(before)
