"""Part 3: `SwiGLU`, checked against ``LlamaMLP`` with the same weights."""

from __future__ import annotations

import torch
from torch import nn

from course.checks import oracles
from course.checks.core import check, compare
from course.checks.feedforward import check_output_dropout
from course.checks.modern.mistakes import T
from course.checks.modern.shared import _hf, _llama_config, _ours

# ---------------------------------------------------------------- Part 3: SwiGLU


def _hf_mlp(d_model: int, d_ff: int, bias: bool, dtype: torch.dtype, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    mlp = _hf().LlamaMLP(_llama_config(d_model, 1, 1, d_model, 10000.0, d_ff, bias)).to(dtype)
    if bias:
        with torch.no_grad():
            for layer in (mlp.gate_proj, mlp.up_proj, mlp.down_proj):
                layer.bias.uniform_(-0.5, 0.5)
    return mlp.eval()


def _run(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, gradient of sum(output * w) with respect to x) for fixed weights w."""
    x = x.clone().requires_grad_()
    y = module(x)
    w = torch.linspace(-1.0, 1.0, y.numel(), dtype=y.dtype).view_as(y)
    (grad,) = torch.autograd.grad((y * w).sum(), x)
    return y.detach(), grad


@check(T + "SwiGLU", part=3)
def check_swiglu(SwiGLU, hidden: bool = False) -> None:
    """In eval mode, output and input gradient equal Hugging Face's LlamaMLP's (same
    weights)."""
    f32, f64 = torch.float32, torch.float64
    cases = [(16, 40, False, (2, 5, 16), f32), (8, 24, True, (1, 3, 8), f32)]
    if hidden:
        cases += [(32, 86, False, (3, 4, 32), f64), (6, 16, True, (1, 1, 6), f64),
                  (12, 32, False, (5, 12), f32)]
    for i, (d, h, bias, shape, dtype) in enumerate(cases):
        hf = _hf_mlp(d, h, bias, dtype, seed=50 + i)
        x, state = oracles.randn(*shape, seed=60 + i, dtype=dtype, scale=2.0), _ours(
            hf.state_dict())

        def probe(cls, d=d, h=h, bias=bias, dtype=dtype, state=state, x=x):
            module = cls(d, h, bias=bias).to(dtype)
            module.load_state_dict(state)
            return _run(module.eval(), x)

        compare(SwiGLU, probe, _run(hf, x), parts=("output", "gradient of x"),
                what=f"SwiGLU({d}, {h}, bias={bias}).eval() on x {shape}, {dtype}",
                **oracles.tol(dtype))


@check(T + "SwiGLU", part=3)
def check_swiglu_dropout(SwiGLU, hidden: bool = False) -> None:
    """Dropout acts on the output, only while training: in eval mode the output is
    LlamaMLP's; in train mode about a fraction p is zero and the rest is scaled by 1/(1-p)."""
    cases = [(16, 40, 0.5, (4, 8, 16))] + ([(8, 24, 0.2, (2, 16, 8)), (32, 64, 0.7, (1, 4, 32))]
                                          if hidden else [])
    for i, (d, h, p, shape) in enumerate(cases):
        hf = _hf_mlp(d, h, False, torch.float32, seed=70 + i)
        x, state = oracles.randn(*shape, seed=80 + i), _ours(hf.state_dict())
        with torch.no_grad():
            clean = hf(x)

        def probe(cls, d=d, h=h, p=p, x=x, state=state, train=False):
            module = cls(d, h, dropout=p)
            module.load_state_dict(state)
            module.train(train)
            torch.manual_seed(1234)
            with torch.no_grad():
                return module(x.clone())

        check_output_dropout(SwiGLU, probe, clean, f"SwiGLU({d}, {h}, dropout={p})",
                             shape, p, "down")
