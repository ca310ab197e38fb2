"""What every check shares: comparing a learner's object with an oracle, and naming mistakes.

A check builds inputs, calls the learner's object through a *probe* (a function of the object),
and compares with the same probe on an oracle (a `torch.nn`/HF component where one exists,
otherwise the reference in `solutions`). When they differ, the learner's output is compared with
every known mistake for that target: if it matches a mutant's output, the message names the
mistake.

A mistake is a source edit of the reference (`find` -> `replace`), so the same catalogue makes
mutant objects for pytest and mutant notebooks for the end-to-end grading test.
"""

from __future__ import annotations

import importlib
import inspect
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, NoReturn

COPIES = "course.copies"  # __name__ of code rebuilt from solution source (never "solutions.*")


class CheckFailed(AssertionError):
    """A graded check failed; the message is written for the learner."""


@dataclass(frozen=True)
class Mistake:
    """A realistic mistake: one edit of one solution object, and the hint a learner sees."""

    name: str
    target: str  # dotted path of the solution object, e.g. "solutions.tokenization.merge"
    find: str
    replace: str
    hint: str

    def source(self) -> str:
        """The target's source with this mistake made (the edit must match exactly once)."""
        return edit(target_source(self.target), self.find, self.replace)

    def build(self):
        """The mutant object."""
        return _exec(self.target, self.source())


def edit(source: str, find: str, replace: str) -> str:
    count = source.count(find)
    if count != 1:
        raise ValueError(f"edit must match exactly once, matched {count} times: {find!r}")
    return source.replace(find, replace)


def _resolve(target: str):
    module_name, _, attr = target.rpartition(".")
    return importlib.import_module(module_name), attr


def target_source(target: str) -> str:
    module, attr = _resolve(target)
    return textwrap.dedent(inspect.getsource(getattr(module, attr)))


def _exec(target: str, source: str):
    module, attr = _resolve(target)
    namespace = dict(vars(module))
    namespace["__name__"] = COPIES
    exec(compile(source, f"<{target}>", "exec"), namespace)
    return namespace[attr]


@cache
def copy_of(target: str):
    """The reference rebuilt from its source, as a learner who typed it would have it."""
    return _exec(target, target_source(target))


@cache
def mutant(mistake: Mistake):
    return mistake.build()


# ---------------------------------------------------------------- comparing


def same(actual: Any, expected: Any, *, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """Structural equality; tensors and floats compare with a tolerance, shape and dtype exact."""
    import torch

    if isinstance(expected, Raised) or isinstance(actual, Raised):
        return type(actual) is type(expected) and actual.kind == expected.kind
    if isinstance(expected, torch.Tensor):
        return (isinstance(actual, torch.Tensor) and actual.shape == expected.shape
                and actual.dtype == expected.dtype and actual.device == expected.device
                and bool(torch.allclose(actual.detach(), expected.detach(), rtol=rtol, atol=atol,
                                        equal_nan=True)))
    if isinstance(expected, float) and isinstance(actual, (int, float)):
        return math.isclose(actual, expected, rel_tol=rtol, abs_tol=atol)
    if isinstance(expected, dict):  # key order is ignored; compare list(d.items()) when it matters
        return (isinstance(actual, dict) and set(actual) == set(expected)
                and all(same(actual[k], expected[k], rtol=rtol, atol=atol) for k in expected))
    if isinstance(expected, (list, tuple)):
        return (isinstance(actual, (list, tuple)) and len(actual) == len(expected)
                and all(same(a, e, rtol=rtol, atol=atol) for a, e in zip(actual, expected)))
    return type(actual) is type(expected) and actual == expected


def short(value: Any, limit: int = 160) -> str:
    """A repr cut to `limit` characters; tensors show shape and dtype first."""
    if isinstance(value, Raised):
        return f"an exception ({value})"
    import torch

    if isinstance(value, torch.Tensor):
        head = f"tensor of shape {tuple(value.shape)}, {value.dtype}"
        if value.device.type == "meta":
            return head + " on meta"
        first = value.detach().flatten()[:6].tolist()
        values = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in first)
        more = ", ..." if value.numel() > 6 else ""
        return f"{head}: [{values}{more}]"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def where(actual: Any, expected: Any) -> str:
    """For two tensors of one shape that differ: where they differ most, in words."""
    import torch

    if not (isinstance(actual, torch.Tensor) and isinstance(expected, torch.Tensor)
            and actual.shape == expected.shape and actual.dtype == expected.dtype
            and actual.device == expected.device and actual.numel()
            and actual.device.type != "meta" and actual.dtype != torch.bool):
        return ""
    gap = (actual.detach() - expected.detach()).abs().nan_to_num(math.inf)
    at = tuple(int(i) for i in torch.unravel_index(gap.argmax(), gap.shape))
    return (f"\n  the largest difference is at index {at}: expected "
            f"{expected[at].item():.6g}, got {actual[at].item():.6g}")


def require_own(obj: Any, what: str) -> None:
    """Zero for a part whose answer is the reference imported from `solutions`."""
    classes = obj.__mro__ if isinstance(obj, type) else (obj,)
    if any(str(getattr(c, "__module__", "")).startswith("solutions") for c in classes):
        raise CheckFailed(f"{what} is imported from the reference `solutions` package. "
                          "Write your own implementation to earn these points.")


@dataclass(frozen=True)
class Raised:
    """What a probe raised, kept as a value so it can be compared with a mutant's."""

    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def call(obj: Any, probe: Callable[[Any], Any], what: str) -> Any:
    """Run a probe on the learner's object; an exception becomes a `Raised` value."""
    try:
        return probe(obj)
    except NotImplementedError:
        raise CheckFailed(f"{what} is not implemented yet (it raises NotImplementedError).") \
            from None
    except CheckFailed:
        raise
    except Exception as error:  # the learner's code may raise anything
        return Raised(type(error).__name__, str(error))


def diagnose(actual: Any, probe: Callable[[Any], Any], mistakes: Sequence[Mistake],
             **tolerance) -> list[Mistake]:
    """The known mistakes whose mutants give exactly the learner's output on this probe."""
    found = []
    for mistake in mistakes:
        try:
            if same(actual, call(mutant(mistake), probe, mistake.name), **tolerance):
                found.append(mistake)
        except CheckFailed:
            continue
    return found


def compare(learner: Any, probe: Callable[[Any], Any], *, oracle: Any, what: str,
            mistakes: Sequence[Mistake] = (), raises: bool = False, **tolerance) -> None:
    """Fail with a diagnostic message unless probe(learner) matches probe(oracle).

    raises=True: the case is an error case, the oracle raises and so must the learner's code
    (the same exception type).
    """
    __tracebackhide__ = True  # IPython and pytest show the learner the check, not this helper
    expected = call(oracle, probe, f"the oracle for {what}")
    if isinstance(expected, Raised) != raises:
        raise RuntimeError(f"check bug: the oracle for {what} gave {short(expected)}")
    actual = call(learner, probe, what)
    if same(actual, expected, **tolerance):
        return
    if isinstance(actual, Raised):
        message = f"{what}\n  raised {actual}."
    else:
        message = (f"{what}\n  expected {short(expected)}\n  got      {short(actual)}"
                   + where(actual, expected))
    fail(message, diagnose(actual, probe, mistakes, **tolerance))


def fail(message: str, known: Sequence[Mistake] = ()) -> NoReturn:
    """Raise CheckFailed, naming the known mistakes that explain the learner's output."""
    __tracebackhide__ = True
    if known:
        message += "\nLikely mistake: " + "\nOr: ".join(m.hint for m in known)
    raise CheckFailed(message)


def cpu_tensor_spy():
    """A context manager recording the torch functions that return a CPU tensor while active.

    Indexing a `meta` table with a CPU `arange` silently works, so on the meta device it is
    this spy, not the output's device, that catches a tensor made without `device=`.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    class CpuTensorSpy(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.made_on_cpu: list[str] = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor) and out.device.type == "cpu":
                self.made_on_cpu.append(getattr(func, "__name__", str(func)))
            return out

    return CpuTensorSpy()

