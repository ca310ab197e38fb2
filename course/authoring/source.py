"""Solution source, read and rewritten: the one module that knows where a definition's lines
are, which bodies a learner writes, and how a definition is replaced, dropped or rebuilt.

The builder, the judge's runtime, the student bundle and the checks all go through it.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import re
import textwrap
import tokenize
from collections.abc import Callable, Iterator

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"  # nbgrader's solution region
RELEASED = "raise NotImplementedError()"  # what nbgrader leaves of a region the learner writes
COPIES = "course.copies"  # __name__ of code rebuilt from solution source (never "solutions.*")
DEFINITION = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


# ---------------------------------------------------------------- reading


def resolve(dotted: str):
    """'solutions.tokenization.merge' -> the object (only the solutions package is read)."""
    module_name, _, attr = dotted.rpartition(".")
    if not module_name.startswith("solutions"):
        raise ValueError(f"{dotted}: parts may only copy code from the solutions package")
    obj = importlib.import_module(module_name)
    for piece in attr.split("."):
        obj = getattr(obj, piece)
    return obj


def source_of(dotted: str) -> str:
    """The source of a solution object, dedented: 'solutions.attention.MultiHeadAttention'."""
    return textwrap.dedent(inspect.getsource(resolve(dotted)))


def rebuild(dotted: str, source: str, **names):
    """Run `source` in a private copy of the solution module's namespace (plus `names`) and
    return the object it defines under the target's name; the module itself is untouched."""
    module_name, _, attr = dotted.rpartition(".")
    namespace = dict(vars(importlib.import_module(module_name)))
    namespace.update(names)
    namespace["__name__"] = COPIES
    exec(compile(source, f"<{dotted}>", "exec"), namespace)
    return namespace[attr]


def top_level(source: str) -> dict[str, ast.stmt]:
    """Each top-level def/class of `source` by name (the last one, if a name is defined twice)."""
    return {node.name: node for node in ast.parse(source).body if isinstance(node, DEFINITION)}


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.stmt]]:
    """(qualified name, node) of every function and method, e.g. ('Cls.forward', node)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, DEFINITION):
            name = prefix + node.name
            if not isinstance(node, ast.ClassDef):
                yield name, node
            yield from functions(node, name + ".")


def lines(node: ast.stmt) -> tuple[int, int]:
    """(first, last) line of a definition, 1-based, its decorators included."""
    return min([node.lineno] + [d.lineno for d in node.decorator_list]), node.end_lineno


def definitions(source: str) -> dict[str, str]:
    """Top-level def/class name -> its text (decorators included)."""
    rows = source.splitlines()
    found = {}
    for name, node in top_level(source).items():
        first, last = lines(node)
        found[name] = "\n".join(rows[first - 1:last])
    return found


def names_used(source: str) -> set[str]:
    """Every name `source` reads or binds (empty when it is not Python, e.g. a magic)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


# ---------------------------------------------------------------- rewriting


def rewrite(source: str, new: Callable[[ast.stmt], str | None]) -> str:
    """`source` with each top-level definition replaced by `new(node)` (text, "" to drop it),
    or kept where `new` gives None."""
    rows = source.splitlines(keepends=True)
    nodes = [n for n in ast.parse(source).body if isinstance(n, DEFINITION)]
    for node in reversed(nodes):
        text = new(node)
        if text is not None:
            first, last = lines(node)
            rows[first - 1:last] = [text]
    return "".join(rows)


def replace_definition(source: str, qualname: str, code: str) -> str:
    """`source` with the def/class `qualname` ('merge', or 'Cls.method' for a method the learner
    writes inside a given class), decorators included, replaced by `code`."""
    body, node = ast.parse(source).body, None
    for piece in qualname.split("."):
        node = next((n for n in body if isinstance(n, DEFINITION) and n.name == piece), None)
        if node is None:
            raise ValueError(f"no definition of {qualname!r} in this cell")
        body = node.body
    first, last = lines(node)
    rows = source.splitlines()
    pad = " " * node.col_offset
    rows[first - 1:last] = [pad + line if line else line
                            for line in textwrap.dedent(code).strip("\n").splitlines()]
    return "\n".join(rows)


# ---------------------------------------------------------------- what the learner writes


def is_guard(node: ast.stmt) -> bool:
    """An input check: a call such as `self.check_inputs(x)` / `require_str(...)` whose name
    starts with check or require, or an `if` (no else) whose body only raises or makes such
    calls."""
    if isinstance(node, ast.If):
        return not node.orelse and all(isinstance(n, ast.Raise) or is_guard(n)
                                       for n in node.body)
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name.lstrip("_").startswith(("check", "require"))
    return False


def body_spans(tree: ast.AST, write: list[str] | None = None) -> list[tuple[int, int, int]]:
    """(first line, last line, indent) of each function body after its docstring and its
    leading input checks, which stay given (1-based); only the functions named in `write`
    (qualified: 'Cls.method') when it is given."""
    spans = []
    for name, node in functions(tree):
        if write is None or name in write:
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                body = body[1:]
            while body and is_guard(body[0]):
                body = body[1:]
            if body:
                spans.append((body[0].lineno, body[-1].end_lineno, body[0].col_offset))
    return spans


def mark_solution(source: str, write: list[str] | None = None) -> str:
    """Wrap each function body (only those named in `write`, if given) in solution markers."""
    if BEGIN in source:
        raise ValueError("solution code carries nbgrader markers: which bodies a learner "
                         "writes is the template's choice (:write:)")
    rows = source.splitlines()
    tree = ast.parse(source)
    if write is not None:
        unknown = set(write) - {name for name, _ in functions(tree)}
        if unknown:
            raise ValueError(f":write: names no function of the copied code: {sorted(unknown)}")
    spans = body_spans(tree, write)
    if not spans:
        raise ValueError("nothing to hide: the copied code has no function body")
    # Nested functions sit inside an outer body: wrap only the outermost bodies.
    outer = [s for s in spans if not any(o != s and o[0] <= s[0] and s[1] <= o[1] for o in spans)]
    for first, last, indent in sorted(outer, reverse=True):
        pad = " " * indent
        rows[last:last] = [pad + END]
        rows[first - 1:first - 1] = [pad + BEGIN]
    return "\n".join(rows)


def released(source: str) -> str:
    """Marked source with each solution region left as nbgrader releases it."""
    return re.sub(rf"^( *){BEGIN}\n.*?^ *{END}$", rf"\1{RELEASED}", source, flags=re.M | re.S)


def unwritten(source: str) -> list[str]:
    """Qualified names of the functions in released `source` that the learner has yet to write."""
    return [name for name, node in functions(ast.parse(source))
            if RELEASED in ast.get_source_segment(source, node)]


# ---------------------------------------------------------------- mistakes


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


def _module_of(target: str) -> str:
    """'solutions.attention.MultiHeadAttention.forward' -> 'solutions.attention'."""
    return ".".join(target.split(".")[:2])


def made(source: str, *, mistake=None, slip=None, blank: bool = False) -> str:
    """A solution cell's source with one catalogued mistake or one slip made (where it lands
    in this cell), or every region the learner writes left as nbgrader releases it (`blank`)."""
    if mistake is not None and mistake.find in code_only(source):
        source = edit(code_only(source), mistake.find, mistake.replace)
    if slip is not None:
        qualname = slip.target.removeprefix(_module_of(slip.target) + ".")
        if re.search(rf"^(def|class) {qualname.split('.')[0]}\b", source, re.M):
            source = replace_definition(source, qualname, slip.code)
    if blank:
        source = released(source)
    return source
