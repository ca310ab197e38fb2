"""A toy task small enough to train an attention layer on a laptop CPU in seconds: copy the
token `offset` places away (`copy_task`), with a one-layer attention model (`OneLayerAttention`)
that takes any module shaped like `MultiHeadAttention` (`train`). AUTHORING.md, "The copy task
of Chapter 3", describes it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from solutions.attention import MultiHeadAttention, causal_mask

IGNORE = -100  # target of positions without an answer; skipped by F.cross_entropy


def copy_task(
    n_sequences: int, seq_len: int = 12, vocab_size: int = 16, *, offset: int = -1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)``, both LongTensors of shape (n_sequences, seq_len): random tokens,
    and at each position the token ``offset`` places away (``IGNORE`` where there is none)."""
    for name, value in (("n_sequences", n_sequences), ("seq_len", seq_len),
                        ("vocab_size", vocab_size), ("offset", offset), ("seed", seed)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if n_sequences < 1 or vocab_size < 2:
        raise ValueError(f"need n_sequences >= 1 and vocab_size >= 2, got {n_sequences}, "
                         f"{vocab_size}")
    if offset == 0 or abs(offset) >= seq_len:
        raise ValueError(f"offset must be non-zero and shorter than seq_len ({seq_len}), "
                         f"got {offset}")
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randint(vocab_size, (n_sequences, seq_len), generator=gen)  # (N, T)
    targets = torch.full_like(inputs, IGNORE)                                  # (N, T)
    if offset < 0:
        targets[:, -offset:] = inputs[:, :offset]      # position i gets token i + offset
    else:
        targets[:, :-offset] = inputs[:, offset:]
    return inputs, targets


class _Scale(nn.Module):
    """Multiply by a constant (used to undo the 1/sqrt(d_head) of attention)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class OneLayerAttention(nn.Module):
    """Embeddings (token + position) -> one attention layer -> linear read-out to the vocabulary.

    ``attention_cls(d_model, n_heads)`` builds the attention layer. For ablations of the
    reference layer (they need its ``query`` and ``key`` projections): ``shared_qk=True`` uses
    the query projection for the keys too; ``scaled=False`` multiplies the queries by
    sqrt(d_head), which cancels the layer's division by sqrt(d_head).
    """

    def __init__(self, vocab_size: int, seq_len: int, d_model: int = 32, n_heads: int = 2, *,
                 attention_cls: Callable[[int, int], nn.Module] = MultiHeadAttention,
                 shared_qk: bool = False, scaled: bool = True):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.seq_len = seq_len
        self.embed = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(seq_len, d_model)
        self.attention = attention_cls(d_model, n_heads)
        if shared_qk or not scaled:
            if not all(hasattr(self.attention, p) for p in ("query", "key")):
                raise TypeError("shared_qk / scaled=False need an attention layer with "
                                "`query` and `key` projections")
        if shared_qk:
            self.attention.key = self.attention.query
        if not scaled:
            factor = math.sqrt(d_model // n_heads)
            self.attention.query = nn.Sequential(self.attention.query, _Scale(factor))
        self.readout = nn.Linear(d_model, vocab_size)

    def forward(self, tokens: torch.Tensor, causal: bool = True, need_weights: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """tokens (B, T) -> (logits (B, T, vocab_size), weights (B, H, T, T) or None)."""
        if tokens.dim() != 2 or tokens.size(1) > self.seq_len:
            raise ValueError(f"tokens must be (B, T) with T <= {self.seq_len}, "
                             f"got {tuple(tokens.shape)}")
        T = tokens.size(1)
        positions = torch.arange(T, device=tokens.device)                     # (T,)
        x = self.embed(tokens) + self.position(positions)                     # (B, T, C)
        mask = causal_mask(T, tokens.device).reshape(1, 1, T, T) if causal else None
        y, weights = self.attention(x, mask=mask, need_weights=need_weights)  # (B, T, C)
        return self.readout(y), weights                                       # (B, T, V)


@dataclass
class TrainResult:
    """What :func:`train` hands back."""

    model: OneLayerAttention
    losses: list[float]                      # training loss at every step
    accuracy: float                          # on held-out sequences, answerable positions only
    seconds: float                           # wall-clock training time
    probe: torch.Tensor                      # (T,) the fixed sequence the snapshots are taken on
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)  # step -> (H, T, T) weights


def accuracy(model: OneLayerAttention, inputs: torch.Tensor, targets: torch.Tensor,
             causal: bool = True) -> float:
    """Fraction of answerable positions (target != IGNORE) where the top logit is the target."""
    with torch.no_grad():
        logits, _ = model(inputs, causal=causal)
    keep = targets != IGNORE
    return (logits.argmax(-1)[keep] == targets[keep]).float().mean().item()


def train(
    attention_cls: Callable[[int, int], nn.Module] = MultiHeadAttention,
    *,
    offset: int = -1,
    causal: bool = True,
    shared_qk: bool = False,
    scaled: bool = True,
    steps: int = 200,
    batch_size: int = 64,
    seq_len: int = 12,
    vocab_size: int = 16,
    d_model: int = 32,
    n_heads: int = 2,
    lr: float = 3e-3,
    seed: int = 0,
    snapshot_steps: tuple[int, ...] = (),
) -> TrainResult:
    """Train a :class:`OneLayerAttention` on :func:`copy_task` and measure held-out accuracy.

    Every batch is fresh (seeded by ``seed`` and the step); the test set uses another seed.
    ``snapshot_steps`` lists steps (0 = before training) at which the attention weights on a
    fixed probe sequence are kept. Training runs on one CPU thread (faster than several for a
    model this small, and fair on a shared machine); the thread setting is restored after."""
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    torch.manual_seed(seed)
    model = OneLayerAttention(vocab_size, seq_len, d_model, n_heads, attention_cls=attention_cls,
                              shared_qk=shared_qk, scaled=scaled)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    probe, _ = copy_task(1, seq_len, vocab_size, offset=offset, seed=10_000 + seed)
    snapshots: dict[int, torch.Tensor] = {}

    def snapshot(step: int) -> None:
        if step in snapshot_steps:
            with torch.no_grad():
                _, w = model(probe, causal=causal, need_weights=True)
            snapshots[step] = w[0].detach().clone()                           # (H, T, T)

    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        snapshot(0)
        for step in range(1, steps + 1):
            losses.append(_step(model, optimizer, batch_size, seq_len, vocab_size, offset,
                                causal, seed * 1_000_003 + step))
            snapshot(step)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    test_inputs, test_targets = copy_task(1000, seq_len, vocab_size, offset=offset,
                                          seed=20_000 + seed)
    model.eval()
    acc = accuracy(model, test_inputs, test_targets, causal=causal)
    return TrainResult(model, losses, acc, seconds, probe[0], snapshots)


def _step(model, optimizer, batch_size, seq_len, vocab_size, offset, causal, seed) -> float:
    """One optimisation step on a fresh seeded batch; returns the loss."""
    inputs, targets = copy_task(batch_size, seq_len, vocab_size, offset=offset, seed=seed)
    logits, _ = model(inputs, causal=causal)                                  # (B, T, V)
    loss = F.cross_entropy(logits.reshape(-1, vocab_size), targets.reshape(-1),
                           ignore_index=IGNORE)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
