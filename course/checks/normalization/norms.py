"""Parts 1 to 3: `layer_norm`, `LayerNorm` and `RMSNorm`, outputs and gradients, against
PyTorch's."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import oracles
from course.checks.core import check, compare
from course.checks.normalization.mistakes import T


def _affine(C: int, dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    weight = (1.0 + 0.5 * torch.randn(C, generator=g, dtype=torch.float64)).to(dtype)
    bias = (0.5 * torch.randn(C, generator=g, dtype=torch.float64)).to(dtype)
    return weight, bias


def _x(shape, seed: int, dtype, scale: float = 2.0, shift: float = 1.0) -> torch.Tensor:
    return oracles.randn(*shape, seed=seed, dtype=torch.float64, scale=scale).add_(shift) \
        .to(dtype)


# ---------------------------------------------------------------- Part 1: layer_norm


def _check_function(layer_norm, cases) -> None:
    for i, (label, x, eps) in enumerate(cases):
        C, dtype = x.size(-1), x.dtype
        weight, bias = _affine(C, dtype, seed=50 + i)
        compare(layer_norm, lambda f, x=x, w=weight, b=bias, e=eps: f(x.clone(), w, b, e),
                F.layer_norm(x, (C,), weight, bias, eps),
                what=f"layer_norm(x {tuple(x.shape)}, weight, bias, eps={eps}), {dtype}, "
                     f"{label}", **oracles.tol(dtype))


@check(T + "layer_norm", part=1)
def check_layer_norm(layer_norm, hidden: bool = False) -> None:
    """Equals F.layer_norm over the last axis, any leading axes."""
    f32, f64 = torch.float32, torch.float64
    cases = [("a batch of sequences", _x((2, 5, 8), 1, f32), 1e-5),
             ("short tokens (C = 4)", _x((3, 4, 4), 2, f32, scale=3.0), 1e-5)]
    if hidden:
        cases += [("float64", _x((2, 3, 16), 3, f64), 1e-5),
                  ("a batch of one", _x((1, 7, 12), 4, f64), 1e-12),
                  ("a single vector (C,)", _x((10,), 5, f64), 1e-5),
                  ("4 axes", _x((2, 2, 3, 6), 6, f32), 1e-5),
                  ("large values", _x((2, 4, 32), 7, f32, scale=50.0, shift=100.0), 1e-5)]
    _check_function(layer_norm, cases)


@check(T + "layer_norm", part=1)
def check_layer_norm_edges(layer_norm, hidden: bool = False) -> None:
    """Tokens whose features are (nearly) all equal: eps inside the square root keeps the
    result finite, and equal to F.layer_norm's."""
    f32, f64 = torch.float32, torch.float64
    constant = torch.full((2, 3, 6), 2.5)
    constant[0, 1] = torch.linspace(-1, 1, 6)   # one ordinary token among constant ones
    cases = [("tokens whose features are all equal", constant, 1e-5),
             ("tokens of tiny variance, eps = 0.1", _x((2, 3, 8), 8, f32, scale=0.1), 0.1)]
    if hidden:
        cases += [("all-zero tokens, float64", torch.zeros(1, 2, 5, dtype=f64), 1e-5),
                  ("tiny variance, float64, eps = 1e-3", _x((3, 2, 8), 9, f64, scale=0.01),
                   1e-3),
                  ("a single constant vector", torch.full((7,), -3.0, dtype=f64), 1e-12)]
    _check_function(layer_norm, cases)


# ---------------------------------------------------------------- Part 2: LayerNorm


def _module_cases(hidden: bool) -> list[tuple[str, tuple, torch.dtype, float]]:
    f32, f64 = torch.float32, torch.float64
    cases = [("default eps", (2, 5, 8), f32, 1e-5), ("eps = 0.1", (2, 3, 6), f32, 0.1)]
    if hidden:
        cases += [("float64", (3, 4, 16), f64, 1e-5), ("BERT's eps = 1e-12", (1, 6, 12), f64,
                                                       1e-12),
                  ("a single vector (C,)", (9,), f32, 1e-5), ("large eps", (2, 2, 4), f64, 1.0)]
    return cases


def _loaded(cls, C: int, eps: float, state: dict, dtype: torch.dtype) -> nn.Module:
    """The learner's LayerNorm (its given constructor) holding the weights `state`."""
    module = (cls(C, eps=eps) if eps != 1e-5 else cls(C)).to(dtype)
    module.load_state_dict(state)
    return module


@check(T + "LayerNorm", part=2, uses=(T + "layer_norm",))
def check_layernorm(LayerNorm, hidden: bool = False) -> None:
    """With the weights of an nn.LayerNorm loaded, the same output as nn.LayerNorm (the
    module's own eps, its weight and its bias)."""
    for i, (label, shape, dtype, eps) in enumerate(_module_cases(hidden)):
        C = shape[-1]
        theirs = nn.LayerNorm(C, eps=eps, dtype=dtype)
        weight, bias = _affine(C, dtype, seed=60 + i)
        with torch.no_grad():
            theirs.weight.copy_(weight)
            theirs.bias.copy_(bias)
        state, x = theirs.state_dict(), _x(shape, 70 + i, dtype)
        compare(LayerNorm,
                lambda cls, C=C, eps=eps, state=state, x=x:
                    _loaded(cls, C, eps, state, x.dtype)(x.clone()).detach(),
                theirs(x).detach(),
                what=f"LayerNorm({C}, eps={eps}) on x {shape}, {dtype}, {label}",
                **oracles.tol(dtype))


def _gradients(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """Gradients of x, weight and bias (None for one the output does not depend on)."""
    x = x.clone().requires_grad_()
    y = module(x)
    direction = torch.linspace(-1.0, 2.0, y.numel(), dtype=y.dtype).view_as(y)
    return torch.autograd.grad((y * direction).sum(), [x, module.weight, module.bias],
                               allow_unused=True)


@check(T + "LayerNorm", part=2, uses=(T + "layer_norm",))
def check_layernorm_backward(LayerNorm, hidden: bool = False) -> None:
    """Gradients of the input, weight and bias equal nn.LayerNorm's."""
    for i, (label, shape, dtype, eps) in enumerate(_module_cases(hidden)):
        C = shape[-1]
        theirs = nn.LayerNorm(C, eps=eps, dtype=dtype)
        weight, bias = _affine(C, dtype, seed=80 + i)
        with torch.no_grad():
            theirs.weight.copy_(weight)
            theirs.bias.copy_(bias)
        state, x = theirs.state_dict(), _x(shape, 90 + i, dtype)

        def probe(cls, C=C, eps=eps, state=state, x=x):
            return _gradients(_loaded(cls, C, eps, state, x.dtype), x)

        compare(LayerNorm, probe, _gradients(theirs, x),
                parts=("gradient of x", "gradient of weight", "gradient of bias"),
                what=f"gradients through LayerNorm({C}, eps={eps}) on x {shape}, {dtype}, "
                     f"{label}", **oracles.tol(dtype))


# ---------------------------------------------------------------- Part 3: RMSNorm


@check(T + "RMSNorm", part=3)
def check_rmsnorm(RMSNorm, hidden: bool = False) -> None:
    """With the weight of an nn.RMSNorm loaded: the same output and input gradient."""
    f32, f64 = torch.float32, torch.float64
    zero = torch.zeros(2, 3, 8)
    zero[1] = _x((3, 8), 5, f32)
    cases = [("a batch of sequences", _x((2, 5, 8), 1, f32), 1e-6),
             ("eps = 0.1, small values", _x((2, 3, 6), 2, f32, scale=0.2, shift=0.0), 0.1),
             ("all-zero tokens", zero, 1e-6)]
    if hidden:
        cases += [("float64", _x((3, 4, 16), 3, f64), 1e-6),
                  ("a single vector (C,)", _x((12,), 4, f64), 1e-6),
                  ("a batch of one, large values", _x((1, 6, 32), 6, f32, scale=30.0), 1e-6),
                  ("float64, eps = 1e-3", _x((2, 2, 4), 7, f64, scale=0.05), 1e-3)]
    for i, (label, x, eps) in enumerate(cases):
        C, dtype = x.size(-1), x.dtype
        theirs = nn.RMSNorm(C, eps=eps, dtype=dtype)
        with torch.no_grad():
            theirs.weight.copy_(_affine(C, dtype, seed=100 + i)[0])
        state = theirs.state_dict()

        def run(module, x=x):
            x = x.clone().requires_grad_()
            y = module(x)
            direction = torch.linspace(-1.0, 2.0, y.numel(), dtype=y.dtype).view_as(y)
            return y.detach(), torch.autograd.grad((y * direction).sum(), x)[0]

        def probe(cls, C=C, eps=eps, state=state, dtype=dtype, run=run):
            module = (cls(C, eps=eps) if eps != 1e-6 else cls(C)).to(dtype)
            module.load_state_dict(state)
            return run(module)

        compare(RMSNorm, probe, run(theirs), parts=("output", "gradient of x"),
                what=f"RMSNorm({C}, eps={eps}) on x {tuple(x.shape)}, {dtype}, {label}",
                **oracles.tol(dtype))
