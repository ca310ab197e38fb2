"""Checks for Exercise 7 (encoder) and the catalogue of encoder mistakes.

Oracles are Hugging Face's BERT modules holding the same weights (``BertModel`` and its
``embeddings`` and ``pooler``; ``AutoModel`` on the packaged all-MiniLM-L6-v2), and a direct
per-row average for mean pooling. A pre-LN encoder has no Hugging Face counterpart: that case
compares with the reference. ``hidden=True`` adds float64, a batch of one, full-length inputs,
more padding, a text with no real token and a second checkpoint.

Its modules: `mistakes`, `shared`, `layers`, `stack`, `checkpoint`, `slips`.
"""

from course.checks.encoder.checkpoint import check_copy_checkpoint, check_copy_checkpoint_errors
from course.checks.encoder.layers import check_embeddings, check_pooler
from course.checks.encoder.mistakes import MISTAKES
from course.checks.encoder.slips import SLIPS
from course.checks.encoder.stack import check_encoder, check_encoder_padding, check_mean_pool

__all__ = [
    "MISTAKES", "SLIPS", "check_copy_checkpoint", "check_copy_checkpoint_errors",
    "check_embeddings", "check_encoder", "check_encoder_padding", "check_mean_pool",
    "check_pooler",
]
