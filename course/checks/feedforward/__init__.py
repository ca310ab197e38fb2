"""Checks for Exercise 4 (the feed-forward network) and the catalogue of its mistakes.

Oracles are independent of the reference: `torch.nn.functional.gelu` (with `approximate="none"`
and `"tanh"`), `torch.nn.Linear` layers around PyTorch's activations, a `torch.nn.Conv1d` of
kernel size 1 (the position-wise view), and parameter counts of `torch.nn.Linear` layers built
on the meta device. `hidden=True` adds float64, other shapes, a batch of one, extreme inputs and
other sizes. The constructor of `FeedForward` is given (tests/solutions/test_feedforward.py proves
its layout); the checks grade its `forward`. `SLIPS` is a second catalogue: wrong versions written
as a learner would write them (not edits of the reference); tests prove each fails and never
gets another mistake's hint.

Its modules: `mistakes`, `gelu`, `network`, `slips`.
"""

from course.checks.feedforward.gelu import check_gelu, check_gelu_extremes, check_gelu_tanh
from course.checks.feedforward.mistakes import MISTAKES
from course.checks.feedforward.network import (
    check_feedforward,
    check_feedforward_dropout,
    check_feedforward_parameters,
    check_output_dropout,
)
from course.checks.feedforward.slips import SLIPS

__all__ = [
    "MISTAKES", "SLIPS", "check_feedforward", "check_feedforward_dropout",
    "check_feedforward_parameters", "check_gelu", "check_gelu_extremes", "check_gelu_tanh",
    "check_output_dropout",
]
