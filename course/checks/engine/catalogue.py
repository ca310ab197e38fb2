"""The catalogues of a topic: mistakes (one edit of the reference's code, and the hint for it)
and slips (a whole wrong definition); the mutants built from them, and the reference rebuilt
from its source as a learner who typed it would have it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from course.authoring.source import code_only, edit, rebuild, source_of
from course.checks.engine.results import CheckFailed, call


@dataclass(frozen=True)
class Mistake:
    """A realistic mistake: one edit of one solution object's code, and the hint a learner sees."""

    name: str
    target: str  # dotted path of the solution object, e.g. "solutions.tokenization.merge"
    find: str  # code only (no comment text): matched in the source with comments removed
    replace: str
    hint: str
    own = True  # a mistake of the part checked, not of a helper it calls

    def source(self) -> str:
        """The target's code (comments removed) with this mistake made."""
        return edit(code_only(source_of(self.target)), self.find, self.replace)

    def build(self):
        """The mutant object."""
        return rebuild(self.target, self.source())


@dataclass(frozen=True)
class Slip:
    """A learner's plausible wrong version of one solution object, written as code of its own
    (not an edit of the reference): the second catalogue of a topic. `mistake` names the
    catalogued mistake it makes, or None when no hint fits (then none may be given)."""

    name: str
    target: str  # the solution object the learner wrote wrongly
    code: str  # the learner's whole definition of that object
    mistake: str | None


@dataclass(frozen=True)
class Through:
    """A helper's mistake seen through a later part that calls the helper by name."""

    mistake: Mistake
    target: str  # the calling part
    own = False

    @property
    def name(self) -> str:
        return self.mistake.name

    @property
    def hint(self) -> str:
        return self.mistake.hint

    def build(self):
        helper = self.mistake.target.rpartition(".")[2]
        return rebuild(self.target, source_of(self.target), **{helper: mutant(self.mistake)})


@cache
def reference(target: str):
    """The reference rebuilt from its source (never an object of the `solutions` package)."""
    return rebuild(target, source_of(target))


@cache
def mutant(mistake: Mistake):
    return mistake.build()


@cache
def _built(known: Mistake | Through):
    return mutant(known) if isinstance(known, Mistake) else known.build()


MUTANT_RESULTS: dict[tuple, Any] = {}  # (mistake, case) -> the mutant's result, once


def mutant_result(known: Mistake | Through, probe: Callable, what: str) -> Any:
    """The probe's result on this mistake's mutant (a CheckFailed when it could not run)."""
    key = (known, what)
    if key not in MUTANT_RESULTS:
        try:
            MUTANT_RESULTS[key] = call(_built(known), probe, known.name)
        except CheckFailed as error:
            MUTANT_RESULTS[key] = error
    return MUTANT_RESULTS[key]
