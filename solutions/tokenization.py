"""Tokenization: text -> integer ids -> text. This base holds what the tokenizers share.

One file per tokenizer, from the simplest to the ones real models use:

- `solutions.tokenization_char`: :class:`CharTokenizer`, one id per character, id 0 for unknown
  characters.
- `solutions.tokenization_bpe`: byte-level BPE (GPT-2 style), the trainers (naive and fast), the
  :class:`BPETokenizer`, its file format and its streaming encoder. It works on UTF-8 bytes,
  so it never needs an unknown token: ``decode(encode(s)) == s`` for every string ``s`` that can
  be written as UTF-8 (every Python ``str`` except those holding lone surrogates such as
  ``"\\ud800"``).
- `solutions.tokenization_wordpiece`: WordPiece (BERT style), its normalization and
  pre-tokenization, batching (special tokens, truncation, padding, attention masks) and the
  :class:`WordPieceTokenizer` that gives the same ids as the Hugging Face BERT tokenizer.

Here: GPT-2's pre-tokenization pattern, the two operations BPE is built from
(:func:`get_pair_counts`, :func:`merge`), the id -> bytes vocabulary (:func:`build_vocab`,
:func:`decode_bytes`) and the input requirements.
Ids are plain ``list[int]``.
"""

from __future__ import annotations

import numbers

from solutions.inputs import require_positive_int, require_str

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


def require_id_list(ids, name: str = "ids", several: str = "decode each one") -> list[int]:
    """One sequence of int ids (a list, tuple, 1-D tensor or array; NumPy integers count) as a
    list of Python ints. A single int is refused with a pointer, and so is a batch of sequences
    (a 2-D tensor, a list of lists), with `several`: what to do for several."""
    if hasattr(ids, "tolist") and not isinstance(ids, (list, tuple)):
        ids = ids.tolist()  # a tensor or array (or a NumPy integer: then an int)
    if isinstance(ids, numbers.Integral) or not isinstance(ids, (list, tuple)):
        raise TypeError(f"{name} must be a list of ints, got {ids!r}; for one id write [{ids!r}]")
    if ids and all(isinstance(row, (list, tuple)) or getattr(row, "ndim", 0) >= 1
                   for row in ids):
        raise TypeError(f"{name} must be one sequence of ids, got {len(ids)} sequences (a 2-D "
                        f"tensor or a list of lists): decode takes one sequence; for several, "
                        f"{several}")
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"{name} must hold ints, got {i!r} ({type(i).__name__})")
    return [int(i) for i in ids]
