"""Part 6: `LoRALinear`, compared with its formula written out here, merged weights included."""

from __future__ import annotations

import torch
from torch import nn

from course.checks import oracles
from course.checks.core import check, compare
from course.checks.transfer.mistakes import L

# ---------------------------------------------------------------- Part 6: LoRA


def _lora_cases(hidden: bool) -> list[tuple]:
    """(label, in, out, r, alpha, bias, x shape, dtype) of the LoRA checks."""
    f32, f64 = torch.float32, torch.float64
    cases = [("r=2, alpha=4, square", 6, 6, 2, 4.0, True, (2, 3, 6), f32),
             ("r=3, alpha=2, in 6 -> out 4", 6, 4, 3, 2.0, True, (2, 3, 6), f32)]
    if hidden:
        cases += [("r=1, alpha=8, float64, no bias", 5, 7, 1, 8.0, False, (4, 5), f64),
                  ("r=4, alpha=4, a batch of one", 8, 8, 4, 4.0, True, (1, 2, 8), f32)]
    return cases


def _lora_state(n_in: int, n_out: int, r: int, bias: bool, dtype, seed: int) -> dict:
    """Weights for a LoRALinear: base (out, in) and (out,), A (r, in), B (out, r), B non-zero
    so that the update shows."""
    g = torch.Generator().manual_seed(seed)
    state = {"base.weight": torch.randn(n_out, n_in, generator=g, dtype=dtype) / 2,
             "A": torch.randn(r, n_in, generator=g, dtype=dtype) / 2,
             "B": torch.randn(n_out, r, generator=g, dtype=dtype) / 2}
    if bias:
        state["base.bias"] = torch.randn(n_out, generator=g, dtype=dtype)
    return state


def _lora_loaded(cls, n_in, n_out, r, alpha, bias, dtype, state, dropout=0.0):
    """The learner's LoRALinear (its given constructor) around a new nn.Linear, holding
    `state`."""
    with torch.random.fork_rng(devices=[]):
        module = cls(nn.Linear(n_in, n_out, bias=bias, dtype=dtype), r, alpha, dropout)
    module.load_state_dict(state)
    return module


def _dropped(x: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    """x with dropout p applied as nn.Dropout draws it right after torch.manual_seed(seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.functional.dropout(x, p, training=True)


@check(L + "LoRALinear", part=6)
def check_lora_forward(LoRALinear, hidden: bool = False) -> None:
    """Output and gradients of A and B equal W x + b + (alpha / r) B A dropout(x), in eval
    mode and in training with dropout 0.5 (the same dropout mask)."""
    for i, (label, n_in, n_out, r, alpha, bias, shape, dtype) in enumerate(_lora_cases(hidden)):
        state = _lora_state(n_in, n_out, r, bias, dtype, seed=110 + i)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(120 + i), dtype=dtype)
        for training in (False, True):
            A = state["A"].clone().requires_grad_()
            B = state["B"].clone().requires_grad_()
            seen = _dropped(x, 0.5, seed=7) if training else x
            y = nn.functional.linear(x, state["base.weight"], state.get("base.bias")) \
                + (seen @ A.T @ B.T) * (alpha / r)
            direction = torch.linspace(-1.0, 2.0, y.numel(), dtype=dtype).view_as(y)
            expected = (y.detach(), *torch.autograd.grad((y * direction).sum(), [A, B]))

            def probe(cls, args=(n_in, n_out, r, alpha, bias, dtype, state), x=x,
                      training=training, direction=direction):
                module = _lora_loaded(cls, *args, dropout=0.5).train(training)
                torch.manual_seed(7)
                y = module(x.clone())
                grads = torch.autograd.grad((y * direction).sum(), [module.A, module.B],
                                            allow_unused=True)
                return (y.detach(), *grads)

            mode = "training, dropout 0.5" if training else "eval mode, dropout 0.5"
            compare(LoRALinear, probe, expected,
                    what=f"LoRALinear(nn.Linear({n_in}, {n_out}), {label}) on x {shape}, "
                         f"{mode}",
                    parts=("output", "gradient of A", "gradient of B"),
                    **oracles.tol(dtype))


@check(L + "LoRALinear", part=6)
def check_lora_merge(LoRALinear, hidden: bool = False) -> None:
    """merge() returns an nn.Linear with weight W + (alpha / r) B A and the base's bias; the
    base layer is unchanged."""
    for i, (label, n_in, n_out, r, alpha, bias, _, dtype) in enumerate(_lora_cases(hidden)):
        state = _lora_state(n_in, n_out, r, bias, dtype, seed=130 + i)
        weight = state["base.weight"] + (alpha / r) * (state["B"] @ state["A"])
        expected = (True, weight, state.get("base.bias"), state["base.weight"])

        def probe(cls, args=(n_in, n_out, r, alpha, bias, dtype, state)):
            module = _lora_loaded(cls, *args)
            merged = module.merge()
            if not isinstance(merged, nn.Linear):
                return (False, None, None, module.base.weight.detach())
            return (True, merged.weight.detach(),
                    None if merged.bias is None else merged.bias.detach(),
                    module.base.weight.detach())

        compare(LoRALinear, probe, expected,
                what=f"LoRALinear(nn.Linear({n_in}, {n_out}), {label}).merge()",
                parts=("returns an nn.Linear", "merged weight", "merged bias",
                       "base weight after merge"),
                **oracles.tol(dtype))
