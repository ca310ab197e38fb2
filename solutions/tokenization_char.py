"""The character-level tokenizer: one id per character, id 0 for unknown characters."""

from __future__ import annotations

from solutions.inputs import require_str
from solutions.tokenization import require_id_list


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
