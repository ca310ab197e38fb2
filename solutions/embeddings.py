"""Embeddings: token ids -> vectors, plus a vector for each position.

- :func:`one_hot_embed` -- the textbook definition: ``one_hot(ids) @ weight``. It computes
  exactly what a lookup computes, only slower; it is here to teach, not to use.
- :class:`TokenEmbedding` -- the lookup table: row ``i`` of ``weight`` (V, C) is token ``i``'s
  vector. Same layout and result as ``torch.nn.Embedding``.
- :class:`LearnedPositionalEmbedding` -- one learned vector per position 0..max_len-1 (BERT, GPT-2).
- :func:`sinusoidal_table` and :class:`SinusoidalPositionalEncoding` -- the fixed sin/cos
  positions of "Attention Is All You Need", kept in a buffer.
- :class:`TransformerEmbedding` -- token vector + position vector, then dropout: what the first
  transformer layer reads.

Shapes: ids (B, T); vectors (B, T, C) with C = d_model. Position modules read T from their input,
ids (B, T) or activations (B, T, C), and return the (T, C) vectors to add; (T, C) broadcasts
over the batch. Every public function and module checks its input (`solutions.inputs`). The names ``word_embeddings`` and ``position_embeddings`` are BERT's, so BERT's
``embeddings.word_embeddings.weight`` and ``embeddings.position_embeddings.weight`` load as they
are.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from solutions.inputs import require_ids, require_positive_int, require_probability, require_tensor

# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------


def one_hot_embed(ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Embed ids (any shape (...)) as one_hot(ids) @ weight: (..., V) @ (V, C) -> (..., C).
    The product picks row ids[...] of weight, so it equals weight[ids]."""
    require_tensor(weight, "weight", min_dim=2)
    require_ids(ids, weight.shape[0])
    one_hot = F.one_hot(ids.long(), num_classes=weight.shape[0]).to(weight.dtype)  # (..., V)
    return one_hot @ weight  # (..., C)


class TokenEmbedding(nn.Module):
    """A learned lookup table: token id i -> row i of `weight` (vocab_size, d_model).

    Initialised N(0, 0.02^2) as in BERT and GPT-2 (nn.Embedding uses N(0, 1))."""

    def __init__(self, vocab_size: int, d_model: int):
        super().__init__()
        require_positive_int(vocab_size, "vocab_size")
        require_positive_int(d_model, "d_model")
        self.weight = nn.Parameter(torch.randn(vocab_size, d_model) * 0.02)  # (V, C)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (...) of integers in [0, vocab_size) -> vectors (..., C)."""
        require_ids(ids, self.weight.shape[0])
        return self.weight[ids]  # a row lookup; its gradient reaches only the rows used


# ---------------------------------------------------------------------------------------------
# Positions
# ---------------------------------------------------------------------------------------------


class LearnedPositionalEmbedding(nn.Module):
    """One learned vector per position: row p of `weight` (max_len, d_model) is position p.
    BERT (max_len 512) and GPT-2 (1024) use these; no position beyond max_len exists."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        require_positive_int(max_len, "max_len")
        require_positive_int(d_model, "d_model")
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * 0.02)  # (L, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ids (B, T) or activations (B, T, C) -> position vectors (T, C) for 0..T-1."""
        require_tensor(x, "x", min_dim=2, floating=False)
        T = x.size(1)
        if T > self.max_len:
            raise ValueError(f"{T} tokens but only max_len={self.max_len} learned positions")
        pos = torch.arange(T, device=x.device)  # (T,) on the input's device: 0, 1, ..., T-1
        return self.weight[pos]  # (T, C)


def sinusoidal_table(
    max_len: int, d_model: int, *, dtype: torch.dtype = torch.float32, device=None
) -> torch.Tensor:
    """The fixed position table (max_len, d_model), sin and cos interleaved:

        PE[pos, 2i]   = sin(pos / 10000^(2i / d_model))
        PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))

    Computed in float64, returned in `dtype` on `device`."""
    require_positive_int(max_len, "max_len")
    require_positive_int(d_model, "d_model")
    if d_model % 2:
        raise ValueError(f"d_model must be even (sin/cos pairs), got {d_model}")
    pos = torch.arange(max_len, dtype=torch.float64, device=device).unsqueeze(1)  # (L, 1)
    i = torch.arange(d_model // 2, dtype=torch.float64, device=device)  # (C/2,) pair index
    angle = pos / 10000.0 ** (2 * i / d_model)  # (L, C/2): frequencies fall from 1 to ~1/10000
    table = torch.empty(max_len, d_model, dtype=torch.float64, device=device)
    table[:, 0::2] = torch.sin(angle)  # even features
    table[:, 1::2] = torch.cos(angle)  # odd features
    return table.to(dtype)


class SinusoidalPositionalEncoding(nn.Module):
    """The fixed sin/cos positions of the original transformer; nothing to learn.

    The table is a buffer: it moves with .to(device) and .double(), and is left out of the
    state_dict (persistent=False) because it is recomputed from (max_len, d_model)."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = max_len
        self.register_buffer("pe", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ids (B, T) or activations (B, T, C) -> position vectors (T, C) for 0..T-1."""
        require_tensor(x, "x", min_dim=2, floating=False)
        T = x.size(1)
        if T > self.max_len:
            raise ValueError(f"{T} tokens but the table has max_len={self.max_len} rows")
        return self.pe[:T]  # (T, C)


# ---------------------------------------------------------------------------------------------
# Tokens + positions
# ---------------------------------------------------------------------------------------------


class TransformerEmbedding(nn.Module):
    """What a transformer's first layer reads: dropout(token vector + position vector).

    positions="learned" (BERT, GPT-2) or "sinusoidal" (the original transformer). BERT also adds
    token-type vectors and a LayerNorm here; the encoder chapter adds those."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        max_len: int,
        dropout: float = 0.1,
        positions: str = "learned",
    ):
        super().__init__()
        require_probability(dropout, "dropout")
        self.word_embeddings = TokenEmbedding(vocab_size, d_model)
        if positions == "learned":
            self.position_embeddings = LearnedPositionalEmbedding(max_len, d_model)
        elif positions == "sinusoidal":
            self.position_embeddings = SinusoidalPositionalEncoding(max_len, d_model)
        else:
            raise ValueError(f'positions must be "learned" or "sinusoidal", got {positions!r}')
        self.drop = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> vectors (B, T, C)."""
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            raise ValueError("ids must be a (B, T) tensor of token ids, got "
                             f"{tuple(ids.shape) if isinstance(ids, torch.Tensor) else ids!r}")
        x = self.word_embeddings(ids) + self.position_embeddings(ids)  # (B, T, C) + (T, C)
        return self.drop(x)
