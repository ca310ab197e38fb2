"""The position-wise feed-forward network: the second sub-layer of every transformer layer.

- :func:`gelu` -- the Gaussian Error Linear Unit, exactly: ``x * Phi(x)`` with the normal CDF
  ``Phi(x) = (1 + erf(x / sqrt 2)) / 2`` (BERT, MiniLM).
- :func:`gelu_tanh` -- the tanh approximation of GELU that GPT-2 uses.
- :class:`FeedForward` -- ``Linear(C, 4C) -> activation -> Linear(4C, C) -> dropout``, applied to
  every token on its own with the same weights (a 1-D convolution of kernel size 1).
- :class:`FusedFeedForward` -- the same network with PyTorch's fused activation kernels
  (``F.gelu``): one kernel instead of the formula's chain. The models use it unless
  ``ModelConfig(fused=False)``.
- :func:`feedforward_parameters` -- how many parameters such a network holds.

Shapes: ``(B, T, C)`` in and out; ``(B, T, d_ff)`` in the hidden layer.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


def gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact GELU, elementwise: 0.5 * x * (1 + erf(x / sqrt(2))), i.e. x times the probability
    that a standard normal variable is below x."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU's tanh approximation (GPT-2), elementwise:
    0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


class FeedForward(nn.Module):
    """Position-wise feed-forward network: ``dropout(proj(activation(fc(x))))``.

    ``fc`` expands each token's ``d_model`` features to ``d_ff`` (4 * d_model unless given),
    the activation acts on each of them, ``proj`` maps back to ``d_model``; dropout (only while
    training) acts on the output. Every token goes through the same weights, on its own.
    Hugging Face names: BERT ``intermediate.dense`` -> ``fc``, ``output.dense`` -> ``proj``;
    GPT-2 ``mlp.c_fc`` -> ``fc``, ``mlp.c_proj`` -> ``proj`` (transposed: GPT-2 stores Conv1D).
    """

    def __init__(self, d_model: int, d_ff: int | None = None, dropout: float = 0.0,
                 activation: str = "gelu", bias: bool = True):
        super().__init__()
        if activation not in ("gelu", "gelu_tanh", "relu"):
            raise ValueError("activation must be 'gelu', 'gelu_tanh' or 'relu', "
                             f"got {activation!r}")
        if d_model < 1 or (d_ff is not None and d_ff < 1):
            raise ValueError(f"sizes must be positive, got d_model={d_model}, d_ff={d_ff}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout is a probability in [0, 1), got {dropout}")
        d_ff = 4 * d_model if d_ff is None else d_ff
        self.fc = nn.Linear(d_model, d_ff, bias=bias)     # C -> d_ff, for every token
        self.proj = nn.Linear(d_ff, d_model, bias=bias)   # d_ff -> C
        self.d_model, self.d_ff = d_model, d_ff
        self.dropout, self.activation = dropout, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., T, C) -> (..., T, C), each token transformed on its own."""
        if x.dim() < 1 or x.size(-1) != self.d_model:
            raise ValueError(f"x must have {self.d_model} features in its last axis "
                             f"(B, T, {self.d_model}), got shape {tuple(x.shape)}")
        h = self.fc(x)                                    # (B, T, d_ff)
        if self.activation == "gelu":
            h = gelu(h)
        elif self.activation == "gelu_tanh":
            h = gelu_tanh(h)
        else:
            h = torch.relu(h)
        y = self.proj(h)                                  # (B, T, C)
        return F.dropout(y, p=self.dropout, training=self.training)


FUSED_ACTIVATIONS = {"gelu": F.gelu, "gelu_tanh": partial(F.gelu, approximate="tanh"),
                     "relu": F.relu}


class FusedFeedForward(FeedForward):
    """:class:`FeedForward` with the activation computed by PyTorch's fused kernel (``F.gelu``,
    ``F.gelu(approximate="tanh")``, ``F.relu``): the same function of the same parameters,
    tested equal to :func:`gelu` and :func:`gelu_tanh`, in one kernel each way."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., T, C) -> (..., T, C), each token transformed on its own."""
        if x.dim() < 1 or x.size(-1) != self.d_model:
            return super().forward(x)                     # raises the definition's error
        h = FUSED_ACTIVATIONS[self.activation](self.fc(x))  # (B, T, d_ff)
        return F.dropout(self.proj(h), p=self.dropout, training=self.training)  # (B, T, C)


def feedforward_parameters(d_model: int, d_ff: int, bias: bool = True) -> int:
    """The number of learned numbers in one FeedForward(d_model, d_ff, bias=bias):
    two weight matrices, plus one bias per output feature of each Linear."""
    if min(d_model, d_ff) < 1:
        raise ValueError(f"sizes must be positive, got d_model={d_model}, d_ff={d_ff}")
    weights = d_model * d_ff + d_ff * d_model
    biases = d_ff + d_model if bias else 0
    return weights + biases
