"""What one slip costs, proved in process (fast): each exercise notebook runs with its hidden
tests, once per slip of the second catalogue (`SLIPS`: plausible wrong code written
independently of the mutation catalogue) and once per catalogued mistake (`MISTAKES`).

A slip fails at least one test, only the tests of its own part, and never gets a hint other
than its own (the right hint or none)."""

from __future__ import annotations

import functools
import importlib
import re

import pytest
from checking import TestCell, grade_in_process, hints_in

from course.authoring import exercises
from course.checks import core, topics

TOPICS = topics()

MODULES = {topic: importlib.import_module(f"course.checks.{topic}") for topic in TOPICS}
EXERCISES = {name.split("_", 1)[1]: name for name in exercises.names()}
SLIPS = [(topic, slip) for topic, m in MODULES.items() for slip in m.SLIPS]
MISTAKES = [(topic, k) for topic, m in MODULES.items() for k in m.MISTAKES]
CHECKS = {spec.check.__name__: spec.target for specs in core.REGISTRY.values() for spec in specs}


@functools.cache
def graded_targets(exercise: str) -> dict[str, set[str]]:
    """grade id of each test cell -> the targets its checks grade."""
    nb = exercises.instructor_notebook(exercises.TEMPLATES / f"{exercise}.md")
    return {c.metadata["nbgrader"]["grade_id"]:
            {CHECKS[name] for name in re.findall(r"^(check_\w+)\(", c.source, re.M)}
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}


def graded(target: str) -> str:
    """The object a check grades: 'solutions.m.Cls.method' -> 'solutions.m.Cls'."""
    return ".".join(target.split(".")[:3])


def hint_of(topic: str, name: str | None) -> set[str]:
    return {k.hint for k in MODULES[topic].MISTAKES if k.name == name}


def assert_costs_once(topic: str, target: str, cells: list[TestCell], allowed: set[str]):
    failed = {c.grade_id: c.failure for c in cells if c.failure}
    assert failed, "not caught: every test passes"
    own = {gid for gid, targets in graded_targets(EXERCISES[topic]).items() if target in targets}
    assert set(failed) <= own, f"costs points in other parts too: {sorted(set(failed) - own)}"
    for gid, message in failed.items():
        wrong = set(hints_in(message)) - allowed
        assert not wrong, f"{gid} gives a wrong hint: {wrong}\n{message}"


@pytest.mark.parametrize("topic", TOPICS)
def test_second_catalogue_is_large_and_distinct(topic):
    slips = MODULES[topic].SLIPS
    assert len(slips) >= 10 and len({s.name for s in slips}) == len(slips)
    names = {k.name for k in MODULES[topic].MISTAKES}
    assert all(s.mistake is None or s.mistake in names for s in slips)
    reference = {core.code_only(core.source_of(graded(s.target))) for s in slips}
    assert not any(core.code_only(s.code).strip() in r for s in slips for r in reference)


@pytest.mark.parametrize("topic", TOPICS)
def test_the_reference_notebook_passes_in_process(topic):
    assert [c for c in grade_in_process(EXERCISES[topic]) if c.failure] == []


@pytest.mark.parametrize("topic", TOPICS)
def test_the_released_notebook_earns_nothing_in_process(topic):
    """The given code (constructors, input checks) earns no point on its own. (A test cell
    that grades no code of this notebook, the capstone's Part 0 on exercises 1-9, is not its.)"""
    own = {gid for gid, targets in graded_targets(EXERCISES[topic]).items() if targets}
    cells = grade_in_process(EXERCISES[topic], blank=True)
    assert own and [c.grade_id for c in cells if not c.failure and c.grade_id in own] == []


@pytest.mark.parametrize("topic,slip", SLIPS, ids=[f"{t}-{s.name}" for t, s in SLIPS])
def test_a_slip_costs_its_part_only_and_gets_no_wrong_hint(topic, slip):
    cells = grade_in_process(EXERCISES[topic], slip=slip)
    assert_costs_once(topic, graded(slip.target), cells, hint_of(topic, slip.mistake))


@pytest.mark.parametrize("topic,mistake", MISTAKES, ids=[f"{t}-{k.name}" for t, k in MISTAKES])
def test_a_catalogued_mistake_costs_its_part_only(topic, mistake):
    cells = grade_in_process(EXERCISES[topic], mistake=mistake)
    assert_costs_once(topic, mistake.target, cells, {mistake.hint})
