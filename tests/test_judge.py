"""The judge, in-process: the hostile catalogue earns nothing, a vandal keeps its marks.

Each case is judged as `python -m course grade` judges it (learner cells in the sandboxed
worker, test cells and every comparison here), without nbgrader around it, so the whole
catalogue runs in about a minute. The end-to-end grading test runs one of them through nbgrader.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import tempfile
from pathlib import Path

import grading_cases as cases
import nbformat
import pytest

from course import exercises, source
from course.grading import judge, remote, sandbox
from course.grading.runtime import build_runtime

pytestmark = pytest.mark.skipif(sandbox.bwrap() is None and not os.environ.get("CI"),
                                reason="bubblewrap (bwrap) is not installed")

NAME = exercises.names()[0]  # the first exercise stands for all: the judge is generic


@pytest.fixture(scope="module")
def runtime():
    folder = Path(tempfile.mkdtemp(prefix="course-judge-test-"))
    folder.chmod(0o711)
    yield build_runtime(folder / "runtime", cases.source_nb(NAME))
    shutil.rmtree(folder)


def judged(nb, runtime, **limits):
    return judge.execute(nbformat.from_dict(nb), cases.source_nb(NAME), runtime,
                         sandbox.Limits(**limits), timeout=240)


ATTACKS = cases.attack_notebooks(NAME, cases.places_for())


@pytest.mark.parametrize("case", sorted(ATTACKS))
def test_hostile_catalogue(case, runtime):
    what, nb = ATTACKS[case]
    earned, possible = cases.points(judged(nb, runtime))
    expected = possible if case == "vandal-but-correct" else 0.0
    print(f"| {case} | {what} | {expected:g}/{possible:g} | {earned:g}/{possible:g} |")
    assert earned == expected, (case, earned, possible)
    assert not hasattr(builtins, "__course_forged__")  # no learner cell ran on this side


def test_the_reference_is_not_in_the_workers_runtime(runtime):
    names = cases.defined("\n".join(c.source for c in cases.solution_cells(
        cases.source_nb(NAME))))
    for name in names:
        module = cases.module_of(name)
        text = (runtime / "solutions" / f"{module.split('.')[1]}.py").read_text()
        assert f"{name} = stand_in(__name__, {name!r}, " in text
        assert name not in source.top_level(text)  # no definition of it, only the stand-in
        assert source.source_of(f"{module}.{name}") not in text
    assert "is imported from the reference" in (runtime / "course_stand_in.py").read_text()
    assert not list((runtime / "course" / "checks").glob("*.py")) or all(
        "_not_here" in p.read_text() for p in (runtime / "course" / "checks").glob("*.py"))
    assert not (runtime / "course" / "grading").exists()


def test_each_part_loses_points_for_its_own_mistake_and_names_it(runtime):
    nb, mistakes = cases.one_mistake_per_part(NAME)
    assert len(mistakes) == len(cases.solution_cells(nb))
    out = judged(nb, runtime)
    messages = "\n".join(o.get("evalue", "") for c in cases.test_cells(out)
                         for o in c.get("outputs", []))
    earned, possible = cases.points(out)
    assert earned < possible
    for mistake in mistakes:
        assert mistake.hint in messages, mistake.name


def test_a_result_without_torch_comes_back_as_plain_values_only():
    """The worker's torch-free replies (tagged JSON) give back exactly the plain value, and
    anything else is refused rather than built."""
    from course.grading import worker

    value = {"a": [1, 2.5, float("-inf"), -0.0], (1, "b"): (b"\x00\xff", None, True),
             "nested": [[("x",)]], "": {}}
    back = remote.untag(json.loads(json.dumps(worker._tagged(value))))
    assert back == value and isinstance(back[(1, "b")], tuple)
    assert str(back["a"][3]) == "-0.0" and isinstance(back["nested"][0][0], tuple)
    for hostile in ({"x": 1}, {"l": 1}, {"b": 5}, {"d": [[["k"], 1]]}, {"t": [], "l": []},
                    {"py/object": "os.system"}):
        with pytest.raises((ValueError, TypeError)):
            remote.untag(hostile)
    deep = {"l": []}
    for _ in range(100):
        deep = {"l": [deep]}
    with pytest.raises(ValueError, match="deeply"):
        remote.untag(deep)
