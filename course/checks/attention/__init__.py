"""Checks for Exercise 3 (attention) and the catalogue of attention mistakes.

The worked example of a topic module (AUTHORING.md, "Writing checks", has the rules). Oracles are
independent of the reference: `torch.nn.functional.scaled_dot_product_attention` (outputs, and
the weights read out by attending over identity values) and `torch.nn.MultiheadAttention` with
its weights copied into our layout (`course.checks.oracles`). `hidden=True` adds other shapes,
float64, a batch of one, a single token, cross-attention with T_q != T_k and masks with fully masked rows.

Its modules: `mistakes`, `shared`, `sdpa`, `multihead`, `copy_tasks`, `slips`.
"""

from course.checks.attention.copy_tasks import check_train_copy_tasks, check_train_copy_tasks_mask
from course.checks.attention.mistakes import MISTAKES
from course.checks.attention.multihead import (
    check_merge_heads,
    check_mha_cross,
    check_mha_dropout,
    check_mha_self,
    check_split_heads,
)
from course.checks.attention.sdpa import (
    check_attention,
    check_attention_dropout,
    check_attention_scores,
    check_masked_softmax,
    check_masked_softmax_edges,
)
from course.checks.attention.slips import SLIPS

__all__ = [
    "MISTAKES", "SLIPS", "check_attention", "check_attention_dropout", "check_attention_scores",
    "check_masked_softmax", "check_masked_softmax_edges", "check_merge_heads", "check_mha_cross",
    "check_mha_dropout", "check_mha_self", "check_split_heads", "check_train_copy_tasks",
    "check_train_copy_tasks_mask",
]
