"""The encoder (chapter 7): BERT's layout, and what a sentence-level task puts on top.

- :class:`EncoderLayer` -- a bidirectional :class:`~solutions.residual.Block`; ``from_torch``
  copies a ``torch.nn.TransformerEncoderLayer``.
- :class:`EncoderEmbeddings`, :class:`Pooler`, :class:`Encoder` -- token ids (B, T) -> one
  contextual vector per token (B, T, C), and BERT's [CLS] summary (B, C).
  ``Encoder.from_pretrained()`` loads all-MiniLM-L6-v2 through :mod:`solutions.pretrained`.
- :func:`mean_pool`, :class:`SentenceEncoder` -- texts -> unit-length sentence embeddings.
- :class:`TokenClassificationHead`, :class:`QuestionAnsweringHead` -- per-token heads. (One label
  per text: :class:`solutions.transfer.SequenceClassifier`.)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from solutions.attention import padding_mask
from solutions.inputs import require_batch_ids
from solutions.model import ModelConfig
from solutions.pretrained import (
    load_encoder,
    load_torch_encoder_layer,
    minilm_path,
    torch_layer_config,
)
from solutions.residual import Block


class EncoderLayer(Block):
    """A bidirectional Block (no causal mask, no cross-attention): one layer of an encoder."""

    def __init__(self, config: ModelConfig):
        super().__init__(config, causal=False, cross=False)

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> EncoderLayer:
        """A new EncoderLayer holding a copy of the weights of ``layer`` (which must be
        ``batch_first=True``; GELU or ReLU; either norm_first), giving the same outputs."""
        return load_torch_encoder_layer(cls(torch_layer_config(layer)), layer)


class EncoderEmbeddings(nn.Module):
    """BERT's input layer: token ids (B, T) -> (B, T, C).

    ``LayerNorm(word[id] + position[t] + token_type[segment])``, then dropout. Positions are
    learned (one row per position up to ``block_size``); the token type (segment) says which of
    two sentences a token belongs to (all 0 for a single text).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.type_vocab_size < 1:
            raise ValueError("an encoder needs type_vocab_size >= 1 (BERT uses 2)")
        C = config.n_embd
        self.word = nn.Embedding(config.vocab_size, C, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.block_size, C)
        self.token_type = nn.Embedding(config.type_vocab_size, C)
        self.ln = config.layer_norm()                     # LayerNorm(C, eps=config.eps)
        self.dropout = nn.Dropout(config.dropout)
        self.register_buffer("positions", torch.arange(config.block_size), persistent=False)

    def forward(self, input_ids: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T), token_type_ids (B, T) or None (all 0) -> (B, T, C)."""
        require_batch_ids(input_ids, "input_ids")
        if token_type_ids is not None:
            require_batch_ids(token_type_ids, "token_type_ids", like=input_ids)
        if input_ids.size(1) > self.position.num_embeddings:
            raise ValueError(f"sequence of {input_ids.size(1)} tokens is longer than the "
                             f"{self.position.num_embeddings} positions the model knows")
        T = input_ids.size(1)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)  # one segment
        x = (self.word(input_ids)                         # (B, T, C)
             + self.position(self.positions[:T])          # (T, C), broadcast over the batch
             + self.token_type(token_type_ids))           # (B, T, C)
        return self.dropout(self.ln(x))


class Pooler(nn.Module):
    """(B, T, C) -> (B, C): ``tanh(dense(h_[CLS]))``, the first token's final state through a
    dense layer and tanh -- BERT's summary of the whole input for sentence-level tasks."""

    def __init__(self, d_model: int):
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if hidden.dim() != 3 or hidden.size(-1) != self.dense.in_features:
            raise ValueError(f"hidden must be (B, T, {self.dense.in_features}), got "
                             f"{tuple(hidden.shape)}")
        return torch.tanh(self.dense(hidden[:, 0]))      # [CLS] is position 0: (B, C)


class Encoder(nn.Module):
    """A BERT-style encoder: embeddings + ``n_layer`` EncoderLayers (+ a pooler for heads).

    ``forward(input_ids, attention_mask, token_type_ids)`` returns the last hidden state
    (B, T, C): one contextual vector per token. Every layer keeps the shape. With
    ``config.norm_first=False`` (BERT, post-LN) each layer ends in a LayerNorm; a pre-LN stack
    gets a final LayerNorm ``ln_f`` instead. ``Encoder.from_pretrained(path)`` loads a
    BERT-layout checkpoint (default: the packaged all-MiniLM-L6-v2).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.config = config
        self.embeddings = EncoderEmbeddings(config)
        self.layers = nn.ModuleList([EncoderLayer(config) for _ in range(config.n_layer)])
        self.ln_f = config.layer_norm() if config.norm_first else None
        self.pooler = Pooler(config.n_embd)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T); attention_mask (B, T), 1 = real token, 0 = padding (None: all
        real); token_type_ids (B, T) or None. Returns the last hidden state (B, T, C)."""
        require_batch_ids(input_ids, "input_ids")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask must have the shape of input_ids "
                             f"{tuple(input_ids.shape)}, got {tuple(attention_mask.shape)}")
        x = self.embeddings(input_ids, token_type_ids)    # (B, T, C)
        mask = None if attention_mask is None else padding_mask(attention_mask)  # (B,1,1,T)
        for layer in self.layers:
            x = layer(x, mask)                            # (B, T, C), every token sees all
        if self.ln_f is not None:
            x = self.ln_f(x)
        return x

    @classmethod
    def from_pretrained(cls, path=None):
        """A BERT-layout folder (config.json + model.safetensors) -> Encoder in eval mode;
        path=None loads the packaged all-MiniLM-L6-v2. Names: solutions.pretrained."""
        return load_encoder(path, cls)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, C), (B, T) 1/0 -> (B, C): the average of each text's real tokens (padding
    excluded), the sentence embedding of sentence-transformers' mean pooling."""
    if hidden.dim() != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"expected hidden (B, T, C) and attention_mask (B, T), got "
                         f"{tuple(hidden.shape)} and {tuple(attention_mask.shape)}")
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)     # (B, T, 1): 1 = real token
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, C)


class SentenceEncoder(nn.Module):
    """Texts -> unit-length vectors (N, C): WordPiece tokenizer + Encoder + mean pooling over
    the real tokens + L2 normalisation (how all-MiniLM-L6-v2 makes sentence embeddings), so the
    dot product of two outputs is their cosine similarity."""

    def __init__(self, encoder: Encoder, tokenizer, max_length: int = 256):
        super().__init__()
        if not isinstance(encoder, Encoder):
            raise TypeError(f"encoder must be an Encoder, got {type(encoder).__name__}")
        if not 0 < max_length <= encoder.config.block_size:
            raise ValueError(f"max_length must be in 1..{encoder.config.block_size}, "
                             f"got {max_length}")
        self.encoder, self.tokenizer, self.max_length = encoder, tokenizer, max_length

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids, attention_mask (B, T) -> (B, C), each row of length 1."""
        hidden = self.encoder(input_ids, attention_mask, token_type_ids)  # (B, T, C)
        return F.normalize(mean_pool(hidden, attention_mask), dim=-1)

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """A list of N texts -> (N, C) unit vectors (no gradients; texts truncated to
        max_length tokens)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a list of str (wrap a single text in a list)")
        device = self.encoder.pooler.dense.weight.device
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(list(texts[start:start + batch_size]), padding=True,
                                   truncation=True, max_length=self.max_length,
                                   return_tensors="pt")
            out.append(self(batch["input_ids"].to(device), batch["attention_mask"].to(device)))
        C = self.encoder.config.n_embd
        return torch.cat(out) if out else self.encoder.pooler.dense.weight.new_zeros(0, C)

    @classmethod
    def from_pretrained(cls, path=None) -> SentenceEncoder:
        """Encoder weights, vocab.txt and settings from a folder (None: all-MiniLM-L6-v2)."""
        from solutions.tokenization_wordpiece import WordPieceTokenizer

        encoder = Encoder.from_pretrained(path)
        folder = minilm_path() if path is None else Path(path)
        settings = {}
        for name in ("tokenizer_config.json", "sentence_bert_config.json"):
            if (folder / name).is_file():
                settings[name] = json.loads((folder / name).read_text())
        lowercase = settings.get("tokenizer_config.json", {}).get("do_lower_case", True)
        max_length = settings.get("sentence_bert_config.json", {}).get(
            "max_seq_length", encoder.config.block_size)
        tokenizer = WordPieceTokenizer(folder / "vocab.txt", lowercase=lowercase,
                                       model_max_length=encoder.config.block_size)
        return cls(encoder, tokenizer, int(max_length)).eval()


class TokenClassificationHead(nn.Module):
    """One label per token (named entities, parts of speech): (B, T, C) -> (B, T, n_labels)."""

    def __init__(self, d_model: int, n_labels: int, dropout: float = 0.0):
        super().__init__()
        if n_labels < 1:
            raise ValueError(f"n_labels must be >= 1, got {n_labels}")
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d_model, n_labels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if hidden.dim() != 3 or hidden.size(-1) != self.classifier.in_features:
            raise ValueError(f"hidden must be (B, T, {self.classifier.in_features}), got "
                             f"{tuple(hidden.shape)}")
        return self.classifier(self.dropout(hidden))      # (B, T, n_labels)


class QuestionAnsweringHead(nn.Module):
    """Extractive QA: (B, T, C) -> (start_logits, end_logits), each (B, T): how likely each
    token is to start / end the answer span inside the context."""

    def __init__(self, d_model: int):
        super().__init__()
        self.qa = nn.Linear(d_model, 2)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if hidden.dim() != 3 or hidden.size(-1) != self.qa.in_features:
            raise ValueError(f"hidden must be (B, T, {self.qa.in_features}), got "
                             f"{tuple(hidden.shape)}")
        start, end = self.qa(hidden).unbind(-1)          # (B, T) each
        return start, end

