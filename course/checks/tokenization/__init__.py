"""Checks for Exercise 1 (tokenization) and the catalogue of tokenization mistakes.

Each check takes the learner's object; `hidden=True` runs the cases kept out of the student
notebook (other texts, Unicode, edge cases). Oracles: `collections.Counter`, the fast trainer
`train_bpe` (an independent implementation), Hugging Face `tokenizers` WordPiece, and the
reference rebuilt from its source where nothing independent exists.

Its modules: `mistakes`, `bpe`, `wordpiece`, `slips`.
"""

from course.checks.tokenization.bpe import (
    check_apply_merges,
    check_best_pair,
    check_build_vocab,
    check_char_tokenizer,
    check_decode_bytes,
    check_get_pair_counts,
    check_merge,
    check_train_bpe,
)
from course.checks.tokenization.mistakes import MISTAKES
from course.checks.tokenization.slips import SLIPS
from course.checks.tokenization.wordpiece import check_build_batch, check_wordpiece

__all__ = [
    "MISTAKES", "SLIPS", "check_apply_merges", "check_best_pair", "check_build_batch",
    "check_build_vocab", "check_char_tokenizer", "check_decode_bytes", "check_get_pair_counts",
    "check_merge", "check_train_bpe", "check_wordpiece",
]
