"""Masked language modelling: BERT's pretraining inputs.

:func:`mask_tokens` picks about 15% of the (non-special) tokens as prediction targets. Of those,
80% are replaced by ``[MASK]``, 10% by a random token and 10% are left as they are, so the model
cannot rely on ``[MASK]`` marking the only positions that matter (``[MASK]`` never appears when
the model is used later). The labels hold the original id at the chosen positions and -100
(the ``ignore_index`` of ``F.cross_entropy``) everywhere else.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100  # label of a position the loss skips (F.cross_entropy's default)


def mask_tokens(
    input_ids: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    special_ids=(),
    p: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids (B, T) -> (inputs, labels), both (B, T) long.

    Each token whose id is not in `special_ids` ([CLS], [SEP], [PAD], ...) is chosen with
    probability `p`; a chosen token becomes `mask_token_id` (80%), a uniformly random id in
    [0, vocab_size) (10%), or stays (10%). labels = the original id where chosen, else -100.
    """
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype not in (torch.long, torch.int):
        raise TypeError("input_ids must be an integer tensor of token ids (B, T)")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p is a probability, got {p}")
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_token_id {mask_token_id} is outside the vocabulary 0..{vocab_size - 1}")
    input_ids = input_ids.long()
    special = torch.tensor(list(special_ids), dtype=torch.long, device=input_ids.device)
    device = input_ids.device
    chosen = torch.rand(input_ids.shape, generator=generator, device=device) < p
    chosen &= ~torch.isin(input_ids, special)              # never a special token
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))

    kind = torch.rand(input_ids.shape, generator=generator, device=device)  # 80 / 10 / 10
    to_mask = chosen & (kind < 0.8)
    to_random = chosen & (kind >= 0.8) & (kind < 0.9)      # the last 10% stay unchanged
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, device=device)
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    inputs = torch.where(to_random, random_ids, inputs)
    return inputs, labels
