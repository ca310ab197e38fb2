"""The exercise builder: templates + solutions -> instructor and student notebooks."""

from __future__ import annotations

import json

import nbformat
import pytest

from course.authoring import exercises, source

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


def test_solutions_carry_no_exercise_markers():
    """Which bodies a learner writes is the template's choice (`:write:`), not the code's."""
    for path in sorted((exercises.ROOT / "solutions").glob("*.py")):
        assert source.BEGIN not in path.read_text(), path.name
    with pytest.raises(ValueError, match="markers"):
        source.mark_solution(f"def f():\n    {source.BEGIN}\n    return 1\n")


def test_a_new_gradebook_gets_the_schema_version_nbgrader_asks_alembic_for(monkeypatch):
    """nbgrader runs `alembic heads` for every new gradebook; the builder answers in process."""
    import subprocess

    import nbgrader.api
    from nbgrader.dbutil import _temp_alembic_ini

    monkeypatch.setattr(nbgrader.api, "get_alembic_version", nbgrader.api.get_alembic_version)
    exercises.gradebooks_without_subprocess()
    with _temp_alembic_ini("sqlite:////tmp/gradebook.db") as ini:
        heads = subprocess.check_output(["alembic", "-c", ini, "heads"], text=True,
                                        env={"PATH": exercises.search_path()})
    assert nbgrader.api.get_alembic_version() == heads.split()[0]
