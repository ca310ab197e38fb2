"""The catalogue of known tokenization mistakes (`MISTAKES`), with the dotted prefixes of the
targets they and the checks name."""

from __future__ import annotations

from course.checks.core import Mistake

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
