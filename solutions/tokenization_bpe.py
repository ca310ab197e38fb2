"""Byte-level BPE (GPT-2 style): the trainers, the encoder and :class:`BPETokenizer`.

Small functions (:func:`best_pair`, :func:`train_bpe_naive`, :func:`train_bpe`,
:func:`apply_merges`) on top of the shared primitives of `solutions.tokenization`, and the
:class:`BPETokenizer` that puts them together, with its file format (:meth:`BPETokenizer.save`,
:meth:`BPETokenizer.load`) and a streaming encoder for text larger than memory
(:meth:`BPETokenizer.encode_iterable`).
"""

from __future__ import annotations

import heapq
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import pairwise

import regex

from solutions.inputs import require_str
from solutions.tokenization import (
    GPT2_SPLIT_PATTERN,
    build_vocab,
    decode_bytes,
    get_pair_counts,
    merge,
    require_bpe_args,
    require_id_list,
    require_special_tokens,
)


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


_SPACE = regex.compile(r"\s")
CACHE_SIZE = 1 << 16  # chunks whose ids are remembered; the cache starts over when full

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
        merges = {} if merges is None else merges
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

    def encode_iterable(self, pieces: Iterable[str], allowed_special="all") -> Iterator[int]:
        """The ids of the text the strings in `pieces` make together (the lines of an open
        file, or any pieces), yielded as the pieces arrive: the same ids as
        encode("".join(pieces)), holding only the text since the last safe cut in memory.

        A cut goes where encoding the two sides apart cannot differ, whatever text follows:
        between two chunks, with no whitespace on either side (a run of spaces and newlines
        may split differently when more comes), far enough from the end for the pattern's
        look-ahead and for a special token still arriving. This holds for patterns that look
        ahead at most 3 characters or to the end of a run of whitespace, and never behind
        (GPT-2's and GPT-4's). Memory grows only with the longest stretch without such a cut."""
        if isinstance(pieces, str):
            raise TypeError("pieces must be an iterable of strings (an open file, a list of "
                            "lines); for one string use encode(text)")
        specials = self._allowed(allowed_special)
        margin = max([4] + [len(s) + 1 for s in specials])
        text = ""
        for piece in pieces:
            require_str(piece, "each piece")
            text += piece
            cut = self._safe_cut(text, specials, margin)
            if cut:
                yield from self.encode(text[:cut], allowed_special)
                text = text[cut:]
        yield from self.encode(text, allowed_special)

    def _safe_cut(self, text: str, specials: set[str], margin: int) -> int:
        """The last chunk boundary of `text` with non-space characters on both sides and at
        least `margin` characters after it; 0 if there is none."""
        limit = len(text) - margin
        if limit <= 0:
            return 0
        parts = [text]
        if specials:
            names = sorted(specials, key=len, reverse=True)
            parts = regex.split("(" + "|".join(regex.escape(s) for s in names) + ")", text)
        ends, start = [], 0
        for part in parts:
            if part in specials:
                ends.append(start + len(part))
            else:
                ends.extend(start + m.end() for m in self._split.finditer(part))
            start += len(part)
        for end in reversed(ends):
            if end <= limit and not _SPACE.match(text, end - 1) and not _SPACE.match(text, end):
                return end
        return 0

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
                if len(self._cache) >= CACHE_SIZE:
                    self._cache.clear()  # bounded memory on any amount of text
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


MERGES_FORM = ("merges must be a dict {(id_a, id_b): new_id} whose new ids are 256, 257, ... "
               "in the order the merges were learned (ids 0-255 are the bytes)")


def _check_merges(merges) -> None:
    """Merges must create ids 256, 257, ... and only combine ids that exist before them; other
    common forms get the way to convert them."""
    if not isinstance(merges, dict):
        raise TypeError(f"{MERGES_FORM}; got a {type(merges).__name__}. From id pairs in rank "
                        "order: {pair: 256 + rank for rank, pair in enumerate(pairs)}")
    for pair in merges:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ValueError(f"a merge must map a pair of ids to a new id, got {pair!r}")
        if any(isinstance(part, (bytes, str)) for part in pair):
            raise TypeError(
                f"{MERGES_FORM}; got a pair of {type(pair[0]).__name__} {pair!r}. From pairs "
                "of bytes in rank order: ids = {bytes([i]): i for i in range(256)}, then for "
                "each pair (a, b): merges[ids[a], ids[b]] = ids[a + b] = len(ids)")
    new_ids = sorted(merges.values())
    if new_ids != list(range(256, 256 + len(merges))):
        raise ValueError(
            f"merge ids must be 256, 257, ... without gaps, got {new_ids[0]} to {new_ids[-1]} "
            f"for {len(merges)} merge(s) ({MERGES_FORM}). Merges numbered from another start: "
            "give the merge of rank r the id 256 + r, inside the pairs too (a pair combines "
            "byte ids 0-255 and ids of earlier merges)")
    for pair, new_id in merges.items():
        if not all(isinstance(i, int) and 0 <= i < new_id for i in pair):
            raise ValueError(f"merge {pair} -> {new_id} uses an id not defined before {new_id}")
