"""ModelConfig.fused: the models with PyTorch's fused LayerNorm and GELU kernels (the default)
compute what the from-definition modules of Chapters 4 and 6 compute (fused=False), from the
same state_dict: outputs and the gradients of every parameter, in float64."""

from __future__ import annotations

import pytest
import torch

from solutions.feedforward import FeedForward, FusedFeedForward
from solutions.model import GPT, Block, Encoder, EncoderDecoder, ModelConfig
from solutions.normalization import FusedLayerNorm, LayerNorm

SMALL = dict(n_embd=16, n_head=4, d_ff=40, dropout=0.0)


def _pair(make, **config):
    """(fused model, from-definition model) with the same random weights, in float64."""
    torch.manual_seed(0)
    fused = make(ModelConfig(**config, fused=True)).double()
    plain = make(ModelConfig(**config, fused=False)).double()
    assert list(fused.state_dict()) == list(plain.state_dict())
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():                                 # LayerNorm gains and shifts too
        for p in fused.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    plain.load_state_dict(fused.state_dict())
    return fused, plain


def _assert_same(fused, plain, run):
    """run(model) -> a scalar; equal results and equal gradients of every parameter."""
    results = []
    for model in (fused, plain):
        model.zero_grad()
        out = run(model)
        out.backward()
        results.append((out.detach(), [p.grad for p in model.parameters()]))
    (a, grads_a), (b, grads_b) = results
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-12)


def _weights(shape):
    return torch.linspace(-1, 2, torch.Size(shape).numel(), dtype=torch.float64).view(shape)


def test_the_switch_picks_the_modules():
    fused = Block(ModelConfig(**SMALL), cross=True)
    plain = Block(ModelConfig(**SMALL, fused=False), cross=True)
    for name in ("ln_1", "ln_cross", "ln_2"):
        assert type(getattr(fused, name)) is FusedLayerNorm
        assert type(getattr(plain, name)) is LayerNorm
    assert type(fused.mlp) is FusedFeedForward and type(plain.mlp) is FeedForward
    assert ModelConfig().fused is True
    with pytest.raises(TypeError, match="fused"):
        ModelConfig(fused="yes")


@pytest.mark.parametrize("kind", [
    dict(norm_first=True), dict(norm_first=False), dict(norm_first=True, causal=True),
    dict(norm_first=False, causal=True, cross=True), dict(norm_first=True, cross=True,
                                                          activation="gelu_tanh")])
def test_block(kind):
    kind = dict(kind)
    causal, cross = kind.pop("causal", False), kind.pop("cross", False)
    fused, plain = _pair(lambda c: Block(c, causal=causal, cross=cross), **SMALL, **kind)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, 16, generator=g, dtype=torch.float64)
    context = torch.randn(2, 7, 16, generator=g, dtype=torch.float64) if cross else None
    mask = torch.tensor([[1] * 5, [1, 1, 1, 0, 0]], dtype=torch.bool)[:, None, None, :]
    cmask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3], dtype=torch.bool)[:, None, None, :]

    def run(block):
        y = block(x, mask=mask, context=context, context_mask=cmask if cross else None)
        return (y * _weights(y.shape)).sum()

    _assert_same(fused, plain, run)


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "relu"])
def test_gpt(activation):
    fused, plain = _pair(GPT, vocab_size=30, block_size=12, n_layer=2, activation=activation,
                         **SMALL)
    idx = torch.randint(30, (3, 12), generator=torch.Generator().manual_seed(3))
    _assert_same(fused, plain, lambda model: model(idx, idx.roll(-1, 1))[1])


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder(norm_first):
    fused, plain = _pair(Encoder, vocab_size=30, block_size=12, n_layer=2,
                         norm_first=norm_first, eps=1e-12, **SMALL)
    ids = torch.randint(1, 30, (2, 6), generator=torch.Generator().manual_seed(4))
    attention_mask = torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]])

    def run(model):
        h = model(ids, attention_mask, torch.tensor([[0, 0, 0, 1, 1, 1]] * 2))
        return (model.pooler(h) * _weights((2, 16))).sum() + (h * _weights(h.shape)).sum()

    _assert_same(fused, plain, run)


def test_encoder_decoder():
    fused, plain = _pair(EncoderDecoder, vocab_size=30, block_size=12, n_layer=1, **SMALL)
    g = torch.Generator().manual_seed(5)
    src, tgt = torch.randint(30, (2, 7), generator=g), torch.randint(30, (2, 5), generator=g)
    src_mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    _assert_same(fused, plain,
                 lambda model: model(src, tgt, tgt.roll(-1, 1), src_mask=src_mask)[1])


def test_checkpoints_move_between_the_two():
    """A fused model's state_dict loads into a from-definition one and back (strict)."""
    fused = GPT(ModelConfig(vocab_size=30, block_size=12, n_layer=1, **SMALL))
    plain = GPT(ModelConfig(vocab_size=30, block_size=12, n_layer=1, **SMALL, fused=False))
    plain.load_state_dict(fused.state_dict())
    fused.load_state_dict(plain.state_dict())
