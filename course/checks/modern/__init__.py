"""Checks for Exercise 12 (today's decoders: rotary positions, SwiGLU, grouped-query attention)
and the catalogue of their mistakes.

Oracles are Hugging Face's Llama code with random weights (no download):
``LlamaRotaryEmbedding`` (the cos and sin tables), ``rotate_half`` and ``apply_rotary_pos_emb``
(the rotation), ``LlamaMLP`` (SwiGLU, weights copied), ``repeat_kv`` and ``LlamaAttention`` with a
``DynamicCache`` (grouped-query attention: outputs and the keys and values cached). The rotation
is also checked for the property it exists for: a score depends only on how far apart a query
and a key are. ``hidden=True`` adds other head sizes, thetas, offsets, float64, multi-query and
multi-head configurations and a batch of one. `SLIPS` is a second catalogue: wrong versions
written as a learner would write them (not edits of the reference).

Its modules: `mistakes`, `shared`, `rotary`, `swiglu`, `gqa`, `slips`.
"""

from course.checks.modern.gqa import check_gqa, check_gqa_cached, check_repeat_kv
from course.checks.modern.mistakes import MISTAKES
from course.checks.modern.rotary import (
    check_apply_rotary,
    check_rotary_distance,
    check_rotary_tables,
    check_rotate_half,
)
from course.checks.modern.slips import SLIPS
from course.checks.modern.swiglu import check_swiglu, check_swiglu_dropout

__all__ = [
    "MISTAKES", "SLIPS", "check_apply_rotary", "check_gqa", "check_gqa_cached", "check_repeat_kv",
    "check_rotary_distance", "check_rotary_tables", "check_rotate_half", "check_swiglu",
    "check_swiglu_dropout",
]
