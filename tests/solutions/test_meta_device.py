"""Every module of the reference transformer runs forward and backward on the `meta` device
without making a single CPU tensor.

A tensor created inside `forward` without `device=` lands on the CPU: it either fails on the
meta device or, when only used as an index, is seen by the CPU-tensor spy. Passing here proves
the modules are ready for a GPU without needing one.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch

import solutions
from course.checks.core import cpu_tensor_spy
from solutions import attention as att
from solutions import decoder as dec
from solutions import embeddings as emb
from solutions import encoder as enc
from solutions import feedforward as ffn
from solutions import llama as lla
from solutions import lora
from solutions import model as mdl
from solutions import modern as mod
from solutions import normalization as norm
from solutions import residual as res
from solutions import transfer as tr


def _ids(device):
    return (torch.randint(30, (2, 10), device=device),)


def _tokens(device):
    return (torch.randn(2, 5, 16, device=device),)


def _cross(need_weights):
    def inputs(device):
        x, context = torch.randn(2, 5, 16, device=device), torch.randn(2, 7, 16, device=device)
        mask = att.padding_mask(torch.ones(2, 7, device=device))
        return x, context, mask, need_weights
    return inputs


def _self_causal(device):
    return torch.randn(2, 5, 16, device=device), None, att.causal_mask(5, device)


_SMALL = dict(n_embd=16, n_head=4, d_ff=24, dropout=0.1)


def _block_inputs(cross):
    def inputs(device):
        x = torch.randn(2, 5, 16, device=device)
        mask = att.padding_mask(torch.ones(2, 5, device=device))
        if not cross:
            return x, mask
        context = torch.randn(2, 7, 16, device=device)
        return x, mask, context, att.padding_mask(torch.ones(2, 7, device=device))
    return inputs


class _Pooled(torch.nn.Module):
    """An Encoder followed by its own pooler, so that every parameter gets a gradient."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, *args):
        return self.encoder.pooler(self.encoder(*args))


def _without_pooler_grad(sentence_encoder):
    sentence_encoder.encoder.pooler.requires_grad_(False)  # mean pooling never reads it
    return sentence_encoder


def _encoder_inputs(device):
    ids = torch.randint(30, (2, 10), device=device)
    mask = torch.ones(2, 10, dtype=torch.long, device=device)
    return ids, mask, torch.zeros_like(ids)


# name -> (constructor, example inputs on a device). Every nn.Module class in `solutions` must
# appear (alone or with a suffix for other settings), so a new module cannot skip this test.
EXAMPLES: dict[str, tuple] = {
    "TokenEmbedding": (lambda: emb.TokenEmbedding(30, 8), _ids),
    "LearnedPositionalEmbedding": (lambda: emb.LearnedPositionalEmbedding(16, 8), _ids),
    "SinusoidalPositionalEncoding": (lambda: emb.SinusoidalPositionalEncoding(16, 8), _ids),
    "TransformerEmbedding": (lambda: emb.TransformerEmbedding(30, 8, 16), _ids),
    "TransformerEmbedding/sinusoidal": (
        lambda: emb.TransformerEmbedding(30, 8, 16, positions="sinusoidal"), _ids),
    "MultiHeadAttention": (lambda: att.MultiHeadAttention(16, 4, dropout=0.1), _cross(True)),
    "MultiHeadAttention/sdpa": (lambda: att.MultiHeadAttention(16, 4, dropout=0.1),
                                _cross(False)),
    "FusedMultiHeadAttention": (lambda: att.FusedMultiHeadAttention(16, 4, dropout=0.1),
                                _self_causal),
    "FusedMultiHeadAttention/cross": (lambda: att.FusedMultiHeadAttention(16, 4, dropout=0.1),
                                      _cross(False)),
    "FeedForward": (lambda: ffn.FeedForward(16, dropout=0.1), _tokens),
    "FeedForward/tanh-nobias": (
        lambda: ffn.FeedForward(16, 24, activation="gelu_tanh", bias=False), _tokens),
    "FeedForward/relu": (lambda: ffn.FeedForward(16, activation="relu"), _tokens),
    "FusedFeedForward": (lambda: ffn.FusedFeedForward(16, dropout=0.1), _tokens),
    "FusedFeedForward/tanh-nobias": (
        lambda: ffn.FusedFeedForward(16, 24, activation="gelu_tanh", bias=False), _tokens),
    "LoRALinear": (lambda: lora.LoRALinear(torch.nn.Linear(16, 8), 4, 8, dropout=0.1),
                   _tokens),
    "LayerNorm": (lambda: norm.LayerNorm(16), _tokens),
    "FusedLayerNorm": (lambda: norm.FusedLayerNorm(16), _tokens),
    "RMSNorm": (lambda: norm.RMSNorm(16), _tokens),
    "Residual": (lambda: res.Residual(dropout=0.1),
                 lambda device: (torch.randn(2, 5, 16, device=device),
                                 torch.nn.Linear(16, 16, device=device))),
    "Block": (lambda: res.Block(mdl.ModelConfig(**_SMALL)), _block_inputs(False)),
    "Block/from-definition": (lambda: res.Block(mdl.ModelConfig(**_SMALL, fused=False)),
                              _block_inputs(False)),
    "Block/post-LN-causal-cross": (
        lambda: res.Block(mdl.ModelConfig(**_SMALL, norm_first=False), causal=True, cross=True),
        _block_inputs(True)),
    "EncoderLayer": (lambda: enc.EncoderLayer(mdl.ModelConfig(**_SMALL)), _block_inputs(False)),
    "EncoderEmbeddings": (lambda: enc.EncoderEmbeddings(mdl.ModelConfig(vocab_size=30, **_SMALL)),
                          lambda device: (*_ids(device), torch.ones(2, 10, dtype=torch.long,
                                                                     device=device))),
    "Pooler": (lambda: enc.Pooler(16), _tokens),
    "Encoder": (lambda: _Pooled(enc.Encoder(mdl.ModelConfig(vocab_size=30, n_layer=2,
                                                            **_SMALL))), _encoder_inputs),
    "Encoder/post_ln": (lambda: _Pooled(enc.Encoder(mdl.ModelConfig(
        vocab_size=30, n_layer=1, norm_first=False, **_SMALL))), _encoder_inputs),
    "SentenceEncoder": (lambda: _without_pooler_grad(enc.SentenceEncoder(
        enc.Encoder(mdl.ModelConfig(vocab_size=30, n_layer=1, **_SMALL)), tokenizer=None,
        max_length=16)), lambda device: _encoder_inputs(device)[:2]),
    "TokenClassificationHead": (lambda: enc.TokenClassificationHead(16, 3, dropout=0.1),
                                _tokens),
    "QuestionAnsweringHead": (lambda: enc.QuestionAnsweringHead(16), _tokens),
    "GPT": (lambda: dec.GPT(mdl.ModelConfig(vocab_size=30, block_size=12, n_layer=2, **_SMALL)),
            lambda device: (torch.randint(30, (2, 10), device=device),
                            torch.randint(30, (2, 10), device=device))),
    "EncoderDecoder": (
        lambda: dec.EncoderDecoder(mdl.ModelConfig(vocab_size=30, block_size=12, n_layer=1,
                                                   **_SMALL)),
        lambda device: (torch.randint(30, (2, 9), device=device),
                        torch.randint(30, (2, 7), device=device),
                        torch.randint(30, (2, 7), device=device),
                        torch.ones(2, 9, dtype=torch.bool, device=device))),
    "SequenceClassifier": (lambda: tr.SequenceClassifier(enc.Encoder(mdl.ModelConfig(
        vocab_size=30, n_layer=1, **_SMALL)), 3), lambda device: _encoder_inputs(device)[:2]),
    "SequenceClassifier/mean": (lambda: _without_pooler_grad(tr.SequenceClassifier(enc.Encoder(
        mdl.ModelConfig(vocab_size=30, n_layer=1, **_SMALL)), 3, pooling="mean")),
        lambda device: _encoder_inputs(device)[:2]),
    "RotaryEmbedding": (lambda: mod.RotaryEmbedding(4, 16),
                        lambda device: (torch.randn(2, 4, 5, 4, device=device), 3)),
    "NoPositionTable": (lambda: mod.NoPositionTable(),
                        lambda device: (torch.arange(5, device=device),)),
    "SiLUFeedForward": (lambda: mod.SiLUFeedForward(16, 64, dropout=0.1), _tokens),
    "SwiGLU": (lambda: mod.SwiGLU(16, 24, dropout=0.1), _tokens),
    "GroupedQueryAttention": (
        lambda: mod.GroupedQueryAttention(16, 4, 2, 0.1, rotary=mod.RotaryEmbedding(4, 16),
                                          qk_norm=True), _self_causal),
    "FusedGroupedQueryAttention": (
        lambda: mod.FusedGroupedQueryAttention(16, 4, 1, 0.1, head_dim=6), _self_causal),
    "Llama": (lambda: lla.Llama(mdl.ModelConfig(
        vocab_size=30, block_size=12, n_layer=2, norm="rms", activation="swiglu",
        position="rope", n_kv_head=2, qk_norm=True, tie_weights=False, bias=False,
        **_SMALL)), lambda device: (torch.randint(30, (2, 10), device=device),
                                    torch.randint(30, (2, 10), device=device))),
    "GPT/sinusoidal-relu": (lambda: dec.GPT(mdl.ModelConfig(
        vocab_size=30, block_size=12, n_layer=1, position="sinusoidal", activation="relu",
        fused=False, **_SMALL)), lambda device: (torch.randint(30, (2, 10), device=device),)),
}


def modules_in_solutions() -> set[str]:
    found = set()
    for info in pkgutil.iter_modules(solutions.__path__):
        module = importlib.import_module(f"solutions.{info.name}")
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, torch.nn.Module)
                    and obj.__module__ == module.__name__):
                found.add(name)
    return found


def test_every_module_has_an_example():
    covered = {name.split("/")[0] for name in EXAMPLES}
    missing = sorted(modules_in_solutions() - covered)
    assert not missing, f"add these modules to EXAMPLES: {missing}"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_forward_and_backward_on_meta(name):
    build, inputs = EXAMPLES[name]
    module = build().to("meta").train()
    args = inputs("meta")
    with cpu_tensor_spy() as spy:
        out = module(*args)
        out = out[0] if isinstance(out, tuple) else out
        assert out.device.type == "meta"
        if out.requires_grad:
            out.float().sum().backward()
    assert spy.made_on_cpu == [], f"{name} made CPU tensors with {sorted(set(spy.made_on_cpu))}"
    assert all(p.grad is not None and p.grad.device.type == "meta"
               for p in module.parameters() if p.requires_grad)


def test_the_spy_catches_a_cpu_tensor_made_in_forward():
    class Leaky(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(8, 2))

        def forward(self, x):
            return self.weight[torch.arange(x.size(1))]  # no device=: made on the CPU

    leaky, x = Leaky().to("meta"), torch.zeros(1, 3, device="meta")
    with cpu_tensor_spy() as spy:
        out = leaky(x)
    assert out.device.type == "meta"  # indexing hides it: only the spy sees it
    assert spy.made_on_cpu == ["arange"]
