"""Attention: every token gathers information from the others, weighted by relevance.

- :func:`attention_loop` -- one query at a time, in plain Python (the definition, slowly).
- :func:`attention_scores`, :func:`masked_softmax`, :func:`scaled_dot_product_attention` --
  the matrix form, step by step: scores ``q @ k^T / sqrt(d_k)``, a softmax that respects a mask,
  and the weighted sum of the values.
- :func:`split_heads`, :func:`merge_heads`, :class:`MultiHeadAttention` -- several attention
  heads side by side, with learned query/key/value/output projections laid out like BERT's.
- :func:`causal_mask`, :func:`padding_mask` -- the two masks every transformer uses.

Masks are boolean and **True means "may attend"**: the same sense as
``torch.nn.functional.scaled_dot_product_attention`` and as a tokenizer's ``attention_mask``
(1 = real token, 0 = padding). Shapes: ``(B, T, C)`` outside attention, ``(B, H, T, D)`` inside
(``H`` heads of size ``D = C // H``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------------------------
# Scaled dot-product attention
# ---------------------------------------------------------------------------------------------


def attention_loop(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Attention for one sequence, one query at a time: q (T_q, D), k (T_k, D), v (T_k, D_v)."""
    out = []
    for q_i in q:                                         # each query token
        scores = [float(q_i @ k_j) / math.sqrt(q.size(-1)) for k_j in k]
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]        # softmax, stable
        weights = [e / sum(exps) for e in exps]
        out.append(sum(w * v_j for w, v_j in zip(weights, v, strict=True)))  # weighted average
    return torch.stack(out)                               # (T_q, D_v)


def attention_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Scaled similarity of every query with every key: (..., T_q, D), (..., T_k, D) ->
    (..., T_q, T_k), divided by sqrt(D) so the scores keep unit variance."""
    return q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., T_q, T_k)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the keys (last axis). mask: bool, True = may attend, broadcastable to scores.
    A masked key gets weight 0; a row with no key to attend to is all zeros (never NaN)."""
    if mask is not None:
        # the most negative finite number, not -inf: a fully masked row stays finite
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)               # (..., T_q, T_k), rows sum to 1
    if mask is not None:
        weights = weights * mask                          # fully masked rows become all zero
    return weights


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d_k)) v. q (..., T_q, D), k (..., T_k, D), v (..., T_k, D_v);
    mask bool (True = may attend) broadcastable to (..., T_q, T_k); dropout on the weights
    when dropout_p > 0. Returns (output (..., T_q, D_v), weights (..., T_q, T_k))."""
    scores = attention_scores(q, k)                       # (..., T_q, T_k)
    weights = masked_softmax(scores, mask)                # (..., T_q, T_k)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights                           # (..., T_q, D_v), (..., T_q, T_k)


# ---------------------------------------------------------------------------------------------
# Multi-head attention
# ---------------------------------------------------------------------------------------------


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, C) -> (B, H, T, D): cut each token's C features into H heads of D = C // H."""
    B, T, C = x.shape
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)  # (B, H, T, D)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, D) -> (B, T, H * D): put the heads of each token back side by side."""
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)         # (B, T, C)


class MultiHeadAttention(nn.Module):
    """Multi-head attention for self-attention (context=None) and cross-attention.

    Queries come from ``x`` (B, T_q, C), keys and values from ``context`` (B, T_k, C). The four
    projections map onto a Hugging Face BERT layer's ``attention`` block as follows::

        query.{weight,bias}  <-  attention.self.query.{weight,bias}
        key.{weight,bias}    <-  attention.self.key.{weight,bias}
        value.{weight,bias}  <-  attention.self.value.{weight,bias}
        out.{weight,bias}    <-  attention.output.dense.{weight,bias}

    (BERT's ``attention.output`` also holds dropout, the residual sum and a LayerNorm: those
    belong to the transformer block around this module.)
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.dropout = dropout                            # probability, on the attention weights
        self.query = nn.Linear(d_model, d_model, bias=bias)
        self.key = nn.Linear(d_model, d_model, bias=bias)
        self.value = nn.Linear(d_model, d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T_q, C), context (B, T_k, C) or None (= x), mask bool (True = may attend):
        (B, T_k) padding mask or broadcastable to (B, H, T_q, T_k).
        Returns (output (B, T_q, C), weights (B, H, T_q, T_k) if need_weights else None)."""
        for name, t in (("x", x), ("context", context)):
            if t is not None and (t.dim() != 3 or t.size(-1) != self.d_model):
                raise ValueError(f"{name} must be (B, T, {self.d_model}), got {tuple(t.shape)}")
        if mask is not None and mask.dtype != torch.bool:
            raise TypeError(f"mask must be bool (True = may attend), got {mask.dtype}; "
                            "turn a 1/0 attention_mask into one with attention_mask.bool()")
        if mask is not None and mask.dim() not in (2, 4):
            raise ValueError(f"mask must be (B, T_k) or 4-D (B, H, T_q, T_k) with 1s where it "
                             f"broadcasts, got shape {tuple(mask.shape)}")
        ### BEGIN SOLUTION
        context = x if context is None else context
        q = split_heads(self.query(x), self.n_heads)      # (B, H, T_q, D)
        k = split_heads(self.key(context), self.n_heads)  # (B, H, T_k, D)
        v = split_heads(self.value(context), self.n_heads)  # (B, H, T_k, D)
        if mask is not None and mask.dim() == 2:
            mask = mask[:, None, None, :]                 # (B, T_k) -> (B, 1, 1, T_k)
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            y, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)
        else:  # PyTorch's fused kernel: same result, no (T_q, T_k) weights kept for us
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
            weights = None
        return self.out(merge_heads(y)), weights          # (B, T_q, C)
        ### END SOLUTION


# ---------------------------------------------------------------------------------------------
# Masks and loading BERT weights
# ---------------------------------------------------------------------------------------------


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(T, T) bool, True on and below the diagonal: position i may attend to positions <= i."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """A tokenizer's attention_mask (B, T) of 1 (real) / 0 (padding) -> bool (B, 1, 1, T),
    ready to broadcast over heads and queries."""
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be (B, T), got shape {tuple(attention_mask.shape)}")
    return attention_mask.bool()[:, None, None, :]        # (B, 1, 1, T)


def load_bert_attention(mha: MultiHeadAttention, hf_attention: nn.Module) -> MultiHeadAttention:
    """Copy a Hugging Face BERT layer's ``attention`` block (``BertAttention``: ``self.query``,
    ``self.key``, ``self.value``, ``output.dense``) into ``mha``; returns ``mha``."""
    pairs = {"query": hf_attention.self.query, "key": hf_attention.self.key,
             "value": hf_attention.self.value, "out": hf_attention.output.dense}
    with torch.no_grad():
        for name, source in pairs.items():
            target = getattr(mha, name)
            if target.weight.shape != source.weight.shape:
                raise ValueError(f"{name}: shape {tuple(target.weight.shape)} does not match "
                                 f"the checkpoint's {tuple(source.weight.shape)}")
            target.weight.copy_(source.weight)
            if target.bias is not None:
                target.bias.copy_(source.bias)
    return mha
