"""End to end: a representative class graded by `python -m course grade`.

For the exercises in GRADED: the instructor notebook (graded first
as the canary, which must get full marks), the untouched student notebook, one catalogued
mistake in every part, every part imported from the reference, a tampering notebook (gradebook,
nbgrader config, a shadow nbgrader package), an invalid notebook and a folder with no notebook.
The first exercise's class also holds a correct notebook that deletes every file it can reach,
student names with accents and spaces, script in feedback, a duplicate and a symlink.
Every mistake of every catalogue is proven in-process (tests/test_checks.py and the topic
tests); here each kind of submission goes once through nbgrader.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import os
import re
import zipfile
from pathlib import Path

import grading_cases as cases
import nbformat
import pytest
from nbgrader.api import Gradebook

from course import exercises
from course.grading import grade as grading
from course.grading import sandbox

pytestmark = pytest.mark.slow
FIRST = exercises.names()[0]
XSS = '<script>alert("x")</script><img src=x onerror="alert(1)">'


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def require_bwrap():
    if sandbox.bwrap() is None:
        if os.environ.get("CI"):
            pytest.fail("bubblewrap is required under CI (.ci/run installs it)")
        pytest.skip("bubblewrap (bwrap) is not installed")


# The representative class goes through nbgrader for the first exercise; every exercise's
# checks, mistakes and slips are proven in process (tests/test_checks.py, tests/test_slips.py).
GRADED = [FIRST]


@pytest.fixture(scope="module", params=GRADED)
def graded(request, tmp_path_factory):
    """Grade one representative class."""
    require_bwrap()
    name = request.param
    root = tmp_path_factory.mktemp(f"class-{name}")
    subs, out, outside = root / "submissions", root / "class", root / "outside"
    outside.mkdir()
    for canary in ("keep.db", "keep.csv", "keep.ipynb"):
        (outside / canary).write_text("canary")
    places = cases.places_for(subs, out, outside)
    attacks = cases.attack_notebooks(name, places)
    mistakes_nb, mistakes = cases.one_mistake_per_part(name)
    tamper = cases.release_nb(name)
    for case in ("sqlite-gradebook", "config-append", "nbgrader-package"):
        tamper = cases.with_cell(tamper, attacks[case][1].cells[1].source)
    students = {"blank": cases.release_nb(name), "mistakes": mistakes_nb,
                "imports-reference": cases.imports_reference(name), "tamper": tamper}
    if name == FIRST:
        xss = cases.with_cell(cases.release_nb(name), f"from IPython.display import HTML, "
                              f"display\ndisplay(HTML({XSS!r}))\nprint({XSS!r})")
        xss.cells.insert(1, nbformat.v4.new_markdown_cell(XSS))
        students |= {"vandal": attacks["vandal-but-correct"][1], "José": cases.release_nb(name),
                     "Anne Marie": cases.release_nb(name), "xss": xss}
    for student, nb in students.items():
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, subs / student / f"{name}.ipynb")
    (subs / "broken-json").mkdir()
    (subs / "broken-json" / f"{name}.ipynb").write_text('{"cells": [ this is not json')
    (subs / "no-notebook").mkdir()
    (subs / "no-notebook" / "notes.txt").write_text("forgot to upload")
    if name == FIRST:
        nbformat.write(cases.release_nb(name), subs / f"blank_{name}.ipynb")  # a duplicate
        (subs / "linked").mkdir()
        (subs / "linked" / f"{name}.ipynb").symlink_to(out / "gradebook.db")
    before = {"subs": digest(subs), "outside": digest(outside),
              "exercise": digest(exercises.SOURCE / name)}
    results = grading.grade_class(subs, name, out, jobs=2, timeout=300, progress=lambda _: None)
    return dict(name=name, out=out, subs=subs, outside=outside, before=before,
                mistakes=mistakes, results={r.student: r for r in results})


def feedback_text(result) -> str:
    assert result.feedback is not None and result.feedback.is_file(), result.log[-2000:]
    return html.unescape(result.feedback.read_text())


def test_untouched_notebook_scores_zero_everywhere(graded):
    blank = graded["results"].get("blank")
    if graded["name"] == FIRST:  # the first class has a duplicate "blank": reported instead
        assert blank.status.startswith("duplicate submission"), blank.status
        assert blank.score == 0
        return
    assert blank.status == "graded", blank.log[-3000:]
    assert blank.parts and all(score == 0 for score in blank.parts.values()), blank.parts


def test_each_part_loses_its_points_and_its_mistake_is_named(graded):
    result = graded["results"]["mistakes"]
    assert result.status == "graded", result.log[-3000:]
    assert result.score < result.max_score, result.parts
    text = feedback_text(result)
    for mistake in graded["mistakes"]:
        assert mistake.hint in text, mistake.name


def test_importing_the_reference_scores_zero(graded):
    result = graded["results"]["imports-reference"]
    assert result.status == "graded" and result.score == 0, result.parts
    assert "imported from the reference" in feedback_text(result)


def test_tampering_with_the_grader_earns_nothing(graded):
    result = graded["results"]["tamper"]
    assert result.status == "graded", result.log[-3000:]
    assert result.score == 0, result.parts


def test_feedback_never_shows_hidden_test_code(graded):
    for student in ("mistakes", "imports-reference"):
        text = feedback_text(graded["results"][student])
        assert "hidden=True" not in text and "BEGIN HIDDEN TESTS" not in text


def test_bad_submissions_are_reported_and_the_batch_goes_on(graded):
    results = graded["results"]
    assert results["broken-json"].status.startswith("invalid notebook")
    assert results["no-notebook"].status.startswith("missing notebook")
    assert results["imports-reference"].status == "graded"


def test_nothing_outside_the_sandbox_changed(graded):
    assert digest(graded["subs"]) == graded["before"]["subs"]
    assert digest(graded["outside"]) == graded["before"]["outside"]
    assert digest(exercises.SOURCE / graded["name"]) == graded["before"]["exercise"]


def test_gradebook_and_csv_agree_with_results(graded):
    name, out, results = graded["name"], graded["out"], graded["results"]
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(results)
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        for student, result in results.items():
            assert float(rows[student]["score"]) == result.score
            assert rows[student]["status"] == result.status
            assert rows[student]["assignment"] == name
            ids = {s.student.id for s in gb.assignment_submissions(name)}
            assert (student in ids) == (result.status == "graded"), student
            if result.status == "graded":
                assert gb.find_submission(name, student).score == pytest.approx(result.score)


def first_class(graded):
    if graded["name"] != FIRST:
        pytest.skip("checked on the first exercise's class")
    return graded["results"]


def test_a_vandal_keeps_its_own_marks(graded):
    vandal = first_class(graded)["vandal"]
    assert vandal.status == "graded" and vandal.score == vandal.max_score, vandal.parts


def test_names_with_accents_and_spaces_are_graded(graded):
    results = first_class(graded)
    assert results["José"].status == "graded" and results["Anne Marie"].status == "graded"


def test_duplicates_and_symlinks_are_reported_not_picked(graded):
    results = first_class(graded)
    assert results["linked"].status == "refused: the submission is a symbolic link"
    assert results["blank"].status.startswith("duplicate submission")


def test_student_html_and_script_never_reach_the_feedback_live(graded):
    raw = first_class(graded)["xss"].feedback.read_text()
    assert "<script>alert" not in raw and not re.search(r"<img[^>]*onerror", raw)
    assert "alert" in html.unescape(raw)  # shown as text, not dropped silently


def test_a_second_run_regrades_nothing_that_did_not_change(graded, tmp_path):
    first_class(graded)
    before = {s: r.score for s, r in graded["results"].items()}
    again = grading.grade_class(graded["subs"], graded["name"], graded["out"], jobs=2,
                                timeout=300, progress=lambda _: None)
    assert {r.student: r.score for r in again} == before
    assert all(r.seconds == graded["results"][r.student].seconds for r in again
               if r.status == "graded")  # kept, not graded again


# ---------------------------------------------------------------- without a class


def test_a_grader_that_cannot_give_the_instructor_full_marks_writes_nothing(tmp_path):
    require_bwrap()
    (tmp_path / "subs" / "ada").mkdir(parents=True)
    nbformat.write(cases.source_nb(FIRST), tmp_path / "subs" / "ada" / f"{FIRST}.ipynb")
    with pytest.raises(grading.GradingBroken, match="instructor notebook") as error:
        grading.grade_class(tmp_path / "subs", FIRST, tmp_path / "out", timeout=1,
                            progress=lambda _: None)  # too little time for any notebook
    print(error.value)
    assert not (tmp_path / "out").exists()


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
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in (tmp_path / "export").rglob("*.ipynb"):
            zf.write(path, path.relative_to(tmp_path / "export"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert sorted(grading.collect(archive, "01_tokenization", scratch)) == ["ada", "grace"]


def test_a_zip_bomb_is_refused_with_a_clear_message(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ada/01_tokenization.ipynb", b"\0" * (64 * 2**20))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(ValueError, match="zip bomb"):
        grading.collect(archive, "01_tokenization", scratch)
    assert not any((scratch / "unzipped").rglob("*.ipynb"))


def test_student_names_the_grader_accepts():
    for name in ("ada", "José", "Anne Marie", "o'brien", "li.wei@uni", "Zoë-Ann"):
        assert grading.STUDENT_ID.match(name), name
    for name in ("", " lead", "trailing ", "../up", "a/b", "x" * 101):
        assert not grading.STUDENT_ID.match(name) or ".." in name, name


def test_grade_one_and_merge_give_the_same_gradebook_as_grade(graded, tmp_path):
    results = first_class(graded)
    name, subs = graded["name"], graded["subs"]
    files = []
    for student in ("José", "tamper"):
        entry = grading.grade_single(subs / student / f"{name}.ipynb", name, tmp_path / "class",
                                     timeout=300)
        assert entry["student"] == student
        files.append(tmp_path / f"{student}.json")
        files[-1].write_text(json.dumps(entry, ensure_ascii=False))
    grading.merge(files, tmp_path / "class", progress=lambda _: None)
    with Gradebook(f"sqlite:///{tmp_path / 'class' / 'gradebook.db'}") as merged, \
            Gradebook(f"sqlite:///{graded['out'] / 'gradebook.db'}") as whole:
        for student in ("José", "tamper"):
            mine = merged.find_submission_notebook(name, name, student)
            theirs = whole.find_submission_notebook(name, name, student)
            assert {g.name: g.score for g in mine.grades} == \
                {g.name: g.score for g in theirs.grades}
            assert merged.find_submission(name, student).score == results[student].score
    with open(tmp_path / "class" / "grades.csv", newline="", encoding="utf-8") as f:
        assert {row["student"] for row in csv.DictReader(f)} == {"José", "tamper"}
