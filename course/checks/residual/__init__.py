"""Checks for Exercise 5 (residual connections) and the catalogue of residual mistakes.

Oracles are independent of the reference: ``x + F(x)`` computed directly for `Residual`;
``torch.nn.TransformerEncoderLayer`` (either norm placement, a causal ``src_mask``, a padding
mask) and ``torch.nn.TransformerDecoderLayer`` (causal self-attention plus cross-attention)
with their weights copied into the learner's `Block`; a plain backward pass over ``.grad`` for
`gradient_norms`. ``hidden=True`` adds float64, ReLU, other sizes, a batch of one, a single
token and layers without parameters.

Its modules: `mistakes`, `shared`, `sublayer`, `block`, `gradients`, `slips`.
"""

from course.checks.residual.block import (
    check_block_causal_cross,
    check_block_padding,
    check_block_post_ln,
    check_block_pre_ln,
)
from course.checks.residual.gradients import check_gradient_norms, check_gradient_norms_residual
from course.checks.residual.mistakes import MISTAKES
from course.checks.residual.slips import SLIPS
from course.checks.residual.sublayer import check_residual, check_residual_dropout

__all__ = [
    "MISTAKES", "SLIPS", "check_block_causal_cross", "check_block_padding", "check_block_post_ln",
    "check_block_pre_ln", "check_gradient_norms", "check_gradient_norms_residual",
    "check_residual", "check_residual_dropout",
]
