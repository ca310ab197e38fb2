"""Checks for Exercise 2 (embeddings) and the catalogue of embedding mistakes.

Oracles are independent of the reference: `torch.nn.functional.embedding` and `torch.nn.Embedding`
with copied weights for lookups, the closed-form sin/cos formula evaluated with Python's `math` for
the sinusoidal table. Each check takes the learner's object; `hidden=True` adds other sizes, float64,
the longest allowed sequence and devices.

Device rule: a module is also run on the `meta` device while every torch function it calls is
watched; a tensor made on the CPU there (`torch.arange(T)` without `device=`, a table kept as a
plain attribute) would break the module on a GPU, so it fails the check.

Its modules: `mistakes`, `shared`, `tables`, `combined`, `slips`.
"""

from course.checks.embeddings.combined import check_embedding_dropout, check_transformer_embedding
from course.checks.embeddings.mistakes import MISTAKES
from course.checks.embeddings.shared import on_meta
from course.checks.embeddings.slips import SLIPS
from course.checks.embeddings.tables import (
    check_learned_positions,
    check_one_hot_embed,
    check_sinusoidal_module,
    check_sinusoidal_table,
    check_token_embedding,
)

__all__ = [
    "MISTAKES", "SLIPS", "check_embedding_dropout", "check_learned_positions",
    "check_one_hot_embed", "check_sinusoidal_module", "check_sinusoidal_table",
    "check_token_embedding", "check_transformer_embedding", "on_meta",
]
