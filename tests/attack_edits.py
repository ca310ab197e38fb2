"""Edits that build the hostile notebooks of tests/attack_cases.py from an exercise's release
(stubs) or source (instructor's answers) notebook, and the snippets several attacks share."""

from __future__ import annotations

import grading_cases as cases
import nbformat

BPE, ATTENTION = "01_tokenization", "03_attention"
NORM, ENCODER, TRAINING = "06_normalization", "07_encoder", "09_training"


def solution(nb, grade_id: str, code: str):
    """`nb` with the solution cell `grade_id` holding `code`."""
    nb = nbformat.from_dict(nb)
    (cell,) = [c for c in nb.cells if cases.meta(c).get("grade_id") == grade_id]
    cell.source = code
    return nb


def instructor(name: str, grade_id: str) -> str:
    (cell,) = [c for c in cases.source_nb(name).cells
               if cases.meta(c).get("grade_id") == grade_id]
    return cell.source


def appended(nb, code: str):
    return cases.with_cell(nb, code, at=len(nb.cells))


def moved_first(nb, grade_ids: tuple[str, ...]):
    """`nb` with the cells of `grade_ids` (in this order) moved just below the imports."""
    nb = nbformat.from_dict(nb)
    cells = [c for g in grade_ids for c in nb.cells if cases.meta(c).get("grade_id") == g]
    rest = [c for c in nb.cells if c not in cells]
    first = next(i for i, c in enumerate(rest) if c.cell_type == "code")  # the imports
    nb.cells = [*rest[:first + 1], *cells, *rest[first + 1:]]
    return nb


STASH = "_stash = globals().get('_stash', {})\n"


def lent_from_stash(*names: str) -> str:
    """Definitions that answer `names` with the references a harvest kept."""
    return STASH + "\n".join(f"def {n}(*args, **kwargs):\n    return _stash[{n!r}](*args, "
                             f"**kwargs)\n" for n in names)


def stash_on_call(source: str, hook: str, names: tuple[str, ...]) -> str:
    """`source` (a solution cell) whose method or function `hook` first keeps `names` from
    the learner's namespace (where a check lends references) in `_stash`."""
    keep = f"_stash.update({{n: globals()[n] for n in {names!r} if n in globals()}})"
    head, _, tail = source.partition(f"def {hook}(")
    signature, _, body = tail.partition(":\n")
    indent = body[:len(body) - len(body.lstrip(" "))]
    if body.lstrip().startswith('"""'):  # after the docstring
        doc_end = body.index('"""', body.index('"""') + 3) + 4
        signature, body = signature + ":\n" + body[:doc_end], body[doc_end:]
        return f"{STASH}{head}def {hook}({signature}{indent}{keep}\n{body}"
    return f"{STASH}{head}def {hook}({signature}:\n{indent}{keep}\n{body}"


FROM_GRADER = '''
import sys

def _from_grader():
    """Called by the grader's probe, not by one of the notebook's own cells."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "run_code":  # IPython running a cell
            return False
        frame = frame.f_back
    return True
'''

PRINT_SEEN = 'print("OWN" + "-OUTPUT", 6 * 7)\nif _seen:\n    print("HIDDEN" + "-INPUT", _seen)\n'


HUNT = '''
import gc, sys
_busy = set()

def _hunt(name, mine, *args, **kwargs):
    """Call any other object named `name` found up the stack or anywhere in memory."""
    if name in _busy:
        raise NotImplementedError
    _busy.add(name)
    try:
        pool, frame = [], sys._getframe(1)
        while frame is not None:
            pool += list(frame.f_locals.values())
            frame = frame.f_back
        for obj in pool + gc.get_objects():
            if callable(obj) and getattr(obj, "__name__", "") == name and obj is not mine():
                try:
                    return obj(*args, **kwargs)
                except Exception:
                    continue
        raise NotImplementedError
    finally:
        _busy.discard(name)
'''
