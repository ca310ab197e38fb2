"""The course as the learner's worker sees it, for one exercise: `course` without its checks,
grading and benchmarks, and `solutions/` with each graded definition replaced by a stand-in
(`stand_in.py`), so no reference of a part still to be judged is there to import.
"""

from __future__ import annotations

import ast
import functools
import shutil
from pathlib import Path

from course import source

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

STAND_IN = ("from course_stand_in import stand_in  # the learner's {name}, the reference once "
            "judged\n{name} = stand_in(__name__, {name!r}, is_class={is_class})\n")
CHECKS_STUB = '''"""Checks are not available while grading (the grader runs them outside)."""


def _not_here(*args, **kwargs):
    return None


def __getattr__(name):
    return _not_here
'''


def code_cells(source_nb, *, solution: bool = False, test: bool = False) -> list:
    """The instructor notebook's solution cells, test cells, or (neither) plain code cells."""
    found = []
    for cell in source_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        is_solution = bool(meta.get("solution"))
        is_test = bool(meta.get("grade")) and not is_solution
        if cell.cell_type == "code" and (is_solution, is_test) == (solution, test):
            found.append(cell)
    return found


def graded_names(source_nb) -> set[str]:
    """Top-level functions and classes the learner writes (the instructor's solution cells)."""
    return {name for cell in code_cells(source_nb, solution=True)
            for name in source.top_level(cell.source)}


def reference_target(name: str) -> str | None:
    """'solutions.module.name' for a top-level definition in solutions/, or None."""
    return _definitions().get(name)


@functools.cache
def _definitions() -> dict[str, str]:
    """Each top-level definition of solutions/ -> 'solutions.module.name' (the first module
    in name order that defines it), read once per process."""
    found: dict[str, str] = {}
    for module in sorted((ROOT / "solutions").glob("*.py")):
        for name in source.top_level(module.read_text()):
            found.setdefault(name, f"solutions.{module.stem}.{name}")
    return found


def redact(text: str, names: set[str]) -> str:
    """A solutions module's source with each top-level definition of `names` a stand-in."""
    return source.rewrite(text, lambda node: STAND_IN.format(
        name=node.name, is_class=isinstance(node, ast.ClassDef)) if node.name in names else None)


def build_runtime(dest: Path, source_nb) -> Path:
    """The course as the learner's worker sees it, for one exercise (see the module doc)."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "course", dest / "course", ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "checks", "grading", "bench"))
    checks = dest / "course" / "checks"
    checks.mkdir()
    for module in (ROOT / "course" / "checks").glob("*.py"):
        (checks / module.name).write_text(CHECKS_STUB)
    shutil.copytree(ROOT / "solutions", dest / "solutions", ignore=skip)
    names = graded_names(source_nb)
    for module in (dest / "solutions").rglob("*.py"):
        module.write_text(redact(module.read_text(), names))
    shutil.copyfile(HERE / "worker.py", dest / "course_worker.py")
    shutil.copyfile(HERE / "stand_in.py", dest / "course_stand_in.py")
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


def plain_imports(source_nb) -> list[ast.stmt]:
    """The top-level import statements of the instructor notebook's plain cells."""
    imports = []
    for cell in code_cells(source_nb):
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        imports += [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    return imports


def preloads(source_nb) -> tuple[str, ...]:
    """Modules the exercise's own cells import, other than the course's (the worker imports
    them before its submission's first cell: a worker started ahead has them ready)."""
    found: dict[str, None] = {}
    for node in plain_imports(source_nb):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module] if node.module and not node.level else [])
        for name in names:
            if name.split(".")[0] not in ("course", "solutions"):
                found[name] = None
    return tuple(found)
