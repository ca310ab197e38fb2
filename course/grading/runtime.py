"""The course as the learner's worker sees it, for one exercise: `course` without its checks,
grading, benchmarks and oracles, and `solutions/` with each graded definition replaced by a
stand-in (`stand_in.py`) and each one the exercise does not give (a twin, a later answer) by a
stub that says so: no reference of a part still to be judged is there to import.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import shutil
from pathlib import Path

from course.authoring import source

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

STAND_IN = ("from course_stand_in import stand_in  # the learner's {name}, the reference once "
            "judged\n{name} = stand_in(__name__, {name!r}, is_class={is_class})\n")
NOT_GIVEN = ("def {name}(*args, **kwargs):  # not given in this exercise\n"
             "    raise RuntimeError({message!r})\n")
NOT_GIVEN_CLASS = ("class {name}:  # not given in this exercise\n"
                   "    def __init__(self, *args, **kwargs):\n"
                   "        raise RuntimeError({message!r})\n")
NOT_GIVEN_MESSAGE = "{name} is not given in this exercise: write what the exercise asks for."
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


def _mentioned(tree: ast.AST) -> set[str]:
    """Every name `tree` mentions (a superset of the top-level definitions it reads; no
    attribute counts: `model.train()` reaches no top-level `train`, a twin of `fit`)."""
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _imported(tree: ast.AST) -> set[str]:
    """The modules `tree` imports, dotted (`from a.b import c` counts a.b and a.b.c)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def _course_modules(source_nb) -> set[Path]:
    """The files of the `course` package the exercise's cells import, and what they import."""
    todo = {"course"}
    for cell in source_nb.cells:
        if cell.cell_type == "code":
            with contextlib.suppress(SyntaxError):
                todo |= _imported(ast.parse(source.code_only(cell.source)))
    seen: set[Path] = set()
    while todo:
        parts = todo.pop().split(".")
        if parts[0] != "course" or {"checks", "grading", "bench"} & set(parts):
            continue
        base = ROOT.joinpath(*parts)
        for path in (base / "__init__.py", base.with_suffix(".py")):
            if path.is_file() and path not in seen:
                seen.add(path)
                todo |= _imported(ast.parse(path.read_text()))
    return seen


# Reference helpers that the checks' probes call inside the worker (copying torch's weights into
# the learner's module; AdamW over param_groups for the checkpoint checks' runs): never an
# answer of an exercise (tests/test_judge.py checks it).
PROBE_HELPERS = frozenset({"load_torch_attention", "make_optimizer"})


def given(source_nb, modules: dict[str, str]) -> set[str]:
    """The top-level definitions of `modules` (name -> source) the exercise gives: what its own
    cells, the course's modules, module-level code or a graded part's reference reach, and what
    those reach in turn. Every other definition (a twin of a graded part, a later answer) is
    not given."""
    defined: dict[str, list[ast.stmt]] = {}
    reach: set[str] = set(graded_names(source_nb)) | PROBE_HELPERS
    for cell in source_nb.cells:
        if cell.cell_type == "code":
            reach |= source.names_used(cell.source)
    for path in _course_modules(source_nb):
        reach |= _mentioned(ast.parse(path.read_text()))
    for text in modules.values():
        for node in ast.parse(text).body:
            if isinstance(node, source.DEFINITION):
                defined.setdefault(node.name, []).append(node)
            else:
                reach |= _mentioned(node)
    kept: set[str] = set()
    todo = [n for n in reach if n in defined]
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        kept.add(name)
        for node in defined[name]:
            todo += [n for n in _mentioned(node) if n in defined and n not in kept]
    return kept


def redact(text: str, names: set[str], kept: set[str] | None = None) -> str:
    """A solutions module's source with each top-level definition of `names` a stand-in, and
    each one not in `kept` (when given) a stub that says it is not given."""
    def new(node):
        if node.name in names:
            return STAND_IN.format(name=node.name, is_class=isinstance(node, ast.ClassDef))
        if kept is not None and node.name not in kept:
            stub = NOT_GIVEN_CLASS if isinstance(node, ast.ClassDef) else NOT_GIVEN
            return stub.format(name=node.name,
                               message=NOT_GIVEN_MESSAGE.format(name=node.name))
        return None

    return source.rewrite(text, new)


def build_runtime(dest: Path, source_nb) -> Path:
    """The course as the learner's worker sees it, for one exercise (see the module doc)."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "course", dest / "course", ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "checks", "grading", "bench"))
    checks = dest / "course" / "checks"
    checks.mkdir()
    for module in (ROOT / "course" / "checks").iterdir():  # a topic's package: one stub module
        if module.suffix == ".py" and module.name != "oracles.py" or \
                (module / "__init__.py").is_file() and module.name != "engine":
            (checks / f"{module.stem}.py").write_text(CHECKS_STUB)
    shutil.copytree(ROOT / "solutions", dest / "solutions", ignore=skip)
    names = graded_names(source_nb)
    modules = {path: path.read_text() for path in (dest / "solutions").rglob("*.py")}
    kept = given(source_nb, modules)
    for path, text in modules.items():
        path.write_text(redact(text, names, kept))
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
