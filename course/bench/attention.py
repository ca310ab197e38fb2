"""Attention benchmark: our MultiHeadAttention against torch.nn.MultiheadAttention.

Both modules hold the same weights and run forward + backward on the same inputs in one process,
interleaved, so machine noise hits both alike. Two rows: the explicit path (need_weights=True,
our own softmax(q k^T / sqrt(d)) v, against nn.MultiheadAttention returning per-head weights)
and the fused path (need_weights=False: both end in F.scaled_dot_product_attention).
ratio = baseline time / our time (above 1: we are faster). The thread count is left as it is.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from solutions.attention import MultiHeadAttention
from solutions.pretrained import load_torch_attention

FULL = dict(B=8, T=256, C=256, H=8)
QUICK = dict(B=2, T=32, C=32, H=4)
TARGETS = {True: 0.7, False: 1.0}  # need_weights -> minimum ratio


def _pair(C: int, H: int) -> tuple[MultiHeadAttention, nn.MultiheadAttention]:
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(C, H, batch_first=True)
    ours = load_torch_attention(MultiHeadAttention(C, H), theirs)
    return ours.train(), theirs.train()  # training mode (dropout 0): forward + backward


def _step(module, x, need_weights: bool, ours: bool) -> torch.Tensor:
    """One forward + backward; returns the output (detached)."""
    module.zero_grad(set_to_none=True)
    x.grad = None
    if ours:
        out, _ = module(x, need_weights=need_weights)
    else:
        out, _ = module(x, x, x, need_weights=need_weights, average_attn_weights=False)
    out.sum().backward()
    return out.detach()


def bench_path(need_weights: bool, quick: bool = False) -> dict:
    size = QUICK if quick else FULL
    B, T, C, H = size["B"], size["T"], size["C"], size["H"]
    ours, theirs = _pair(C, H)
    x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(1)).requires_grad_()
    same = torch.allclose(_step(ours, x, need_weights, True), _step(theirs, x, need_weights, False),
                          rtol=1e-4, atol=1e-5)
    warmup, repeats, inner = (1, 3, 2) if quick else (3, 7, 3)
    for _ in range(warmup):
        _step(ours, x, need_weights, True)
        _step(theirs, x, need_weights, False)
    times = {True: [], False: []}
    for _ in range(repeats):  # interleaved: ours, theirs, ours, theirs, ...
        for is_ours, module in ((True, ours), (False, theirs)):
            start = time.perf_counter()
            for _ in range(inner):
                _step(module, x, need_weights, is_ours)
            times[is_ours].append((time.perf_counter() - start) / inner)
    ours_s, theirs_s = statistics.median(times[True]), statistics.median(times[False])
    ratio = theirs_s / ours_s
    path = "explicit path (need_weights=True)" if need_weights else "SDPA path (need_weights=False)"
    return dict(
        name=path,
        size=f"B={B} T={T} C={C} H={H}, forward+backward",
        baseline="torch.nn.MultiheadAttention",
        ours_s=ours_s,
        baseline_s=theirs_s,
        ratio=ratio,
        target=f"ratio >= {TARGETS[need_weights]:g}, same output",
        same=same,
        ok=same and ratio >= TARGETS[need_weights],
    )


def run(quick: bool = False) -> list[dict]:
    """Both attention paths; quick=True uses small sizes (a smoke test)."""
    return [bench_path(True, quick), bench_path(False, quick)]


if __name__ == "__main__":  # pragma: no cover
    from course.bench import report

    print(report(run()))
