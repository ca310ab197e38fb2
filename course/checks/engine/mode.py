"""The run mode: one object that says where expected results, mistakes' results and earlier
parts come from. `Mode` runs in process with the reference at hand (the course's notebooks, the
test suite, and the judge, which routes `call` and the learner's namespace to its worker);
`tape.Recording` also keeps a tape of every case, `tape.Replaying` reads one in a bundle."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from typing import Any

from course.checks.engine import catalogue
from course.checks.engine.registry import REGISTRY, Spec, checks_for, part_of
from course.checks.engine.results import CheckFailed

MISSING = object()  # a name the learner's namespace does not hold


@dataclass
class Context:
    """One check running on one learner's object."""

    spec: Spec
    obj: Any = None  # the learner's object under check
    notes: list[str] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)  # what -> compare calls so far
    blind: bool = False  # a bundle whose earlier part fails: no mistake is hinted
    cases: dict[str, dict] = field(default_factory=dict)  # what -> its taped mutant results


class Mode:
    """In process: the reference, its mutants and the oracles are at hand."""

    replaying = False

    def __init__(self):
        self.active: list[Context] = []  # the checks running, innermost last
        self.verdicts: dict[tuple, tuple[Any, str | None]] = {}  # (check, id, hidden) -> ...

    def context(self) -> Context | None:
        return self.active[-1] if self.active else None

    def reference(self, target: str) -> Any:
        """The object a check runs where it needs the reference `target`."""
        return catalogue.reference(target)

    def mistakes(self, context: Context | None) -> list:
        """The mistakes a failure of the running check may be diagnosed as."""
        return context.spec.mistakes() if context else []

    def expected(self, context: Context | None, probe: Callable, expected: Any, what: str,
                 actual: Any, tolerance: dict) -> Any:
        """The expected result of this case (the one its check computed)."""
        return expected

    def diagnosing(self, context: Context | None, probe: Callable, what: str) -> None:
        """Before the mistakes' results of a case are looked at: nothing to do in process (the
        mutants run here)."""

    def result(self, context: Context | None, known, probe: Callable, what: str) -> Any:
        """A known mistake's result on this case (a CheckFailed when there is none)."""
        return catalogue.mutant_result(known, probe, what)

    def lend(self, context: Context, namespace: Any, hidden: bool) -> dict[str, Any]:
        """Rebind the earlier parts the check's target calls (`uses`) to the reference in the
        learner's namespace, noting a part of the learner's own that fails first; returns what
        the namespace held, to give back."""
        saved: dict[str, Any] = {}
        if namespace is None:
            return saved
        for used in context.spec.uses:
            name = used.rpartition(".")[2]
            reference = self.reference(used)
            mine = namespace.get(name, MISSING)
            reference_made = str(getattr(mine, "__module__", "")).startswith("solutions")
            if mine is not MISSING and mine is not reference and not reference_made \
                    and self.verdict(used, mine, hidden) is not None:
                part = part_of(used)
                context.notes.append(f"Part {part} (`{name}`) fails first; this part was "
                                     f"checked with the reference Part {part}.")
            saved[name] = mine
            namespace[name] = reference
        return saved

    def run(self, check: Callable, context: Context, hidden: bool) -> bool:
        """Run the check's own code; False if it could not run yet."""
        check(context.obj, hidden)
        return True

    def fails_first(self, target: str, mine: Any, hidden: bool) -> None:
        """Where a check runs the learner's `target` in place of the reference: nothing to say
        in process (the reference runs there)."""

    def remember(self, spec: Spec, obj: Any, hidden: bool, failure: str | None) -> None:
        self.verdicts[(spec.id, id(obj), hidden)] = (obj, failure)

    def verdict(self, target: str, obj: Any, hidden: bool) -> str | None:
        """None if `obj` passes every check of `target`, else the first line of its failure
        (each check's verdict on an object is remembered: earlier test cells already ran)."""
        checks_for(target)
        for spec in REGISTRY.get(target, []):
            key = (spec.id, id(obj), hidden)
            if not (key in self.verdicts and self.verdicts[key][0] is obj):
                try:
                    with redirect_stdout(io.StringIO()):  # the nested checks' own notes
                        spec.check(obj, hidden)
                except CheckFailed:
                    pass
            if self.verdicts.get(key, (None, None))[1] is not None:  # (none: could not run)
                return self.verdicts[key][1]
        return None


_MODES: list[Mode] = []  # the mode in force is the last; chosen on first use


def current() -> Mode:
    """The run mode: a bundle's tape is replayed where there is one, else in process."""
    if not _MODES:
        from course.checks.engine import tape  # (built on this module)

        _MODES.append(tape.Replaying.load() if tape.TAPE.exists() else Mode())
    return _MODES[-1]


@contextmanager
def using(mode: Mode) -> Iterator[Mode]:
    """Run checks in `mode` while active."""
    current()
    _MODES.append(mode)
    try:
        yield mode
    finally:
        _MODES.remove(mode)
