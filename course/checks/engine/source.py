"""Solution source, rewritten: the reference's code with comments removed, one catalogued edit
or one whole wrong definition made, and rebuilt in a private copy of its module."""

from __future__ import annotations

import importlib
import inspect
import io
import re
import textwrap
import tokenize
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from course.checks.engine.catalogue import Mistake, Slip

COPIES = "course.copies"  # __name__ of code rebuilt from solution source (never "solutions.*")


def edit(source: str, find: str, replace: str) -> str:
    count = source.count(find)
    if count != 1:
        raise ValueError(f"edit must match exactly once, matched {count} times: {find!r}")
    return source.replace(find, replace)


def code_only(source: str) -> str:
    """`source` with every comment removed (line structure and strings kept)."""
    lines = source.splitlines(keepends=True)
    for tok in reversed(list(tokenize.generate_tokens(io.StringIO(source).readline))):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            line = lines[row - 1]
            lines[row - 1] = line[:col].rstrip() + ("\n" if line.endswith("\n") else "")
    return "".join(lines)


def _resolve(target: str):
    module_name, _, attr = target.rpartition(".")
    return importlib.import_module(module_name), attr


def target_source(target: str) -> str:
    module, attr = _resolve(target)
    return textwrap.dedent(inspect.getsource(getattr(module, attr)))


def _exec(target: str, source: str, **names):
    """Run `source` in a private copy of the target module's namespace (plus `names`)."""
    module, attr = _resolve(target)
    namespace = dict(vars(module))
    namespace.update(names)
    namespace["__name__"] = COPIES
    exec(compile(source, f"<{target}>", "exec"), namespace)
    return namespace[attr]


def replace_definition(source: str, qualname: str, code: str) -> str:
    """`source` with the def/class `qualname` ('merge', or 'Cls.method' for a method the learner
    writes inside a given class), decorators included, replaced by `code`."""
    import ast

    body, node = ast.parse(source).body, None
    for piece in qualname.split("."):
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                     and n.name == piece), None)
        if node is None:
            raise ValueError(f"no definition of {qualname!r} in this cell")
        body = node.body
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    lines = source.splitlines()
    pad = " " * node.col_offset
    new = [pad + line if line else line
           for line in textwrap.dedent(code).strip("\n").splitlines()]
    lines[first - 1:node.end_lineno] = new
    return "\n".join(lines)


def _module_of(target: str) -> str:
    """'solutions.attention.MultiHeadAttention.forward' -> 'solutions.attention'."""
    return ".".join(target.split(".")[:2])


def made(source: str, *, mistake: Mistake | None = None, slip: Slip | None = None,
         blank: bool = False) -> str:
    """A solution cell's source with one catalogued mistake or one slip made (where it lands
    in this cell), or every region the learner writes left as nbgrader releases it (`blank`)."""
    if mistake is not None and mistake.find in code_only(source):
        source = edit(code_only(source), mistake.find, mistake.replace)
    if slip is not None:
        qualname = slip.target.removeprefix(_module_of(slip.target) + ".")
        if re.search(rf"^(def|class) {qualname.split('.')[0]}\b", source, re.M):
            source = replace_definition(source, qualname, slip.code)
    if blank:
        source = re.sub(r"^( *)### BEGIN SOLUTION\n.*?^ *### END SOLUTION$",
                        r"\1raise NotImplementedError()", source, flags=re.M | re.S)
    return source
