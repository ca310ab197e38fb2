"""Decoders (chapter 8): a language model that writes, and the 2017 encoder-decoder.

- :class:`GPT` -- the decoder-only model laid out like GPT-2 (the nanoGPT-sized model file of
  the course: token + position embeddings, causal :class:`~solutions.residual.Block` s, final
  LayerNorm, tied LM head); ``GPT.from_hf`` loads GPT-2 through :mod:`solutions.pretrained`.
- :class:`KVCache`, :class:`LayerCache` -- the keys and values already computed, so generation
  feeds only the new tokens (each layer's attention reads and extends its own).
- :func:`lm_loss` -- the next-token cross-entropy.
- :class:`EncoderDecoder`, :class:`SourceConditioned` -- the 2017 transformer, and its decoder
  bound to one source so that :mod:`solutions.generation` drives it like a GPT.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from solutions.attention import padding_mask
from solutions.model import ModelConfig
from solutions.pretrained import gpt2_config, load_gpt2
from solutions.residual import Block


class LayerCache:
    """One attention layer's keys and values so far, ``k`` and ``v`` each (B, H, T_past, D)
    (None before the first update). :class:`~solutions.attention.MultiHeadAttention` calls
    ``update`` when given ``cache=``."""

    def __init__(self):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    @property
    def length(self) -> int:
        """T_past: how many positions are cached (the position of the next token)."""
        return 0 if self.k is None else self.k.size(-2)

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new keys and values (B, H, T_new, D) after the cached ones; returns all
        of them, (B, H, T_past + T_new, D) each."""
        if self.k is not None:                            # the past first, then the new
            k, v = torch.cat([self.k, k], dim=-2), torch.cat([self.v, v], dim=-2)
        self.k, self.v = k, v
        return k, v


class KVCache:
    """The keys and values a decoder has already computed: one :class:`LayerCache` per layer
    (``cache[i]``). Generation feeds only the new tokens and reuses the past from here."""

    def __init__(self, n_layer: int):
        if n_layer < 1:
            raise ValueError(f"a KV cache needs at least one layer, got n_layer={n_layer}")
        self.layers = [LayerCache() for _ in range(n_layer)]

    def __getitem__(self, layer: int) -> LayerCache:
        return self.layers[layer]

    @property
    def length(self) -> int:
        """T_past: how many positions are cached (the position of the next token)."""
        return self.layers[0].length

    def reorder(self, index: torch.Tensor) -> None:
        """Keep the sequences `index` (a LongTensor of batch rows), as beam search does."""
        for layer in self.layers:
            if layer.k is not None:
                layer.k, layer.v = layer.k[index], layer.v[index]


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
        if not p.requires_grad:                            # a fixed table (sinusoidal)
            continue
        if name.endswith("bias"):
            nn.init.zeros_(p)
        elif p.dim() >= 2:
            residual = name.endswith(("attn.out.weight", "mlp.proj.weight", "mlp.down.weight"))
            std = 0.02 * (2 * n_layer) ** -0.5 if residual else 0.02
            nn.init.normal_(p, mean=0.0, std=std)


class GPT(nn.Module):
    """A decoder-only language model laid out like GPT-2: token + learned position embeddings,
    `n_layer` causal pre-LN Blocks, a final LayerNorm and an LM head tied to the token table.
    The configuration swaps the parts of today's decoders in (chapter 12): a fixed sinusoidal
    table, or rotary positions (they act inside attention, and the table adds nothing), RMSNorm,
    SwiGLU, grouped-query attention and an untied head (:class:`solutions.llama.Llama` loads
    Llama and Qwen3 checkpoints into such a GPT).

    forward(idx (B, T), targets (B, T) or None) -> (logits (B, T, V), loss or None).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.vocab_size < 1 or config.block_size < 1:
            raise ValueError("vocab_size and block_size must be positive")
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)   # token table (V, C)
        self.wpe = config.position_table()                 # position table (L, C)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, causal=True) for _ in range(config.n_layer))
        self.ln_f = config.layer_norm()                    # LayerNorm(C, eps=config.eps)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight          # tied: one (V, C) matrix
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
            x = block(x, cache=None if cache is None else cache[i])  # (B, T, C)
        logits = self.lm_head(self.ln_f(x))                # (B, T, V)
        loss = None if targets is None else lm_loss(logits, targets, ignore_index)
        return logits, loss

    def check_inputs(self, idx: torch.Tensor, cache: KVCache | None = None) -> None:
        """Raise a clear error for ids that are not (B, T) integers, for a sequence longer than
        block_size (cached tokens included), or for a cache used in training mode."""
        if idx.dim() != 2 or idx.dtype not in (torch.long, torch.int):
            raise ValueError(f"idx must be (B, T) integer token ids, got {tuple(idx.shape)} "
                             f"{idx.dtype}")
        cached = 0 if cache is None else cache.length
        length = idx.size(1) + cached
        if length > self.config.block_size:
            parts = f" ({cached} cached + {idx.size(1)} new)" if cached else ""
            raise ValueError(f"sequence of {length} tokens{parts} is longer than block_size "
                             f"{self.config.block_size}")
        if cache is not None and self.training:
            raise RuntimeError("the KV cache is for generation: call model.eval() first")

    def new_cache(self) -> KVCache:
        return KVCache(self.config.n_layer)

    @classmethod
    def from_hf(cls, model: nn.Module):
        """Our GPT with the weights of a `transformers.GPT2LMHeadModel` (same logits)."""
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
            x = block(x, context=memory, context_mask=context_mask,
                      cache=None if cache is None else cache[i])
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
