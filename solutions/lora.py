"""LoRA: fine-tune a frozen linear layer through a trainable low-rank update.

- :class:`LoRALinear` -- a frozen ``nn.Linear`` (``base``, weight W of shape (out, in)) plus
  ``scaling * B @ A``, with A (r, in) and B (out, r); B starts at zero, so the wrapped layer
  starts as the pretrained one. :meth:`LoRALinear.merge` folds the update into one
  ``nn.Linear`` for inference.
- :func:`add_lora` -- wrap a model's linear layers chosen by name (``("query", "value")``) and
  freeze everything else but what the caller names (a new head, say).
- :func:`merge_lora` -- replace every :class:`LoRALinear` of a model by its merged layer.
- :func:`adam_state_bytes` -- the memory an Adam-type optimizer keeps for its moments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


class LoRALinear(nn.Module):
    """y = base(x) + dropout(x) @ A.T @ B.T * (alpha / r), with base frozen.

    A (r, in_features) is initialised as peft does (``kaiming_uniform_(a=sqrt(5))``), B
    (out_features, r) with zeros. ``dropout`` applies to the LoRA branch's input only.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        if not isinstance(r, int) or isinstance(r, bool) or r <= 0:
            raise ValueError(f"r must be an int >= 1, got {r!r}")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.base = base.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        kind = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.A = nn.Parameter(torch.empty(r, base.in_features, **kind))
        self.B = nn.Parameter(torch.zeros(base.out_features, r, **kind))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in_features) -> (..., out_features)."""
        down = self.dropout(x) @ self.A.T                  # (..., r)
        update = down @ self.B.T                           # (..., out_features)
        return self.base(x) + update * self.scaling

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A new nn.Linear with weight W + scaling * B @ A (out, in) and base's bias; the
        base layer is left unchanged."""
        merged = nn.Linear(self.base.in_features, self.base.out_features,
                           bias=self.base.bias is not None, device=self.base.weight.device,
                           dtype=self.base.weight.dtype)
        merged.weight.copy_(self.base.weight + self.scaling * (self.B @ self.A))
        if self.base.bias is not None:
            merged.bias.copy_(self.base.bias)
        return merged


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def add_lora(model: nn.Module, targets: Iterable[str], r: int, alpha: float,
             dropout: float = 0.0, train: Iterable[str] = ()) -> nn.Module:
    """Wrap in a :class:`LoRALinear` every ``nn.Linear`` of `model` whose name is a target or
    ends with ``"." + target`` (``"query"`` matches ``layers.0.attn.query``), freeze every
    other parameter except those under the names in `train` (``["classifier"]``); returns
    `model`, changed in place. A target that matches no linear layer raises ValueError."""
    if isinstance(targets, str) or isinstance(train, str):
        raise TypeError("targets and train must be lists of names, e.g. ['query'], not a str")
    targets, train = list(targets), list(train)
    if not targets:
        raise ValueError("targets is empty: name the linear layers to adapt, e.g. ['query']")
    chosen = {name: module for name, module in model.named_modules()
              if any(_matches(name, t) for t in targets)}
    for t in targets:
        if not any(_matches(name, t) for name in chosen):
            raise ValueError(f"no module of the model is called {t!r} or ends with '.{t}'")
    for name, module in chosen.items():
        if not isinstance(module, nn.Linear):
            raise TypeError(f"{name} is a {type(module).__name__}; LoRA wraps nn.Linear")
    params = dict(model.named_parameters())
    for name in train:
        if not any(n == name or n.startswith(name + ".") for n in params):
            raise ValueError(f"no parameter of the model is called {name!r} or lies under it")
    model.requires_grad_(False)
    for name, module in chosen.items():
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, LoRALinear(module, r, alpha, dropout))
    for n, p in model.named_parameters():
        if any(n == name or n.startswith(name + ".") for name in train):
            p.requires_grad_(True)
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` in `model` by its merged ``nn.Linear``; returns
    `model`, changed in place (same outputs, no LoRA branch left to compute)."""
    wrapped = [name for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    if not wrapped:
        raise ValueError("the model has no LoRALinear layer to merge")
    for name in wrapped:
        parent, _, child = name.rpartition(".")
        holder = model.get_submodule(parent)
        setattr(holder, child, getattr(holder, child).merge())
    return model


def adam_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the tensors an optimizer keeps per parameter (Adam: two moments and a step
    count); zero before its first step."""
    return sum(v.numel() * v.element_size() for state in optimizer.state.values()
               for v in state.values() if isinstance(v, torch.Tensor))
