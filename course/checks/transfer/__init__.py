"""Checks for Exercise 10 (transfer learning) and its catalogues of mistakes.

Oracles are written here, independently of the reference: the parameters that should learn
are listed by name, counted over unique tensors, and compared with what the learner's functions
leave trainable; features are the eval-mode, no-gradient, mask-weighted mean of the encoder's
output; post-processing is a softmax over the classes. The head of Part 4 is judged by what it
achieves on all-MiniLM-L6-v2 features of the course's reviews. The LoRA layer of Part 6 is
compared with its formula written out here: W x + b + (alpha / r) B A dropout(x), and merged
weights W + (alpha / r) B A, from weights loaded into the learner's module.

Its modules: `mistakes`, `shared`, `freezing`, `head`, `lora`, `slips`.
"""

from course.checks.transfer.freezing import (
    check_count_trainable,
    check_freeze,
    check_trainable_optimizer,
    check_unfreeze,
)
from course.checks.transfer.head import check_extract_features, check_postprocess, check_train_head
from course.checks.transfer.lora import check_lora_forward, check_lora_merge
from course.checks.transfer.mistakes import MISTAKES
from course.checks.transfer.slips import SLIPS

__all__ = [
    "MISTAKES", "SLIPS", "check_count_trainable", "check_extract_features", "check_freeze",
    "check_lora_forward", "check_lora_merge", "check_postprocess", "check_train_head",
    "check_trainable_optimizer", "check_unfreeze",
]
