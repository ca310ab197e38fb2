"""A student bundle's tape: `Recording` keeps, for every visible case run with the reference,
the expected result and each known mistake's result; `Replaying` (in a bundle, which carries no
reference) reads them back, and runs the learner's own parts where a check needs the reference."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from course.checks.engine.diagnosis import diagnose, fail
from course.checks.engine.mode import Context, Mode, current, using
from course.checks.engine.registry import REGISTRY, names_read, namespace_of, part_of
from course.checks.engine.results import CheckFailed, NotWritten, raised, same

TAPE = Path(__file__).parent.parent / "tape.pt"  # course/checks/tape.pt, only in a bundle


@dataclass(frozen=True)
class Known:
    """A mistake as a tape keeps it: its name and hint, and whether it is the part's own."""

    name: str
    hint: str
    own: bool


class NotInBundle(CheckFailed):
    """A check needs a reference object that a student bundle does not carry."""


def _diagnosed(context: Context, what: str) -> str:
    """The tape's key of a case diagnosed without a comparison."""
    return f"{context.spec.id}|{what}|diagnosed"


def _key(context: Context, what: str) -> str:
    """A case's key on the tape: the check, the case's label, and its count so far."""
    n = context.seen[what] = context.seen.get(what, 0) + 1
    return f"{context.spec.id}|{what}|{n}"


@dataclass(frozen=True)
class WrongOnly:
    """A taped case's expected result when only a wrong result reaches the case (a check that
    compares a second time once the first comparison failed): the check's own, computed from
    the learner's result. The tape keeps the mistakes' results, so that they can be named."""


class Recording(Mode):
    """In process, keeping the tape of every case the checks run. `wrong_only`: record only the
    cases the tape does not hold yet (run with a catalogued mistake made, the cases only a
    wrong result reaches)."""

    def __init__(self, tape: dict | None = None, wrong_only: bool = False):
        super().__init__()
        self.tape: dict = tape or {"known": {}, "cases": {}}  # check -> [Known]; case -> results
        self.wrong_only = wrong_only

    def mistakes(self, context: Context | None) -> list:
        known = super().mistakes(context)
        if context is not None:
            self.tape["known"][context.spec.id] = [Known(m.name, m.hint, m.own) for m in known]
        return known

    def expected(self, context, probe, expected, what, actual, tolerance) -> Any:
        if context is None:
            return expected
        key = _key(context, what)
        if not (self.wrong_only and key in self.tape["cases"]):
            self.tape["cases"][key] = (WrongOnly() if self.wrong_only else expected,
                                       self._results(context, probe, what))
        context.cases[what] = self.tape["cases"][key][1]
        return expected

    def diagnosing(self, context, probe, what) -> None:
        """A case that a check diagnoses without comparing first (`diagnose` called directly):
        its mistakes' results are taped under a key of their own."""
        if context is not None and what not in context.cases:
            key = _diagnosed(context, what)
            if key not in self.tape["cases"]:
                self.tape["cases"][key] = (WrongOnly(), self._results(context, probe, what))
            context.cases[what] = self.tape["cases"][key][1]

    def _results(self, context: Context, probe: Callable, what: str) -> dict[str, Any]:
        """Each known mistake's result on this case (those that could run)."""
        results = {}
        for known in self.mistakes(context):
            result = self.result(context, known, probe, what)
            if not isinstance(result, CheckFailed):
                results[known.name] = result
        return results


@contextmanager
def recording(tape: dict | None = None, *, wrong_only: bool = False) -> Iterator[dict]:
    """Record every case the checks run while active (with the reference, which a bundle does
    not carry), onto `tape` if given; yields the tape."""
    with using(Recording(tape, wrong_only)) as mode:
        yield mode.tape


class Replaying(Mode):
    """A student bundle: expected results and mistakes' results come from the tape, and the
    given code runs the learner's parts (`learners_code`)."""

    replaying = True

    def __init__(self, tape: dict):
        super().__init__()
        self.tape = tape
        self.circular = False  # a verdict being taken used a part that is under check

    @classmethod
    def load(cls) -> Replaying:
        import torch

        return cls(torch.load(TAPE, weights_only=False))

    def mistakes(self, context: Context | None) -> list:
        return self.tape["known"].get(context.spec.id, []) if context else []

    def diagnosing(self, context, probe, what) -> None:
        taped = self.tape["cases"].get(_diagnosed(context, what)) if context else None
        if taped is not None and what not in context.cases:
            context.cases[what] = taped[1]

    def result(self, context, known, probe, what) -> Any:
        cases = context.cases.get(what, {}) if context else {}
        return cases.get(known.name, CheckFailed("not on the tape"))

    def expected(self, context, probe, expected, what, actual, tolerance) -> Any:
        """The taped expected result (the `expected` its check computed ran the learner's
        parts). A case the reference never reached (a check that compares only once the
        learner's result is wrong) keeps its own `expected` only when that already fails."""
        if context is None:
            return expected
        taped = self.tape["cases"].get(_key(context, what))
        if taped is not None and isinstance(taped[0], WrongOnly):
            context.cases[what] = taped[1]  # the mistakes' results; the check's own expected
            taped = None
        if taped is None and context.blind:  # its case differs: see the notes
            raise CheckFailed(f"{what}: not checked.")
        if taped is None and not same(actual, expected, **tolerance):
            return expected
        if taped is None:
            raise NotInBundle(f"{what}: this case has no recorded answer in the student bundle "
                              "(it runs when your work is graded).")
        expected, context.cases[what] = taped
        return expected

    def reference(self, target: str) -> Any:
        """The learner's own object of that name (a bundle has no reference)."""
        name = target.rpartition(".")[2]
        context = self.context()
        if context is not None:
            if context.spec.target == target:
                return context.obj
            namespace = namespace_of(context.obj)
            if namespace is not None and name in namespace:
                mine = namespace[name]
                self._fails_first(context, target, mine, False)
                if isinstance(mine, type):  # not the notebook's own object: a check may tell
                    return type(mine.__name__, (mine,), {"__module__": mine.__module__,
                                                         "__qualname__": mine.__qualname__})
                return functools.wraps(mine)(lambda *args, **kwargs: mine(*args, **kwargs)) \
                    if inspect.isfunction(mine) else mine
        raise NotInBundle(f"this check needs `{name}`, which the student bundle does not carry "
                          "(it runs when your work is graded).")

    def lend(self, context: Context, namespace: Any, hidden: bool) -> dict[str, Any]:
        """Lend nothing (there is no reference): an earlier part that fails its own checks is
        named, and then no mistake is hinted."""
        if namespace is not None:
            called = names_read(context.obj)  # parts it calls by name, in `uses` or not
            for used in dict.fromkeys([*context.spec.uses,
                                       *(t for t in REGISTRY if t.rpartition(".")[2] in called)]):
                name = used.rpartition(".")[2]
                if name in namespace:
                    self._fails_first(context, used, namespace[name], hidden)
        return {}

    def run(self, check: Callable, context: Context, hidden: bool) -> bool:
        """The check's own code runs the learner's objects where it would run the reference: an
        error there is the learner's. False if it could not run yet (a part it needs is not
        written)."""
        try:
            check(context.obj, hidden)
        except NotWritten as error:
            print(f"Note: not checked yet: this needs `{error}`, a part you have not "
                  "written yet. Run this cell again once it is (grading checks it in full).")
            return False
        except CheckFailed:
            raise
        except NotImplementedError:
            raise CheckFailed(f"{context.spec.name} is not implemented yet (it raises "
                              "NotImplementedError).") from None
        except Exception as error:  # the learner's code, run where the reference was
            self._raised_in_case(context, raised(error))
        return True

    def _raised_in_case(self, context: Context, error) -> NoReturn:
        """The learner's code raised where the check ran the reference to compute the expected
        result of its next case: fail as that case would (the tape keeps cases in order)."""
        __tracebackhide__ = True
        prefix = context.spec.id + "|"
        keys = [key for key in self.tape["cases"] if key.startswith(prefix)]
        done = sum(context.seen.values())
        if done >= len(keys):
            raise CheckFailed(f"checking {context.spec.name}: your code raised {error}")
        what = keys[done][len(prefix):keys[done].rindex("|")]
        context.cases[what] = self.tape["cases"][keys[done]][1]
        fail(f"{what}\n  raised {error}", diagnose(error, lambda obj: None, what))

    def fails_first(self, target: str, mine: Any, hidden: bool) -> None:
        """If the learner's `target`, run in place of the reference, fails its own checks: say
        so and hint no mistake (the failure may be that part's)."""
        context = self.context()
        if context is not None and mine is not None:
            self._fails_first(context, target, mine, hidden)

    def _fails_first(self, context: Context, target: str, mine: Any, hidden: bool) -> None:
        if mine is context.obj or not REGISTRY.get(target) \
                or str(getattr(mine, "__module__", "")).startswith("solutions"):
            return  # the part being checked, or the reference itself (replayed in process)
        if any(c.spec.target == target for c in self.active):  # a part being checked: its
            self.circular = True                               # verdict is not this one's
            return
        outer, self.circular = self.circular, False
        failed = self.verdict(target, mine, hidden) is not None
        circular, self.circular = self.circular, outer
        if not failed or circular:  # (failing with the very part under check: not its fault)
            return
        name, part = target.rpartition(".")[2], part_of(target)
        note = f"Part {part} (`{name}`) fails first, and this part uses it: fix Part {part} first."
        if note not in context.notes:
            context.notes.append(note)
        context.blind = True


def replaying() -> bool:
    """True in a student bundle: expected results and mutant results come from its tape."""
    return current().replaying


def fails_first(target: str, mine: Any, hidden: bool) -> None:
    """Where a check runs the learner's `target` in place of the reference (only in a bundle):
    if it fails its own checks, say so and hint no mistake."""
    current().fails_first(target, mine, hidden)


def learners_code(namespace: dict, qualnames: Sequence[str]) -> None:
    """In a bundle's given module: each body named ('merge', 'GPT.forward') left to write runs
    the learner's definition of that name in the notebook (`__main__`) once there is one."""
    for qualname in qualnames:
        top, _, attr = qualname.partition(".")
        owner = namespace[top] if attr else None
        stub = vars(owner)[attr] if attr else namespace[top]
        getter = stub.fget if isinstance(stub, property) else stub

        def delegate(*args, _stub=getter, _top=top, _attr=attr, _given=namespace[top],
                     **kwargs):
            mine = getattr(sys.modules.get("__main__"), _top, None)
            if mine is None or mine is _given or (_attr and not isinstance(mine, type)):
                return _stub(*args, **kwargs)
            fails_first(f"{namespace['__name__']}.{_top}", mine, False)
            if _attr:
                mine = vars(mine).get(_attr, _stub)
            return (mine.fget if isinstance(mine, property) else mine)(*args, **kwargs)

        delegate = functools.wraps(getter)(delegate)
        if not attr:
            namespace[top] = delegate
        else:
            setattr(owner, attr, property(delegate) if isinstance(stub, property) else delegate)
