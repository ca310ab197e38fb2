"""Parts 1 and 2: the rotary tables and the rotation, also by the property it exists for (scores
depend only on distance)."""

from __future__ import annotations

import torch

from course.checks import oracles
from course.checks.core import check, compare
from course.checks.modern.mistakes import T
from course.checks.modern.shared import _hf, _hf_rotated, _hf_tables

# ---------------------------------------------------------------- Part 1: rotary_tables


@check(T + "rotary_tables", part=1)
def check_rotary_tables(rotary_tables, hidden: bool = False) -> None:
    """cos and sin (max_len, head_dim) equal Hugging Face's LlamaRotaryEmbedding's."""
    cases = [(8, 12, 10000.0), (16, 20, 500000.0)]
    if hidden:
        cases += [(2, 3, 10000.0), (4, 40, 10.0), (64, 33, 1e6), (128, 9, 10000.0)]
    for D, T, theta in cases:  # noqa: F402 (T: a length here, not the target prefix)
        compare(rotary_tables, lambda f, D=D, T=T, theta=theta: f(D, T, theta),
                _hf_tables(D, T, theta), parts=("cos", "sin"),
                what=f"rotary_tables(head_dim={D}, max_len={T}, theta={theta:g})",
                **oracles.tol(torch.float32))
    D, T = (6, 10) if hidden else (8, 5)
    compare(rotary_tables, lambda f: f(D, T), _hf_tables(D, T, 10000.0), parts=("cos", "sin"),
            what=f"rotary_tables(head_dim={D}, max_len={T}) with the default theta",
            **oracles.tol(torch.float32))


# ---------------------------------------------------------------- Part 2: the rotation


@check(T + "rotate_half", part=2)
def check_rotate_half(rotate_half, hidden: bool = False) -> None:
    """Equals Hugging Face's rotate_half: the halves (a, b) become (-b, a)."""
    shapes = [(2, 3, 5, 8), (4,)]
    if hidden:
        shapes += [(1, 1, 1, 2), (2, 2, 3, 64), (3, 16)]
    for i, shape in enumerate(shapes):
        dtype = torch.float64 if i % 2 else torch.float32
        x = oracles.randn(*shape, seed=10 + i, dtype=dtype)
        compare(rotate_half, lambda f, x=x: f(x.clone()), _hf().rotate_half(x),
                what=f"rotate_half(x {shape}), {dtype}", **oracles.tol(dtype))


def _rotary_cases(hidden: bool) -> list[tuple]:
    """(label, x shape (B, H, T, D), first position, theta, dtype)."""
    f32, f64 = torch.float32, torch.float64
    cases = [("positions 0 ..", (2, 4, 6, 8), 0, 10000.0, f32),
             ("positions from 5 (a cache of 5)", (1, 2, 3, 16), 5, 10000.0, f32)]
    if hidden:
        cases += [("float64, theta 500000", (2, 3, 7, 32), 2, 500000.0, f64),
                  ("one position far in", (1, 1, 1, 4), 57, 10000.0, f32),
                  ("head size 2", (3, 2, 5, 2), 0, 10.0, f64),
                  ("(T, D) without batch and heads", (9, 64), 11, 1e6, f32)]
    return cases


@check(T + "apply_rotary", part=2, uses=(T + "rotate_half",))
def check_apply_rotary(apply_rotary, hidden: bool = False) -> None:
    """x rotated with the given tables equals Hugging Face's apply_rotary_pos_emb."""
    for i, (label, shape, start, theta, dtype) in enumerate(_rotary_cases(hidden)):
        T, D = shape[-2:]
        cos, sin = (t[start:start + T].to(dtype) for t in _hf_tables(D, start + T, theta))
        x = oracles.randn(*shape, seed=20 + i, dtype=dtype)
        compare(apply_rotary, lambda f, x=x, c=cos, s=sin: f(x.clone(), c.clone(), s.clone()),
                _hf_rotated(x, cos, sin),
                what=f"apply_rotary(x {shape}, cos, sin) at positions {start}..{start + T - 1}, "
                     f"theta {theta:g}, {dtype} ({label})", **oracles.tol(dtype))


def _closed_form_tables(head_dim: int, max_len: int, theta: float):
    """cos and sin (max_len, head_dim) of p * theta^(-2i/D), from Python floats in float64."""
    angles = [[p * theta ** (-2 * (j % (head_dim // 2)) / head_dim) for j in range(head_dim)]
              for p in range(max_len)]
    angles = torch.tensor(angles, dtype=torch.float64)
    return angles.cos(), angles.sin()


@check(T + "apply_rotary", part=2, uses=(T + "rotate_half",))
def check_rotary_distance(apply_rotary, hidden: bool = False) -> None:
    """Queries and keys rotated at positions shift, ..., shift + T - 1 give the scores they
    give at 0, ..., T - 1 (float64 tables): a score depends on the distance only."""
    cases = [(6, 8, 7, 10000.0)] + ([(4, 16, 30, 500000.0), (9, 4, 1, 10.0)] if hidden else [])
    for i, (T, D, shift, theta) in enumerate(cases):  # noqa: F402 (a length)
        q = oracles.randn(1, 2, T, D, seed=30 + i, dtype=torch.float64)
        k = oracles.randn(1, 2, T, D, seed=40 + i, dtype=torch.float64)
        cos, sin = _closed_form_tables(D, shift + T, theta)

        def probe(f, q=q, k=k, cos=cos, sin=sin, shift=shift, T=T):
            def scores(at: int) -> torch.Tensor:
                c, s = cos[at:at + T].clone(), sin[at:at + T].clone()
                return f(q.clone(), c, s) @ f(k.clone(), c, s).mT   # (1, 2, T, T)
            return scores(shift) - scores(0)

        compare(apply_rotary, probe, torch.zeros(1, 2, T, T, dtype=torch.float64),
                what=f"scores q_m . k_n (2 heads, D={D}, theta {theta:g}) at positions "
                     f"{shift}..{shift + T - 1} minus those at 0..{T - 1}: a score depends "
                     "only on m - n, so the difference is 0", **oracles.tol(torch.float64))
