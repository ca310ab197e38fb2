"""Parts 1 and 2: `EncoderEmbeddings` and the `Pooler`, checked against Hugging Face's BERT."""

from __future__ import annotations

import torch

from course.checks import oracles
from course.checks.core import check, compare
from course.checks.encoder.mistakes import M
from course.checks.encoder.shared import _batch, _check_on_meta, _config, _hf_bert

# ---------------------------------------------------------------- Part 1: embeddings

_EMB = {"word_embeddings.weight": "word.weight", "position_embeddings.weight": "position.weight",
        "token_type_embeddings.weight": "token_type.weight", "LayerNorm.weight": "ln.weight",
        "LayerNorm.bias": "ln.bias"}


def _our_embeddings(cls, hf, dtype):
    module = cls(_config(hf)).to(dtype)
    theirs = hf.embeddings.state_dict()
    module.load_state_dict({ours: theirs[name] for name, ours in _EMB.items()})
    return module.eval()


@check(M + "EncoderEmbeddings", part=1)
def check_embeddings(EncoderEmbeddings, hidden: bool = False) -> None:
    """LayerNorm(word + position + token type) equals Hugging Face's BertEmbeddings, in
    training mode too (dropout after the LayerNorm); it runs on the meta device without making
    CPU tensors."""
    f32, f64 = torch.float32, torch.float64
    cases = [("two segments", 2, 7, True, f32), ("token_type_ids=None", 2, 7, False, f32)]
    if hidden:
        cases += [("float64, two segments", 3, 5, True, f64), ("a batch of one", 1, 9, True, f32),
                  ("the longest input the model takes (20 tokens)", 2, 20, True, f32),
                  ("a single token, no token types", 2, 1, False, f64)]
    for i, (label, B, T, with_types, dtype) in enumerate(cases):
        hf = _hf_bert(100 + i, dtype)
        ids, _, types = _batch(B, T, [T] * B, seed=110 + i)
        types = types if with_types else None
        with torch.no_grad():
            expected = hf.embeddings(input_ids=ids, token_type_ids=types)

        def probe(cls, hf=hf, ids=ids, types=types, dtype=dtype):
            with torch.no_grad():
                return _our_embeddings(cls, hf, dtype)(ids.clone(),
                                                       None if types is None else types.clone())

        compare(EncoderEmbeddings, probe, expected,
                what=f"EncoderEmbeddings on ids ({B}, {T}), {dtype}, {label}",
                **oracles.tol(dtype))
    _check_embedding_dropout(EncoderEmbeddings, hidden)
    for label, with_types in [("token_type_ids=None", False)] + (
            [("two segments", True)] if hidden else []):
        _check_on_meta(EncoderEmbeddings, "EncoderEmbeddings", with_types, label,
                       lambda ids, mask, types: (ids, types))


def _check_embedding_dropout(EncoderEmbeddings, hidden: bool) -> None:
    """In training mode with dropout 0.3, under one seed, the output equals Hugging Face's
    BertEmbeddings in training mode under the same seed: dropout after the LayerNorm."""
    cases = [(2, 6, torch.float32)] + ([(1, 9, torch.float64)] if hidden else [])
    for i, (B, T, dtype) in enumerate(cases):
        hf = _hf_bert(150 + i, dtype, hidden_dropout_prob=0.3)
        ids, _, types = _batch(B, T, [T] * B, seed=160 + i)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(4321)
            expected = hf.embeddings.train()(input_ids=ids, token_type_ids=types)
        hf.embeddings.eval()

        def probe(cls, hf=hf, ids=ids, types=types, dtype=dtype):
            module = _our_embeddings(cls, hf, dtype).train()
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(4321)
                return module(ids.clone(), types.clone())

        compare(EncoderEmbeddings, probe, expected,
                what=f"EncoderEmbeddings(dropout=0.3).train() on ids ({B}, {T}), {dtype}, "
                     "seeded, compared with BertEmbeddings in training mode under the same seed",
                **oracles.tol(dtype))


# ---------------------------------------------------------------- Part 2: pooler


@check(M + "Pooler", part=2)
def check_pooler(Pooler, hidden: bool = False) -> None:
    """tanh(dense(h_[CLS])) equals Hugging Face's BertPooler."""
    f32, f64 = torch.float32, torch.float64
    cases = [((2, 5, 16), f32)]
    if hidden:
        cases += [((3, 4, 16), f64), ((1, 1, 16), f32), ((2, 9, 16), f64)]
    for i, (shape, dtype) in enumerate(cases):
        hf = _hf_bert(200 + i, dtype)
        h = oracles.randn(*shape, seed=210 + i, dtype=dtype, scale=2.0)
        with torch.no_grad():
            expected = hf.pooler(h)

        def probe(cls, hf=hf, h=h, dtype=dtype, C=shape[-1]):
            pooler = cls(C).to(dtype)
            pooler.dense.load_state_dict(hf.pooler.dense.state_dict())
            with torch.no_grad():
                return pooler(h.clone())

        compare(Pooler, probe, expected, what=f"Pooler({shape[-1]}) on hidden {shape}, {dtype}",
                **oracles.tol(dtype))
