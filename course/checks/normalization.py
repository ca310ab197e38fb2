"""Checks for Exercise 6 (layer normalization) and the catalogue of its mistakes.

Oracles are independent of the reference: `torch.nn.functional.layer_norm`, `torch.nn.LayerNorm`
and `torch.nn.RMSNorm` holding the same weights (outputs, and gradients of the input and of the
parameters). `hidden=True` adds float64, other shapes, a single vector, tokens whose features are
all equal (where eps decides between a finite answer and 0/0), tokens of tiny variance, and a
non-default eps. `SLIPS` is a second catalogue: wrong versions written as a learner would write
them (not edits of the reference); tests prove each fails and never gets another mistake's hint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import oracles
from course.checks.core import Mistake, Slip, check, compare

T = "solutions.normalization."
MEAN = "mean = x.mean(dim=-1, keepdim=True)"
VAR = "var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)"
STATS = MEAN + "\n    " + VAR


def _axis(dim: int) -> str:
    return STATS.replace("dim=-1", f"dim={dim}")


MISTAKES = [
    # Part 1: layer_norm
    Mistake("unbiased_variance", T + "layer_norm", VAR, "var = x.var(dim=-1, keepdim=True)",
            "the variance is the unbiased one (divided by C - 1); LayerNorm divides by C: "
            "x.var(dim=-1, unbiased=False, keepdim=True), or the mean of (x - mean)**2"),
    Mistake("eps_outside_sqrt", T + "layer_norm", "torch.sqrt(var + eps)",
            "(torch.sqrt(var) + eps)",
            "eps is added after the square root; it goes inside: sqrt(var + eps)"),
    Mistake("no_eps", T + "layer_norm", "torch.sqrt(var + eps)", "torch.sqrt(var)",
            "eps is missing: a token whose features are all equal gives 0 / 0 = NaN; divide "
            "by sqrt(var + eps)"),
    Mistake("batch_axis", T + "layer_norm", STATS, _axis(0),
            "the statistics are taken over the batch axis (dim=0), like BatchNorm; LayerNorm "
            "normalises each token over its own features, the last axis (dim=-1)"),
    Mistake("time_axis", T + "layer_norm", STATS, _axis(-2),
            "the statistics are taken over the tokens (dim=-2); LayerNorm normalises each "
            "token over its own features, the last axis (dim=-1)"),
    Mistake("stats_over_sequence", T + "layer_norm",
            "mean = x.mean(dim=-1, keepdim=True)\n    var = ((x - mean) ** 2).mean(dim=-1, "
            "keepdim=True)",
            "mean = x.mean(dim=(-2, -1), keepdim=True)\n    var = ((x - mean) ** 2).mean("
            "dim=(-2, -1), keepdim=True)",
            "the statistics are taken over the whole sequence (tokens and features together); "
            "LayerNorm normalises each token over its own C features: dim=-1"),
    Mistake("mean_wrong_axis", T + "layer_norm", MEAN, MEAN.replace("dim=-1", "dim=-2"),
            "the mean is taken over the tokens (dim=-2) while the variance is over the "
            "features: both are over the last axis"),
    Mistake("no_keepdim", T + "layer_norm", MEAN, "mean = x.mean(dim=-1)",
            "a statistic (the mean or the variance) lost its last axis, so it does not "
            "broadcast against x: reduce with keepdim=True"),
    Mistake("no_centering", T + "layer_norm", "x_hat = (x - mean) /", "x_hat = x /",
            "the mean is not subtracted before dividing: x_hat = (x - mean) / sqrt(var + eps)"),
    Mistake("divide_by_variance", T + "layer_norm", "/ torch.sqrt(var + eps)", "/ (var + eps)",
            "the division is by the variance; divide by the standard deviation "
            "sqrt(var + eps)"),
    Mistake("weight_bias_swapped", T + "layer_norm", "x_hat * weight + bias",
            "x_hat * bias + weight",
            "weight and bias are swapped: the weight multiplies, the bias adds"),
    Mistake("no_affine", T + "layer_norm", "return x_hat * weight + bias", "return x_hat",
            "the learned scale and shift are not applied: return x_hat * weight + bias"),
    # Part 2: LayerNorm.forward (the constructor is given)
    Mistake("module_params_swapped", T + "LayerNorm", "self.weight, self.bias, self.eps",
            "self.bias, self.weight, self.eps",
            "the module passes its parameters in the wrong order: layer_norm takes the scale "
            "first, then the shift: layer_norm(x, self.weight, self.bias, self.eps)"),
    Mistake("module_params_detached", T + "LayerNorm", "self.weight, self.bias, self.eps",
            "self.weight.data, self.bias.data, self.eps",
            "the parameters are detached (.data or .detach()), so no gradient reaches weight "
            "and bias and they never learn: pass self.weight and self.bias themselves"),
    Mistake("module_eps_ignored", T + "LayerNorm", "layer_norm(x, self.weight, self.bias, self.eps)",
            "layer_norm(x, self.weight, self.bias)",
            "the module's eps is not passed on: call layer_norm(x, self.weight, self.bias, "
            "self.eps)"),
    # Part 3: RMSNorm
    Mistake("rms_centered", T + "RMSNorm", "ms = (x * x).mean(dim=-1, keepdim=True)",
            "ms = ((x - x.mean(dim=-1, keepdim=True)) ** 2).mean(dim=-1, keepdim=True)",
            "RMSNorm does not subtract the mean: divide x by sqrt(mean(x**2) + eps)"),
    Mistake("rms_no_sqrt", T + "RMSNorm", "torch.sqrt(ms + self.eps)", "(ms + self.eps)",
            "the division is by the mean square; divide by its square root, the RMS"),
    Mistake("rms_eps_outside", T + "RMSNorm", "torch.sqrt(ms + self.eps)",
            "(torch.sqrt(ms) + self.eps)",
            "eps is added after the square root; it goes inside: sqrt(mean(x**2) + eps)"),
    Mistake("rms_no_eps", T + "RMSNorm", "torch.sqrt(ms + self.eps)", "torch.sqrt(ms)",
            "eps is missing: an all-zero token gives 0 / 0 = NaN; divide by "
            "sqrt(mean(x**2) + eps)"),
    Mistake("rms_wrong_axis", T + "RMSNorm", "(x * x).mean(dim=-1, keepdim=True)",
            "(x * x).mean(dim=0, keepdim=True)",
            "the mean square is taken over the batch axis; take it over each token's "
            "features, the last axis"),
    Mistake("rms_sum", T + "RMSNorm", "(x * x).mean(dim=-1", "(x * x).sum(dim=-1",
            "the squares are summed, not averaged: RMS = sqrt(mean(x**2)), that is "
            "sqrt(sum / C)"),
    Mistake("rms_no_weight", T + "RMSNorm", " * self.weight", "",
            "the learned scale is not applied: multiply by self.weight"),
]


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


# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("torch_var_default", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mu = torch.mean(x, dim=-1, keepdim=True)
    sigma2 = torch.var(x, dim=-1, keepdim=True)
    return weight * (x - mu) / torch.sqrt(sigma2 + eps) + bias
""", "unbiased_variance"),
    Slip("std_plus_eps", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    centered = x - x.mean(-1, keepdim=True)
    std = x.std(-1, keepdim=True, unbiased=False)
    return centered / (std + eps) * weight + bias
""", "eps_outside_sqrt"),
    Slip("rsqrt_no_eps", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) * torch.rsqrt(var) * weight + bias
""", "no_eps"),
    Slip("over_time_axis", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = torch.mean(x, 1, keepdim=True)
    var = torch.mean((x - mean) ** 2, 1, keepdim=True)
    return (x - mean) / (var + eps) ** 0.5 * weight + bias
""", "time_axis"),
    Slip("batch_and_time", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    dims = tuple(range(x.dim() - 1))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias
""", None),
    Slip("scale_shift_swapped", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    normed = (x - mean) / torch.sqrt(var + eps)
    return bias * normed + weight
""", "weight_bias_swapped"),
    Slip("var_without_keepdim", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias
""", "no_keepdim"),
    Slip("layernorm_functional_default_eps", T + "LayerNorm.forward", """
def forward(self, x):
    return F.layer_norm(x, (self.normalized_shape,), self.weight, self.bias)
""", "module_eps_ignored"),
    Slip("layernorm_scale_shift_mixup", T + "LayerNorm.forward", """
def forward(self, x):
    scale, shift = self.bias, self.weight
    return layer_norm(x, scale, shift, eps=self.eps)
""", "module_params_swapped"),
    Slip("layernorm_fixed_eps", T + "LayerNorm.forward", """
def forward(self, x):
    return layer_norm(x, self.weight, self.bias, 1e-5)
""", "module_eps_ignored"),
    Slip("layernorm_detached_stats", T + "LayerNorm.forward", """
def forward(self, x):
    mean = x.mean(-1, keepdim=True).detach()
    var = ((x - mean) ** 2).mean(-1, keepdim=True).detach()
    return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
""", None),
    Slip("layernorm_no_grad_params", T + "LayerNorm.forward", """
def forward(self, x):
    with torch.no_grad():
        w, b = self.weight.clone(), self.bias.clone()
    return layer_norm(x, w, b, self.eps)
""", "module_params_detached"),
    Slip("layernorm_inline_unbiased", T + "LayerNorm.forward", """
def forward(self, x):
    mu = x.mean(dim=-1, keepdim=True)
    sd = torch.sqrt(x.var(dim=-1, keepdim=True) + self.eps)
    return self.weight * (x - mu) / sd + self.bias
""", "unbiased_variance"),
    Slip("rms_is_l2_normalize", T + "RMSNorm.forward", """
def forward(self, x):
    return x / (x.norm(dim=-1, keepdim=True) + self.eps) * self.weight
""", "rms_sum"),
    Slip("rms_without_eps", T + "RMSNorm.forward", """
def forward(self, x):
    return self.weight * x / x.pow(2).mean(-1, keepdim=True).sqrt()
""", "rms_no_eps"),
    Slip("rms_subtracts_mean", T + "RMSNorm.forward", """
def forward(self, x):
    x = x - x.mean(-1, keepdim=True)
    return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
""", None),
    Slip("ln_forgets_bias", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight
""", None),
    Slip("ln_mean_square_as_var", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = (x ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias
""", None),
    Slip("ln_divides_by_variance", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    return (x - mean) / (var + eps) * weight + bias
""", "divide_by_variance"),
    Slip("ln_over_batch_axis", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(0, keepdim=True)
    var = x.var(0, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias
""", "batch_axis"),
    Slip("layernorm_fixed_unit_params", T + "LayerNorm.forward", """
def forward(self, x):
    return layer_norm(x, torch.ones_like(self.weight), torch.zeros_like(self.bias), self.eps)
""", "no_affine"),
    Slip("layernorm_over_last_two", T + "LayerNorm.forward", """
def forward(self, x):
    mean = x.mean(dim=(-2, -1), keepdim=True)
    var = x.var(dim=(-2, -1), keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
""", "stats_over_sequence"),
    Slip("rms_eps_outside_root", T + "RMSNorm.forward", """
def forward(self, x):
    rms = x.pow(2).mean(-1, keepdim=True).sqrt()
    return x / (rms + self.eps) * self.weight
""", "rms_eps_outside"),
    Slip("rms_sum_of_squares", T + "RMSNorm.forward", """
def forward(self, x):
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + self.eps) * self.weight
""", "rms_sum"),
    Slip("rms_mean_abs", T + "RMSNorm.forward", """
def forward(self, x):
    return x / (x.abs().mean(-1, keepdim=True) + self.eps) * self.weight
""", None),
    Slip("rms_weight_added", T + "RMSNorm.forward", """
def forward(self, x):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps) + self.weight
""", None),
]
