"""Part 4: `TransformerEmbedding`, token and position embeddings together, dropout included."""

from __future__ import annotations

import torch

from course.checks.core import CheckFailed, call, check, diagnose, fail, short
from course.checks.embeddings.mistakes import T
from course.checks.embeddings.shared import (
    TOL32,
    NNTransformerEmbedding,
    _against,
    _ids,
    _randn,
    _seeded,
    on_meta,
    too_long,
)

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
