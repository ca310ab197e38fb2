"""Chapter 12's parts (rotary positions, SwiGLU, grouped-query attention) against Hugging Face's
Llama code, and our GPT configured as a Llama or a Qwen3 against their models: the same logits
and the same greedy continuations, on randomly initialised models of several sizes."""

from __future__ import annotations

import itertools

import pytest
import torch
import transformers
from transformers.models.llama import modeling_llama as hf_llama

from solutions.attention import MultiHeadAttention
from solutions.decoder import GPT
from solutions.feedforward import feedforward_parameters
from solutions.generation import generate
from solutions.llama import Llama
from solutions.model import ModelConfig
from solutions.modern import (
    GroupedQueryAttention,
    RotaryEmbedding,
    SiLUFeedForward,
    SwiGLU,
    apply_rotary,
    repeat_kv,
    rotary_tables,
    swiglu_hidden,
)
from solutions.pretrained import CheckpointError


def llama_config(**kw) -> transformers.LlamaConfig:
    sizes = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return transformers.LlamaConfig(**{**sizes, **kw})


@pytest.mark.parametrize("theta", [10000.0, 500000.0])
def test_rotary_matches_hugging_face(theta):
    config = llama_config(rope_theta=theta, hidden_size=48, num_attention_heads=4)
    hf = hf_llama.LlamaRotaryEmbedding(config)
    q, k = torch.randn(2, 4, 9, 12), torch.randn(2, 2, 9, 12)
    positions = torch.arange(3, 12)[None]                 # a cache of 3 positions
    cos, sin = hf(q, positions)
    want_q, want_k = hf_llama.apply_rotary_pos_emb(q, k, cos, sin)
    rotary = RotaryEmbedding(12, 16, theta)
    torch.testing.assert_close(rotary(q, start=3), want_q, rtol=0, atol=1e-6)
    torch.testing.assert_close(rotary(k, start=3), want_k, rtol=0, atol=1e-6)


def test_rotary_score_depends_only_on_the_distance():
    cos, sin = rotary_tables(8, 40)
    q, k = torch.randn(8), torch.randn(8)

    def score(m, n):                                      # query at m, key at n
        qm = apply_rotary(q[None, None, None], cos[m:m + 1], sin[m:m + 1])
        kn = apply_rotary(k[None, None, None], cos[n:n + 1], sin[n:n + 1])
        return (qm * kn).sum().item()

    assert score(5, 2) == pytest.approx(score(35, 32), abs=1e-5)
    assert score(7, 7) == pytest.approx((q * k).sum().item(), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)


def test_rotary_keeps_the_norm_and_refuses_bad_input():
    x = torch.randn(1, 2, 6, 8)
    cos, sin = rotary_tables(8, 6)
    torch.testing.assert_close(apply_rotary(x, cos, sin).norm(dim=-1), x.norm(dim=-1))
    with pytest.raises(ValueError, match="even"):
        rotary_tables(7, 4)
    with pytest.raises(ValueError, match="cos and sin"):
        apply_rotary(x, cos[:5], sin[:5])
    with pytest.raises(ValueError, match="outside the table"):
        RotaryEmbedding(8, 6)(x, start=1)


def test_swiglu_matches_hugging_face_llama_mlp():
    config = llama_config(hidden_size=16, intermediate_size=40)
    hf = hf_llama.LlamaMLP(config)
    ours = SwiGLU(16, 40)
    for name in ("gate", "up", "down"):
        getattr(ours, name).weight.data.copy_(getattr(hf, f"{name}_proj").weight)
    x = torch.randn(3, 5, 16)
    torch.testing.assert_close(ours(x), hf(x), rtol=0, atol=1e-6)


def test_silu_network_matches_torch_layers():
    torch.manual_seed(0)
    ours = SiLUFeedForward(8, 32)
    torch_ffn = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.SiLU(), torch.nn.Linear(32, 8))
    torch_ffn.load_state_dict({"0.weight": ours.up.weight, "0.bias": ours.up.bias,
                               "2.weight": ours.down.weight, "2.bias": ours.down.bias})
    x = torch.randn(2, 3, 8)
    torch.testing.assert_close(ours(x), torch_ffn(x), rtol=0, atol=1e-6)
    assert isinstance(ModelConfig(activation="silu").feedforward(), SiLUFeedForward)


@pytest.mark.parametrize("d_model", [64, 384, 768, 4096])
def test_swiglu_two_thirds_width_keeps_the_parameter_count(d_model):
    hidden = swiglu_hidden(d_model)
    if d_model <= 384:                                    # the formula is the module's count
        module = SwiGLU(d_model, hidden)
        assert sum(p.numel() for p in module.parameters()) == 3 * d_model * hidden
    swiglu = 3 * d_model * hidden
    gelu = feedforward_parameters(d_model, 4 * d_model, bias=False)
    assert abs(swiglu - gelu) <= 3 * d_model              # within one hidden unit
    assert swiglu_hidden(4096, multiple_of=256) == 11008  # Llama 7B's width


def test_repeat_kv_matches_hugging_face():
    x = torch.randn(2, 3, 5, 4)
    torch.testing.assert_close(repeat_kv(x, 4), hf_llama.repeat_kv(x, 4), rtol=0, atol=0)


def test_gqa_with_as_many_kv_heads_is_multi_head_attention():
    torch.manual_seed(0)
    gqa, mha = GroupedQueryAttention(16, 4, 4, bias=True), MultiHeadAttention(16, 4)
    mha.load_state_dict(gqa.state_dict())
    x = torch.randn(2, 6, 16)
    torch.testing.assert_close(gqa(x, causal=True)[0], mha(x, causal=True)[0])


def test_gqa_errors():
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        GroupedQueryAttention(16, 4, 3)
    with pytest.raises(ValueError, match="context must be None"):
        GroupedQueryAttention(16, 4, 2)(torch.randn(1, 2, 16), torch.randn(1, 2, 16))
    with pytest.raises(ValueError, match="head_dim"):
        GroupedQueryAttention(16, 4, 2, rotary=RotaryEmbedding(6, 8))


def modern(**kw) -> ModelConfig:
    sizes = dict(vocab_size=50, block_size=32, n_layer=2, n_head=4, n_embd=32, norm="rms",
                 activation="swiglu", position="rope", n_kv_head=2, bias=False)
    return ModelConfig(**{**sizes, **kw})


@pytest.mark.parametrize("n_kv_head", [1, 2, 4])
def test_cached_forward_equals_full_forward_and_the_cache_shrinks(n_kv_head):
    torch.manual_seed(0)
    gpt = GPT(modern(n_kv_head=n_kv_head)).eval()
    idx = torch.randint(50, (2, 12))
    full, _ = gpt(idx)
    cache = gpt.new_cache()
    steps = [gpt(idx[:, :7], cache=cache)[0]] + [gpt(idx[:, t:t + 1], cache=cache)[0]
                                                 for t in range(7, 12)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
    assert cache[0].k.shape == (2, n_kv_head, 12, 8)      # H_kv heads cached, not H


def test_every_combination_of_parts_builds_and_trains():
    combos = itertools.product(("layer", "rms"), ("gelu", "silu", "swiglu"),
                               ("learned", "sinusoidal", "rope"), (True, False))
    idx = torch.randint(50, (2, 9))
    for norm, activation, position, tie in combos:
        config = ModelConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16,
                             norm=norm, activation=activation, position=position,
                             tie_weights=tie)
        gpt = GPT(config)
        _, loss = gpt(idx, idx)
        loss.backward()
        assert torch.isfinite(loss)
        assert (gpt.lm_head.weight is gpt.wte.weight) == tie
        assert gpt.wpe.weight.requires_grad if position == "learned" else \
            not any(p.requires_grad for p in gpt.wpe.parameters())


def test_config_refuses_impossible_combinations():
    for bad, match in ((dict(norm="batch"), "norm"), (dict(position="alibi"), "position"),
                       (dict(n_kv_head=3), "multiple of n_kv_head"),
                       (dict(head_dim=7), "even"), (dict(rope_theta=1.0), "rope_theta"),
                       (dict(qk_norm=1), "qk_norm")):
        with pytest.raises((ValueError, TypeError), match=match):
            modern(**bad)


HF_MODELS = [
    ("llama", dict(num_key_value_heads=2)),
    ("llama", dict(num_key_value_heads=6, tie_word_embeddings=True, hidden_size=96,
                   num_attention_heads=6, num_hidden_layers=3)),
    ("llama", dict(num_key_value_heads=1, rope_theta=500000.0, num_attention_heads=8)),
    ("qwen3", dict(num_key_value_heads=2, head_dim=24)),
    ("qwen3", dict(num_key_value_heads=4, hidden_size=48, intermediate_size=128)),
]


def hf_model(kind, **kw):
    torch.manual_seed(0)
    config = llama_config(**kw)
    if kind == "qwen3":
        config = transformers.Qwen3Config(**{k: v for k, v in config.to_dict().items()
                                             if k not in ("model_type", "architectures")})
        return transformers.Qwen3ForCausalLM(config).eval()
    return transformers.LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("kind, kw", HF_MODELS)
def test_from_hf_gives_the_same_logits(kind, kw):
    hf = hf_model(kind, **kw)
    ours = Llama.from_hf(hf).eval()
    assert ours.config.qk_norm == (kind == "qwen3")
    idx = torch.randint(97, (2, 23))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx)[0], hf(idx).logits, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind, kw", [HF_MODELS[0], HF_MODELS[3]])
def test_greedy_generation_with_the_cache_equals_hugging_face(kind, kw):
    hf = hf_model(kind, **kw)
    ours = Llama.from_hf(hf).eval()
    prompt = torch.randint(97, (2, 5))
    want = hf.generate(prompt, max_new_tokens=12, do_sample=False, pad_token_id=0,
                       eos_token_id=None)
    assert torch.equal(generate(ours, prompt, 12, greedy=True), want)


def test_from_hf_refuses_what_it_does_not_compute():
    for kw, match in ((dict(attention_bias=True), "biases"), (dict(hidden_act="gelu"), "SiLU"),
                      (dict(rope_scaling={"rope_type": "linear", "factor": 2.0}), "scaled")):
        with pytest.raises(CheckpointError, match=match):
            Llama.from_hf(hf_model("llama", **kw))
