"""The decoders of solutions.decoder against independent oracles: Hugging Face's GPT-2 (random
weights, no download) for GPT, PyTorch's nn.Transformer decoder layer for the decoder block,
and the defining properties (causality, teacher forcing, tied head) otherwise."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import transformers

from course.datasets import families
from solutions.decoder import GPT, EncoderDecoder, KVCache
from solutions.model import ModelConfig
from solutions.pretrained import CheckpointError, gpt2_tensors, load_gpt2

HF_SIZES = [
    dict(n_layer=2, n_head=4, n_embd=32, vocab_size=97, n_positions=64),
    dict(n_layer=3, n_head=2, n_embd=48, vocab_size=50, n_positions=40, n_inner=100),
    dict(n_layer=1, n_head=1, n_embd=16, vocab_size=11, n_positions=8, layer_norm_epsilon=1e-6),
]


def hf_gpt2(seed=0, **sizes):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(**sizes, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config).eval()


def small(**kw) -> ModelConfig:
    base = dict(vocab_size=23, block_size=16, n_layer=2, n_head=2, n_embd=16)
    return ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("sizes", HF_SIZES, ids=["2x32", "3x48-inner100", "1x16"])
def test_from_hf_gives_the_same_logits(sizes):
    hf = hf_gpt2(**sizes)
    gpt = GPT.from_hf(hf).eval()
    idx = torch.randint(sizes["vocab_size"], (3, sizes["n_positions"]),
                        generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = hf(idx).logits
        ours, loss = gpt(idx)
    assert loss is None
    assert (ours - theirs).abs().max() < 1e-5
    assert gpt.config.activation == "gelu_tanh" and gpt.config.norm_first


def test_from_hf_loss_matches_hf():
    hf = hf_gpt2(**HF_SIZES[0])
    gpt = GPT.from_hf(hf).eval()
    idx = torch.randint(97, (2, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        theirs = hf(idx, labels=idx).loss                 # HF shifts the labels itself
        _, ours = gpt(idx[:, :-1], idx[:, 1:])
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_load_gpt2_rejects_a_mismatched_checkpoint():
    hf = hf_gpt2(**HF_SIZES[0])
    gpt = GPT(small(vocab_size=97, block_size=64, n_embd=32, n_head=4, n_layer=3))
    with pytest.raises(CheckpointError, match="h.2"):
        load_gpt2(gpt, hf.state_dict())                   # a layer too many
    tensors = gpt2_tensors(hf.state_dict())
    assert tensors["transformer.h.0.attn.c_attn.weight:q"].shape == (32, 32)
    assert tensors["transformer.h.0.mlp.c_fc.weight"].shape == (128, 32)  # (out, in)


def test_lm_head_is_tied_to_the_token_table():
    gpt = GPT(small())
    assert gpt.lm_head.weight is gpt.wte.weight
    n_unique = sum(p.numel() for p in gpt.parameters())
    assert n_unique == sum(p.numel() for n, p in gpt.named_parameters() if n != "lm_head.weight")


def test_causal_no_future_token_changes_the_past():
    torch.manual_seed(0)
    gpt = GPT(small()).eval()
    idx = torch.randint(23, (2, 10))
    changed = idx.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 23
    with torch.no_grad():
        a, _ = gpt(idx)
        b, _ = gpt(changed)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6)
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_teacher_forcing_loss_is_cross_entropy_of_shifted_targets():
    torch.manual_seed(0)
    gpt = GPT(small()).eval()
    tokens = torch.randint(23, (3, 12))
    x, y = tokens[:, :-1], tokens[:, 1:]                  # predict token t+1 from tokens <= t
    logits, loss = gpt(x, y)
    assert torch.allclose(loss, F.cross_entropy(logits.reshape(-1, 23), y.reshape(-1)))
    # one forward pass equals T separate predictions from each prefix
    for t in range(1, x.size(1) + 1):
        prefix_logits, _ = gpt(x[:, :t])
        assert torch.allclose(prefix_logits[:, -1], logits[:, t - 1], atol=1e-5)


def test_ignore_index_skips_padding():
    torch.manual_seed(0)
    gpt = GPT(small())
    x = torch.randint(23, (2, 8))
    y = torch.randint(23, (2, 8))
    y_pad = y.clone()
    y_pad[1, 5:] = -100
    logits, loss = gpt(x, y_pad)
    keep = y_pad != -100
    assert torch.allclose(loss, F.cross_entropy(logits[keep], y[keep]))
    y_pad[1, 5:] = 0
    _, loss0 = gpt(x, y_pad, ignore_index=0)              # another ignore index
    keep = y_pad != 0
    assert torch.allclose(loss0, F.cross_entropy(logits[keep], y_pad[keep]))


def test_gpt_errors():
    gpt = GPT(small())
    with pytest.raises(ValueError, match="block_size"):
        gpt(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids"):
        gpt(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="targets"):
        gpt(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(RuntimeError, match="eval"):
        gpt.train()(torch.zeros(1, 4, dtype=torch.long), cache=gpt.new_cache())


@pytest.mark.parametrize("norm_first", [True, False])
def test_cached_forward_equals_full_forward(norm_first):
    torch.manual_seed(0)
    gpt = GPT(small(norm_first=norm_first, n_layer=3)).eval()
    idx = torch.randint(23, (2, 16))
    cache = gpt.new_cache()
    with torch.no_grad():
        full, _ = gpt(idx)
        steps = [gpt(idx[:, :5], cache=cache)[0]]         # prefill, then one token at a time
        steps += [gpt(idx[:, t:t + 1], cache=cache)[0] for t in range(5, 16)]
    assert cache.length == 16
    assert (torch.cat(steps, dim=1) - full).abs().max() < 1e-5


def test_kv_cache_reorder_and_errors():
    cache = KVCache(2)
    k = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 2, 4, 5)
    cache[0].update(k, k)
    cache.reorder(torch.tensor([2, 2, 0]))
    assert cache[0].k[:, 0, 0, 0].tolist() == [2.0, 2.0, 0.0]
    assert cache[1].k is None and cache.length == 4
    with pytest.raises(ValueError):
        KVCache(0)


# ---------------------------------------------------------------- the decoder block and the
# encoder-decoder


def test_cached_decoder_block_matches_torch_decoder_layer():
    """Our causal cross-attention Block, run token by token with a cache, equals
    nn.TransformerDecoderLayer (pre-LN) run on the whole target with a causal mask."""
    torch.manual_seed(0)
    C, H = 16, 4
    layer = torch.nn.TransformerDecoderLayer(C, H, 64, dropout=0.0, batch_first=True,
                                             norm_first=True, activation="gelu").eval()
    model = EncoderDecoder(small(n_layer=1, n_embd=C, n_head=H)).eval()
    block = model.decoder[0]
    from solutions.pretrained import load_torch_attention

    load_torch_attention(block.attn, layer.self_attn)
    load_torch_attention(block.cross_attn, layer.multihead_attn)
    with torch.no_grad():
        for ours, theirs in [(block.mlp.fc, layer.linear1), (block.mlp.proj, layer.linear2),
                             (block.ln_1, layer.norm1), (block.ln_cross, layer.norm2),
                             (block.ln_2, layer.norm3)]:
            ours.weight.copy_(theirs.weight)
            ours.bias.copy_(theirs.bias)
    x, memory = torch.randn(2, 7, C), torch.randn(2, 5, C)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(7)
    with torch.no_grad():
        expected = layer(x, memory, tgt_mask=mask, tgt_is_causal=True)
        full = block(x, context=memory)
        cache = KVCache(1)
        steps = torch.cat([block(x[:, t:t + 1], context=memory, cache=cache[0])
                           for t in range(7)], dim=1)
    assert (full - expected).abs().max() < 1e-5
    assert (steps - expected).abs().max() < 1e-5


def test_encoder_decoder_shapes_padding_and_teacher_forcing():
    torch.manual_seed(0)
    model = EncoderDecoder(small()).eval()
    src = torch.randint(1, 23, (2, 9))
    src_mask = torch.ones(2, 9, dtype=torch.bool)
    src_mask[1, 6:] = False
    tgt = torch.randint(23, (2, 7))
    logits, loss = model(src, tgt[:, :-1], tgt[:, 1:], src_mask)
    assert logits.shape == (2, 6, 23) and loss.ndim == 0
    # padding in the source changes nothing for the padded sequence
    src2 = src.clone()
    src2[1, 6:] = 0
    with torch.no_grad():
        a, _ = model(src, tgt, src_mask=src_mask)
        b, _ = model(src2, tgt, src_mask=src_mask)
    assert torch.allclose(a, b, atol=1e-6)
    # the decoder is causal, and reads the source through cross-attention
    tgt2 = tgt.clone()
    tgt2[:, 4:] = (tgt2[:, 4:] + 1) % 23
    src3 = src.clone()
    src3[:, 0] = (src3[:, 0] + 1) % 23
    with torch.no_grad():
        c, _ = model(src, tgt2, src_mask=src_mask)
        d, _ = model(src3, tgt, src_mask=src_mask)
    assert torch.allclose(a[:, :4], c[:, :4], atol=1e-6)
    assert not torch.allclose(a[:, :1], d[:, :1])
    assert model.lm_head.weight is model.embed.weight


def test_source_conditioned_decoder_with_cache():
    torch.manual_seed(0)
    model = EncoderDecoder(small(n_layer=2)).eval()
    src, tgt = torch.randint(23, (3, 8)), torch.randint(23, (3, 6))
    dec = model.conditioned(src)
    cache = dec.new_cache()
    with torch.no_grad():
        full, _ = model(src, tgt)
        steps = torch.cat([dec(tgt[:, t:t + 1], cache=cache)[0] for t in range(6)], dim=1)
    assert (steps - full).abs().max() < 1e-5
    with pytest.raises(ValueError, match="rows"):
        dec(tgt[:2])


# ---------------------------------------------------------------- the families' sizes


DECODER_FAMILIES = families.names("decoder") + families.names("encoder-decoder")


@pytest.mark.parametrize("name", DECODER_FAMILIES)
def test_family_parameter_count_matches_transformers(name):
    """The counter, from the shipped configuration alone, equals the number of parameters of
    the bare model transformers builds from it (on the meta device: no memory, no download)."""
    record = families.load(name)
    config = dict(record["config"])
    model_type = config.pop("model_type")
    try:
        hf_config = transformers.AutoConfig.for_model(model_type, **config)
    except ValueError:
        pytest.skip(f"this transformers version no longer has {model_type}")
    with torch.device("meta"):
        model = transformers.AutoModel.from_config(hf_config)
    expected = sum(p.numel() for p in model.parameters())
    assert families.parameter_count(record["config"])["total"] == expected


def test_our_gpt_has_gpt2s_parameter_count():
    hf_config = dict(model_type="gpt2", vocab_size=101, n_positions=32, n_embd=48, n_layer=3,
                     n_head=4, n_inner=None)
    ours = GPT(ModelConfig(vocab_size=101, block_size=32, n_embd=48, n_layer=3, n_head=4))
    assert sum(p.numel() for p in ours.parameters()) == \
        families.parameter_count(hf_config)["total"]


# ---------------------------------------------------------------- the translation task


def test_translation_rules():
    from course.datasets import translation as tr

    assert tr.translate("this small cat sees the old dogs".split()) == \
        "ce chat petit les chiens vieux voit".split()
    assert tr.translate("the big houses likes a green car".split()) == \
        "les maisons grandes une voiture verte aiment".split()
    a, b = tr.pairs(50, seed=3), tr.pairs(50, seed=3)
    assert a == b and len({tuple(s) for s, _ in a}) > 40
    held_out = {tuple(s) for s, _ in tr.pairs(200, seed=4)}
    assert not held_out & {tuple(s) for s, _ in tr.pairs(2000, seed=5, exclude=held_out)}
    src, src_mask, tgt_in, tgt_out = tr.batch(a[:4])
    assert (tgt_in[:, 0] == tr.BOS_ID).all()
    words = (tgt_out[:, :-1] != tr.IGNORE) & (tgt_out[:, :-1] != tr.EOS_ID)
    assert torch.equal(tgt_in[:, 1:][words], tgt_out[:, :-1][words])   # shifted by one
    assert src_mask.sum(1).tolist() == [len(s) for s, _ in a[:4]]


@pytest.mark.slow
def test_translation_reaches_99_percent_exact_match():
    from course.datasets import translation as tr

    result = tr.train()
    assert result.accuracy >= 0.99, result.accuracy
