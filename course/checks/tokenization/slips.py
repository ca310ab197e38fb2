"""The second catalogue (`SLIPS`): wrong versions of the tokenization parts written as a learner
would write them."""

from __future__ import annotations

from course.checks.core import Slip
from course.checks.tokenization.mistakes import BASE, BPE, CHAR, WORDPIECE

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
