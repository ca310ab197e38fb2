"""Parts 1 to 3: the token lookups (`one_hot_embed`, `TokenEmbedding`) and the position tables
(learned, sinusoidal)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from course.checks.core import Raises, check, compare
from course.checks.embeddings.mistakes import T
from course.checks.embeddings.shared import (
    TOL32,
    TOL64,
    ClosedFormPositions,
    EmbeddingPositions,
    _against,
    _holding,
    _ids,
    _randn,
    _table_effects,
    _weight_grad,
    on_meta,
    too_long,
)
from course.checks.oracles import closed_form_table

# ---------------------------------------------------------------- token embeddings


@check(T + "one_hot_embed", part=1)
def check_one_hot_embed(one_hot_embed, hidden: bool = False) -> None:
    """one_hot(ids) @ weight equals the row lookup F.embedding(ids, weight), any ids shape."""
    cases = [(5, 5, (4,), torch.float32), (10, 4, (2, 3), torch.float32)]  # (V, C, ids, dtype)
    if hidden:
        cases += [(7, 3, (12,), torch.float64), (3, 6, (2, 2, 2), torch.float32),
                  (50, 8, (3, 5), torch.float64), (1, 2, (1, 1), torch.float32)]
    for n, (V, C, shape, dtype) in enumerate(cases):
        weight, ids = _randn(V, C, seed=n, dtype=dtype), _ids(V, shape, seed=100 + n)
        _against(one_hot_embed, lambda f, ids=ids, weight=weight: f(ids.clone(), weight.clone()),
                 oracle=F.embedding,
                 what=f"one_hot_embed(ids of shape {shape}, weight ({V}, {C}), {dtype})", **TOL64)


def _check_table_module(cls, oracle, name: str, cases) -> None:
    """A module holding a learnable `weight` table (made by the given constructor): output and
    gradient as the nn.Embedding oracle's with the same table.
    cases: (V, C, input, dtype, description of the input)."""
    for V, C, x, dtype, kind in cases:
        table = _randn(V, C, seed=V * C, dtype=dtype)
        what = f"{name}({V}, {C}) holding a known {dtype} table, on {kind}"
        _against(cls, lambda c, V=V, C=C, x=x, t=table: _holding(c(V, C).to(t.dtype), t)(x),
                 oracle=oracle, what=what)
        _against(cls, lambda c, V=V, C=C, x=x, t=table: _weight_grad(
                     _holding(c(V, C).to(t.dtype), t), x),
                 oracle=oracle, what=f"{what}: gradient of .weight")


@check(T + "TokenEmbedding", part=2)
def check_token_embedding(TokenEmbedding, hidden: bool = False) -> None:
    """Same output and gradient as nn.Embedding holding the same (vocab_size, d_model) table."""
    cases = [(10, 4, (2, 3), torch.float32), (6, 6, (7,), torch.float32)]
    if hidden:
        cases += [(30, 8, (3, 5), torch.float64), (2, 3, (1, 1), torch.float32),
                  (100, 16, (4, 2, 3), torch.float32)]
    _check_table_module(
        TokenEmbedding, nn.Embedding, "TokenEmbedding",
        [(V, C, _ids(V, shape, seed=200 + n), dtype, f"ids of shape {shape}")
         for n, (V, C, shape, dtype) in enumerate(cases)])


# ---------------------------------------------------------------- positions


@check(T + "sinusoidal_table", part=3)
def check_sinusoidal_table(sinusoidal_table, hidden: bool = False) -> None:
    """The closed-form table, sin/cos interleaved, in the requested dtype and on the device;
    an odd d_model is a ValueError."""
    cases = [(6, 4, torch.float32), (50, 16, torch.float32)]
    if hidden:
        cases += [(1, 2, torch.float32), (100, 64, torch.float64), (33, 6, torch.float64),
                  (80, 128, torch.float32)]
    for L, d, dtype in cases:
        _against(sinusoidal_table, lambda f, L=L, d=d, dtype=dtype: f(L, d, dtype=dtype),
                 oracle=closed_form_table, what=f"sinusoidal_table({L}, {d}, dtype={dtype})",
                 effects=_table_effects, **(TOL64 if dtype == torch.float64 else TOL32))
    compare(sinusoidal_table, lambda f: f(4, 5), Raises("ValueError"),
            what="sinusoidal_table(4, 5): an odd d_model has no (sin, cos) pairs and must raise "
                 "ValueError")
    if hidden:
        _against(sinusoidal_table,
                 lambda f: f(5, 4, dtype=torch.float64, device="meta").device.type,
                 oracle=closed_form_table,
                 what="sinusoidal_table(5, 4, dtype=torch.float64, device='meta').device")


def _position_cases(hidden: bool) -> list[tuple[int, int, int, int]]:
    """(max_len, d_model, B, T) with B != T, so that mixing the two axes up shows."""
    cases = [(8, 4, 2, 5), (16, 6, 3, 16)]
    if hidden:
        cases += [(1, 2, 2, 1), (64, 32, 1, 40), (10, 8, 5, 3)]
    return cases


def _position_inputs(hidden: bool):
    """(max_len, d_model, input, description): ids (B, T) and activations (B, T, C)."""
    for L, d, B, Tn in _position_cases(hidden):
        yield L, d, _ids(50, (B, Tn), seed=L), f"ids ({B}, {Tn})"
        yield L, d, _randn(B, Tn, d, seed=L), f"activations ({B}, {Tn}, {d})"


def _check_device_and_length(cls, oracle, name: str, hidden: bool) -> None:
    """On the meta device without CPU tensors; a ValueError naming T and max_len past max_len."""
    for L, d, B, Tn in _position_cases(hidden):
        ids, long_ids = _ids(50, (B, Tn), seed=L), _ids(50, (B, L + 1), seed=L)
        _against(cls, lambda c, L=L, d=d, ids=ids: on_meta(c(L, d), ids), oracle=oracle,
                 what=f"{name}({L}, {d}) moved to the meta device, on ids ({B}, {Tn}): (device, "
                      "shape, torch functions that made CPU tensors)")
        _against(cls, lambda c, L=L, d=d, x=long_ids: too_long(c(L, d), x, L), oracle=oracle,
                 what=f"{name}({L}, {d}) on {L + 1} tokens: (error type, message names "
                      f"{L + 1} and {L}, output shape)")


@check(T + "SinusoidalPositionalEncoding", part=3, uses=(T + "sinusoidal_table",))
def check_sinusoidal_module(SinusoidalPositionalEncoding, hidden: bool = False) -> None:
    """Rows 0..T-1 of the given buffer for ids or activations, following .double() and
    .to(device); a clear ValueError past max_len. (That the table is a non-persistent buffer is
    the given constructor's business: tests/solutions/test_embeddings.py proves it.)"""
    cls, oracle = SinusoidalPositionalEncoding, ClosedFormPositions
    name = "SinusoidalPositionalEncoding"
    for L, d, x, kind in _position_inputs(hidden):
        _against(cls, lambda c, L=L, d=d, x=x: c(L, d)(x), oracle=oracle,
                 what=f"{name}({L}, {d}) on {kind}", **TOL32)
        _against(cls, lambda c, L=L, d=d, x=x: c(L, d).double()(x), oracle=oracle,
                 what=f"{name}({L}, {d}).double() on {kind}", **TOL32)
    _check_device_and_length(cls, oracle, name, hidden)


@check(T + "LearnedPositionalEmbedding", part=2)
def check_learned_positions(LearnedPositionalEmbedding, hidden: bool = False) -> None:
    """Rows 0..T-1 of a learnable (max_len, d_model) `weight`, like nn.Embedding at arange(T);
    positions made on the input's device; a clear ValueError past max_len."""
    name = "LearnedPositionalEmbedding"
    _check_table_module(LearnedPositionalEmbedding, EmbeddingPositions, name,
                        [(L, d, x, torch.float32, kind) for L, d, x, kind in _position_inputs(hidden)])
    _check_device_and_length(LearnedPositionalEmbedding, EmbeddingPositions, name, hidden)
