"""Synthetic film reviews whose sentiment depends on negation and on word order.

Every review is made of clauses such as "the plot was dull" (negative), "the plot was not dull
at all" (positive) or "I did not find the acting clever" (negative), joined by contrast words
("..., but ...", "although ..., ...", "... even though ...") so that the clause that decides
the label can come first or last. Each sentiment word appears equally often in positive and
negative reviews, so counting words (a bag of words) cannot tell the classes apart: the label
depends on which words negate which, and on which clause the contrast word makes the main one.

A fraction ``NOISE`` of the labels is flipped at random, so no classifier can beat
``BAYES_ACCURACY = 1 - NOISE`` on average: that is the ceiling every result is compared with.

- :func:`reviews` -- ``(texts, labels)`` for the fixed ``"train"`` or ``"test"`` split (no
  test text occurs in the training split), or any number of ``"unlabeled"`` texts for
  self-supervised pretraining.
"""

from __future__ import annotations

import random

LABELS = ("negative", "positive")  # label id -> name (id2label)
NOISE = 0.02                       # share of labels flipped at random
BAYES_ACCURACY = 1.0 - NOISE       # the best accuracy any classifier can expect

SUBJECTS = ("the plot", "the acting", "the ending", "the music", "the dialogue", "the cast",
            "the pacing", "the story", "the camera work", "the script")
POSITIVE = ("good", "great", "wonderful", "clever", "moving", "charming", "brilliant", "fun")
NEGATIVE = ("bad", "dull", "awful", "boring", "clumsy", "weak", "tedious", "poor")

# A clause template and the sign it gives the adjective's polarity (+1 keeps it, -1 flips it).
CLAUSES = (("{s} was {a}", +1), ("{s} was really {a}", +1), ("{s} was not {a}", -1),
           ("{s} was not {a} at all", -1), ("{s} was never {a}", -1),
           ("i did not find {s} {a}", -1), ("i found {s} {a}", +1))

# How two clauses join: the template, and which clause (0 or 1) decides the label.
JOINS = (("{0}, but {1}", 1), ("although {0}, {1}", 1), ("{0} even though {1}", 0),
         ("{0}, and {1}", None))   # "and": both clauses agree, either decides

SPLITS = {"train": 0, "test": 1, "unlabeled": 2}
SIZES = {"train": 2048, "test": 512}


def _clause(rng: random.Random, polarity: int) -> str:
    """A clause whose sentiment is `polarity` (+1 positive, -1 negative)."""
    template, sign = rng.choice(CLAUSES)
    words = POSITIVE if polarity * sign > 0 else NEGATIVE
    return template.format(s=rng.choice(SUBJECTS), a=rng.choice(words))


def _review(rng: random.Random) -> tuple[str, int]:
    """One review and its true label (1 positive, 0 negative), before label noise."""
    polarity = rng.choice((-1, 1))
    if rng.random() < 0.25:
        return _clause(rng, polarity), int(polarity > 0)
    template, main = rng.choice(JOINS)
    if main is None:
        clauses = [_clause(rng, polarity), _clause(rng, polarity)]
    else:
        clauses = [_clause(rng, -polarity), _clause(rng, -polarity)]
        clauses[main] = _clause(rng, polarity)
    return template.format(*clauses), int(polarity > 0)


def _generate(split: str, n: int, exclude: set[str] = frozenset()) -> tuple[list[str], list[int]]:
    rng = random.Random(1000 + SPLITS[split])
    texts, labels, seen = [], [], set(exclude)
    while len(texts) < n:
        text, label = _review(rng)
        if text in seen:
            continue
        seen.add(text)
        if rng.random() < NOISE:
            label = 1 - label
        texts.append(text)
        labels.append(label)
    return texts, labels


def reviews(split: str = "train", n: int | None = None) -> tuple[list[str], list[int]]:
    """(texts, labels) of a split: "train" (2048 reviews), "test" (512, none of them in
    "train") or "unlabeled" (n texts for pretraining, in neither; their labels are returned
    but meant to be ignored).

    The first n of a split are returned (all when n is None); the same on every machine.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    size = SIZES.get(split)
    if n is None:
        if size is None:
            raise ValueError("say how many unlabeled texts you want: reviews('unlabeled', n)")
        n = size
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if size is not None and n > size:
        raise ValueError(f"the {split} split has {size} reviews, asked for {n}")
    exclude = set()
    if split != "train":  # held-out texts never occur in the training split (nor in test)
        exclude = set(_generate("train", SIZES["train"])[0])
    if split == "unlabeled":
        exclude |= set(_generate("test", SIZES["test"], exclude)[0])
    texts, labels = _generate(split, size or n, exclude)
    return texts[:n], labels[:n]
