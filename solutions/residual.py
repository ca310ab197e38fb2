"""Residual connections and the transformer block (chapter 5).

- :class:`Residual` -- ``x + dropout(F(x))``: a skip connection around any sub-layer ``F``.
- :class:`Block` -- one transformer layer: self-attention, optional cross-attention and the
  feed-forward network, each wrapped in a :class:`Residual` with a LayerNorm placed before the
  sub-layer (pre-LN, GPT-2) or after the sum (post-LN, the 2017 paper and BERT).
- :func:`gradient_norms` -- the gradient that reaches each layer of a plain or residual stack.

The parts come from :class:`~solutions.model.ModelConfig`. Shapes: ``(B, T, C)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from solutions.inputs import require_mask_4d
from solutions.model import ModelConfig


class Residual(nn.Module):
    """``x + dropout(sublayer(x))``: the input skips past the sub-layer and is added back.

    The sub-layer only has to learn a correction to ``x``; the identity path carries the signal
    forward and the gradient backward unchanged, however deep the stack. Dropout acts on the
    branch, never on the skip path. The connection holds no parameters: the sub-layer is any
    callable ``(B, T, C) -> (B, T, C)`` passed at each call, ``residual(x, sublayer)`` (the
    Annotated Transformer's ``SublayerConnection``), so the module that owns the weights keeps
    them under its own names.
    """

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout}")
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, sublayer) -> torch.Tensor:
        """x (B, T, C); sublayer: a callable (B, T, C) -> (B, T, C). Returns (B, T, C)."""
        out = sublayer(x)                                 # F(x), same shape as x
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the sub-layer must return a tensor shaped like its input "
                             f"{tuple(x.shape)} so it can be added to it, got {got}")
        return x + self.dropout(out)                      # skip + branch


# ---------------------------------------------------------------------------------------------
# Transformer block
# ---------------------------------------------------------------------------------------------


class Block(nn.Module):
    """One transformer layer: (B, T, C) -> (B, T, C).

    pre-LN (``config.norm_first=True``, GPT-2)::

        x = x + attn(ln_1(x))
        x = x + cross_attn(ln_cross(x), context)      # only when cross=True
        x = x + mlp(ln_2(x))

    post-LN (``norm_first=False``, the 2017 paper and BERT)::

        x = ln_1(x + attn(x))
        x = ln_cross(x + cross_attn(x, context))      # only when cross=True
        x = ln_2(x + mlp(x))

    ``causal=True`` lets position i attend only to positions <= i (a decoder: the attention
    module is told so, and builds the mask or picks PyTorch's causal kernel); ``cross=True``
    adds attention from ``x`` to an encoder's output ``context``. Each sum is a
    :class:`Residual`, which puts dropout on the branch (the feed-forward network ends with its
    own dropout, so its Residual has none).
    """

    def __init__(self, config: ModelConfig, *, causal: bool = False, cross: bool = False):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.norm_first, self.causal, self.cross = config.norm_first, causal, cross
        self.attn = config.attention()                    # MultiHeadAttention(C, H, ...)
        self.ln_1 = config.layer_norm()                   # LayerNorm(C, eps=config.eps)
        if cross:
            self.cross_attn = config.attention(cross=True)
            self.ln_cross = config.layer_norm()
        self.mlp = config.feedforward()                   # FeedForward(C, config.d_ff, ...)
        self.ln_2 = config.layer_norm()
        self.res_attn = Residual(config.dropout)          # x + dropout(F(x))
        if cross:
            self.res_cross = Residual(config.dropout)
        self.res_mlp = Residual()                         # FeedForward ends with its dropout

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        *,
        cache=None,
    ) -> torch.Tensor:
        """x (B, T, C); mask for self-attention and context_mask for cross-attention: bool,
        True = may attend, broadcastable to (B, H, T_q, T_k); context (B, T_ctx, C) when the
        block was built with cross=True; cache: this layer's
        :class:`~solutions.decoder.LayerCache` (a causal block, generating). Returns (B, T, C)."""
        require_mask_4d(mask, "mask")
        require_mask_4d(context_mask, "context_mask")
        if self.cross and context is None:
            raise ValueError("this block was built with cross=True: pass the encoder output "
                             "as context=(B, T_ctx, C)")
        if not self.cross and (context is not None or context_mask is not None):
            raise ValueError("context/context_mask given to a block built with cross=False")
        if cache is not None and not self.causal:
            raise ValueError("a KV cache serves a causal block (a decoder) only")
        kw = dict(mask=mask, causal=self.causal, cache=cache)  # for self-attention
        if self.norm_first:                               # pre-LN: normalise the branch input
            x = self.res_attn(x, lambda h: self.attn(self.ln_1(h), **kw)[0])
            if self.cross:
                x = self.res_cross(x, lambda h: self.cross_attn(
                    self.ln_cross(h), context, mask=context_mask)[0])
            x = self.res_mlp(x, lambda h: self.mlp(self.ln_2(h)))
        else:                                             # post-LN: normalise the sum
            x = self.ln_1(self.res_attn(x, lambda h: self.attn(h, **kw)[0]))
            if self.cross:
                x = self.ln_cross(self.res_cross(x, lambda h: self.cross_attn(
                    h, context, mask=context_mask)[0]))
            x = self.ln_2(self.res_mlp(x, self.mlp))
        return x                                          # (B, T, C)


def gradient_norms(layers, x: torch.Tensor, grad: torch.Tensor, skip: bool = False) -> list[float]:
    """Run ``x`` through ``layers`` (a sequence of modules that keep the shape) as a plain stack
    (``x <- f(x)``) or, with ``skip=True``, a residual one (``x <- x + f(x)``); backpropagate
    ``grad`` (shaped like the output) and return, for each layer from the input side on, the
    norm of the gradient of all its parameters together: sqrt(sum of squared entries)."""
    if not isinstance(layers, (list, tuple, nn.ModuleList)) or not layers \
            or not all(isinstance(f, nn.Module) for f in layers):
        raise TypeError("layers must be a non-empty list of nn.Module")
    h = x
    for f in layers:
        h = h + f(h) if skip else f(h)                    # residual or plain stack
    if grad.shape != h.shape:
        raise ValueError(f"grad must have the output's shape {tuple(h.shape)}, "
                         f"got {tuple(grad.shape)}")
    params = [list(f.parameters()) for f in layers]
    flat = [p for ps in params for p in ps]
    grads = torch.autograd.grad(h, flat, grad_outputs=grad, allow_unused=True)
    norms, start = [], 0
    for ps in params:                                     # the gradients of one layer
        mine = [g for g in grads[start:start + len(ps)] if g is not None]
        start += len(ps)
        norms.append(math.sqrt(sum(g.pow(2).sum().item() for g in mine)))
    return norms
