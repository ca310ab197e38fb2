"""Attention: every token gathers information from the others, weighted by relevance.

- :func:`attention_loop` -- one query at a time, in plain Python (the definition, slowly).
- :func:`attention_scores`, :func:`masked_softmax`, :func:`scaled_dot_product_attention` --
  the matrix form, step by step: scores ``q @ k^T / sqrt(d_k)``, a softmax that respects a mask,
  and the weighted sum of the values.
- :func:`split_heads`, :func:`merge_heads`, :class:`MultiHeadAttention` -- several attention
  heads side by side, with learned query/key/value/output projections laid out like BERT's.
- :func:`causal_mask`, :func:`padding_mask` -- the two masks every transformer uses.
- :func:`train_copy_tasks` -- train an attention class on the copy task of Chapter 3, with and
  without the causal mask (the training function is passed in).

Masks are boolean and **True means "may attend"**: the same sense as
``torch.nn.functional.scaled_dot_product_attention`` and as a tokenizer's ``attention_mask``
(1 = real token, 0 = padding). Shapes: ``(B, T, C)`` outside attention, ``(B, H, T, D)`` inside
(``H`` heads of size ``D = C // H``). One canonical mask form everywhere: bool, broadcastable to
``(B, H, T_q, T_k)``; :func:`causal_mask` gives ``(1, 1, T, T)``, :func:`padding_mask`
``(B, 1, 1, T)``.

Every public function checks its input and says what is wrong in the caller's terms.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from solutions.inputs import require_mask, require_positive_int, require_probability, require_tensor

# ---------------------------------------------------------------------------------------------
# Scaled dot-product attention
# ---------------------------------------------------------------------------------------------


def attention_loop(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Attention for one sequence, one query at a time: q (T_q, D), k (T_k, D), v (T_k, D_v)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        require_tensor(t, name)
        if t.dim() != 2:
            raise ValueError(f"{name} must be 2-D (tokens, features), got {tuple(t.shape)}")
    if q.size(1) != k.size(1) or k.size(0) != v.size(0):
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} need the same D; k and v "
                         f"{tuple(v.shape)} the same number of tokens")
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
    require_tensor(q, "q", min_dim=2)
    require_tensor(k, "k", min_dim=2)
    if q.size(-1) != k.size(-1):
        raise ValueError(f"q and k need the same last axis D, got q {tuple(q.shape)} and "
                         f"k {tuple(k.shape)}")
    return q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., T_q, T_k)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the keys (last axis). mask: bool, True = may attend, broadcastable to scores.
    A masked key gets weight 0; a row with no key to attend to is all zeros (never NaN)."""
    require_tensor(scores, "scores")
    require_mask(mask, tuple(scores.shape))
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
    require_tensor(v, "v", min_dim=2)
    if k.dim() >= 2 and v.size(-2) != k.size(-2):
        raise ValueError(f"k and v need the same number of tokens, got k {tuple(k.shape)} and "
                         f"v {tuple(v.shape)}")
    require_probability(dropout_p, "dropout_p")
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
    require_tensor(x, "x", floating=False)
    require_positive_int(n_heads, "n_heads")
    if x.dim() != 3 or x.size(-1) % n_heads:
        raise ValueError(f"x must be (B, T, C) with C divisible by n_heads={n_heads}, got "
                         f"shape {tuple(x.shape)}")
    B, T, C = x.shape
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)  # (B, H, T, D)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, D) -> (B, T, H * D): put the heads of each token back side by side."""
    require_tensor(x, "x", floating=False)
    if x.dim() != 4:
        raise ValueError(f"x must be (B, H, T, D), got shape {tuple(x.shape)}")
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
        require_positive_int(d_model, "d_model")
        require_positive_int(n_heads, "n_heads")
        require_probability(dropout, "dropout")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False, got {bias!r}")
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
        *,
        causal: bool = False,
        cache=None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T_q, C), context (B, T_k, C) or None (= x), mask None or bool (True = may
        attend) of 4 axes broadcastable to (B, H, T_q, T_k), e.g. padding_mask(...);
        ``causal=True``: no query sees a key after its own position. ``cache`` (generation,
        :class:`solutions.decoder.KVCache`'s layer): ``cache.update(k, v)`` stores the new keys
        and values and returns all of them so far, so the queries x follow the cached tokens.
        Returns (output (B, T_q, C), weights (B, H, T_q, T_k) if need_weights else None)."""
        self.check_inputs(x, context, mask)
        q, k, v = self.project(x, context)                # (B, H, T_q, D), 2 x (B, H, T_k, D)
        if cache is not None:
            k, v = cache.update(k, v)                     # (B, H, T_past + T_k, D)
        return self.attend(q, k, v, mask, causal, need_weights)

    def project(self, x: torch.Tensor, context: torch.Tensor | None = None):
        """Queries from x, keys and values from context (x when None), each cut into heads:
        (B, H, T_q, D), (B, H, T_k, D), (B, H, T_k, D)."""
        context = x if context is None else context
        q = split_heads(self.query(x), self.n_heads)      # (B, H, T_q, D)
        k = split_heads(self.key(context), self.n_heads)  # (B, H, T_k, D)
        v = split_heads(self.value(context), self.n_heads)  # (B, H, T_k, D)
        return q, k, v

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               mask: torch.Tensor | None = None, causal: bool = False,
               need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention of the query heads over the key and value heads, the heads merged and
        projected: (output (B, T_q, C), weights (B, H, T_q, T_k) if need_weights else None)."""
        if causal:                                        # the last T_q of T_k positions
            visible = causal_mask(q.size(-2), q.device, past=k.size(-2) - q.size(-2))
            mask = visible if mask is None else mask & visible  # (B or 1, 1, T_q, T_k)
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            y, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)
        else:  # PyTorch's fused kernel: same result, no (T_q, T_k) weights kept for us
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
            weights = None
        return self.out(merge_heads(y)), weights          # (B, T_q, C)

    def check_inputs(self, x: torch.Tensor, context: torch.Tensor | None,
                     mask: torch.Tensor | None) -> None:
        """Raise a clear error unless x, context and mask are what forward() reads. A mask must
        have 4 axes: a (T, T) or (B, T) mask could mean either, so none is guessed."""
        for name, t in (("x", x), ("context", context)):
            if t is None and name == "context":
                continue
            require_tensor(t, name)
            if t.dim() != 3 or t.size(-1) != self.d_model:
                raise ValueError(f"{name} must be (B, T, {self.d_model}), got {tuple(t.shape)}")
        kv = x if context is None else context
        if kv.size(0) != x.size(0):
            raise ValueError(f"x {tuple(x.shape)} and context {tuple(kv.shape)} need the same "
                             "batch size B")
        target = (x.size(0), self.n_heads, x.size(1), kv.size(1))
        if mask is not None and isinstance(mask, torch.Tensor) and mask.dim() != 4:
            raise ValueError(
                f"mask must have 4 axes, broadcastable to (B, H, T_q, T_k) = {target}; got shape "
                f"{tuple(mask.shape)}. Use padding_mask(attention_mask) -> (B, 1, 1, T_k) or "
                "causal_mask(T) -> (1, 1, T, T)")
        require_mask(mask, target)


class FusedMultiHeadAttention(MultiHeadAttention):
    """:class:`MultiHeadAttention` (same parameters, same state_dict, tested equal) in fewer
    kernels, as nanoGPT's attention: it overrides two steps only. ``project`` makes the query,
    key and value of self-attention in one matrix product (their weights side by side,
    (3C, C)) unless one of them is wrapped (LoRA); ``attend`` runs PyTorch's attention with
    ``is_causal=True`` and no mask tensor when the layer is causal and nothing else is masked
    (so PyTorch may pick FlashAttention), else with the combined mask. ``need_weights`` takes the definition's path. The models use it
    unless ``ModelConfig(fused=False)``."""

    def project(self, x: torch.Tensor, context: torch.Tensor | None = None):
        plain = all(isinstance(m, nn.Linear) for m in (self.query, self.key, self.value))
        if context is not None or not plain:              # two sources, or a wrapped layer
            return super().project(x, context)
        C, bias = self.d_model, self.query.bias
        weight = torch.cat([self.query.weight, self.key.weight, self.value.weight])  # (3C, C)
        if bias is not None:
            bias = torch.cat([bias, self.key.bias, self.value.bias])  # (3C,)
        q, k, v = (split_heads(t, self.n_heads)           # 3 x (B, H, T, D)
                   for t in F.linear(x, weight, bias).split(C, dim=-1))
        return q, k, v

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               mask: torch.Tensor | None = None, causal: bool = False,
               need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        if need_weights or not causal or mask is not None or q.size(-2) != k.size(-2):
            return super().attend(q, k, v, mask, causal, need_weights)
        dropout_p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        return self.out(merge_heads(y)), None             # (B, T, C)


# ---------------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------------


def causal_mask(T: int, device: torch.device | str | None = None, *,
                past: int = 0) -> torch.Tensor:
    """(1, 1, T, T) bool, True on and below the diagonal: query i may attend to keys <= i.
    Broadcasts over the batch and the heads. With ``past`` earlier keys (a KV cache) it is
    (1, 1, T, past + T): query i sits at position past + i."""
    require_positive_int(T, "T")
    if past < 0:
        raise ValueError(f"past must be >= 0 (cached positions), got {past!r}")
    ones = torch.ones(T, past + T, dtype=torch.bool, device=device)
    return ones.tril(past)[None, None]                    # (1, 1, T, past + T)


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """A tokenizer's attention_mask (B, T) of 1 (real) / 0 (padding) -> bool (B, 1, 1, T),
    ready to broadcast over heads and queries."""
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}")
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be (B, T), got shape {tuple(attention_mask.shape)}")
    if attention_mask.is_complex():
        raise TypeError(f"attention_mask must hold 1 (real token) and 0 (padding), got "
                        f"{attention_mask.dtype}")
    # values are checked except on the meta device (it has none) and under torch.compile
    readable = attention_mask.device.type != "meta" and not torch.compiler.is_compiling()
    if readable and not ((attention_mask == 0) | (attention_mask == 1)).all():
        raise ValueError("attention_mask must hold only 1 (real token) and 0 (padding)")
    return attention_mask.bool()[:, None, None, :]        # (B, 1, 1, T)


# ---------------------------------------------------------------------------------------------
# Training an attention layer on the copy task
# ---------------------------------------------------------------------------------------------


def train_copy_tasks(attention_cls, train, steps: int = 100) -> dict:
    """Train a fresh one-layer model with the attention class `attention_cls` on three
    settings of the copy task, `steps` steps each; return {name: what `train` returned}:

    - "previous token": offset -1 under the causal mask (learnable: look one step back);
    - "next token": offset +1 under the causal mask (the answer is out of sight);
    - "next token, no mask": offset +1, causal=False (the answer is in plain sight).

    `train` is the training function of Chapter 3, course.datasets.tasks.train(attention_cls, *,
    offset, causal, steps, ...), passed in: any trainer of that signature fits."""
    if not callable(attention_cls):
        raise TypeError(f"attention_cls must be an attention class, got "
                        f"{attention_cls!r}")
    if not callable(train):
        raise TypeError(f"train must be a training function such as "
                        f"course.datasets.tasks.train, got {train!r}")
    require_positive_int(steps, "steps")
    settings = {"previous token": (-1, True), "next token": (1, True),
                "next token, no mask": (1, False)}  # name -> (offset, causal)
    return {name: train(attention_cls, offset=offset, causal=causal, steps=steps)
            for name, (offset, causal) in settings.items()}
