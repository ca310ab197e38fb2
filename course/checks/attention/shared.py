"""What the attention checks share: shapes in messages, padding masks, and mistakes told apart
by what they do."""

from __future__ import annotations

import torch

from course.checks import oracles
from course.checks.core import close


def _fmt(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _pad(lengths: list[int], T: int) -> torch.Tensor:
    """(B, 1, 1, T) padding mask, the canonical form: the first lengths[b] keys are real."""
    return oracles.lengths_mask(lengths, T)[:, None, None, :]


# ---------------------------------------------------------------- effects: mistakes by what they do


def _near(a: torch.Tensor, b: torch.Tensor) -> bool:
    return close(a, b, rtol=1e-3, atol=1e-4)


def _scaled_by(expected: torch.Tensor, factor: float):
    """got == expected * factor (the scale of the scores is off by that factor)."""
    return lambda got: _near(got, expected * factor)


def _softmax_effects(scores: torch.Tensor, mask: torch.Tensor | None):
    """Effects of masked_softmax mistakes, whatever code produced them."""
    allowed = torch.ones_like(scores, dtype=torch.bool) if mask is None \
        else mask.expand_as(scores)
    some = allowed.any(-1)  # rows with at least one key to attend to

    def over_queries(got):  # columns sum to one, rows do not
        return _near(got.sum(-2), torch.ones_like(got.sum(-2))) \
            and not _near(got.sum(-1), torch.ones_like(got.sum(-1)))

    def after_softmax(got):  # zero on masked keys, but kept rows sum to less than one
        return bool((got[~allowed] == 0).all()) and bool((got.sum(-1)[some] < 1 - 1e-3).any())

    def inverted(got):  # weight only where attending is NOT allowed
        return bool((~allowed).any()) and bool((got[allowed & some[..., None]] < 1e-6).all())

    def nan_rows(got):
        return bool(got.isnan().any())

    def uniform_rows(got):
        empty = ~some
        return bool(empty.any()) and _near(got[empty], torch.full_like(got[empty],
                                                                        1 / got.size(-1)))

    return [("softmax_wrong_axis", over_queries), ("mask_after_softmax", after_softmax),
            ("mask_inverted", inverted), ("neg_inf_nan", nan_rows),
            ("fully_masked_row_uniform", uniform_rows)]
