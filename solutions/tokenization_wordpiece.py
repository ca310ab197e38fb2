"""WordPiece (BERT style): :func:`basic_tokenize` (normalization and pre-tokenization),
:func:`wordpiece` (greedy longest-match-first with ``##`` continuations), :func:`build_batch`
(special tokens, truncation, padding, attention masks) and the :class:`WordPieceTokenizer` that
loads a real ``vocab.txt`` and gives the same ids as the Hugging Face BERT tokenizer.

Only ``WordPieceTokenizer(..., return_tensors="pt")`` imports torch.
"""

from __future__ import annotations

import numbers
import os
import unicodedata

import regex

from solutions.inputs import require_str
from solutions.tokenization import require_id_list


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
        ids = require_id_list(ids, several="use batch_decode")
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

    def batch_decode(self, sequences, skip_special_tokens: bool = True) -> list[str]:
        """Several sequences of ids (a 2-D tensor, a list of lists) -> one text each."""
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        return [self.decode(ids, skip_special_tokens) for ids in sequences]

    def convert_tokens_to_ids(self, tokens):
        """A token (str) or list of tokens -> id(s); unknown tokens -> the [UNK] id."""
        unk = self.vocab[self.unk_token]
        if isinstance(tokens, str):
            return self.vocab.get(tokens, unk)
        return [self.vocab.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids):
        """An id (an int, NumPy integers included) or a sequence of ids -> token(s)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()  # a tensor, an array or a NumPy integer
        if isinstance(ids, numbers.Integral) and not isinstance(ids, bool):
            return self._token(int(ids))
        return [self._token(i) for i in require_id_list(ids)]

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
        Face, a max_length without `truncation` truncates only without padding; with padding it
        does not (padding="max_length" then pads only the shorter rows, padding=True pads to
        the longest row whatever max_length says), and truncation=False keeps every id."""
        if truncation is None:
            truncation = max_length is not None and padding_strategy(padding) is None
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

