"""The registry: every check of a solution target, with its part and the earlier parts it
calls, and the learner's namespace a check looks those names up in."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from course.checks.engine.catalogue import Mistake, Through


@dataclass
class Spec:
    target: str
    part: int
    uses: tuple[str, ...]
    check: Callable
    module: str

    @property
    def name(self) -> str:
        return self.target.rpartition(".")[2]

    @property
    def id(self) -> str:
        """The check's name on a tape: 'course.checks.attention:check_mha_self'."""
        return f"{self.module}:{self.check.__qualname__}"

    def mistakes(self) -> list[Mistake | Through]:
        """The target's own mistakes, then those of the helpers it calls."""
        catalogue = getattr(importlib.import_module(self.module), "MISTAKES", [])
        own = [m for m in catalogue if m.target == self.target]
        through = [Through(m, self.target) for u in self.uses for m in catalogue if m.target == u]
        return own + through


REGISTRY: dict[str, list[Spec]] = {}  # dotted target -> its checks, in definition order


def register(spec: Spec) -> None:
    specs = REGISTRY.setdefault(spec.target, [])
    specs[:] = [s for s in specs if s.check.__qualname__ != spec.check.__qualname__] + [spec]


def topic_module(module: str) -> str:
    """The checks module a check of `module` registers under: its topic's package where the
    topic's checks are split over modules ('course.checks.training.fit' -> its package)."""
    parts = module.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["course", "checks"] else module


def load_all() -> None:
    """Import every checks module and package of `course.checks` (each registers its checks)."""
    import course.checks

    for info in pkgutil.iter_modules(course.checks.__path__):
        importlib.import_module(f"course.checks.{info.name}")


def checks_for(target: str) -> list[Callable]:
    """Every registered check of a target (whichever checks module registers it)."""
    if target not in REGISTRY:
        load_all()
    return [s.check for s in REGISTRY.get(target, [])]


def run_checks(target: str, obj: Any, hidden: bool = False) -> None:
    for run in checks_for(target):
        run(obj, hidden)


def part_of(target: str) -> int | str:
    """The part that grades `target` ('?' for a target no check grades)."""
    return REGISTRY[target][0].part if REGISTRY.get(target) else "?"


def namespace_of(obj: Any) -> dict | None:
    """The globals the learner's object looks names up in (a notebook's namespace). A decorated
    function (`@torch.no_grad()`, `functools.wraps`) is unwrapped first: the wrapper's globals
    are the decorator's module, not the notebook."""
    if inspect.isfunction(obj):
        return inspect.unwrap(obj).__globals__
    for value in vars(obj).values() if isinstance(obj, type) else ():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            value = value.fget
        if inspect.isfunction(value):
            return inspect.unwrap(value).__globals__
    return None


def names_read(obj: Any) -> set[str]:
    """The global names the code of a function, or of a class's methods, reads."""
    functions = [obj] if inspect.isfunction(obj) else [
        v.fget if isinstance(v, property) else getattr(v, "__func__", v)
        for v in vars(obj).values()] if isinstance(obj, type) else []
    names, codes = set(), [f.__code__ for f in functions if inspect.isfunction(f)]
    while codes:
        code = codes.pop()
        names |= set(code.co_names)
        codes += [c for c in code.co_consts if inspect.iscode(c)]
    return names
