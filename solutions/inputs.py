"""Input checks shared by the reference code: each raises a clear error in the caller's terms.

The exercises give these to the learner (the reference bodies they copy call them). Only the
tensor checks import torch.
"""

from __future__ import annotations

import numbers


def require_str(text, name: str) -> None:
    """Raise unless `text` is a str."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")


def require_positive_int(value, name: str) -> None:
    """Raise unless `value` is an int >= 1 (a NumPy integer counts; not a bool, not a float
    such as 300.0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def require_probability(value, name: str) -> None:
    """Raise unless `value` is a number in [0, 1) (a dropout probability)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")


def require_tensor(t, name: str, *, min_dim: int = 1, floating: bool = True) -> None:
    """Raise unless `t` is a tensor with at least `min_dim` axes (and floating, if asked)."""
    import torch  # only the tensor checks need it (tokenization does not)

    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} axes, got shape {tuple(t.shape)}")
    if floating and not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")


def require_ids(ids, vocab_size: int, name: str = "ids") -> None:
    """Raise unless `ids` is an integer tensor of ids in [0, vocab_size) (as nn.Embedding does:
    a negative id must not silently count from the end of the table)."""
    import torch  # only the tensor checks need it (tokenization does not)

    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(ids).__name__}")
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers (token ids), got {ids.dtype}")
    if ids.device.type != "meta" and ids.numel() and not (
            0 <= int(ids.min()) and int(ids.max()) < vocab_size):
        raise IndexError(f"{name} must be in [0, {vocab_size}), got values from "
                         f"{int(ids.min())} to {int(ids.max())}")


def require_mask(mask, target: tuple[int, ...], name: str = "mask") -> None:
    """mask: None, or bool (True = may attend) broadcastable to `target`."""
    import torch  # only the tensor checks need it (tokenization does not)

    if mask is None:
        return
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a bool torch.Tensor or None, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be bool (True = may attend), got {mask.dtype}; turn a "
                        "1/0 attention_mask into one with padding_mask(attention_mask)")
    try:
        fits = torch.broadcast_shapes(mask.shape, target) == torch.Size(target)
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"{name} of shape {tuple(mask.shape)} does not broadcast to the "
                         f"scores' shape {target}")


def require_batch_ids(ids, name: str = "input_ids", like=None) -> None:
    """Raise unless `ids` is an integer tensor (B, T), shaped like `like` when it is given."""
    import torch  # only the tensor checks need it (tokenization does not)

    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.is_floating_point():
        got = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"{name} must be an integer tensor (B, T), got {got}")
    if like is not None and ids.shape != like.shape:
        raise ValueError(f"{name} must have the shape of input_ids {tuple(like.shape)}, "
                         f"got {tuple(ids.shape)}")


def require_mask_4d(mask, name: str = "mask") -> None:
    """mask: None, or bool (True = may attend) with 4 axes, broadcastable to (B, H, T_q, T_k)."""
    import torch  # only the tensor checks need it (tokenization does not)

    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"{name} must be bool (True = may attend), got {got}")
    if mask.dim() != 4:
        raise ValueError(f"{name} must be 4-D, broadcastable to (B, H, T_q, T_k), got shape "
                         f"{tuple(mask.shape)}; make one from a (B, T) attention_mask with "
                         "solutions.attention.padding_mask")
