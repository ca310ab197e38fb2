"""Checks for Exercise 1 (tokenization) and the catalogue of tokenization mistakes.

Each check takes the learner's object; `hidden=True` runs the cases kept out of the student
notebook (other texts, Unicode, edge cases). Oracles: `collections.Counter`, the fast trainer
`train_bpe` (an independent implementation), Hugging Face `tokenizers` WordPiece, and the
reference rebuilt from its source where nothing independent exists.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

from course.checks.core import Mistake, Raises, Slip, check, compare, copy_of

BASE = "solutions.tokenization."  # the shared primitives
CHAR = "solutions.tokenization_char."
BPE = "solutions.tokenization_bpe."
WORDPIECE = "solutions.tokenization_wordpiece."

MISTAKES = [
    # Part 1: CharTokenizer's vocab_size, encode and decode (the constructor is given)
    Mistake("vocab_size_without_unk", CHAR + "CharTokenizer",
            "return len(self.itos)", "return len(self.stoi)",
            "vocab_size counts the unknown token too: it is the number of ids, 0 included"),
    Mistake("unknown_char_raises", CHAR + "CharTokenizer",
            "self.stoi.get(ch, 0)", "self.stoi[ch]",
            "a character that was not in the training text must become id 0 (the unknown "
            "token), not raise"),
    Mistake("decode_drops_unk", CHAR + "CharTokenizer",
            'return "".join(self.itos[i] for i in ids)',
            'return "".join(self.itos[i] for i in ids if i > 0)',
            "id 0 was dropped when decoding; it decodes to unk_token, so that an unknown "
            "character stays visible"),
    Mistake("pair_counted_once", BASE + "get_pair_counts",
            "counts[pair] = counts.get(pair, 0) + 1", "counts[pair] = 1",
            "every occurrence of a pair counts, not just whether it appears"),
    Mistake("last_pair_missed", BASE + "get_pair_counts",
            "zip(ids, ids[1:])", "zip(ids[:-1], ids[1:-1])",
            "the last pair of the sequence is not counted (an off-by-one in the loop)"),
    Mistake("merge_overlapping", BASE + "merge",
            "i += 2", "i += 1",
            "after merging a pair, skip both of its ids: occurrences must not overlap"),
    Mistake("merge_first_only", BASE + "merge",
            "ids[i] == pair[0] and ids[i + 1] == pair[1]",
            "ids[i] == pair[0] and ids[i + 1] == pair[1] and new_id not in out",
            "only the first occurrence was merged; replace every occurrence"),
    Mistake("tie_to_largest_pair", BPE + "best_pair",
            "min(counts, key=lambda pair: (-counts[pair], pair))",
            "max(counts, key=lambda pair: (counts[pair], pair))",
            "a tie between equally frequent pairs goes to the smallest pair"),
    Mistake("least_frequent_pair", BPE + "best_pair",
            "(-counts[pair], pair)", "(counts[pair], pair)",
            "the least frequent pair was chosen; merge the most frequent one"),
    Mistake("new_ids_from_255", BPE + "train_bpe_naive",
            "range(256, vocab_size)", "range(255, vocab_size)",
            "new ids start at 256, right after the 256 byte values"),
    Mistake("no_pretokenization", BPE + "train_bpe_naive",
            "regex.findall(pattern, text)", "[text]",
            "split the text into chunks with the regex first: pairs never cross a chunk boundary"),
    Mistake("merges_left_to_right", BPE + "apply_merges",
            'pair = min(pairs, key=lambda p: merges.get(p, float("inf")))',
            "pair = next((p for p in pairs if p in merges), min(pairs))",
            "merges apply in rank order (the earliest learned first), not left to right"),
    Mistake("merged_bytes_swapped", BASE + "build_vocab",
            "vocab[a] + vocab[b]", "vocab[b] + vocab[a]",
            "a merged token is the bytes of its first id followed by those of its second"),
    Mistake("strict_utf8", BASE + "decode_bytes",
            'errors="replace"', 'errors="strict"',
            'decode with errors="replace": ids that cut a character in half must not crash'),
    Mistake("shortest_match_first", WORDPIECE + "wordpiece",
            "range(len(word), start, -1)", "range(start + 1, len(word) + 1)",
            "try the longest piece first (greedy longest-match-first), not the shortest"),
    Mistake("continuation_without_hashes", WORDPIECE + "wordpiece",
            '"##" + word[start:end]', "word[start:end]",
            "pieces after the first are looked up with the '##' prefix"),
    Mistake("partial_unk", WORDPIECE + "wordpiece",
            "else:\n            return [unk_token]",
            "else:\n            piece, end = unk_token, start + 1",
            "when some position cannot be matched, the whole word becomes [UNK], not one piece"),
    Mistake("max_chars_off_by_one", WORDPIECE + "wordpiece",
            "if len(word) > max_chars:", "if len(word) >= max_chars:",
            "a word of exactly max_chars characters is still split; only longer words are [UNK]"),
    Mistake("mask_excludes_specials", WORDPIECE + "build_batch",
            "[1] * len(row)", "[0] + [1] * (len(row) - 2) + [0]",
            "the attention mask is 1 for [CLS] and [SEP] too: they are real tokens"),
    Mistake("truncation_ignores_specials", WORDPIECE + "build_batch",
            "ids[: max_length - 2]", "ids[:max_length]",
            "truncate the content to max_length - 2 so that [CLS] and [SEP] still fit"),
]


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


# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("char_encode_by_list_index", CHAR + "CharTokenizer.encode", """
def encode(self, text):
    return [self.itos.index(ch) for ch in text]
""", None),
    Slip("char_size_of_the_lookup", CHAR + "CharTokenizer.vocab_size", """
@property
def vocab_size(self):
    return len(set(self.stoi.values()))
""", "vocab_size_without_unk"),
    Slip("char_unk_decodes_empty", CHAR + "CharTokenizer.decode", """
def decode(self, ids):
    return "".join(self.itos[i] if i else "" for i in ids)
""", "decode_drops_unk"),
    Slip("pairs_by_index_short", BASE + "get_pair_counts", """
def get_pair_counts(ids, counts=None):
    if counts is None:
        counts = {}
    for i in range(len(ids) - 2):
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
    return counts
""", "last_pair_missed"),
    Slip("pairs_from_a_set", BASE + "get_pair_counts", """
def get_pair_counts(ids, counts=None):
    counts = {} if counts is None else counts
    for pair in set(zip(ids, ids[1:])):
        counts[pair] = counts.get(pair, 0) + 1
    return counts
""", "pair_counted_once"),
    Slip("merge_drops_last_id", BASE + "merge", """
def merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
""", None),
    Slip("merge_in_place", BASE + "merge", """
def merge(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids
""", None),
    Slip("best_pair_first_seen", BPE + "best_pair", """
def best_pair(counts):
    return max(counts, key=counts.get)
""", "tie_to_largest_pair"),
    Slip("train_on_whole_text", BPE + "train_bpe_naive", """
def train_bpe_naive(text, vocab_size, pattern=GPT2_SPLIT_PATTERN):
    ids = list(text.encode("utf-8"))
    merges = {}
    for new_id in range(256, vocab_size):
        counts = get_pair_counts(ids)
        if not counts:
            break
        pair = best_pair(counts)
        ids = merge(ids, pair, new_id)
        merges[pair] = new_id
    return merges
""", "no_pretokenization"),
    Slip("apply_first_known_pair", BPE + "apply_merges", """
def apply_merges(ids, merges):
    ids = list(ids)
    changed = True
    while changed:
        changed = False
        for a, b in zip(ids, ids[1:]):
            if (a, b) in merges:
                ids = merge(ids, (a, b), merges[(a, b)])
                changed = True
                break
    return ids
""", "merges_left_to_right"),
    Slip("vocab_pair_reversed", BASE + "build_vocab", """
def build_vocab(merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for (first, second), new_id in merges.items():
        vocab[new_id] = vocab[second] + vocab[first]
    return vocab
""", "merged_bytes_swapped"),
    Slip("decode_strict", BASE + "decode_bytes", """
def decode_bytes(ids, vocab):
    data = b""
    for i in ids:
        data += vocab[i]
    return data.decode("utf-8")
""", "strict_utf8"),
    Slip("wordpiece_shortest_first", WORDPIECE + "wordpiece", """
def wordpiece(word, vocab, unk_token="[UNK]", max_chars=100):
    if len(word) > max_chars:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        end = start + 1
        while end <= len(word):
            piece = ("##" if start else "") + word[start:end]
            if piece in vocab:
                break
            end += 1
        else:
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces
""", "shortest_match_first"),
    Slip("batch_mask_content_only", WORDPIECE + "build_batch", """
def build_batch(sequences, *, cls_id, sep_id, pad_id, padding=False, truncation=False,
                max_length=None):
    if max_length is not None and max_length < 2:
        raise ValueError("max_length must leave room for [CLS] and [SEP]")
    rows = [[cls_id] + (s[: max_length - 2] if truncation else s) + [sep_id] for s in sequences]
    masks = [[0] + [1] * (len(r) - 2) + [0] for r in rows]
    width = max(map(len, rows)) if padding in (True, "longest") else max_length
    if padding:
        masks = [m + [0] * (width - len(r)) for m, r in zip(masks, rows)]
        rows = [r + [pad_id] * (width - len(r)) for r in rows]
    return {"input_ids": rows, "attention_mask": masks}
""", "mask_excludes_specials"),
]
