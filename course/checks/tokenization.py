"""Checks for Exercise 1 (tokenization) and the catalogue of tokenization mistakes.

Each check takes the learner's object; `hidden=True` runs the cases kept out of the student
notebook (other texts, Unicode, edge cases).
"""

from __future__ import annotations

from collections import Counter
from functools import cache

from course.checks.core import Mistake, compare, copy_of, require_own

T = "solutions.tokenization."

MISTAKES = [
    Mistake("char_vocab_unsorted", T + "CharTokenizer",
            "sorted(set(text))", "list(dict.fromkeys(text))",
            "the characters must get their ids in sorted order, not in order of appearance"),
    Mistake("pair_counted_once", T + "get_pair_counts",
            "counts[pair] = counts.get(pair, 0) + 1", "counts[pair] = 1",
            "every occurrence of a pair counts, not just whether it appears"),
    Mistake("last_pair_missed", T + "get_pair_counts",
            "zip(ids, ids[1:])", "zip(ids[:-1], ids[1:-1])",
            "the last pair of the sequence is not counted (an off-by-one in the loop)"),
    Mistake("merge_overlapping", T + "merge",
            "i += 2", "i += 1",
            "after merging a pair, skip both of its ids: occurrences must not overlap"),
    Mistake("merge_first_only", T + "merge",
            "ids[i] == pair[0] and ids[i + 1] == pair[1]",
            "ids[i] == pair[0] and ids[i + 1] == pair[1] and new_id not in out",
            "only the first occurrence was merged; replace every occurrence"),
    Mistake("tie_to_largest_pair", T + "best_pair",
            "min(counts, key=lambda pair: (-counts[pair], pair))",
            "max(counts, key=lambda pair: (counts[pair], pair))",
            "a tie between equally frequent pairs goes to the smallest pair"),
    Mistake("least_frequent_pair", T + "best_pair",
            "(-counts[pair], pair)", "(counts[pair], pair)",
            "the least frequent pair was chosen; merge the most frequent one"),
    Mistake("new_ids_from_255", T + "train_bpe_naive",
            "range(256, vocab_size)", "range(255, vocab_size)",
            "new ids start at 256, right after the 256 byte values"),
    Mistake("no_pretokenization", T + "train_bpe_naive",
            "regex.findall(pattern, text)", "[text]",
            "split the text into chunks with the regex first: pairs never cross a chunk boundary"),
    Mistake("merges_left_to_right", T + "apply_merges",
            'pair = min(pairs, key=lambda p: merges.get(p, float("inf")))',
            "pair = next((p for p in pairs if p in merges), min(pairs))",
            "merges apply in rank order (the earliest learned first), not left to right"),
    Mistake("merged_bytes_swapped", T + "build_vocab",
            "vocab[a] + vocab[b]", "vocab[b] + vocab[a]",
            "a merged token is the bytes of its first id followed by those of its second"),
    Mistake("strict_utf8", T + "decode_bytes",
            'errors="replace"', 'errors="strict"',
            'decode with errors="replace": ids that cut a character in half must not crash'),
    Mistake("shortest_match_first", T + "wordpiece",
            "range(len(word), start, -1)", "range(start + 1, len(word) + 1)",
            "try the longest piece first (greedy longest-match-first), not the shortest"),
    Mistake("continuation_without_hashes", T + "wordpiece",
            '"##" + word[start:end]', "word[start:end]",
            "pieces after the first are looked up with the '##' prefix"),
    Mistake("partial_unk", T + "wordpiece",
            "return [unk_token]  # nothing in the vocabulary starts here",
            "piece, end = unk_token, start + 1",
            "when some position cannot be matched, the whole word becomes [UNK], not one piece"),
    Mistake("max_chars_off_by_one", T + "wordpiece",
            "if len(word) > max_chars:", "if len(word) >= max_chars:",
            "a word of exactly max_chars characters is still split; only longer words are [UNK]"),
    Mistake("mask_excludes_specials", T + "build_batch",
            "[1] * len(row)", "[0] + [1] * (len(row) - 2) + [0]",
            "the attention mask is 1 for [CLS] and [SEP] too: they are real tokens"),
    Mistake("truncation_ignores_specials", T + "build_batch",
            "ids[: max_length - 2]", "ids[:max_length]",
            "truncate the content to max_length - 2 so that [CLS] and [SEP] still fit"),
]


def _mistakes(name: str) -> list[Mistake]:
    return [m for m in MISTAKES if m.target == T + name]


# ---------------------------------------------------------------- character tokenizer


def check_char_tokenizer(CharTokenizer, hidden: bool = False) -> None:
    """Vocabulary (id 0 = [UNK], then sorted characters), encode, decode, unknown characters."""
    require_own(CharTokenizer, "CharTokenizer")
    cases = [("hello world", "hold low"), ("abcabc", "cab")]
    if hidden:
        cases += [("naïve café 東京", "東 café"), ("zyx", "xyz!"), ("aaa", "")]
    for text, query in cases:
        def probe(cls, text=text, query=query):
            tok = cls(text)
            ids = tok.encode(query)
            return tok.vocab_size, ids, tok.decode(ids), tok.decode([0])
        compare(CharTokenizer, probe, oracle=copy_of(T + "CharTokenizer"),
                what=f"CharTokenizer({text!r}): (vocab_size, encode({query!r}), decode, decode([0]))",
                mistakes=_mistakes("CharTokenizer"))


# ---------------------------------------------------------------- BPE primitives


def check_get_pair_counts(get_pair_counts, hidden: bool = False) -> None:
    """Adjacent pairs counted with a sliding window (so 'aaa' holds (a, a) twice)."""
    require_own(get_pair_counts, "get_pair_counts")
    cases = [[1, 2, 3, 1, 2, 3], [5, 5, 5], [7]]
    if hidden:
        cases += [[], [0, 255, 0, 255, 0], list(b"abracadabra"), [9, 9, 9, 9, 1, 9, 9]]
    for ids in cases:
        def oracle(_, ids=ids):
            return dict(Counter(zip(ids, ids[1:])))
        compare(get_pair_counts, lambda f, ids=ids: dict(f(list(ids))), oracle=oracle,
                what=f"get_pair_counts({ids})", mistakes=_mistakes("get_pair_counts"))


def check_merge(merge, hidden: bool = False) -> None:
    """Every non-overlapping occurrence, left to right, becomes the new id; the input is unchanged."""
    require_own(merge, "merge")
    cases = [([1, 2, 3, 1, 2], (1, 2), 99), ([5, 5, 5], (5, 5), 256)]
    if hidden:
        cases += [([], (1, 2), 3), ([1], (1, 2), 3), ([1, 2], (1, 2), 3), ([2, 1, 2, 1], (1, 2), 7),
                  ([4, 4, 4, 4, 4], (4, 4), 300), ([1, 2, 1, 2, 1, 2], (2, 1), 8)]
    for ids, pair, new_id in cases:
        def probe(f, ids=ids, pair=pair, new_id=new_id):
            before = list(ids)
            out = list(f(before, pair, new_id))
            return out, before == ids
        compare(merge, probe, oracle=copy_of(T + "merge"),
                what=f"merge({ids}, {pair}, {new_id}) (result, input left unchanged)",
                mistakes=_mistakes("merge"))


def check_best_pair(best_pair, hidden: bool = False) -> None:
    """Highest count wins; a tie goes to the smallest pair."""
    require_own(best_pair, "best_pair")
    cases = [{(1, 2): 3, (2, 3): 5, (3, 1): 1}, {(4, 5): 2, (1, 9): 2, (3, 3): 1}]
    if hidden:
        cases += [{(7, 7): 1}, {(2, 1): 4, (1, 2): 4, (1, 3): 4, (0, 9): 3},
                  {(300, 1): 10, (299, 500): 10}]
    for counts in cases:
        def oracle(_, counts=counts):
            return min(counts, key=lambda pair: (-counts[pair], pair))
        compare(best_pair, lambda f, counts=counts: tuple(f(dict(counts))), oracle=oracle,
                what=f"best_pair({counts})", mistakes=_mistakes("best_pair"))


@cache
def _prose(start: int, length: int) -> str:
    from course.data import english_prose

    return english_prose()[start:start + length]


def check_train_bpe(train_bpe_naive, hidden: bool = False) -> None:
    """Merges and their order equal the fast reference trainer's (same tie rule)."""
    require_own(train_bpe_naive, "train_bpe_naive")
    from solutions.tokenization import train_bpe  # the fast trainer: an independent oracle

    cases = [("low lower lowest newer wider", 262), ("aaaa aaab", 259)]
    if hidden:
        cases += [(_prose(0, 2000), 300), ("abc", 256), ("hello", 400), ("日本語 日本", 262)]
    for text, vocab_size in cases:
        def probe(f, text=text, vocab_size=vocab_size):
            return list(f(text, vocab_size).items())
        compare(train_bpe_naive, probe, oracle=train_bpe,
                what=f"train_bpe_naive({text[:40]!r}, {vocab_size}) merges in order",
                mistakes=_mistakes("train_bpe_naive"))


# ---------------------------------------------------------------- BPE encode and decode


@cache
def _merges(text: str, vocab_size: int) -> tuple:
    from solutions.tokenization import train_bpe

    return tuple(train_bpe(text, vocab_size).items())


def check_apply_merges(apply_merges, hidden: bool = False) -> None:
    """Merges apply in rank order (lowest new id first), not in order of position or count."""
    require_own(apply_merges, "apply_merges")
    corpus = "the cat sat on the mat; the hat is that"
    words = ["the", " cat", " that", " thermal", "x", ""]
    vocab_size = 270
    if hidden:
        corpus, vocab_size = _prose(0, 4000), 320
        words = [" the", " transformer", " attention", "aaaa", " ñandú", "1234567"]
    merges = dict(_merges(corpus, vocab_size))
    for word in words:
        def probe(f, word=word):
            return list(f(list(word.encode("utf-8")), dict(merges)))
        compare(apply_merges, probe, oracle=copy_of(T + "apply_merges"),
                what=f"apply_merges(bytes of {word!r}, merges)",
                mistakes=_mistakes("apply_merges"))


def check_decode(build_vocab, decode_bytes, hidden: bool = False) -> None:
    """The vocabulary maps each merged id to its bytes; decoding joins bytes, then UTF-8."""
    require_own(build_vocab, "build_vocab")
    require_own(decode_bytes, "decode_bytes")
    corpus, vocab_size = "the cat sat on the mat; the hat is that", 270
    if hidden:
        corpus, vocab_size = _prose(0, 4000), 320
    merges = dict(_merges(corpus, vocab_size))
    compare(build_vocab, lambda f: f(dict(merges)), oracle=copy_of(T + "build_vocab"),
            what="build_vocab(merges)", mistakes=_mistakes("build_vocab"))
    vocab = copy_of(T + "build_vocab")(merges)
    samples = [[116, 104, 101], [256, 32, 257], [0xC3, 0xA9]]
    if hidden:
        samples += [[], [0xE6, 0x97], list(range(256, 262)), [0xF0, 0x9F, 0x98, 0x80]]
    for ids in samples:
        compare(decode_bytes, lambda f, ids=ids: f(list(ids), dict(vocab)),
                oracle=copy_of(T + "decode_bytes"), what=f"decode_bytes({ids}, vocab)",
                mistakes=_mistakes("decode_bytes"))


# ---------------------------------------------------------------- WordPiece and batches


@cache
def _minilm_vocab() -> dict:
    from course.data import minilm_path
    from solutions.tokenization import load_vocab

    return load_vocab(minilm_path() / "vocab.txt")


def _hf_wordpiece(word: str) -> list[str]:
    """Independent oracle: HF `tokenizers` WordPiece on the same vocabulary."""
    return [t.value for t in _hf_model().tokenize(word)]


@cache
def _hf_model():
    from tokenizers.models import WordPiece

    return WordPiece(_minilm_vocab(), unk_token="[UNK]", max_input_chars_per_word=100)


def check_wordpiece(wordpiece, hidden: bool = False) -> None:
    """Greedy longest-match-first with '##' continuations; one [UNK] for an unmatched word."""
    require_own(wordpiece, "wordpiece")
    words = ["tokenizing", "annoyingly", "the", "transformers", "\u2603", "snow\u2603man"]
    if hidden:
        words += ["a" * 100, "a" * 101, "unaffable", "hugging", "x", "playfulness",
                  "qwxzvbnm", "ü", "electroencephalography"]
    vocab = _minilm_vocab()
    for word in words:
        compare(wordpiece, lambda f, word=word: list(f(word, vocab)),
                oracle=lambda w, _vocab: _hf_wordpiece(w),
                what=f"wordpiece({word[:30]!r}, vocab)", mistakes=_mistakes("wordpiece"))


def check_build_batch(build_batch, hidden: bool = False) -> None:
    """[CLS] ... [SEP], truncation to max_length, right padding, attention mask 1 = real."""
    require_own(build_batch, "build_batch")
    ids = dict(cls_id=101, sep_id=102, pad_id=0)
    cases = [([[7, 8, 9], [5]], dict(padding=True)),
             ([[7, 8, 9, 10, 11], [5, 6]], dict(padding=True, truncation=True, max_length=5))]
    if hidden:
        cases += [([[1, 2, 3]], dict(padding="max_length", max_length=8)),
                  ([[1, 2], [3, 4]], dict(padding=False)),
                  ([[4, 4, 4, 4], [5]], dict(padding="max_length", truncation=True, max_length=4)),
                  ([[], [9]], dict(padding="longest")),
                  ([[1, 2, 3, 4, 5, 6]], dict(truncation=True, max_length=2))]
    for seqs, options in cases:
        def probe(f, seqs=seqs, options=options):
            out = f([list(s) for s in seqs], **ids, **options)
            return {k: [list(row) for row in out[k]] for k in ("input_ids", "attention_mask")}
        compare(build_batch, probe, oracle=copy_of(T + "build_batch"),
                what=f"build_batch({seqs}, {', '.join(f'{k}={v!r}' for k, v in options.items())})",
                mistakes=_mistakes("build_batch"))
    if hidden:  # no room for [CLS] and [SEP]: a clear error, not a silent wrong batch
        compare(build_batch, lambda f: f([[1, 2]], **ids, truncation=True, max_length=1),
                oracle=copy_of(T + "build_batch"), raises=True,
                what="build_batch([[1, 2]], truncation=True, max_length=1) (must raise)")


CHECKS = {
    T + "CharTokenizer": check_char_tokenizer,
    T + "get_pair_counts": check_get_pair_counts,
    T + "merge": check_merge,
    T + "best_pair": check_best_pair,
    T + "train_bpe_naive": check_train_bpe,
    T + "apply_merges": check_apply_merges,
    T + "build_vocab": lambda f, hidden=False: check_decode(
        f, copy_of(T + "decode_bytes"), hidden),
    T + "decode_bytes": lambda f, hidden=False: check_decode(
        copy_of(T + "build_vocab"), f, hidden),
    T + "wordpiece": check_wordpiece,
    T + "build_batch": check_build_batch,
}
