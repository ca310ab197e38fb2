"""Our own ``pipeline(task)``: the four stages of a transformer application, on our modules.

    text -> tokenizer -> model body -> head -> post-processing -> answer

``pipeline("sentiment-analysis", model=...)``  a :class:`~solutions.transfer.SequenceClassifier`
    (or the folder it was saved to): texts -> ``[{"label", "score"}]``.
``pipeline("feature-extraction")``  all-MiniLM-L6-v2 as a :class:`~solutions.encoder.SentenceEncoder`
    (the default) or any SentenceEncoder: texts -> (N, C) unit vectors.
``pipeline("text-generation", model=gpt, tokenizer=tok)``  a :class:`~solutions.decoder.GPT` and
    a tokenizer with ``encode``/``decode``: prompts -> ``[{"generated_text"}]``.

Each pipeline keeps its stages apart (``preprocess``, ``forward``, ``postprocess``) so they can
be looked at one by one.
"""

from __future__ import annotations

from pathlib import Path

import torch

TASKS = ("sentiment-analysis", "feature-extraction", "text-generation")


def _texts(inputs) -> tuple[list[str], bool]:
    """A str or a list of str -> (list, whether a single text was given)."""
    if isinstance(inputs, str):
        return [inputs], True
    if not isinstance(inputs, (list, tuple)) or not all(isinstance(t, str) for t in inputs):
        raise TypeError("give a text (str) or a list of texts")
    return list(inputs), False


class SentimentPipeline:
    """texts -> WordPiece ids -> Encoder -> pooled head logits -> softmax + id2label."""

    def __init__(self, model, tokenizer, max_length: int = 128):
        self.model, self.tokenizer, self.max_length = model.eval(), tokenizer, max_length

    def preprocess(self, texts: list[str]) -> dict:
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    @torch.no_grad()
    def forward(self, batch: dict) -> torch.Tensor:
        return self.model(batch["input_ids"], batch["attention_mask"])   # (B, K) logits

    def postprocess(self, logits: torch.Tensor) -> list[dict]:
        from solutions.transfer import postprocess

        return postprocess(logits, self.model.id2label)

    def __call__(self, inputs):
        texts, single = _texts(inputs)
        out = self.postprocess(self.forward(self.preprocess(texts)))
        return out[0] if single else out


class FeatureExtractionPipeline:
    """texts -> (N, C) sentence vectors of length 1 (tokenizer + encoder + mean pooling)."""

    def __init__(self, model):
        self.model = model.eval()

    def __call__(self, inputs) -> torch.Tensor:
        texts, single = _texts(inputs)
        vectors = self.model.encode(texts)                # (N, C)
        return vectors[0] if single else vectors


class TextGenerationPipeline:
    """prompt -> ids -> GPT + decoding (greedy or sampling) -> text."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model.eval(), tokenizer

    def __call__(self, inputs, max_new_tokens: int = 50, **decoding):
        from solutions.generation import generate

        prompts, single = _texts(inputs)
        device = next(self.model.parameters()).device
        out = []
        for prompt in prompts:
            ids = self.tokenizer.encode(prompt)
            if not ids:
                raise ValueError("the prompt must hold at least one token")
            idx = torch.tensor([ids], dtype=torch.long, device=device)          # (1, T)
            new = generate(self.model, idx, max_new_tokens, **decoding)         # (1, T + n)
            out.append({"generated_text": self.tokenizer.decode(new[0].tolist())})
        return out[0] if single else out


def pipeline(task: str, model=None, tokenizer=None):
    """A ready-to-call pipeline for `task` (one of ``TASKS``); see the module docstring."""
    from solutions.decoder import GPT
    from solutions.encoder import SentenceEncoder
    from solutions.transfer import SequenceClassifier, from_pretrained

    if task == "feature-extraction":
        model = SentenceEncoder.from_pretrained() if model is None else model
        if not isinstance(model, SentenceEncoder):
            raise TypeError("feature-extraction needs a SentenceEncoder (or None for MiniLM)")
        return FeatureExtractionPipeline(model)
    if task == "sentiment-analysis":
        if isinstance(model, (str, Path)):
            model = from_pretrained(model)
        if not isinstance(model, SequenceClassifier):
            raise TypeError("sentiment-analysis needs a trained SequenceClassifier or the "
                            "folder it was saved to (no sentiment model ships with the course)")
        if tokenizer is None:
            from solutions.pretrained import minilm_path
            from solutions.tokenization_wordpiece import WordPieceTokenizer

            tokenizer = WordPieceTokenizer(minilm_path() / "vocab.txt")
        return SentimentPipeline(model, tokenizer)
    if task == "text-generation":
        if not isinstance(model, GPT) or tokenizer is None:
            raise TypeError("text-generation needs model=a GPT and tokenizer=one with "
                            "encode/decode")
        return TextGenerationPipeline(model, tokenizer)
    raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
