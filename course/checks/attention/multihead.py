"""Parts 4 and 5: `split_heads`, `merge_heads` and `MultiHeadAttention`, checked against
``torch.nn.MultiheadAttention`` with the same weights."""

from __future__ import annotations

import torch

from course.checks import oracles
from course.checks.attention.mistakes import T
from course.checks.attention.shared import _fmt, _pad
from course.checks.core import CheckFailed, Raised, call, check, compare, fail, short

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
