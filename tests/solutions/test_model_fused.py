"""ModelConfig.fused: the models with PyTorch's fused LayerNorm and GELU kernels and the fused
self-attention (the default) compute what the from-definition modules of Chapters 3, 4 and 6
compute (fused=False), from the same state_dict: outputs and the gradients of every parameter,
in float64."""

from __future__ import annotations

import pytest
import torch

import solutions.attention as att
from solutions.attention import FusedMultiHeadAttention, MultiHeadAttention, causal_mask
from solutions.decoder import GPT, EncoderDecoder, LayerCache
from solutions.encoder import Encoder
from solutions.feedforward import FeedForward, FusedFeedForward
from solutions.model import ModelConfig
from solutions.normalization import FusedLayerNorm, LayerNorm
from solutions.residual import Block

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
    for name in ("attn", "cross_attn"):
        assert type(getattr(fused, name)) is FusedMultiHeadAttention
        assert type(getattr(plain, name)) is MultiHeadAttention
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


# ---------------------------------------------------------------------------------------------
# FusedMultiHeadAttention: one product for q, k, v; is_causal=True for a causal layer, no mask
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def sdpa_calls(monkeypatch):
    """The keyword arguments of every F.scaled_dot_product_attention call."""
    calls, real = [], att.F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(att.F, "scaled_dot_product_attention", spy)
    return calls


def _attention_pair(bias=True):
    torch.manual_seed(0)
    fused = FusedMultiHeadAttention(16, 4, bias=bias).double()
    plain = MultiHeadAttention(16, 4, bias=bias).double()
    plain.load_state_dict(fused.state_dict())
    assert list(fused.state_dict()) == list(plain.state_dict())
    return fused, plain


def _padding(T):
    return att.padding_mask(torch.tensor([[1] * T, [1] * (T - 2) + [0, 0]]))  # (2, 1, 1, T)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", ["causal", "none", "padding", "causal&padding", "not causal",
                                  "cross", "cross+mask", "need_weights"])
def test_attention_twin(case, bias, sdpa_calls):
    fused, plain = _attention_pair(bias)
    g = torch.Generator().manual_seed(2)
    T = 6
    x = torch.randn(2, T, 16, generator=g, dtype=torch.float64)
    context = torch.randn(2, 4, 16, generator=g, dtype=torch.float64)
    kwargs = {"causal": dict(causal=True), "none": {},
              "padding": dict(mask=_padding(T)),
              "causal&padding": dict(mask=_padding(T), causal=True),
              "not causal": dict(mask=causal_mask(T).transpose(-2, -1)),
              "cross": dict(context=context), "cross+mask": dict(context=context,
                                                                 mask=_padding(4)),
              "need_weights": dict(causal=True, need_weights=True)}[case]
    results = []
    for module in (fused, plain):
        module.zero_grad()
        y, weights = module(x, **kwargs)
        results.append((y, weights))
        (y * _weights(y.shape)).sum().backward()
    (y_f, w_f), (y_p, w_p) = results
    torch.testing.assert_close(y_f, y_p, rtol=1e-12, atol=1e-12)
    assert (w_f is None) == (w_p is None) == (case != "need_weights")
    if w_f is not None:
        torch.testing.assert_close(w_f, w_p, rtol=1e-12, atol=1e-12)
    for pf, pp in zip(fused.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(pf.grad, pp.grad, rtol=1e-10, atol=1e-12)
    if case == "need_weights":                        # both take the explicit path
        assert sdpa_calls == []
    else:                                             # the twin's call, then the plain one's
        assert [c.get("is_causal", False) for c in sdpa_calls] == [case == "causal", False]
        assert (sdpa_calls[0].get("attn_mask") is None) == (case in ("causal", "none", "cross"))


def test_attention_twin_checks_its_input_like_the_definition():
    fused, plain = _attention_pair()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    for bad in (dict(x=torch.randn(2, 5, 8, dtype=torch.float64)),
                dict(x=x, mask=torch.ones(5, 5, dtype=torch.bool)),
                dict(x=x, mask=causal_mask(5).float()),
                dict(x=x, mask=causal_mask(4))):
        with pytest.raises(Exception) as plain_error:
            plain(**bad)
        with pytest.raises(type(plain_error.value), match="mask|features|x must"):
            fused(**bad)


@pytest.mark.parametrize("norm_first", [True, False])
def test_causal_block_without_padding_takes_the_causal_kernel(norm_first, sdpa_calls):
    fused, plain = _pair(lambda c: Block(c, causal=True), **SMALL, norm_first=norm_first)
    x = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _assert_same(fused, plain, lambda block: (block(x) * _weights((2, 5, 16))).sum())
    assert [c.get("is_causal", False) for c in sdpa_calls] == [True, False]


def test_gpt_takes_the_causal_kernel_in_every_layer(sdpa_calls):
    fused, plain = _pair(GPT, vocab_size=30, block_size=12, n_layer=3, **SMALL)
    idx = torch.randint(30, (2, 9), generator=torch.Generator().manual_seed(3))
    _assert_same(fused, plain, lambda model: model(idx, idx.roll(-1, 1))[1])
    assert [c.get("is_causal", False) for c in sdpa_calls] == [True] * 3 + [False] * 3


@pytest.mark.parametrize("chunks", [[6], [3, 1, 1, 1], [2, 4], [1] * 6])
def test_attention_with_a_cache_equals_causal_attention_on_the_whole_sequence(chunks):
    """Both twins, fed a prompt and then the next tokens with cache=, give what causal
    attention over the whole sequence gives, which is what chapter 3's causal_mask gives."""
    fused, plain = _attention_pair()
    x = torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        full = plain(x, causal=True)[0]
        torch.testing.assert_close(full, plain(x, mask=causal_mask(6))[0], rtol=0, atol=0)
        for module in (fused, plain):
            cache, at, pieces = LayerCache(), 0, []
            for n in chunks:
                pieces.append(module(x[:, at:at + n], causal=True, cache=cache)[0])
                at += n
            torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-12, atol=1e-12)
            assert cache.length == 6


def test_causal_mask_after_cached_positions():
    assert causal_mask(2, past=3).tolist() == [[[[True] * 4 + [False], [True] * 5]]]
    with pytest.raises(ValueError, match="past"):
        causal_mask(2, past=-1)
