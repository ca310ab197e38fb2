"""The exercise builder: templates + solutions -> instructor and student notebooks."""

from __future__ import annotations

import json
import textwrap

import nbformat
import pytest

from course import exercises

NAMES = exercises.names()


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    out = tmp_path_factory.mktemp("exercises")
    for name in NAMES:
        exercises.build(name, out)
    return out


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["source", "release"])
def test_committed_notebooks_are_fresh(rebuilt, name, kind):
    committed = exercises.ROOT / "exercises" / kind / name / f"{name}.ipynb"
    assert committed.is_file(), f"{committed} missing: run `python -m course build-exercises`"
    assert committed.read_text() == (rebuilt / kind / name / f"{name}.ipynb").read_text(), (
        f"{committed} is stale: run `python -m course build-exercises` and commit the result")


@pytest.mark.parametrize("name", NAMES)
def test_release_hides_solutions_and_hidden_tests(name):
    source = nbformat.read(exercises.SOURCE / name / f"{name}.ipynb", as_version=4)
    release = nbformat.read(exercises.RELEASE / name / f"{name}.ipynb", as_version=4)
    text = json.dumps(release)
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    parts = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")]
    tests = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert 3 <= len(parts) <= 6
    points = sum(c.metadata["nbgrader"]["points"] for c in tests)
    assert 10 <= points <= 20
    stubs = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert len(stubs) == len(parts)
    assert all("raise NotImplementedError()" in c.source for c in stubs)
    # Signatures and docstrings stay visible to the learner.
    for before, after in zip(parts, stubs):
        for line in before.source.splitlines():
            if line.lstrip().startswith(("def ", "class ")):
                assert line in after.source


def test_mark_solution_wraps_bodies_after_docstrings():
    source = textwrap.dedent('''\
        class A:
            """Doc."""

            def f(self, x):
                """Doc of f."""
                def inner():
                    return x
                return inner()

            @property
            def g(self):
                return 1
        ''')
    marked = exercises.mark_solution(source)
    assert marked.count(exercises.BEGIN) == 2 and marked.count(exercises.END) == 2
    assert '"""Doc of f."""\n        ### BEGIN SOLUTION\n        def inner' in marked
    assert "    return inner()\n        ### END SOLUTION" in marked
    compile(marked, "<marked>", "exec")


@pytest.mark.parametrize("cell,error", [
    ("```{code-cell} ipython3\n:test: t\nprint(1)\n```", "has no :points:"),
    ("```{code-cell} ipython3\n:part: p\n```", "names no :copy: objects"),
    ("```{code-cell} ipython3\n:colour: red\nprint(1)\n```", "unknown cell options"),
    ("```{code-cell} ipython3\n:part: p\n:copy: os.path.join\n```", "only copy code from"),
    ("```{code-cell} ipython3\n:test: t\n:points: 1\n1\n```\n\n"
     "```{code-cell} ipython3\n:test: t\n:points: 1\n2\n```", "used twice"),
])
def test_template_errors_are_clear(tmp_path, cell, error):
    template = tmp_path / "99_bad.md"
    template.write_text("# Bad\n\n" + cell + "\n")
    with pytest.raises(ValueError, match=error):
        exercises.instructor_notebook(template)


def test_write_names_the_only_bodies_the_learner_writes():
    source = textwrap.dedent('''\
        class A:
            def __init__(self):
                self.x = 1

            def forward(self, y):
                """Doc."""
                return y + self.x
        ''')
    marked = exercises.mark_solution(source, ["A.forward"])
    assert marked.count(exercises.BEGIN) == 1
    assert "        self.x = 1\n" in marked.split(exercises.BEGIN)[0]  # given
    assert '"""Doc."""\n        ### BEGIN SOLUTION\n        return y + self.x' in marked
    with pytest.raises(ValueError, match="names no function"):
        exercises.mark_solution(source, ["A.backward"])


def test_leading_input_checks_stay_given():
    """A body's leading input checks are given; the learner writes from the first other line."""
    source = textwrap.dedent('''\
        def f(x, y=None):
            """Doc."""
            require_batch_ids(x, "x")
            if y is not None:
                require_batch_ids(y, "y", like=x)
            if x.dim() != 2:
                raise ValueError("x must be (B, T)")
            n = x.size(1)
            if n > 3:
                raise ValueError("too long")
            return n
        ''')
    given, written = exercises.mark_solution(source).split(exercises.BEGIN)
    assert 'raise ValueError("x must be (B, T)")' in given
    assert "n = x.size(1)" in written and 'raise ValueError("too long")' in written
    only_checks = 'def g(x):\n    """Doc."""\n    self.check_inputs(x)\n    return x\n'
    assert "self.check_inputs(x)\n    ### BEGIN SOLUTION\n    return x" in \
        exercises.mark_solution(only_checks)


def test_solutions_carry_no_exercise_markers():
    """Which bodies a learner writes is the template's choice (`:write:`), not the code's."""
    for path in sorted((exercises.ROOT / "solutions").glob("*.py")):
        assert exercises.BEGIN not in path.read_text(), path.name
    with pytest.raises(ValueError, match="markers"):
        exercises.mark_solution(f"def f():\n    {exercises.BEGIN}\n    return 1\n")
