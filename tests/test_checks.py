"""Every check passes the reference and fails every mutant in its topic's catalogue,
naming the mistake; importing the reference scores zero."""

from __future__ import annotations

import importlib

import pytest

from course.checks import TOPICS
from course.checks.core import CheckFailed, copy_of, mutant, require_own

MODULES = [importlib.import_module(f"course.checks.{topic}") for topic in TOPICS]
TARGETS = [(m, t) for m in MODULES for t in m.CHECKS]
MISTAKES = [(m, k) for m in MODULES for k in m.MISTAKES]


def run_check(check, obj):
    check(obj)
    check(obj, hidden=True)


@pytest.mark.parametrize("module,target", TARGETS, ids=[t for _, t in TARGETS])
def test_reference_passes(module, target):
    run_check(module.CHECKS[target], copy_of(target))


@pytest.mark.parametrize("module,target", TARGETS, ids=[t for _, t in TARGETS])
def test_imported_reference_scores_zero(module, target):
    reference = importlib.import_module(target.rpartition(".")[0])
    with pytest.raises(CheckFailed, match="imported from the reference"):
        run_check(module.CHECKS[target], getattr(reference, target.rpartition(".")[2]))


@pytest.mark.parametrize("module,mistake", MISTAKES, ids=[k.name for _, k in MISTAKES])
def test_mutant_fails_and_is_named(module, mistake):
    assert mistake.target in module.CHECKS, f"no check for {mistake.target}"
    with pytest.raises(CheckFailed) as failure:
        run_check(module.CHECKS[mistake.target], mutant(mistake))
    assert mistake.hint in str(failure.value)


@pytest.mark.parametrize("module", MODULES, ids=TOPICS)
def test_catalogue_is_large_and_distinct(module):
    names = [k.name for k in module.MISTAKES]
    assert len(names) >= 8 and len(set(names)) == len(names)
    assert len({k.hint for k in module.MISTAKES}) == len(names)


def test_not_implemented_is_reported_plainly():
    def merge(ids, pair, new_id):
        raise NotImplementedError()

    from course.checks.tokenization import check_merge

    with pytest.raises(CheckFailed, match="not implemented yet"):
        check_merge(merge)


def test_subclass_of_reference_counts_as_imported():
    from solutions.tokenization import CharTokenizer

    class Mine(CharTokenizer):
        pass

    with pytest.raises(CheckFailed):
        require_own(Mine, "CharTokenizer")
