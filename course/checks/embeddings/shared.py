"""Oracles (torch.nn and the closed form) and probes the embedding checks share, with the device
rule's `on_meta`."""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn

from course.checks import oracles
from course.checks.core import CheckFailed, close, compare, cpu_tensor_spy
from course.checks.oracles import closed_form_table

# ---------------------------------------------------------------- oracles (torch.nn + closed form)


def _positions_of(x: torch.Tensor, max_len: int) -> torch.Tensor:
    T_ = x.size(1)
    if T_ > max_len:
        raise ValueError(f"{T_} tokens, max_len {max_len}")
    return torch.arange(T_, device=x.device)


class EmbeddingPositions(nn.Embedding):
    """Oracle for learned positions: an nn.Embedding (max_len, d_model) looked up at 0..T-1."""

    def forward(self, x):
        return super().forward(_positions_of(x, self.num_embeddings))


class ClosedFormPositions(nn.Module):
    """Oracle for sinusoidal positions: rows 0..T-1 of the closed-form table."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.register_buffer("pe", closed_form_table(max_len, d_model), persistent=False)

    def forward(self, x):
        return self.pe[_positions_of(x, self.pe.size(0))]


class NNTransformerEmbedding(nn.Module):
    """Oracle for token + position with dropout, from torch.nn parts under BERT's names."""

    def __init__(self, vocab_size, d_model, max_len, dropout=0.1, positions="learned"):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, d_model)
        kind = {"learned": EmbeddingPositions, "sinusoidal": ClosedFormPositions}[positions]
        self.position_embeddings = kind(max_len, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids):
        return self.dropout(self.word_embeddings(ids) + self.position_embeddings(ids))


# ---------------------------------------------------------------- probes


@contextmanager
def _seeded(seed: int):
    """Run with torch's CPU random generator seeded, then give the learner's state back."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _randn(*shape, seed: int, dtype=torch.float32) -> torch.Tensor:
    return oracles.randn(*shape, seed=seed, dtype=dtype)


def _ids(vocab_size: int, shape: tuple, seed: int) -> torch.Tensor:
    return oracles.token_ids(vocab_size, shape, seed)


def _against(learner, probe, oracle, *, what: str, effects=None, **tolerance) -> None:
    """compare() with the oracle's result computed once by the same probe; `effects(expected)`
    gives the mistakes recognised by what they do to that result."""
    __tracebackhide__ = True
    expected = probe(oracle)
    compare(learner, probe, expected, what=what,
            effects=effects(expected) if effects else (), **tolerance)


def _table_effects(expected: torch.Tensor):
    """Mistakes of sinusoidal_table by their effect on the (L, d) table, whatever the code."""
    sin, cos = expected[:, 0::2], expected[:, 1::2]                  # (L, d/2) each
    swapped = torch.stack([cos, sin], dim=-1).flatten(-2)            # cos in the even features
    concatenated = torch.cat([sin, cos], dim=-1)                     # all sines, then all cosines

    return [("sin_cos_swapped", lambda got: close(got, swapped)),
            ("sin_cos_concatenated", lambda got: close(got, concatenated))]


def on_meta(module: nn.Module, *inputs: torch.Tensor | None) -> tuple:
    """(device, shape, names of the torch functions that made CPU tensors) of module(*inputs),
    with the module and the tensors on the meta device. Indexing a meta table with a CPU
    `arange` silently works, so the spy, not the output's device, is what catches it."""
    module = module.to("meta")
    inputs = tuple(x if x is None else x.to("meta") for x in inputs)
    with cpu_tensor_spy() as spy:
        out = module(*inputs)
    return out.device.type, tuple(out.shape), sorted(set(spy.made_on_cpu))


def too_long(module: nn.Module, x: torch.Tensor, max_len: int) -> tuple:
    """(error type or None, whether its message names both T and max_len, output shape)."""
    try:
        out = module(x)
    except Exception as error:
        text = str(error)
        return type(error).__name__, str(x.size(1)) in text and str(max_len) in text, None
    return None, False, tuple(out.shape)


def _holding(module: nn.Module, table: torch.Tensor) -> nn.Module:
    """The module with its `weight` set to `table` (checked for shape first)."""
    if tuple(module.weight.shape) != tuple(table.shape):
        raise CheckFailed(f"{type(module).__name__}.weight has shape "
                          f"{tuple(module.weight.shape)}; expected {tuple(table.shape)}, one row "
                          "per id")
    with torch.no_grad():
        module.weight.copy_(table)
    return module


def _weight_grad(module: nn.Module, x: torch.Tensor):
    """Gradient of a weighted sum of module(x) with respect to module.weight (None if none)."""
    out = module(x)
    if not out.requires_grad:
        return None
    (out * torch.arange(out.numel(), dtype=out.dtype).reshape(out.shape)).sum().backward()
    return module.weight.grad


TOL32 = dict(rtol=1e-5, atol=2e-5)  # sin/cos of angles up to ~100, computed in float32
TOL64 = dict(rtol=1e-9, atol=1e-9)
