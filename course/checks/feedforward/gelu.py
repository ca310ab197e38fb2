"""Parts 1 and 2: `gelu` and `gelu_tanh`, checked against ``torch.nn.functional.gelu``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course.checks import oracles
from course.checks.core import check, compare
from course.checks.feedforward.mistakes import T


def _grid(dtype: torch.dtype) -> torch.Tensor:
    """Points where the exact and the tanh GELU differ most, and around zero."""
    return torch.linspace(-5.0, 5.0, 41, dtype=torch.float64).to(dtype)


def _gelu_cases(hidden: bool) -> list[tuple[str, torch.Tensor]]:
    f32, f64 = torch.float32, torch.float64
    cases = [("a grid from -5 to 5", _grid(f32)),
             ("(2, 3, 4) random, float32", oracles.randn(2, 3, 4, seed=1, scale=2.0))]
    if hidden:
        cases += [("a grid from -5 to 5, float64", _grid(f64)),
                  ("(1000,) random, float64", oracles.randn(1000, seed=2, dtype=f64, scale=3.0)),
                  ("(1, 1, 3072) activations", oracles.randn(1, 1, 3072, seed=3, scale=4.0)),
                  ("a 0-d tensor, float64", torch.tensor(-0.75, dtype=f64))]
    return cases


def _check_activation(fn, name: str, oracle, hidden: bool) -> None:
    for label, x in _gelu_cases(hidden):
        compare(fn, lambda f, x=x: f(x.clone()), oracle(x),
                what=f"{name}(x) on {label}", **oracles.tol(x.dtype))


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="none")


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


@check(T + "gelu", part=1)
def check_gelu(gelu, hidden: bool = False) -> None:
    """gelu(x) equals F.gelu(x) elementwise, any shape, the dtype of x."""
    _check_activation(gelu, "gelu", _gelu, hidden)


@check(T + "gelu", part=1)
def check_gelu_extremes(gelu, hidden: bool = False) -> None:
    """Large inputs: GELU(x) -> x for large x, -> 0 for very negative x, never NaN."""
    dtypes = [torch.float32] + ([torch.float64] if hidden else [])
    for dtype in dtypes:
        x = torch.tensor([-1e4, -60.0, -10.0, -0.75, 0.0, 10.0, 60.0, 1e4], dtype=dtype)
        compare(gelu, lambda f, x=x: f(x.clone()), _gelu(x),
                what=f"gelu(x) on very large and small inputs, {dtype}", **oracles.tol(dtype))


@check(T + "gelu_tanh", part=2)
def check_gelu_tanh(gelu_tanh, hidden: bool = False) -> None:
    """gelu_tanh(x) equals F.gelu(x, approximate="tanh") elementwise."""
    _check_activation(gelu_tanh, "gelu_tanh", _gelu_tanh, hidden)
