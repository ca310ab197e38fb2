"""Checks for Exercise 9 (training) and the catalogue of training mistakes.

Oracles: the reference (`copy_of`) run on the same seeded inputs; the schedule is also checked
against PyTorch's own LinearLR + CosineAnnealingLR in tests/solutions/test_training.py. Every
probe seeds the global random generator first, so dropout and batches are the same for the learner, the
reference and each mutant, and a mutant's result can be matched exactly. The last part trains a
real GPT on the grammar corpus and compares its validation loss with the exact floor.

Its modules: `mistakes`, `shared`, `schedule`, `step`, `checkpoint`, `fit`, `slips`.
"""

from course.checks.training.checkpoint import check_load_checkpoint, check_save_checkpoint
from course.checks.training.fit import (
    FLOOR_MODEL,
    FLOOR_TRAIN,
    check_fit,
    check_fit_floor,
    floor_data,
)
from course.checks.training.mistakes import MISTAKES
from course.checks.training.schedule import check_lr_at, check_lr_at_edges, check_param_groups
from course.checks.training.slips import SLIPS
from course.checks.training.step import (
    check_estimate_loss,
    check_estimate_loss_modes,
    check_train_step,
    check_train_step_accumulation,
)

__all__ = [
    "FLOOR_MODEL", "FLOOR_TRAIN", "MISTAKES", "SLIPS", "check_estimate_loss",
    "check_estimate_loss_modes", "check_fit", "check_fit_floor", "check_load_checkpoint",
    "check_lr_at", "check_lr_at_edges", "check_param_groups", "check_save_checkpoint",
    "check_train_step", "check_train_step_accumulation", "floor_data",
]
