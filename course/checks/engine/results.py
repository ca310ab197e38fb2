"""What a probe gives back, compared: values with a tolerance, exceptions by class and message,
and the learner-facing words for a result (`short`, `where`)."""

from __future__ import annotations

import linecache
import math
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COURSE = Path(__file__).resolve().parents[2]  # course/: engine frames are not learner code


class CheckFailed(AssertionError):
    """A graded check failed; the message is written for the learner."""


class NotWritten(NotImplementedError):
    """Raised in a bundle by given code that needs a part the learner has not written yet."""


@dataclass(frozen=True)
class Raised:
    """What a probe raised, kept as a value so it can be compared with a mutant's."""

    kind: str
    message: str
    line: str = ""  # where the learner's code raised: "line 7: x = q @ k"

    def __str__(self) -> str:
        where_ = f"\n  at {self.line}" if self.line else ""
        return f"{self.kind}: {self.message}{where_}"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Raised) and self.kind == other.kind
                and normalised(self.message) == normalised(other.message))

    def __hash__(self) -> int:
        return hash((self.kind, normalised(self.message)))


@dataclass(frozen=True)
class Raises:
    """The expected result of a case that must raise: an exception of this class."""

    kind: str

    def __str__(self) -> str:
        return f"a {self.kind}"


def normalised(message: str) -> str:
    """An exception message without addresses, object ids and spacing differences."""
    text = re.sub(r"0x[0-9a-fA-F]+", "0x?", message)
    text = re.sub(r"<[^<>]* at [^<>]*>", "<object>", text)
    return " ".join(text.split()).lower()


def same(actual: Any, expected: Any, *, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """Structural equality; tensors and floats compare with a tolerance, shape and dtype exact.
    Exceptions compare by class and normalised message; `Raises` by class only."""
    if isinstance(expected, Raises):
        return isinstance(actual, Raised) and actual.kind == expected.kind
    if isinstance(expected, Raised) or isinstance(actual, Raised):
        return actual == expected
    if type(expected).__module__ == "torch" and type(expected).__name__ == "Tensor":
        import torch

        return (isinstance(actual, torch.Tensor) and actual.shape == expected.shape
                and actual.dtype == expected.dtype and actual.device == expected.device
                and (actual.device.type == "meta"
                     or bool(torch.allclose(actual.detach(), expected.detach(), rtol=rtol,
                                            atol=atol, equal_nan=True))))
    if isinstance(expected, float) and isinstance(actual, (int, float)):
        return math.isclose(actual, expected, rel_tol=rtol, abs_tol=atol)
    if isinstance(expected, dict):  # key order is ignored; compare list(d.items()) when it matters
        return (isinstance(actual, dict) and set(actual) == set(expected)
                and all(same(actual[k], expected[k], rtol=rtol, atol=atol) for k in expected))
    if isinstance(expected, (list, tuple)):
        return (isinstance(actual, (list, tuple)) and len(actual) == len(expected)
                and all(same(a, e, rtol=rtol, atol=atol) for a, e in zip(actual, expected)))
    return type(actual) is type(expected) and actual == expected


def close(got: Any, want: Any, *, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Same shape and values within tolerance, whatever the dtypes (for effect predicates)."""
    import torch

    return (isinstance(got, torch.Tensor) and got.shape == want.shape
            and bool(torch.allclose(got.detach().double(), want.detach().double(), rtol=rtol,
                                    atol=atol)))


def short(value: Any, limit: int = 160) -> str:
    """A repr cut to `limit` characters; tensors show shape and dtype first."""
    if isinstance(value, (Raised, Raises)):
        return f"an exception ({value})" if isinstance(value, Raised) else str(value)
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


def where(actual: Any, expected: Any, *, rtol: float = 1e-5, atol: float = 1e-6) -> str:
    """For two tensors of one shape that differ, in words: a dtype that differs, then the
    first element whose finiteness differs (-inf where a number was expected, or the other
    way) or else the largest difference for the tolerance, each number with the digits that
    tell them apart."""
    import torch

    if not (isinstance(actual, torch.Tensor) and isinstance(expected, torch.Tensor)
            and actual.shape == expected.shape and actual.device == expected.device
            and actual.numel() and actual.device.type != "meta"):
        return ""
    lines = []
    if actual.dtype != expected.dtype:
        lines.append(f"you returned {_dtype(actual)}; expected {_dtype(expected)}")
    got, want = actual.detach(), expected.detach()
    try:
        got = got.to(want.dtype)
    except (RuntimeError, TypeError):
        return "".join("\n  " + line for line in lines)
    if not (want.is_floating_point() or want.is_complex()):
        differs = got != want
        at = _first(differs)
        what = "the first difference"
    else:
        finite = torch.isfinite(got), torch.isfinite(want)
        both_nan = got.isnan() & want.isnan()
        at = _first((finite[0] != finite[1])
                    | (~finite[0] & ~finite[1] & (got != want) & ~both_nan))
        what = "the first element whose finiteness differs"
        if at is None:
            ok = finite[0] & finite[1]
            tiny = torch.finfo(want.real.dtype).tiny
            gap = torch.where(ok, (got - want).abs() / (atol + rtol * want.abs()).clamp_min(tiny),
                              torch.zeros_like(got.real)).real  # in tolerances
            if bool((gap > 1).any()):
                at = tuple(int(i) for i in torch.unravel_index(gap.argmax(), gap.shape))
                what = "the largest difference"
    if at is not None:
        e, g = apart(want[at].item(), got[at].item())
        lines.append(f"{what} is at index {at}: expected {e}, got {g}")
    elif lines:
        lines.append("(the values agree within the tolerance)")
    return "".join("\n  " + line for line in lines)


def _dtype(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.")


def _first(flags: Any) -> tuple[int, ...] | None:
    """The index of the first True of a bool tensor, or None."""
    import torch

    hits = torch.nonzero(flags.reshape(-1))
    if not len(hits):
        return None
    return tuple(int(i) for i in torch.unravel_index(hits[0, 0], flags.shape))


def apart(expected: Any, got: Any) -> tuple[str, str]:
    """Two numbers written with as many significant digits (6 at least) as it takes to tell
    them apart: never "expected -0.132286, got -0.132286"."""
    if not (isinstance(expected, float) or isinstance(got, float)):
        return str(expected), str(got)
    for digits in range(6, 18):
        e, g = f"{expected:.{digits}g}", f"{got:.{digits}g}"
        if e != g:
            break
    return e, g


def _from_solutions(obj: Any) -> bool:
    return str(getattr(obj, "__module__", "")).startswith("solutions")


def require_own(obj: Any, what: str) -> None:
    """Zero for a part whose answer is the reference imported from `solutions`: the object, a
    subclass of it, or a class holding its methods. A learner's class may derive from a class
    the exercise gives (GroupedQueryAttention from MultiHeadAttention)."""
    if isinstance(obj, type):
        mine = [c for c in obj.__mro__ if not _from_solutions(c)]
        imported = any(_from_solutions(c) and c.__name__ == what for c in obj.__mro__) \
            or any(_from_solutions(v) for c in mine for v in vars(c).values())
    else:
        imported = _from_solutions(obj)
    if imported:
        raise CheckFailed(f"{what} is imported from the reference `solutions` package. "
                          "Write your own implementation to earn these points.")


def learner_line(error: BaseException) -> str:
    """'line N: code' of the deepest frame of the learner's own code in the traceback."""
    found = ""
    for frame in traceback.extract_tb(error.__traceback__):
        path = frame.filename
        if path.startswith(("<solutions", "<frozen")) or path.startswith(sys.prefix) \
                or path.startswith(sys.base_prefix) or path.startswith(str(COURSE)) \
                or "site-packages" in path:
            continue
        code = (frame.line or linecache.getline(path, frame.lineno)).strip()
        found = f"line {frame.lineno}: {code}" if code else f"line {frame.lineno}"
    return found


def raised(error: BaseException) -> Raised:
    """The learner's exception as a value, with the line of their code that raised it."""
    return Raised(type(error).__name__, str(error), learner_line(error))


class Staged:
    """A probe in two stages: `first` runs the learner's code, `then` finishes on its result
    with what only the checks hold (a reference); the judge sends only `first` to the worker."""

    def __init__(self, first: Callable[[Any], Any], then: Callable[[Any], Any]):
        self.first, self.then = first, then

    def __call__(self, obj: Any) -> Any:
        return self.then(self.first(obj))


def call(obj: Any, probe: Callable[[Any], Any], what: str) -> Any:
    """Run a probe on an object; an exception becomes a `Raised` value. (The judge routes this
    call to its worker when `obj` stands for the learner's object there.)"""
    try:
        return probe(obj)
    except NotWritten:
        raise
    except NotImplementedError:
        raise CheckFailed(f"{what} is not implemented yet (it raises NotImplementedError).") \
            from None
    except CheckFailed:
        raise
    except Exception as error:  # the learner's code may raise anything
        return raised(error)


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
