"""Checks for Exercise 3 (attention) and the catalogue of attention mistakes.

The worked example of a topic module (AUTHORING.md, "Writing checks", has the rules). Oracles are
independent of the reference: `torch.nn.functional.scaled_dot_product_attention` (outputs, and
the weights read out by attending over identity values) and `torch.nn.MultiheadAttention` with
its weights copied into our layout (`course.checks.oracles`). `hidden=True` adds other shapes,
float64, a batch of one, a single token, cross-attention with T_q != T_k and masks with fully masked rows.
"""

from __future__ import annotations

import torch

from course.checks import oracles
from course.checks.core import (
    CheckFailed,
    Mistake,
    Raised,
    Slip,
    call,
    check,
    close,
    compare,
    copy_of,
    diagnose,
    fail,
    short,
)

T = "solutions.attention."

MISTAKES = [
    # Part 1: attention_scores
    Mistake("no_scaling", T + "attention_scores", " / math.sqrt(q.size(-1))", "",
            "the scores are not divided by sqrt(d_k): scale q @ k^T by 1 / sqrt(q.size(-1))"),
    Mistake("scale_by_d_k", T + "attention_scores", "math.sqrt(q.size(-1))", "q.size(-1)",
            "the scores are divided by d_k instead of sqrt(d_k)"),
    Mistake("scale_by_length", T + "attention_scores", "math.sqrt(q.size(-1))",
            "math.sqrt(k.size(-2))",
            "the scores are scaled by the square root of the sequence length; scale by "
            "sqrt(d_k), the size of each query/key vector (the last axis)"),
    # Part 2: masked_softmax
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
    # Part 3: scaled_dot_product_attention
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
    # Part 4: split_heads / merge_heads
    Mistake("split_without_transpose", T + "split_heads",
            "x.view(B, T, n_heads, C // n_heads).transpose(1, 2)",
            "x.view(B, n_heads, T, C // n_heads)",
            "split_heads reshapes (B, T, C) straight to (B, H, T, D), which mixes tokens "
            "between heads: view as (B, T, H, D) first, then transpose(1, 2)"),
    Mistake("merge_without_transpose", T + "merge_heads", "x.transpose(1, 2).reshape(B, T, H * D)",
            "x.reshape(B, T, H * D)",
            "merge_heads reshapes (B, H, T, D) straight to (B, T, C), which mixes tokens "
            "between heads: transpose(1, 2) to (B, T, H, D) first, then reshape"),
    # Part 5: MultiHeadAttention.project and .attend
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
    Mistake("fused_path_unmasked", T + "MultiHeadAttention", "attn_mask=mask,", "attn_mask=None,",
            "the fused path (need_weights=False) ignores the mask: pass attn_mask=mask to "
            "F.scaled_dot_product_attention, so that both paths agree"),
    Mistake("causal_ignored", T + "MultiHeadAttention", "if causal:", "if False:",
            "causal=True is ignored: each query must also be kept from the keys after its own "
            "position (combine the mask with causal_mask)"),
    Mistake("causal_replaces_mask", T + "MultiHeadAttention",
            "mask = visible if mask is None else mask & visible", "mask = visible",
            "with causal=True the given mask (padding) is dropped: combine both, mask & causal"),
    Mistake("causal_off_by_one", T + "MultiHeadAttention",
            "visible = causal_mask(q.size(-2), q.device, past=k.size(-2) - q.size(-2))",
            "visible = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, "
            "device=q.device).tril(k.size(-2) - q.size(-2) - 1)[None, None]",
            "the causal mask is off by one (tril(-1)): it also hides each query's own "
            "position, and the first query then sees nothing; query i sees keys 0..i, tril(0)"),
    Mistake("mask_or_causal", T + "MultiHeadAttention",
            "mask = visible if mask is None else mask & visible",
            "mask = visible if mask is None else mask | visible",
            "the padding mask and the causal mask are combined with | (either allows): a key "
            "is visible only when both allow it, mask & causal"),
    # Part 6: train_copy_tasks
    Mistake("previous_offset", T + "train_copy_tasks", '"previous token": (-1, True)',
            '"previous token": (1, True)',
            "the 'previous token' run learns another task: the previous token is offset=-1 "
            "(offset=+1 is the next token)"),
    Mistake("next_is_previous", T + "train_copy_tasks", '"next token": (1, True)',
            '"next token": (-1, True)',
            "the 'next token' run learns the previous token (offset=-1): the next token is "
            "offset=+1"),
    Mistake("next_unmasked", T + "train_copy_tasks", '"next token": (1, True)',
            '"next token": (1, False)',
            "the 'next token' run trains without the causal mask, so it learns to read the "
            "answer from the future: keep causal=True"),
    Mistake("no_mask_kept", T + "train_copy_tasks", '"next token, no mask": (1, False)',
            '"next token, no mask": (1, True)',
            "the 'next token, no mask' run keeps the causal mask: pass causal=False"),
    Mistake("steps_split", T + "train_copy_tasks", "steps=steps)", "steps=steps // 3)",
            "a run does not train `steps` steps: pass steps=steps to every call of train"),
    Mistake("global_class", T + "train_copy_tasks", "{name: train(attention_cls,",
            "{name: train(MultiHeadAttention,",
            "a run trains the notebook's MultiHeadAttention instead of the class it is given: "
            "pass attention_cls to train"),
]


def _fmt(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _pad(lengths: list[int], T: int) -> torch.Tensor:
    """(B, 1, 1, T) padding mask, the canonical form: the first lengths[b] keys are real."""
    return oracles.lengths_mask(lengths, T)[:, None, None, :]


# ---------------------------------------------------------------- effects: mistakes by what they do


def _near(a: torch.Tensor, b: torch.Tensor) -> bool:
    return close(a, b, rtol=1e-3, atol=1e-4)


def _scaled_by(expected: torch.Tensor, factor: float):
    """got == expected * factor (the scale of the scores is off by that factor)."""
    return lambda got: _near(got, expected * factor)


def _softmax_effects(scores: torch.Tensor, mask: torch.Tensor | None):
    """Effects of masked_softmax mistakes, whatever code produced them."""
    allowed = torch.ones_like(scores, dtype=torch.bool) if mask is None \
        else mask.expand_as(scores)
    some = allowed.any(-1)  # rows with at least one key to attend to

    def over_queries(got):  # columns sum to one, rows do not
        return _near(got.sum(-2), torch.ones_like(got.sum(-2))) \
            and not _near(got.sum(-1), torch.ones_like(got.sum(-1)))

    def after_softmax(got):  # zero on masked keys, but kept rows sum to less than one
        return bool((got[~allowed] == 0).all()) and bool((got.sum(-1)[some] < 1 - 1e-3).any())

    def inverted(got):  # weight only where attending is NOT allowed
        return bool((~allowed).any()) and bool((got[allowed & some[..., None]] < 1e-6).all())

    def nan_rows(got):
        return bool(got.isnan().any())

    def uniform_rows(got):
        empty = ~some
        return bool(empty.any()) and _near(got[empty], torch.full_like(got[empty],
                                                                        1 / got.size(-1)))

    return [("softmax_wrong_axis", over_queries), ("mask_after_softmax", after_softmax),
            ("mask_inverted", inverted), ("neg_inf_nan", nan_rows),
            ("fully_masked_row_uniform", uniform_rows)]


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


# ---------------------------------------------------------------- Part 4: heads


@check(T + "split_heads", part=4)
def check_split_heads(split_heads, hidden: bool = False) -> None:
    """(B, T, C) -> (B, H, T, D): head h of token t holds features h*D .. (h+1)*D - 1 of t."""
    cases = [((2, 5, 12), 3, torch.float32), ((1, 4, 8), 2, torch.float32)]
    if hidden:
        cases += [((3, 1, 6), 2, torch.float64), ((2, 7, 16), 1, torch.float32),
                  ((2, 3, 8), 8, torch.float64), ((1, 9, 384), 12, torch.float32)]
    for i, (shape, H, dtype) in enumerate(cases):
        x = oracles.randn(*shape, seed=70 + i, dtype=dtype)
        B, T_, C = shape
        expected = x.reshape(B, T_, H, C // H).permute(0, 2, 1, 3)
        compare(split_heads, lambda f, x=x, H=H: f(x.clone(), H), expected,
                what=f"split_heads(x {_fmt(shape)}, n_heads={H})", **oracles.tol(dtype))


@check(T + "merge_heads", part=4)
def check_merge_heads(merge_heads, hidden: bool = False) -> None:
    """(B, H, T, D) -> (B, T, H * D), the inverse of split_heads."""
    cases = [((2, 3, 5, 4), torch.float32), ((1, 2, 4, 4), torch.float32)]
    if hidden:
        cases += [((3, 2, 1, 3), torch.float64), ((2, 1, 7, 16), torch.float32),
                  ((2, 8, 3, 1), torch.float64), ((1, 12, 9, 32), torch.float32)]
    for i, (shape, dtype) in enumerate(cases):
        x = oracles.randn(*shape, seed=80 + i, dtype=dtype)
        B, H, T_, D = shape
        expected = x.permute(0, 2, 1, 3).reshape(B, T_, H * D)
        compare(merge_heads, lambda f, x=x: f(x.clone()), expected,
                what=f"merge_heads(x {_fmt(shape)})", **oracles.tol(dtype))


# ---------------------------------------------------------------- Part 5: multi-head attention

MHA_USES = (T + "split_heads", T + "merge_heads", T + "scaled_dot_product_attention")


def _mha_inputs(case: dict):
    x = oracles.randn(case["B"], case["T_q"], case["C"], seed=case["seed"] + 1,
                      dtype=case["dtype"]).requires_grad_()
    context = oracles.randn(case["B"], case["T_k"], case["C"], seed=case["seed"] + 2,
                            dtype=case["dtype"]).requires_grad_() if case["cross"] else None
    return x, context


def _result(out, weights, x, context) -> tuple:
    """(output, weights or None, grad of x[, grad of context]) with loss = sum of the outputs."""
    out.sum().backward()
    grads = (x.grad,) + ((context.grad,) if context is not None else ())
    return (out.detach(), None if weights is None else weights.detach(), *grads)


_ORACLE: dict[tuple, tuple] = {}


def _torch_mha(case: dict, need_weights: bool) -> tuple:
    """The oracle: nn.MultiheadAttention on the case in eval mode (computed once per case)."""
    key = (_describe(case, need_weights), case["seed"])
    if key not in _ORACLE:
        _ORACLE[key] = _run_torch_mha(case, need_weights)
    return _ORACLE[key]


def _run_torch_mha(case: dict, need_weights: bool, train: bool = False) -> tuple:
    theirs = oracles.torch_mha(case["C"], case["H"], bias=case.get("bias", True),
                               dropout=case.get("dropout", 0.0), dtype=case["dtype"],
                               seed=case["seed"]).train(train)
    x, context = _mha_inputs(case)
    kv = x if context is None else context
    mask = case["mask"]
    if case.get("causal"):                                # query i sees keys <= i
        visible = torch.ones(case["T_q"], case["T_k"], dtype=torch.bool).tril()[None, None]
        mask = visible if mask is None else mask & visible
    out, weights = theirs(x, kv, kv, need_weights=need_weights, average_attn_weights=False,
                          attn_mask=oracles.torch_mha_mask(mask, case["B"], case["H"],
                                                           case["T_q"]))
    return _result(out, weights, x, context)


def _our_mha(cls, case: dict, need_weights: bool, train: bool = False) -> tuple:
    """The learner's class on the case, holding the oracle's weights."""
    from solutions.pretrained import load_torch_attention

    theirs = oracles.torch_mha(case["C"], case["H"], bias=case.get("bias", True),
                               dropout=case.get("dropout", 0.0), dtype=case["dtype"],
                               seed=case["seed"])
    ours = cls(case["C"], case["H"], dropout=case.get("dropout", 0.0),
               bias=case.get("bias", True)).to(case["dtype"])
    load_torch_attention(ours, theirs).train(train)
    x, context = _mha_inputs(case)
    mask = case["mask"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4321)
        flag = dict(causal=True) if case.get("causal") else {}
        result = ours(x, context, None if mask is None else mask.clone(), need_weights, **flag)
    if not isinstance(result, tuple) or len(result) != 2:
        raise CheckFailed(f"forward must return a pair (output, weights), got {short(result)}")
    return _result(*result, x, context)


def _describe(case: dict, need_weights: bool) -> str:
    mask = case["mask"]
    extra = (", bias=False" if not case.get("bias", True) else "") + \
        (f", dropout={case['dropout']}" if case.get("dropout") else "")
    context = f", context ({case['B']}, {case['T_k']}, {case['C']})" if case["cross"] else ""
    mask_text = ("no mask" if mask is None else f"mask {_fmt(mask.shape)}") + \
        (", causal=True" if case.get("causal") else "")
    return (f"MultiHeadAttention({case['C']}, {case['H']}{extra}).eval() on x ({case['B']}, "
            f"{case['T_q']}, {case['C']}){context}, {mask_text}, {case['dtype']}, "
            f"need_weights={need_weights} ({case['label']})")


def _check_mha(MultiHeadAttention, cases: list[dict], seed: int) -> None:
    parts = ("output", "weights", "gradient of x", "gradient of context")
    for i, case in enumerate(cases):
        case = dict(case, seed=seed + 10 * i)
        for need_weights in (True, False):  # the fused path is reached once the other passed
            what = _describe(case, need_weights) + ("" if need_weights else (
                ": the same case passed with need_weights=True, so the fused path disagrees "
                "with the explicit one"))
            compare(MultiHeadAttention,
                    lambda cls, c=case, n=need_weights: _our_mha(cls, c, n),
                    _torch_mha(case, need_weights), what=what,
                    parts=parts[:4 if case["cross"] else 3], **oracles.tol(case["dtype"]))


@check(T + "MultiHeadAttention", part=5, uses=MHA_USES)
def check_mha_self(MultiHeadAttention, hidden: bool = False) -> None:
    """Self-attention equals torch.nn.MultiheadAttention with the same weights, both paths."""
    f32, f64 = torch.float32, torch.float64
    base = dict(cross=False, C=16, H=4, B=2, T_q=5, T_k=5, dtype=f32)
    cases = [dict(base, mask=None, label="no mask"),
             dict(base, mask=_pad([5, 3], 5), label="sequence 1 has 2 padding tokens"),
             dict(base, mask=_pad([5, 3], 5), causal=True,
                  label="causal, and sequence 1 has 2 padding tokens")]
    if hidden:
        cases += [dict(base, C=8, H=2, B=1, T_q=6, T_k=6, mask=None, causal=True, dtype=f64,
                       label="causal, no other mask, float64"),
                  dict(base, C=24, H=3, B=3, T_q=6, T_k=6, mask=_pad([6, 1, 4], 6), dtype=f64,
                       label="float64, sequence 1 has a single real token"),
                  dict(base, C=8, H=1, B=1, T_q=4, T_k=4, mask=None, bias=False,
                       label="a batch of one, one head, no bias"),
                  dict(base, C=12, H=6, B=1, T_q=1, T_k=1, mask=None, dtype=f64,
                       label="a single token"),
                  dict(base, C=16, H=2, mask=torch.ones(1, 1, 5, 5, dtype=torch.bool).tril(),
                       label="causal mask (1, 1, T, T)")]
    _check_mha(MultiHeadAttention, cases, seed=100)


@check(T + "MultiHeadAttention", part=5, uses=MHA_USES)
def check_mha_cross(MultiHeadAttention, hidden: bool = False) -> None:
    """Cross-attention (queries from x, keys and values from context, T_q != T_k) with masks."""
    f32, f64 = torch.float32, torch.float64
    per_query = oracles.randn(2, 1, 3, 7, seed=5) > 0
    per_query[..., 0] = True
    base = dict(cross=True, C=16, H=4, B=2, T_q=3, T_k=6, dtype=f32)
    cases = [dict(base, mask=None, label="no mask"),
             dict(base, mask=_pad([6, 2], 6), label="context 1 has 4 padding tokens")]
    if hidden:
        cases += [dict(base, C=12, H=3, T_k=7, mask=per_query, dtype=f64,
                       label="float64, a different mask for each query (B, 1, T_q, T_k)"),
                  dict(base, C=8, H=2, B=1, T_q=1, T_k=5, mask=_pad([4], 5),
                       label="a batch of one, a single query"),
                  dict(base, T_q=6, T_k=2, mask=None, dtype=f64, bias=False,
                       label="more queries than keys, no bias")]
    _check_mha(MultiHeadAttention, cases, seed=300)


@check(T + "MultiHeadAttention", part=5, uses=MHA_USES)
def check_mha_dropout(MultiHeadAttention, hidden: bool = False) -> None:
    """Dropout acts only in training mode: in eval mode the output is deterministic and equals
    nn.MultiheadAttention's; in training mode it changes the output."""
    base = dict(cross=False, C=16, H=4, B=2, T_q=5, T_k=5, mask=None, dtype=torch.float32,
                dropout=0.5, label="dropout 0.5")
    cases = [base]
    if hidden:
        cases += [dict(base, C=12, H=3, B=1, T_q=4, T_k=6, cross=True, mask=_pad([5], 6),
                       dtype=torch.float64, dropout=0.3, label="cross-attention, dropout 0.3")]
    _check_mha(MultiHeadAttention, cases, seed=500)
    for i, case in enumerate(cases):
        case = dict(case, seed=700 + i)
        what = (f"MultiHeadAttention({case['C']}, {case['H']}, dropout={case['dropout']})"
                ".train(), need_weights=False")
        trained = call(MultiHeadAttention, lambda cls, c=case: _our_mha(cls, c, False, True),
                       what)
        if isinstance(trained, Raised):
            fail(f"{what}\n  raised {trained}")
        if torch.allclose(trained[0], _torch_mha(case, False)[0]):
            fail(f"{what}: the output in training mode equals the output in eval mode, so "
                 "dropout is never applied; pass dropout_p=self.dropout when self.training is "
                 "True.")


# ---------------------------------------------------------------- Part 6: training

RUNS = {"previous token": -1, "next token": 1, "next token, no mask": 1}  # name -> offset
LEARNED = 0.95   # held-out accuracy a run that can see its answer must reach (the exercise says)
CHANCE = 0.2     # held-out accuracy a run whose answer is out of sight stays under (chance 1/16)
PEEKS = 0.5      # held-out accuracy that shows a model learned to read another position
_RUNS: dict[tuple, tuple] = {}  # (the learner's code, steps, hidden) -> (kept alive, result)
_UNSET = object()  # a name the learner's function reads that is not one of its globals


def _held_out(hidden: bool) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """offset -> (inputs, targets) of sequences that no training run sees (other seeds)."""
    from course.datasets.tasks import copy_task

    n = 1000 if hidden else 400
    return {offset: copy_task(n, offset=offset, seed=30_000 + 7 * hidden + offset)
            for offset in (-1, 1)}


def _experiment_probe(fn, attention_cls, steps: int, inputs: dict[int, torch.Tensor]):
    """Run the learner's experiment where their code runs; give back, for each run: the steps
    it trained, whether it trained `attention_cls`, and its predictions on the held-out inputs
    of both tasks, with and without the causal mask (the accuracies are computed here)."""
    from course.datasets.tasks import train

    runs = fn(attention_cls, train, steps)
    if not isinstance(runs, dict) or set(runs) != set(RUNS):
        keys = sorted(map(str, runs)) if isinstance(runs, dict) else None
        return (f"a {type(runs).__name__}" + (f" with keys {keys}" if keys is not None else "")
                + f"; expected a dict with the keys {sorted(RUNS)}")
    out = {}
    for name, result in runs.items():
        model, losses = getattr(result, "model", None), getattr(result, "losses", None)
        if not isinstance(model, torch.nn.Module) or not isinstance(losses, list):
            return (f"runs[{name!r}] is a {type(result).__name__}; expected what train "
                    "returned (with .model and .losses)")
        model.eval()
        with torch.no_grad():
            predicted = {(offset, causal): model(x, causal=causal)[0].argmax(-1)
                         for offset, x in inputs.items() for causal in (True, False)}
        out[name] = (len(losses), type(getattr(model, "attention", None)) is attention_cls,
                     predicted)
    return out


def _code_key(fn) -> tuple:
    """The learner's function as code (nested code objects included), its defaults and the
    global values it reads: the same key gives the same runs."""
    def code(c):
        return (c.co_code, c.co_names, c.co_varnames,
                tuple(code(k) if hasattr(k, "co_code") else repr(k) for k in c.co_consts))

    def names(c):
        return set(c.co_names).union(*(names(k) for k in c.co_consts if hasattr(k, "co_code")))

    found = getattr(fn, "__code__", None)
    if found is None:  # a handle on the learner's object elsewhere (the grader's judge)
        return ("object", id(fn)), (fn,)
    values = tuple(fn.__globals__.get(n, _UNSET) for n in sorted(names(found)))
    return (code(found), repr(fn.__defaults__), repr(fn.__kwdefaults__),
            tuple(map(id, values))), (fn, values)


def _experiment(fn, hidden: bool) -> tuple[str, int, dict | str]:
    """(what was called, steps, {run: (steps trained, trained attention_cls?, {(offset,
    causal): held-out accuracy})} or what went wrong), computed once per code and case."""
    from course.datasets.tasks import IGNORE

    steps = 60 if hidden else 100
    what = f"train_copy_tasks(attention_cls, train, steps={steps})"
    key, alive = _code_key(fn)
    key = (key, steps, hidden)
    if key in _RUNS:
        return _RUNS[key][1]
    held_out = _held_out(hidden)
    reference = copy_of(T + "MultiHeadAttention")
    inputs = {offset: x for offset, (x, _) in held_out.items()}
    got = call(fn, lambda f: _experiment_probe(f, reference, steps, inputs), what)
    if isinstance(got, Raised):
        result = (what, steps, f"raised {got}")
    elif isinstance(got, str):
        result = (what, steps, f"returned {got}")
    else:
        table = {}
        for name, (trained, own_class, predicted) in got.items():
            accuracy = {}
            for (offset, causal), guess in predicted.items():
                target = held_out[offset][1]
                keep = target != IGNORE
                accuracy[offset, causal] = (guess[keep] == target[keep]).float().mean().item()
            table[name] = (trained, own_class, accuracy)
        result = (what, steps, table)
    _RUNS[key] = (alive, result)
    return result


def _named(*names: str) -> list[Mistake]:
    return [m for m in MISTAKES if m.name in names]


def _runs_or_fail(fn, hidden: bool) -> tuple[str, int, dict]:
    what, steps, table = _experiment(fn, hidden)
    if isinstance(table, str):
        fail(f"{what}\n  {table}")
    for name, (trained, own_class, _) in table.items():
        if trained != steps:
            fail(f"{what}: the {name!r} run trained {trained} steps, expected {steps}",
                 _named("steps_split"))
        if not own_class:
            fail(f"{what}: the {name!r} run did not train the class passed as attention_cls",
                 _named("global_class"))
    return what, steps, table


def _percent(accuracy: dict, offset: int, causal: bool) -> str:
    return f"{accuracy[offset, causal]:.1%}"


@check(T + "train_copy_tasks", part=6)
def check_train_copy_tasks(train_copy_tasks, hidden: bool = False) -> None:
    """Every run trains `steps` steps of the class it is given; the previous-token run reaches
    LEARNED held-out accuracy (checked on sequences no run trained on)."""
    what, steps, table = _runs_or_fail(train_copy_tasks, hidden)
    accuracy = table["previous token"][2]
    if accuracy[-1, True] < LEARNED:
        fail(f"{what}: after {steps} steps the 'previous token' model copies the previous token "
             f"of held-out sequences with accuracy {_percent(accuracy, -1, True)} under the "
             f"causal mask; it must reach {LEARNED:.0%}",
             _named("previous_offset") if accuracy[-1, True] < CHANCE else [])
    print(f"previous token: held-out accuracy {_percent(accuracy, -1, True)} after {steps} "
          "steps")


@check(T + "train_copy_tasks", part=6)
def check_train_copy_tasks_mask(train_copy_tasks, hidden: bool = False) -> None:
    """The next-token run, under the causal mask, stays at chance and did not learn to read the
    future; the no-mask run reads it and reaches LEARNED held-out accuracy."""
    what, steps, table = _runs_or_fail(train_copy_tasks, hidden)
    following, peeking = table["next token"][2], table["next token, no mask"][2]
    if following[1, False] >= PEEKS:
        fail(f"{what}: the 'next token' model predicts the next token of held-out sequences with "
             f"accuracy {_percent(following, 1, False)} when the mask is taken away: it was "
             "trained to read the future", _named("next_unmasked"))
    if following[-1, True] >= PEEKS:
        fail(f"{what}: the 'next token' model copies the previous token with accuracy "
             f"{_percent(following, -1, True)}: it was trained on the previous token",
             _named("next_is_previous"))
    if following[1, True] >= CHANCE:
        fail(f"{what}: the 'next token' model predicts the next token with accuracy "
             f"{_percent(following, 1, True)} under the causal mask, above chance (1/16)")
    if peeking[1, False] < LEARNED:
        fail(f"{what}: after {steps} steps the 'next token, no mask' model predicts the next "
             f"token of held-out sequences with accuracy {_percent(peeking, 1, False)} without "
             f"the mask; it must reach {LEARNED:.0%}",
             _named("no_mask_kept") if peeking[1, False] < CHANCE
             and max(peeking[-1, True], peeking[-1, False]) < PEEKS else [])
    print(f"next token: {_percent(following, 1, True)} under the mask (chance {1 / 16:.1%}), "
          f"{_percent(peeking, 1, False)} without it")


# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("scores_unscaled_matmul", T + "attention_scores", """
def attention_scores(q, k):
    return torch.matmul(q, k.transpose(-1, -2))
""", "no_scaling"),
    Slip("scores_over_d", T + "attention_scores", """
def attention_scores(q, k):
    d_k = q.shape[-1]
    return q @ k.transpose(-2, -1) / d_k
""", "scale_by_d_k"),
    Slip("scores_k_dot_T", T + "attention_scores", """
def attention_scores(q, k):
    return q @ k.T / math.sqrt(q.size(-1))
""", None),
    Slip("softmax_dim_1", T + "masked_softmax", """
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    weights = F.softmax(scores, dim=1)
    return weights if mask is None else weights * mask
""", "softmax_wrong_axis"),
    Slip("softmax_minus_inf", T + "masked_softmax", """
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), float("-inf"))
    return scores.softmax(-1)
""", "neg_inf_nan"),
    Slip("softmax_then_mask", T + "masked_softmax", """
def masked_softmax(scores, mask=None):
    weights = torch.exp(scores - scores.amax(-1, keepdim=True))
    weights = weights / weights.sum(-1, keepdim=True)
    if mask is not None:
        weights = weights * mask
    return weights
""", "mask_after_softmax"),
    Slip("softmax_fill_where_true", T + "masked_softmax", """
def masked_softmax(scores, mask=None):
    if mask is None:
        return scores.softmax(dim=-1)
    filled = torch.where(mask, torch.full_like(scores, -1e9), scores)
    return filled.softmax(dim=-1) * ~mask
""", "mask_inverted"),
    Slip("softmax_uniform_padding_rows", T + "masked_softmax", """
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    return torch.softmax(scores, dim=-1)
""", "fully_masked_row_uniform"),
    Slip("attention_sums_keys", T + "scaled_dot_product_attention", """
def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    weights = masked_softmax(attention_scores(q, k), mask)
    if dropout_p:
        weights = F.dropout(weights, dropout_p)
    return torch.matmul(weights, k), weights
""", "weights_times_keys"),
    Slip("attention_no_dropout", T + "scaled_dot_product_attention", """
def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    weights = masked_softmax(attention_scores(q, k), mask)
    return weights @ v, weights
""", "dropout_ignored"),
    Slip("split_one_reshape", T + "split_heads", """
def split_heads(x, n_heads):
    B, T, C = x.shape
    return x.reshape(B, n_heads, T, C // n_heads)
""", "split_without_transpose"),
    Slip("merge_view_after_permute", T + "merge_heads", """
def merge_heads(x):
    B, H, T, D = x.shape
    return x.permute(0, 2, 1, 3).view(B, T, H * D)
""", None),
    Slip("mha_no_out", T + "MultiHeadAttention.attend", """
def attend(self, q, k, v, mask=None, causal=False, need_weights=False):
    if causal:
        c = causal_mask(q.size(-2), q.device, past=k.size(-2) - q.size(-2))
        mask = c if mask is None else mask & c
    p = self.dropout if self.training else 0.0
    if need_weights:
        y, w = scaled_dot_product_attention(q, k, v, mask, p)
        return merge_heads(y), w
    return merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)), None
""", "no_output_projection"),
    Slip("mha_self_only", T + "MultiHeadAttention.project", """
def project(self, x, context=None):
    q = split_heads(self.query(x), self.n_heads)
    k = split_heads(self.key(x), self.n_heads)
    v = split_heads(self.value(x), self.n_heads)
    return q, k, v
""", "context_ignored"),
    Slip("mha_dropout_always", T + "MultiHeadAttention.attend", """
def attend(self, q, k, v, mask=None, causal=False, need_weights=False):
    if causal:
        later = causal_mask(q.size(-2), q.device, past=k.size(-2) - q.size(-2))
        mask = later if mask is None else mask & later
    if need_weights:
        y, w = scaled_dot_product_attention(q, k, v, mask, self.dropout)
    else:
        y, w = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                              dropout_p=self.dropout), None
    return self.out(merge_heads(y)), w
""", "dropout_at_eval"),
    Slip("mha_causal_drops_padding", T + "MultiHeadAttention.attend", """
def attend(self, q, k, v, mask=None, causal=False, need_weights=False):
    if causal:
        mask = causal_mask(q.size(-2), q.device, past=k.size(-2) - q.size(-2))
    p = self.dropout if self.training else 0.0
    if need_weights:
        y, w = scaled_dot_product_attention(q, k, v, mask, p)
    else:
        y, w = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p), None
    return self.out(merge_heads(y)), w
""", "causal_replaces_mask"),
    Slip("mha_fused_mask_inverted", T + "MultiHeadAttention.attend", """
def attend(self, q, k, v, mask=None, causal=False, need_weights=False):
    if causal:
        c = causal_mask(q.size(-2), q.device, past=k.size(-2) - q.size(-2))
        mask = c if mask is None else mask & c
    p = self.dropout if self.training else 0.0
    if need_weights:
        y, w = scaled_dot_product_attention(q, k, v, mask, p)
    else:  # PyTorch's masks are True where attention is NOT allowed (a wrong belief)
        y, w = F.scaled_dot_product_attention(
            q, k, v, attn_mask=None if mask is None else ~mask, dropout_p=p), None
    return self.out(merge_heads(y)), w
""", None),
    Slip("runs_next_sees_future", T + "train_copy_tasks", """
def train_copy_tasks(attention_cls, train, steps=100):
    previous = train(attention_cls, offset=-1, steps=steps)
    following = train(attention_cls, offset=1, causal=False, steps=steps)
    peeking = train(attention_cls, offset=1, causal=False, steps=steps)
    return {"previous token": previous, "next token": following,
            "next token, no mask": peeking}
""", "next_unmasked"),
    Slip("runs_default_steps", T + "train_copy_tasks", """
def train_copy_tasks(attention_cls, train, steps=100):
    runs = {}
    for name, offset, causal in [("previous token", -1, True), ("next token", 1, True),
                                 ("next token, no mask", 1, False)]:
        runs[name] = train(attention_cls, offset=offset, causal=causal)
    return runs
""", "steps_split"),
    Slip("runs_notebook_class", T + "train_copy_tasks", """
def train_copy_tasks(attention_cls, train, steps=100):
    names = ["previous token", "next token", "next token, no mask"]
    settings = [dict(offset=-1), dict(offset=1), dict(offset=1, causal=False)]
    return {n: train(MultiHeadAttention, steps=steps, **kw) for n, kw in zip(names, settings)}
""", "global_class"),
    Slip("runs_all_forward", T + "train_copy_tasks", """
def train_copy_tasks(attention_cls, train, steps=100):
    out = {}
    out["previous token"] = train(attention_cls, offset=+1, causal=True, steps=steps)
    out["next token"] = train(attention_cls, offset=+1, causal=True, steps=steps)
    out["next token, no mask"] = train(attention_cls, offset=+1, causal=False, steps=steps)
    return out
""", "previous_offset"),
    Slip("runs_accuracies_only", T + "train_copy_tasks", """
def train_copy_tasks(attention_cls, train, steps=100):
    tasks = {"previous token": (-1, True), "next token": (1, True),
             "next token, no mask": (1, False)}
    return {name: train(attention_cls, offset=o, causal=c, steps=steps).accuracy
            for name, (o, c) in tasks.items()}
""", None),
]
