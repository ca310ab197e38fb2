"""Comparing the learner's result with the expected one, and naming the mistake: `compare`
probes once, `diagnose` finds the known mistakes that explain a wrong result, `fail` says so."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from course.checks.engine.mode import current
from course.checks.engine.results import CheckFailed, Raised, Raises, call, same, short, where

Effects = Sequence[tuple[str, Callable[[Any], bool]]]  # (mistake name, holds(learner's result))


def diagnose(actual: Any, probe: Callable[[Any], Any], what: str, effects: Effects = (),
             **tolerance) -> list:
    """The known mistakes that explain the learner's result on this case: the mutants giving
    exactly that result; failing that, the mistakes whose effect predicate holds."""
    mode = current()
    context = mode.context()
    mode.diagnosing(context, probe, what)
    known = mode.mistakes(context)
    found = []
    for mistake in known:
        result = mode.result(context, mistake, probe, what)
        if not isinstance(result, CheckFailed) and same(actual, result, **tolerance):
            found.append(mistake)
    own = [m for m in found if m.own]
    if own or isinstance(actual, Raised):  # a part's own mistake before a helper's
        return own or found
    if found:
        return found
    by_name = {m.name: m for m in known}
    for name, holds in effects:
        try:
            if holds(actual):
                found.append(by_name[name])
        except Exception:  # an effect predicate never breaks a check
            continue
    return list(dict.fromkeys(found))


def compare(learner: Any, probe: Callable[[Any], Any], expected: Any, *, what: str,
            parts: Sequence[str] | None = None, effects: Effects = (), **tolerance) -> Any:
    """Fail with a diagnostic message unless probe(learner) matches `expected`.

    `expected` is the oracle's result for this case (or `Raises(kind)`). With `parts`, the probe
    returns a tuple and each element is compared in turn; the message names the first that
    differs. Returns the learner's result.
    """
    __tracebackhide__ = True
    mode = current()
    actual = call(learner, probe, what)
    expected = mode.expected(mode.context(), probe, expected, what, actual, tolerance)
    if same(actual, expected, **tolerance):
        return actual
    if isinstance(actual, Raised):
        message = f"{what}\n  expected {short(expected)}\n  raised   {actual}" \
            if isinstance(expected, Raises) else f"{what}\n  raised {actual}"
    elif parts is not None and isinstance(actual, tuple) and len(actual) == len(parts) \
            and isinstance(expected, tuple):
        name, got, want = next((n, a, e) for n, a, e in zip(parts, actual, expected)
                               if not same(a, e, **tolerance))
        message = (f"{what}: {name}\n  expected {short(want)}\n  got      {short(got)}"
                   + where(got, want, **tolerance))
    else:
        message = (f"{what}\n  expected {short(expected)}\n  got      {short(actual)}"
                   + where(actual, expected, **tolerance))
    fail(message, diagnose(actual, probe, what, effects, **tolerance))


HINT, OR = "\nLikely mistake: ", "\nOr: "  # (the judge keeps these hints of a hidden failure)


def fail(message: str, known: Sequence = ()) -> NoReturn:
    """Raise CheckFailed, naming the known mistakes that explain the learner's output."""
    __tracebackhide__ = True
    context = current().context()
    if known and not (context and context.blind):
        message += HINT + OR.join(dict.fromkeys(m.hint for m in known))
    raise CheckFailed(message)
