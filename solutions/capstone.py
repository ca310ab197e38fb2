"""The capstone's assembly: a GPT built from a package of transformer parts, trained with that
package's own loop, and sampled with its own ``generate``.

A *package* is any namespace holding ``GPT``, ``ModelConfig``, ``fit`` and ``generate`` with the
signatures of this course's (a learner's collected package, say). Nothing here runs a part of
its own: every module, step and sample comes from the package.
"""

from __future__ import annotations

import torch
from torch import nn


def build_gpt(mine, vocab_size: int, block_size: int, n_layer: int, n_head: int,
              n_embd: int) -> nn.Module:
    """The package's GPT with the package's ModelConfig of these sizes, built from its modules
    as defined (``fused=False``: no fused twin stands in for any of them)."""
    config = mine.ModelConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer,
                              n_head=n_head, n_embd=n_embd, fused=False)
    return mine.GPT(config)


def train_gpt(mine, model: nn.Module, data: dict[str, torch.Tensor], config) -> list[float]:
    """Train `model` in place on data["train"] with the package's ``fit`` (its own step,
    schedule and parameter groups); returns the loss of every step."""
    return [float(loss) for loss in mine.fit(model, data, config)]


def complete(mine, model: nn.Module, prompt: list[int], n_new: int, seed: int = 0) -> list[int]:
    """`prompt` continued by `n_new` tokens sampled with the package's ``generate`` (in eval
    mode, from a generator seeded with `seed`); the model is left in the mode it came in."""
    was_training = model.training
    model.eval()
    idx = torch.tensor([prompt], dtype=torch.long)                 # (1, T)
    out = mine.generate(model, idx, n_new, generator=torch.Generator().manual_seed(seed))
    model.train(was_training)
    return out[0].tolist()                                         # T + n_new ids
