"""The reference attention against independent oracles: PyTorch's fused attention,
torch.nn.MultiheadAttention with copied weights, and the real all-MiniLM-L6-v2."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

from course.checks.oracles import lengths_mask, randn, tol, torch_mha
from solutions.attention import (
    MultiHeadAttention,
    attention_loop,
    attention_scores,
    causal_mask,
    masked_softmax,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
    train_copy_tasks,
)
from solutions.pretrained import load_bert_attention, load_torch_attention

DTYPES = [torch.float32, torch.float64]


def pad4(lengths, T):
    """(B, 1, 1, T) padding mask, the canonical form: True = real token."""
    return lengths_mask(lengths, T)[:, None, None, :]


# ---------------------------------------------------------------- scaled dot-product attention


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_kind", ["none", "padding", "causal", "per-query", "broadcast"])
def test_sdpa_matches_pytorch(dtype, mask_kind):
    B, H, T_q, T_k, D = 2, 3, 5, 7 if mask_kind != "causal" else 5, 8
    q, k, v = randn(B, H, T_q, D, dtype=dtype), randn(B, H, T_k, D, dtype=dtype, seed=1), \
        randn(B, H, T_k, 4, dtype=dtype, seed=2)
    mask = {"none": None,
            "padding": lengths_mask([T_k, 3], T_k)[:, None, None, :],
            "causal": causal_mask(T_k),
            "per-query": (randn(B, 1, T_q, T_k, seed=3) > 0) | (torch.arange(T_k) == 0),
            "broadcast": torch.tensor([[True] * (T_k - 2) + [False] * 2])}[mask_kind]
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert out.shape == (B, H, T_q, 4) and weights.shape == (B, H, T_q, T_k)
    assert out.dtype == dtype
    torch.testing.assert_close(out, expected, **tol(dtype))
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, T_q, dtype=dtype), **tol(dtype))
    if mask is not None:
        assert (weights.masked_select(~mask.expand_as(weights)) == 0).all()


def test_sdpa_without_batch_axes_and_single_token():
    q, k, v = randn(3, 4), randn(6, 4, seed=1), randn(6, 2, seed=2)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v)[0],
                               F.scaled_dot_product_attention(q, k, v))
    one = randn(1, 1, 8)
    out, weights = scaled_dot_product_attention(one, one, one)
    assert torch.equal(weights, torch.ones(1, 1, 1)) and torch.allclose(out, one)


def test_scores_are_scaled_by_sqrt_dk():
    q, k = randn(2, 4, 16), randn(2, 5, 16, seed=1)
    torch.testing.assert_close(attention_scores(q, k), q @ k.transpose(-2, -1) / 4.0)


def test_loop_equals_matrix_form():
    q, k, v = randn(5, 8, dtype=torch.float64), randn(7, 8, dtype=torch.float64, seed=1), \
        randn(7, 3, dtype=torch.float64, seed=2)
    torch.testing.assert_close(attention_loop(q, k, v), scaled_dot_product_attention(q, k, v)[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_fully_masked_rows_are_zero_and_gradients_finite(dtype):
    q = randn(2, 3, 4, dtype=dtype).requires_grad_()
    k = randn(2, 5, 4, dtype=dtype, seed=1).requires_grad_()
    v = randn(2, 5, 4, dtype=dtype, seed=2).requires_grad_()
    mask = torch.ones(2, 3, 5, dtype=torch.bool)
    mask[0, 1] = False
    mask[1] = False  # a sequence made only of padding
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert (out[0, 1] == 0).all() and (weights[0, 1] == 0).all() and (out[1] == 0).all()
    (out.sum() + weights.sum()).backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()


def test_masked_softmax_large_scores_stay_finite():
    scores = randn(2, 4, 6) * 1e4
    mask = lengths_mask([6, 2], 6)[:, None, :]
    w = masked_softmax(scores, mask)
    assert torch.isfinite(w).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4))


def test_dropout_only_when_asked():
    q, k, v = randn(4, 8, 8), randn(4, 8, 8, seed=1), randn(4, 8, 8, seed=2)
    _, kept = scaled_dot_product_attention(q, k, v)
    torch.manual_seed(0)
    out, dropped = scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    zero = dropped == 0
    assert 0.3 < zero.float().mean() < 0.7
    torch.testing.assert_close(dropped[~zero], kept[~zero] * 2)
    torch.testing.assert_close(out, dropped @ v)


# ---------------------------------------------------------------- heads


def test_split_and_merge_heads():
    x = randn(2, 5, 12)
    heads = split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    assert torch.equal(heads[1, 2, 4], x[1, 4, 8:12])  # head 2 of token 4: features 8..11
    assert torch.equal(merge_heads(heads), x)


# ---------------------------------------------------------------- multi-head attention


def torch_pair(C, H, *, bias=True, dropout=0.0, dtype=torch.float32, seed=0):
    """nn.MultiheadAttention and our module holding the same weights."""
    theirs = torch_mha(C, H, bias=bias, dropout=dropout, dtype=dtype, seed=seed)
    ours = MultiHeadAttention(C, H, dropout=dropout, bias=bias).to(dtype)
    return load_torch_attention(ours, theirs).eval(), theirs.eval()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("cross,masked,bias", [(False, False, True), (False, True, False),
                                               (True, False, True), (True, True, True)])
def test_mha_matches_torch(dtype, need_weights, cross, masked, bias):
    B, T_q, C, H = 3, 5, 24, 4
    T_k = 7 if cross else T_q
    ours, theirs = torch_pair(C, H, bias=bias, dtype=dtype)
    x = randn(B, T_q, C, dtype=dtype).requires_grad_()
    context = randn(B, T_k, C, dtype=dtype, seed=1).requires_grad_() if cross else None
    pad = lengths_mask([T_k, 2, 1], T_k) if masked else None
    out, weights = ours(x, context, mask=None if pad is None else pad[:, None, None, :],
                        need_weights=need_weights)
    kv = x if context is None else context
    ref, ref_weights = theirs(x, kv, kv, key_padding_mask=None if pad is None else ~pad,
                              need_weights=need_weights, average_attn_weights=False)
    torch.testing.assert_close(out, ref, **tol(dtype))
    if need_weights:
        torch.testing.assert_close(weights, ref_weights, **tol(dtype))
    else:
        assert weights is None
    grad, = torch.autograd.grad(out.sum(), x)
    ref_grad, = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(grad, ref_grad, **tol(dtype))


def test_mha_accepts_a_4d_mask_like_torch():
    ours, theirs = torch_pair(16, 4)
    x = randn(2, 6, 16)
    causal = causal_mask(6)
    assert causal.shape == (1, 1, 6, 6)
    out, _ = ours(x, mask=causal)
    ref, _ = theirs(x, x, x, attn_mask=~causal[0, 0], need_weights=False)
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_path_equals_explicit_path(masked):
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4).eval()
    x, context = randn(2, 5, 32), randn(2, 9, 32, seed=1)
    mask = pad4([9, 4], 9) if masked else None
    fused, none = mha(x, context, mask)
    explicit, weights = mha(x, context, mask, need_weights=True)
    assert none is None and weights.shape == (2, 4, 5, 9)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-6)


def test_dropout_acts_only_in_training():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, dropout=0.5)
    x = randn(2, 5, 16)
    for need_weights in (True, False):
        mha.eval()
        assert torch.equal(mha(x, need_weights=need_weights)[0], mha(x, need_weights=need_weights)[0])
        mha.train()
        assert not torch.allclose(mha(x, need_weights=need_weights)[0],
                                  mha(x, need_weights=need_weights)[0])


def test_fully_masked_sequence_is_finite_in_both_paths():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4)
    x = randn(2, 5, 16).requires_grad_()
    pad = pad4([5, 0], 5)  # the second sequence is all padding
    for need_weights in (True, False):
        out, _ = mha(x, mask=pad, need_weights=need_weights)
        assert torch.isfinite(out).all()
        # a query with nothing to attend to gets the output projection's bias only
        torch.testing.assert_close(out[1], mha.out.bias.expand(5, 16))
        grad, = torch.autograd.grad(out.sum(), x)
        assert torch.isfinite(grad).all()


def test_mha_gradients_reach_every_parameter():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2)
    x, context = randn(2, 3, 16), randn(2, 4, 16, seed=1)
    out, _ = mha(x, context, need_weights=True)
    out.pow(2).sum().backward()
    for name, p in mha.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_masks_helpers():
    assert torch.equal(causal_mask(3),
                       torch.tensor([[[[1, 0, 0], [1, 1, 0], [1, 1, 1]]]]).bool())
    assert causal_mask(4, device="meta").device.type == "meta"
    am = torch.tensor([[1, 1, 0], [1, 0, 0]])
    pm = padding_mask(am)
    assert pm.shape == (2, 1, 1, 3) and pm.dtype == torch.bool
    assert torch.equal(pm[:, 0, 0], am.bool())


# ---------------------------------------------------------------- bad input, clear errors


def test_attention_loop_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        attention_loop(randn(2, 3, 4), randn(3, 4), randn(3, 4))
    with pytest.raises(ValueError, match="same D"):
        attention_loop(randn(3, 4), randn(3, 5), randn(3, 5))


def test_attention_scores_rejects_bad_input():
    with pytest.raises(ValueError, match="same last axis"):
        attention_scores(randn(2, 3, 4), randn(2, 3, 5))
    with pytest.raises(TypeError, match="floating-point"):
        attention_scores(torch.ones(3, 4, dtype=torch.long), torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        attention_scores([[1.0]], randn(1, 1))


def test_masked_softmax_rejects_bad_masks():
    with pytest.raises(TypeError, match="mask must be bool"):
        masked_softmax(randn(2, 3, 4), torch.ones(2, 3, 4))  # a float mask, not ~-able
    with pytest.raises(ValueError, match="does not broadcast"):
        masked_softmax(randn(2, 3, 4), torch.ones(2, 3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not broadcast"):  # would grow the output
        masked_softmax(randn(3, 4), torch.ones(2, 3, 4, dtype=torch.bool))


def test_scaled_dot_product_attention_rejects_bad_input():
    q = randn(2, 3, 4)
    with pytest.raises(ValueError, match="same number of tokens"):
        scaled_dot_product_attention(q, randn(2, 5, 4), randn(2, 6, 4))
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention(q, q, q, dropout_p=1.5)


def test_split_and_merge_heads_reject_bad_input():
    with pytest.raises(ValueError, match="divisible"):
        split_heads(randn(2, 3, 10), 3)
    with pytest.raises(ValueError, match="n_heads must be at least 1"):
        split_heads(randn(2, 3, 8), 0)
    with pytest.raises(ValueError, match=r"\(B, T, C\)"):
        split_heads(randn(3, 8), 2)
    with pytest.raises(ValueError, match=r"\(B, H, T, D\)"):
        merge_heads(randn(2, 3, 8))


@pytest.mark.parametrize("args,error,match", [
    ((10, 3), ValueError, "divisible"),
    ((16.0, 4), TypeError, "d_model must be an int"),
    ((16, 0), ValueError, "n_heads must be at least 1"),
    ((16, 4, 1.0), ValueError, "dropout"),
    ((16, 4, 0.1, "yes"), TypeError, "bias"),
])
def test_multi_head_attention_constructor_rejects_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        MultiHeadAttention(*args)


def test_multi_head_attention_forward_rejects_bad_input():
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"x must be \(B, T, 8\)"):
        mha(randn(2, 3, 6))
    with pytest.raises(ValueError, match="context must be"):
        mha(randn(2, 3, 8), randn(2, 3, 4))
    with pytest.raises(ValueError, match="same batch size"):
        mha(randn(2, 3, 8), randn(3, 3, 8))
    with pytest.raises(TypeError, match="mask must be bool"):
        mha(randn(2, 3, 8), mask=torch.ones(2, 1, 1, 3))
    with pytest.raises(ValueError, match="4 axes"):
        mha(randn(2, 3, 8), mask=torch.ones(2, 3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="4 axes"):  # (T, T) with B == T: never read as (B, T)
        mha(randn(3, 3, 8), mask=torch.ones(3, 3, dtype=torch.bool).tril())
    with pytest.raises(ValueError, match="does not broadcast"):
        mha(randn(2, 3, 8), mask=torch.ones(2, 1, 1, 4, dtype=torch.bool))


def test_mask_helpers_reject_bad_input():
    with pytest.raises(ValueError, match="T must be at least 1"):
        causal_mask(0)
    with pytest.raises(TypeError, match="T must be an int"):
        causal_mask(3.0)
    with pytest.raises(ValueError, match="attention_mask"):
        padding_mask(torch.ones(3))
    with pytest.raises(ValueError, match="only 1"):
        padding_mask(torch.tensor([[0.5, 1.0]]))
    assert padding_mask(torch.ones(2, 3)).dtype == torch.bool  # 1.0 / 0.0 floats are fine
    with pytest.raises(ValueError, match="only 1"):
        padding_mask(torch.tensor([[1, 2, 0]]))


# ---------------------------------------------------------------- training on the copy task


def test_train_copy_tasks_makes_one_run_per_setting():
    calls = []

    def fake_train(attention_cls, **settings):
        calls.append((attention_cls, settings))
        return len(calls)

    runs = train_copy_tasks(MultiHeadAttention, fake_train, steps=7)
    assert runs == {"previous token": 1, "next token": 2, "next token, no mask": 3}
    assert calls == [(MultiHeadAttention, dict(offset=-1, causal=True, steps=7)),
                     (MultiHeadAttention, dict(offset=1, causal=True, steps=7)),
                     (MultiHeadAttention, dict(offset=1, causal=False, steps=7))]


def test_train_copy_tasks_learns_what_it_can_see():
    from course.datasets.tasks import accuracy, copy_task, train

    runs = train_copy_tasks(MultiHeadAttention, train, steps=80)
    assert all(len(r.losses) == 80 for r in runs.values())
    previous, following = (copy_task(300, offset=o, seed=99) for o in (-1, 1))
    assert accuracy(runs["previous token"].model, *previous) > 0.95
    assert accuracy(runs["next token"].model, *following) < 0.2       # chance: 1 / 16
    assert accuracy(runs["next token"].model, *following, causal=False) < 0.2
    assert accuracy(runs["next token, no mask"].model, *following, causal=False) > 0.95


def test_train_copy_tasks_rejects_bad_input():
    from course.datasets.tasks import train

    with pytest.raises(TypeError, match="attention_cls"):
        train_copy_tasks("MultiHeadAttention", train)
    with pytest.raises(TypeError, match="train must be"):
        train_copy_tasks(MultiHeadAttention, None)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        train_copy_tasks(MultiHeadAttention, train, steps=0)


# ---------------------------------------------------------------- the real MiniLM


@pytest.fixture(scope="module")
def minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    from course.datasets import minilm_path

    transformers.logging.set_verbosity_error()
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path())
    model = transformers.AutoModel.from_pretrained(minilm_path(), attn_implementation="eager")
    return tokenizer, model.eval()


def test_minilm_layer0_attention_equals_hugging_face(minilm):
    tokenizer, model = minilm
    batch = tokenizer(["The animal didn't cross the street because it was too tired.",
                       "time flies like an arrow"], padding=True, return_tensors="pt")
    attention = model.encoder.layer[0].attention
    seen = {}

    def grab_input(module, args, kwargs):
        seen["x"] = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]

    def grab_output(module, args, out):
        seen["out"] = out

    hooks = [attention.self.register_forward_pre_hook(grab_input, with_kwargs=True),
             attention.output.dense.register_forward_hook(grab_output)]
    try:
        with torch.no_grad():
            hf = model(**batch, output_attentions=True)
    finally:
        for h in hooks:
            h.remove()
    config = model.config
    ours = load_bert_attention(MultiHeadAttention(config.hidden_size, config.num_attention_heads),
                               attention).eval()
    mask = padding_mask(batch["attention_mask"])
    with torch.no_grad():
        out, weights = ours(seen["x"], mask=mask, need_weights=True)
        fused, _ = ours(seen["x"], mask=mask)
    torch.testing.assert_close(out, seen["out"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused, seen["out"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(weights, hf.attentions[0], rtol=1e-4, atol=1e-5)


def test_load_bert_attention_rejects_wrong_sizes(minilm):
    _, model = minilm
    with pytest.raises(ValueError, match="does not match"):
        load_bert_attention(MultiHeadAttention(64, 4), model.encoder.layer[0].attention)


# ---------------------------------------------------------------- the benchmark


def test_benchmark_rows_are_well_formed():
    from course.bench import attention as bench

    rows = bench.run(quick=True)
    assert {row["name"] for row in rows} >= {"explicit path (need_weights=True)",
                                             "SDPA path (need_weights=False)"}
    for row in rows:
        assert set(row) >= {"name", "baseline", "ours_s", "baseline_s", "ratio", "target", "ok"}
        assert row["ours_s"] > 0 and row["baseline_s"] > 0
        assert math.isclose(row["ratio"], row["baseline_s"] / row["ours_s"], rel_tol=1e-9)
        assert row["same"] is True  # both modules give the same output
        target = bench.TARGETS["need_weights=True" in row["name"]]
        assert row["ok"] == (row["ratio"] >= target) and f"{target:g}" in row["target"]
