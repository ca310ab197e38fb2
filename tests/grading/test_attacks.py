"""End to end: the third hostile catalogue and honest notebooks in odd shapes
(tests/attack_cases.py), graded as a class by the real grader in the real sandbox. Each attack
must earn only its honest points, keep its feedback free of reference code and hidden inputs,
and cost the trusted side little; each honest notebook gets full marks and says what was done."""

from __future__ import annotations

import html

import attack_cases
import pytest
from test_grading import require_bwrap

from course.grading import grade as grading

pytestmark = pytest.mark.slow
TIMEOUT = {attack_cases.BPE: 45}  # seconds per notebook: the stalled reply runs out of it
JOBS = {attack_cases.BPE: 2}  # the stalled reply holds one job for its whole timeout
SLOW = 300  # an exercise that trains (9) on a busy machine; as test_grading's (one canary)
CASES = {**attack_cases.ATTACKS, **attack_cases.HONEST}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """case -> its result; each exercise's cases graded as one class when a test first asks
    for one of them (so `-k` grades only the exercises it selects)."""
    require_bwrap()
    root = tmp_path_factory.mktemp("attacks")
    results = {}

    def result(case):
        exercise = CASES[case].exercise
        if case not in results:
            subs = root / exercise / "submissions"
            for name, entry in CASES.items():
                if entry.exercise == exercise:
                    attack_cases.write(subs / name, name)
            for graded in grading.grade_class(subs, exercise, root / exercise / "class",
                                              jobs=JOBS.get(exercise, 1),
                                              timeout=TIMEOUT.get(exercise, SLOW),
                                              progress=lambda _: None):
                results[graded.student] = graded
        return results[case]

    return result


def exercise_first(case: str) -> str:
    """A test id that starts with the exercise (tests/conftest.py runs an exercise's tests
    together)."""
    return f"{CASES[case].exercise}:{case}"


@pytest.mark.parametrize("case", sorted(attack_cases.ATTACKS), ids=exercise_first)
def test_an_attack_earns_only_its_honest_points(graded, case):
    attack, result = attack_cases.ATTACKS[case], graded(case)
    assert result.status.startswith("graded"), (case, result.status, result.log[-2000:])
    assert result.score == attack.honest, (case, attack.what, result.parts)
    if attack.marker is not None:
        assert result.feedback is not None and result.feedback.is_file()
        assert attack.marker not in html.unescape(result.feedback.read_text()), case
    if attack.shown is not None:
        assert attack.shown in html.unescape(result.feedback.read_text()), case


@pytest.mark.parametrize("case", sorted(attack_cases.HONEST), ids=exercise_first)
def test_an_honest_notebook_in_an_odd_shape_gets_full_marks(graded, case):
    honest, result = attack_cases.HONEST[case], graded(case)
    assert result.status.startswith("graded"), (case, result.status, result.log[-2000:])
    assert result.score == result.max_score > 0, (case, honest.what, result.parts)
    assert honest.said in result.status, (case, result.status)


@pytest.mark.parametrize("case", ["forged-bomb"], ids=exercise_first)
def test_a_forged_reply_costs_the_trusted_side_little(graded, case):
    result = graded(case)
    assert result.seconds < 30, result.seconds
    assert result.grader_mb is None or result.grader_mb < 3000, result.grader_mb
