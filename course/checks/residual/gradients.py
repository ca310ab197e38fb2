"""Part 3: `gradient_norms`, checked against a plain backward pass over ``.grad``."""

from __future__ import annotations

import torch
from torch import nn

from course.checks import oracles
from course.checks.core import Raises, check, compare
from course.checks.residual.mistakes import M
from course.checks.residual.shared import _fmt

# ---------------------------------------------------------------- Part 3: gradient norms


class _Unused(nn.Module):
    """tanh(Linear(x)) with one parameter the output does not depend on."""

    def __init__(self, C: int):
        super().__init__()
        self.lin = nn.Linear(C, C)
        self.spare = nn.Parameter(torch.ones(3))

    def forward(self, x):
        return torch.tanh(self.lin(x))


def _layers(kind: str, depth: int, C: int, dtype: torch.dtype, seed: int) -> list[nn.Module]:
    torch.manual_seed(seed)
    if kind == "tanh":
        layers = [nn.Sequential(nn.Linear(C, C), nn.Tanh()) for _ in range(depth)]
    elif kind == "mlp":
        layers = [nn.Sequential(nn.Linear(C, 2 * C), nn.GELU(), nn.Linear(2 * C, C))
                  for _ in range(depth)]
    else:  # "mixed": a layer without parameters and one with an unused parameter
        layers = [nn.Linear(C, C), nn.Tanh(), _Unused(C), nn.Linear(C, C, bias=False)]
    return [f.to(dtype) for f in layers]


def _oracle_norms(layers: list[nn.Module], x, grad, skip: bool) -> list[float]:
    """A plain backward pass; each layer's norm from the .grad of its parameters."""
    h = x
    for f in layers:
        h = h + f(h) if skip else f(h)
    h.backward(grad)
    norms = []
    for f in layers:
        squares = sum(float(p.grad.double().pow(2).sum()) for p in f.parameters()
                      if p.grad is not None)
        norms.append(squares ** 0.5)
    return norms


def _check_norms(gradient_norms, skip: bool, hidden: bool, seed: int) -> None:
    f32, f64 = torch.float32, torch.float64
    cases = [("3 Linear+Tanh layers", "tanh", 3, (16, 8), f64),
             ("4 two-layer MLPs", "mlp", 4, (10, 6), f64),
             ("grad of the wrong shape", "tanh", 2, (4, 8), f64)]
    if hidden:
        cases += [("12 Linear+Tanh layers, float32", "tanh", 12, (32, 16), f32),
                  ("a layer without parameters and one with an unused parameter", "mixed",
                   4, (5, 6), f64),
                  ("a batch of one, (B, T, C) input", "mlp", 2, (1, 3, 4), f64)]
    for i, (label, kind, depth, shape, dtype) in enumerate(cases):
        C = shape[-1]
        x = oracles.randn(*shape, seed=seed + 2 * i, dtype=dtype)
        grad = oracles.randn(*shape, seed=seed + 2 * i + 1, dtype=dtype)
        what = f"gradient_norms({label}, x {_fmt(shape)}, {dtype}, skip={skip})"
        if label.startswith("grad of the wrong"):
            compare(gradient_norms,
                    lambda f, kind=kind, depth=depth, C=C, dtype=dtype, x=x: f(
                        _layers(kind, depth, C, dtype, seed), x.clone(),
                        torch.zeros(x.shape[0], C + 1, dtype=dtype), skip=skip),
                    Raises("ValueError"), what=what)
            continue
        expected = _oracle_norms(_layers(kind, depth, C, dtype, seed + i), x, grad, skip)

        def probe(f, kind=kind, depth=depth, C=C, dtype=dtype, x=x, grad=grad, i=i):
            out = f(_layers(kind, depth, C, dtype, seed + i), x.clone(), grad.clone(),
                    skip=skip)
            return [float(v) for v in out] if isinstance(out, (list, tuple)) else out

        compare(gradient_norms, probe, expected, what=what,
                rtol=1e-4 if dtype == f32 else 1e-8, atol=0.0)
    if not skip:
        _check_second_call(gradient_norms, seed)


def _check_second_call(gradient_norms, seed: int) -> None:
    """Called twice on the same layers (as the exercise's demonstration does), the second call
    gives the same norms: nothing of the first call's gradients stays behind."""
    shape = (8, 6)
    x = oracles.randn(*shape, seed=seed + 50, dtype=torch.float64)
    grad = oracles.randn(*shape, seed=seed + 51, dtype=torch.float64)
    expected = _oracle_norms(_layers("tanh", 3, 6, torch.float64, seed + 50), x, grad, False)

    def probe(f):
        layers = _layers("tanh", 3, 6, torch.float64, seed + 50)
        f(layers, x.clone(), grad.clone())
        out = f(layers, x.clone(), grad.clone())
        return [float(v) for v in out] if isinstance(out, (list, tuple)) else out

    compare(gradient_norms, probe, expected, rtol=1e-8, atol=0.0,
            what=f"gradient_norms(3 Linear+Tanh layers, x {_fmt(shape)}, float64), the second "
                 "of two calls on the same layers")


@check(M + "gradient_norms", part=3)
def check_gradient_norms(gradient_norms, hidden: bool = False) -> None:
    """Plain stacks: one norm per layer, input side first, equal to a plain backward pass; a
    second call on the same layers gives the same norms."""
    _check_norms(gradient_norms, skip=False, hidden=hidden, seed=600)


@check(M + "gradient_norms", part=3)
def check_gradient_norms_residual(gradient_norms, hidden: bool = False) -> None:
    """Residual stacks (skip=True): x <- x + f(x) in every layer."""
    _check_norms(gradient_norms, skip=True, hidden=hidden, seed=700)
