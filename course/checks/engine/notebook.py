"""An exercise's instructor notebook as code cells to run in process (recording a bundle's
tape, or grading in the test suite), and the demonstration cells that running may skip."""

from __future__ import annotations

import ast
from functools import cache


@cache
def notebook_cells(exercise: str) -> tuple:
    from course.authoring import exercises

    return tuple(exercises.instructor_notebook(exercises.TEMPLATES / f"{exercise}.md").cells)


@cache
def demonstrations(exercise: str) -> frozenset[int]:
    """The plain code cells no later graded cell needs: they bind no name a later kept cell
    reads and change no object it reads (a demonstration such as a training run to look at).
    Running in process skips them; nbgrader runs every cell."""
    cells = notebook_cells(exercise)
    needed: set[str] = set()
    skip = set()
    for index in reversed(range(len(cells))):
        cell = cells[index]
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # a magic: keep it
            continue
        bound, changed = set(), set()
        for node in tree.body:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    bound.add(sub.id)
                elif isinstance(sub, (ast.Attribute, ast.Subscript)) \
                        and isinstance(sub.ctx, ast.Store) and isinstance(sub.value, ast.Name):
                    changed.add(sub.value.id)
                elif isinstance(sub, (ast.FunctionDef, ast.ClassDef)):
                    bound.add(sub.name)
                elif isinstance(sub, ast.alias):
                    bound.add((sub.asname or sub.name).split(".")[0])
        if not cell.metadata.get("nbgrader") and not (bound | changed) & needed:
            skip.add(index)
            continue
        needed |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return frozenset(skip)
