"""End to end: a class of submissions graded by `python -m course grade`, sandboxed.

The class holds the instructor notebook (full marks), the untouched student notebook (zero),
one notebook per catalogued mistake (partial credit, mistake named in the feedback), a part
answered by importing the reference, an invalid notebook, a folder without a notebook and a
hostile notebook that deletes every notebook, database and CSV it can reach.
"""

from __future__ import annotations

import csv
import hashlib
import html
import importlib
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from course import exercises
from course.checks.core import edit
from course.grading import grade as grading
from course.grading import sandbox

pytestmark = pytest.mark.slow

HOSTILE = '''\
import os
from pathlib import Path
here = Path.cwd()
targets = [p for p in [here, *here.parents] if p != Path("/")] + [Path(p) for p in {known}]
for top in targets:
    for folder, _, files in os.walk(top):
        for name in files:
            if name.endswith((".ipynb", ".db", ".csv")):
                try:
                    os.remove(os.path.join(folder, name))
                except OSError:
                    pass
'''


def topic_of(name: str) -> str:
    return name.split("_", 1)[1]


def solution_cells(nb):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]


def grade_ids(nb, kind):
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get(kind)]


def with_mistake(source_nb, mistake):
    nb = nbformat.from_dict(source_nb)
    cells = [c for c in solution_cells(nb) if mistake.find in c.source]
    assert len(cells) == 1, f"{mistake.name}: its edit must fall in exactly one solution cell"
    cells[0].source = edit(cells[0].source, mistake.find, mistake.replace)
    return nb


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module", params=exercises.names())
def graded(request, tmp_path_factory):
    """Grade a whole synthetic class once per exercise."""
    if sandbox.bwrap() is None:
        if os.environ.get("CI"):
            pytest.fail("bubblewrap is required under CI (.ci/run installs it)")
        pytest.skip("bubblewrap (bwrap) is not installed")
    name = request.param
    checks = importlib.import_module(f"course.checks.{topic_of(name)}")
    source_nb = nbformat.read(exercises.SOURCE / name / f"{name}.ipynb", as_version=4)
    release_nb = nbformat.read(exercises.RELEASE / name / f"{name}.ipynb", as_version=4)

    root = tmp_path_factory.mktemp(f"class-{name}")
    subs = root / "submissions"
    students = {"full": source_nb, "blank": release_nb}
    for mistake in checks.MISTAKES:
        students[f"mutant-{mistake.name}"] = with_mistake(source_nb, mistake)
    cheat = nbformat.from_dict(source_nb)
    first = solution_cells(cheat)[0]
    imported = [line.split()[1].split("(")[0].rstrip(":") for line in first.source.splitlines()
                if line.startswith(("def ", "class "))]
    first.source = f"from solutions.{topic_of(name)} import {', '.join(imported)}\n"
    students["imports-reference"] = cheat
    outside = root / "outside"
    outside.mkdir()
    for canary in ("keep.db", "keep.csv", "keep.ipynb"):
        (outside / canary).write_text("canary")
    known = [str(p) for p in (subs, outside, root / "class", exercises.ROOT / "exercises")]
    hostile = nbformat.from_dict(source_nb)
    hostile.cells.insert(1, nbformat.v4.new_code_cell(HOSTILE.format(known=known)))
    students["hostile"] = hostile
    for student, nb in students.items():
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, subs / student / f"{name}.ipynb")
    (subs / "broken-json").mkdir()
    (subs / "broken-json" / f"{name}.ipynb").write_text('{"cells": [ this is not json')
    (subs / "no-notebook").mkdir()
    (subs / "no-notebook" / "notes.txt").write_text("forgot to upload")

    before = {"subs": digest(subs), "outside": digest(outside),
              "exercises": digest(exercises.ROOT / "exercises")}

    out = root / "class"
    results = grading.grade_class(subs, name, out, jobs=2, timeout=300, progress=lambda _: None)
    return dict(name=name, checks=checks, source_nb=source_nb, out=out, subs=subs,
                outside=outside, before=before, students=students,
                results={r.student: r for r in results})


def feedback_text(result) -> str:
    assert result.feedback is not None and result.feedback.is_file(), result.log[-2000:]
    return html.unescape(result.feedback.read_text())


def test_full_marks_for_the_instructor_notebook(graded):
    full = graded["results"]["full"]
    assert full.status == "graded", full.log[-3000:]
    assert full.max_score >= 10 and full.score == full.max_score, full.parts


def test_untouched_student_notebook_scores_zero_everywhere(graded):
    blank = graded["results"]["blank"]
    assert blank.status == "graded", blank.log[-3000:]
    assert blank.parts and all(score == 0 for score in blank.parts.values()), blank.parts


def test_each_mutant_gets_partial_credit_and_its_mistake_named(graded):
    for mistake in graded["checks"].MISTAKES:
        result = graded["results"][f"mutant-{mistake.name}"]
        assert result.status == "graded", (mistake.name, result.log[-3000:])
        assert 0 < result.score < result.max_score, (mistake.name, result.parts)
        assert mistake.hint in feedback_text(result), mistake.name


def test_importing_the_reference_scores_zero_on_that_part(graded):
    result = graded["results"]["imports-reference"]
    full = graded["results"]["full"]
    lost = [part for part, score in result.parts.items() if score < full.parts[part]]
    assert lost, result.parts
    assert all(result.parts[p] == 0 for p in lost)
    assert "imported from the reference" in feedback_text(result)


def test_feedback_never_shows_hidden_test_code(graded):
    for student in ("full", "blank", "imports-reference"):
        text = feedback_text(graded["results"][student])
        assert "hidden=True" not in text and "BEGIN HIDDEN TESTS" not in text


def test_bad_submissions_are_reported_and_the_batch_goes_on(graded):
    results = graded["results"]
    assert results["broken-json"].status.startswith("invalid notebook")
    assert results["no-notebook"].status.startswith("missing notebook")
    assert results["full"].status == "graded"


def test_hostile_submission_harms_nobody(graded):
    assert digest(graded["subs"]) == graded["before"]["subs"]
    assert digest(graded["outside"]) == graded["before"]["outside"]
    assert digest(exercises.ROOT / "exercises") == graded["before"]["exercises"]
    # Everyone else was graded as if the hostile submission did not exist.
    assert graded["results"]["full"].score == graded["results"]["full"].max_score


def test_gradebook_and_csv_agree_with_results(graded):
    name, out, results = graded["name"], graded["out"], graded["results"]
    with open(out / "grades.csv", newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(results)
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        for student, result in results.items():
            assert float(rows[student]["score"]) == result.score
            assert rows[student]["status"] == result.status
            if result.status == "graded":
                assert gb.find_submission(name, student).score == pytest.approx(result.score)


def test_grading_refuses_to_run_unsandboxed_without_being_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap", lambda: None)
    with pytest.raises(sandbox.SandboxMissing, match="--unsandboxed"):
        grading.grade_class(tmp_path, exercises.names()[0], tmp_path / "out")


def test_unknown_assignment_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="unknown assignment"):
        grading.grade_class(tmp_path, "99_nothing", tmp_path / "out")


def test_zip_of_submissions_is_accepted(tmp_path):
    folder = tmp_path / "export" / "ada"
    folder.mkdir(parents=True)
    (folder / "01_tokenization.ipynb").write_text("{}")
    (tmp_path / "export" / "grace_01_tokenization.ipynb").write_text("{}")
    archive = shutil.make_archive(str(tmp_path / "class"), "zip", tmp_path / "export")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    found = grading.collect(Path(archive), "01_tokenization", scratch)
    assert sorted(found) == ["ada", "grace"]
