"""The configuration every model of the course is built from, and how it picks its parts.

:class:`ModelConfig` holds every size and switch of a transformer in one dataclass, and its three
factories choose the components of a layer (and :meth:`~ModelConfig.position_table` a
decoder's positions): :meth:`~ModelConfig.attention`,
:meth:`~ModelConfig.layer_norm` and :meth:`~ModelConfig.feedforward` (the fused twins of chapters
3, 4 and 6 by default, the from-definition modules with ``fused=False``). The switches reach
every combination a GPT-2 or a Llama needs: LayerNorm or RMSNorm; GELU, ReLU, SiLU or SwiGLU;
learned, sinusoidal or rotary positions; grouped-query attention; a tied or untied head.

The models are wired, one file per chapter, from this configuration (imports run one way:
components -> ``model`` -> ``residual`` -> ``encoder`` / ``decoder``; ``pretrained`` sits between
``model`` and the models that load checkpoints):

- ``solutions/residual.py`` (chapter 5): :class:`Residual` and :class:`Block`, one transformer
  layer built from Residuals, pre-LN or post-LN;
- ``solutions/encoder.py`` (chapter 7): the BERT-style :class:`Encoder` and what sits on it;
- ``solutions/decoder.py`` (chapter 8): :class:`GPT` (the nanoGPT-sized model file of this
  course), the KV cache and the 2017 :class:`EncoderDecoder`.

Shapes: activations are ``(B, T, C)`` (batch, time, channels = ``n_embd``). Masks are bool,
True = may attend, broadcastable to ``(B, H, T_q, T_k)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from solutions.attention import FusedMultiHeadAttention, MultiHeadAttention
from solutions.embeddings import sinusoidal_table
from solutions.feedforward import FeedForward, FusedFeedForward
from solutions.modern import (
    FusedGroupedQueryAttention,
    GroupedQueryAttention,
    NoPositionTable,
    RotaryEmbedding,
    SiLUFeedForward,
    SwiGLU,
    swiglu_hidden,
)
from solutions.normalization import FusedLayerNorm, LayerNorm, RMSNorm

ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu", "swiglu")
NORMS = ("layer", "rms")
POSITIONS = ("learned", "sinusoidal", "rope")


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
    d_ff: int | None = None        # None -> 4 * n_embd (swiglu: 8 * n_embd // 3)
    dropout: float = 0.0
    norm_first: bool = True        # True: pre-LN (GPT-2); False: post-LN (2017 paper, BERT)
    eps: float = 1e-5              # LayerNorm / RMSNorm eps
    norm: str = "layer"            # "layer": LayerNorm (GPT-2, BERT) | "rms": RMSNorm (Llama)
    activation: str = "gelu"       # "gelu" | "gelu_tanh" | "relu" | "silu" | "swiglu" (gated)
    position: str = "learned"      # "learned" table | "sinusoidal" | "rope" (rotary, in attention)
    rope_theta: float = 10000.0    # rotary base: the longest wavelength is about 2 pi theta
    n_kv_head: int | None = None   # None -> n_head; fewer: grouped-query attention
    head_dim: int | None = None    # None -> n_embd // n_head (other values need rope/GQA attention)
    qk_norm: bool = False          # RMSNorm on every query and key head (Qwen3)
    tie_weights: bool = True       # decoder LM head shares the token table
    bias: bool = True
    type_vocab_size: int = 2       # encoder only (token type / segment embeddings)
    pad_token_id: int = 0
    # True: self-attention, LayerNorm and GELU run in fewer, fused kernels
    # (FusedMultiHeadAttention, FusedLayerNorm, FusedFeedForward), tested equal to our
    # from-definition modules; False: the from-definition modules that chapters 3, 4 and 6
    # build. Same parameters and state_dict either way.
    fused: bool = True

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.head_dim is None and self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head "
                             f"({self.n_head}): each head gets n_embd // n_head features")
        if self.d_ff is None:  # SwiGLU's three matrices: 2/3 of the width, same parameters
            self.d_ff = swiglu_hidden(self.n_embd) if self.activation == "swiglu" \
                else 4 * self.n_embd
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
        for name, value, allowed in (("norm", self.norm, NORMS),
                                     ("position", self.position, POSITIONS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.head_dim is None:
            self.head_dim = self.n_embd // self.n_head
        for name in ("n_kv_head", "head_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head ({self.n_head}) must be a multiple of n_kv_head "
                             f"({self.n_kv_head}): each key/value head serves a group")
        if self.position == "rope" and self.head_dim % 2:
            raise ValueError(f"rotary positions turn features in pairs: head_dim must be even, "
                             f"got {self.head_dim}")
        if not self.rope_theta > 1:
            raise ValueError(f"rope_theta must be > 1, got {self.rope_theta!r}")
        for name in ("fused", "qk_norm", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def grouped(self) -> bool:
        """True when self-attention needs chapter 12's GroupedQueryAttention: rotary
        positions, fewer key/value heads, normalised heads or heads not of n_embd // n_head."""
        return (self.position == "rope" or self.n_kv_head != self.n_head or self.qk_norm
                or self.head_dim * self.n_head != self.n_embd)

    def attention(self, cross: bool = False) -> MultiHeadAttention:
        """A layer's attention over n_embd features. Self-attention: GroupedQueryAttention when
        :attr:`grouped`, else multi-head attention; FusedMultiHeadAttention (one product for
        query, key and value, PyTorch's causal kernel) when ``fused``, else chapter 3's
        MultiHeadAttention. Cross-attention (``cross=True``) is always multi-head."""
        if self.grouped and not cross:
            gqa = FusedGroupedQueryAttention if self.fused else GroupedQueryAttention
            rotary = (RotaryEmbedding(self.head_dim, self.block_size, self.rope_theta)
                      if self.position == "rope" else None)
            return gqa(self.n_embd, self.n_head, self.n_kv_head, self.dropout, self.bias,
                       head_dim=self.head_dim, rotary=rotary, qk_norm=self.qk_norm,
                       eps=self.eps)
        mha = FusedMultiHeadAttention if self.fused else MultiHeadAttention
        return mha(self.n_embd, self.n_head, self.dropout, self.bias)

    def layer_norm(self) -> nn.Module:
        """A normalisation over n_embd features with this eps: RMSNorm when ``norm="rms"``;
        else FusedLayerNorm (PyTorch's kernel) when ``fused``, chapter 6's LayerNorm if not."""
        if self.norm == "rms":
            return RMSNorm(self.n_embd, eps=self.eps)
        return (FusedLayerNorm if self.fused else LayerNorm)(self.n_embd, eps=self.eps)

    def position_table(self) -> nn.Module:
        """What a decoder adds to each token for its position, looked up by position ids (T,)
        -> (T, C): a learned nn.Embedding; the sinusoidal table, frozen in one; for rotary
        positions (they act inside attention) a :class:`~solutions.modern.NoPositionTable`,
        which adds 0."""
        if self.position == "learned":
            return nn.Embedding(self.block_size, self.n_embd)
        if self.position == "sinusoidal":
            return nn.Embedding.from_pretrained(sinusoidal_table(self.block_size, self.n_embd))
        return NoPositionTable()

    def feedforward(self) -> nn.Module:
        """A layer's feed-forward network, n_embd -> d_ff -> n_embd: SwiGLU for
        ``activation="swiglu"``, SiLUFeedForward for ``"silu"``; else FusedFeedForward (PyTorch's activation kernel) when
        ``fused``, chapter 4's FeedForward if not."""
        if self.activation == "swiglu":
            return SwiGLU(self.n_embd, self.d_ff, self.dropout, self.bias)
        if self.activation == "silu":
            return SiLUFeedForward(self.n_embd, self.d_ff, self.dropout, self.bias)
        ffn = FusedFeedForward if self.fused else FeedForward
        return ffn(self.n_embd, self.d_ff, self.dropout, self.activation, self.bias)


