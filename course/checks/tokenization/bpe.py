"""Parts 1 to 4: the character tokenizer and byte-pair encoding (pairs, merges, training, encode
and decode)."""

from __future__ import annotations

from collections import Counter
from functools import cache

from course.checks.core import check, compare, copy_of
from course.checks.tokenization.mistakes import BASE, BPE, CHAR

# ---------------------------------------------------------------- Part 1: character tokenizer


@check(CHAR + "CharTokenizer", part=1)
def check_char_tokenizer(CharTokenizer, hidden: bool = False) -> None:
    """vocab_size (unknown token included), encode and decode, unknown characters -> id 0 ->
    unk_token (the constructor that builds the vocabulary is given)."""
    cases = [("hello world", "hold, low!"), ("abcabc", "cab")]
    if hidden:
        cases += [("naïve café 東京", "東 café"), ("zyx", "xyz!"), ("aaa", "")]
    reference = copy_of(CHAR + "CharTokenizer")
    for text, query in cases:
        def probe(cls, text=text, query=query):
            tok = cls(text)
            ids = tok.encode(query)
            return tok.vocab_size, ids, tok.decode(ids), tok.decode([0])
        compare(CharTokenizer, probe, probe(reference),
                what=f"CharTokenizer({text!r}): (vocab_size, encode({query!r}), decode, decode([0]))")


# ---------------------------------------------------------------- Part 2: BPE primitives


@check(BASE + "get_pair_counts", part=2)
def check_get_pair_counts(get_pair_counts, hidden: bool = False) -> None:
    """Adjacent pairs counted with a sliding window (so 'aaa' holds (a, a) twice)."""
    cases = [[1, 2, 3, 1, 2, 3], [5, 5, 5], [7]]
    if hidden:
        cases += [[], [0, 255, 0, 255, 0], list(b"abracadabra"), [9, 9, 9, 9, 1, 9, 9]]
    for ids in cases:
        compare(get_pair_counts, lambda f, ids=ids: dict(f(list(ids))),
                dict(Counter(zip(ids, ids[1:]))), what=f"get_pair_counts({ids})")
    if hidden:  # counts given: added into and returned
        compare(get_pair_counts, lambda f: (lambda c: (f([1, 2, 1, 2], c) is c, c))({(1, 2): 5}),
                (True, {(1, 2): 7, (2, 1): 1}),
                what="get_pair_counts([1, 2, 1, 2], counts={(1, 2): 5}): (returns counts, counts)")


@check(BASE + "merge", part=2)
def check_merge(merge, hidden: bool = False) -> None:
    """Every non-overlapping occurrence, left to right, becomes the new id; the input is unchanged."""
    cases = [([1, 2, 3, 1, 2], (1, 2), 99), ([5, 5, 5], (5, 5), 256)]
    if hidden:
        cases += [([], (1, 2), 3), ([1], (1, 2), 3), ([1, 2], (1, 2), 3), ([2, 1, 2, 1], (1, 2), 7),
                  ([4, 4, 4, 4, 4], (4, 4), 300), ([1, 2, 1, 2, 1, 2], (2, 1), 8)]
    reference = copy_of(BASE + "merge")
    for ids, pair, new_id in cases:
        def probe(f, ids=ids, pair=pair, new_id=new_id):
            given = list(ids)
            out = list(f(given, pair, new_id))
            return out, given                             # the input list after the call
        compare(merge, probe, probe(reference), what=f"merge({ids}, {pair}, {new_id})",
                parts=("the result", "the input list after the call (must be unchanged)"))


# ---------------------------------------------------------------- Part 3: training


@check(BPE + "best_pair", part=3)
def check_best_pair(best_pair, hidden: bool = False) -> None:
    """Highest count wins; a tie goes to the smallest pair."""
    cases = [{(1, 2): 3, (2, 3): 5, (3, 1): 1}, {(4, 5): 2, (1, 9): 2, (3, 3): 1}]
    if hidden:
        cases += [{(7, 7): 1}, {(2, 1): 4, (1, 2): 4, (1, 3): 4, (0, 9): 3},
                  {(300, 1): 10, (299, 500): 10}]
    for counts in cases:
        expected = sorted(counts, key=lambda pair: (-counts[pair], pair))[0]
        compare(best_pair, lambda f, counts=counts: tuple(f(dict(counts))), expected,
                what=f"best_pair({counts})")


@check(BPE + "train_bpe_naive", part=3,
       uses=(BASE + "get_pair_counts", BASE + "merge", BPE + "best_pair"))
def check_train_bpe(train_bpe_naive, hidden: bool = False) -> None:
    """Merges and their order equal the fast reference trainer's (same tie rule)."""
    from solutions.tokenization_bpe import train_bpe  # the fast trainer: an independent oracle

    cases = [("low lower lowest newer wider", 262), ("aaaa aaab", 259)]
    if hidden:
        cases += [(_prose(0, 2000), 300), ("abc", 256), ("hello", 400), ("日本語 日本", 262)]
    for text, vocab_size in cases:
        compare(train_bpe_naive,
                lambda f, text=text, vocab_size=vocab_size: list(f(text, vocab_size).items()),
                list(train_bpe(text, vocab_size).items()),
                what=f"train_bpe_naive({text[:40]!r}, {vocab_size}) merges in order")


@cache
def _prose(start: int, length: int) -> str:
    from course.datasets import english_prose

    return english_prose()[start:start + length]


# ---------------------------------------------------------------- Part 4: encode and decode


@cache
def _merges(text: str, vocab_size: int) -> tuple:
    from solutions.tokenization_bpe import train_bpe

    return tuple(train_bpe(text, vocab_size).items())


def _corpus(hidden: bool) -> dict:
    corpus, vocab_size = "the cat sat on the mat; the hat is that", 270
    if hidden:
        corpus, vocab_size = _prose(0, 4000), 320
    return dict(_merges(corpus, vocab_size))


@check(BPE + "apply_merges", part=4, uses=(BASE + "get_pair_counts", BASE + "merge"))
def check_apply_merges(apply_merges, hidden: bool = False) -> None:
    """Merges apply in rank order (lowest new id first), not in order of position or count."""
    words = ["the", " cat", " that", " thermal", "x", ""]
    if hidden:
        words = [" the", " transformer", " attention", "aaaa", " ñandú", "1234567"]
    merges = _corpus(hidden)
    reference = copy_of(BPE + "apply_merges")
    for word in words:
        def probe(f, word=word):
            return list(f(list(word.encode("utf-8")), dict(merges)))
        compare(apply_merges, probe, probe(reference),
                what=f"apply_merges(bytes of {word!r}, merges)")


@check(BASE + "build_vocab", part=4)
def check_build_vocab(build_vocab, hidden: bool = False) -> None:
    """Ids 0..255 are single bytes; each merged id is the bytes of its pair, first then second."""
    merges = _corpus(hidden)
    expected = {i: bytes([i]) for i in range(256)}
    for (a, b), new_id in merges.items():
        expected[new_id] = expected[a] + expected[b]
    compare(build_vocab, lambda f: dict(f(dict(merges))), expected,
            what=f"build_vocab(merges of {'a 4000-character text' if hidden else 'a short text'})")


@check(BASE + "decode_bytes", part=4)
def check_decode_bytes(decode_bytes, hidden: bool = False) -> None:
    """Decoding joins the bytes of the ids, then UTF-8 with errors="replace"."""
    vocab = copy_of(BASE + "build_vocab")(_corpus(hidden))
    samples = [[116, 104, 101], [256, 32, 257], [0xC3, 0xA9]]
    if hidden:
        samples += [[], [0xE6, 0x97], list(range(256, 262)), [0xF0, 0x9F, 0x98, 0x80]]
    for ids in samples:
        expected = b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")
        compare(decode_bytes, lambda f, ids=ids: f(list(ids), dict(vocab)), expected,
                what=f"decode_bytes({ids}, vocab)")
