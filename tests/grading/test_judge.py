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

from course.authoring import exercises, source
from course.grading import judge, remote, sandbox
from course.grading.runtime import PROBE_HELPERS, ROOT, build_runtime, given, graded_names

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


def test_the_runtime_gives_no_twin_no_oracle_and_no_later_answer(runtime):
    """Definitions the exercise does not give (the fast twin of a graded part, another
    exercise's answers) are stubs that say so; the oracles are absent."""
    bpe = (runtime / "solutions" / "tokenization_bpe.py").read_text()
    for name in ("train_bpe", "BPETokenizer"):
        assert source.source_of(f"solutions.tokenization_bpe.{name}") not in bpe
        assert f"{name} is not given in this exercise" in bpe
    norm = (runtime / "solutions" / "normalization.py").read_text()
    assert source.source_of("solutions.normalization.layer_norm") not in norm
    assert not (runtime / "course" / "oracles.py").exists()


def test_a_probe_carries_no_reference_to_the_worker():
    """A reference a check holds (argument, closure, default, method) crosses as an expression
    naming the worker's own object; an instance of a reference class is refused."""
    import pickle

    from course.checks.core import copy_of
    from course.grading import process

    ref = copy_of("solutions.tokenization.merge")
    cls = copy_of("solutions.attention.MultiHeadAttention")
    for probe in (lambda f: f(ref), lambda f, r=ref: f(r), lambda f: f(cls.forward)):
        data = process.pickled(probe, graded={"merge", "MultiHeadAttention"})
        assert ref.__code__.co_code not in data and b"course.copies" not in data
        assert b"course_stand_in" in data and b"judged" in data
    given = process.pickled(lambda f: f(ref), graded=set())
    assert b"solutions.tokenization" in given and ref.__code__.co_code not in given
    instance = cls(8, 2)
    with pytest.raises(pickle.PicklingError):
        process.pickled(lambda f: f(instance), graded=set())


def test_a_reply_is_walked_within_budgets_before_any_check_reads_it():
    bomb = [0]
    for _ in range(30):
        bomb = [bomb, bomb]  # 2^30 pieces in 31 lists
    with pytest.raises(ValueError, match="same container twice"):
        remote.walked(bomb)
    with pytest.raises(ValueError, match="too large"):
        remote.walked([0] * (remote.NODES + 1))
    plain = {"a": [(), (), [1, 2]], "b": ("x" * 100, b"y")}
    assert remote.walked(plain) is plain


def test_a_check_that_would_lend_an_ungraded_part_waits_for_it():
    from course.grading import order

    message = remote.BEFORE.format(part=2, name="get_pair_counts")
    assert {n for pair in order.NEEDS.findall(message) for n in pair if n} == \
        {"get_pair_counts"}


def test_the_helpers_probes_call_in_the_worker_are_no_exercise_answer():
    for name in exercises.names():
        notebook = nbformat.read(exercises.SOURCE / name / f"{name}.ipynb", as_version=4)
        assert not PROBE_HELPERS & graded_names(notebook), name


def test_a_method_call_gives_no_twin_of_a_graded_part():
    """`model.train()` in a given module once gave `train` (fit's twin) to exercise 9 and
    exercise 9's answers to exercises 7, 8 and 10."""
    modules = {p: p.read_text() for p in (ROOT / "solutions").glob("*.py")}
    for name, absent in (("09_training", {"train"}),
                         ("07_encoder", {"train", "train_step", "load_checkpoint"})):
        notebook = nbformat.read(exercises.SOURCE / name / f"{name}.ipynb", as_version=4)
        assert not absent & given(notebook, modules), name


def test_a_test_cell_splits_into_visible_and_hidden_pieces_keeping_line_numbers():
    cell = "a = 1\n### BEGIN HIDDEN TESTS\nb = 2\n### END HIDDEN TESTS\nc = 3"
    assert judge.chunks(cell) == [(False, "a = 1"), (True, "\n\nb = 2"),
                                  (False, "\n\n\n\nc = 3")]


def test_a_hidden_failure_says_nothing_the_learner_wrote():
    """Its kind (a built-in's name, the check's, else Exception), a fixed text, and only the
    catalogue's hints: never the learner's message, however it is dressed up."""
    from course.checks.engine.diagnosis import HINT, OR
    from course.checks.engine.results import CheckFailed

    hint = sorted(judge.known_hints())[0]
    leak = type("Leak_0_0006", (Exception,), {})
    cases = {ValueError("secret (0, 0.0006)"): "ValueError",
             leak("secret"): "Exception",
             CheckFailed("got secret" + HINT + hint): "CheckFailed",
             CheckFailed("got" + HINT + hint + OR + "secret"): "CheckFailed"}
    for error, ename in cases.items():
        output = judge._hidden_error(error, frozenset())
        assert output["ename"] == ename
        assert "secret" not in output["evalue"] and "0.0006" not in output["evalue"]
        assert output["evalue"].startswith(judge.HIDDEN_FAILED)
    note = "Part 2 (`merge`) fails first; this part was checked with the reference Part 2."
    kept = judge._hidden_error(CheckFailed("got secret" + HINT + hint + "\n" + note),
                               frozenset({"merge"}))
    assert kept["evalue"].endswith("\nLikely mistake: " + hint + "\n" + note)
    assert note not in judge._hidden_error(CheckFailed(note), frozenset())["evalue"]
