"""End to end: a representative class graded by `python -m course grade`.

For the exercises in GRADED: the instructor notebook (graded first
as the canary, which must get full marks), the untouched student notebook, one catalogued
mistake in every part, every part imported from the reference, a tampering notebook (gradebook,
nbgrader config, a shadow nbgrader package), an invalid notebook and a folder with no notebook.
The first exercise's class also holds a correct notebook that deletes every file it can reach,
student names with accents and spaces, script in feedback, a duplicate and a symlink.
Every mistake of every catalogue is proven in-process (tests/checks/test_checks.py and the topic
tests); here each kind of submission goes once through nbgrader. Every other exercise's
canary goes through nbgrader and the judge, with a notebook of catalogued mistakes judged
after it; a batch killed midway and run again, and `--assignment all`, are graded once each.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import grading_cases as cases
import nbformat
import pytest
from nbgrader.api import Gradebook

from course import capstone
from course.authoring import exercises
from course.grading import grade as grading
from course.grading import judge, sandbox
from course.grading.collect import STUDENT_ID, collect
from course.grading.results import EXPORT_HEAD

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
# checks, mistakes and slips are proven in process (tests/checks/test_checks.py,
# tests/checks/test_slips.py).
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
    assert "<details><summary>Hint</summary>" in raw  # the exercise's folding hints stay live


def test_a_second_run_regrades_nothing_that_did_not_change(graded, tmp_path):
    first_class(graded)
    before = {s: r.score for s, r in graded["results"].items()}
    again = grading.grade_class(graded["subs"], graded["name"], graded["out"], jobs=2,
                                timeout=300, progress=lambda _: None)
    assert {r.student: r.score for r in again} == before
    assert all(r.seconds == graded["results"][r.student].seconds for r in again
               if r.status == "graded")  # kept, not graded again


# ---------------------------------------------------------------- every exercise's canary


@pytest.mark.parametrize("name", [n for n in exercises.names()
                                  if n not in GRADED and n != capstone.EXERCISE])
def test_every_exercise_gives_its_instructor_full_marks_and_names_a_mistake(name, tmp_path):
    """`grade`'s canary for every exercise: the instructor notebook, through nbgrader and the
    judge, gets full marks (else GradingBroken says why). A notebook with one catalogued
    mistake per part, judged the same way (without nbgrader around it, to keep this cheap;
    the exercises in GRADED go through nbgrader with a whole class), loses points and each
    mistake's hint is among its failure messages."""
    require_bwrap()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    scratch.chmod(0o711)
    setup = grading.prepare(name, scratch, timeout=300, limits=sandbox.Limits(), sandboxed=True)
    grading.canary(setup, scratch)
    nb, mistakes = cases.one_mistake_per_part(name)
    assert mistakes, "no catalogued mistake lands in the instructor notebook"
    out = judge.execute(nbformat.from_dict(nb), cases.source_nb(name), setup.runtime,
                        setup.limits, timeout=300)
    earned, possible = cases.points(out)
    assert earned < possible
    messages = "\n".join(o.get("evalue", "") for c in cases.test_cells(out)
                         for o in c.get("outputs", []))
    assert [m.name for m in mistakes if m.hint not in messages] == []


# ---------------------------------------------------------------- every assignment at once


def test_grading_all_assignments_writes_one_export_csv(tmp_path):
    """`--assignment all`: each exercise the class holds is graded into its own class folder,
    and one CSV in nbgrader's export layout lists every student in every assignment."""
    require_bwrap()
    second = exercises.names()[3]
    subs = tmp_path / "subs"
    (subs / "ada").mkdir(parents=True)
    nbformat.write(cases.source_nb(FIRST), subs / "ada" / f"{FIRST}.ipynb")
    nbformat.write(cases.release_nb(second), subs / "ada" / f"{second}.ipynb")
    nbformat.write(cases.release_nb(FIRST), subs / f"bo_{FIRST}.ipynb")  # an LMS export
    every = grading.grade_all(subs, tmp_path / "out", jobs=2, timeout=300,
                              progress=lambda _: None)
    assert list(every) == [FIRST, second]
    with open(tmp_path / "out" / "grades.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == EXPORT_HEAD
        scores = {(r["assignment"], r["student_id"]): (float(r["score"]), float(r["max_score"]))
                  for r in reader}
    assert set(scores) == {(a, s) for a in (FIRST, second) for s in ("ada", "bo")}
    assert scores[FIRST, "ada"][0] == scores[FIRST, "ada"][1] > 0
    assert scores[FIRST, "bo"][0] == 0 and scores[second, "ada"][0] == 0
    assert scores[second, "bo"] == (0, scores[second, "ada"][1])  # not submitted: 0
    for name in (FIRST, second):
        assert (tmp_path / "out" / name / "gradebook.db").is_file()


# ---------------------------------------------------------------- a batch killed midway


def test_a_batch_killed_midway_and_run_again_loses_and_doubles_no_one(tmp_path):
    """`grade` killed with SIGKILL (with its whole process group) after its first student,
    then run again: every student is graded exactly once in grades.csv and in the gradebook,
    and the students graded before the kill are kept, not graded again."""
    require_bwrap()
    subs, out, scratch = tmp_path / "subs", tmp_path / "out", tmp_path / "scratch"
    scratch.mkdir()
    students = {"ada": cases.source_nb(FIRST), "bo": cases.release_nb(FIRST)}
    for student, nb in students.items():
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, subs / student / f"{FIRST}.ipynb")
    command = [sys.executable, "-m", "course", "grade", str(subs), "--assignment", FIRST,
               "--out", str(out), "--jobs", "1", "--timeout", "300"]
    env = dict(os.environ, TMPDIR=str(scratch))  # what the killed run leaves stays here
    batch = subprocess.Popen(command, cwd=exercises.ROOT, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger = out / "results.json"
    deadline = time.monotonic() + 600
    while not (ledger.is_file() and json.loads(ledger.read_text())):
        assert batch.poll() is None and time.monotonic() < deadline, "no student was graded"
        time.sleep(0.1)
    os.killpg(batch.pid, signal.SIGKILL)
    batch.wait()
    before = json.loads(ledger.read_text())
    assert 1 <= len(before) < len(students), sorted(before)  # killed midway

    again = subprocess.run(command, cwd=exercises.ROOT, env=env, capture_output=True,
                           text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = [row["student"] for row in csv.DictReader(f)]
    assert sorted(rows) == sorted(students)
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        ids = [s.student.id for s in gb.assignment_submissions(FIRST)]
        assert sorted(ids) == sorted(students)
        full = gb.find_assignment(FIRST).max_score
        assert gb.find_submission(FIRST, "ada").score == full
        assert gb.find_submission(FIRST, "bo").score == 0
    after = json.loads(ledger.read_text())
    for student, entry in before.items():  # kept from the killed run, not graded again
        assert after[student]["seconds"] == entry["seconds"], student


# ---------------------------------------------------------------- one process, many students

PLANT = '''
import builtins, os, pathlib, subprocess, sys
for folder in ("/tmp", "/tmp/work", "/tmp/home", "/dev/shm", os.getcwd()):
    try:
        pathlib.Path(folder, "planted").write_text("left behind")
    except OSError:
        pass
os.environ["PLANTED"] = "1"
builtins.PLANTED = True
subprocess.Popen([sys.executable, "-c", "import time  # {marker}\\nwhile True: time.sleep(0.1)"],
                 start_new_session=True)
'''

SNOOP = '''
import builtins, os, pathlib
left = [p for p in ("/tmp/planted", "/tmp/work/planted", "/tmp/home/planted",
                    "/dev/shm/planted", "planted") if pathlib.Path(p).exists()]
left += ["environment"] * bool(os.environ.get("PLANTED")) + ["builtins"] * hasattr(builtins,
                                                                                "PLANTED")
if left:
{spoil}
'''


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_one_grading_process_carries_nothing_from_a_student_to_the_next(tmp_path, monkeypatch):
    """With one job, one trusted grading process grades the whole class in turn (starting
    each next student's worker ahead, and none after the last). A correct
    notebook that tries to leave things behind (files in every place it can write, the
    environment, builtins, a process that outlives it) earns its marks, and changes nothing
    for the next students of the same process: an untouched notebook after it scores 0 (no
    verdict of the checks carries over), and a correct notebook that spoils every answer if
    it finds anything left behind gets full marks. No planted process outlives the batch."""
    require_bwrap()
    marker = f"planted-{os.getpid()}-{time.monotonic_ns()}"
    full = cases.source_nb(FIRST)
    spoil = "\n".join(f"    {name} = None" for cell in cases.solution_cells(full)
                      for name in cases.defined(cell.source))
    students = {"a-plants": cases.with_cell(full, PLANT.format(marker=marker), at=2),
                "b-untouched": cases.release_nb(FIRST),
                "c-snoops": cases.with_cell(full, SNOOP.format(spoil=spoil),
                                            at=len(full.cells))}
    for student, nb in students.items():
        (tmp_path / "subs" / student).mkdir(parents=True)
        nbformat.write(nb, tmp_path / "subs" / student / f"{FIRST}.ipynb")
    started = []
    start = grading.Server.start

    def counted(self):
        before = self.proc
        start(self)
        if self.proc is not before:
            started.append(self.proc.pid)
        return self

    monkeypatch.setattr(grading.Server, "start", counted)
    ahead = []  # each student's: (another follows, the process holds a worker started ahead)
    grade_one = grading.grade_one

    def watched(student, *args, **kwargs):
        result = grade_one(student, *args, **kwargs)
        if student in students:  # not the canary (graded once per process and settings)
            ahead.append((kwargs["more"], children(kwargs["server"].proc.pid) != []))
        return result

    monkeypatch.setattr(grading, "grade_one", watched)
    results = {r.student: r for r in grading.grade_class(
        tmp_path / "subs", FIRST, tmp_path / "out", jobs=1, timeout=300,
        progress=lambda _: None)}
    assert len(started) == 1  # the canary and every student: one grading process
    assert ahead == [(True, True)] * 2 + [(False, False)]  # no worker waits after the last
    for student in ("a-plants", "c-snoops"):
        result = results[student]
        assert result.status == "graded" and result.score == result.max_score > 0, \
            (student, result.parts, result.log[-2000:])
    assert results["b-untouched"].status == "graded" and results["b-untouched"].score == 0
    alive = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            alive += [cmdline] if marker.encode() in cmdline.read_bytes() else []
        except OSError:
            continue
    assert alive == []


def test_a_grading_process_that_dies_costs_only_its_own_student(tmp_path, monkeypatch):
    """The trusted grading process ends while grading one student (killed here): that student
    is reported as not graded, and the next student is graded by a new process."""
    require_bwrap()
    for student, nb in (("ada", cases.source_nb(FIRST)), ("bo", cases.source_nb(FIRST))):
        (tmp_path / "subs" / student).mkdir(parents=True)
        nbformat.write(nb, tmp_path / "subs" / student / f"{FIRST}.ipynb")
    ask = grading.Server.ask
    asked = []

    def killed_on_ada(self, request, timeout):
        asked.append(request["kind"])
        if asked.count("grade") != 2:  # the canary, then ada
            return ask(self, request, timeout)
        wait = select.select

        def killed_then_wait(*args):  # ada's request is sent: the process ends now
            self.proc.kill()
            self.proc.wait()
            return wait(*args)

        monkeypatch.setattr(select, "select", killed_then_wait)
        try:
            return ask(self, request, timeout)
        finally:
            monkeypatch.setattr(select, "select", wait)

    monkeypatch.setattr(grading.Server, "ask", killed_on_ada)
    monkeypatch.setattr(grading, "_PASSED", set())  # the canary is graded first here
    results = {r.student: r for r in grading.grade_class(
        tmp_path / "subs", FIRST, tmp_path / "out", jobs=1, timeout=300,
        progress=lambda _: None)}
    assert results["ada"].status.startswith("grading failed: the grading process ended")
    assert results["bo"].status == "graded" and results["bo"].score == results["bo"].max_score


# ---------------------------------------------------------------- without a class


def test_a_grader_that_cannot_give_the_instructor_full_marks_writes_nothing(tmp_path):
    require_bwrap()
    (tmp_path / "subs" / "ada").mkdir(parents=True)
    nbformat.write(cases.source_nb(FIRST), tmp_path / "subs" / "ada" / f"{FIRST}.ipynb")
    with pytest.raises(grading.GradingBroken, match="instructor notebook") as error:
        grading.grade_class(tmp_path / "subs", FIRST, tmp_path / "out", timeout=0.001,
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
    assert sorted(collect(archive, "01_tokenization", scratch)) == ["ada", "grace"]


def test_a_zip_bomb_is_refused_with_a_clear_message(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ada/01_tokenization.ipynb", b"\0" * (64 * 2**20))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(ValueError, match="zip bomb"):
        collect(archive, "01_tokenization", scratch)
    assert not any((scratch / "unzipped").rglob("*.ipynb"))


def test_student_names_the_grader_accepts():
    for name in ("ada", "José", "Anne Marie", "o'brien", "li.wei@uni", "Zoë-Ann"):
        assert STUDENT_ID.match(name), name
    for name in ("", " lead", "trailing ", "../up", "a/b", "x" * 101):
        assert not STUDENT_ID.match(name) or ".." in name, name


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
