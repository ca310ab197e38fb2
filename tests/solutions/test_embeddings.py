"""Tests of solutions/embeddings.py against independent oracles.

- lookups: `torch.nn.Embedding` / `F.embedding` with copied weights (outputs and gradients);
- the sinusoidal table: the closed-form formula in Python floats, and its known properties
  (row norms, dot products that depend only on the distance);
- BERT: the real all-MiniLM-L6-v2 tables load by name and give Hugging Face's vectors;
- devices: forward and backward on the `meta` device with no tensor made on the CPU.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from course.checks.oracles import closed_form_table
from course.datasets import minilm_path
from solutions.embeddings import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    TransformerEmbedding,
    one_hot_embed,
    sinusoidal_table,
)


def copy_table(module: nn.Module, table: torch.Tensor) -> nn.Module:
    with torch.no_grad():
        module.weight.copy_(table)
    return module


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 2, 4), (1, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_hot_product_is_a_row_lookup(shape, dtype):
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(11, 7, generator=g, dtype=dtype)
    ids = torch.randint(11, shape, generator=g)
    out = one_hot_embed(ids, weight)
    assert out.shape == (*shape, 7) and out.dtype == dtype
    torch.testing.assert_close(out, F.embedding(ids, weight), rtol=0, atol=0)


def test_one_hot_gradient_equals_the_lookup_gradient():
    weight = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([[0, 5, 5], [2, 0, 1]])
    upstream = torch.randn(2, 3, 3, dtype=torch.float64)
    (grad_one_hot,) = torch.autograd.grad((one_hot_embed(ids, weight) * upstream).sum(), weight)
    (grad_lookup,) = torch.autograd.grad((F.embedding(ids, weight) * upstream).sum(), weight)
    torch.testing.assert_close(grad_one_hot, grad_lookup)


def test_token_embedding_equals_nn_embedding_with_copied_weights():
    torch.manual_seed(0)
    ours, theirs = TokenEmbedding(50, 8), nn.Embedding(50, 8)
    copy_table(theirs, ours.weight)
    ids = torch.randint(50, (4, 9))
    out_ours, out_theirs = ours(ids), theirs(ids)
    torch.testing.assert_close(out_ours, out_theirs, rtol=0, atol=0)
    upstream = torch.randn_like(out_ours)
    (out_ours * upstream).sum().backward()
    (out_theirs * upstream).sum().backward()
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad)


def test_token_embedding_is_learned_and_only_used_rows_get_a_gradient():
    torch.manual_seed(0)
    emb = TokenEmbedding(20, 4)
    assert [p.shape for p in emb.parameters()] == [(20, 4)]
    assert 0.015 < emb.weight.std().item() < 0.025  # N(0, 0.02^2), as BERT and GPT-2
    emb(torch.tensor([[3, 7, 3]])).sum().backward()
    touched = emb.weight.grad.abs().sum(1).nonzero().flatten().tolist()
    assert touched == [3, 7]
    torch.testing.assert_close(emb.weight.grad[3], torch.full((4,), 2.0))  # used twice


def test_token_embedding_follows_dtype():
    emb = TokenEmbedding(10, 4).double()
    assert emb(torch.tensor([1, 2])).dtype == torch.float64


# ---------------------------------------------------------------------------------------------
# Sinusoidal positions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_len,d_model", [(1, 2), (7, 4), (60, 16), (128, 64), (33, 6)])
def test_sinusoidal_table_is_the_closed_form(max_len, d_model):
    table = sinusoidal_table(max_len, d_model, dtype=torch.float64)
    assert table.shape == (max_len, d_model) and table.dtype == torch.float64
    torch.testing.assert_close(table, closed_form_table(max_len, d_model, dtype=torch.float64),
                               rtol=0, atol=1e-12)
    # float32 is the float64 table rounded, not a float32 computation
    torch.testing.assert_close(sinusoidal_table(max_len, d_model), table.float(), rtol=0, atol=0)


def test_sinusoidal_table_hand_values():
    table = sinusoidal_table(3, 4, dtype=torch.float64)
    # pair 0 has frequency 1, pair 1 has frequency 1 / 10000^(2/4) = 1/100
    expected = [[0.0, 1.0, 0.0, 1.0],
                [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)],
                [math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)]]
    torch.testing.assert_close(table, torch.tensor(expected, dtype=torch.float64))


def test_sinusoidal_rows_have_equal_norm_and_dot_products_depend_only_on_distance():
    d = 32
    table = sinusoidal_table(200, d, dtype=torch.float64)
    torch.testing.assert_close(table.norm(dim=1),
                               torch.full((200,), math.sqrt(d / 2), dtype=torch.float64))
    omega = 1 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) * 2 / d)
    for k in (0, 1, 5, 40):
        dots = (table[: 200 - k] * table[k:]).sum(1)  # PE(p) . PE(p + k) for every p
        torch.testing.assert_close(dots, torch.cos(omega * k).sum().expand_as(dots))


def test_sinusoidal_table_dtype_device_and_odd_width():
    assert sinusoidal_table(4, 6, device="meta").device.type == "meta"
    assert sinusoidal_table(4, 6, dtype=torch.bfloat16).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="even"):
        sinusoidal_table(4, 5)


def test_sinusoidal_module_is_a_non_persistent_buffer():
    pe = SinusoidalPositionalEncoding(16, 8)
    assert list(pe.parameters()) == [] and [n for n, _ in pe.named_buffers()] == ["pe"]
    assert pe.state_dict() == {}
    ids, acts = torch.zeros(3, 10, dtype=torch.long), torch.randn(3, 10, 8)
    torch.testing.assert_close(pe(ids), sinusoidal_table(16, 8)[:10], rtol=0, atol=0)
    torch.testing.assert_close(pe(acts), pe(ids), rtol=0, atol=0)
    assert pe.double()(ids).dtype == torch.float64


# ---------------------------------------------------------------------------------------------
# Learned positions
# ---------------------------------------------------------------------------------------------


def test_learned_positions_equal_nn_embedding_at_arange():
    torch.manual_seed(0)
    ours, theirs = LearnedPositionalEmbedding(12, 6), nn.Embedding(12, 6)
    copy_table(theirs, ours.weight)
    for T in (1, 7, 12):
        expected = theirs(torch.arange(T))
        torch.testing.assert_close(ours(torch.zeros(2, T, dtype=torch.long)), expected)
        torch.testing.assert_close(ours(torch.randn(2, T, 6)), expected)  # activations too


def test_learned_positions_are_one_small_learnable_table():
    torch.manual_seed(0)
    pos = LearnedPositionalEmbedding(512, 64)
    assert [tuple(p.shape) for p in pos.parameters() if p.requires_grad] == [(512, 64)]
    assert 0.018 < pos.weight.std().item() < 0.022  # N(0, 0.02^2), as BERT and GPT-2


def test_learned_positions_gradient_reaches_only_the_first_rows():
    pos = LearnedPositionalEmbedding(10, 3)
    pos(torch.zeros(4, 6, dtype=torch.long)).sum().backward()
    assert pos.weight.grad[:6].eq(1).all() and pos.weight.grad[6:].eq(0).all()


@pytest.mark.parametrize("make", [lambda: LearnedPositionalEmbedding(8, 4),
                                  lambda: SinusoidalPositionalEncoding(8, 4),
                                  lambda: TransformerEmbedding(30, 4, 8),
                                  lambda: TransformerEmbedding(30, 4, 8, positions="sinusoidal")])
def test_too_many_positions_is_a_clear_error(make):
    module = make()
    assert module(torch.zeros(1, 8, dtype=torch.long)).shape[-2:] == (8, 4)  # max_len is fine
    with pytest.raises(ValueError) as error:
        module(torch.zeros(1, 9, dtype=torch.long))
    assert "9" in str(error.value) and "max_len=8" in str(error.value)


# ---------------------------------------------------------------------------------------------
# Tokens + positions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_transformer_embedding_in_eval_is_token_plus_position(positions):
    torch.manual_seed(0)
    model = TransformerEmbedding(40, 8, 16, dropout=0.3, positions=positions).eval()
    ids = torch.randint(40, (3, 11))
    expected = F.embedding(ids, model.word_embeddings.weight)
    if positions == "learned":
        expected = expected + F.embedding(torch.arange(11), model.position_embeddings.weight)
    else:
        expected = expected + sinusoidal_table(16, 8)[:11]
    torch.testing.assert_close(model(ids), expected)
    torch.testing.assert_close(model(ids), model(ids), rtol=0, atol=0)  # no dropout in eval


def test_transformer_embedding_dropout_acts_on_the_sum_in_train():
    torch.manual_seed(0)
    p = 0.25
    model = TransformerEmbedding(40, 64, 32, dropout=p)
    ids = torch.randint(40, (8, 32))
    clean = model.eval()(ids)
    out = model.train()(ids)
    dropped = out == 0
    assert abs(dropped.float().mean().item() - p) < 0.03
    torch.testing.assert_close(out[~dropped], clean[~dropped] / (1 - p))
    torch.manual_seed(1)
    first = model(ids)
    torch.manual_seed(1)
    torch.testing.assert_close(model(ids), first, rtol=0, atol=0)  # the seed fixes the mask


def test_transformer_embedding_names_dtype_gradients_and_errors():
    model = TransformerEmbedding(30, 4, 8)
    assert sorted(model.state_dict()) == ["position_embeddings.weight", "word_embeddings.weight"]
    assert sorted(TransformerEmbedding(30, 4, 8, positions="sinusoidal").state_dict()) == [
        "word_embeddings.weight"]
    model = model.double()
    out = model(torch.tensor([[1, 2, 3]]))
    assert out.shape == (1, 3, 4) and out.dtype == torch.float64
    out.sum().backward()
    assert model.word_embeddings.weight.grad is not None
    assert model.position_embeddings.weight.grad is not None
    with pytest.raises(ValueError, match="learned.*sinusoidal.*'rotary'"):
        TransformerEmbedding(30, 4, 8, positions="rotary")


def test_positions_break_the_symmetry_of_a_permutation():
    torch.manual_seed(0)
    model = TransformerEmbedding(40, 8, 16, dropout=0.0).eval()
    ids = torch.tensor([[5, 9, 2, 7]])
    perm = torch.tensor([2, 0, 3, 1])
    tokens = model.word_embeddings
    torch.testing.assert_close(tokens(ids[:, perm]), tokens(ids)[:, perm])  # order-blind
    assert not torch.allclose(model(ids[:, perm]), model(ids)[:, perm])  # order-aware


# ---------------------------------------------------------------------------------------------
# BERT: the pretrained all-MiniLM-L6-v2 tables
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    from transformers import AutoModel, AutoTokenizer

    path = minilm_path()  # also sets HF_HUB_OFFLINE=1
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_bert_tables_load_by_name_and_give_hugging_faces_vectors(minilm):
    hf, tokenizer = minilm
    config = hf.config
    state = {k.removeprefix("embeddings."): v for k, v in hf.state_dict().items()
             if k.startswith("embeddings.")}
    ours = TransformerEmbedding(config.vocab_size, config.hidden_size,
                                config.max_position_embeddings).eval()
    ours.load_state_dict({k: state[k] for k in ours.state_dict()})  # strict: every name exists

    ids = tokenizer(["the cat sat on the mat", "a dog"], padding=True,
                    return_tensors="pt")["input_ids"]
    T = ids.size(1)
    with torch.no_grad():
        torch.testing.assert_close(ours.word_embeddings(ids), hf.embeddings.word_embeddings(ids),
                                   rtol=0, atol=0)
        hf_positions = hf.embeddings.position_embeddings(hf.embeddings.position_ids[0, :T])
        torch.testing.assert_close(ours.position_embeddings(ids), hf_positions, rtol=0, atol=0)
        # BERT's embedding layer = LayerNorm(ours + token-type vector 0), then dropout
        bert = hf.embeddings.LayerNorm(ours(ids) + hf.embeddings.token_type_embeddings.weight[0])
        torch.testing.assert_close(bert, hf.embeddings(input_ids=ids))


def test_bert_tables_load_into_the_separate_modules(minilm):
    hf, _ = minilm
    words = TokenEmbedding(*hf.embeddings.word_embeddings.weight.shape)
    words.load_state_dict(hf.embeddings.word_embeddings.state_dict())
    positions = LearnedPositionalEmbedding(*hf.embeddings.position_embeddings.weight.shape)
    positions.load_state_dict(hf.embeddings.position_embeddings.state_dict())
    ids = torch.tensor([[101, 4937, 3899, 2482, 102]])  # [CLS] cat dog car [SEP]
    with torch.no_grad():
        torch.testing.assert_close(words(ids), hf.embeddings.word_embeddings(ids))
        torch.testing.assert_close(positions(torch.zeros(1, 512)),
                                   hf.embeddings.position_embeddings.weight)
        # the pretrained table puts cat nearer dog than car
        cat, dog, car = F.normalize(words(ids[0, 1:4]), dim=-1)
        assert cat @ dog > cat @ car


# ---------------------------------------------------------------- bad input, clear errors


def test_negative_or_too_large_ids_raise_like_nn_embedding():
    emb, weight = TokenEmbedding(10, 4), torch.randn(10, 4)
    for bad in (torch.tensor([[1, -1]]), torch.tensor([10])):
        with pytest.raises(IndexError):
            nn.Embedding(10, 4)(bad)  # what torch does: no silent wrap-around
        with pytest.raises(IndexError, match=r"ids must be in \[0, 10\)"):
            emb(bad)
        with pytest.raises(IndexError, match=r"ids must be in \[0, 10\)"):
            one_hot_embed(bad, weight)
    with pytest.raises(TypeError, match="integers"):
        emb(torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        one_hot_embed([1, 2], weight)


def test_transformer_embedding_wants_ids_of_shape_b_t():
    embed = TransformerEmbedding(20, 8, 16).eval()
    with pytest.raises(ValueError, match=r"\(B, T\).*\(2, 5, 1\)"):
        embed(torch.zeros(2, 5, 1, dtype=torch.long))  # not a (2, 5, 5, 8) output
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        embed(torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize("make,error,match", [
    (lambda: TokenEmbedding(10.0, 4), TypeError, "vocab_size must be an int"),
    (lambda: TokenEmbedding(10, 0), ValueError, "d_model must be at least 1"),
    (lambda: LearnedPositionalEmbedding(0, 4), ValueError, "max_len must be at least 1"),
    (lambda: SinusoidalPositionalEncoding(8, 5), ValueError, "even"),
    (lambda: sinusoidal_table(8.0, 4), TypeError, "max_len must be an int"),
    (lambda: TransformerEmbedding(20, 8, 16, dropout=1.5), ValueError, "dropout"),
    (lambda: TransformerEmbedding(20, 8, 16, positions="rotary"), ValueError, "rotary"),
])
def test_constructors_reject_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("cls", [LearnedPositionalEmbedding, SinusoidalPositionalEncoding])
def test_position_modules_want_a_sequence_axis(cls):
    with pytest.raises(ValueError, match="at least 2 axes"):
        cls(8, 4)(torch.zeros(5, dtype=torch.long))
