"""Parts 1 to 3: `attention_scores`, `masked_softmax` and `scaled_dot_product_attention`,
checked against PyTorch's."""

from __future__ import annotations

import torch

from course.checks import oracles
from course.checks.attention.mistakes import T
from course.checks.attention.shared import _fmt, _pad, _scaled_by, _softmax_effects
from course.checks.core import CheckFailed, Raised, call, check, compare, diagnose, fail, short

# ---------------------------------------------------------------- Part 1: scores


@check(T + "attention_scores", part=1)
def check_attention_scores(attention_scores, hidden: bool = False) -> None:
    """q @ k^T over the last axis, divided by sqrt(d_k); any leading batch axes."""
    f32, f64 = torch.float32, torch.float64
    cases = [("batch of 2", (2, 4, 8), (2, 6, 8), f32), ("no batch axis", (5, 16), (3, 16), f32)]
    if hidden:
        cases += [("heads, float64", (2, 3, 5, 4), (2, 3, 7, 4), f64),
                  ("a single query and key", (1, 1, 32), (1, 1, 32), f32),
                  ("one query, nine keys", (1, 4, 1, 64), (1, 4, 9, 64), f64),
                  ("d_k = 2", (3, 2), (3, 2), f64)]
    for i, (label, qs, ks, dtype) in enumerate(cases):
        q = oracles.randn(*qs, seed=10 + i, dtype=dtype)
        k = oracles.randn(*ks, seed=20 + i, dtype=dtype)
        expected = oracles.attention_scores(q, k)
        d, length = qs[-1], ks[-2]
        compare(attention_scores, lambda f, q=q, k=k: f(q.clone(), k.clone()), expected,
                what=f"attention_scores(q {_fmt(qs)}, k {_fmt(ks)}, {dtype}, {label})",
                effects=[("no_scaling", _scaled_by(expected, d ** 0.5)),
                         ("scale_by_d_k", _scaled_by(expected, d ** -0.5)),
                         ("scale_by_length", _scaled_by(expected, (d / length) ** 0.5))]
                if d != length else [],
                **oracles.tol(dtype))


# ---------------------------------------------------------------- Part 2: masked softmax


def _softmax_cases(edges: bool, hidden: bool):
    """(label, scores shape, mask or None, dtype, scale of the scores)."""
    f32, f64 = torch.float32, torch.float64
    if not edges:
        cases = [("no mask", (2, 4, 4), None, f32, 2.0),
                 ("padding mask (B, 1, T_k)", (2, 3, 5),
                  oracles.lengths_mask([5, 3], 5)[:, None, :], f32, 2.0),
                 ("causal mask (T, T)", (2, 4, 4), torch.ones(4, 4, dtype=torch.bool).tril(),
                  f32, 2.0)]
        if hidden:
            cases += [("padding mask (B, 1, 1, T_k), float64", (3, 2, 4, 6), _pad([6, 2, 4], 6),
                       f64, 2.0),
                      ("a single key", (1, 1, 1), torch.ones(1, 1, dtype=torch.bool), f32, 2.0),
                      ("a cross-attention mask (B, T_q, T_k)", (2, 3, 7),
                       (oracles.randn(2, 3, 7, seed=3) > -0.3) | (torch.arange(7) == 0), f32,
                       2.0)]
        return cases
    full = torch.ones(2, 3, 5, dtype=torch.bool)
    full[0, 1] = False  # query 1 of sequence 0 may attend to nothing
    cases = [("query 1 of sequence 0 has every key masked", (2, 3, 5), full, f32, 2.0),
             ("sequence 1 is only padding", (2, 1, 4, 4), _pad([4, 0], 4), f32, 2.0)]
    if hidden:
        cases += [("every key of every query masked, float64", (1, 3, 3),
                   torch.zeros(1, 3, 3, dtype=torch.bool), f64, 2.0),
                  ("a fully masked row, float64, 4-D", (2, 2, 3, 5), full[:, None], f64, 2.0),
                  ("large scores and a fully masked row", (2, 3, 5), full, f32, 30.0)]
    return cases


def _check_softmax(masked_softmax, edges: bool, hidden: bool) -> None:
    for i, (label, shape, mask, dtype, scale) in enumerate(_softmax_cases(edges, hidden)):
        scores = oracles.randn(*shape, seed=30 + i, dtype=dtype, scale=scale)
        compare(masked_softmax,
                lambda f, s=scores, m=mask: f(s.clone(), None if m is None else m.clone()),
                oracles.attention_weights(scores, mask),
                what=f"masked_softmax(scores {_fmt(shape)}, {dtype}, {label})",
                effects=_softmax_effects(scores, mask), **oracles.tol(dtype))


@check(T + "masked_softmax", part=2)
def check_masked_softmax(masked_softmax, hidden: bool = False) -> None:
    """Weights over the keys sum to 1; masked keys (mask False) get exactly 0."""
    _check_softmax(masked_softmax, edges=False, hidden=hidden)


@check(T + "masked_softmax", part=2)
def check_masked_softmax_edges(masked_softmax, hidden: bool = False) -> None:
    """A query whose keys are all masked gets all-zero weights, never NaN."""
    _check_softmax(masked_softmax, edges=True, hidden=hidden)


# ---------------------------------------------------------------- Part 3: attention

SDPA_USES = (T + "attention_scores", T + "masked_softmax")


def _pair(result, what: str) -> tuple:
    if not isinstance(result, tuple) or len(result) != 2:
        raise CheckFailed(f"{what} must return a pair (output, weights), got {short(result)}")
    return tuple(result)


@check(T + "scaled_dot_product_attention", part=3, uses=SDPA_USES)
def check_attention(scaled_dot_product_attention, hidden: bool = False) -> None:
    """(output, weights) equal PyTorch's F.scaled_dot_product_attention and its weights."""
    f32, f64 = torch.float32, torch.float64
    full = torch.ones(2, 4, 6, dtype=torch.bool)
    full[1, 2] = False
    cases = [("self-attention", (2, 5, 8), (2, 5, 8), (2, 5, 8), None, f32),
             ("padding mask (B, 1, T_k)", (2, 5, 8), (2, 5, 8), (2, 5, 8),
              oracles.lengths_mask([5, 2], 5)[:, None, :], f32)]
    if hidden:
        cases += [
            ("heads, padding mask (B, 1, 1, T_k), float64", (2, 3, 4, 6), (2, 3, 7, 6),
             (2, 3, 7, 6), _pad([7, 3], 7), f64),
            ("cross-attention, D_v != D_k, query 2 of sequence 1 has every key masked",
             (2, 4, 6), (2, 6, 6), (2, 6, 3), full, f32),
            ("a batch of one, causal mask", (1, 6, 4), (1, 6, 4), (1, 6, 4),
             torch.ones(6, 6, dtype=torch.bool).tril(), f32),
            ("a single token", (1, 1, 16), (1, 1, 16), (1, 1, 16), None, f64),
            ("no batch axis, broadcast mask (1, T_k)", (3, 5), (4, 5), (4, 5),
             torch.tensor([[True, True, False, True]]), f32),
        ]
    for i, (label, qs, ks, vs, mask, dtype) in enumerate(cases):
        q, k, v = (oracles.randn(*s, seed=40 + 3 * i + j, dtype=dtype)
                   for j, s in enumerate((qs, ks, vs)))
        what = (f"scaled_dot_product_attention(q {_fmt(qs)}, k {_fmt(ks)}, v {_fmt(vs)}, "
                f"{dtype}, {label})")

        def probe(f, q=q, k=k, v=v, mask=mask, what=what):
            return _pair(f(q.clone(), k.clone(), v.clone(), None if mask is None else mask.clone()),
                         what)

        compare(scaled_dot_product_attention, probe, oracles.attention(q, k, v, mask),
                what=what, parts=("output", "weights"), **oracles.tol(dtype))


def _dropout_problem(out, weights, kept, v, p) -> str | None:
    """What is wrong with (out, weights) as dropout p of the attention weights `kept`."""
    dropped = weights == 0
    if not torch.allclose(torch.where(dropped, 0.0, weights),
                          torch.where(dropped, 0.0, kept / (1 - p)), rtol=1e-4, atol=1e-6):
        return "the weights kept are not the attention weights scaled by 1 / (1 - p)"
    share = dropped.float().mean().item()
    if not abs(share - p) < 0.15:
        return f"{share:.0%} of the weights are dropped, expected about {p:.0%}"
    if not torch.allclose(out, weights @ v, rtol=1e-4, atol=1e-5):
        return "the output is not the returned (dropped-out) weights times v"
    return None


@check(T + "scaled_dot_product_attention", part=3, uses=SDPA_USES)
def check_attention_dropout(scaled_dot_product_attention, hidden: bool = False) -> None:
    """With dropout_p > 0 each weight is either dropped (0) or scaled by 1 / (1 - p), about a
    fraction p are dropped, and the output is the dropped weights times v."""
    cases = [((4, 8, 8), 0.5)]
    if hidden:
        cases += [((2, 2, 16, 16), 0.25), ((1, 12, 20), 0.8)]
    for i, (shape, p) in enumerate(cases):
        q, k, v = (oracles.randn(*shape, seed=60 + 3 * i + j) for j in range(3))
        what = f"scaled_dot_product_attention(q, k, v {_fmt(shape)}, dropout_p={p})"

        def probe(f, q=q, k=k, v=v, p=p, what=what):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(1234)
                return _pair(f(q.clone(), k.clone(), v.clone(), None, p), what)

        result = call(scaled_dot_product_attention, probe, what)
        if isinstance(result, Raised):
            fail(f"{what}\n  raised {result}")
        _, kept = oracles.attention(q, k, v)
        problem = _dropout_problem(*result, kept, v, p)
        if problem:
            fail(f"{what}\n  {problem}.", diagnose(result, probe, what))
        compare(scaled_dot_product_attention,
                lambda f, q=q, k=k, v=v: _pair(f(q.clone(), k.clone(), v.clone(), None, 0.0),
                                               "scaled_dot_product_attention"),
                oracles.attention(q, k, v), parts=("output", "weights"),
                what=f"scaled_dot_product_attention(q, k, v {_fmt(shape)}, dropout_p=0.0)")
