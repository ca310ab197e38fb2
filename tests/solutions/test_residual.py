"""The residual connection and the transformer block against independent oracles:
torch.nn.TransformerEncoderLayer / TransformerDecoderLayer with copied weights, and properties
(identity path, masks, dropout on the branch) that hold whatever the weights."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from solutions.attention import padding_mask
from solutions.decoder import LayerCache
from solutions.encoder import EncoderLayer
from solutions.feedforward import FeedForward
from solutions.model import ModelConfig
from solutions.pretrained import load_torch_attention
from solutions.residual import Block, Residual, gradient_norms

DTYPES = [torch.float32, torch.float64]


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-10)


def randn(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def lengths_mask(lengths, T):
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T), True = real


def randomize(module, seed=0):
    """Random weights everywhere (LayerNorm scale and shift too), so nothing is an identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return module


def torch_encoder_layer(norm_first, activation="gelu", C=16, H=4, d_ff=40, dtype=torch.float32,
                        bias=True, seed=0):
    torch.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(C, H, d_ff, dropout=0.0, activation=activation,
                                       batch_first=True, norm_first=norm_first, bias=bias,
                                       layer_norm_eps=1e-6)
    return randomize(layer, seed).to(dtype)


# ---------------------------------------------------------------------------- ModelConfig


def test_config_defaults_and_d_ff():
    config = ModelConfig()
    assert (config.n_embd, config.n_head, config.d_ff, config.norm_first) == (384, 12, 1536, True)
    assert ModelConfig(n_embd=32, n_head=4).d_ff == 128
    assert ModelConfig(n_embd=32, n_head=4, d_ff=50).d_ff == 50


@pytest.mark.parametrize("kwargs, words", [
    (dict(n_embd=30, n_head=4), "divisible"),
    (dict(n_layer=0), "n_layer"),
    (dict(dropout=1.0), "dropout"),
    (dict(activation="swish"), "activation"),
    (dict(eps=0.0), "eps"),
    (dict(d_ff=0), "d_ff"),
    (dict(vocab_size=10, pad_token_id=10), "pad_token_id"),
])
def test_config_rejects_bad_values(kwargs, words):
    with pytest.raises(ValueError, match=words):
        ModelConfig(**kwargs)


# ---------------------------------------------------------------------------- Residual


def test_residual_adds_the_input_to_the_branch():
    lin = randomize(nn.Linear(8, 8))
    x = randn(2, 5, 8)
    torch.testing.assert_close(Residual()(x, lin), x + lin(x))


def test_residual_takes_any_callable_and_holds_no_parameters():
    residual = Residual(dropout=0.1)
    x = randn(3, 4)
    torch.testing.assert_close(residual.eval()(x, lambda h: 2.0 * h + 1.0), x + 2.0 * x + 1.0)
    assert list(residual.parameters()) == [] and list(residual.state_dict()) == []


def test_residual_gradient_has_the_identity_path():
    # a branch that outputs zero still lets the full gradient through: d(out)/dx = I + dF/dx
    lin = nn.Linear(6, 6)
    nn.init.zeros_(lin.weight)
    nn.init.zeros_(lin.bias)
    x = randn(4, 6).requires_grad_()
    g = randn(4, 6, seed=1)
    Residual()(x, lin).backward(g)
    torch.testing.assert_close(x.grad, g)


def test_residual_dropout_acts_on_the_branch_only():
    class Ones(nn.Module):
        def forward(self, x):
            return torch.ones_like(x)

    torch.manual_seed(0)
    block = Residual(dropout=0.5).train()
    x = torch.randint(-5, 5, (64, 64)).float()            # whole numbers: exact sums
    delta = block(x, Ones()) - x
    values = set(delta.flatten().tolist())
    assert values == {0.0, 2.0}  # the branch dropped or scaled by 1 / (1 - p), never x itself
    assert 0.3 < (delta == 0).float().mean() < 0.7
    torch.testing.assert_close(block.eval()(x, Ones()), x + 1.0)  # no dropout at evaluation


def test_residual_rejects_bad_input():
    with pytest.raises(ValueError, match="dropout"):
        Residual(dropout=1.5)
    with pytest.raises(ValueError, match="shaped like its input"):
        Residual()(randn(2, 4), nn.Linear(4, 3))
    with pytest.raises(ValueError, match="shaped like its input"):
        Residual()(randn(2, 4), lambda h: (h, None))          # a pair, as attention returns


# ---------------------------------------------------------------------------- Block vs torch


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["gelu", "relu"])
@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_layer_from_torch_matches_forward_and_backward(norm_first, activation, dtype):
    layer = torch_encoder_layer(norm_first, activation, dtype=dtype)
    ours = EncoderLayer.from_torch(layer)
    assert ours.norm_first is norm_first and ours.ln_1.eps == 1e-6
    x = randn(3, 7, 16, dtype=dtype)
    am = lengths_mask([7, 4, 1], 7)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    expected = layer(x1, src_key_padding_mask=~am)        # torch: True = ignore
    out = ours(x2, mask=padding_mask(am))                 # ours: True = may attend
    assert out.shape == (3, 7, 16) and out.dtype == dtype
    torch.testing.assert_close(out, expected, **tol(dtype))
    g = randn(3, 7, 16, dtype=dtype, seed=5)
    expected.backward(g)
    out.backward(g)
    torch.testing.assert_close(x2.grad, x1.grad, **tol(dtype))
    torch.testing.assert_close(ours.mlp.fc.weight.grad, layer.linear1.weight.grad, **tol(dtype))
    torch.testing.assert_close(ours.ln_1.weight.grad, layer.norm1.weight.grad, **tol(dtype))


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_layer_from_torch_in_eval_mode_and_without_bias(norm_first):
    layer = torch_encoder_layer(norm_first, bias=False).eval()
    ours = EncoderLayer.from_torch(layer)
    assert not ours.training and ours.attn.query.bias is None
    x = randn(2, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), layer(x), **tol(torch.float32))


def test_encoder_layer_from_torch_rejects_other_layouts():
    with pytest.raises(ValueError, match="batch_first"):
        EncoderLayer.from_torch(nn.TransformerEncoderLayer(16, 4, 32, batch_first=False))
    with pytest.raises(TypeError, match="TransformerEncoderLayer"):
        EncoderLayer.from_torch(nn.Linear(4, 4))
    with pytest.raises(ValueError, match="activation"):
        EncoderLayer.from_torch(nn.TransformerEncoderLayer(16, 4, 32, batch_first=True,
                                                           activation=torch.tanh))


@pytest.mark.parametrize("norm_first", [True, False])
def test_causal_block_matches_torch_with_a_causal_mask(norm_first):
    layer = torch_encoder_layer(norm_first)
    config = ModelConfig(n_embd=16, n_head=4, d_ff=40, norm_first=norm_first, eps=1e-6)
    block = Block(config, causal=True)
    block.load_state_dict(EncoderLayer.from_torch(layer).state_dict())
    x = randn(2, 6, 16)
    future = torch.ones(6, 6, dtype=torch.bool).triu(1)   # torch: True = may not attend
    torch.testing.assert_close(block(x), layer(x, src_mask=future), **tol(torch.float32))
    am = lengths_mask([6, 3], 6)                          # causal and padding together
    torch.testing.assert_close(block(x, mask=padding_mask(am)),
                               layer(x, src_mask=future, src_key_padding_mask=~am)[:, :],
                               **tol(torch.float32))


def decoder_block_from_torch(layer: nn.TransformerDecoderLayer) -> Block:
    C = layer.self_attn.embed_dim
    config = ModelConfig(n_embd=C, n_head=layer.self_attn.num_heads,
                         d_ff=layer.linear1.out_features, norm_first=layer.norm_first,
                         eps=layer.norm1.eps)
    block = Block(config, causal=True, cross=True)
    load_torch_attention(block.attn, layer.self_attn)
    load_torch_attention(block.cross_attn, layer.multihead_attn)
    pairs = [(block.mlp.fc, layer.linear1), (block.mlp.proj, layer.linear2),
             (block.ln_1, layer.norm1), (block.ln_cross, layer.norm2), (block.ln_2, layer.norm3)]
    with torch.no_grad():
        for ours, theirs in pairs:
            ours.weight.copy_(theirs.weight)
            ours.bias.copy_(theirs.bias)
    return block


@pytest.mark.parametrize("norm_first", [True, False])
def test_cross_block_matches_torch_decoder_layer(norm_first):
    torch.manual_seed(0)
    layer = randomize(nn.TransformerDecoderLayer(16, 4, 40, dropout=0.0, activation="gelu",
                                                 batch_first=True, norm_first=norm_first))
    block = decoder_block_from_torch(layer)
    assert [name for name, _ in block.named_children()][:5] == [
        "attn", "ln_1", "cross_attn", "ln_cross", "mlp"]
    x, memory = randn(2, 5, 16), randn(2, 8, 16, seed=1)
    am = lengths_mask([8, 3], 8)
    future = torch.ones(5, 5, dtype=torch.bool).triu(1)
    expected = layer(x, memory, tgt_mask=future, memory_key_padding_mask=~am)
    out = block(x, context=memory, context_mask=padding_mask(am))
    torch.testing.assert_close(out, expected, **tol(torch.float32))


# ---------------------------------------------------------------------------- Block properties


@pytest.mark.parametrize("norm_first", [True, False])
def test_padding_tokens_do_not_change_real_tokens(norm_first):
    config = ModelConfig(n_embd=16, n_head=4, norm_first=norm_first)
    block = randomize(EncoderLayer(config)).eval()
    x = randn(2, 6, 16)
    am = lengths_mask([6, 4], 6)
    out = block(x, mask=padding_mask(am))
    x_other = x.clone()
    x_other[1, 4:] = randn(2, 16, seed=9)                 # change only the padding
    out_other = block(x_other, mask=padding_mask(am))
    torch.testing.assert_close(out[1, :4], out_other[1, :4])
    alone = block(x[1:, :4])                              # the same sentence without padding
    torch.testing.assert_close(out[1:, :4], alone, **tol(torch.float32))
    assert not torch.allclose(out[1, :4], block(x[1:2])[0, :4])  # the mask really matters


@pytest.mark.parametrize("norm_first", [True, False])
def test_causal_block_does_not_look_ahead(norm_first):
    config = ModelConfig(n_embd=16, n_head=4, norm_first=norm_first)
    block = randomize(Block(config, causal=True))
    x = randn(1, 7, 16)
    y = x.clone()
    y[:, 4:] = randn(1, 3, 16, seed=3)
    torch.testing.assert_close(block(x)[:, :4], block(y)[:, :4])
    assert not torch.allclose(block(x)[:, 4:], block(y)[:, 4:])
    bidirectional = randomize(Block(config, causal=False))
    assert not torch.allclose(bidirectional(x)[:, :4], bidirectional(y)[:, :4])


def test_pre_ln_keeps_the_identity_path_post_ln_normalises_it():
    # with both branches switched off, pre-LN passes x through unchanged; post-LN normalises it
    x = randn(2, 5, 16) * 3 + 1
    for norm_first in (True, False):
        block = Block(ModelConfig(n_embd=16, n_head=4, norm_first=norm_first))
        with torch.no_grad():
            for linear in (block.attn.out, block.mlp.proj):
                linear.weight.zero_()
                linear.bias.zero_()
        expected = x if norm_first else nn.functional.layer_norm(x, (16,), eps=1e-5)
        torch.testing.assert_close(block(x), expected)


def test_block_dropout_acts_on_branches_only():
    config = ModelConfig(n_embd=16, n_head=4, dropout=0.5)
    block = randomize(Block(config)).train()
    with torch.no_grad():
        for linear in (block.attn.out, block.mlp.proj):   # branches output zero
            linear.weight.zero_()
            linear.bias.zero_()
    x = randn(2, 5, 16)
    torch.testing.assert_close(block(x), x)               # skip path never dropped
    assert block.res_attn.dropout.p == 0.5 and block.attn.dropout == 0.5
    assert block.res_mlp.dropout.p == 0.0 and block.mlp.dropout == 0.5  # FeedForward's own


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_training_mode_drops_each_branch_once(norm_first):
    # the Block's Residuals draw the same dropout masks, in the same order, as the sums written
    # out: dropout on the attention branches, FeedForward's own dropout on the last one
    config = ModelConfig(n_embd=16, n_head=4, dropout=0.3, norm_first=norm_first)
    block = randomize(Block(config, causal=True, cross=True)).train()
    x, ctx = randn(2, 5, 16), randn(2, 3, 16, seed=1)
    drop = nn.functional.dropout

    def by_hand(x):
        def attn(h):
            return block.attn(h, causal=True)[0]

        def cross(h):
            return block.cross_attn(h, ctx)[0]

        if norm_first:
            x = x + drop(attn(block.ln_1(x)), 0.3)
            x = x + drop(cross(block.ln_cross(x)), 0.3)
            return x + block.mlp(block.ln_2(x))
        x = block.ln_1(x + drop(attn(x), 0.3))
        x = block.ln_cross(x + drop(cross(x), 0.3))
        return block.ln_2(x + block.mlp(x))

    torch.manual_seed(7)
    expected = by_hand(x)
    torch.manual_seed(7)
    torch.testing.assert_close(block(x, context=ctx), expected, rtol=0, atol=0)


def test_block_submodules_and_parameter_count():
    config = ModelConfig(n_embd=16, n_head=4, d_ff=40)
    block = Block(config)
    assert [name for name, _ in block.named_children()] == ["attn", "ln_1", "mlp", "ln_2",
                                                             "res_attn", "res_mlp"]
    assert [name for name, _ in block.named_parameters() if "res_" in name] == []
    torch_layer = nn.TransformerEncoderLayer(16, 4, 40, batch_first=True)
    assert sum(p.numel() for p in block.parameters()) == sum(
        p.numel() for p in torch_layer.parameters())


def test_block_rejects_bad_masks_and_context():
    block = Block(ModelConfig(n_embd=16, n_head=4))
    x = randn(2, 5, 16)
    with pytest.raises(ValueError, match="padding_mask"):
        block(x, mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        block(x, mask=torch.ones(2, 1, 1, 5))
    with pytest.raises(ValueError, match="cross=False"):
        block(x, context=x)
    with pytest.raises(ValueError, match="context"):
        Block(ModelConfig(n_embd=16, n_head=4), cross=True)(x)
    with pytest.raises(TypeError, match="ModelConfig"):
        Block(dict(n_embd=16))
    with pytest.raises(ValueError, match="causal"):              # a cache serves a decoder
        block(x, cache=LayerCache())


# ---------------------------------------------------------------------------- gradient_norms


@pytest.mark.parametrize("skip", [False, True])
def test_gradient_norms_match_a_plain_backward_pass(skip):
    torch.manual_seed(0)
    layers = [nn.Sequential(nn.Linear(6, 6), nn.Tanh()) for _ in range(3)] + [nn.Tanh()]
    layers = [f.double() for f in layers]
    x, g = randn(5, 6, dtype=torch.float64), randn(5, 6, dtype=torch.float64, seed=1)
    got = gradient_norms(layers, x, g, skip=skip)
    h = x
    for f in layers:
        h = h + f(h) if skip else f(h)
    h.backward(g)
    expected = [math.sqrt(sum(float(p.grad.pow(2).sum()) for p in f.parameters()))
                for f in layers]
    assert got == pytest.approx(expected, rel=1e-12) and got[-1] == 0.0
    assert all(p.grad is not None for p in layers[0].parameters())  # only the oracle's .grad


def test_gradient_norms_vanish_without_skips_and_not_with_them():
    torch.manual_seed(0)
    layers = [FeedForward(16, 64).double() for _ in range(16)]
    x, g = randn(32, 16, dtype=torch.float64), randn(32, 16, dtype=torch.float64, seed=1)
    plain = gradient_norms(layers, x, g)
    residual = gradient_norms(layers, x, g, skip=True)
    assert plain[0] < 1e-6 * plain[-1]
    assert residual[0] > 0.5 * residual[-1]


def test_gradient_norms_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        gradient_norms([nn.Linear(4, 4)], randn(2, 4), randn(2, 5))
    with pytest.raises(TypeError, match="nn.Module"):
        gradient_norms([], randn(2, 4), randn(2, 4))
