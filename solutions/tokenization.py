"""Tokenization: text -> integer ids -> text.

Three tokenizers, from the simplest to the ones real models use:

- :class:`CharTokenizer` -- one id per character, id 0 for unknown characters.
- Byte-level BPE (GPT-2 style) -- small functions (:func:`get_pair_counts`, :func:`merge`,
  :func:`best_pair`, :func:`train_bpe_naive`, :func:`apply_merges`, ...) and the
  :class:`BPETokenizer` that puts them together. Works on UTF-8 bytes, so it never needs an
  unknown token: ``decode(encode(s)) == s`` for every string ``s`` that can be written as UTF-8
  (every Python ``str`` except those holding lone surrogates such as ``"\\ud800"``).
- WordPiece (BERT style) -- :func:`basic_tokenize` (normalization and pre-tokenization),
  :func:`wordpiece` (greedy longest-match-first with ``##`` continuations), :func:`build_batch`
  (special tokens, truncation, padding, attention masks) and the :class:`WordPieceTokenizer`
  that loads a real ``vocab.txt`` and gives the same ids as the Hugging Face BERT tokenizer.

Ids are plain ``list[int]``; only ``WordPieceTokenizer(..., return_tensors="pt")`` imports torch.
"""

from __future__ import annotations

import heapq
import json
import os
import unicodedata
from collections import Counter
from itertools import pairwise

import regex

from solutions.inputs import require_positive_int, require_str

# ---------------------------------------------------------------------------------------------
# Character-level tokenizer
# ---------------------------------------------------------------------------------------------


class CharTokenizer:
    """Character-level tokenizer. id 0 is unk_token; the other ids are the distinct characters of
    `text` in sorted order."""

    def __init__(self, text: str, unk_token: str = "[UNK]"):
        require_str(text, "text")
        self.unk_token = unk_token
        self.itos = [unk_token] + sorted(set(text))  # id -> string
        self.stoi = {ch: i for i, ch in enumerate(self.itos) if i > 0}  # character -> id

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Characters -> ids; a character not seen in training becomes 0 (unk)."""
        require_str(text, "text")
        return [self.stoi.get(ch, 0) for ch in text]

    def decode(self, ids: list[int]) -> str:
        """Ids -> text; id 0 becomes `unk_token`."""
        ids = require_id_list(ids)
        for i in ids:
            if not 0 <= i < len(self.itos):
                raise ValueError(f"id {i} is outside the vocabulary (0..{len(self.itos) - 1})")
        return "".join(self.itos[i] for i in ids)


# ---------------------------------------------------------------------------------------------
# Byte-level BPE primitives
# ---------------------------------------------------------------------------------------------

# GPT-2's pre-tokenization: contractions, words with an optional leading space, numbers,
# punctuation runs, and whitespace. Merges never cross the boundary between two chunks.
GPT2_SPLIT_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


def get_pair_counts(ids: list[int], counts: dict | None = None) -> dict[tuple[int, int], int]:
    """Count adjacent pairs (sliding window, so 'aaa' has 2 of (a,a)); adds into `counts` if
    given."""
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):  # noqa: B905 (ids[1:] is one shorter on purpose)
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of `pair`, left to right, by `new_id`."""
    out = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def best_pair(counts: dict[tuple[int, int], int]) -> tuple[int, int]:
    """THE TIE RULE, defined once: the pair with the highest count; among equal counts, the
    smallest pair (compare as tuples)."""
    return min(counts, key=lambda pair: (-counts[pair], pair))


def train_bpe_naive(
    text: str, vocab_size: int, pattern: str = GPT2_SPLIT_PATTERN
) -> dict[tuple[int, int], int]:
    """Readable trainer: split text with the regex into chunks, bytes of each chunk as ids; then
    vocab_size-256 times: recount ALL pairs over all chunks (never across chunk boundaries), take
    best_pair, merge it everywhere, new ids 256, 257, ... Returns merges {pair: new_id} in
    insertion (rank) order. Stops early if no pair is left."""
    require_bpe_args(text, vocab_size)
    chunks = [list(chunk.encode("utf-8")) for chunk in regex.findall(pattern, text)]
    merges = {}
    for new_id in range(256, vocab_size):
        counts = {}
        for ids in chunks:
            get_pair_counts(ids, counts)
        if not counts:
            break  # every chunk is a single token: nothing left to merge
        pair = best_pair(counts)
        chunks = [merge(ids, pair, new_id) for ids in chunks]
        merges[pair] = new_id
    return merges


def train_bpe(
    text: str, vocab_size: int, pattern: str = GPT2_SPLIT_PATTERN
) -> dict[tuple[int, int], int]:
    """Fast trainer with EXACTLY the same result as train_bpe_naive: deduplicate chunks with their
    frequency, keep pair counts and an index pair -> chunks containing it, update counts
    incrementally only for the chunks a merge touches, pick best_pair with a heap with lazy
    deletion (same tie rule)."""
    require_bpe_args(text, vocab_size)
    chunk_freq = Counter(regex.findall(pattern, text))  # chunk string -> how often it occurs
    words = [list(chunk.encode("utf-8")) for chunk in chunk_freq]  # distinct chunks as ids
    freqs = list(chunk_freq.values())

    counts: dict[tuple[int, int], int] = {}  # pair -> count over the whole text
    where: dict[tuple[int, int], set[int]] = {}  # pair -> indices of the words containing it
    for w, ids in enumerate(words):
        for pair in pairwise(ids):
            counts[pair] = counts.get(pair, 0) + freqs[w]
            where.setdefault(pair, set()).add(w)

    # Max-heap as a min-heap of (-count, pair): the top is best_pair's choice. A count that
    # changes gets a fresh entry; outdated entries are skipped when they surface (lazy deletion).
    heap = [(-c, pair) for pair, c in counts.items()]
    heapq.heapify(heap)

    merges = {}
    for new_id in range(256, vocab_size):
        while heap and counts.get(heap[0][1], 0) != -heap[0][0]:
            heapq.heappop(heap)  # outdated entry
        if not heap:
            break
        pair = heapq.heappop(heap)[1]
        merges[pair] = new_id

        changed = set()
        for w in where.pop(pair):
            old, new = words[w], merge(words[w], pair, new_id)
            words[w] = new
            old_pairs, new_pairs = Counter(pairwise(old)), Counter(pairwise(new))
            for p in old_pairs.keys() | new_pairs.keys():
                delta = new_pairs[p] - old_pairs[p]  # this word's change, times its frequency
                if delta:
                    counts[p] = counts.get(p, 0) + delta * freqs[w]
                    changed.add(p)
                if p in new_pairs:
                    where.setdefault(p, set()).add(w)
                elif p != pair:  # (the merged pair's index entry is already gone)
                    where[p].discard(w)
        for p in changed:
            if counts[p] > 0:
                heapq.heappush(heap, (-counts[p], p))
            else:
                del counts[p]
    return merges


def apply_merges(ids: list[int], merges: dict[tuple[int, int], int]) -> list[int]:
    """Encode one chunk: repeatedly merge the present pair with the lowest rank (smallest new id)
    until none applies."""
    while len(ids) >= 2:
        pairs = get_pair_counts(ids)
        pair = min(pairs, key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break  # no learned merge applies any more
        ids = merge(ids, pair, merges[pair])
    return ids


def build_vocab(merges: dict[tuple[int, int], int]) -> dict[int, bytes]:
    """id -> bytes: 0..255 single bytes, then each merge's concatenation."""
    vocab = {i: bytes([i]) for i in range(256)}
    for (a, b), new_id in sorted(merges.items(), key=lambda item: item[1]):
        vocab[new_id] = vocab[a] + vocab[b]
    return vocab


def decode_bytes(ids: list[int], vocab: dict[int, bytes]) -> str:
    """Join the bytes and decode UTF-8 with errors='replace'."""
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


def require_bpe_args(text: str, vocab_size: int) -> None:
    """Raise unless `text` is a str and `vocab_size` an int >= 256 (the 256 byte values)."""
    require_str(text, "text")
    require_positive_int(vocab_size, "vocab_size")
    if vocab_size < 256:
        raise ValueError(
            f"vocab_size must be at least 256 (the 256 byte values), got {vocab_size}"
        )


def require_special_tokens(special_tokens) -> list[str]:
    """A list of distinct non-empty strings; a single str is refused (it is not split into
    one-character tokens)."""
    if isinstance(special_tokens, str) or not hasattr(special_tokens, "__iter__"):
        raise TypeError(f"special_tokens must be a list of strings, got {special_tokens!r}; "
                        f"for one token write [{special_tokens!r}]")
    specials = list(special_tokens)
    for s in specials:
        if not isinstance(s, str) or not s:
            raise ValueError(f"special tokens must be non-empty strings, got {s!r}")
    if len(set(specials)) != len(specials):
        raise ValueError(f"special tokens must be distinct, got {specials!r}")
    return specials


def require_id_list(ids, name: str = "ids") -> list[int]:
    """A list (or tensor, or tuple) of int ids; a single int is refused with a pointer."""
    if hasattr(ids, "tolist") and not isinstance(ids, (list, tuple)):
        ids = ids.tolist()  # a tensor or array
    if isinstance(ids, int) or not isinstance(ids, (list, tuple)):
        raise TypeError(f"{name} must be a list of ints, got {ids!r}; for one id write [{ids!r}]")
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"{name} must hold ints, got {i!r} ({type(i).__name__})")
    return list(ids)


# ---------------------------------------------------------------------------------------------
# Byte-level BPE tokenizer
# ---------------------------------------------------------------------------------------------

BPE_FORMAT = "course-bpe"
BPE_FORMAT_VERSION = 1


class BPETokenizer:
    """Byte-level BPE (GPT-2 style): regex pre-tokenization, merges, optional special tokens
    (e.g. '<|endoftext|>') whose ids follow the merges."""

    def __init__(
        self,
        merges: dict | None = None,
        special_tokens: list[str] | tuple = (),
        pattern: str = GPT2_SPLIT_PATTERN,
    ):
        merges = dict(merges or {})
        _check_merges(merges)
        self.merges = dict(sorted(merges.items(), key=lambda item: item[1]))  # rank order
        self.pattern = pattern
        self._split = regex.compile(pattern)

        specials = require_special_tokens(special_tokens)
        first = 256 + len(self.merges)
        self.special_tokens = {s: first + i for i, s in enumerate(specials)}  # name -> id

        self.vocab = build_vocab(self.merges)  # id -> bytes
        for s, i in self.special_tokens.items():
            self.vocab[i] = s.encode("utf-8")
        self._cache: dict[str, list[int]] = {}  # chunk -> ids

    @classmethod
    def train(
        cls, text: str, vocab_size: int, special_tokens=(), pattern=GPT2_SPLIT_PATTERN
    ) -> BPETokenizer:
        """Learn vocab_size - 256 - len(special_tokens) merges from `text` (fewer if no pair is
        left). Special-token strings inside `text` are trained on as ordinary text."""
        special_tokens = require_special_tokens(special_tokens)
        require_bpe_args(text, vocab_size)
        if vocab_size < 256 + len(special_tokens):
            raise ValueError(
                f"vocab_size must be at least 256 (bytes) + {len(special_tokens)} "
                f"(special tokens) = {256 + len(special_tokens)}, got {vocab_size!r}"
            )
        merges = train_bpe(text, vocab_size - len(special_tokens), pattern)
        return cls(merges, special_tokens, pattern)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, allowed_special="all") -> list[int]:
        """Text -> ids. `allowed_special`: "all" special tokens, "none" (their strings are encoded
        as plain text), or a set of special-token names. Where two special tokens overlap, the
        longer one wins."""
        require_str(text, "text")
        specials = self._allowed(allowed_special)
        if not specials:
            return self._encode_ordinary(text)
        # A capturing split keeps the special tokens; longest first so that overlapping names
        # prefer the longer one.
        names = sorted(specials, key=len, reverse=True)
        parts = regex.split("(" + "|".join(regex.escape(s) for s in names) + ")", text)
        ids = []
        for part in parts:
            if part in specials:
                ids.append(self.special_tokens[part])
            elif part:
                ids.extend(self._encode_ordinary(part))
        return ids

    def decode(self, ids: list[int]) -> str:
        """Ids -> text (invalid UTF-8 from a partial sequence shows as U+FFFD)."""
        ids = require_id_list(ids)
        for i in ids:
            if i not in self.vocab:
                raise ValueError(f"id {i!r} is not in the vocabulary (0..{self.vocab_size - 1})")
        return decode_bytes(ids, self.vocab)

    def _encode_ordinary(self, text: str) -> list[int]:
        ids = []
        for chunk in self._split.findall(text):
            chunk_ids = self._cache.get(chunk)
            if chunk_ids is None:
                chunk_ids = apply_merges(list(chunk.encode("utf-8")), self.merges)
                self._cache[chunk] = chunk_ids
            ids.extend(chunk_ids)
        return ids

    def _allowed(self, allowed_special) -> set[str]:
        if allowed_special == "all":
            return set(self.special_tokens)
        if allowed_special == "none":
            return set()
        if isinstance(allowed_special, str) or not hasattr(allowed_special, "__iter__"):
            raise ValueError(
                f'allowed_special must be "all", "none" or a set of special-token names, '
                f"got {allowed_special!r}"
            )
        allowed = set(allowed_special)
        unknown = sorted(allowed - set(self.special_tokens))
        if unknown:
            raise ValueError(
                f"unknown special token(s) {unknown}; this tokenizer has "
                f"{sorted(self.special_tokens)}"
            )
        return allowed

    def save(self, path) -> None:
        """Write one JSON file: format version, pattern, merges in rank order, special tokens."""
        data = {
            "format": BPE_FORMAT,
            "version": BPE_FORMAT_VERSION,
            "pattern": self.pattern,
            "merges": [list(pair) for pair in self.merges],
            "special_tokens": list(self.special_tokens),
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)

    @classmethod
    def load(cls, path) -> BPETokenizer:
        """Read a file written by :meth:`save`."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no BPE tokenizer file at {os.fspath(path)!r}")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{os.fspath(path)!r} is not a JSON BPE tokenizer file: {err}") from err
        if not isinstance(data, dict) or data.get("format") != BPE_FORMAT:
            raise ValueError(f"{os.fspath(path)!r} is not a {BPE_FORMAT!r} file")
        if data.get("version") != BPE_FORMAT_VERSION:
            raise ValueError(
                f"{os.fspath(path)!r} has format version {data.get('version')!r}; "
                f"this code reads version {BPE_FORMAT_VERSION}"
            )
        try:
            pattern, pairs, specials = data["pattern"], data["merges"], data["special_tokens"]
            if not isinstance(pattern, str) or not isinstance(specials, list):
                raise TypeError("pattern must be a string and special_tokens a list")
            merges = {(int(a), int(b)): 256 + rank for rank, (a, b) in enumerate(pairs)}
            regex.compile(pattern)
        except (KeyError, TypeError, ValueError, regex.error) as err:
            raise ValueError(f"{os.fspath(path)!r} is malformed: {err!r}") from err
        if len(merges) != len(pairs):
            raise ValueError(f"{os.fspath(path)!r} is malformed: a merge is listed twice")
        return cls(merges, specials, pattern)


def _check_merges(merges: dict) -> None:
    """Merges must create ids 256, 257, ... and only combine ids that exist before them."""
    if sorted(merges.values()) != list(range(256, 256 + len(merges))):
        raise ValueError("merge ids must be 256, 257, ... without gaps")
    for pair, new_id in merges.items():
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ValueError(f"a merge must map a pair of ids to a new id, got {pair!r}")
        if not all(isinstance(i, int) and 0 <= i < new_id for i in pair):
            raise ValueError(f"merge {pair} -> {new_id} uses an id not defined before {new_id}")


# ---------------------------------------------------------------------------------------------
# WordPiece (BERT)
# ---------------------------------------------------------------------------------------------


def load_vocab(path) -> dict[str, int]:
    """vocab.txt -> {token: id}: one token per line, id = line number (from 0)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no vocabulary file at {os.fspath(path)!r}")
    with open(path, encoding="utf-8") as f:
        tokens = [line.rstrip("\r\n") for line in f]
    if not tokens:
        raise ValueError(f"vocabulary file {os.fspath(path)!r} is empty")
    vocab = {}
    for i, token in enumerate(tokens):
        if token in vocab:
            raise ValueError(
                f"vocabulary file {os.fspath(path)!r}: token {token!r} on line {i + 1} "
                f"already appeared on line {vocab[token] + 1}"
            )
        vocab[token] = i
    return vocab


# Unicode's White_Space property (stable across Unicode versions).
_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _is_whitespace(ch: str) -> bool:
    return ch in _WHITESPACE


def _is_control(ch: str) -> bool:
    """Control, format, private-use and surrogate characters (Cc Cf Co Cs), except tab, newline
    and return, which count as whitespace. Unassigned code points (Cn) are kept, as in BERT."""
    return ch not in "\t\n\r" and unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs")


def _is_cjk(ch: str) -> bool:
    """CJK Unified Ideographs (the blocks BERT puts spaces around; not kana or hangul). The same
    ranges as Hugging Face's Rust BERT normalizer."""
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B920 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _is_punctuation(ch: str) -> bool:
    """ASCII symbols such as $ + < = > ^ ` | ~ count too, not only Unicode P* characters."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def basic_tokenize(text: str, lowercase: bool = True) -> list[str]:
    """BERT's normalization + pre-tokenization: text -> words and punctuation marks.

    1. clean: drop NUL, U+FFFD and control characters; every whitespace character -> ' '
    2. put spaces around CJK ideographs (each becomes its own word)
    3. if lowercase: strip accents (NFD, drop nonspacing marks), then lowercase each character
    4. split on whitespace, then make every punctuation character its own word
    """
    require_str(text, "text")
    out = []
    for ch in text:
        if ch == "\x00" or ch == "\ufffd" or _is_control(ch):
            continue
        if _is_whitespace(ch):
            out.append(" ")
        elif _is_cjk(ch):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    text = "".join(out)
    if lowercase:
        text = unicodedata.normalize("NFD", text)
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
        # Character by character, like BERT: str.lower() would turn a word-final 'Σ' into 'ς'.
        text = "".join(ch.lower() for ch in text)

    words = []
    for word in text.split(" "):
        start = 0
        for i, ch in enumerate(word):
            if _is_punctuation(ch):
                if start < i:
                    words.append(word[start:i])
                words.append(ch)
                start = i + 1
        if start < len(word):
            words.append(word[start:])
    return words


def wordpiece(
    word: str, vocab: dict[str, int], unk_token: str = "[UNK]", max_chars: int = 100
) -> list[str]:
    """Greedy longest-match-first: take the longest prefix in `vocab`, then the longest
    '##'-continuation of the rest, and so on. The whole word becomes [unk_token] if some position
    cannot be matched or the word is longer than `max_chars`."""
    if len(word) > max_chars:
        return [unk_token]
    pieces = []
    start = 0
    while start < len(word):
        for end in range(len(word), start, -1):  # longest candidate first
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return [unk_token]  # nothing in the vocabulary starts here
        pieces.append(piece)
        start = end
    return pieces


def build_batch(
    sequences: list[list[int]],
    *,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    padding=False,
    truncation=False,
    max_length: int | None = None,
) -> dict[str, list[list[int]]]:
    """[CLS] ids [SEP] for each sequence, then truncation and padding.

    truncation=True: cut the content so that each row has at most `max_length` ids.
    padding=True or "longest": pad (on the right) to the longest row; "max_length": to
    `max_length`. attention_mask is 1 for real tokens (CLS and SEP included), 0 for padding.
    Without padding, rows may have different lengths.
    """
    padding = padding_strategy(padding)
    truncation = truncation_flag(truncation)
    if max_length is not None and (not isinstance(max_length, int) or max_length < 2):
        raise ValueError(
            f"max_length must be an int >= 2 (room for [CLS] and [SEP]), got {max_length!r}"
        )
    if (truncation or padding == "max_length") and max_length is None:
        raise ValueError("truncation and padding='max_length' need a max_length")

    rows = []
    for ids in sequences:
        if truncation:
            ids = ids[: max_length - 2]
        rows.append([cls_id, *ids, sep_id])

    width = None
    if padding == "longest":
        width = max((len(r) for r in rows), default=0)
    elif padding == "max_length":
        width = max_length
    input_ids, attention_mask = [], []
    for row in rows:
        n_pad = max(0, width - len(row)) if width is not None else 0
        input_ids.append(row + [pad_id] * n_pad)
        attention_mask.append([1] * len(row) + [0] * n_pad)
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def padding_strategy(padding) -> str | None:
    if padding is True or padding == "longest":
        return "longest"
    if padding is False or padding is None or padding == "do_not_pad":
        return None
    if padding == "max_length":
        return "max_length"
    raise ValueError(f'padding must be True, False, "longest" or "max_length", got {padding!r}')


def truncation_flag(truncation) -> bool:
    if truncation in (True, "longest_first"):
        return True
    if truncation in (False, None, "do_not_truncate"):
        return False
    raise ValueError(f"truncation must be True or False, got {truncation!r}")


# Spaces BERT's decoder removes, in this order, from each token (with its leading space).
_DECODE_CLEANUP = (
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
    (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
)


class WordPieceTokenizer:
    """BERT's tokenizer: basic_tokenize, then wordpiece on each word, then [CLS] ... [SEP].

    Special-token strings written in the text (e.g. "[MASK]") stay whole, as in BERT.
    """

    def __init__(
        self,
        vocab,
        lowercase: bool = True,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_max_length: int = 512,
    ):
        if isinstance(vocab, (str, os.PathLike)):
            vocab = load_vocab(vocab)
        if not isinstance(vocab, dict):
            raise TypeError(f"vocab must be a dict or a path to vocab.txt, got {type(vocab).__name__}")
        self.vocab = dict(vocab)  # token -> id
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}  # id -> token
        self.lowercase = lowercase
        self.unk_token, self.cls_token, self.sep_token = unk_token, cls_token, sep_token
        self.pad_token, self.mask_token = pad_token, mask_token
        self.model_max_length = model_max_length
        self.all_special_tokens = [unk_token, cls_token, sep_token, pad_token, mask_token]
        missing = [t for t in self.all_special_tokens if t not in self.vocab]
        if missing:
            raise ValueError(f"special token(s) {missing} are not in the vocabulary")
        self.all_special_ids = [self.vocab[t] for t in self.all_special_tokens]
        names = sorted(set(self.all_special_tokens), key=len, reverse=True)
        self._special_split = regex.compile("(" + "|".join(regex.escape(t) for t in names) + ")")

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        """Text -> WordPiece tokens (no [CLS]/[SEP])."""
        require_str(text, "text")
        tokens = []
        for part in self._special_split.split(text):
            if part in self.all_special_tokens:
                tokens.append(part)  # written in the text, e.g. "[MASK]": kept whole
                continue
            for word in basic_tokenize(part, self.lowercase):
                tokens.extend(wordpiece(word, self.vocab, self.unk_token))
        return tokens

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Text -> ids, with [CLS] ... [SEP] unless add_special_tokens=False."""
        ids = self.convert_tokens_to_ids(self.tokenize(text))
        if add_special_tokens:
            ids = [self.vocab[self.cls_token], *ids, self.vocab[self.sep_token]]
        return ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Ids -> text: '##' continuations join the previous token, '.' ',' '!' '?' join it too;
        with skip_special_tokens the special tokens ([UNK] included) are dropped."""
        ids = require_id_list(ids)
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            tokens = [t for t in tokens if t not in self.all_special_tokens]
        text = []
        for i, token in enumerate(tokens):
            if i > 0:
                token = token[2:] if token.startswith("##") else " " + token
            for spaced, tight in _DECODE_CLEANUP:
                token = token.replace(spaced, tight)
            text.append(token)
        return "".join(text)

    def convert_tokens_to_ids(self, tokens):
        """A token (str) or list of tokens -> id(s); unknown tokens -> the [UNK] id."""
        unk = self.vocab[self.unk_token]
        if isinstance(tokens, str):
            return self.vocab.get(tokens, unk)
        return [self.vocab.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids):
        """An id (int) or list of ids -> token(s)."""
        if isinstance(ids, int):
            return self._token(ids)
        return [self._token(i) for i in ids]

    def _token(self, i: int) -> str:
        if i not in self.ids_to_tokens:
            raise ValueError(f"id {i!r} is not in the vocabulary (0..{len(self.vocab) - 1})")
        return self.ids_to_tokens[i]

    def __call__(
        self, text, padding=False, truncation=None, max_length=None, return_tensors=None
    ) -> dict:
        """Text or list of texts -> {"input_ids", "attention_mask"}, like a Hugging Face
        tokenizer: lists of ints for one string, lists of lists for a list of strings, or torch
        tensors of shape (B, T) with return_tensors="pt" (B = 1 for one string). As in Hugging
        Face, a max_length without `truncation` truncates (truncation=False keeps every id)."""
        if truncation is None:
            truncation = max_length is not None
        single = isinstance(text, str)
        texts = [text] if single else text
        if not isinstance(texts, (list, tuple)):
            raise TypeError(f"text must be a str or a list of str, got {type(text).__name__}")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text[{i}] must be a str, got {type(t).__name__}")
        if return_tensors not in (None, "pt"):
            raise ValueError(f'return_tensors must be None or "pt", got {return_tensors!r}')
        if max_length is None and (
            truncation_flag(truncation) or padding_strategy(padding) == "max_length"
        ):
            max_length = self.model_max_length

        batch = build_batch(
            [self.encode(t, add_special_tokens=False) for t in texts],
            cls_id=self.vocab[self.cls_token],
            sep_id=self.vocab[self.sep_token],
            pad_id=self.vocab[self.pad_token],
            padding=padding,
            truncation=truncation,
            max_length=max_length,
        )
        if return_tensors == "pt":
            return _to_tensors(batch)
        if single:
            return {key: rows[0] for key, rows in batch.items()}
        return batch


def _to_tensors(batch: dict[str, list[list[int]]]) -> dict:
    import torch  # only needed here

    lengths = {len(row) for row in batch["input_ids"]}
    if len(lengths) > 1:
        raise ValueError(
            f"cannot make a tensor from rows of different lengths {sorted(lengths)}: "
            "pass padding=True (and truncation=True for long texts)"
        )
    width = lengths.pop() if lengths else 0
    return {
        key: torch.tensor(rows, dtype=torch.long).reshape(len(rows), width)
        for key, rows in batch.items()
    }

