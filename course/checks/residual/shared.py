"""What the residual checks share: how a shape is shown in a message."""

from __future__ import annotations


def _fmt(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"
