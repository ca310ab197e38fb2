"""Inputs the training checks share: a small seeded GPT, its weights flattened, token ids."""

from __future__ import annotations

import torch
from torch import nn

# ---------------------------------------------------------------- shared inputs


def _gpt(seed: int, dropout: float = 0.0, vocab: int = 13, block: int = 8, layers: int = 1):
    from solutions.decoder import GPT
    from solutions.model import ModelConfig

    torch.manual_seed(seed)
    return GPT(ModelConfig(vocab_size=vocab, block_size=block, n_layer=layers, n_head=2,
                           n_embd=16, dropout=dropout))


def _weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _ids(vocab: int, shape, seed: int) -> torch.Tensor:
    return torch.randint(vocab, shape, generator=torch.Generator().manual_seed(seed))
