"""Part 1: `Residual`, checked against ``x + F(x)`` computed directly, dropout included."""

from __future__ import annotations

import torch
from torch import nn

from course.checks import oracles
from course.checks.core import Raised, Raises, call, check, compare, fail
from course.checks.residual.mistakes import M
from course.checks.residual.shared import _fmt

# ---------------------------------------------------------------- Part 1: Residual


def _linear(C_in: int, C_out: int, dtype: torch.dtype, seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(C_in, C_out).to(dtype)


@check(M + "Residual", part=1)
def check_residual(Residual, hidden: bool = False) -> None:
    """Residual()(x, F) == x + F(x) for a module or a plain function F, gradients flow through
    both paths; a sub-layer that changes the shape, or returns a pair (output, weights) as
    attention does, is refused with a ValueError."""
    f32, f64 = torch.float32, torch.float64
    cases = [("a Linear sub-layer", (2, 5, 8), f32, None),
             ("the function h -> 2.0 * h + 0.5 as sub-layer", (3, 4), f32, "fn"),
             ("a sub-layer that changes the shape", (2, 5, 8), f32, "bad"),
             ("a sub-layer that returns a pair (output, weights), as attention does",
              (2, 5, 8), f32, "pair")]
    if hidden:
        cases += [("float64, a batch of one token", (1, 1, 16), f64, None),
                  ("eval mode with dropout 0.5 (no dropout at evaluation)", (2, 3, 6), f32,
                   "eval"),
                  ("float64, the function h -> -1.0 * h + 0.0 as sub-layer", (2, 2, 3), f64,
                   "fn-1")]
    for i, (label, shape, dtype, kind) in enumerate(cases):
        x = oracles.randn(*shape, seed=10 + i, dtype=dtype)
        C = shape[-1]
        what = f"Residual()(x {_fmt(shape)}, sublayer), {dtype}, with {label}"
        if kind == "bad":
            compare(Residual, lambda cls, x=x, C=C: cls()(x.clone(), _linear(C, C - 1, f32, 1)),
                    Raises("ValueError"), what=what)
            continue
        if kind == "pair":
            compare(Residual, lambda cls, x=x: cls()(x.clone(), lambda h: (2.0 * h, None)),
                    Raises("ValueError"), what=what)
            continue
        if kind and kind.startswith("fn"):
            factor, shift = (2.0, 0.5) if kind == "fn" else (-1.0, 0.0)
            expected_out = x + (factor * x + shift)

            def probe(cls, x=x, factor=factor, shift=shift):
                xg = x.clone().requires_grad_()
                out = cls()(xg, lambda h: factor * h + shift)
                out.sum().backward()
                return out.detach(), xg.grad
            expected = (expected_out, torch.full_like(x, 1.0 + factor))
        else:
            sub = _linear(C, C, dtype, 20 + i)
            xg = x.clone().requires_grad_()
            ref_out = xg + sub(xg)                        # the oracle: x + F(x)
            ref_out.sum().backward()
            expected = (ref_out.detach(), xg.grad)

            def probe(cls, x=x, C=C, dtype=dtype, i=i, kind=kind):
                residual = cls(dropout=0.5 if kind else 0.0)
                residual = residual.eval() if kind == "eval" else residual
                xg = x.clone().requires_grad_()
                out = residual(xg, _linear(C, C, dtype, 20 + i))
                out.sum().backward()
                return out.detach(), xg.grad
        compare(Residual, probe, expected, what=what, parts=("output", "gradient of x"),
                **oracles.tol(dtype))


@check(M + "Residual", part=1)
def check_residual_dropout(Residual, hidden: bool = False) -> None:
    """In training mode dropout acts on the branch only: with a branch of ones and dropout p,
    out - x is 0 or 1 / (1 - p) everywhere (about a share p of zeros), never a change of x."""
    cases = [((64, 64), 0.5)]
    if hidden:
        cases += [((4, 32, 16), 0.25), ((1, 200), 0.8)]
    for i, (shape, p) in enumerate(cases):
        x = torch.randint(-4, 5, shape, generator=torch.Generator().manual_seed(90 + i)).float()
        what = f"Residual(dropout={p}).train()(x {_fmt(shape)}, torch.ones_like)"

        def probe(cls, x=x, p=p):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(1234)
                return cls(dropout=p).train()(x.clone(), torch.ones_like)

        got = call(Residual, probe, what)
        if isinstance(got, Raised):
            fail(f"{what}\n  raised {got}")
        scale = 1.0 / (1.0 - p)
        delta = got - x
        ok_values = (delta.abs() < 1e-5) | ((delta - scale).abs() < 1e-4)
        if not bool(ok_values.all()):  # out - x, compared with the nearest of 0 and scale
            expected = torch.where(delta.abs() < 1e-5, 0.0, scale)
            compare(Residual, lambda cls, x=x, probe=probe: probe(cls) - x, expected,
                    what=what + f": out - x must be 0 or {scale:g}")
        share = (delta.abs() < 1e-5).float().mean().item()
        if abs(share - p) > 0.15:
            fail(f"{what}: {share:.0%} of the branch is dropped, expected about {p:.0%}; "
                 "dropout must act on the branch F(x) in training mode")
