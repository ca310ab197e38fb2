"""The reference feed-forward network against independent oracles: torch.nn.functional.gelu,
torch.nn.Sequential and torch.nn.Conv1d with copied weights, and Hugging Face BERT/GPT-2 blocks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from solutions.feedforward import (
    FeedForward,
    FusedFeedForward,
    feedforward_parameters,
    gelu,
    gelu_tanh,
)

DTYPES = [torch.float32, torch.float64]
ACTS = {"gelu": nn.GELU(), "gelu_tanh": nn.GELU(approximate="tanh"), "relu": nn.ReLU()}


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-14)


def randn(*shape, dtype=torch.float32, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).mul_(scale).to(dtype)


# ---------------------------------------------------------------- GELU


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_matches_pytorch(dtype):
    x = torch.cat([randn(1000, dtype=dtype, scale=4.0), torch.tensor([0.0, -30.0, 30.0],
                                                                     dtype=dtype)])
    torch.testing.assert_close(gelu(x), F.gelu(x), **tol(dtype))
    torch.testing.assert_close(gelu_tanh(x), F.gelu(x, approximate="tanh"), **tol(dtype))


def test_gelu_gradients_match_pytorch():
    x = randn(200, dtype=torch.float64, scale=3.0).requires_grad_()
    for ours, approximate in ((gelu, "none"), (gelu_tanh, "tanh")):
        (g_ours,) = torch.autograd.grad(ours(x).sum(), x)
        (g_torch,) = torch.autograd.grad(F.gelu(x, approximate=approximate).sum(), x)
        torch.testing.assert_close(g_ours, g_torch)


def test_tanh_approximation_is_close_but_not_equal():
    x = torch.linspace(-6, 6, 2001, dtype=torch.float64)
    gap = (gelu(x) - gelu_tanh(x)).abs().max().item()
    assert 1e-5 < gap < 1e-3


def test_gelu_limits_and_shape():
    x = torch.tensor([-50.0, 0.0, 50.0], dtype=torch.float64)
    torch.testing.assert_close(gelu(x), torch.tensor([0.0, 0.0, 50.0], dtype=torch.float64))
    assert gelu(torch.tensor(-0.75)) < 0  # GELU dips below zero, unlike ReLU
    assert gelu(randn(2, 3, 4)).shape == (2, 3, 4)


# ---------------------------------------------------------------- FeedForward


def sequential_copy(ffn: FeedForward, activation: str) -> nn.Sequential:
    """torch.nn.Sequential(Linear, activation, Linear) holding ffn's weights."""
    fc, proj = (nn.Linear(m.in_features, m.out_features, bias=m.bias is not None,
                          dtype=m.weight.dtype) for m in (ffn.fc, ffn.proj))
    fc.load_state_dict(ffn.fc.state_dict())
    proj.load_state_dict(ffn.proj.state_dict())
    return nn.Sequential(fc, ACTS[activation], proj)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", sorted(ACTS))
@pytest.mark.parametrize("bias", [True, False])
def test_feedforward_matches_sequential(dtype, activation, bias):
    torch.manual_seed(0)
    ffn = FeedForward(12, activation=activation, bias=bias).to(dtype).eval()
    assert ffn.fc.weight.shape == (48, 12) and ffn.proj.weight.shape == (12, 48)
    assert (ffn.fc.bias is None) == (not bias) and (ffn.proj.bias is None) == (not bias)
    x = randn(3, 5, 12, dtype=dtype).requires_grad_()
    ref_x = x.detach().clone().requires_grad_()
    seq = sequential_copy(ffn, activation)
    y, ref = ffn(x), seq(ref_x)
    torch.testing.assert_close(y, ref, **tol(dtype))
    y.square().sum().backward()
    ref.square().sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad, **tol(dtype))
    torch.testing.assert_close(ffn.fc.weight.grad, seq[0].weight.grad, **tol(dtype))


def test_hidden_size_given_explicitly():
    ffn = FeedForward(8, d_ff=20)
    assert ffn.fc.out_features == 20 and ffn.proj.in_features == 20


def test_feedforward_is_a_conv1d_of_kernel_size_one():
    torch.manual_seed(1)
    ffn = FeedForward(16, 40).eval()
    conv1 = nn.Conv1d(16, 40, kernel_size=1)
    conv2 = nn.Conv1d(40, 16, kernel_size=1)
    with torch.no_grad():
        conv1.weight.copy_(ffn.fc.weight[:, :, None])
        conv1.bias.copy_(ffn.fc.bias)
        conv2.weight.copy_(ffn.proj.weight[:, :, None])
        conv2.bias.copy_(ffn.proj.bias)
    x = randn(2, 9, 16)
    by_conv = conv2(F.gelu(conv1(x.transpose(1, 2)))).transpose(1, 2)  # Conv1d wants (B, C, T)
    torch.testing.assert_close(ffn(x), by_conv, rtol=1e-5, atol=1e-6)


def test_position_wise_each_token_alone():
    torch.manual_seed(2)
    ffn = FeedForward(8).eval()
    x = randn(2, 7, 8)
    whole = ffn(x)
    one_by_one = torch.stack([torch.stack([ffn(x[b, t]) for t in range(7)]) for b in range(2)])
    torch.testing.assert_close(whole, one_by_one)
    shuffled = torch.randperm(7)
    torch.testing.assert_close(ffn(x[:, shuffled]), whole[:, shuffled])


def test_dropout_only_while_training():
    torch.manual_seed(3)
    ffn = FeedForward(32, dropout=0.5)
    x = randn(4, 16, 32)
    ffn.eval()
    clean = ffn(x)
    torch.testing.assert_close(ffn(x), clean)
    ffn.train()
    noisy = ffn(x)
    dropped = noisy == 0
    assert 0.4 < dropped.float().mean() < 0.6
    torch.testing.assert_close(noisy[~dropped], 2 * clean[~dropped])


def test_matches_hugging_face_bert_and_gpt2_blocks():
    from transformers import BertConfig, GPT2Config
    from transformers.models.bert.modeling_bert import BertIntermediate, BertOutput
    from transformers.models.gpt2.modeling_gpt2 import GPT2MLP

    torch.manual_seed(4)
    cfg = BertConfig(hidden_size=16, intermediate_size=64, hidden_dropout_prob=0.0)
    inter, out = BertIntermediate(cfg).eval(), BertOutput(cfg).eval()
    ffn = FeedForward(16, 64).eval()
    ffn.fc.load_state_dict(inter.dense.state_dict())
    ffn.proj.load_state_dict(out.dense.state_dict())
    x = randn(2, 5, 16)
    # BertOutput also adds the residual and a LayerNorm (the block's job): compare its dense
    torch.testing.assert_close(ffn(x), out.dense(inter(x)), rtol=1e-5, atol=1e-6)

    g = GPT2Config(n_embd=16, resid_pdrop=0.0)
    mlp = GPT2MLP(64, g).eval()
    ffn = FeedForward(16, 64, activation="gelu_tanh").eval()
    with torch.no_grad():  # GPT-2's Conv1D stores (in, out): transpose into nn.Linear
        ffn.fc.weight.copy_(mlp.c_fc.weight.T)
        ffn.fc.bias.copy_(mlp.c_fc.bias)
        ffn.proj.weight.copy_(mlp.c_proj.weight.T)
        ffn.proj.bias.copy_(mlp.c_proj.bias)
    torch.testing.assert_close(ffn(x), mlp(x), rtol=1e-5, atol=1e-6)


def test_parameter_count():
    for d, h, bias in [(8, 32, True), (8, 32, False), (768, 3072, True), (5, 7, True)]:
        counted = sum(p.numel() for p in FeedForward(d, h, bias=bias).parameters())
        assert feedforward_parameters(d, h, bias) == counted


@pytest.mark.parametrize("make, message", [
    (lambda: FeedForward(8, activation="swish"), "activation"),
    (lambda: FeedForward(8, dropout=1.5), "dropout"),
    (lambda: FeedForward(0), "positive"),
    (lambda: feedforward_parameters(0, 4), "positive"),
    (lambda: FeedForward(8)(torch.zeros(2, 3, 6)), r"8 features.*\(2, 3, 6\)"),
    (lambda: FusedFeedForward(8)(torch.zeros(2, 3, 6)), r"8 features.*\(2, 3, 6\)"),
    (lambda: FusedFeedForward(8, activation="swish"), "activation"),
])
def test_bad_input_gets_a_clear_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("activation", list(ACTS))
@pytest.mark.parametrize("bias", [True, False])
def test_fused_feedforward_equals_the_definition(activation, bias):
    """PyTorch's activation kernels give our formulas' outputs and gradients (float64), with
    the same parameters; dropout draws the same mask from the same seed."""
    torch.manual_seed(0)
    ours = FeedForward(8, 24, dropout=0.25, activation=activation, bias=bias).double()
    fused = FusedFeedForward(8, 24, dropout=0.25, activation=activation, bias=bias).double()
    assert list(fused.state_dict()) == list(ours.state_dict())
    fused.load_state_dict(ours.state_dict())
    x = randn(2, 5, 8, dtype=torch.float64, scale=3.0)
    for train in (False, True):
        outs = []
        for module in (ours, fused):
            module.train(train).zero_grad()
            xg = x.clone().requires_grad_()
            torch.manual_seed(1)
            y = module(xg)
            (y * torch.linspace(-1, 2, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
            outs.append([y, xg.grad, *(p.grad for p in module.parameters())])
        for a, b in zip(*outs, strict=True):
            torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-13)
