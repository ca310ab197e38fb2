"""The student bundle: released notebooks whose visible tests run without the reference answers,
the hidden cases or the catalogues (python -m course student-bundle)."""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import json
import marshal
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from checking import hints_in

from course.authoring import bundle, exercises, source
from course.checks import core
from course.checks.engine.mode import using
from course.checks.engine.tape import Replaying

pytestmark = pytest.mark.slow
BUNDLED = ["01_tokenization", "05_residual"]  # one standalone, one given others' work

# Runs variants of a bundled notebook in a fresh interpreter that cannot import the course's
# own `course` or `solutions` (the editable install is switched off): only the bundle's folder.
RUNNER = r'''
import contextlib, io, json, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, ".")
try:
    import solutions
    sys.exit("the reference package is importable")
except ImportError:
    pass

def run_all(variants):
    main = sys.modules["__main__"].__dict__
    keep = dict(main)
    results = {}
    for variant in variants:
        main.clear()
        main.update(keep)
        cells = []
        for cell in variant["cells"]:
            printed = io.StringIO()
            try:
                with contextlib.redirect_stdout(printed):
                    exec(compile(cell["source"], "<cell>", "exec"), main)
                error = None
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
            if cell["grade"]:
                cells.append([cell["id"], error, printed.getvalue()])
        results[variant["name"]] = cells
    import course.checks.core as core
    return {"results": results, "replaying": core.replaying(), "core": core.__file__}

print(json.dumps(run_all(json.load(sys.stdin))))
'''


def variant(name: str, *, mistake=None, slip=None, blank=False, bundled=True) -> list[dict]:
    """The instructor notebook's cells without hidden tests, with one mistake or slip made, or
    released as is (`blank`); in the bundle's names when `bundled`."""
    cells = []
    for cell in core._notebook_cells(name):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        source = bundle.HIDDEN.sub("", cell.source)
        if meta.get("solution"):
            source = core.made(source, mistake=mistake, slip=slip, blank=blank)
        cells.append({"source": bundle.renamed(source) if bundled else source,
                      "grade": bool(meta.get("grade")), "id": meta.get("grade_id")})
    return cells


def in_full_runtime(cells: list[dict]) -> dict[str, str | None]:
    """The same cells run here, with the reference behind every check."""
    namespace, results = {"__name__": "__main__"}, {}
    for cell in cells:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(cell["source"], "<cell>", "exec"), namespace)
            error = None
        except Exception as e:  # what the learner reads
            error = f"{type(e).__name__}: {e}"
        if cell["grade"]:
            results[cell["id"]] = error
    return results


def in_bundle(folder: Path, name: str, variants: dict[str, list[dict]]) -> dict:
    payload = [{"name": key, "cells": cells} for key, cells in variants.items()]
    proc = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(payload),
                          capture_output=True, text=True, cwd=folder / name, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["replaying"] and out["core"].startswith(str(folder / name))
    return out["results"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("bundle")
    args = [a for name in BUNDLED for a in ("--assignment", name)]
    proc = subprocess.run([sys.executable, "-m", "course", "student-bundle",
                           str(tmp / "bundle.zip"), *args], capture_output=True, text=True,
                          cwd=exercises.ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(tmp / "bundle.zip") as archive:
        archive.extractall(tmp / "bundle")
    return tmp / "bundle", proc.stdout


def test_bundle_says_what_each_exercise_is_given_and_in_which_form(built):
    folder, printed = built
    assert "05_residual is given:" in printed and "01_tokenization is given:" in printed
    compiled = next(ln for ln in printed[printed.index("05_residual is given"):].splitlines()
                    if ln.strip().startswith("compiled:"))
    for part in ("given.attention.MultiHeadAttention (03_attention)",
                 "given.normalization.LayerNorm (06_normalization)",
                 "given.normalization.layer_norm (06_normalization)"):
        assert part in compiled
    assert "to write: given.residual.Block" in printed
    tokenization = printed[printed.index("01_tokenization is given"):
                           printed.index("05_residual is given")]
    assert "compiled:" not in tokenization
    given = (folder / "05_residual" / "given" / "normalization.py").read_text()
    assert "_load_compiled(" in given
    assert not re.search(r"^(def layer_norm|class LayerNorm)\b", given, re.M)
    assert f"on Python {sys.version_info[0]}.{sys.version_info[1]}." in \
        (folder / "README.md").read_text()
    assert "torch==" in (folder / "requirements.txt").read_text()


def test_leaks_finds_any_body_an_exercise_asks_for(built, tmp_path):
    """The command's proof: no text file of the bundle holds any exercise's answer body, and
    one planted in any file, comments and layout aside, is found."""
    folder, _ = built
    assert bundle.leaks(folder) == []
    asked = bundle.asked()
    assert set(asked.values()) == set(exercises.names())
    body, name = next((b, n) for b, n in asked.items() if n == "06_normalization")
    planted = tmp_path / "05_residual" / "given" / "x.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("def f(x):\n    " + bundle.renamed(body) + "  # a comment\n")
    assert bundle.leaks(tmp_path) == ["05_residual/given/x.py holds a body of 06_normalization"]


def test_bundle_has_no_answers_hidden_cases_or_catalogue(built):
    folder, _ = built
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert not any("solutions" in p.relative_to(folder).parts for p in files)
    text = {p: p.read_text() for p in files if p.suffix in (".py", ".ipynb", ".md")}
    squeeze = lambda s: " ".join(s.split())  # noqa: E731
    for name in BUNDLED:
        mine = {p: squeeze(core.code_only(t) if p.suffix == ".py" else t)
                for p, t in text.items() if p.is_relative_to(folder / name)}
        notebook = text[folder / name / f"{name}.ipynb"]
        assert "hidden=True" not in notebook and "BEGIN HIDDEN" not in notebook
        # every body the learner writes is absent from the exercise's folder
        for cell in core._notebook_cells(name):
            for body in re.findall(r"### BEGIN SOLUTION\n(.*?)^ *### END SOLUTION", cell.source,
                                   re.M | re.S):
                body = squeeze(bundle.renamed(core.code_only(body)))
                assert len(body) > 10
                assert not [p for p, t in mine.items() if body in t], body
        # no other exercise's answer either: it is given compiled, or released, or not at all
        for other in set(exercises.names()) - {name}:
            for module, top in bundle.answers(other):
                given = folder / name / "given" / f"{module.split('.')[1]}.py"
                shipped = source.definitions(text[given]).get(top) if given in text else None
                assert shipped is None or "raise NotWritten(" in shipped, (name, other, top)
        # no catalogued edit and no string a hidden case alone uses
        topic = importlib.import_module(f"course.checks.{name.split('_', 1)[1]}")
        files = _topic_files(topic)
        shipped = [text[folder / name / "course" / "checks" / f] for f in files]
        assert topic.MISTAKES and not any("Mistake(" in t or "Slip(" in t for t in shipped)
        assert not any(re.search(r"\bif hidden\b", t) for t in shipped)
        literals = {n.value for t in shipped for n in ast.walk(ast.parse(t))
                    if isinstance(n, ast.Constant)}
        checks = Path(core.__file__).parent
        assert not _hidden_only_strings([(checks / f).read_text() for f in files]) & literals
        tape = core.TAPE.name
        keys = (folder / name / "course" / "checks" / tape).read_bytes()
        assert b"hidden" not in keys


def _topic_files(topic) -> list[Path]:
    """A topic's checks module, or each module of its package, relative to course/checks."""
    path = Path(topic.__file__)
    if path.name != "__init__.py":
        return [Path(path.name)]
    return [p.relative_to(path.parent.parent) for p in sorted(path.parent.glob("*.py"))]


def _hidden_only_strings(sources: list[str]) -> set[str]:
    """String constants of a topic's checks modules that only their `if hidden:` branches
    use."""
    trees = [ast.parse(source) for source in sources]
    inside = set()
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, (ast.If, ast.IfExp)) and isinstance(node.test, ast.Name) \
                and node.test.id == "hidden":
            branch = node.body if isinstance(node, ast.If) else [node.body]
            inside |= {id(n) for b in branch for n in ast.walk(b)}
    strings = [(id(n), n.value) for tree in trees for n in ast.walk(tree)
               if isinstance(n, ast.Constant) and isinstance(n.value, str) and len(n.value) > 3]
    hidden = {v for i, v in strings if i in inside}
    return hidden - {v for i, v in strings if i not in inside}


@pytest.mark.parametrize("name", BUNDLED)
def test_visible_tests_run_from_the_bundle(built, name):
    """Answers pass, the released notebook fails every test as not implemented, and every
    catalogued mistake and slip fails where it fails in the full runtime, with no wrong hint;
    a later part that fails because an earlier one does says so, and hints nothing."""
    folder, _ = built
    topic = importlib.import_module(f"course.checks.{name.split('_', 1)[1]}")
    hints = {m.name: m.hint for m in topic.MISTAKES}
    cases = {"answers": {}, "blank": {"blank": True}}
    cases |= {f"mistake {m.name}": {"mistake": m, "own": m.hint} for m in topic.MISTAKES}
    if name == BUNDLED[0]:  # the second catalogue too where it is quick
        cases |= {f"slip {s.name}": {"slip": s, "own": hints.get(s.mistake)}
                  for s in topic.SLIPS}
    own = {key: kw.pop("own", None) for key, kw in cases.items()}
    got = in_bundle(folder, name, {key: variant(name, **kw) for key, kw in cases.items()})

    assert all(error is None for _, error, _ in got["answers"]), got["answers"]
    assert all("is not implemented yet" in error for _, error, _ in got["blank"]), got["blank"]
    same_hint = failing = 0
    for key, kw in cases.items():
        full = in_full_runtime(variant(name, bundled=False, **kw))
        failing += sum(e is not None for e in full.values()) if kw else 0
        for cell, error, printed in got[key]:
            wrong = [h for h in hints_in(error or "") if h != own[key]]
            assert not wrong, (key, cell, error)
            if full[cell] is not None:  # a failure in the full runtime fails here too
                assert error is not None or "not checked yet" in printed, (key, cell)
            elif error is not None:  # a failure the reference's earlier part would have hidden
                assert "fails first" in error and not hints_in(error), (key, cell, error)
            if kw and full[cell] and error \
                    and hints_in(full[cell]) == hints_in(error):
                same_hint += 1
    assert same_hint >= 0.8 * failing, (same_hint, failing)  # most hints survive the tape


@pytest.mark.parametrize("name", exercises.names())
def test_the_tape_names_a_mistake_wherever_the_graded_run_does(name):
    """In process, fast: each catalogued mistake's visible tests, graded with the reference at
    hand and replayed from the exercise's tape as a bundle does, fail in the same cells with
    the same hints (a check's second comparison, which only a wrong result reaches, too)."""
    graded: dict[str, dict[str, str]] = {}
    tape = bundle.record(name, graded)
    topic = importlib.import_module(f"course.checks.{name.split('_', 1)[1]}")
    for mistake in topic.MISTAKES:
        with using(Replaying(tape)):
            replayed = bundle._run_visible(name, mistake)
        for cell, message in graded[mistake.name].items():
            assert hints_in(replayed.get(cell) or "") == hints_in(message), \
                (mistake.name, cell, message, replayed.get(cell))


def test_a_kernel_runs_the_bundled_notebook(built, tmp_path):
    """The notebook as a learner opens it in Jupyter: given code and checks come from its
    folder, and the course's own packages are not importable from the kernel."""
    from nbclient import NotebookClient

    folder, _ = built
    name = BUNDLED[0]
    nb = nbformat.read(folder / name / f"{name}.ipynb", as_version=4)
    answers = {c["id"]: c["source"] for c in variant(name) if c["id"]}
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = answers[grade_id]
    guard = ("import sys\nsys.meta_path[:] = [f for f in sys.meta_path "
             "if 'editable' not in repr(f).lower()]\n"
             "import importlib.util\nassert importlib.util.find_spec('solutions') is None\n")
    nb.cells.insert(0, nbformat.v4.new_code_cell(guard))
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(folder / name)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors


def test_student_bundle_refuses_bad_arguments(tmp_path):
    for args in (["--assignment", "99_nope"], []):
        out = tmp_path / ("x.zip" if args else "x.tar")
        proc = subprocess.run([sys.executable, "-m", "course", "student-bundle", str(out),
                               *args], capture_output=True, text=True, cwd=exercises.ROOT)
        assert proc.returncode == 2 and "error:" in proc.stderr and not out.exists()


def test_compiled_code_refuses_another_python_with_a_clear_message():
    """Marshalled code objects tie to the Python minor version that made them: on another,
    the bundle's loader stops at import and names the Python it needs."""
    loader: dict = {}
    exec(bundle.LOADER, loader)
    code = marshal.dumps(compile("x = 6 * 7", "<compiled>", "exec")).hex()
    namespace: dict = {}
    loader["load"](code, namespace)
    assert namespace["x"] == 42
    loader["PYTHON"] = (3, 0)
    with pytest.raises(ImportError, match=r"needs Python 3\.0, not 3\.\d+\.\d+: run the "):
        loader["load"](code, {})
