"""Checks for Exercise 3 (attention) and the catalogue of attention mistakes.

Oracles are independent of the reference wherever PyTorch has one:
`torch.nn.functional.scaled_dot_product_attention` (outputs, and attention weights read out by
attending over identity values) and `torch.nn.MultiheadAttention(batch_first=True)` with its
packed `in_proj_weight` split into our `query`/`key`/`value` projections and `out_proj` copied
into `out`. `hidden=True` adds other shapes, float64, a batch of one, a single token,
cross-attention with T_q != T_k and masks with fully masked rows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from course.checks.core import (
    CheckFailed,
    Mistake,
    Raised,
    call,
    compare,
    diagnose,
    fail,
    require_own,
    short,
)

T = "solutions.attention."

MISTAKES = [
    # attention_scores
    Mistake("no_scaling", T + "attention_scores", " / math.sqrt(q.size(-1))", "",
            "the scores are not divided by sqrt(d_k): scale q @ k^T by 1 / sqrt(q.size(-1))"),
    Mistake("scale_by_d_k", T + "attention_scores", "math.sqrt(q.size(-1))", "q.size(-1)",
            "the scores are divided by d_k instead of sqrt(d_k)"),
    Mistake("scale_by_length", T + "attention_scores", "math.sqrt(q.size(-1))",
            "math.sqrt(k.size(-2))",
            "the scores are scaled by the square root of the sequence length; scale by "
            "sqrt(d_k), the size of each query/key vector (the last axis)"),
    # masked_softmax
    Mistake("mask_after_softmax", T + "masked_softmax",
            "scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)", "pass",
            "the mask is applied after the softmax, so the remaining weights no longer sum to 1: "
            "fill masked scores with a very negative number BEFORE the softmax"),
    Mistake("mask_inverted", T + "masked_softmax", "masked_fill(~mask,", "masked_fill(mask,",
            "the mask is inverted: True means 'may attend' (like the tokenizer's attention_mask, "
            "1 = real token), so fill the positions where the mask is False"),
    Mistake("softmax_wrong_axis", T + "masked_softmax", "torch.softmax(scores, dim=-1)",
            "torch.softmax(scores, dim=-2)",
            "the softmax runs over the queries (dim=-2); each query's weights over the keys "
            "must sum to 1, so use dim=-1"),
    Mistake("neg_inf_nan", T + "masked_softmax", "torch.finfo(scores.dtype).min", 'float("-inf")',
            "a fully masked row gives NaN: softmax of a row of -inf is 0/0. Fill with "
            "torch.finfo(scores.dtype).min (finite) and set such rows to zero"),
    Mistake("fully_masked_row_uniform", T + "masked_softmax", "weights = weights * mask",
            "weights = weights",
            "a fully masked row spreads its weight uniformly over the masked keys: a query "
            "with nothing to attend to must get all-zero weights (multiply by the mask)"),
    # scaled_dot_product_attention
    Mistake("weights_times_keys", T + "scaled_dot_product_attention", "return weights @ v,",
            "return weights @ k,",
            "the attention weights multiply the keys; the output is the weighted sum of the VALUES"),
    Mistake("returns_scores", T + "scaled_dot_product_attention", "weights @ v, weights",
            "weights @ v, scores",
            "the second result is the raw scores; return the attention weights (after the "
            "masked softmax)"),
    Mistake("dropout_ignored", T + "scaled_dot_product_attention", "if dropout_p > 0.0:",
            "if False:",
            "dropout_p is ignored: when dropout_p > 0 apply F.dropout(weights, p=dropout_p) "
            "to the attention weights"),
    # split_heads / merge_heads
    Mistake("split_without_transpose", T + "split_heads",
            "x.view(B, T, n_heads, C // n_heads).transpose(1, 2)",
            "x.view(B, n_heads, T, C // n_heads)",
            "split_heads reshapes (B, T, C) straight to (B, H, T, D), which mixes tokens "
            "between heads: view as (B, T, H, D) first, then transpose(1, 2)"),
    Mistake("merge_without_transpose", T + "merge_heads", "x.transpose(1, 2).reshape(B, T, H * D)",
            "x.reshape(B, T, H * D)",
            "merge_heads reshapes (B, H, T, D) straight to (B, T, C), which mixes tokens "
            "between heads: transpose(1, 2) to (B, T, H, D) first, then reshape"),
    # MultiHeadAttention.forward
    Mistake("shared_projections", T + "MultiHeadAttention", "k = split_heads(self.key(context)",
            "k = split_heads(self.query(context)",
            "the keys are made with the query projection: queries, keys and values each need "
            "their own projection (self.query, self.key, self.value)"),
    Mistake("no_output_projection", T + "MultiHeadAttention", "return self.out(merge_heads(y)),",
            "return merge_heads(y),",
            "the output projection is missing: after merging the heads apply self.out"),
    Mistake("dropout_at_eval", T + "MultiHeadAttention",
            "dropout_p = self.dropout if self.training else 0.0", "dropout_p = self.dropout",
            "dropout is still applied in eval mode: use self.dropout only when self.training "
            "is True, else 0.0"),
    Mistake("context_ignored", T + "MultiHeadAttention",
            "context = x if context is None else context", "context = x",
            "keys and values come from x even when a context is given: in cross-attention "
            "they are projected from `context` (x only when context is None)"),
]


def _mistakes(name: str) -> list[Mistake]:
    return [m for m in MISTAKES if m.target == T + name]


def _tol(dtype: torch.dtype) -> dict:
    return dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-10)


def _randn(*shape, seed: int, dtype=torch.float32, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).mul_(scale).to(dtype)


def _pad(lengths: list[int], T: int) -> torch.Tensor:
    """A (B, T) bool padding mask: the first lengths[b] positions are real (True)."""
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]


def _compare_parts(learner, probe, *, oracle, what: str, parts: tuple[str, ...], **kwargs):
    """compare() on each element of a probe's tuple result in turn, so a message says which
    one is wrong (the output, the weights, a gradient)."""
    for i, part in enumerate(parts):
        compare(learner, lambda f, i=i: probe(f)[i], oracle=oracle, what=f"{what}: {part}",
                **kwargs)


def _fmt(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


# ---------------------------------------------------------------- oracles from torch


def _oracle_weights(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax over the keys with a mask, by PyTorch's own attention kernel: attending from
    `scores` as queries to identity keys and identity values returns exactly the weights."""
    eye = torch.eye(scores.size(-1), dtype=scores.dtype)
    w = F.scaled_dot_product_attention(scores, eye, eye, attn_mask=mask, scale=1.0)
    return w.nan_to_num(0.0)  # a row with nothing to attend to: all zero


def _oracle_scores(q, k):
    return torch.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.size(-1))


def _oracle_attention(q, k, v, mask=None, dropout_p=0.0):
    assert dropout_p == 0.0
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).nan_to_num(0.0)
    return out, _oracle_weights(_oracle_scores(q, k), mask)


# ---------------------------------------------------------------- part 1: scores


def check_attention_scores(attention_scores, hidden: bool = False) -> None:
    """q @ k^T over the last axis, divided by sqrt(d_k); any leading batch axes."""
    require_own(attention_scores, "attention_scores")
    cases = [((2, 4, 8), (2, 6, 8), torch.float32), ((5, 16), (3, 16), torch.float32)]
    if hidden:
        cases += [((2, 3, 5, 4), (2, 3, 7, 4), torch.float64), ((1, 1, 32), (1, 1, 32), torch.float32),
                  ((1, 4, 1, 64), (1, 4, 9, 64), torch.float64), ((3, 2), (3, 2), torch.float64)]
    for i, (qs, ks, dtype) in enumerate(cases):
        q, k = _randn(*qs, seed=10 + i, dtype=dtype), _randn(*ks, seed=20 + i, dtype=dtype)

        compare(attention_scores, lambda f, q=q, k=k: f(q.clone(), k.clone()),
                oracle=_oracle_scores,
                what=f"attention_scores(q {_fmt(qs)}, k {_fmt(ks)}, {dtype})",
                mistakes=_mistakes("attention_scores"), **_tol(dtype))


# ---------------------------------------------------------------- part 2: masked softmax


def _softmax_cases(edges: bool, hidden: bool):
    if not edges:
        cases = [("no mask", (2, 4, 4), None, torch.float32),
                 ("padding mask (B, 1, T_k)", (2, 3, 5), _pad([5, 3], 5)[:, None, :],
                  torch.float32),
                 ("causal mask (T, T)", (2, 4, 4), torch.ones(4, 4, dtype=torch.bool).tril(),
                  torch.float32)]
        if hidden:
            cases += [("padding mask (B, 1, 1, T_k), float64", (3, 2, 4, 6),
                       _pad([6, 2, 4], 6)[:, None, None, :], torch.float64),
                      ("single key", (1, 1, 1), torch.ones(1, 1, dtype=torch.bool), torch.float32),
                      ("cross-attention mask (B, T_q, T_k)", (2, 3, 7),
                       (torch.rand(2, 3, 7, generator=torch.Generator().manual_seed(3)) > 0.4)
                       | (torch.arange(7) == 0), torch.float32)]
        return cases
    full = torch.ones(2, 3, 5, dtype=torch.bool)
    full[0, 1] = False  # query 1 of sequence 0 may attend to nothing
    cases = [("a fully masked row", (2, 3, 5), full, torch.float32),
             ("a sequence made only of padding", (2, 1, 4, 4), _pad([4, 0], 4)[:, None, None, :],
              torch.float32)]
    if hidden:
        every = torch.zeros(1, 3, 3, dtype=torch.bool)
        cases += [("every key masked, float64", (1, 3, 3), every, torch.float64),
                  ("a fully masked row, float64, 4-D", (2, 2, 3, 5), full[:, None], torch.float64),
                  ("large scores with a fully masked row", (2, 3, 5), full, torch.float32)]
    return cases


def _check_softmax(masked_softmax, edges: bool, hidden: bool) -> None:
    for i, (label, shape, mask, dtype) in enumerate(_softmax_cases(edges, hidden)):
        scale = 30.0 if label.startswith("large") else 2.0
        scores = _randn(*shape, seed=30 + i, dtype=dtype, scale=scale)

        def probe(f, scores=scores, mask=mask):
            return f(scores.clone(), None if mask is None else mask.clone())

        compare(masked_softmax, probe,
                oracle=_oracle_weights,
                what=f"masked_softmax(scores {_fmt(shape)}, {dtype}, {label})",
                mistakes=_mistakes("masked_softmax"), **_tol(dtype))


def check_masked_softmax(masked_softmax, hidden: bool = False) -> None:
    """Weights over the keys sum to 1; masked keys (mask False) get exactly 0."""
    require_own(masked_softmax, "masked_softmax")
    _check_softmax(masked_softmax, edges=False, hidden=hidden)


def check_masked_softmax_edges(masked_softmax, hidden: bool = False) -> None:
    """A query whose keys are all masked gets all-zero weights, never NaN."""
    require_own(masked_softmax, "masked_softmax")
    _check_softmax(masked_softmax, edges=True, hidden=hidden)


# ---------------------------------------------------------------- part 3: attention


def check_attention(scaled_dot_product_attention, hidden: bool = False) -> None:
    """(output, weights) equal PyTorch's F.scaled_dot_product_attention and its weights."""
    require_own(scaled_dot_product_attention, "scaled_dot_product_attention")
    full = torch.ones(2, 4, 6, dtype=torch.bool)
    full[1, 2] = False
    cases = [("self-attention", (2, 5, 8), (2, 5, 8), (2, 5, 8), None, torch.float32),
             ("padding mask", (2, 5, 8), (2, 5, 8), (2, 5, 8), _pad([5, 2], 5)[:, None, :],
              torch.float32)]
    if hidden:
        cases += [
            ("heads, padding mask (B, 1, 1, T_k), float64", (2, 3, 4, 6), (2, 3, 7, 6),
             (2, 3, 7, 6), _pad([7, 3], 7)[:, None, None, :], torch.float64),
            ("cross-attention, D_v != D_k", (2, 4, 6), (2, 6, 6), (2, 6, 3), full, torch.float32),
            ("batch of one, causal", (1, 6, 4), (1, 6, 4), (1, 6, 4),
             torch.ones(6, 6, dtype=torch.bool).tril(), torch.float32),
            ("a single token", (1, 1, 16), (1, 1, 16), (1, 1, 16), None, torch.float64),
            ("no batch axis, broadcast mask (1, T_k)", (3, 5), (4, 5), (4, 5),
             torch.tensor([[True, True, False, True]]), torch.float32),
        ]
    for i, (label, qs, ks, vs, mask, dtype) in enumerate(cases):
        q, k, v = (_randn(*s, seed=40 + 3 * i + j, dtype=dtype) for j, s in enumerate((qs, ks, vs)))

        def probe(f, q=q, k=k, v=v, mask=mask):
            out = f(q.clone(), k.clone(), v.clone(), None if mask is None else mask.clone())
            if not isinstance(out, tuple) or len(out) != 2:
                raise CheckFailed("scaled_dot_product_attention must return a pair "
                                  f"(output, weights), got {short(out)}")
            return tuple(out)

        _compare_parts(scaled_dot_product_attention, probe,
                       oracle=_oracle_attention, parts=("output", "weights"),
                what=f"scaled_dot_product_attention(q {_fmt(qs)}, k {_fmt(ks)}, v {_fmt(vs)}, "
                     f"{dtype}, {label})",
                mistakes=_mistakes("scaled_dot_product_attention"), **_tol(dtype))


def check_attention_dropout(scaled_dot_product_attention, hidden: bool = False) -> None:
    """With dropout_p > 0 each weight is either dropped (0) or scaled by 1 / (1 - p), about a
    fraction p are dropped, and the output is the dropped weights times v."""
    require_own(scaled_dot_product_attention, "scaled_dot_product_attention")
    cases = [((4, 8, 8), 0.5)]
    if hidden:
        cases += [((2, 2, 16, 16), 0.25), ((1, 12, 20), 0.8)]
    for i, (shape, p) in enumerate(cases):
        q, k, v = (_randn(*shape, seed=60 + 3 * i + j) for j in range(3))
        what = f"scaled_dot_product_attention(q, k, v {_fmt(shape)}, dropout_p={p})"

        def probe(f, q=q, k=k, v=v, p=p):
            torch.manual_seed(1234)
            out, weights = f(q.clone(), k.clone(), v.clone(), None, p)
            return out, weights

        result = call(scaled_dot_product_attention, probe, what)
        if isinstance(result, Raised):
            raise CheckFailed(f"{what} raised {result}.")
        out, weights = result
        _, kept = _oracle_attention(q, k, v, None)
        dropped = weights == 0
        problems = []
        if not torch.allclose(torch.where(dropped, 0.0, weights), torch.where(dropped, 0.0, kept / (1 - p)),
                              rtol=1e-4, atol=1e-6):
            problems.append("the weights kept are not the attention weights scaled by 1 / (1 - p)")
        elif not abs(dropped.float().mean().item() - p) < 0.15:
            problems.append(f"{dropped.float().mean().item():.0%} of the weights are dropped, "
                            f"expected about {p:.0%}")
        elif not torch.allclose(out, weights @ v, rtol=1e-4, atol=1e-5):
            problems.append("the output is not the returned (dropped-out) weights times v")
        if problems:
            fail(f"{what}\n  {problems[0]}.",
                 diagnose((out, weights), probe, _mistakes("scaled_dot_product_attention")))
        # dropout_p = 0 is deterministic and drops nothing
        _compare_parts(scaled_dot_product_attention,
                lambda f, q=q, k=k, v=v: tuple(f(q.clone(), k.clone(), v.clone(), None, 0.0)),
                oracle=_oracle_attention, parts=("output", "weights"),
                what=f"scaled_dot_product_attention(q, k, v {_fmt(shape)}, dropout_p=0.0)",
                mistakes=_mistakes("scaled_dot_product_attention"))


# ---------------------------------------------------------------- part 4: heads


def _split_oracle(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    B, T, C = x.shape
    return x.reshape(B, T, n_heads, C // n_heads).permute(0, 2, 1, 3)


def _merge_oracle(x: torch.Tensor) -> torch.Tensor:
    B, H, T, D = x.shape
    return x.permute(0, 2, 1, 3).reshape(B, T, H * D)


def check_split_heads(split_heads, hidden: bool = False) -> None:
    """(B, T, C) -> (B, H, T, D): head h of token t holds features h*D .. (h+1)*D - 1 of t."""
    require_own(split_heads, "split_heads")
    cases = [((2, 5, 12), 3, torch.float32), ((1, 4, 8), 2, torch.float32)]
    if hidden:
        cases += [((3, 1, 6), 2, torch.float64), ((2, 7, 16), 1, torch.float32),
                  ((2, 3, 8), 8, torch.float64), ((1, 9, 384), 12, torch.float32)]
    for i, (shape, H, dtype) in enumerate(cases):
        x = _randn(*shape, seed=70 + i, dtype=dtype)
        compare(split_heads, lambda f, x=x, H=H: f(x.clone(), H),
                oracle=_split_oracle,
                what=f"split_heads(x {_fmt(shape)}, n_heads={H})",
                mistakes=_mistakes("split_heads"), **_tol(dtype))


def check_merge_heads(merge_heads, hidden: bool = False) -> None:
    """(B, H, T, D) -> (B, T, H * D), the inverse of split_heads."""
    require_own(merge_heads, "merge_heads")
    cases = [((2, 3, 5, 4), torch.float32), ((1, 2, 4, 4), torch.float32)]
    if hidden:
        cases += [((3, 2, 1, 3), torch.float64), ((2, 1, 7, 16), torch.float32),
                  ((2, 8, 3, 1), torch.float64), ((1, 12, 9, 32), torch.float32)]
    for i, (shape, dtype) in enumerate(cases):
        x = _randn(*shape, seed=80 + i, dtype=dtype)

        compare(merge_heads, lambda f, x=x: f(x.clone()), oracle=_merge_oracle,
                what=f"merge_heads(x {_fmt(shape)})", mistakes=_mistakes("merge_heads"),
                **_tol(dtype))


# ---------------------------------------------------------------- part 5: multi-head attention


def _torch_mha(C: int, H: int, *, bias: bool, dropout: float, dtype, seed: int):
    torch.manual_seed(seed)
    mha = nn.MultiheadAttention(C, H, dropout=dropout, bias=bias, batch_first=True, dtype=dtype)
    with torch.no_grad():  # non-zero biases, so a missing bias shows
        for p in (mha.in_proj_bias, mha.out_proj.bias):
            if p is not None:
                p.uniform_(-0.5, 0.5)
    return mha


def _copy_into(ours: nn.Module, theirs: nn.MultiheadAttention) -> None:
    """nn.MultiheadAttention's packed in_proj (query; key; value rows) -> our four Linears."""
    with torch.no_grad():
        weights = theirs.in_proj_weight.chunk(3)
        biases = theirs.in_proj_bias.chunk(3) if theirs.in_proj_bias is not None else (None,) * 3
        for name, w, b in zip(("query", "key", "value"), weights, biases, strict=True):
            getattr(ours, name).weight.copy_(w)
            if b is not None:
                getattr(ours, name).bias.copy_(b)
        ours.out.weight.copy_(theirs.out_proj.weight)
        if theirs.out_proj.bias is not None:
            ours.out.bias.copy_(theirs.out_proj.bias)


def _torch_masks(mask, B: int, H: int, T_q: int):
    """Our mask (True = may attend) -> nn.MultiheadAttention's (key_padding_mask, attn_mask),
    both True = may NOT attend."""
    if mask is None:
        return None, None
    if mask.dim() == 2:
        return ~mask, None
    full = mask.expand(B, H, T_q, mask.size(-1))
    return None, ~full.reshape(B * H, T_q, mask.size(-1))


def _mha_case(cls, *, C, H, B, T_q, T_k, cross, mask, dtype, need_weights, bias=True,
              dropout=0.0, train=False, seed=0):
    """Run a multi-head attention (ours: a class; theirs: None) on fixed inputs; return
    (output, weights or None, grad of x, grad of context or None)."""
    theirs = _torch_mha(C, H, bias=bias, dropout=dropout, dtype=dtype, seed=seed)
    x = _randn(B, T_q, C, seed=seed + 1, dtype=dtype).requires_grad_()
    context = _randn(B, T_k, C, seed=seed + 2, dtype=dtype).requires_grad_() if cross else None
    if cls is None:
        theirs.train(train)
        kv = x if context is None else context
        key_padding_mask, attn_mask = _torch_masks(mask, B, H, T_q)
        out, weights = theirs(x, kv, kv, key_padding_mask=key_padding_mask, attn_mask=attn_mask,
                              need_weights=need_weights, average_attn_weights=False)
    else:
        ours = cls(C, H, dropout=dropout, bias=bias).to(dtype)
        _copy_into(ours, theirs)
        ours.train(train)
        torch.manual_seed(4321)
        result = ours(x, context, None if mask is None else mask.clone(), need_weights)
        if not isinstance(result, tuple) or len(result) != 2:
            raise CheckFailed(f"forward must return a pair (output, weights), got {short(result)}")
        out, weights = result
    out.sum().backward()  # compare gradients too (loss = sum of the outputs)
    grads = (x.grad, None if context is None else context.grad)
    return (out.detach(), None if weights is None else weights.detach(), *grads)


def _check_mha(MultiHeadAttention, cases, label_prefix: str) -> None:
    for i, case in enumerate(cases):
        case = dict(case, seed=100 + 10 * i)
        for need_weights in (True, False):
            args = dict(case, need_weights=need_weights)
            shown = {k: v for k, v in args.items()
                     if k in ("C", "H", "B", "T_q", "T_k", "bias", "dropout", "need_weights")}
            mask = case["mask"]
            mask_text = "no mask" if mask is None else f"mask {_fmt(mask.shape)}"
            what = (f"{label_prefix} MultiHeadAttention({shown['C']}, {shown['H']}"
                    f"{', bias=False' if not case.get('bias', True) else ''}"
                    f"{', dropout=' + str(case['dropout']) if case.get('dropout') else ''})"
                    f"{'.train()' if case.get('train') else '.eval()'} on x ({case['B']}, "
                    f"{case['T_q']}, {case['C']})"
                    f"{', context (' + str(case['B']) + ', ' + str(case['T_k']) + ', ' + str(case['C']) + ')' if case['cross'] else ''}"
                    f", {mask_text}, {case['dtype']}, need_weights={need_weights}")
            parts = ("output", "weights", "gradient of x", "gradient of context")
            _compare_parts(MultiHeadAttention, lambda cls, args=args: _mha_case(cls, **args),
                    oracle=None, what=what, parts=parts[:4 if case["cross"] else 3],
                    mistakes=_mistakes("MultiHeadAttention"), **_tol(case["dtype"]))


def check_mha_self(MultiHeadAttention, hidden: bool = False) -> None:
    """Self-attention equals torch.nn.MultiheadAttention with the same weights, both paths."""
    require_own(MultiHeadAttention, "MultiHeadAttention")
    f32, f64 = torch.float32, torch.float64
    cases = [dict(C=16, H=4, B=2, T_q=5, T_k=5, cross=False, mask=None, dtype=f32),
             dict(C=16, H=4, B=2, T_q=5, T_k=5, cross=False, mask=_pad([5, 3], 5), dtype=f32)]
    if hidden:
        cases += [dict(C=24, H=3, B=3, T_q=6, T_k=6, cross=False, mask=_pad([6, 1, 4], 6), dtype=f64),
                  dict(C=8, H=1, B=1, T_q=4, T_k=4, cross=False, mask=None, dtype=f32, bias=False),
                  dict(C=12, H=6, B=1, T_q=1, T_k=1, cross=False, mask=None, dtype=f64),
                  dict(C=16, H=2, B=2, T_q=5, T_k=5, cross=False,
                       mask=torch.ones(1, 1, 5, 5, dtype=torch.bool).tril(), dtype=f32)]
    _check_mha(MultiHeadAttention, cases, "self-attention:")


def check_mha_cross(MultiHeadAttention, hidden: bool = False) -> None:
    """Cross-attention (queries from x, keys and values from context, T_q != T_k) with masks."""
    require_own(MultiHeadAttention, "MultiHeadAttention")
    f32, f64 = torch.float32, torch.float64
    per_query = torch.rand(2, 1, 3, 7, generator=torch.Generator().manual_seed(5)) > 0.5
    per_query[..., 0] = True
    cases = [dict(C=16, H=4, B=2, T_q=3, T_k=6, cross=True, mask=None, dtype=f32),
             dict(C=16, H=4, B=2, T_q=3, T_k=6, cross=True, mask=_pad([6, 2], 6), dtype=f32)]
    if hidden:
        cases += [dict(C=12, H=3, B=2, T_q=3, T_k=7, cross=True, mask=per_query, dtype=f64),
                  dict(C=8, H=2, B=1, T_q=1, T_k=5, cross=True, mask=_pad([4], 5), dtype=f32),
                  dict(C=16, H=4, B=2, T_q=6, T_k=2, cross=True, mask=None, dtype=f64, bias=False)]
    _check_mha(MultiHeadAttention, cases, "cross-attention:")


def check_mha_dropout(MultiHeadAttention, hidden: bool = False) -> None:
    """Dropout acts only in training mode: in eval mode the output is deterministic and equals
    nn.MultiheadAttention's; in training mode it changes the output."""
    require_own(MultiHeadAttention, "MultiHeadAttention")
    f32, f64 = torch.float32, torch.float64
    cases = [dict(C=16, H=4, B=2, T_q=5, T_k=5, cross=False, mask=None, dtype=f32, dropout=0.5)]
    if hidden:
        cases += [dict(C=12, H=3, B=1, T_q=4, T_k=6, cross=True, mask=_pad([5], 6), dtype=f64,
                       dropout=0.3)]
    _check_mha(MultiHeadAttention, cases, "dropout in eval mode:")
    for i, case in enumerate(cases):
        for need_weights in (True, False):
            what = (f"MultiHeadAttention({case['C']}, {case['H']}, dropout={case['dropout']})"
                    f".train(), need_weights={need_weights}")
            args = dict(case, seed=200 + i, need_weights=need_weights)
            trained = call(MultiHeadAttention, lambda cls, a=args: _mha_case(cls, **a, train=True),
                           what)
            evaluated = call(MultiHeadAttention, lambda cls, a=args: _mha_case(cls, **a), what)
            for result in (trained, evaluated):
                if isinstance(result, Raised):
                    raise CheckFailed(f"{what} raised {result}.")
            if torch.allclose(trained[0], evaluated[0]):
                raise CheckFailed(f"{what}: the output in training mode equals the output in eval "
                                  "mode, so dropout is never applied; pass "
                                  "dropout_p=self.dropout when self.training is True.")


def check_multi_head_attention(MultiHeadAttention, hidden: bool = False) -> None:
    check_mha_self(MultiHeadAttention, hidden)
    check_mha_cross(MultiHeadAttention, hidden)
    check_mha_dropout(MultiHeadAttention, hidden)


CHECKS = {
    T + "attention_scores": check_attention_scores,
    T + "masked_softmax": lambda f, hidden=False: (check_masked_softmax(f, hidden),
                                                   check_masked_softmax_edges(f, hidden)),
    T + "scaled_dot_product_attention": lambda f, hidden=False: (
        check_attention(f, hidden), check_attention_dropout(f, hidden)),
    T + "split_heads": check_split_heads,
    T + "merge_heads": check_merge_heads,
    T + "MultiHeadAttention": check_multi_head_attention,
}
