"""The parts that turned GPT-2 into today's decoders (Llama, Qwen, Mistral): chapter 12.

- :func:`rotary_tables`, :func:`rotate_half`, :func:`apply_rotary`, :class:`RotaryEmbedding` --
  rotary positions: each query and key is rotated by an angle proportional to its position, so
  the score of a query and a key depends on how far apart they are, not where they sit.
  :class:`NoPositionTable` is what a decoder with rotary positions adds to its embeddings: 0.
- :func:`swiglu_hidden`, :class:`SwiGLU` -- the gated feed-forward network
  ``down(silu(gate(x)) * up(x))``, two thirds as wide so it holds as many parameters as GPT-2's;
  :class:`SiLUFeedForward`, ``down(silu(up(x)))``, the same network without its gate.
- :func:`repeat_kv`, :class:`GroupedQueryAttention` -- ``n_kv_heads`` key/value heads shared by
  groups of query heads: a KV cache ``n_heads / n_kv_heads`` times smaller. With ``qk_norm``
  (Qwen3) each query and key head is RMS-normalised before the rotation.

RMSNorm itself is chapter 6's :class:`~solutions.normalization.RMSNorm`. The pairing of features
follows Hugging Face's Llama (feature ``i`` turns with feature ``i + D/2``), so weights load
without a permutation. Shapes: ``(B, T, C)`` outside attention, ``(B, H, T, D)`` inside.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from solutions.attention import FusedMultiHeadAttention, MultiHeadAttention, split_heads
from solutions.inputs import require_positive_int, require_probability, require_tensor
from solutions.normalization import RMSNorm

# ---------------------------------------------------------------------------------------------
# Rotary positions
# ---------------------------------------------------------------------------------------------


def rotary_tables(head_dim: int, max_len: int, theta: float = 10000.0,
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every position's angles, each (max_len, head_dim): position p turns the
    pair (i, i + D/2) by p * theta^(-2i/D), i < D/2 (the same angle in both halves)."""
    require_positive_int(head_dim, "head_dim")
    require_positive_int(max_len, "max_len")
    if head_dim % 2:
        raise ValueError(f"head_dim must be even (features turn in pairs), got {head_dim}")
    if not theta > 1:
        raise ValueError(f"theta must be > 1 (the base of the wavelengths), got {theta!r}")
    inv_freq = theta ** -(torch.arange(0, head_dim, 2, dtype=torch.float32, device=device)
                          / head_dim)                     # (D/2,) from 1 down to ~1/theta
    pos = torch.arange(max_len, dtype=torch.float32, device=device)
    angles = torch.outer(pos, inv_freq)                   # (max_len, D/2)
    angles = torch.cat([angles, angles], dim=-1)          # (max_len, D)
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(..., D) -> (..., D): the halves (a, b) become (-b, a), a quarter turn of every pair."""
    a, b = x.chunk(2, dim=-1)                             # 2 x (..., D/2)
    return torch.cat([-b, a], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys x (B, H, T, D) by their positions' angles, cos and sin (T, D)."""
    require_tensor(x, "x", min_dim=2)
    if cos.shape != sin.shape or cos.shape != x.shape[-2:]:
        raise ValueError(f"cos and sin must be (T, D) = {tuple(x.shape[-2:])}, got "
                         f"{tuple(cos.shape)} and {tuple(sin.shape)}")
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)  # (B, H, T, D)


class RotaryEmbedding(nn.Module):
    """The cos/sin tables of :func:`rotary_tables` kept as buffers; ``forward(x, start)``
    rotates x (B, H, T, D) as positions start, ..., start + T - 1 (start > 0 with a cache)."""

    def __init__(self, head_dim: int, max_len: int, theta: float = 10000.0):
        super().__init__()
        cos, sin = rotary_tables(head_dim, max_len, theta)
        self.head_dim, self.max_len, self.theta = head_dim, max_len, theta
        self.register_buffer("cos", cos, persistent=False)  # (max_len, D)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        T = x.size(-2)
        if start < 0 or start + T > self.max_len:
            raise ValueError(f"positions {start}..{start + T - 1} are outside the table of "
                             f"{self.max_len}")
        return apply_rotary(x, self.cos[start:start + T], self.sin[start:start + T])


class NoPositionTable(nn.Module):
    """A decoder's position table when positions are rotary: they act inside attention, so
    each token gets 0 added for its position. position ids (T,) -> 0, broadcast to (T, C)."""

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return pos.new_zeros((), dtype=torch.get_default_dtype())


# ---------------------------------------------------------------------------------------------
# SwiGLU feed-forward
# ---------------------------------------------------------------------------------------------


def swiglu_hidden(d_model: int, multiple_of: int = 1) -> int:
    """The hidden width of a SwiGLU network with the parameters of a 4 * d_model GELU one:
    three matrices instead of two, so 2/3 * 4 * d_model, rounded up to ``multiple_of``."""
    require_positive_int(d_model, "d_model")
    require_positive_int(multiple_of, "multiple_of")
    hidden = 8 * d_model // 3
    return -(-hidden // multiple_of) * multiple_of


class SwiGLU(nn.Module):
    """Gated feed-forward network: ``dropout(down(silu(gate(x)) * up(x)))``. The gate's SiLU
    decides, feature by feature, how much of ``up(x)`` passes. Hugging Face's Llama MLP names:
    ``gate_proj`` -> ``gate``, ``up_proj`` -> ``up``, ``down_proj`` -> ``down``."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, bias: bool = False):
        super().__init__()
        require_positive_int(d_model, "d_model")
        require_positive_int(d_ff, "d_ff")
        require_probability(dropout, "dropout")
        self.d_model, self.d_ff, self.dropout = d_model, d_ff, dropout
        self.gate = nn.Linear(d_model, d_ff, bias=bias)   # C -> d_ff, through SiLU
        self.up = nn.Linear(d_model, d_ff, bias=bias)     # C -> d_ff, the values gated
        self.down = nn.Linear(d_ff, d_model, bias=bias)   # d_ff -> C

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., T, C) -> (..., T, C), each token on its own."""
        if x.dim() < 1 or x.size(-1) != self.d_model:
            raise ValueError(f"x must have {self.d_model} features in its last axis, got "
                             f"shape {tuple(x.shape)}")
        h = F.silu(self.gate(x)) * self.up(x)             # (B, T, d_ff)
        return F.dropout(self.down(h), p=self.dropout, training=self.training)


class SiLUFeedForward(nn.Module):
    """The ungated network, ``dropout(down(silu(up(x))))``: SwiGLU without its gate, at GPT-2's
    width (4 * d_model), the baseline against which the gate is measured."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        require_positive_int(d_model, "d_model")
        require_positive_int(d_ff, "d_ff")
        require_probability(dropout, "dropout")
        self.d_model, self.d_ff, self.dropout = d_model, d_ff, dropout
        self.up = nn.Linear(d_model, d_ff, bias=bias)     # C -> d_ff, through SiLU
        self.down = nn.Linear(d_ff, d_model, bias=bias)   # d_ff -> C

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., T, C) -> (..., T, C), each token on its own."""
        if x.dim() < 1 or x.size(-1) != self.d_model:
            raise ValueError(f"x must have {self.d_model} features in its last axis, got "
                             f"shape {tuple(x.shape)}")
        h = F.silu(self.up(x))                            # (B, T, d_ff)
        return F.dropout(self.down(h), p=self.dropout, training=self.training)


# ---------------------------------------------------------------------------------------------
# Grouped-query attention
# ---------------------------------------------------------------------------------------------


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, H_kv, T, D) -> (B, H_kv * n_rep, T, D): each key/value head repeated n_rep times in
    a row, so query heads g * n_rep ... (g + 1) * n_rep - 1 all read head g."""
    require_positive_int(n_rep, "n_rep")
    if x.dim() != 4:
        raise ValueError(f"x must be (B, H_kv, T, D), got shape {tuple(x.shape)}")
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


class GroupedQueryAttention(MultiHeadAttention):
    """Self-attention with ``n_kv_heads`` key/value heads shared by ``n_heads // n_kv_heads``
    query heads each (``n_kv_heads == n_heads``: multi-head attention; 1: multi-query), rotary
    positions when given ``rotary`` and, with ``qk_norm``, an RMSNorm over each query and key
    head (Qwen3). The cache stores only the n_kv_heads heads. ``head_dim`` defaults to
    d_model // n_heads. Hugging Face's names: ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``
    -> ``query``, ``key``, ``value``, ``out``; ``q_norm``, ``k_norm`` keep theirs."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, dropout: float = 0.0,
                 bias: bool = False, *, head_dim: int | None = None,
                 rotary: RotaryEmbedding | None = None, qk_norm: bool = False,
                 eps: float = 1e-6):
        require_positive_int(n_kv_heads, "n_kv_heads")
        if n_heads % n_kv_heads:
            raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads "
                             f"({n_kv_heads}): each key/value head serves a whole group")
        head_dim = d_model // n_heads if head_dim is None else head_dim
        require_positive_int(head_dim, "head_dim")
        super().__init__(n_heads * head_dim, n_heads, dropout, bias)
        self.d_model, self.n_kv_heads, self.n_rep = d_model, n_kv_heads, n_heads // n_kv_heads
        self.query = nn.Linear(d_model, n_heads * head_dim, bias=bias)
        self.key = nn.Linear(d_model, n_kv_heads * head_dim, bias=bias)
        self.value = nn.Linear(d_model, n_kv_heads * head_dim, bias=bias)
        self.out = nn.Linear(n_heads * head_dim, d_model, bias=bias)
        if rotary is not None and rotary.head_dim != head_dim:
            raise ValueError(f"rotary tables are for head_dim {rotary.head_dim}, the heads "
                             f"have {head_dim}")
        self.rotary = rotary
        self.q_norm = RMSNorm(head_dim, eps) if qk_norm else None
        self.k_norm = RMSNorm(head_dim, eps) if qk_norm else None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, need_weights: bool = False, *,
                causal: bool = False, cache=None):
        """As :meth:`MultiHeadAttention.forward`, self-attention only (context must be None);
        new positions follow the cached ones."""
        if context is not None:
            raise ValueError("GroupedQueryAttention is self-attention: context must be None")
        self.check_inputs(x, None, mask)
        q, k, v = self.project(x)                         # (B, H, T, D), 2 x (B, H_kv, T, D)
        if self.rotary is not None:
            start = 0 if cache is None else cache.length  # the new tokens' first position
            q, k = self.rotary(q, start), self.rotary(k, start)
        if cache is not None:
            k, v = cache.update(k, v)                     # (B, H_kv, T_past + T, D)
        k, v = repeat_kv(k, self.n_rep), repeat_kv(v, self.n_rep)  # (B, H, T_k, D)
        return self.attend(q, k, v, mask, causal, need_weights)

    def project(self, x: torch.Tensor, context: torch.Tensor | None = None):
        """Query heads (B, H, T, D) and key and value heads (B, H_kv, T, D) of x, the queries
        and keys RMS-normalised per head when ``qk_norm``."""
        q = split_heads(self.query(x), self.n_heads)      # (B, H, T, D)
        k = split_heads(self.key(x), self.n_kv_heads)     # (B, H_kv, T, D)
        v = split_heads(self.value(x), self.n_kv_heads)   # (B, H_kv, T, D)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        return q, k, v


class FusedGroupedQueryAttention(GroupedQueryAttention, FusedMultiHeadAttention):
    """:class:`GroupedQueryAttention` attending as :class:`FusedMultiHeadAttention` does
    (``is_causal=True`` and no mask tensor when nothing else is masked); same parameters."""
