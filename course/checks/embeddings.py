"""Checks for Exercise 2 (embeddings) and the catalogue of embedding mistakes.

Oracles are independent of the reference: `torch.nn.functional.embedding` and `torch.nn.Embedding`
with copied weights for lookups, the closed-form sin/cos formula evaluated with Python's `math` for
the sinusoidal table. Each check takes the learner's object; `hidden=True` adds other sizes, float64,
the longest allowed sequence and devices.

Device rule: a module is also run on the `meta` device while every torch function it calls is
watched; a tensor made on the CPU there (`torch.arange(T)` without `device=`, a table kept as a
plain attribute) would break the module on a GPU, so it fails the check.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

from course.checks import oracles
from course.checks.core import (
    CheckFailed,
    Mistake,
    Raises,
    Slip,
    call,
    check,
    close,
    compare,
    cpu_tensor_spy,
    diagnose,
    fail,
    short,
)
from course.checks.oracles import closed_form_table

T = "solutions.embeddings."

LEARNED_LENGTH_CHECK = (
    "T = x.size(1)\n"
    "        if T > self.max_len:\n"
    '            raise ValueError(f"{T} tokens but only max_len={self.max_len} learned positions")'
)
SINUSOIDAL_LENGTH_CHECK = (
    "        if T > self.max_len:\n"
    '            raise ValueError(f"{T} tokens but the table has max_len={self.max_len} rows")\n'
)
SINUSOIDAL_LENGTH = 'T = x.size(1)\n' + SINUSOIDAL_LENGTH_CHECK

# Every find lands in code the learner writes: the bodies of one_hot_embed and
# sinusoidal_table and the forward of each module, after their given input checks (the
# constructors are given too).
MISTAKES = [
    # Part 1: one_hot_embed
    Mistake(
        "one_hot_weight_transposed", T + "one_hot_embed",
        "return one_hot @ weight", "return one_hot @ weight.T",
        "the weight was transposed. It is (vocab_size, d_model): row i is token i's vector, so "
        "one_hot(ids) (..., V) @ weight (V, C) needs no .T (nn.Linear stores (out, in); an "
        "embedding table does not).",
    ),
    Mistake(
        "one_hot_float32", T + "one_hot_embed",
        ".to(weight.dtype)", ".float()",
        "the one-hot vectors were made float32 whatever the table's dtype, so a float64 table "
        "cannot be multiplied by them. Convert them to weight.dtype.",
    ),
    # Part 2: TokenEmbedding.forward, LearnedPositionalEmbedding.forward
    Mistake(
        "lookup_through_data", T + "TokenEmbedding",
        "return self.weight[ids]", "return self.weight.data[ids]",
        "the rows were read through .data (or .detach()), which cuts them from autograd: the "
        "table gets no gradient and is never learned. Index the parameter itself: "
        "self.weight[ids].",
    ),
    Mistake(
        "positions_start_at_1", T + "LearnedPositionalEmbedding",
        "torch.arange(T, device=x.device)", "torch.arange(1, T + 1, device=x.device)",
        "positions start at 1; the first token is position 0, so a sequence of T tokens uses "
        "rows 0..T-1 (torch.arange(T)).",
    ),
    Mistake(
        "arange_on_cpu", T + "LearnedPositionalEmbedding",
        "torch.arange(T, device=x.device)", "torch.arange(T)",
        "torch.arange(T) is made on the CPU, which fails once the model is on a GPU. Make it "
        "where the input is: torch.arange(T, device=x.device).",
    ),
    Mistake(
        "length_from_batch_axis", T + "LearnedPositionalEmbedding",
        LEARNED_LENGTH_CHECK, LEARNED_LENGTH_CHECK.replace("x.size(1)", "x.size(0)"),
        "the sequence length was read from axis 0, which is the batch B; T is axis 1 of "
        "(B, T) ids or (B, T, C) activations.",
    ),
    Mistake(
        "learned_max_len_not_enforced", T + "LearnedPositionalEmbedding",
        LEARNED_LENGTH_CHECK, "T = x.size(1)",
        "a sequence longer than max_len is not refused before the lookup, so it fails with an "
        "IndexError that does not say why. Raise a ValueError that names both T and max_len.",
    ),
    # Part 3: sinusoidal_table, SinusoidalPositionalEncoding.forward
    Mistake(
        "sin_cos_concatenated", T + "sinusoidal_table",
        "table[:, 0::2] = torch.sin(angle)\n"
        "    table[:, 1::2] = torch.cos(angle)",
        "table[:, : d_model // 2] = torch.sin(angle)\n"
        "    table[:, d_model // 2 :] = torch.cos(angle)",
        "sin and cos were concatenated in two halves. They are interleaved: sin in the even "
        "features 0, 2, 4, ... and cos in the odd features 1, 3, 5, ... (table[:, 0::2] and "
        "table[:, 1::2]).",
    ),
    Mistake(
        "sin_cos_swapped", T + "sinusoidal_table",
        "table[:, 0::2] = torch.sin(angle)\n"
        "    table[:, 1::2] = torch.cos(angle)",
        "table[:, 0::2] = torch.cos(angle)\n"
        "    table[:, 1::2] = torch.sin(angle)",
        "sin and cos are swapped: sin goes in the even features 0, 2, 4, ... and cos in the odd "
        "ones, so the row of position 0 is [0, 1, 0, 1, ...].",
    ),
    Mistake(
        "exponent_i_over_d", T + "sinusoidal_table",
        "2 * i / d_model", "i / d_model",
        "the exponent is i/d_model instead of 2i/d_model: the pair (2i, 2i+1) has frequency "
        "1 / 10000^(2i/d_model), so the slowest pair should be near 1/10000.",
    ),
    Mistake(
        "base_1000", T + "sinusoidal_table",
        "10000.0 **", "1000.0 **",
        "the base is 1000; the original transformer uses 10000: pos / 10000^(2i/d_model).",
    ),
    Mistake(
        "positions_not_sliced", T + "SinusoidalPositionalEncoding",
        "return self.pe[:T]", "return self.pe",
        "the whole table (max_len, d_model) was returned; a sequence of T tokens needs only its "
        "first T rows: pe[:T].",
    ),
    Mistake(
        "table_recomputed_in_forward", T + "SinusoidalPositionalEncoding",
        "return self.pe[:T]", "return sinusoidal_table(T, self.pe.size(1))",
        "a new table was computed in forward: it is made in float32 on the CPU whatever "
        ".double() or .to(device) did to the module. Slice the buffer instead: self.pe[:T].",
    ),
    Mistake(
        "max_len_not_enforced", T + "SinusoidalPositionalEncoding",
        SINUSOIDAL_LENGTH_CHECK, "",
        "a sequence longer than max_len is not refused: pe[:T] then silently has only max_len "
        "rows. Raise a ValueError that names both T and max_len.",
    ),
    Mistake(
        "length_from_last_axis", T + "SinusoidalPositionalEncoding",
        SINUSOIDAL_LENGTH, SINUSOIDAL_LENGTH.replace("x.size(1)", "x.size(-1)"),
        "the sequence length was read from the last axis, which is right for ids (B, T) but is "
        "the feature axis C of activations (B, T, C); T is axis 1 of both.",
    ),
    # Part 4: TransformerEmbedding.forward
    Mistake(
        "positions_not_added", T + "TransformerEmbedding",
        "self.word_embeddings(ids) + self.position_embeddings(ids)",
        "self.word_embeddings(ids)",
        "the position vectors were not added: without them the model cannot tell the order of "
        "the tokens.",
    ),
    Mistake(
        "tokens_scaled", T + "TransformerEmbedding",
        "self.word_embeddings(ids) + self.position_embeddings(ids)",
        "self.word_embeddings(ids) * self.word_embeddings.weight.size(1) ** 0.5"
        " + self.position_embeddings(ids)",
        "the token vectors were multiplied by sqrt(d_model), as the original transformer does; "
        "this module follows BERT and GPT-2 and adds token and position vectors as they are.",
    ),
    Mistake(
        "dropout_before_positions", T + "TransformerEmbedding",
        "x = self.word_embeddings(ids) + self.position_embeddings(ids)\n"
        "        return self.drop(x)",
        "x = self.drop(self.word_embeddings(ids)) + self.position_embeddings(ids)\n"
        "        return x",
        "dropout was applied to the token vectors before the positions were added; it acts on "
        "the sum: drop(token + position).",
    ),
    Mistake(
        "dropout_on_in_eval", T + "TransformerEmbedding",
        "return self.drop(x)", "return F.dropout(x, self.drop.p)",
        "dropout is still on in eval() mode. F.dropout(x, p) defaults to training=True; use "
        "the module self.drop (or pass training=self.training) so model.eval() turns it off.",
    ),
]


# ---------------------------------------------------------------- oracles (torch.nn + closed form)


def _positions_of(x: torch.Tensor, max_len: int) -> torch.Tensor:
    T_ = x.size(1)
    if T_ > max_len:
        raise ValueError(f"{T_} tokens, max_len {max_len}")
    return torch.arange(T_, device=x.device)


class EmbeddingPositions(nn.Embedding):
    """Oracle for learned positions: an nn.Embedding (max_len, d_model) looked up at 0..T-1."""

    def forward(self, x):
        return super().forward(_positions_of(x, self.num_embeddings))


class ClosedFormPositions(nn.Module):
    """Oracle for sinusoidal positions: rows 0..T-1 of the closed-form table."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.register_buffer("pe", closed_form_table(max_len, d_model), persistent=False)

    def forward(self, x):
        return self.pe[_positions_of(x, self.pe.size(0))]


class NNTransformerEmbedding(nn.Module):
    """Oracle for token + position with dropout, from torch.nn parts under BERT's names."""

    def __init__(self, vocab_size, d_model, max_len, dropout=0.1, positions="learned"):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, d_model)
        kind = {"learned": EmbeddingPositions, "sinusoidal": ClosedFormPositions}[positions]
        self.position_embeddings = kind(max_len, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids):
        return self.dropout(self.word_embeddings(ids) + self.position_embeddings(ids))


# ---------------------------------------------------------------- probes


@contextmanager
def _seeded(seed: int):
    """Run with torch's CPU random generator seeded, then give the learner's state back."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _randn(*shape, seed: int, dtype=torch.float32) -> torch.Tensor:
    return oracles.randn(*shape, seed=seed, dtype=dtype)


def _ids(vocab_size: int, shape: tuple, seed: int) -> torch.Tensor:
    return oracles.token_ids(vocab_size, shape, seed)


def _against(learner, probe, oracle, *, what: str, effects=None, **tolerance) -> None:
    """compare() with the oracle's result computed once by the same probe; `effects(expected)`
    gives the mistakes recognised by what they do to that result."""
    __tracebackhide__ = True
    expected = probe(oracle)
    compare(learner, probe, expected, what=what,
            effects=effects(expected) if effects else (), **tolerance)


def _table_effects(expected: torch.Tensor):
    """Mistakes of sinusoidal_table by their effect on the (L, d) table, whatever the code."""
    sin, cos = expected[:, 0::2], expected[:, 1::2]                  # (L, d/2) each
    swapped = torch.stack([cos, sin], dim=-1).flatten(-2)            # cos in the even features
    concatenated = torch.cat([sin, cos], dim=-1)                     # all sines, then all cosines

    return [("sin_cos_swapped", lambda got: close(got, swapped)),
            ("sin_cos_concatenated", lambda got: close(got, concatenated))]


def on_meta(module: nn.Module, *inputs: torch.Tensor | None) -> tuple:
    """(device, shape, names of the torch functions that made CPU tensors) of module(*inputs),
    with the module and the tensors on the meta device. Indexing a meta table with a CPU
    `arange` silently works, so the spy, not the output's device, is what catches it."""
    module = module.to("meta")
    inputs = tuple(x if x is None else x.to("meta") for x in inputs)
    with cpu_tensor_spy() as spy:
        out = module(*inputs)
    return out.device.type, tuple(out.shape), sorted(set(spy.made_on_cpu))


def too_long(module: nn.Module, x: torch.Tensor, max_len: int) -> tuple:
    """(error type or None, whether its message names both T and max_len, output shape)."""
    try:
        out = module(x)
    except Exception as error:
        text = str(error)
        return type(error).__name__, str(x.size(1)) in text and str(max_len) in text, None
    return None, False, tuple(out.shape)


def _holding(module: nn.Module, table: torch.Tensor) -> nn.Module:
    """The module with its `weight` set to `table` (checked for shape first)."""
    if tuple(module.weight.shape) != tuple(table.shape):
        raise CheckFailed(f"{type(module).__name__}.weight has shape "
                          f"{tuple(module.weight.shape)}; expected {tuple(table.shape)}, one row "
                          "per id")
    with torch.no_grad():
        module.weight.copy_(table)
    return module


def _weight_grad(module: nn.Module, x: torch.Tensor):
    """Gradient of a weighted sum of module(x) with respect to module.weight (None if none)."""
    out = module(x)
    if not out.requires_grad:
        return None
    (out * torch.arange(out.numel(), dtype=out.dtype).reshape(out.shape)).sum().backward()
    return module.weight.grad


TOL32 = dict(rtol=1e-5, atol=2e-5)  # sin/cos of angles up to ~100, computed in float32
TOL64 = dict(rtol=1e-9, atol=1e-9)


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


# ---------------------------------------------------------------- token + position


def _build(cls, V: int, d: int, L: int, p: float, positions: str, dtype=torch.float32):
    """cls(V, d, L, dropout=p, positions=positions) with known tables loaded by BERT's names."""
    module = cls(V, d, L, dropout=p, positions=positions).to(dtype)
    state = {"word_embeddings.weight": _randn(V, d, seed=V + d, dtype=dtype)}
    if positions == "learned":
        state["position_embeddings.weight"] = _randn(L, d, seed=L + d, dtype=dtype)
    keys = set(module.state_dict())
    if not set(state) <= keys:
        raise CheckFailed(
            "TransformerEmbedding must keep its token table as `word_embeddings` and its "
            "positions as `position_embeddings`, each with a `.weight` (BERT's names, so that "
            f"BERT's weights load by name). Its state_dict has {sorted(keys)}; needed "
            f"{sorted(state)}.")
    module.load_state_dict(state, strict=False)
    return module


def _transformer_cases(hidden: bool):
    """(vocab_size, d_model, max_len, B, T, positions, dtype)."""
    cases = [(20, 8, 16, 2, 5, "learned", torch.float32),
             (20, 8, 16, 2, 5, "sinusoidal", torch.float32)]
    if hidden:
        cases += [(50, 16, 12, 3, 12, "learned", torch.float64),
                  (50, 16, 12, 3, 12, "sinusoidal", torch.float64),
                  (7, 4, 3, 1, 2, "learned", torch.float32),
                  (30, 6, 40, 4, 33, "sinusoidal", torch.float32)]
    return cases


TRANSFORMER_USES = (T + "TokenEmbedding", T + "LearnedPositionalEmbedding",
                    T + "SinusoidalPositionalEncoding")


@check(T + "TransformerEmbedding", part=4, uses=TRANSFORMER_USES)
def check_transformer_embedding(TransformerEmbedding, hidden: bool = False) -> None:
    """In eval(): token + position (learned or sinusoidal) with dropout off; on the meta device
    without CPU tensors; a clear ValueError past max_len."""
    for V, d, L, B, Tn, positions, dtype in _transformer_cases(hidden):
        ids = _ids(V, (B, Tn), seed=V * Tn)
        setup = f"TransformerEmbedding({V}, {d}, {L}, dropout=0.5, positions={positions!r})"

        def probe(cls, V=V, d=d, L=L, ids=ids, positions=positions, dtype=dtype):
            module = _build(cls, V, d, L, 0.5, positions, dtype).eval()
            with _seeded(0):  # reproducible, should dropout wrongly stay on
                return module(ids)

        _against(TransformerEmbedding, probe, oracle=NNTransformerEmbedding,
                 what=f"{setup} in eval() mode, {dtype}, on ids ({B}, {Tn})", **TOL32)
        _against(TransformerEmbedding,
                 lambda c, V=V, d=d, L=L, ids=ids, positions=positions:
                     on_meta(c(V, d, L, dropout=0.5, positions=positions), ids),
                 oracle=NNTransformerEmbedding,
                 what=f"{setup} moved to the meta device, on ids ({B}, {Tn}): (device, shape, "
                      "torch functions that made CPU tensors)")
        long_ids = _ids(V, (B, L + 1), seed=V)
        _against(TransformerEmbedding,
                 lambda c, V=V, d=d, L=L, positions=positions, x=long_ids:
                     too_long(c(V, d, L, dropout=0.0, positions=positions).eval(), x, L),
                 oracle=NNTransformerEmbedding,
                 what=f"{setup} on {L + 1} tokens: (error type, message names {L + 1} and {L}, "
                      "output shape)")


@check(T + "TransformerEmbedding", part=4, uses=TRANSFORMER_USES)
def check_embedding_dropout(TransformerEmbedding, hidden: bool = False) -> None:
    """In train(): dropout on the sum, whatever random numbers the learner's dropout draws:
    each value is 0 (with probability p) or (token + position) / (1 - p)."""
    cases = [(40, 32, 24, 4, 16, "learned", 0.25)]
    if hidden:
        cases += [(40, 32, 24, 4, 16, "sinusoidal", 0.5), (40, 64, 20, 2, 20, "learned", 0.1)]
    for V, d, L, B, Tn, positions, p in cases:
        ids = _ids(V, (B, Tn), seed=7)
        what = (f"TransformerEmbedding({V}, {d}, {L}, dropout={p}, positions={positions!r}) "
                f"in train() mode on ids ({B}, {Tn})")

        def probe(cls, V=V, d=d, L=L, ids=ids, positions=positions, p=p):
            module = _build(cls, V, d, L, p, positions).train()
            with _seeded(1):
                return module(ids)

        out = call(TransformerEmbedding, probe, what)
        clean = _build(NNTransformerEmbedding, V, d, L, p, positions).eval()(ids).detach()
        if isinstance(out, torch.Tensor) and out.shape == clean.shape:
            out = out.detach().to(clean.dtype)
            dropped = out == 0
            share = dropped.float().mean().item()
            if not torch.allclose(out[~dropped], clean[~dropped] / (1 - p), **TOL32):
                problem = (f"each value not dropped must be (token + position) / (1 - p); got "
                           f"{short(out)}")
            elif abs(share - p) > 0.06:
                problem = f"{share:.0%} of the values were zeroed, expected about {p:.0%}"
            else:
                continue
        else:
            problem = f"expected a tensor of shape {tuple(clean.shape)}, got {short(out)}"
        fail(f"{what}\n  {problem}.", diagnose(out, probe, what, **TOL32))


# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("one_hot_float", T + "one_hot_embed", """
def one_hot_embed(ids, weight):
    return F.one_hot(ids, num_classes=weight.shape[0]).float() @ weight
""", "one_hot_float32"),
    Slip("one_hot_without_num_classes", T + "one_hot_embed", """
def one_hot_embed(ids, weight):
    return F.one_hot(ids).to(weight.dtype) @ weight
""", None),
    Slip("one_hot_times_transpose", T + "one_hot_embed", """
def one_hot_embed(ids, weight):
    vectors = F.one_hot(ids, weight.size(0)).type(weight.dtype)
    return torch.matmul(vectors, weight.t())
""", "one_hot_weight_transposed"),
    Slip("token_rows_detached", T + "TokenEmbedding.forward", """
def forward(self, ids):
    table = self.weight.detach()
    return table[ids]
""", "lookup_through_data"),
    Slip("token_lookup_by_one_hot", T + "TokenEmbedding.forward", """
def forward(self, ids):
    return F.one_hot(ids, self.weight.size(0)).float() @ self.weight
""", None),
    Slip("learned_positions_on_cpu", T + "LearnedPositionalEmbedding.forward", """
def forward(self, x):
    T = x.shape[1]
    if T > self.max_len:
        raise ValueError(f"got {T} positions, max_len is {self.max_len}")
    return self.weight[torch.arange(T)]
""", "arange_on_cpu"),
    Slip("learned_length_from_len", T + "LearnedPositionalEmbedding.forward", """
def forward(self, x):
    T = len(x)
    if T > self.max_len:
        raise ValueError(f"got {T} positions, max_len is {self.max_len}")
    return self.weight[:T]
""", "length_from_batch_axis"),
    Slip("learned_error_without_numbers", T + "LearnedPositionalEmbedding.forward", """
def forward(self, x):
    T = x.shape[1]
    if T > self.max_len:
        raise ValueError("sequence too long")
    return self.weight[:T]
""", None),
    Slip("table_cat_halves", T + "sinusoidal_table", """
def sinusoidal_table(max_len, d_model, *, dtype=torch.float32, device=None):
    if d_model % 2:
        raise ValueError("d_model must be even")
    pos = torch.arange(max_len, dtype=torch.float64, device=device)[:, None]
    freq = 1.0 / 10000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float64, device=device)
                             / d_model)
    return torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], dim=1).to(dtype)
""", "sin_cos_concatenated"),
    Slip("table_exponent_over_d", T + "sinusoidal_table", """
def sinusoidal_table(max_len, d_model, *, dtype=torch.float32, device=None):
    if d_model % 2:
        raise ValueError("d_model must be even")
    table = torch.zeros(max_len, d_model, dtype=torch.float64, device=device)
    pos = torch.arange(max_len, dtype=torch.float64, device=device).unsqueeze(1)
    i = torch.arange(d_model // 2, dtype=torch.float64, device=device)
    table[:, 0::2] = torch.sin(pos / 10000 ** (i / d_model))
    table[:, 1::2] = torch.cos(pos / 10000 ** (i / d_model))
    return table.to(dtype)
""", "exponent_i_over_d"),
    Slip("table_in_float32", T + "sinusoidal_table", """
def sinusoidal_table(max_len, d_model, *, dtype=torch.float32, device=None):
    if d_model % 2:
        raise ValueError("d_model must be even")
    pos = torch.arange(max_len, device=device).float().unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, device=device).float()
                    * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model, device=device)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)
    return table.to(dtype)
""", None),
    Slip("table_cos_first", T + "sinusoidal_table", """
def sinusoidal_table(max_len, d_model, *, dtype=torch.float32, device=None):
    if d_model % 2:
        raise ValueError("d_model must be even")
    rows = []
    for pos in range(max_len):
        row = []
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            row += [math.cos(angle), math.sin(angle)]
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64, device=device).reshape(max_len, d_model).to(dtype)
""", "sin_cos_swapped"),
    Slip("sinusoid_new_table", T + "SinusoidalPositionalEncoding.forward", """
def forward(self, x):
    T = x.shape[1]
    if T > self.max_len:
        raise ValueError(f"sequence of {T} tokens is longer than max_len={self.max_len}")
    return sinusoidal_table(T, self.pe.shape[-1])
""", "table_recomputed_in_forward"),
    Slip("sinusoid_length_of_features", T + "SinusoidalPositionalEncoding.forward", """
def forward(self, x):
    T = x.shape[-1]
    if T > self.max_len:
        raise ValueError(f"sequence of {T} tokens is longer than max_len={self.max_len}")
    return self.pe[:T, :]
""", "length_from_last_axis"),
    Slip("embedding_functional_dropout", T + "TransformerEmbedding.forward", """
def forward(self, ids):
    return F.dropout(self.word_embeddings(ids) + self.position_embeddings(ids), p=self.drop.p)
""", "dropout_on_in_eval"),
    Slip("embedding_dropout_module_in_forward", T + "TransformerEmbedding.forward", """
def forward(self, ids):
    dropout = nn.Dropout(self.drop.p)
    return dropout(self.word_embeddings(ids) + self.position_embeddings(ids))
""", "dropout_on_in_eval"),
    Slip("embedding_dropout_each_term", T + "TransformerEmbedding.forward", """
def forward(self, ids):
    return self.drop(self.word_embeddings(ids)) + self.drop(self.position_embeddings(ids))
""", None),
]
