"""Inputs and oracles the transfer checks share: a tiny encoder, batches, trainable names and
counts."""

from __future__ import annotations

import torch
from torch import nn

# ---------------------------------------------------------------- shared inputs


def _tiny_encoder(n_layer: int = 2, dropout: float = 0.0, seed: int = 0):
    """A small post-LN Encoder, the same weights for the same arguments (the learner's global
    random state is left alone)."""
    from solutions.encoder import Encoder
    from solutions.model import ModelConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Encoder(ModelConfig(vocab_size=40, block_size=12, n_layer=n_layer, n_head=2,
                                   n_embd=8, dropout=dropout, norm_first=False))


class _Scaled(nn.Module):
    """An encoder with one parameter of its own (a learned output scale) on top."""

    def __init__(self, n_layer: int):
        super().__init__()
        self.encoder = _tiny_encoder(n_layer)
        self.scale = nn.Parameter(torch.ones(()))


def _batch(B: int, T: int, lengths: list[int], seed: int):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()   # (B, T)
    ids = torch.randint(1, 40, (B, T), generator=g).masked_fill(mask == 0, 0)
    return ids, mask


def _trainable_names(model: nn.Module) -> list[str]:
    return sorted(n for n, p in model.named_parameters() if p.requires_grad)


def _flat(module: nn.Module) -> torch.Tensor:
    """All of a module's parameters in one vector."""
    return torch.cat([p.flatten() for p in module.parameters()])


def _oracle_count(model: nn.Module) -> int:
    unique = {id(p): p for p in model.parameters()}
    return sum(p.numel() for p in unique.values() if p.requires_grad)
