"""Transfer learning: freezing, counting, the classifier, post-processing, saving and loading,
and the synthetic reviews."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course.datasets import sentiment
from solutions.encoder import Encoder
from solutions.model import ModelConfig
from solutions.transfer import (
    SequenceClassifier,
    count_trainable,
    extract_features,
    freeze,
    from_pretrained,
    postprocess,
    save_pretrained,
    trainable_optimizer,
    unfreeze,
)

TINY = ModelConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=8, dropout=0.1,
                   norm_first=False)


def tiny_encoder(seed: int = 0) -> Encoder:
    torch.manual_seed(seed)
    return Encoder(TINY)


def batch(B: int = 3, T: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, TINY.vocab_size, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[0, T // 2:] = 0                                  # the first text is padded
    return ids.masked_fill(mask == 0, 0), mask


def test_freeze_unfreeze_and_count():
    enc = tiny_encoder()
    total = sum(p.numel() for p in enc.parameters())
    assert count_trainable(enc) == total
    assert count_trainable(freeze(enc)) == 0
    unfreeze(enc, ["pooler"])
    assert count_trainable(enc) == 8 * 8 + 8
    unfreeze(enc, ["layers.1"])
    layer = sum(p.numel() for p in enc.layers[1].parameters())
    assert count_trainable(enc) == 8 * 8 + 8 + layer


def test_shared_parameter_counts_once():
    lin = nn.Linear(4, 4)
    model = nn.ModuleDict({"a": lin, "b": lin})
    assert count_trainable(model) == 20


def test_unfreeze_rejects_unknown_names_and_a_bare_string():
    enc = freeze(tiny_encoder())
    with pytest.raises(ValueError, match="poolr"):
        unfreeze(enc, ["poolr"])
    with pytest.raises(TypeError, match="list of names"):
        unfreeze(enc, "pooler")
    with pytest.raises(ValueError, match="no parameter"):
        unfreeze(enc, ["layers.1.attn.quer"])            # a prefix of a name is not a name
    with pytest.raises(TypeError):
        freeze("not a model")


def test_trainable_optimizer_leaves_frozen_weights_alone():
    clf = SequenceClassifier(tiny_encoder(), 2)
    freeze(clf.encoder)
    before = {n: p.detach().clone() for n, p in clf.encoder.named_parameters()}
    opt = trainable_optimizer(clf, lr=0.1, weight_decay=0.5)
    ids, mask = batch()
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(clf(ids, mask), torch.tensor([0, 1, 1])).backward()
        opt.step()
    assert all(torch.equal(p, before[n]) for n, p in clf.encoder.named_parameters())
    assert count_trainable(clf) == 8 * 2 + 2
    with pytest.raises(ValueError, match="no trainable"):
        trainable_optimizer(freeze(clf), lr=0.1)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_classifier_pools_as_said(pooling):
    clf = SequenceClassifier(tiny_encoder(), 3, pooling=pooling).eval()
    ids, mask = batch()
    hidden = clf.encoder(ids, mask)
    if pooling == "cls":
        pooled = torch.tanh(clf.encoder.pooler.dense(hidden[:, 0]))
    else:
        m = mask[..., None].float()
        pooled = (hidden * m).sum(1) / m.sum(1)
    torch.testing.assert_close(clf(ids, mask), clf.classifier(pooled))
    # padding never changes a text's logits
    longer = torch.cat([ids, torch.zeros(3, 2, dtype=torch.long)], 1)
    torch.testing.assert_close(clf(longer, torch.cat([mask, torch.zeros(3, 2).long()], 1)),
                               clf(ids, mask), rtol=1e-5, atol=1e-6)


def test_classifier_rejects_bad_arguments():
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(tiny_encoder(), 2, pooling="max")
    with pytest.raises(ValueError, match="n_classes"):
        SequenceClassifier(tiny_encoder(), 1)
    with pytest.raises(ValueError, match="id2label"):
        SequenceClassifier(tiny_encoder(), 2, id2label=["a", "b", "c"])
    with pytest.raises(TypeError, match="Encoder"):
        SequenceClassifier(nn.Linear(2, 2), 2)


def test_extract_features_is_eval_mode_mean_over_real_tokens():
    enc = tiny_encoder().train()
    ids, mask = batch()
    feats = extract_features(enc, ids, mask)
    assert enc.training and not feats.requires_grad      # mode restored, no graph kept
    enc.eval()
    hidden = enc(ids, mask)
    m = mask[..., None].float()
    torch.testing.assert_close(feats, (hidden * m).sum(1) / m.sum(1))
    torch.testing.assert_close(extract_features(enc.train(), ids, mask), feats)  # no dropout
    with pytest.raises(ValueError, match="shape"):
        extract_features(enc, ids, mask[:, :-1])


def test_postprocess_softmax_and_labels():
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0], [3.0, 3.0]], dtype=torch.float64)
    out = postprocess(logits, ["negative", "positive"])
    p = torch.softmax(logits, -1)
    assert [o["label"] for o in out] == ["positive", "negative", "negative"]
    assert [o["score"] for o in out] == pytest.approx(p.max(-1).values.tolist())
    assert all(isinstance(o["score"], float) for o in out)
    with pytest.raises(ValueError, match="labels"):
        postprocess(logits, ["a", "b", "c"])


def test_save_and_load_round_trip(tmp_path):
    clf = SequenceClassifier(tiny_encoder(), 2, pooling="mean",
                             id2label=list(sentiment.LABELS)).eval()
    folder = save_pretrained(clf, tmp_path / "clf")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = from_pretrained(folder)
    ids, mask = batch()
    torch.testing.assert_close(loaded(ids, mask), clf(ids, mask), rtol=0, atol=0)
    assert loaded.id2label == list(sentiment.LABELS) and not loaded.training


def test_load_names_what_is_missing(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = save_pretrained(SequenceClassifier(tiny_encoder(), 2), tmp_path / "clf")
    with pytest.raises(FileNotFoundError, match="config.json"):
        from_pretrained(tmp_path)
    tensors = load_file(str(folder / "model.safetensors"))
    del tensors["classifier.bias"]
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="classifier.bias"):
        from_pretrained(folder)


def test_reviews_are_fixed_disjoint_and_balanced():
    train, test = sentiment.reviews("train"), sentiment.reviews("test")
    assert (len(train[0]), len(test[0])) == (2048, 512)
    assert not set(train[0]) & set(test[0])
    assert not set(sentiment.reviews("unlabeled", 500)[0]) & (set(train[0]) | set(test[0]))
    assert sentiment.reviews("train", 10) == (train[0][:10], train[1][:10])
    assert 0.45 < sum(train[1]) / len(train[1]) < 0.55
    # every sentiment word is as common in positive as in negative reviews
    for word in sentiment.POSITIVE + sentiment.NEGATIVE:
        labels = [y for t, y in zip(*train) if f" {word}" in f" {t}".replace(",", "")]
        assert 0.3 < sum(labels) / len(labels) < 0.7, word


def test_reviews_labels_follow_negation_and_contrast():
    rng = __import__("random").Random(0)
    for _ in range(200):
        text, label = sentiment._review(rng)
        main = text
        if ", but " in text:
            main = text.split(", but ")[1]
        elif text.startswith("although "):
            main = text.split(", ", 1)[1]
        elif " even though " in text:
            main = text.split(" even though ")[0]
        elif ", and " in text:
            main = text.split(", and ")[0]
        positive = any(main.endswith(f" {w}") or f" {w} at all" in main
                       for w in sentiment.POSITIVE)
        negated = any(f" {n} " in f" {main} " for n in ("not", "never"))
        assert label == int(positive != negated), text


def test_reviews_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        sentiment.reviews("dev")
    with pytest.raises(ValueError, match="2048"):
        sentiment.reviews("train", 5000)
    with pytest.raises(ValueError, match="unlabeled"):
        sentiment.reviews("unlabeled")
    with pytest.raises(ValueError, match="non-negative"):
        sentiment.reviews("test", -1)


# ---------------------------------------------------------------- pipelines


def word_tokenizer():
    from solutions.tokenization_wordpiece import WordPieceTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "plot", "was", "not", "good"]
    return WordPieceTokenizer({w: i for i, w in enumerate(words)})


def test_sentiment_pipeline_runs_the_four_stages(tmp_path):
    from solutions.pipeline import pipeline

    clf = SequenceClassifier(tiny_encoder(), 2, id2label=list(sentiment.LABELS)).eval()
    tok = word_tokenizer()
    texts = ["the plot was good", "the plot was not good at all"]
    batch = tok(texts, padding=True, return_tensors="pt")
    expected = postprocess(clf(batch["input_ids"], batch["attention_mask"]), clf.id2label)
    assert pipeline("sentiment-analysis", model=clf, tokenizer=tok)(texts) == expected
    folder = save_pretrained(clf, tmp_path / "clf")      # a saved folder works as the model
    assert pipeline("sentiment-analysis", model=folder, tokenizer=tok)(texts[0]) == expected[0]


def test_feature_extraction_pipeline_is_minilm_sentence_vectors():
    from solutions.encoder import SentenceEncoder
    from solutions.pipeline import pipeline

    encoder = SentenceEncoder.from_pretrained()
    vectors = pipeline("feature-extraction", model=encoder)(["a cat", "a car"])
    torch.testing.assert_close(vectors, encoder.encode(["a cat", "a car"]))
    assert vectors.shape == (2, 384)


def test_text_generation_pipeline_decodes_greedy_ids():
    from solutions.decoder import GPT
    from solutions.generation import generate
    from solutions.pipeline import pipeline
    from solutions.tokenization_char import CharTokenizer

    tok = CharTokenizer("abcdefgh ")
    torch.manual_seed(0)
    gpt = GPT(ModelConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2,
                          n_embd=8)).eval()
    out = pipeline("text-generation", model=gpt, tokenizer=tok)("abc", max_new_tokens=5,
                                                               greedy=True)
    ids = generate(gpt, torch.tensor([tok.encode("abc")]), 5, greedy=True)
    assert out == {"generated_text": tok.decode(ids[0].tolist())}
    assert out["generated_text"].startswith("abc") and ids.shape == (1, 8)


def test_pipeline_rejects_unknown_tasks_and_missing_models():
    from solutions.pipeline import pipeline

    with pytest.raises(ValueError, match="known: sentiment-analysis"):
        pipeline("fill-mask")
    with pytest.raises(TypeError, match="SequenceClassifier"):
        pipeline("sentiment-analysis")
    with pytest.raises(TypeError, match="GPT"):
        pipeline("text-generation", model=tiny_encoder())
    clf = SequenceClassifier(tiny_encoder(), 2)
    with pytest.raises(TypeError, match="list of texts"):
        pipeline("sentiment-analysis", model=clf, tokenizer=word_tokenizer())([1, 2])
