"""A graded object in the worker's copy of `solutions`, where its reference code is not.

The judge's runtime replaces each graded definition by one line that calls `stand_in` (this
file travels with the runtime as `course_stand_in`, and imports nothing from the course).
Once every test cell of its part has been judged, the stand-in is the reference (sent then by
the judge), so a given helper that calls it works as in-process and a slip costs its own part
only; before that it stands for the learner's own version, and refuses when the learner has
none but this stand-in (the reference imported). No reference code of a part still to be
judged ever reaches the worker.
"""

from __future__ import annotations

import builtins

MESSAGE = ("{name} is imported from the reference `solutions` package, which is not available "
           "while grading. Write your own implementation to earn these points.")


def own(name: str):
    """What `name` is now: its reference once judged, else the learner's own version."""
    judged = getattr(builtins, "__course_reference__", {}).get(name)
    if judged is not None:  # its part is judged: the reference, as in-process
        return judged
    try:
        found = builtins.__course_learner__(name)
    except Exception:  # noqa: BLE001  (no learner namespace, or no such name in it)
        found = None
    if found is None or getattr(found, "__course_stub__", False):
        raise RuntimeError(MESSAGE.format(name=name))
    return found


def judged(name: str):
    """The reference of a judged part, lent to a check's probe (refused before it is judged:
    the judge then waits for that part)."""
    found = getattr(builtins, "__course_reference__", {}).get(name)
    if found is None:
        raise RuntimeError(MESSAGE.format(name=name))
    return found


def stand_in(module: str, name: str, *, is_class: bool):
    """The stand-in for the graded function or class `name` of the solutions module `module`
    (found there by pickling, as the reference would be)."""
    if not is_class:
        def function(*args, **kwargs):
            return own(name)(*args, **kwargs)

        function.__name__ = function.__qualname__ = name
        function.__module__ = module
        function.__course_stub__ = True
        return function

    class StandIn(type):  # calls, class attributes, isinstance and unpickled instances
        def __call__(cls, *args, **kwargs):
            if "__course_stub__" not in vars(cls):
                return super().__call__(*args, **kwargs)
            return own(name)(*args, **kwargs)

        def __getattr__(cls, attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return getattr(own(name), attr)

        def __instancecheck__(cls, obj):
            try:
                return isinstance(obj, own(name))
            except RuntimeError:
                return False

        def __subclasscheck__(cls, sub):
            try:
                return issubclass(sub, own(name))
            except RuntimeError:
                return False

    def __new__(cls, *args, **kwargs):  # only unpickling calls it
        learners = own(name)
        return learners.__new__(learners)

    return StandIn(name, (), {"__course_stub__": True, "__new__": __new__,
                              "__module__": module, "__qualname__": name})
