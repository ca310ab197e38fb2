"""Tokenization benchmarks: BPE training (fast vs naive trainer) and BPE encoding (ours vs the
Rust `tokenizers` library running the same merges).

The Rust tokenizer runs our merges through `course.checks.oracles.to_hf_tokenizer`, the same
oracle the tests use for encoding.
"""

from __future__ import annotations

import time

from course.checks.oracles import to_hf_tokenizer
from course.datasets import english_prose
from solutions.tokenization_bpe import (
    BPETokenizer,
    train_bpe,
    train_bpe_naive,
)

TRAIN_CHARS, TRAIN_VOCAB = 133_000, 500  # about 133 KB of English prose -> 244 merges
QUICK_TRAIN_CHARS, QUICK_TRAIN_VOCAB = 10_000, 300
QUICK_ENCODE_CHARS = 50_000

TRAIN_SPEEDUP_TARGET = 10.0  # train_bpe at least 10x faster than train_bpe_naive ...
TRAIN_SECONDS_TARGET = 0.5  # ... and under half a second
ENCODE_RATIO_TARGET = 0.5  # our pure-Python encoder at least half as fast as the Rust library


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_training(quick: bool = False) -> dict:
    """train_bpe vs train_bpe_naive on the same prose (they must learn the same merges)."""
    chars, vocab_size = (QUICK_TRAIN_CHARS, QUICK_TRAIN_VOCAB) if quick else (TRAIN_CHARS,
                                                                             TRAIN_VOCAB)
    text = english_prose()[:chars]
    merges = train_bpe(text, vocab_size)
    ours = _best_time(lambda: train_bpe(text, vocab_size), repeats=3)
    start = time.perf_counter()
    naive_merges = train_bpe_naive(text, vocab_size)
    naive = time.perf_counter() - start
    same = list(merges.items()) == list(naive_merges.items())
    ratio = naive / ours
    return dict(
        name=f"BPE training, {len(text.encode()) / 1e3:.0f} KB prose -> vocab {vocab_size}",
        baseline="train_bpe_naive",
        ours_s=ours,
        baseline_s=naive,
        ratio=ratio,
        target=f"ratio >= {TRAIN_SPEEDUP_TARGET:g}, ours < {TRAIN_SECONDS_TARGET:g} s, same merges",
        same=same,
        ok=same and ratio >= TRAIN_SPEEDUP_TARGET and ours < TRAIN_SECONDS_TARGET,
    )


def _help_topics(max_chars: int | None = None) -> list[str]:
    """The documents of `english_prose` (Python's help topics), the first ones up to max_chars."""
    from pydoc_data.topics import topics

    docs, total = [], 0
    for name in sorted(topics):
        if max_chars is not None and total >= max_chars:
            break
        docs.append(topics[name])
        total += len(topics[name])
    return docs


def bench_encoding(quick: bool = False) -> dict:
    """BPETokenizer.encode vs Hugging Face `tokenizers` with the same merges, one call per
    document (a help topic), both from a cold cache: a fresh tokenizer for every repeat."""
    train_text = english_prose()[: QUICK_TRAIN_CHARS if quick else TRAIN_CHARS]
    bpe = BPETokenizer.train(train_text, QUICK_TRAIN_VOCAB if quick else TRAIN_VOCAB)
    docs = _help_topics(QUICK_ENCODE_CHARS if quick else None)
    mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6
    repeats = 1 if quick else 3

    def ours():
        tok = BPETokenizer(bpe.merges)
        for doc in docs:
            tok.encode(doc)

    hf_tokenizers = [to_hf_tokenizer(bpe) for _ in range(repeats)]  # built outside the timing

    def theirs():
        tok = hf_tokenizers.pop()
        for doc in docs:
            tok.encode(doc)

    ours_s, hf_s = _best_time(ours, repeats), _best_time(theirs, repeats)
    hf = to_hf_tokenizer(bpe)
    same = all(bpe.encode(doc) == hf.encode(doc).ids for doc in docs)
    ratio = hf_s / ours_s  # = our MB/s / their MB/s
    return dict(
        name=f"BPE encoding, {mb * 1e3:.0f} KB prose, {len(docs)} docs, vocab {bpe.vocab_size}",
        baseline="HF tokenizers (Rust)",
        ours_mb_s=mb / ours_s,
        baseline_mb_s=mb / hf_s,
        ratio=ratio,
        target=f"ratio >= {ENCODE_RATIO_TARGET:g}, same ids",
        same=same,
        ok=same and ratio >= ENCODE_RATIO_TARGET,
    )


def run(quick: bool = False) -> list[dict]:
    """All tokenization benchmarks; quick=True uses small inputs (a smoke test)."""
    return [bench_training(quick), bench_encoding(quick)]
