"""The transformer, wired together in one readable file (in the spirit of nanoGPT's model.py).

The components come from earlier chapters -- :class:`~solutions.attention.MultiHeadAttention`,
:class:`~solutions.feedforward.FeedForward`, :class:`~solutions.normalization.LayerNorm` -- and
this file composes them:

- :class:`ModelConfig` -- every size and switch of a model, in one dataclass.
- :class:`Residual` -- ``x + dropout(F(x))``: a skip connection around any sub-layer.
- :class:`Block` -- one transformer layer: self-attention, optional cross-attention and the
  feed-forward network, each with a residual connection and a LayerNorm placed before the
  sub-layer (pre-LN, GPT-2) or after the sum (post-LN, the 2017 paper and BERT).
- :class:`EncoderLayer` -- a bidirectional Block; ``from_torch`` copies the weights of a
  ``torch.nn.TransformerEncoderLayer``.

Shapes: activations are ``(B, T, C)`` (batch, time, channels = ``n_embd``). Masks are bool,
True = may attend, broadcastable to ``(B, H, T_q, T_k)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from solutions.attention import MultiHeadAttention, causal_mask
from solutions.feedforward import FeedForward
from solutions.normalization import LayerNorm

ACTIVATIONS = ("gelu", "gelu_tanh", "relu")


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclass
class ModelConfig:
    """Sizes and switches of a transformer. The defaults are a small BERT-like encoder."""

    vocab_size: int = 30522
    block_size: int = 512          # maximum sequence length (position table size)
    n_layer: int = 6
    n_head: int = 12
    n_embd: int = 384
    d_ff: int | None = None        # None -> 4 * n_embd
    dropout: float = 0.0
    norm_first: bool = True        # True: pre-LN (GPT-2); False: post-LN (2017 paper, BERT)
    eps: float = 1e-5              # LayerNorm eps
    activation: str = "gelu"       # "gelu" | "gelu_tanh" | "relu"
    bias: bool = True
    type_vocab_size: int = 2       # encoder only (token type / segment embeddings)
    pad_token_id: int = 0

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head "
                             f"({self.n_head}): each head gets n_embd // n_head features")
        if self.d_ff is None:
            self.d_ff = 4 * self.n_embd
        if isinstance(self.d_ff, bool) or not isinstance(self.d_ff, int) or self.d_ff <= 0:
            raise ValueError(f"d_ff must be a positive int or None, got {self.d_ff!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {self.dropout}")
        if not self.eps > 0:
            raise ValueError(f"eps must be positive, got {self.eps}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if not isinstance(self.type_vocab_size, int) or self.type_vocab_size < 0:
            raise ValueError(f"type_vocab_size must be an int >= 0, got {self.type_vocab_size!r}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id ({self.pad_token_id}) must be a token id in "
                             f"[0, vocab_size={self.vocab_size})")


# ---------------------------------------------------------------------------------------------
# Residual connection
# ---------------------------------------------------------------------------------------------


class Residual(nn.Module):
    """``x + dropout(sublayer(x, ...))``: the input skips past the sub-layer and is added back.

    The sub-layer only has to learn a correction to ``x``; the identity path carries the signal
    forward and the gradient backward unchanged, however deep the stack. Dropout acts on the
    branch, never on the skip path. The sub-layer must keep the shape of ``x``.
    """

    def __init__(self, sublayer: nn.Module, dropout: float = 0.0):
        super().__init__()
        if not isinstance(sublayer, nn.Module):
            raise TypeError(f"sublayer must be an nn.Module, got {type(sublayer).__name__}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout}")
        self.sublayer = sublayer
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        ### BEGIN SOLUTION
        out = self.sublayer(x, *args, **kwargs)           # F(x), same shape as x
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the sub-layer must return a tensor shaped like its input "
                             f"{tuple(x.shape)} so it can be added to it, got {got}")
        return x + self.dropout(out)                      # skip + branch
        ### END SOLUTION


# ---------------------------------------------------------------------------------------------
# Transformer block
# ---------------------------------------------------------------------------------------------


def _check_mask(name: str, mask: torch.Tensor | None) -> None:
    if mask is None:
        return
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be bool (True = may attend), got {mask.dtype}")
    if mask.dim() != 4:
        raise ValueError(f"{name} must be 4-D, broadcastable to (B, H, T_q, T_k), got shape "
                         f"{tuple(mask.shape)}; make one from a (B, T) attention_mask with "
                         "solutions.attention.padding_mask")


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

    ``causal=True`` lets position i attend only to positions <= i (a decoder); ``cross=True``
    adds attention from ``x`` to an encoder's output ``context``. Dropout acts on each branch.
    """

    def __init__(self, config: ModelConfig, *, causal: bool = False, cross: bool = False):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        C = config.n_embd
        self.norm_first, self.causal, self.cross = config.norm_first, causal, cross
        self.attn = MultiHeadAttention(C, config.n_head, config.dropout, config.bias)
        self.ln_1 = LayerNorm(C, eps=config.eps)
        if cross:
            self.cross_attn = MultiHeadAttention(C, config.n_head, config.dropout, config.bias)
            self.ln_cross = LayerNorm(C, eps=config.eps)
        self.mlp = FeedForward(C, config.d_ff, config.dropout, config.activation, config.bias)
        self.ln_2 = LayerNorm(C, eps=config.eps)
        self.dropout = nn.Dropout(config.dropout)         # on the attention branches

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, T, C); mask for self-attention and context_mask for cross-attention: bool,
        True = may attend, broadcastable to (B, H, T_q, T_k); context (B, T_ctx, C) when the
        block was built with cross=True. Returns (B, T, C)."""
        _check_mask("mask", mask)
        _check_mask("context_mask", context_mask)
        if self.cross and context is None:
            raise ValueError("this block was built with cross=True: pass the encoder output "
                             "as context=(B, T_ctx, C)")
        if not self.cross and (context is not None or context_mask is not None):
            raise ValueError("context/context_mask given to a block built with cross=False")
        ### BEGIN SOLUTION
        if self.causal:
            T = x.size(1)
            causal = causal_mask(T, device=x.device).view(1, 1, T, T)  # (1, 1, T, T)
            mask = causal if mask is None else mask & causal  # (B or 1, 1, T, T)
        if self.norm_first:                               # pre-LN: normalise the branch input
            x = x + self.dropout(self.attn(self.ln_1(x), mask=mask)[0])
            if self.cross:
                x = x + self.dropout(
                    self.cross_attn(self.ln_cross(x), context, mask=context_mask)[0])
            x = x + self.mlp(self.ln_2(x))                # FeedForward ends with its dropout
        else:                                             # post-LN: normalise the sum
            x = self.ln_1(x + self.dropout(self.attn(x, mask=mask)[0]))
            if self.cross:
                x = self.ln_cross(x + self.dropout(self.cross_attn(x, context,
                                                                   mask=context_mask)[0]))
            x = self.ln_2(x + self.mlp(x))
        return x                                          # (B, T, C)
        ### END SOLUTION


class EncoderLayer(Block):
    """A bidirectional Block (no causal mask, no cross-attention): one layer of an encoder."""

    def __init__(self, config: ModelConfig):
        super().__init__(config, causal=False, cross=False)

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> EncoderLayer:
        """A new EncoderLayer holding a copy of the weights of ``layer`` (which must be
        ``batch_first=True``; GELU or ReLU; either norm_first), giving the same outputs."""
        if not isinstance(layer, nn.TransformerEncoderLayer):
            raise TypeError(f"expected nn.TransformerEncoderLayer, got {type(layer).__name__}")
        sa = layer.self_attn
        if not sa.batch_first:
            raise ValueError("the layer must be built with batch_first=True: our shapes are "
                             "(B, T, C)")
        act = layer.activation
        if act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
            activation = "gelu"
        elif isinstance(act, nn.GELU) and act.approximate == "tanh":
            activation = "gelu_tanh"
        elif act is F.relu or isinstance(act, nn.ReLU):
            activation = "relu"
        else:
            raise ValueError(f"unsupported activation {act!r}: use 'gelu' or 'relu'")
        C = sa.embed_dim
        config = ModelConfig(
            n_embd=C, n_head=sa.num_heads, d_ff=layer.linear1.out_features,
            dropout=layer.dropout.p, norm_first=layer.norm_first, eps=layer.norm1.eps,
            activation=activation, bias=layer.linear1.bias is not None,
        )
        ours = cls(config)
        ref = next(iter(layer.parameters()))
        ours = ours.to(device=ref.device, dtype=ref.dtype)
        load_torch_attention(ours.attn, sa)
        pairs = [(ours.mlp.fc, layer.linear1), (ours.mlp.proj, layer.linear2),
                 (ours.ln_1, layer.norm1), (ours.ln_2, layer.norm2)]
        with torch.no_grad():
            for target, source in pairs:
                target.weight.copy_(source.weight)
                if source.bias is not None:
                    target.bias.copy_(source.bias)
                elif isinstance(target, LayerNorm):       # a bias-free torch LayerNorm
                    target.bias.zero_()
        return ours.train(layer.training)


def load_torch_attention(mha: MultiHeadAttention, source: nn.MultiheadAttention) -> None:
    """Copy a ``torch.nn.MultiheadAttention`` (packed ``in_proj_weight`` (3C, C) = query, key,
    value rows; ``out_proj``) into our MultiHeadAttention ``mha`` of the same size."""
    if not source._qkv_same_embed_dim or source.embed_dim != mha.d_model:
        raise ValueError(f"expected a torch attention of size {mha.d_model} with kdim = vdim "
                         f"= embed_dim, got embed_dim={source.embed_dim}")
    if source.num_heads != mha.n_heads:
        raise ValueError(f"head count differs: ours {mha.n_heads}, torch {source.num_heads}")
    weights = source.in_proj_weight.chunk(3)              # 3 x (C, C): query, key, value
    biases = (None,) * 3 if source.in_proj_bias is None else source.in_proj_bias.chunk(3)
    with torch.no_grad():
        for name, w, b in zip(("query", "key", "value"), weights, biases, strict=True):
            getattr(mha, name).weight.copy_(w)
            if b is not None:
                getattr(mha, name).bias.copy_(b)
        mha.out.weight.copy_(source.out_proj.weight)
        if source.out_proj.bias is not None:
            mha.out.bias.copy_(source.out_proj.bias)

