"""BPETokenizer.encode_iterable: the ids of encode on the whole text, from pieces cut anywhere
(inside runs of spaces and newlines, inside special tokens, between the characters of a
contraction), yielded while the input is still arriving, in memory that does not grow with the
size of the file."""

from __future__ import annotations

import random
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course.datasets import english_prose
from solutions.tokenization_bpe import BPETokenizer

SPECIALS = ["<|endoftext|>", "<|e|>"]
# GPT-4's pre-tokenization: its newline rule \s*[\r\n] looks across a whole run of whitespace
GPT4_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}|"""
                r""" ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+""")
# pieces that make the pre-tokenization regex sensitive to where the text is cut
TRICKY = ["\n", "\n\n", " ", "  ", "\t", "\r\n", " \n ", "'", "ll", "ve", "s", "'re", "é", "日本",
          "🙂", "123", "4567", ".", "!?", "a", "word", " the", "<|end", "oftext|>", *SPECIALS]


@pytest.fixture(scope="module")
def tokenizers():
    gpt2 = BPETokenizer.train(english_prose()[:20_000], 330, special_tokens=SPECIALS)
    return [gpt2, BPETokenizer(gpt2.merges, SPECIALS, GPT4_PATTERN)]


def _cut(text: str, rng: random.Random, n: int) -> list[str]:
    cuts = sorted(rng.sample(range(len(text) + 1), min(n, len(text) + 1)))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@settings(max_examples=150, deadline=None)
@given(parts=st.lists(st.one_of(st.sampled_from(TRICKY), st.text(max_size=8)), max_size=40),
       seed=st.integers(0, 2**32 - 1))
def test_pieces_cut_anywhere_give_the_ids_of_the_whole_text(tokenizers, parts, seed):
    text = "".join(parts)
    rng = random.Random(seed)
    for tok in tokenizers:
        for allowed in ("all", "none", {"<|e|>"}):
            pieces = _cut(text, rng, rng.randint(0, 20))
            assert list(tok.encode_iterable(pieces, allowed)) == tok.encode(text, allowed)


def test_lines_of_a_file_give_the_ids_of_the_whole_text(tokenizers, tmp_path):
    """An open file (lines with their newlines), text with blank lines, indentation, unicode
    and special tokens: one cut per line at least, and the ids of encode."""
    rng = random.Random(0)
    words = english_prose()[:4000].split(" ")
    lines = []
    for _ in range(400):
        indent = rng.choice(["", " ", "   ", "\t"])
        line = " ".join(rng.choice(words) for _ in range(rng.randint(0, 8)))
        lines.append(indent + line + rng.choice(["", " ", "  ", "'ll", " 日本🙂", SPECIALS[0]])
                     + rng.choice(["\n", "\n", "\n\n", "\n\n\n", " \n", "\r\n"]))
    text = "".join(lines)
    path = tmp_path / "lines.txt"
    path.write_text(text, encoding="utf-8", newline="")
    for tok in tokenizers:
        with open(path, encoding="utf-8", newline="") as f:
            assert list(tok.encode_iterable(f)) == tok.encode(text)


def test_ids_come_while_the_lines_are_still_arriving(tokenizers):
    lines = english_prose()[:20_000].splitlines(keepends=True)
    read = 0

    def arriving():
        nonlocal read
        for line in lines:
            read += 1
            yield line

    ids = tokenizers[0].encode_iterable(arriving())
    first = [next(ids) for _ in range(5)]
    assert read <= 3 < len(lines)
    assert first + list(ids) == tokenizers[0].encode("".join(lines))


def _corpus(path, n_lines: int, seed: int) -> None:
    """Lines of words from a fixed list (so the chunk cache fills the same), with blank lines,
    spaces and unicode."""
    rng = random.Random(seed)
    words = sorted(set(english_prose()[:3000].split()))[:100] + ["日本語", "naïve", "🙂", "'ll"]
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n_lines):
            f.write(" ".join(rng.choice(words) for _ in range(rng.randint(1, 14)))
                    + rng.choice(["\n", "\n\n", "  \n", "\n \n"]))


def _peak_bytes(tok: BPETokenizer, path) -> tuple[int, int]:
    """(ids counted, peak bytes allocated) streaming the file through a fresh tokenizer."""
    fresh = BPETokenizer(tok.merges, list(tok.special_tokens), tok.pattern)
    tracemalloc.start()
    with open(path, encoding="utf-8") as f:
        count = sum(1 for _ in fresh.encode_iterable(f))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return count, peak


def test_peak_memory_does_not_grow_with_the_file(tokenizers, tmp_path):
    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    _corpus(small, 300, seed=1)
    _corpus(large, 3000, seed=2)
    tok = tokenizers[0]
    (n_small, peak_small), (n_large, peak_large) = (_peak_bytes(tok, p) for p in (small, large))
    sizes = small.stat().st_size, large.stat().st_size
    print(f"\n{sizes[0]:,} bytes, {n_small:,} ids: peak {peak_small:,} bytes; "
          f"{sizes[1]:,} bytes, {n_large:,} ids: peak {peak_large:,} bytes "
          f"(ratio {peak_large / peak_small:.2f})")
    assert n_large > 8 * n_small
    assert peak_large < 1.25 * peak_small       # 10 times the text, about the same memory


def test_encode_iterable_errors(tokenizers):
    tok = tokenizers[0]
    with pytest.raises(TypeError, match="for one string use encode"):
        list(tok.encode_iterable("a whole string"))
    with pytest.raises(TypeError, match="each piece"):
        list(tok.encode_iterable(["ok", b"bytes"]))
    with pytest.raises(ValueError, match="unknown special token"):
        list(tok.encode_iterable(["x"], allowed_special={"<|nope|>"}))
