"""Submissions for the grading tests, made generically for every exercise template.

- `one_mistake_per_part`: each graded part gets one catalogued mistake (the first whose edit
  lands in that part's cell), so one notebook proves every part's mistakes cost points and are
  named;
- `imports_reference`: every part answered by importing the reference;
- `ATTACKS`: the hostile catalogue. Each entry is (what it tries, how it is built); all are
  built on the untouched student notebook (so any point they get is a point stolen), except
  `vandal-but-correct`, built on the instructor notebook, which must keep full marks.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import nbformat

from course.authoring import exercises, source
from course.checks import core

SOLUTIONS = exercises.ROOT / "solutions"


def source_nb(name: str):
    return nbformat.read(exercises.SOURCE / name / f"{name}.ipynb", as_version=4)


def release_nb(name: str):
    return nbformat.read(exercises.RELEASE / name / f"{name}.ipynb", as_version=4)


def meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def solution_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and meta(c).get("solution")]


def test_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and meta(c).get("grade")
            and not meta(c).get("solution")]


def defined(text: str) -> list[str]:
    """The top-level functions and classes `text` defines."""
    return list(source.top_level(text))


def module_of(name: str) -> str:
    """The solutions module that defines `name` at top level."""
    for path in sorted(SOLUTIONS.glob("*.py")):
        if name in defined(path.read_text()):
            return f"solutions.{path.stem}"
    raise LookupError(name)


def points(nb) -> tuple[float, float]:
    """(points earned, points possible) of a judged notebook: a test cell with no error earns
    its points."""
    earned = possible = 0.0
    for cell in test_cells(nb):
        possible += meta(cell)["points"]
        if not any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            earned += meta(cell)["points"]
    return earned, possible


def checks_module(name: str):
    return importlib.import_module(f"course.checks.{name.split('_', 1)[1]}")


def one_mistake_per_part(name: str):
    """(notebook, mistakes): the instructor notebook with one catalogued mistake per part."""
    nb = nbformat.from_dict(source_nb(name))
    used = []
    for cell in solution_cells(nb):
        code = core.code_only(cell.source) if hasattr(core, "code_only") else cell.source
        for mistake in checks_module(name).MISTAKES:
            if code.count(mistake.find) == 1 and mistake.target.rpartition(".")[2] in \
                    defined(code):
                cell.source = core.edit(code, mistake.find, mistake.replace)
                used.append(mistake)
                break
    return nb, used


def imports_reference(name: str):
    nb = nbformat.from_dict(source_nb(name))
    for cell in solution_cells(nb):
        cell.source = "\n".join(f"from {module_of(n)} import {n}" for n in defined(cell.source))
    return nb


def with_cell(nb, code: str, *, at: int = 1):
    nb = nbformat.from_dict(nb)
    nb.cells.insert(at, nbformat.v4.new_code_cell(code))
    return nb


def answers_replaced(nb, full, make):
    """Every solution cell replaced by make(names the instructor's cell defines)."""
    nb = nbformat.from_dict(nb)
    for cell, original in zip(solution_cells(nb), solution_cells(full), strict=True):
        cell.source = make(defined(original.source))
    return nb


WALK = '''
import os
from pathlib import Path
places = [p for p in [Path.cwd(), *Path.cwd().parents] if str(p) != "/"]
places += [Path(p) for p in {places!r}]
def every(suffix):
    for top in places:
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d not in ("proc", "sys", ".venv", "site-packages")]
            for f in files:
                if f.endswith(suffix):
                    yield os.path.join(folder, f)
'''

SQLITE = WALK + '''
import sqlite3
for db in every("gradebook.db"):
    try:
        con = sqlite3.connect(db)
        con.execute("update grade set auto_score = 1000")
        con.commit()
        print("wrote", db)
    except Exception:
        pass
'''

CONFIG = WALK + '''
for config in every("nbgrader_config.py"):
    try:
        with open(config, "a") as f:
            f.write("\\nc.Autograde.autograde_preprocessors = []\\n")
        print("appended", config)
    except OSError:
        pass
'''

SHADOW = WALK + '''
for top in [Path.cwd(), *places]:
    try:
        (top / "nbgrader").mkdir(exist_ok=True)
        (top / "nbgrader" / "__init__.py").write_text("raise SystemExit(0)")
        print("shadowed", top)
    except OSError:
        pass
'''

REBIND = '''
for _name in {checks!r}:
    globals()[_name] = lambda *args, **kwargs: None
'''

TRANSFORMER = '''
def _blank_tests(lines):
    return ["pass\\n"] if any("check_" in line for line in lines) else lines
get_ipython().input_transformers_cleanup.append(_blank_tests)
'''

PATCH = '''
import torch
import course.checks.core as _core
for _name in ("compare", "require_own", "call", "same", "fail"):
    setattr(_core, _name, lambda *args, **kwargs: None)
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
'''

INSTRUCTOR = WALK + '''
import json
for path in every(".ipynb"):
    try:
        nb = json.load(open(path))
    except Exception:
        continue
    for cell in nb.get("cells", []):
        if "BEGIN SOLUTION" in "".join(cell.get("source", "")):
            exec("".join(cell["source"]), globals())
            print("executed", path)
for path in every(".py"):
    if "/solutions/" in path:
        try:
            exec(open(path).read(), globals())
        except Exception:
            pass
'''

VANDAL = WALK + '''
for suffix in (".ipynb", ".db", ".csv", ".py", ".html", ".json"):
    for path in every(suffix):
        try:
            os.remove(path)
        except OSError:
            pass
'''


FORGED = '''
import builtins
builtins.__course_forged__ = True  # only ever true where this cell ran
'''


def forged_test(nb):
    """A cell of the learner's own, marked as a graded test cell worth points."""
    nb = with_cell(nb, FORGED)
    nb.cells[1].metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                        "grade_id": "forged", "points": 5,
                                        "schema_version": 3}
    return nb


def attack_notebooks(name: str, places: list[str]) -> dict[str, tuple[str, object]]:
    """case -> (what it tries, notebook)."""
    blank, full = release_nb(name), source_nb(name)
    checks = sorted({m for c in test_cells(full) for m in re.findall(r"\bcheck_\w+", c.source)})

    def copy_of(names):
        return "from course.checks.core import copy_of\n" + "\n".join(
            f'{n} = copy_of("{module_of(n)}.{n}")' for n in names)

    def stub_import(names):
        return "\n".join(f"from {module_of(n)} import {n}" for n in names)

    return {
        "sqlite-gradebook": ("write full marks into every gradebook.db it can reach",
                             with_cell(blank, SQLITE.format(places=places))),
        "config-append": ("append to every nbgrader_config.py it can reach",
                          with_cell(blank, CONFIG.format(places=places))),
        "nbgrader-package": ("plant an nbgrader/ package that shadows nbgrader",
                             with_cell(blank, SHADOW.format(places=places))),
        "rebind-checks": ("rebind every check_* name to a no-op",
                          with_cell(blank, REBIND.format(checks=checks), at=2)),
        "input-transformer": ("an IPython input transformer that blanks test cells",
                              with_cell(blank, TRANSFORMER)),
        "patch-checks": ("replace compare/require_own/call in course.checks and "
                         "torch.allclose", with_cell(blank, PATCH, at=2)),
        "copy-of-reference": ("answer with copy_of('solutions...')",
                              answers_replaced(blank, full, copy_of)),
        "import-reference": ("answer by importing the reference", answers_replaced(
            blank, full, stub_import)),
        "exec-instructor": ("exec the instructor notebook and solutions/*.py it finds",
                            answers_replaced(blank, full, lambda names: INSTRUCTOR.format(
                                places=places))),
        "forged-test-cell": ("a cell of its own marked as a test worth points (run by the "
                             "grader, it would pass)", forged_test(blank)),
        "vandal-but-correct": ("a correct notebook that deletes every file it can reach",
                               with_cell(full, VANDAL.format(places=places))),
    }


def places_for(*paths: Path) -> list[str]:
    return [str(p) for p in (exercises.ROOT, exercises.ROOT.parent, Path("/tmp"), *paths)]
