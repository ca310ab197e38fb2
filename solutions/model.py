"""The transformer, wired together in one readable file (in the spirit of nanoGPT's model.py).

The components come from earlier chapters -- :class:`~solutions.attention.MultiHeadAttention`,
:class:`~solutions.feedforward.FeedForward`, :class:`~solutions.normalization.LayerNorm` -- and
this file composes them (by default attention, LayerNorm and GELU run as their fused twins,
:class:`~solutions.attention.FusedMultiHeadAttention`,
:class:`~solutions.normalization.FusedLayerNorm` and
:class:`~solutions.feedforward.FusedFeedForward`: see ``ModelConfig.fused``):

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

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from solutions.attention import (
    FusedMultiHeadAttention,
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    padding_mask,
    split_heads,
)
from solutions.feedforward import FeedForward, FusedFeedForward
from solutions.inputs import require_batch_ids, require_mask_4d
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
        out = self.sublayer(x, *args, **kwargs)           # F(x), same shape as x
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

    ``causal=True`` lets position i attend only to positions <= i (a decoder); ``cross=True``
    adds attention from ``x`` to an encoder's output ``context``. Dropout acts on each branch.
    """

    def __init__(self, config: ModelConfig, *, causal: bool = False, cross: bool = False):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.norm_first, self.causal, self.cross = config.norm_first, causal, cross
        self.attn = config.attention()                    # MultiHeadAttention(C, H, ...)
        self.ln_1 = config.layer_norm()                   # LayerNorm(C, eps=config.eps)
        if cross:
            self.cross_attn = config.attention()
            self.ln_cross = config.layer_norm()
        self.mlp = config.feedforward()                   # FeedForward(C, config.d_ff, ...)
        self.ln_2 = config.layer_norm()
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
        require_mask_4d(mask, "mask")
        require_mask_4d(context_mask, "context_mask")
        if self.cross and context is None:
            raise ValueError("this block was built with cross=True: pass the encoder output "
                             "as context=(B, T_ctx, C)")
        if not self.cross and (context is not None or context_mask is not None):
            raise ValueError("context/context_mask given to a block built with cross=False")
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


# ---------------------------------------------------------------------------------------------
# Encoder (BERT's layout): embeddings + a stack of EncoderLayers + pooler; heads on top
# ---------------------------------------------------------------------------------------------


class EncoderEmbeddings(nn.Module):
    """BERT's input layer: token ids (B, T) -> (B, T, C).

    ``LayerNorm(word[id] + position[t] + token_type[segment])``, then dropout. Positions are
    learned (one row per position up to ``block_size``); the token type (segment) says which of
    two sentences a token belongs to (all 0 for a single text).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.type_vocab_size < 1:
            raise ValueError("an encoder needs type_vocab_size >= 1 (BERT uses 2)")
        C = config.n_embd
        self.word = nn.Embedding(config.vocab_size, C, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.block_size, C)
        self.token_type = nn.Embedding(config.type_vocab_size, C)
        self.ln = config.layer_norm()                     # LayerNorm(C, eps=config.eps)
        self.dropout = nn.Dropout(config.dropout)
        self.register_buffer("positions", torch.arange(config.block_size), persistent=False)

    def forward(self, input_ids: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T), token_type_ids (B, T) or None (all 0) -> (B, T, C)."""
        require_batch_ids(input_ids, "input_ids")
        if token_type_ids is not None:
            require_batch_ids(token_type_ids, "token_type_ids", like=input_ids)
        if input_ids.size(1) > self.position.num_embeddings:
            raise ValueError(f"sequence of {input_ids.size(1)} tokens is longer than the "
                             f"{self.position.num_embeddings} positions the model knows")
        T = input_ids.size(1)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)  # one segment
        x = (self.word(input_ids)                         # (B, T, C)
             + self.position(self.positions[:T])          # (T, C), broadcast over the batch
             + self.token_type(token_type_ids))           # (B, T, C)
        return self.dropout(self.ln(x))


class Pooler(nn.Module):
    """(B, T, C) -> (B, C): ``tanh(dense(h_[CLS]))``, the first token's final state through a
    dense layer and tanh -- BERT's summary of the whole input for sentence-level tasks."""

    def __init__(self, d_model: int):
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if hidden.dim() != 3 or hidden.size(-1) != self.dense.in_features:
            raise ValueError(f"hidden must be (B, T, {self.dense.in_features}), got "
                             f"{tuple(hidden.shape)}")
        return torch.tanh(self.dense(hidden[:, 0]))      # [CLS] is position 0: (B, C)


class Encoder(nn.Module):
    """A BERT-style encoder: embeddings + ``n_layer`` EncoderLayers (+ a pooler for heads).

    ``forward(input_ids, attention_mask, token_type_ids)`` returns the last hidden state
    (B, T, C): one contextual vector per token. Every layer keeps the shape. With
    ``config.norm_first=False`` (BERT, post-LN) each layer ends in a LayerNorm; a pre-LN stack
    gets a final LayerNorm ``ln_f`` instead. ``Encoder.from_pretrained(path)`` loads a
    BERT-layout checkpoint (default: the packaged all-MiniLM-L6-v2).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.config = config
        self.embeddings = EncoderEmbeddings(config)
        self.layers = nn.ModuleList([EncoderLayer(config) for _ in range(config.n_layer)])
        self.ln_f = config.layer_norm() if config.norm_first else None
        self.pooler = Pooler(config.n_embd)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T); attention_mask (B, T), 1 = real token, 0 = padding (None: all
        real); token_type_ids (B, T) or None. Returns the last hidden state (B, T, C)."""
        require_batch_ids(input_ids, "input_ids")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask must have the shape of input_ids "
                             f"{tuple(input_ids.shape)}, got {tuple(attention_mask.shape)}")
        x = self.embeddings(input_ids, token_type_ids)    # (B, T, C)
        mask = None if attention_mask is None else padding_mask(attention_mask)  # (B,1,1,T)
        for layer in self.layers:
            x = layer(x, mask)                            # (B, T, C), every token sees all
        if self.ln_f is not None:
            x = self.ln_f(x)
        return x

    @classmethod
    def from_pretrained(cls, path=None):
        """A BERT-layout folder (config.json + model.safetensors) -> Encoder in eval mode;
        path=None loads the packaged all-MiniLM-L6-v2. Names: solutions.pretrained."""
        from solutions.pretrained import load_encoder

        return load_encoder(path, cls)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, C), (B, T) 1/0 -> (B, C): the average of each text's real tokens (padding
    excluded), the sentence embedding of sentence-transformers' mean pooling."""
    if hidden.dim() != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"expected hidden (B, T, C) and attention_mask (B, T), got "
                         f"{tuple(hidden.shape)} and {tuple(attention_mask.shape)}")
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)     # (B, T, 1): 1 = real token
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, C)


class SentenceEncoder(nn.Module):
    """Texts -> unit-length vectors (N, C): WordPiece tokenizer + Encoder + mean pooling over
    the real tokens + L2 normalisation (how all-MiniLM-L6-v2 makes sentence embeddings), so the
    dot product of two outputs is their cosine similarity."""

    def __init__(self, encoder: Encoder, tokenizer, max_length: int = 256):
        super().__init__()
        if not isinstance(encoder, Encoder):
            raise TypeError(f"encoder must be an Encoder, got {type(encoder).__name__}")
        if not 0 < max_length <= encoder.config.block_size:
            raise ValueError(f"max_length must be in 1..{encoder.config.block_size}, "
                             f"got {max_length}")
        self.encoder, self.tokenizer, self.max_length = encoder, tokenizer, max_length

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids, attention_mask (B, T) -> (B, C), each row of length 1."""
        hidden = self.encoder(input_ids, attention_mask, token_type_ids)  # (B, T, C)
        return F.normalize(mean_pool(hidden, attention_mask), dim=-1)

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """A list of N texts -> (N, C) unit vectors (no gradients; texts truncated to
        max_length tokens)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a list of str (wrap a single text in a list)")
        device = self.encoder.pooler.dense.weight.device
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(list(texts[start:start + batch_size]), padding=True,
                                   truncation=True, max_length=self.max_length,
                                   return_tensors="pt")
            out.append(self(batch["input_ids"].to(device), batch["attention_mask"].to(device)))
        C = self.encoder.config.n_embd
        return torch.cat(out) if out else self.encoder.pooler.dense.weight.new_zeros(0, C)

    @classmethod
    def from_pretrained(cls, path=None) -> SentenceEncoder:
        """Encoder weights, vocab.txt and settings from a folder (None: all-MiniLM-L6-v2)."""
        import json
        from pathlib import Path

        from solutions.pretrained import minilm_path
        from solutions.tokenization import WordPieceTokenizer

        encoder = Encoder.from_pretrained(path)
        folder = minilm_path() if path is None else Path(path)
        settings = {}
        for name in ("tokenizer_config.json", "sentence_bert_config.json"):
            if (folder / name).is_file():
                settings[name] = json.loads((folder / name).read_text())
        lowercase = settings.get("tokenizer_config.json", {}).get("do_lower_case", True)
        max_length = settings.get("sentence_bert_config.json", {}).get(
            "max_seq_length", encoder.config.block_size)
        tokenizer = WordPieceTokenizer(folder / "vocab.txt", lowercase=lowercase,
                                       model_max_length=encoder.config.block_size)
        return cls(encoder, tokenizer, int(max_length)).eval()


class SequenceClassificationHead(nn.Module):
    """One label per text: (B, T, C) -> logits (B, n_classes) from the pooled [CLS] state.

    ``pooler``: share an encoder's (pretrained) Pooler, or None for a new one."""

    def __init__(self, d_model: int, n_classes: int, dropout: float = 0.0,
                 pooler: Pooler | None = None):
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        self.pooler = Pooler(d_model) if pooler is None else pooler
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d_model, n_classes)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pooler(hidden)))  # (B, n_classes)


class TokenClassificationHead(nn.Module):
    """One label per token (named entities, parts of speech): (B, T, C) -> (B, T, n_labels)."""

    def __init__(self, d_model: int, n_labels: int, dropout: float = 0.0):
        super().__init__()
        if n_labels < 1:
            raise ValueError(f"n_labels must be >= 1, got {n_labels}")
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d_model, n_labels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if hidden.dim() != 3 or hidden.size(-1) != self.classifier.in_features:
            raise ValueError(f"hidden must be (B, T, {self.classifier.in_features}), got "
                             f"{tuple(hidden.shape)}")
        return self.classifier(self.dropout(hidden))      # (B, T, n_labels)


class QuestionAnsweringHead(nn.Module):
    """Extractive QA: (B, T, C) -> (start_logits, end_logits), each (B, T): how likely each
    token is to start / end the answer span inside the context."""

    def __init__(self, d_model: int):
        super().__init__()
        self.qa = nn.Linear(d_model, 2)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if hidden.dim() != 3 or hidden.size(-1) != self.qa.in_features:
            raise ValueError(f"hidden must be (B, T, {self.qa.in_features}), got "
                             f"{tuple(hidden.shape)}")
        start, end = self.qa(hidden).unbind(-1)          # (B, T) each
        return start, end


# ---------------------------------------------------------------------------------------------
# Decoders (chapter 8): a KV cache, GPT, and the encoder-decoder
# ---------------------------------------------------------------------------------------------


class KVCache:
    """The keys and values a decoder has already computed: one (k, v) pair per layer, each
    (B, H, T_past, D). Generation feeds only the new token and reuses the past from here."""

    def __init__(self, n_layer: int):
        if n_layer < 1:
            raise ValueError(f"a KV cache needs at least one layer, got n_layer={n_layer}")
        self.layers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layer

    @property
    def length(self) -> int:
        """T_past: how many positions are cached (the position of the next token)."""
        first = self.layers[0]
        return 0 if first is None else first[0].size(-2)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Append the new keys and values (B, H, T_new, D) of one layer; returns all of them,
        (B, H, T_past + T_new, D)."""
        past = self.layers[layer]
        if past is not None:
            k = torch.cat([past[0], k], dim=-2)
            v = torch.cat([past[1], v], dim=-2)
        self.layers[layer] = (k, v)
        return k, v

    def reorder(self, index: torch.Tensor) -> None:
        """Keep the sequences `index` (a LongTensor of batch rows), as beam search does."""
        self.layers = [None if kv is None else (kv[0][index], kv[1][index])
                       for kv in self.layers]


def cached_self_attention(attn: MultiHeadAttention, x: torch.Tensor, cache: KVCache,
                          layer: int) -> torch.Tensor:
    """Causal self-attention of the new tokens x (B, T_new, C) over the cached past and
    themselves, with the projections of `attn`; stores their keys and values in `cache`."""
    q = split_heads(attn.query(x), attn.n_heads)          # (B, H, T_new, D)
    k = split_heads(attn.key(x), attn.n_heads)            # (B, H, T_new, D)
    v = split_heads(attn.value(x), attn.n_heads)          # (B, H, T_new, D)
    k, v = cache.update(layer, k, v)                      # (B, H, T_all, D)
    T_new, T_all = q.size(-2), k.size(-2)
    # new token i sits at position T_all - T_new + i and may see every key up to it
    mask = torch.ones(T_new, T_all, dtype=torch.bool, device=x.device).tril(T_all - T_new)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[None, None])
    return attn.out(merge_heads(y))                       # (B, T_new, C)


def cached_block(block: Block, x: torch.Tensor, cache: KVCache, layer: int,
                 context: torch.Tensor | None = None,
                 context_mask: torch.Tensor | None = None) -> torch.Tensor:
    """`block(x, context=..., context_mask=...)` for a causal Block in eval mode, for the new
    tokens only: self-attention reads the earlier positions from `cache`."""
    cross = getattr(block, "cross_attn", None)
    if block.ln_1.weight.size(0) != x.size(-1):
        raise ValueError(f"x has {x.size(-1)} features, the block {block.ln_1.weight.size(0)}")
    if cross is not None and context is None:
        raise ValueError("this block has cross-attention: pass the encoder output as context")
    if getattr(block, "norm_first", True):                # pre-LN, as GPT-2
        x = x + cached_self_attention(block.attn, block.ln_1(x), cache, layer)
        if cross is not None:
            x = x + cross(block.ln_cross(x), context, context_mask)[0]
        return x + block.mlp(block.ln_2(x))
    x = block.ln_1(x + cached_self_attention(block.attn, x, cache, layer))  # post-LN
    if cross is not None:
        x = block.ln_cross(x + cross(x, context, context_mask)[0])
    return block.ln_2(x + block.mlp(x))


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100):
    """Mean cross-entropy of logits (B, T, V) against targets (B, T); targets equal to
    `ignore_index` (padding) count for nothing."""
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets must be {tuple(logits.shape[:-1])} (one id per position), "
                         f"got {tuple(targets.shape)}")
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=ignore_index)


def _init_gpt_weights(model: nn.Module, n_layer: int) -> None:
    """GPT-2's initialisation: N(0, 0.02) for matrices and tables, zero biases, and the
    projections that write into the residual stream scaled down by 1 / sqrt(2 n_layer).
    (LayerNorm weights keep their initial ones.)"""
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            nn.init.zeros_(p)
        elif p.dim() >= 2:
            residual = name.endswith(("attn.out.weight", "mlp.proj.weight"))
            std = 0.02 * (2 * n_layer) ** -0.5 if residual else 0.02
            nn.init.normal_(p, mean=0.0, std=std)


class GPT(nn.Module):
    """A decoder-only language model laid out like GPT-2: token + learned position embeddings,
    `n_layer` causal pre-LN Blocks, a final LayerNorm and an LM head tied to the token table.

    forward(idx (B, T), targets (B, T) or None) -> (logits (B, T, V), loss or None).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.vocab_size < 1 or config.block_size < 1:
            raise ValueError("vocab_size and block_size must be positive")
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)   # token table (V, C)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)   # position table (L, C)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, causal=True) for _ in range(config.n_layer))
        self.ln_f = config.layer_norm()                    # LayerNorm(C, eps=config.eps)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight              # tied: one (V, C) matrix
        self.register_buffer("positions", torch.arange(config.block_size), persistent=False)
        _init_gpt_weights(self, config.n_layer)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                ignore_index: int = -100, cache: KVCache | None = None):
        """idx (B, T) token ids -> (logits (B, T, V), mean cross-entropy against targets or
        None). With a `cache`, idx holds only the new tokens and their positions follow the
        cached ones (eval mode only)."""
        self.check_inputs(idx, cache)
        start = 0 if cache is None else cache.length      # positions already in the cache
        T = idx.size(1)
        pos = self.positions[start:start + T]              # (T,), on the model's device
        x = self.drop(self.wte(idx) + self.wpe(pos))       # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x) if cache is None else cached_block(block, x, cache, i)
        logits = self.lm_head(self.ln_f(x))                # (B, T, V)
        loss = None if targets is None else lm_loss(logits, targets, ignore_index)
        return logits, loss

    def check_inputs(self, idx: torch.Tensor, cache: KVCache | None = None) -> None:
        """Raise a clear error for ids that are not (B, T) integers, for a sequence longer than
        block_size (cached tokens included), or for a cache used in training mode."""
        if idx.dim() != 2 or idx.dtype not in (torch.long, torch.int):
            raise ValueError(f"idx must be (B, T) integer token ids, got {tuple(idx.shape)} "
                             f"{idx.dtype}")
        length = idx.size(1) + (0 if cache is None else cache.length)
        if length > self.config.block_size:
            raise ValueError(f"sequence of {length} tokens is longer than block_size "
                             f"{self.config.block_size}")
        if cache is not None and self.training:
            raise RuntimeError("the KV cache is for generation: call model.eval() first")

    def new_cache(self) -> KVCache:
        return KVCache(self.config.n_layer)

    @classmethod
    def from_hf(cls, model: nn.Module):
        """Our GPT with the weights of a `transformers.GPT2LMHeadModel` (same logits)."""
        from solutions.pretrained import gpt2_config, load_gpt2

        gpt = cls(gpt2_config(model.config))
        return load_gpt2(gpt, model.state_dict())


class EncoderDecoder(nn.Module):
    """The 2017 transformer's shape: an encoder stack reads the source; a decoder stack (masked
    self-attention, cross-attention to the encoder output, FFN) predicts the target.

    One vocabulary for both sides; the LM head is tied to the shared token table.
    forward(src (B, S), tgt (B, T), targets (B, T) or None, src_mask (B, S) or None)
    -> (logits (B, T, V), loss or None). src_mask: True (or 1) = real token, False = padding.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        C = config.n_embd
        self.embed = nn.Embedding(config.vocab_size, C)    # shared token table (V, C)
        self.src_pos = nn.Embedding(config.block_size, C)
        self.tgt_pos = nn.Embedding(config.block_size, C)
        self.drop = nn.Dropout(config.dropout)
        self.encoder = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_enc = config.layer_norm() if config.norm_first else nn.Identity()
        self.decoder = nn.ModuleList(Block(config, causal=True, cross=True)
                                     for _ in range(config.n_layer))
        self.ln_f = config.layer_norm() if config.norm_first else nn.Identity()
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        self.lm_head.weight = self.embed.weight
        self.register_buffer("positions", torch.arange(config.block_size), persistent=False)
        _init_gpt_weights(self, 2 * config.n_layer)

    def _check(self, ids: torch.Tensor, start: int, name: str) -> None:
        if ids.dim() != 2 or ids.dtype not in (torch.long, torch.int):
            raise ValueError(f"{name} must be (B, T) integer token ids, got {tuple(ids.shape)} "
                             f"{ids.dtype}")
        if start + ids.size(1) > self.config.block_size:
            raise ValueError(f"{name} of {start + ids.size(1)} tokens is longer than "
                             f"block_size {self.config.block_size}")

    @staticmethod
    def _context_mask(src_mask: torch.Tensor | None) -> torch.Tensor | None:
        return None if src_mask is None else padding_mask(src_mask.bool())  # (B, 1, 1, S)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """src (B, S) -> memory (B, S, C), every source token seeing every real source token."""
        self._check(src, 0, "src")
        mask = self._context_mask(src_mask)
        x = self.drop(self.embed(src) + self.src_pos(self.positions[:src.size(1)]))
        for block in self.encoder:
            x = block(x, mask)
        return self.ln_enc(x)

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor,
               src_mask: torch.Tensor | None = None, targets: torch.Tensor | None = None, *,
               ignore_index: int = -100, cache: KVCache | None = None):
        """tgt (B, T) and the encoder output memory (B, S, C) -> (logits (B, T, V), loss)."""
        start = 0 if cache is None else cache.length
        self._check(tgt, start, "tgt")
        if cache is not None and self.training:
            raise RuntimeError("the KV cache is for generation: call model.eval() first")
        context_mask = self._context_mask(src_mask)
        pos = self.positions[start:start + tgt.size(1)]
        x = self.drop(self.embed(tgt) + self.tgt_pos(pos))  # (B, T, C)
        for i, block in enumerate(self.decoder):
            if cache is None:
                x = block(x, context=memory, context_mask=context_mask)
            else:
                x = cached_block(block, x, cache, i, memory, context_mask)
        logits = self.lm_head(self.ln_f(x))                # (B, T, V)
        loss = None if targets is None else lm_loss(logits, targets, ignore_index)
        return logits, loss

    def forward(self, src: torch.Tensor, tgt: torch.Tensor,
                targets: torch.Tensor | None = None, src_mask: torch.Tensor | None = None, *,
                ignore_index: int = -100):
        return self.decode(tgt, self.encode(src, src_mask), src_mask, targets,
                           ignore_index=ignore_index)

    def conditioned(self, src: torch.Tensor,
                    src_mask: torch.Tensor | None = None) -> SourceConditioned:
        """The decoder with this source encoded once, called like a GPT (for `generate`)."""
        return SourceConditioned(self, src, src_mask)


class SourceConditioned:
    """An EncoderDecoder's decoder bound to one encoded source: `self(tgt, targets, cache=)`
    works like `GPT.forward`, so the decoding functions serve both kinds of model."""

    def __init__(self, model: EncoderDecoder, src: torch.Tensor,
                 src_mask: torch.Tensor | None = None):
        self.model, self.config, self.src_mask = model, model.config, src_mask
        self.memory = model.encode(src, src_mask)           # (B, S, C)

    @property
    def training(self) -> bool:
        return self.model.training

    def train(self, mode: bool = True) -> SourceConditioned:
        self.model.train(mode)
        return self

    def eval(self) -> SourceConditioned:
        return self.train(False)

    def new_cache(self) -> KVCache:
        return KVCache(self.config.n_layer)

    def reorder(self, index: torch.Tensor) -> None:
        """Keep the batch rows `index` of the encoded source (beam search)."""
        self.memory = self.memory[index]
        self.src_mask = None if self.src_mask is None else self.src_mask[index]

    def __call__(self, tgt: torch.Tensor, targets: torch.Tensor | None = None, *,
                 cache: KVCache | None = None):
        if tgt.size(0) != self.memory.size(0):
            raise ValueError(f"tgt has {tgt.size(0)} rows, the encoded source "
                             f"{self.memory.size(0)}")
        return self.model.decode(tgt, self.memory, self.src_mask, targets, cache=cache)
