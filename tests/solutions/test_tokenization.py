"""Tests of solutions/tokenization*.py against independent oracles.

- WordPiece: the Hugging Face BERT tokenizer of the packaged all-MiniLM-L6-v2 model (Rust
  `tokenizers` and `transformers.AutoTokenizer`), on every line of the standard library's help
  text, on edge cases and on every Unicode code point whose category is stable since Unicode 3.2.
- BPE: an independent recount of pair statistics at every training step, the naive trainer, an
  independent merge-one-occurrence-at-a-time encoder and the Rust `tokenizers` BPE model built
  from the same merges; hypothesis for the round trip decode(encode(s)) == s.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from itertools import pairwise

import pytest
import regex
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.datasets import english_prose, minilm_path
from solutions.tokenization import (
    GPT2_SPLIT_PATTERN,
    build_vocab,
    decode_bytes,
    get_pair_counts,
    merge,
)
from solutions.tokenization_bpe import (
    BPETokenizer,
    apply_merges,
    best_pair,
    train_bpe,
    train_bpe_naive,
)
from solutions.tokenization_char import CharTokenizer
from solutions.tokenization_wordpiece import basic_tokenize, build_batch, load_vocab, wordpiece

# Texts drawn from every Unicode character that UTF-8 can hold (all but the lone surrogates
# U+D800..U+DFFF, which a Python str may contain but no UTF-8 text can). This is also hypothesis'
# default alphabet for st.text().
utf8_text = st.text(st.characters(codec="utf-8"))


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir():
    return minilm_path()  # also sets HF_HUB_OFFLINE=1


@pytest.fixture(scope="module")
def hf_rust(model_dir):
    """The packaged tokenizer.json, without its fixed padding/truncation to 128."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


@pytest.fixture(scope="module")
def hf_auto(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


@pytest.fixture(scope="module")
def bert(model_dir):
    from solutions.tokenization_wordpiece import WordPieceTokenizer

    return WordPieceTokenizer(model_dir / "vocab.txt")


@pytest.fixture(scope="module")
def prose_lines():
    from pydoc_data.topics import topics

    return "\n".join(topics.values()).splitlines()


SPECIALS = ["<|endoftext|>", "<|pad|>"]


@pytest.fixture(scope="module")
def bpe():
    """Byte-level BPE with special tokens, trained once on 30 KB of prose."""
    return BPETokenizer.train(english_prose()[:30_000], 400, special_tokens=SPECIALS)


@pytest.fixture(scope="module")
def bpe_plain():
    return BPETokenizer.train(english_prose()[:30_000], 400)


def _first_mismatches(pairs, n=3):
    return "\n".join(f"{text!r}: ours {a} != HF {b}" for text, a, b in pairs[:n])


# ---------------------------------------------------------------------------------------------
# Character tokenizer
# ---------------------------------------------------------------------------------------------


def test_char_tokenizer_ids_are_sorted_characters_after_unk():
    tok = CharTokenizer("hello")
    assert tok.vocab_size == 5  # [UNK] e h l o
    assert tok.encode("hello") == [2, 1, 3, 3, 4]
    assert tok.decode(tok.encode("hello")) == "hello"


def test_char_tokenizer_unknown_characters_map_to_zero_and_decode_to_unk_token():
    tok = CharTokenizer("abc", unk_token="?")
    assert tok.encode("axc") == [1, 0, 3]
    assert tok.decode([1, 0, 3]) == "a?c"


def test_char_tokenizer_errors():
    tok = CharTokenizer("abc")
    with pytest.raises(TypeError, match="int"):
        CharTokenizer(123)
    with pytest.raises(TypeError, match="list"):
        tok.encode(["a"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([4])


# ---------------------------------------------------------------------------------------------
# BPE primitives
# ---------------------------------------------------------------------------------------------


def test_get_pair_counts_uses_a_sliding_window_and_accumulates():
    assert get_pair_counts([97, 97, 97]) == {(97, 97): 2}
    assert get_pair_counts([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert get_pair_counts([5]) == {}
    counts = {(1, 2): 10}
    assert get_pair_counts([1, 2], counts) is counts
    assert counts == {(1, 2): 11}


def test_merge_replaces_non_overlapping_pairs_left_to_right():
    assert merge([97, 97, 97], (97, 97), 256) == [256, 97]
    assert merge([97, 97, 97, 97], (97, 97), 256) == [256, 256]
    assert merge([1, 2, 3, 1, 2], (1, 2), 300) == [300, 3, 300]
    assert merge([2, 1], (1, 2), 300) == [2, 1]
    assert merge([], (1, 2), 300) == []


def test_best_pair_takes_the_highest_count_then_the_smallest_pair():
    assert best_pair({(1, 1): 2, (5, 1): 3, (2, 9): 3}) == (2, 9)
    assert best_pair({(3, 4): 1, (3, 2): 1}) == (3, 2)
    assert best_pair({(9, 9): 5, (0, 0): 4}) == (9, 9)


def _chunks(text: str) -> list[list[int]]:
    return [list(c.encode("utf-8")) for c in regex.findall(GPT2_SPLIT_PATTERN, text)]


def _merge_by_hand(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Independent of `merge`: a stack. A merged top is new_id, which never equals pair[0]."""
    out: list[int] = []
    for i in ids:
        if out and out[-1] == pair[0] and i == pair[1]:
            out[-1] = new_id
        else:
            out.append(i)
    return out


def _replay(text: str, merges: dict[tuple[int, int], int]) -> None:
    """Replay training: before each merge, recount every pair and check the chosen one."""
    chunks = _chunks(text)
    for step, (pair, new_id) in enumerate(merges.items()):
        assert new_id == 256 + step, f"merge {step} creates id {new_id}, expected {256 + step}"
        counts = Counter()
        for ids in chunks:
            counts.update(pairwise(ids))
        top = max(counts.values())
        assert counts[pair] == top, f"step {step}: {pair} has count {counts[pair]}, max is {top}"
        tied = sorted(p for p, c in counts.items() if c == top)
        assert pair == tied[0], f"step {step}: among the tied pairs {tied[:5]} chose {pair}"
        chunks = [_merge_by_hand(ids, pair, new_id) for ids in chunks]


@pytest.mark.parametrize(
    "text, vocab_size",
    [
        (english_prose()[:20_000], 420),
        (english_prose()[200_000:204_000], 330),
        ("ab ab ab ba ba ba xy yx xy yx", 280),  # ties everywhere
        ("aaaaaa aaa a aaaaaaaa", 270),  # overlapping pairs, stops early
        ("héllo wörld, 中文字符 🤗🤗 \t\n  naïve  ", 300),  # multi-byte characters
    ],
)
def test_train_bpe_choices_are_maximal_and_tie_broken_by_smallest_pair(text, vocab_size):
    merges = train_bpe(text, vocab_size)
    _replay(text, merges)
    # It stops early only when no pair is left.
    if len(merges) < vocab_size - 256:
        chunks = _chunks(text)
        for pair, new_id in merges.items():
            chunks = [merge(ids, pair, new_id) for ids in chunks]
        assert all(len(ids) == 1 for ids in chunks)


@pytest.mark.parametrize(
    "text, vocab_size",
    [
        (english_prose()[:12_000], 400),
        (english_prose()[300_000:306_000], 350),
        ("aaaaaa", 300),
        ("ab ab ab ba ba ba xy yx xy yx", 280),
        ("", 260),
        ("a b c", 260),
        ("δοκιμή テスト 🤗 👩‍👩‍👧 \x00\x00", 290),
    ],
)
def test_train_bpe_equals_train_bpe_naive(text, vocab_size):
    fast, naive = train_bpe(text, vocab_size), train_bpe_naive(text, vocab_size)
    assert list(fast.items()) == list(naive.items())  # same merges in the same order


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.sampled_from("ab c\n'é1."), max_size=120), extra=st.integers(0, 40))
def test_train_bpe_equals_train_bpe_naive_on_random_text(text, extra):
    assert list(train_bpe(text, 256 + extra).items()) == list(
        train_bpe_naive(text, 256 + extra).items()
    )


def test_train_bpe_stops_when_no_pair_is_left():
    assert train_bpe("aaaa", 1000) == {(97, 97): 256, (256, 256): 257}
    assert train_bpe("a b", 300) == {(32, 98): 256}


def _encode_one_at_a_time(ids, merges):
    """Independent encoder: merge only the leftmost occurrence of the lowest-rank pair, repeat."""
    ids = list(ids)
    while True:
        found = [(merges[p], i) for i, p in enumerate(pairwise(ids)) if p in merges]
        if not found:
            return ids
        new_id, i = min(found)
        ids[i : i + 2] = [new_id]


def test_apply_merges_applies_merges_in_rank_order(bpe_plain):
    merges = bpe_plain.merges
    for chunk in set(regex.findall(GPT2_SPLIT_PATTERN, english_prose()[100_000:140_000])):
        ids = list(chunk.encode("utf-8"))
        assert apply_merges(ids, merges) == _encode_one_at_a_time(ids, merges), chunk


def test_apply_merges_prefers_the_lower_rank_not_the_leftmost_pair():
    merges = {(98, 99): 256, (97, 98): 257}  # "bc" was learned before "ab"
    assert apply_merges(list(b"abc"), merges) == [97, 256]
    assert apply_merges(list(b"aaa"), {(97, 97): 256}) == [256, 97]


@settings(max_examples=100, deadline=None)
@given(text=utf8_text)
def test_apply_merges_matches_independent_encoder_on_random_text(bpe_plain, text):
    ids = list(text.encode("utf-8"))
    assert apply_merges(ids, bpe_plain.merges) == _encode_one_at_a_time(ids, bpe_plain.merges)


def test_build_vocab_and_decode_bytes():
    vocab = build_vocab({(104, 105): 256, (256, 33): 257})
    assert vocab[104] == b"h" and vocab[256] == b"hi" and vocab[257] == b"hi!"
    assert len(vocab) == 258
    assert decode_bytes([257, 32, 256], vocab) == "hi! hi"
    assert decode_bytes([0xE4], vocab) == "\ufffd"  # a partial UTF-8 character


# ---------------------------------------------------------------------------------------------
# BPE tokenizer
# ---------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(text=utf8_text)
def test_bpe_round_trip(bpe, bpe_plain, text):
    assert bpe_plain.decode(bpe_plain.encode(text)) == text
    assert bpe.decode(bpe.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.one_of(utf8_text, st.sampled_from(SPECIALS)), max_size=6))
def test_bpe_round_trip_with_special_tokens(bpe, parts):
    text = "".join(parts)
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text
    for name, i in bpe.special_tokens.items():
        assert ids.count(i) == text.count(name)
    plain = bpe.encode(text, allowed_special="none")
    assert not set(plain) & set(bpe.special_tokens.values())
    assert bpe.decode(plain) == text


def test_bpe_lone_surrogates_cannot_be_encoded(bpe):
    # A str may hold a lone surrogate, but UTF-8 cannot: such strings are outside the round trip.
    with pytest.raises(UnicodeEncodeError):
        bpe.encode("a\ud800b")


def test_bpe_vocab_size_counts_special_tokens(bpe):
    assert bpe.vocab_size == 400 == len(bpe.vocab)
    assert len(bpe.merges) == 400 - 256 - 2
    assert bpe.special_tokens == {"<|endoftext|>": 398, "<|pad|>": 399}
    assert bpe.vocab[398] == b"<|endoftext|>"


def test_bpe_overlapping_special_tokens_prefer_the_longest():
    tok = BPETokenizer(special_tokens=["<s>", "<s>!"])
    assert tok.encode("<s>!<s>") == [257, 256]
    assert tok.encode("<s>!", allowed_special={"<s>"}) == [256, ord("!")]


def test_bpe_allowed_special(bpe):
    text = "end<|endoftext|>pad<|pad|>"
    ids = bpe.encode(text, allowed_special={"<|endoftext|>"})
    assert 398 in ids and 399 not in ids
    assert bpe.decode(ids) == text
    assert bpe.encode(text, allowed_special=set()) == bpe.encode(text, allowed_special="none")


def test_bpe_encodes_common_words_as_single_tokens(bpe_plain):
    ids = bpe_plain.encode(" the")
    assert len(ids) == 1 and bpe_plain.vocab[ids[0]] == b" the"


def test_bpe_matches_hf_tokenizers_on_prose(bpe, bpe_plain):
    from course.checks.oracles import to_hf_tokenizer

    text = english_prose()
    for tok in (bpe_plain, bpe):
        hf = to_hf_tokenizer(tok)
        assert tok.encode(text) == hf.encode(text).ids
    special = "one<|endoftext|>two<|pad|><|pad|> three"
    assert bpe.encode(special) == to_hf_tokenizer(bpe).encode(special).ids


def test_bpe_save_load_round_trip(bpe, tmp_path):
    path = tmp_path / "bpe.json"
    bpe.save(path)
    loaded = BPETokenizer.load(path)
    assert list(loaded.merges.items()) == list(bpe.merges.items())
    assert loaded.special_tokens == bpe.special_tokens
    assert loaded.pattern == bpe.pattern
    text = english_prose()[5000:8000] + "<|endoftext|>"
    assert loaded.encode(text) == bpe.encode(text)
    assert json.loads(path.read_text(encoding="utf-8"))["merges"][0] == list(next(iter(bpe.merges)))


def test_bpe_errors(bpe, tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer.train("hello", 255)
    with pytest.raises(ValueError, match="258"):
        BPETokenizer.train("hello", 257, special_tokens=SPECIALS)
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe("hello", 100)
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe_naive("hello", 100)
    with pytest.raises(ValueError, match="<|nope|>"):
        bpe.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match="allowed_special"):
        bpe.encode("x", allowed_special="some")
    with pytest.raises(TypeError, match="bytes"):
        bpe.encode(b"hello")
    with pytest.raises(TypeError, match="NoneType"):
        train_bpe(None, 300)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        bpe.decode([bpe.vocab_size])
    with pytest.raises(ValueError, match="distinct"):
        BPETokenizer(special_tokens=["<s>", "<s>"])
    with pytest.raises(ValueError, match="without gaps"):
        BPETokenizer({(1, 2): 257})
    with pytest.raises(ValueError, match="not defined before"):
        BPETokenizer({(1, 2): 256, (300, 2): 257})


def test_bpe_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        BPETokenizer.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a JSON"):
        BPETokenizer.load(bad)
    bad.write_text(json.dumps({"hello": 1}), encoding="utf-8")
    with pytest.raises(ValueError, match="course-bpe"):
        BPETokenizer.load(bad)
    good = {"format": "course-bpe", "version": 1, "pattern": GPT2_SPLIT_PATTERN,
            "merges": [[97, 98]], "special_tokens": []}
    for change, message in [
        ({"version": 99}, "version"),
        ({"merges": [[97]]}, "malformed"),
        ({"merges": "ab"}, "malformed"),
        ({"merges": [[97, 98], [97, 98]]}, "twice"),
        ({"merges": [[97, 300]]}, "not defined before"),
        ({"special_tokens": "<s>"}, "malformed"),
        ({"pattern": "(unclosed"}, "malformed"),
    ]:
        bad.write_text(json.dumps({**good, **change}), encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            BPETokenizer.load(bad)
    del good["pattern"]
    bad.write_text(json.dumps(good), encoding="utf-8")
    with pytest.raises(ValueError, match="pattern"):
        BPETokenizer.load(bad)


# ---------------------------------------------------------------------------------------------
# WordPiece against the Hugging Face BERT tokenizer
# ---------------------------------------------------------------------------------------------


def test_wordpiece_ids_match_hf_on_every_line_of_prose(bert, hf_rust, prose_lines):
    ours = [bert.encode(line) for line in prose_lines]
    theirs = [e.ids for e in hf_rust.encode_batch(prose_lines)]
    diff = [(t, a, b) for t, a, b in zip(prose_lines, ours, theirs, strict=True) if a != b]
    assert not diff, f"{len(diff)} of {len(prose_lines)} lines differ:\n" + _first_mismatches(diff)


EDGE_CASES = [
    "café naïve Ångström Crème Brûlée",
    "中文字符",
    "mixed 中文 with latin中文text",
    "ひらがな カタカナ 漢字とかな",
    "한국어 텍스트",
    "a\x00b\x07c\u200bd\ufffde\x1ff\x0bg\x85h",  # NUL, BEL, zero-width space, U+FFFD, ...
    "tab\there\nnewline\r\nreturn\u2028line sep\u00a0nbsp\u3000ideographic",
    "x" * 100,
    "x" * 101,
    "a" + "b" * 99 + " ok",
    "!!!???...",
    "--",
    "$$$ ^^^ ``` ~~~ ||| <=> +",
    "«quotes» „low“ ‘single’ — dash … ellipsis ¿¡",
    "emoji 🤗🥲👩‍👩‍👧 ok",
    "",
    "   ",
    " \t\n\r ",
    "İstanbul IŞIK ı",
    "Straße STRASSE ẞ",
    "ΟΔΟΣ ΣΊΣΥΦΟΣ",
    "[CLS] hello [MASK] world[SEP] [PAD][UNK]",
    "[cls] [mask] [UNK]x",
    "annoyingly tokenizing unbelievably",
    "don't I'm you're it's",
    "e\u0301 (e + combining accent) ﬁ ligature ① ½",
    "Über 3.14159 $1,000,000 user@example.com https://example.com/a?b=c",
    "unassigned a\u0378b \U0010fffe",
]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_wordpiece_edge_cases_match_hf(bert, hf_rust, hf_auto, text):
    assert bert.encode(text) == hf_rust.encode(text).ids
    assert bert.tokenize(text) == hf_auto.tokenize(text)


def _stable_code_points(unassigned: bool = False) -> list[int]:
    """Code points Unicode 3.2 already had, with the same general category today; or with
    unassigned=True those of planes 0-1 that are still unassigned (for Python's Unicode)."""
    old = unicodedata.ucd_3_2_0
    return [
        cp for cp in range(0x20000 if unassigned else 0x110000)
        if not 0xD800 <= cp <= 0xDFFF
        and old.category(chr(cp)) == unicodedata.category(chr(cp))
        and (old.category(chr(cp)) == "Cn") == unassigned
    ]


def _differences(cps, ours, theirs) -> list[int]:
    """Each code point in context ("a?b A?"), compared in blocks; a block that differs is
    searched character by character."""
    diff = []
    for start in range(0, len(cps), 4000):
        block = cps[start : start + 4000]
        text = "".join(f"a{chr(cp)}b A{chr(cp)} " for cp in block)
        if ours(text) != theirs(text):
            diff += [cp for cp in block
                     if ours(f"a{chr(cp)}b A{chr(cp)}") != theirs(f"a{chr(cp)}b A{chr(cp)}")]
    return diff


def _describe(diff: list[int]) -> str:
    return "differ from HF: " + ", ".join(
        f"U+{cp:04X} {unicodedata.name(chr(cp), '?')}" for cp in diff[:10]
    )


def _hf_words(normalizer, pre_tokenizer):
    return lambda text: [w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))]


def test_basic_tokenize_matches_hf_on_every_stable_code_point(hf_rust):
    """BERT normalization + pre-tokenization of every code point with a stable category.

    Documented exception: code points added or re-categorised after Unicode 3.2 (about 560 of
    them). Python's `unicodedata` follows Python's Unicode version, while HF's Rust code takes
    categories (control, nonspacing mark, punctuation) from an older table and lowercasing from a
    newer one. E.g. U+166D CANADIAN SYLLABICS CHI SIGN, punctuation (Po) when that table was made,
    a symbol (So) since Unicode 12: HF splits "a\u166db" into three words, we keep one.
    """
    cps = _stable_code_points()
    assert len(cps) > 200_000
    diff = _differences(cps, basic_tokenize, _hf_words(hf_rust.normalizer, hf_rust.pre_tokenizer))
    assert not diff, _describe(diff)


def test_basic_tokenize_keeps_unassigned_code_points_like_hf():
    """Unassigned code points are kept (only Cc Cf Co Cs are dropped). Compared without
    lowercasing: letters assigned after Python's Unicode version (e.g. U+A7CB, Unicode 16) have a
    lowercase form in HF's newer tables that Python cannot know."""
    from tokenizers import normalizers, pre_tokenizers

    cps = _stable_code_points(unassigned=True)
    assert len(cps) > 10_000
    hf = _hf_words(normalizers.BertNormalizer(lowercase=False), pre_tokenizers.BertPreTokenizer())
    diff = _differences(cps, lambda text: basic_tokenize(text, lowercase=False), hf)
    assert not diff, _describe(diff)


def test_basic_tokenize_cased_matches_hf_normalizer():
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=False)
    pre = pre_tokenizers.BertPreTokenizer()
    for text in EDGE_CASES:
        expected = [w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text))]
        assert basic_tokenize(text, lowercase=False) == expected, text


def test_basic_tokenize_examples():
    assert basic_tokenize("Hello, World!") == ["hello", ",", "world", "!"]
    assert basic_tokenize("Héllo  wörld", lowercase=False) == ["Héllo", "wörld"]
    assert basic_tokenize("中文x") == ["中", "文", "x"]
    assert basic_tokenize("a$b") == ["a", "$", "b"]  # ASCII symbols split too
    assert basic_tokenize("ΟΔΟΣ") == ["οδοσ"]  # lowercased one character at a time
    # After U+166D was re-categorised (see the code-point test), we follow Python's Unicode data.
    assert basic_tokenize("a\u166db") == ["a\u166db"]


def test_decode_matches_hf(bert, hf_rust, hf_auto, prose_lines):
    texts = prose_lines[::7] + EDGE_CASES
    for text in texts:
        ids = hf_rust.encode(text).ids
        for skip in (True, False):
            expected = hf_rust.decode(ids, skip_special_tokens=skip)
            assert bert.decode(ids, skip_special_tokens=skip) == expected, (text, skip)
            assert hf_auto.decode(ids, skip_special_tokens=skip) == expected
    assert bert.decode(torch.tensor(bert.encode("hello world"))) == "hello world"


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.integers(0, 30521), max_size=20), skip=st.booleans())
def test_decode_matches_hf_on_random_ids(bert, hf_rust, ids, skip):
    assert bert.decode(ids, skip_special_tokens=skip) == hf_rust.decode(
        ids, skip_special_tokens=skip
    )


def test_wordpiece_greedy_longest_match_on_real_vocab(bert):
    assert wordpiece("annoyingly", bert.vocab) == ["annoying", "##ly"]
    assert wordpiece("tokenizing", bert.vocab) == ["token", "##izing"]
    assert bert.tokenize("Annoyingly, tokenizing!") == [
        "annoying", "##ly", ",", "token", "##izing", "!"
    ]


def test_wordpiece_greedy_takes_longest_prefix_even_when_another_split_exists():
    vocab = {"a": 0, "ab": 1, "##c": 2, "##bc": 3, "[UNK]": 4, "##d": 5}
    assert wordpiece("abc", vocab) == ["ab", "##c"]  # not ["a", "##bc"]
    assert wordpiece("abd", vocab) == ["ab", "##d"]
    assert wordpiece("abx", vocab) == ["[UNK]"]  # the whole word, not ["ab", "[UNK]"]
    assert wordpiece("b", vocab) == ["[UNK]"]  # "##bc" is a continuation only
    assert wordpiece("", vocab) == []


def test_wordpiece_max_chars(bert):
    assert wordpiece("x" * 100, bert.vocab) != ["[UNK]"]
    assert wordpiece("x" * 101, bert.vocab) == ["[UNK]"]
    assert wordpiece("abc", bert.vocab, unk_token="<unk>", max_chars=2) == ["<unk>"]


def test_special_tokens_in_text_stay_whole(bert):
    assert bert.tokenize("a [MASK] b[SEP]") == ["a", "[MASK]", "b", "[SEP]"]
    ids = bert.encode("a [MASK] b")
    assert ids[0] == bert.vocab["[CLS]"] and ids[-1] == bert.vocab["[SEP]"]
    assert bert.vocab["[MASK]"] in ids
    assert bert.encode("hi", add_special_tokens=False) == [bert.vocab["hi"]]


def test_convert_tokens_and_ids(bert):
    assert bert.convert_tokens_to_ids("hello") == bert.vocab["hello"]
    assert bert.convert_tokens_to_ids(["hello", "notaword!"]) == [bert.vocab["hello"], 100]
    assert bert.convert_ids_to_tokens([101, 102]) == ["[CLS]", "[SEP]"]
    assert bert.convert_ids_to_tokens(0) == "[PAD]"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        bert.convert_ids_to_tokens([10**6])


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------

BATCH = [
    "Hello world!",
    "A much longer sentence, with punctuation, that will need truncating at some point.",
    "",
    "中文 and café",
]


@pytest.mark.parametrize(
    "texts, kwargs",
    [
        (BATCH, dict(padding=True)),
        (BATCH, dict(padding="longest", truncation=True, max_length=8)),
        (BATCH, dict(padding="max_length", truncation=True, max_length=24)),
        (BATCH, dict(padding="max_length", truncation=True, max_length=5)),
        (BATCH, dict(padding=True, truncation=True, max_length=2)),
        (BATCH[:1], dict()),
        ("One single string.", dict()),
        ("One single string.", dict(padding="max_length", max_length=10)),
        ("One single string, truncated.", dict(truncation=True, max_length=4)),
        # max_length without truncation: padding turns Hugging Face's truncation off
        (BATCH, dict(padding=True, max_length=5)),
        (BATCH, dict(padding="longest", max_length=8)),
        (BATCH, dict(padding="max_length", max_length=24)),
    ],
)
@pytest.mark.filterwarnings("ignore:`max_length` is ignored")
def test_batch_tensors_match_hf(bert, hf_auto, texts, kwargs):
    ours = bert(texts, return_tensors="pt", **kwargs)
    theirs = hf_auto(texts, return_tensors="pt", **kwargs)
    for key in ("input_ids", "attention_mask"):
        assert ours[key].dtype == torch.long
        assert ours[key].shape == theirs[key].shape, key
        assert torch.equal(ours[key], theirs[key]), key


@pytest.mark.parametrize(
    "texts, kwargs",
    [
        (BATCH, dict()),  # ragged
        (BATCH, dict(truncation=True, max_length=6)),
        (BATCH, dict(padding=True)),
        ("single", dict()),
        ("single", dict(padding="max_length", max_length=6)),
        # max_length without truncation, with padding: no truncation, as in Hugging Face
        *[(texts, dict(padding=padding, max_length=max_length))
          for texts in (BATCH, "One single string, rather long for this.")
          for padding in (True, "longest", "max_length") for max_length in (2, 5, 8, 24)],
    ],
)
@pytest.mark.filterwarnings("ignore:`max_length` is ignored")
def test_batch_lists_match_hf(bert, hf_auto, texts, kwargs):
    ours, theirs = bert(texts, **kwargs), hf_auto(texts, **kwargs)
    assert ours["input_ids"] == theirs["input_ids"]
    assert ours["attention_mask"] == theirs["attention_mask"]


def test_truncation_without_max_length_uses_model_max_length(bert, hf_auto):
    long_text = "word " * 700
    ours = bert(long_text, truncation=True)
    assert len(ours["input_ids"]) == 512 == bert.model_max_length
    assert ours["input_ids"] == hf_auto(long_text, truncation=True)["input_ids"]


def test_build_batch_pads_right_and_masks_padding():
    batch = build_batch([[5, 6, 7], [8]], cls_id=1, sep_id=2, pad_id=0, padding=True)
    assert batch["input_ids"] == [[1, 5, 6, 7, 2], [1, 8, 2, 0, 0]]
    assert batch["attention_mask"] == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    batch = build_batch([[5, 6, 7], [8]], cls_id=1, sep_id=2, pad_id=0, truncation=True,
                        padding="max_length", max_length=4)
    assert batch["input_ids"] == [[1, 5, 6, 2], [1, 8, 2, 0]]
    assert batch["attention_mask"] == [[1, 1, 1, 1], [1, 1, 1, 0]]
    batch = build_batch([[5, 6, 7], [8]], cls_id=1, sep_id=2, pad_id=0, truncation=True,
                        max_length=2)
    assert batch["input_ids"] == [[1, 2], [1, 2]]
    assert build_batch([[5], [6, 7]], cls_id=1, sep_id=2, pad_id=0)["input_ids"] == [
        [1, 5, 2], [1, 6, 7, 2]
    ]


# ---------------------------------------------------------------------------------------------
# WordPiece errors
# ---------------------------------------------------------------------------------------------


def test_load_vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\nhello\n##s\n", encoding="utf-8")
    assert load_vocab(path) == {"[PAD]": 0, "hello": 1, "##s": 2}


def test_load_vocab_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        load_vocab(tmp_path / "nothing.txt")
    path = tmp_path / "vocab.txt"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        load_vocab(path)
    path.write_text("a\nb\na\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'a' on line 3"):
        load_vocab(path)


def test_wordpiece_tokenizer_errors(bert, tmp_path):
    from solutions.tokenization_wordpiece import WordPieceTokenizer

    vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[PAD]": 3, "hello": 4}
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        WordPieceTokenizer(vocab)
    tok = WordPieceTokenizer({**vocab, "[MASK]": 5})
    assert tok.encode("hello there") == [1, 4, 0, 2]
    with pytest.raises(FileNotFoundError):
        WordPieceTokenizer(tmp_path / "missing_vocab.txt")
    with pytest.raises(TypeError, match="list"):
        WordPieceTokenizer(["a", "b"])

    for call in (bert.tokenize, bert.encode, bert):
        with pytest.raises(TypeError, match="int"):
            call(42)
    with pytest.raises(TypeError, match="bytes"):
        bert(b"hello")
    with pytest.raises(TypeError, match=r"text\[1\].*NoneType"):
        bert(["ok", None])
    with pytest.raises(ValueError, match="padding=True"):
        bert(["short", "a longer text"], return_tensors="pt")
    with pytest.raises(ValueError, match="max_length"):
        bert("hello", truncation=True, max_length=1)
    with pytest.raises(ValueError, match="max_length"):
        build_batch([[5]], cls_id=1, sep_id=2, pad_id=0, truncation=True)
    with pytest.raises(ValueError, match="max_length"):
        build_batch([[5]], cls_id=1, sep_id=2, pad_id=0, padding="max_length", max_length=0)
    with pytest.raises(ValueError, match="return_tensors"):
        bert("hello", return_tensors="np")
    with pytest.raises(ValueError, match="padding"):
        bert("hello", padding="sideways")


# ---------------------------------------------------------------------------------------------
# Benchmark (shape of the rows only: timings are never asserted in tests)
# ---------------------------------------------------------------------------------------------


def test_benchmark_rows_are_well_formed():
    from course.bench import BENCHES, report

    rows = BENCHES["tokenization"](quick=True)
    assert len(rows) == 2
    for row in rows:
        assert isinstance(row["name"], str) and row["name"]
        assert isinstance(row["target"], str) and row["target"]
        assert isinstance(row["ok"], bool)
        assert row["same"] is True, row  # fast and naive trainers / ours and HF agree
        assert row["ratio"] > 0
        unit = "s" if "ours_s" in row else "mb_s"
        assert row[f"ours_{unit}"] > 0 and row[f"baseline_{unit}"] > 0
    train, encode = rows
    assert train["ratio"] == pytest.approx(train["baseline_s"] / train["ours_s"])
    assert encode["ratio"] == pytest.approx(encode["ours_mb_s"] / encode["baseline_mb_s"])
    table = report(rows)
    assert all(row["name"] in table for row in rows)


# ---------------------------------------------------------------------------------------------
# Bad input gets a clear error: one test per public entry point
# ---------------------------------------------------------------------------------------------


def test_decode_refuses_a_single_int(bpe, bert):
    for decode in (CharTokenizer("abc").decode, bpe.decode, bert.decode):
        with pytest.raises(TypeError, match=r"list of ints.*\[7592\]"):
            decode(7592)  # not 'h e l l o' (or a character per digit)
        with pytest.raises(TypeError, match="must hold ints"):
            decode([1, "2"])


def test_max_length_without_truncation_truncates_like_hugging_face(bert, hf_auto):
    text = "a sentence that is clearly longer than eight tokens once it is split"
    ours, theirs = bert(text, max_length=8), hf_auto(text, max_length=8)
    assert ours["input_ids"] == theirs["input_ids"] and len(ours["input_ids"]) == 8
    assert len(bert(text, max_length=8, truncation=False)["input_ids"]) > 8


def test_special_tokens_must_be_a_list(bpe):
    for make in (lambda: BPETokenizer.train("hello world", 260, special_tokens="<eos>"),
                 lambda: BPETokenizer(bpe.merges, special_tokens="<eos>")):
        with pytest.raises(TypeError, match=r"list of strings.*\['<eos>'\]"):
            make()  # never five one-character special tokens


@pytest.mark.parametrize("train", [train_bpe, train_bpe_naive, BPETokenizer.train])
def test_vocab_size_must_be_an_int(train):
    with pytest.raises(TypeError, match=r"vocab_size must be an int, got 300.0 \(float\)"):
        train("hello world", 300.0)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        train("hello world", True)


def test_decode_of_a_batch_points_to_batch_decode(bpe, bert, hf_auto):
    batch = torch.tensor([[101, 7592, 102], [101, 2088, 102]])   # (B, T)
    with pytest.raises(TypeError, match="one sequence of ids, got 2 sequences.*batch_decode"):
        bert.decode(batch)
    with pytest.raises(TypeError, match="one sequence.*decode each one"):
        bpe.decode([[104, 105], [106]])
    assert bert.batch_decode(batch) == hf_auto.batch_decode(batch, skip_special_tokens=True)
    assert bert.batch_decode(batch.tolist(), skip_special_tokens=False) == \
        hf_auto.batch_decode(batch.tolist())


def test_numpy_integers_are_ints(bpe, bert):
    import numpy as np

    text = english_prose()[:3000]
    assert BPETokenizer.train(text, np.int64(300)).merges == BPETokenizer.train(text, 300).merges
    assert train_bpe(text, np.int32(280)) == train_bpe(text, 280)
    assert bert.convert_ids_to_tokens(np.int64(101)) == "[CLS]"
    assert bert.convert_ids_to_tokens(np.array([101, 102])) == ["[CLS]", "[SEP]"]
    assert bert.convert_ids_to_tokens([np.int64(101)]) == ["[CLS]"]
    ids = bert.encode("hello world")
    for tok, seq in ((bert, ids), (bpe, bpe.encode("hello world"))):
        expected = tok.decode(seq)
        assert tok.decode(np.array(seq)) == expected
        assert tok.decode([np.int64(i) for i in seq]) == expected
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        BPETokenizer.train(text, np.float64(300))
    with pytest.raises(TypeError, match="must hold ints"):
        bpe.decode([np.float64(104)])


def test_merges_in_another_form_are_refused_with_the_conversion():
    pairs = [(b"t", b"h"), (b"th", b"e")]                   # pairs of bytes, rank order
    with pytest.raises(TypeError, match=r"got a list.*256 \+ rank"):
        BPETokenizer([(116, 104)])
    with pytest.raises(TypeError, match=r"got a pair of bytes.*ids\[a \+ b\] = len\(ids\)"):
        BPETokenizer({pair: 256 + rank for rank, pair in enumerate(pairs)})
    with pytest.raises(ValueError, match=r"without gaps, got 0 to 1.*256 \+ r"):
        BPETokenizer({(116, 104): 0, (0, 101): 1})              # ranks from 0
    ids = {bytes([i]): i for i in range(256)}                  # the conversion the message gives
    merges = {}
    for a, b in pairs:
        merges[ids[a], ids[b]] = ids[a + b] = len(ids)
    tok = BPETokenizer(merges)
    assert tok.encode("the") == [257] and tok.vocab[257] == b"the"
