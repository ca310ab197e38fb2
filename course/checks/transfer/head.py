"""Parts 3 to 5: `extract_features`, the head `train_head` on all-MiniLM-L6-v2 features, and
`postprocess`."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from course.checks.core import CheckFailed, Raised, call, check, compare, diagnose, fail, short
from course.checks.transfer.mistakes import T
from course.checks.transfer.shared import _batch, _tiny_encoder

# ---------------------------------------------------------------- Part 3: features


def _oracle_features(encoder, ids, mask) -> torch.Tensor:
    encoder = encoder.eval()
    with torch.no_grad():
        hidden = encoder(ids, mask)                            # (B, T, C)
    m = mask.to(hidden.dtype)[..., None]
    return (hidden * m).sum(1) / m.sum(1)


@check(T + "extract_features", part=3)
def check_extract_features(extract_features, hidden: bool = False) -> None:
    """Eval mode, no gradient, the mean of each text's real tokens; the mode is restored."""
    cases = [("padded batch of 3", 3, 6, [6, 3, 1], True)]
    if hidden:
        cases += [("a batch of one, no padding", 1, 5, [5], True),
                  ("an encoder already in eval mode", 2, 7, [2, 7], False)]
    for i, (label, B, T_, lengths, training) in enumerate(cases):
        ids, mask = _batch(B, T_, lengths, seed=30 + i)
        expected = _oracle_features(_tiny_encoder(dropout=0.5, seed=i), ids, mask)

        def probe(f, i=i, ids=ids, mask=mask, training=training):
            encoder = _tiny_encoder(dropout=0.5, seed=i).train(training)
            torch.manual_seed(7)
            first = f(encoder, ids, mask)
            if not isinstance(first, torch.Tensor):
                return first
            return (first.detach(), first.requires_grad, encoder.training)

        compare(extract_features, probe, (expected, False, training),
                what=f"extract_features({label}, encoder dropout 0.5)",
                parts=("features", "features require a gradient", "encoder.training after"),
                rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- Part 4: a head on MiniLM


HEAD_ACCURACY = 0.68  # the accuracy the exercise states for Part 4


@lru_cache(maxsize=1)
def minilm_review_features():
    """all-MiniLM-L6-v2 mean-pooled features of 512 training and 256 test reviews, with
    labels: ((x_train, y_train), (x_test, y_test))."""
    from course.datasets import sentiment
    from solutions.encoder import Encoder
    from solutions.pretrained import minilm_path
    from solutions.tokenization_wordpiece import WordPieceTokenizer

    tokenizer = WordPieceTokenizer(minilm_path() / "vocab.txt")
    encoder = Encoder.from_pretrained().eval()
    out = []
    for split, n in (("train", 512), ("test", 256)):
        texts, labels = sentiment.reviews(split, n)
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        x = torch.cat([_oracle_features(encoder, batch["input_ids"][i:i + 128],
                                        batch["attention_mask"][i:i + 128])
                       for i in range(0, n, 128)])
        out.append((x, torch.tensor(labels)))
    return tuple(out)


def _linear_weights(head) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) of the nn.Linear a learner's train_head returned."""
    if not isinstance(head, nn.Linear):
        raise CheckFailed(f"train_head must return an nn.Linear, got {short(head)}")
    return head.weight.detach(), None if head.bias is None else head.bias.detach()


def _head_accuracy(weights, x: torch.Tensor, y: torch.Tensor, what: str, probe) -> float:
    """The accuracy on (x, y) of a head whose (weight, bias) came back from the learner's code,
    measured here; fails (naming a mistake when one explains it) if it raised or does not fit."""
    if isinstance(weights, Raised):
        fail(f"{what}\n  raised {weights}", diagnose(weights, probe, what))
    try:
        logits = nn.functional.linear(x, *weights)            # (N, n_classes)
    except (TypeError, RuntimeError) as error:
        fail(f"{what}: the head's weights do not fit the features ({error})",
             diagnose(weights, probe, what))
    return (logits.argmax(-1) == y).float().mean().item()


@check(T + "train_head", part=4)
def check_train_head(train_head, hidden: bool = False) -> None:
    """A Linear(C, n_classes) that learns a separable toy problem perfectly, is the same for the
    same seed, comes back in eval mode, and reaches the stated test accuracy on MiniLM
    features. The learner's code returns the head; its weights
    are judged here."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(60, 5, generator=g, dtype=torch.float64).float()
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()   # 3 classes, separable

    def toy(f):
        return _linear_weights(f(x.clone(), y.clone(), n_classes=3, steps=300, lr=0.05))

    what = "train_head(60 separable points in 5-D, 3 classes, 300 steps)"
    weights = call(train_head, toy, what)
    if not isinstance(weights, Raised) and tuple(weights[0].shape) != (3, 5):
        fail(f"{what}: (out_features, in_features)\n  expected (3, 5)\n  got      "
             f"{tuple(weights[0].shape)}", diagnose(weights, toy, what))
    accuracy = _head_accuracy(weights, x, y, what, toy)
    if accuracy < 0.95:
        fail(f"{what}: training accuracy {accuracy:.0%}, expected at least 95% (the points "
             "are separable)", diagnose(weights, toy, what))

    def seeded(f):
        """Heads trained with seeds 5, 5 and 6 under global seeds 1, 2 and 3."""
        heads = []
        with torch.random.fork_rng(devices=[]):
            for global_seed, seed in ((1, 5), (2, 5), (3, 6)):
                torch.manual_seed(global_seed)
                heads.append(f(x.clone(), y.clone(), n_classes=3, steps=20, lr=0.05,
                               seed=seed))
        weights = [torch.cat([t.flatten() for t in _linear_weights(h) if t is not None])
                   for h in heads]
        return (bool(torch.equal(weights[0], weights[1])),
                bool(torch.equal(weights[0], weights[2])), heads[0].training)

    compare(train_head, seeded, (True, False, False),
            what="train_head(the same points, 20 steps) with seed=5 twice, the global seed "
                 "changed in between, then with seed=6",
            parts=("the same head for the same seed", "the same head for another seed",
                   "head.training on return"))
    if hidden:
        (x_train, y_train), (x_test, y_test) = minilm_review_features()
        what = "train_head on MiniLM features of 512 reviews (defaults)"

        def reviews(f):
            return _linear_weights(f(x_train.clone(), y_train.clone()))

        accuracy = _head_accuracy(call(train_head, reviews, what), x_test, y_test, what, reviews)
        if accuracy < HEAD_ACCURACY:
            fail(f"{what}: test accuracy {accuracy:.1%}, the exercise asks for at least "
                 f"{HEAD_ACCURACY:.0%}")


# ---------------------------------------------------------------- Part 5: post-processing


def _oracle_postprocess(logits: torch.Tensor, labels: list[str]) -> list[dict]:
    probs = torch.softmax(logits.double(), dim=1)
    return [{"label": labels[int(row.argmax())], "score": float(row.max())} for row in probs]


@check(T + "postprocess", part=5)
def check_postprocess(postprocess, hidden: bool = False) -> None:
    """One {"label", "score"} per row: the most likely class and its softmax probability."""
    g = torch.Generator().manual_seed(5)
    cases = [("4 texts, 2 classes", torch.randn(4, 2, generator=g) * 3,
              ["negative", "positive"])]
    if hidden:
        cases += [("one text, 3 classes", torch.tensor([[0.5, 2.5, -1.0]]), ["a", "b", "c"]),
                  ("float64, 5 texts, 4 classes",
                   torch.randn(5, 4, generator=g, dtype=torch.float64) * 4,
                   ["w", "x", "y", "z"])]
    for label, logits, names in cases:
        compare(postprocess, lambda f, logits=logits, names=names: f(logits.clone(), names),
                _oracle_postprocess(logits, names), what=f"postprocess({label})",
                rtol=1e-5, atol=1e-6)
