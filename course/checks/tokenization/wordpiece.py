"""Parts 5 and 6: WordPiece, checked against Hugging Face `tokenizers`, and batches."""

from __future__ import annotations

from functools import cache

from course.checks.core import Raises, check, compare, copy_of
from course.checks.tokenization.mistakes import WORDPIECE

# ---------------------------------------------------------------- Part 5: WordPiece


@cache
def _minilm_vocab() -> dict:
    from course.datasets import minilm_path
    from solutions.tokenization_wordpiece import load_vocab

    return load_vocab(minilm_path() / "vocab.txt")


@cache
def _hf_model():
    from tokenizers.models import WordPiece

    return WordPiece(_minilm_vocab(), unk_token="[UNK]", max_input_chars_per_word=100)


@check(WORDPIECE + "wordpiece", part=5)
def check_wordpiece(wordpiece, hidden: bool = False) -> None:
    """Greedy longest-match-first with '##' continuations; one [UNK] for an unmatched word.
    Oracle: Hugging Face `tokenizers` WordPiece on the same vocabulary."""
    words = ["tokenizing", "annoyingly", "the", "transformers", "\u2603", "snow\u2603man"]
    if hidden:
        words += ["a" * 100, "a" * 101, "unaffable", "hugging", "x", "playfulness",
                  "qwxzvbnm", "ü", "electroencephalography"]
    vocab = _minilm_vocab()
    for word in words:
        compare(wordpiece, lambda f, word=word: list(f(word, vocab)),
                [t.value for t in _hf_model().tokenize(word)],
                what=f"wordpiece({word[:30]!r}, vocab)")


# ---------------------------------------------------------------- Part 6: batches


@check(WORDPIECE + "build_batch", part=6)
def check_build_batch(build_batch, hidden: bool = False) -> None:
    """[CLS] ... [SEP], truncation to max_length, right padding, attention mask 1 = real."""
    ids = dict(cls_id=101, sep_id=102, pad_id=0)
    cases = [([[7, 8, 9], [5]], dict(padding=True)),
             ([[7, 8, 9, 10, 11], [5, 6]], dict(padding=True, truncation=True, max_length=5))]
    if hidden:
        cases += [([[1, 2, 3]], dict(padding="max_length", max_length=8)),
                  ([[1, 2], [3, 4]], dict(padding=False)),
                  ([[4, 4, 4, 4], [5]], dict(padding="max_length", truncation=True, max_length=4)),
                  ([[], [9]], dict(padding="longest")),
                  ([[1, 2, 3, 4, 5, 6]], dict(truncation=True, max_length=2))]
    reference = copy_of(WORDPIECE + "build_batch")
    for seqs, options in cases:
        def probe(f, seqs=seqs, options=options):
            out = f([list(s) for s in seqs], **ids, **options)
            return {k: [list(row) for row in out[k]] for k in ("input_ids", "attention_mask")}
        compare(build_batch, probe, probe(reference),
                what=f"build_batch({seqs}, {', '.join(f'{k}={v!r}' for k, v in options.items())})")
    if hidden:  # no room for [CLS] and [SEP]: a clear error, not a silent wrong batch
        compare(build_batch, lambda f: f([[1, 2]], **ids, truncation=True, max_length=1),
                Raises("ValueError"),
                what="build_batch([[1, 2]], truncation=True, max_length=1) must raise ValueError")
