"""Before the capstone trains: each part of the learner's package that it runs passes its own
exercise's visible checks, so a wrong part is named ("your LayerNorm from exercise 6, part 2
(layer_norm_module), fails: ...") instead of showing up as a loss that does not go down.

Every written part is checked, first those the capstone reaches (from :data:`ROOTS`, the
model, sampling and the training loop, every name of the learner's or of the given code that
their code reads), then the others, in exercise order. A part the capstone reaches that is
still unwritten is named the same way; one it does not need is only reported. A part's verdict is remembered
by its code (in the process and in ``mytransformer/CHECKED.json``), so a run after fixing one
part checks that part alone.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from course.capstone.collect import Part, notebook_imports, read_parts

ROOTS = ("GPT", "generate", "fit", "train_step", "lr_at", "param_groups", "estimate_loss",
         "save_checkpoint", "load_checkpoint")
CHECKED = "CHECKED.json"
_PASSED: set[str] = set()   # digests of parts that passed, in this process


class PartFails(Exception):
    """One of the learner's parts is unwritten or fails its exercise's checks."""

    def __init__(self, part: Part, name: str, message: str):
        super().__init__(message)
        self.part, self.name = part, name


def _read_names(obj) -> set[str]:
    """The global names the code of a function, or of a class's methods, reads (not its
    classmethods: alternative constructors such as GPT.from_hf, which training never calls)."""
    functions = [obj] if inspect.isfunction(obj) else [
        getattr(v, "fget", None) or v for v in vars(obj).values()
        if not isinstance(v, classmethod)] if isinstance(obj, type) else []
    functions = [getattr(f, "__func__", f) for f in functions]
    names, codes = set(), [inspect.unwrap(f).__code__ for f in functions
                           if inspect.isfunction(f)]
    while codes:
        code = codes.pop()
        names |= set(code.co_names)
        codes += [c for c in code.co_consts if inspect.iscode(c)]
    return names


def reached(package, parts: list[Part], roots=ROOTS) -> list[Part]:
    """The learner's parts the capstone runs, in exercise order."""
    mine = {n: p for p in parts for n in p.names}
    given = {}
    for module in vars(package.given).values():  # the given modules' definitions
        if inspect.ismodule(module):
            given.update({k: v for k, v in vars(module).items()
                          if inspect.isfunction(v) or inspect.isclass(v)})
    seen, todo = set(), [r for r in roots if r in mine]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        obj = getattr(package, name, None) if name in mine else given.get(name)
        if obj is not None:
            todo += [n for n in _read_names(obj) if n in mine or n in given]
    return [p for p in parts if any(n in seen for n in p.names)]


def _digest(part: Part) -> str:
    return hashlib.sha256(f"{part.exercise}\0{part.part}\0{part.source}".encode()).hexdigest()


def _checks(part: Part, name: str) -> list:
    """The registered checks of the solution object `name` in the part's exercise."""
    from course.checks import core

    module = f"course.checks.{part.topic}"
    importlib.import_module(module)
    return [s for target, specs in core.REGISTRY.items() if target.rpartition(".")[2] == name
            for s in specs if s.module == module]


@contextmanager
def as_in_notebook(package, part: Part) -> Iterator[None]:
    """While active, the names the part's module imports are what its notebook imports (the
    course's), so its checks judge this part alone, as they do in the exercise."""
    module = vars(package)[part.topic]
    imports = notebook_imports(Path(package.__file__).parent)[part.exercise]
    saved = {}
    for bound, (source, name) in imports.items():
        if bound in vars(module):
            saved[bound] = vars(module)[bound]
            setattr(module, bound, getattr(importlib.import_module(source), name))
    try:
        yield
    finally:
        for bound, value in saved.items():
            setattr(module, bound, value)


def check_part(package, part: Part) -> None:
    """Run the visible checks of each object the part defines; PartFails names the first."""
    from course.checks.core import CheckFailed

    for name in part.names:
        for spec in _checks(part, name):
            try:
                with as_in_notebook(package, part), redirect_stdout(io.StringIO()):
                    spec.check(getattr(package, name))
            except CheckFailed as error:
                raise PartFails(part, name, f"your {name} from {part.label()} fails: "
                                            f"{error}") from None


def preflight(package, parts: list[Part] | None = None, folder=None) -> list[Part]:
    """Check the learner's parts: PartFails for the first one the capstone runs that is not
    written yet, or the first written one that fails its checks (those the capstone runs
    first, then the others, each in exercise order). Returns the parts not written yet that
    the capstone does not need (to be reported). `folder`: the package folder, where verdicts
    are remembered."""
    folder = Path(folder or Path(package.__file__).parent)
    parts = read_parts(folder.parent) if parts is None else parts
    used = reached(package, parts)
    for part in used:
        if not part.written:
            raise PartFails(part, part.names[0],
                            f"your {', '.join(part.names)} from {part.label()} is not written "
                            "yet (it still raises NotImplementedError): write it in the "
                            "notebook, run its tests, then collect again")
    record = folder / CHECKED
    if record.exists():
        _PASSED.update(json.loads(record.read_text()))
    for part in used + [p for p in parts if p not in used and p.written]:
        if _digest(part) not in _PASSED:
            check_part(package, part)
            _PASSED.add(_digest(part))
            record.write_text(json.dumps(sorted(_PASSED & {_digest(p) for p in parts})))
    return [p for p in parts if not p.written]
