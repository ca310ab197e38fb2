"""The configuration every model of the course is built from, and how it picks its parts.

:class:`ModelConfig` holds every size and switch of a transformer in one dataclass, and its three
factories choose the components of a layer: :meth:`~ModelConfig.attention`,
:meth:`~ModelConfig.layer_norm` and :meth:`~ModelConfig.feedforward` (the fused twins of chapters
3, 4 and 6 by default, the from-definition modules with ``fused=False``).

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

from solutions.attention import FusedMultiHeadAttention, MultiHeadAttention
from solutions.feedforward import FeedForward, FusedFeedForward
from solutions.normalization import FusedLayerNorm, LayerNorm

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
        if not isinstance(self.fused, bool):
            raise TypeError(f"fused must be True or False, got {self.fused!r}")

    def attention(self) -> MultiHeadAttention:
        """A layer's multi-head attention over n_embd features: FusedMultiHeadAttention (one
        product for query, key and value, PyTorch's causal kernel) when ``fused``, else
        chapter 3's MultiHeadAttention."""
        mha = FusedMultiHeadAttention if self.fused else MultiHeadAttention
        return mha(self.n_embd, self.n_head, self.dropout, self.bias)

    def layer_norm(self) -> LayerNorm:
        """A LayerNorm over n_embd features with this eps: FusedLayerNorm (PyTorch's kernel)
        when ``fused``, else chapter 6's from-definition LayerNorm."""
        return (FusedLayerNorm if self.fused else LayerNorm)(self.n_embd, eps=self.eps)

    def feedforward(self) -> FeedForward:
        """A layer's feed-forward network, n_embd -> d_ff -> n_embd: FusedFeedForward
        (PyTorch's activation kernel) when ``fused``, else chapter 4's FeedForward."""
        ffn = FusedFeedForward if self.fused else FeedForward
        return ffn(self.n_embd, self.d_ff, self.dropout, self.activation, self.bias)

