"""Collect the learner's code from a workspace of exercise notebooks into one package.

``collect(WORKSPACE)`` reads ``WORKSPACE/NN_topic.ipynb`` for the exercises that build the
transformer (1 to 9) and writes ``WORKSPACE/mytransformer/``:

    __init__.py        every name the learner writes, the given names the notebooks import,
                       and ``train``, the course's loop around the learner's training step
    tokenization.py    one module per exercise: the code of its graded cells as the notebook has
    ...                it (the learner's bodies and the given code around them), headed by the
    training.py        imports it needs: another exercise's part from that exercise's module,
                       course code from ``given``
    given/             the course modules the exercises give (input checks, the configuration,
                       helpers), with only the definitions they reach; every name the learner
                       writes is left out there and bound to the learner's in ``__init__``, and
                       a given class built on the learner's (a fused twin) is left out too
    COLLECTED.json     the notebooks' digests (the package is rebuilt when one changes) and
                       what each notebook imports from the course (its checks run so)

So no body of the reference comes along: the learner's parts are theirs, and given code calls
them. A part still unwritten (``raise NotImplementedError()``) is collected as it is and
reported by :func:`unwritten`. The package imports itself relatively, so several workspaces
load side by side (:func:`load` gives each its own module name).
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import importlib.util
import json
import re
import shutil
import symtable
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

PACKAGE = "mytransformer"
NOTEBOOK = re.compile(r"^(0[1-9])_([a-z]+)$")   # exercises 1-9 build the transformer
UNWRITTEN = re.compile(r"^\s*raise NotImplementedError\(\)\s*$", re.M)
STAMP = "COLLECTED.json"
# given code no notebook imports that the package also carries: the course's training loop
# (evaluation, checkpoints, several processes) around the learner's step, for `train --mine`
EXTRA = {"train": ("solutions.training", "train")}


class CollectError(ValueError):
    """A workspace that cannot be collected, with the reason in plain words."""


@dataclass(frozen=True)
class Part:
    """One graded cell of an exercise notebook."""

    exercise: str              # "06_normalization"
    part: str                  # its grade id, "layer_norm"
    index: int                 # its position among the exercise's graded cells, from 1
    source: str
    names: tuple[str, ...]     # the top-level definitions

    @property
    def number(self) -> int:
        return int(self.exercise[:2])

    @property
    def topic(self) -> str:
        return self.exercise.split("_", 1)[1]

    @property
    def written(self) -> bool:
        return not UNWRITTEN.search(self.source)

    def label(self) -> str:
        return f"exercise {self.number} ({self.topic}), part {self.index} ({self.part})"


def notebooks(workspace) -> dict[str, Path]:
    """{'06_normalization': path} for the exercise notebooks 1-9 in a flat workspace."""
    return {p.stem: p for p in sorted(Path(workspace).glob("*.ipynb")) if NOTEBOOK.match(p.stem)}


def _parses(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:  # a cell with IPython magics, or one being edited
        return None


def read_notebook(exercise: str, path: Path) -> tuple[list[Part], dict[str, ast.stmt]]:
    """The graded solution cells of a notebook, and what its other cells import:
    {bound name: the import statement, for that name alone}."""
    nb = nbformat.read(path, as_version=4)
    parts, imports = [], {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            tree = _parses(cell.source)
            if tree is None:
                raise CollectError(f"exercise {int(exercise[:2])} ({exercise}), part "
                                   f"{meta.get('grade_id')!r}: the cell is not valid Python")
            names = tuple(n.name for n in tree.body
                          if isinstance(n, (ast.FunctionDef, ast.ClassDef)))
            parts.append(Part(exercise, meta.get("grade_id", "?"), len(parts) + 1,
                              cell.source.strip("\n"), names))
        elif not meta.get("grade"):
            for node in (_parses(cell.source) or ast.Module(body=[])).body:
                if isinstance(node, ast.Import):
                    for a in node.names:
                        bound = a.asname or a.name.split(".")[0]
                        imports[bound] = ast.Import([a] if a.asname else
                                                    [ast.alias(a.name.split(".")[0])])
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    for a in node.names:
                        imports[a.asname or a.name] = ast.ImportFrom(node.module, [a], 0)
    return parts, imports


def free_names(source: str) -> set[str]:
    """The global names a source reads and does not bind (builtins excluded)."""
    top = symtable.symtable(source, "<part>", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    found = {s.get_name() for s in top.get_symbols() if s.is_referenced()}
    todo = list(top.get_children())
    while todo:
        table = todo.pop()
        todo += table.get_children()
        for s in table.get_symbols():
            if s.is_referenced() and (s.is_global() or (
                    table.get_type() == "class" and not s.is_assigned() and not s.is_local())):
                found.add(s.get_name())
    return found - bound - set(dir(builtins))


# ---------------------------------------------------------------- import rewriting


def _given_name(module: str) -> str:
    """'solutions.model' -> 'model', its name inside mytransformer/given/."""
    return module.split(".", 1)[1]


def rewrite_solutions_imports(source: str, target) -> str:
    """`source` with each name of every `from solutions.X import a` imported from
    `target(X, a)` (a relative module, '.attention' or '.given.model'), or dropped where that
    is None (the name is bound from outside)."""
    lines = source.splitlines()
    edits = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("solutions")
                and not node.level):
            continue
        indent = " " * node.col_offset
        text = [f"{indent}from {target(node.module, a.name)} import {ast.unparse(a)}"
                for a in node.names if target(node.module, a.name)]
        edits.append((node.lineno, node.end_lineno, text or [indent + "pass"]))
    for first, last, text in sorted(edits, reverse=True):
        lines[first - 1:last] = text
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the given modules


def _given(starts: set[tuple[str, str]], learner: set[str]):
    """{solutions module: the names its given copy keeps}, and the names left out because
    they are built on the learner's classes."""
    from course.authoring import bundle

    modules: set[str] = set()
    while True:
        wanted = {m for m, _ in starts} | modules
        more = {m for m in bundle.closure(wanted) if m.startswith("solutions.")}
        if more <= modules:
            break
        modules |= more
    kept = {(m, n) for m, n in bundle.needed(modules, starts) if n not in learner}
    left_out: set[str] = set()
    classes = [(module, node) for module in modules
               for node in ast.parse(bundle._module_file(module).read_text()).body
               if isinstance(node, ast.ClassDef)]
    while True:  # built on the learner's classes, or on classes left out for that reason
        out = {(m, node.name) for m, node in classes if (m, node.name) in kept and any(
            isinstance(b, ast.Name) and b.id in learner | left_out for b in node.bases)}
        if not out:
            break
        kept -= out
        left_out |= {name for _, name in out}
    keep = {m: {n for mm, n in kept if mm == m} for m in sorted(modules)}
    return keep, left_out


def _given_source(module: str, keep: set[str], keep_all: dict[str, set[str]],
                  learner: set[str]) -> str:
    """The given copy of a solutions module: the definitions in `keep`, its imports of other
    modules' kept names from their given copies, and no name the learner writes."""
    from course.authoring import bundle

    source = bundle.given_module(module, {}, keep)
    source = rewrite_solutions_imports(
        source, lambda m, n: None if n in learner or n not in keep_all.get(m, ())
        else "." + _given_name(m))
    return f"# Given: the course's {module}, with only what the exercises reach.\n" + source


# ---------------------------------------------------------------- the package


def digests(workspace) -> dict[str, str]:
    """The digest of each exercise notebook, and of this collector (a newer course collects
    again)."""
    found = {name: hashlib.sha256(path.read_bytes()).hexdigest()
             for name, path in notebooks(workspace).items()}
    return {**found, "collector": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()}


def fresh(workspace) -> bool:
    """True if WORKSPACE/mytransformer was collected from the notebooks as they are now."""
    stamp = Path(workspace) / PACKAGE / STAMP
    return stamp.exists() and json.loads(stamp.read_text())["notebooks"] == digests(workspace)


def notebook_imports(package) -> dict[str, dict[str, list[str]]]:
    """{exercise: {name: [solutions module, name]}}: what each notebook imports from the
    course, recorded when the package was collected."""
    return json.loads((Path(package) / STAMP).read_text())["imports"]


def read_parts(workspace) -> list[Part]:
    """Every graded part of the workspace's exercises 1-9, in exercise order."""
    return [p for name, path in notebooks(workspace).items()
            for p in read_notebook(name, path)[0]]


def unwritten(workspace) -> list[Part]:
    """The parts whose code still raises NotImplementedError (not written yet)."""
    return [p for p in read_parts(workspace) if not p.written]


def collect(workspace, force: bool = False) -> Path:
    """Write WORKSPACE/mytransformer from the notebooks (only if one changed since, unless
    `force`); returns the package folder."""
    workspace = Path(workspace)
    found = notebooks(workspace)
    if not found:
        raise CollectError(f"{workspace} holds no exercise notebooks (01_tokenization.ipynb, "
                           "...): give the folder `make lab` made")
    target = workspace / PACKAGE
    if not force and fresh(workspace):
        return target
    read = {name: read_notebook(name, path) for name, path in found.items()}
    owner: dict[str, str] = {}   # learner's name -> the exercise that defines it (the last)
    for name, (parts, _) in read.items():
        for part in parts:
            owner.update({n: name for n in part.names})

    modules, starts, imported = {}, set(), {}
    for name, (parts, imports) in read.items():
        body = "\n\n\n".join(p.source for p in parts)
        own = {n for p in parts for n in p.names}
        header, footer, given = [], [], []
        for free in sorted(free_names(body) - own):
            if free in owner:
                other = owner[free]
                line = f"from .{other.split('_', 1)[1]} import {free}"
                (header if other < name else footer).append(line)
            elif free in imports:
                node = imports[free]
                if isinstance(node, ast.ImportFrom) and node.module.startswith("solutions"):
                    starts.add((node.module, node.names[0].name))
                    given.append((free, node.module, node.names[0].name))
                else:
                    header.append(ast.unparse(node))
            else:
                where = next(p.label() for p in parts if free in free_names(p.source))
                raise CollectError(f"{where} uses `{free}`, which no graded cell defines and "
                                   "the notebook does not import")
        for node in ast.walk(ast.parse(body)):   # imports inside the learner's code
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("solutions"):
                starts |= {(node.module, a.name) for a in node.names if a.name not in owner}
        for bound, node in imports.items():       # given names the notebook offers
            if isinstance(node, ast.ImportFrom) and node.module.startswith("solutions") \
                    and bound not in owner:
                starts.add((node.module, node.names[0].name))
                imported.setdefault(bound, (node.module, node.names[0].name))
        modules[name] = (header, given, body, footer)

    for bound, (module, name) in EXTRA.items():
        starts.add((module, name))
        imported.setdefault(bound, (module, name))
    learner = set(owner)
    keep, left_out = _given(starts, learner)
    tmp = Path(tempfile.mkdtemp(prefix=".collect-", dir=workspace))
    try:
        (tmp / "given").mkdir()
        (tmp / "given" / "__init__.py").write_text(GIVEN_INIT)
        for module, names in keep.items():
            text = _given_source(module, names, keep, learner)
            (tmp / "given" / (module.split(".", 1)[1] + ".py")).write_text(text)
        for name, (header, given, body, footer) in modules.items():
            header = header + [
                f"from .given.{_given_name(m)} import {n}" + (f" as {b}" if b != n else "")
                if n in keep.get(m, ()) else f"{b} = left_out({n!r})" for b, m, n in given]
            if any(n not in keep.get(m, ()) for _, m, n in given):
                header.insert(0, "from .given import left_out")
            body = rewrite_solutions_imports(
                body, lambda m, n: "." + owner[n].split("_", 1)[1] if n in owner
                else ".given." + _given_name(m) if n in keep.get(m, ()) else None)
            text = (f'"""Exercise {int(name[:2])}: the code of your graded cells in '
                    f'{name}.ipynb (collected; edit the notebook, not this file)."""\n\n'
                    + "\n".join(header) + "\n\n\n" + body
                    + ("\n\n" + "\n".join(footer) + "  # noqa: E402\n" if footer else ""))
            (tmp / f"{name.split('_', 1)[1]}.py").write_text(text)
        (tmp / "__init__.py").write_text(_init_source(read, owner, keep, left_out, imported))
        given_names = {name: {b: [n.module, n.names[0].name] for b, n in imports.items()
                              if isinstance(n, ast.ImportFrom)
                              and n.module.startswith("solutions")}
                       for name, (_, imports) in read.items()}
        (tmp / STAMP).write_text(json.dumps({"notebooks": digests(workspace),
                                             "imports": given_names}, indent=1))
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


GIVEN_INIT = '''"""Given code: the course modules the exercises give, with only what they reach."""


def left_out(name: str):
    """A stand-in for course code built on one of the learner's classes (a fused twin)."""
    def missing(*args, **kwargs):
        raise RuntimeError(
            f"`{name}` is course code built on one of your classes (a fused twin, say) and is "
            "not in your package; build your model with ModelConfig(fused=False)")
    missing.__name__ = name
    return missing
'''


def _init_source(read, owner, keep, left_out, imported) -> str:
    """The package's __init__: the learner's names, the given names the notebooks import, and
    the binding of the learner's names (and stand-ins for what is left out) in given code."""
    from course.authoring import bundle

    lines = ['"""Your transformer: the code you wrote in exercises 1-9, collected from your '
             'notebooks by the capstone (`python -m course capstone`, `train --mine`, '
             'Exercise 11); edit the notebooks, not these files."""',
             "", "from .given import left_out"]
    for name, (parts, _) in read.items():
        names = [n for p in parts for n in p.names if owner[n] == name]
        if names:
            lines.append(f"from .{name.split('_', 1)[1]} import {', '.join(names)}")
    exported = sorted(b for b, (m, n) in imported.items() if n in keep.get(m, ()))
    for bound in exported:
        module, name = imported[bound]
        alias = f" as {bound}" if bound != name else ""
        lines.append(f"from .given.{_given_name(module)} import {name}{alias}")
    lines.append("")
    for module, names in keep.items():
        short = _given_name(module)
        wanted = free_names_of(bundle._module_file(module).read_text(), names)
        binds = sorted(wanted & set(owner)) + sorted(wanted & left_out)
        if binds:
            lines.append(f"from .given import {short} as _{short}")
            for bind in binds:
                value = bind if bind in owner else f"left_out({bind!r})"
                lines.append(f"_{short}.{bind} = {value}")
    return "\n".join(lines) + "\n"


def free_names_of(source: str, names: set[str]) -> set[str]:
    """The global names the definitions `names` of a module's source read."""
    found = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
            found |= free_names(ast.unparse(node))
    return found


def load(package):
    """Import a collected package under a name of its own (its digest), so that packages of
    several workspaces load side by side; returns the package module."""
    package = Path(package).resolve()
    digest = hashlib.sha256((package / STAMP).read_bytes()
                            + str(package).encode()).hexdigest()[:12]
    name = f"{PACKAGE}_{digest}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, package / "__init__.py", submodule_search_locations=[str(package)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]
