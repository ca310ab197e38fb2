"""Layer normalization: keep every token's features at zero mean and unit variance.

- :func:`layer_norm` -- standardise each token over its features (mean, biased variance, eps
  inside the square root), then scale by ``weight`` and shift by ``bias``.
- :class:`LayerNorm` -- the module with learned ``weight`` (ones) and ``bias`` (zeros), laid out
  like ``torch.nn.LayerNorm`` and BERT's ``LayerNorm.{weight,bias}``.
- :class:`FusedLayerNorm` -- the same module (same ``weight`` and ``bias``) computed by
  PyTorch's fused ``F.layer_norm`` kernel: one kernel forward and one backward instead of a
  chain of elementwise ones. The models use it unless ``ModelConfig(fused=False)``.
- :class:`RMSNorm` -- the lighter variant of LLaMA-style models: no mean, no shift, divide by the
  root mean square.

Each token is normalised on its own, over the last axis only: the result never depends on the
other tokens of the sequence or on the other sequences of the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
               eps: float = 1e-5) -> torch.Tensor:
    """x (..., C) -> (..., C): (x - mean) / sqrt(var + eps) * weight + bias, with the mean and
    the biased variance (divide by C) of each token's C features; weight, bias (C,)."""
    if x.dim() < 1 or x.size(-1) != weight.numel():
        raise ValueError(f"x must have {weight.numel()} features in its last axis, like the "
                         f"weight: (B, T, {weight.numel()}), got shape {tuple(x.shape)}")
    mean = x.mean(dim=-1, keepdim=True)                   # (..., 1)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)    # (..., 1), biased: divide by C
    x_hat = (x - mean) / torch.sqrt(var + eps)            # (..., C), zero mean, unit variance
    return x_hat * weight + bias


class LayerNorm(nn.Module):
    """LayerNorm over the last axis of size ``normalized_shape``, with a learned scale
    ``weight`` (starts at ones) and shift ``bias`` (starts at zeros)."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5):
        super().__init__()
        if not isinstance(normalized_shape, int) or normalized_shape < 1:
            raise ValueError("normalized_shape is the number of features (a positive int), "
                             f"got {normalized_shape!r}")
        self.normalized_shape, self.eps = normalized_shape, eps
        self.weight = nn.Parameter(torch.ones(normalized_shape))    # scale (C,), starts at 1
        self.bias = nn.Parameter(torch.zeros(normalized_shape))     # shift (C,), starts at 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., C) -> (..., C), each token normalised over its C features (layer_norm
        checks that C is normalized_shape)."""
        return layer_norm(x, self.weight, self.bias, self.eps)


class FusedLayerNorm(LayerNorm):
    """:class:`LayerNorm` computed by PyTorch's fused kernel ``F.layer_norm``: the same
    function of the same parameters (identical state_dict), tested equal to the definition,
    in one kernel forward and one backward (nanoGPT's LayerNorm does the same)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., C) -> (..., C), each token normalised over its C features."""
        if x.dim() < 1 or x.size(-1) != self.normalized_shape:
            return super().forward(x)                     # raises the definition's error
        return F.layer_norm(x, (self.normalized_shape,), self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    """RMSNorm over the last axis: x / sqrt(mean(x^2) + eps) * weight. No mean subtracted and
    no bias: cheaper than LayerNorm and, in practice, as good (LLaMA, Mistral, T5)."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6):
        super().__init__()
        if not isinstance(normalized_shape, int) or normalized_shape < 1:
            raise ValueError("normalized_shape is the number of features (a positive int), "
                             f"got {normalized_shape!r}")
        self.normalized_shape, self.eps = normalized_shape, eps
        self.weight = nn.Parameter(torch.ones(normalized_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., C) -> (..., C), each token divided by the root mean square of its features."""
        if x.dim() < 1 or x.size(-1) != self.normalized_shape:
            raise ValueError(f"RMSNorm({self.normalized_shape}): x must have "
                             f"{self.normalized_shape} features in its last axis, "
                             f"got shape {tuple(x.shape)}")
        ms = (x * x).mean(dim=-1, keepdim=True)           # (..., 1) mean square
        return x / torch.sqrt(ms + self.eps) * self.weight
