"""Checks for Exercise 6 (layer normalization) and the catalogue of its mistakes.

Oracles are independent of the reference: `torch.nn.functional.layer_norm`, `torch.nn.LayerNorm`
and `torch.nn.RMSNorm` holding the same weights (outputs, and gradients of the input and of the
parameters). `hidden=True` adds float64, other shapes, a single vector, tokens whose features are
all equal (where eps decides between a finite answer and 0/0), tokens of tiny variance, and a
non-default eps. `SLIPS` is a second catalogue: wrong versions written as a learner would write
them (not edits of the reference); tests prove each fails and never gets another mistake's hint.

Its modules: `mistakes`, `norms`, `slips`.
"""

from course.checks.normalization.mistakes import MISTAKES
from course.checks.normalization.norms import (
    check_layer_norm,
    check_layer_norm_edges,
    check_layernorm,
    check_layernorm_backward,
    check_rmsnorm,
)
from course.checks.normalization.slips import SLIPS

__all__ = [
    "MISTAKES", "SLIPS", "check_layer_norm", "check_layer_norm_edges", "check_layernorm",
    "check_layernorm_backward", "check_rmsnorm",
]
