"""Transfer learning: reuse a pretrained body, train a small head, share the result.

- :func:`freeze`, :func:`unfreeze`, :func:`count_trainable` -- choose which parameters learn.
- :func:`trainable_optimizer` -- AdamW over the parameters that learn, and only those.
- :class:`SequenceClassifier` -- a pretrained :class:`~solutions.encoder.Encoder` + a head:
  the pooled [CLS] state (``pooling="cls"``) or the mean over real tokens (``"mean"``).
- :func:`extract_features` -- the frozen body as a feature extractor (eval mode, no gradients).
- :func:`train_head` -- a linear classifier trained on fixed features (logistic regression).
- :func:`postprocess` -- logits -> ``[{"label": ..., "score": ...}]``, a pipeline's last stage.
- :func:`save_pretrained`, :func:`from_pretrained` -- a classifier as a folder
  (``config.json`` + ``model.safetensors``), loadable without the code that trained it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from solutions.encoder import Encoder, mean_pool
from solutions.model import ModelConfig
from solutions.pretrained import load_own

POOLINGS = ("cls", "mean")


def freeze(model: nn.Module) -> nn.Module:
    """Stop every parameter of `model` from learning (requires_grad = False); returns it."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def unfreeze(model: nn.Module, names: Iterable[str]) -> nn.Module:
    """Let the submodules or parameters called `names` learn again (e.g. ``["pooler"]`` or
    ``["layers.5", "pooler"]``: a name covers everything below it); returns `model`.

    A name that matches nothing raises ValueError (a typo must not silently train nothing)."""
    if isinstance(names, str):
        raise TypeError("names must be a list of names, e.g. ['pooler'], not a single str")
    names = list(names)
    params = dict(model.named_parameters())
    for name in names:
        chosen = [p for n, p in params.items() if n == name or n.startswith(name + ".")]
        if not chosen:
            raise ValueError(f"no parameter of the model is called {name!r} or lies under it")
        for p in chosen:
            p.requires_grad_(True)
    return model


def count_trainable(model: nn.Module) -> int:
    """How many numbers the optimizer may change: the elements of parameters that require
    gradients (a parameter shared by two modules counts once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def trainable_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.01):
    """AdamW over the trainable parameters only (call it AFTER freezing: a frozen parameter
    handed to AdamW would still shrink through weight decay once it has a gradient)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters: unfreeze something first")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


class SequenceClassifier(nn.Module):
    """A pretrained body + a classification head: (input_ids, attention_mask) -> logits (B, K).

    ``pooling="cls"`` uses the encoder's own (pretrained) pooler on the [CLS] state, as BERT's
    sequence classification does; ``"mean"`` averages the real tokens (the sentence embedding
    of all-MiniLM-L6-v2). ``id2label`` names the classes for :func:`postprocess`.
    """

    def __init__(self, encoder: Encoder, n_classes: int, pooling: str = "cls",
                 dropout: float = 0.1, id2label: Sequence[str] | None = None):
        super().__init__()
        if not isinstance(encoder, Encoder):
            raise TypeError(f"encoder must be an Encoder, got {type(encoder).__name__}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
        id2label = list(id2label) if id2label is not None else [f"LABEL_{i}" for i in
                                                                 range(n_classes)]
        if len(id2label) != n_classes:
            raise ValueError(f"id2label names {len(id2label)} classes, n_classes is {n_classes}")
        self.encoder, self.pooling, self.id2label = encoder, pooling, id2label
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.n_embd, n_classes)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T), attention_mask (B, T) 1 = real / 0 = padding -> logits (B, K)."""
        hidden = self.encoder(input_ids, attention_mask)             # (B, T, C)
        if self.pooling == "cls":
            pooled = self.encoder.pooler(hidden)                     # (B, C)
        else:
            mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
            pooled = mean_pool(hidden, mask)                         # (B, C)
        return self.classifier(self.dropout(pooled))                 # (B, K)


@torch.no_grad()
def extract_features(encoder: Encoder, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor) -> torch.Tensor:
    """The body as a fixed feature extractor: (B, T) ids and 1/0 mask -> (B, C), the mean of
    each text's real tokens, computed in eval mode (no dropout) without gradients. The
    encoder's own train/eval mode is restored afterwards."""
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must have the shape "
                         f"of input_ids {tuple(input_ids.shape)}")
    was_training = encoder.training
    encoder.eval()
    try:
        hidden = encoder(input_ids, attention_mask)                  # (B, T, C)
        return mean_pool(hidden, attention_mask)                     # (B, C), padding excluded
    finally:
        encoder.train(was_training)


def train_head(features: torch.Tensor, labels: torch.Tensor, n_classes: int = 2,
               steps: int = 300, lr: float = 1e-2, seed: int = 0) -> nn.Linear:
    """A linear head (C -> n_classes) trained on fixed features (N, C) against labels (N,)
    with full-batch AdamW and cross-entropy for `steps` steps; returns it in eval mode."""
    if features.dim() != 2 or labels.shape != features.shape[:1]:
        raise ValueError(f"expected features (N, C) and labels (N,), got "
                         f"{tuple(features.shape)} and {tuple(labels.shape)}")
    torch.manual_seed(seed)
    head = nn.Linear(features.size(1), n_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(head(features), labels).backward()
        opt.step()
    return head.eval()


def postprocess(logits: torch.Tensor, id2label: Sequence[str]) -> list[dict]:
    """Logits (B, K) -> one ``{"label": name, "score": probability}`` per row: the softmax
    over the classes, and the most likely class with its probability."""
    if logits.dim() != 2 or logits.size(1) != len(id2label):
        raise ValueError(f"logits must be (B, {len(id2label)}) for {len(id2label)} labels, "
                         f"got {tuple(logits.shape)}")
    probs = F.softmax(logits.detach().float(), dim=-1)              # (B, K), rows sum to 1
    score, best = probs.max(dim=-1)                                  # (B,), (B,)
    return [{"label": id2label[i], "score": s} for i, s in zip(best.tolist(), score.tolist())]


# ---------------------------------------------------------------------------------------------
# Sharing a classifier: config.json + model.safetensors
# ---------------------------------------------------------------------------------------------


def save_pretrained(model: SequenceClassifier, path) -> Path:
    """Write `model` to the folder `path`: ``config.json`` (sizes, pooling, labels) and
    ``model.safetensors`` (every tensor, by our names). Returns the folder."""
    from safetensors.torch import save_file

    if not isinstance(model, SequenceClassifier):
        raise TypeError(f"save_pretrained saves a SequenceClassifier, got {type(model).__name__}")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"architecture": "SequenceClassifier", "pooling": model.pooling,
              "id2label": list(model.id2label), "dropout": model.dropout.p,
              "model": dataclasses.asdict(model.encoder.config)}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(folder / "model.safetensors"))
    return folder


def from_pretrained(path) -> SequenceClassifier:
    """A folder written by :func:`save_pretrained` -> the classifier, in eval mode."""
    from safetensors.torch import load_file

    folder = Path(path)
    for name in ("config.json", "model.safetensors"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} has no {name}: not a saved classifier folder")
    config = json.loads((folder / "config.json").read_text())
    if config.get("architecture") != "SequenceClassifier":
        raise ValueError(f"{folder / 'config.json'} describes a "
                         f"{config.get('architecture')!r}, not a SequenceClassifier")
    labels = config["id2label"]
    model = SequenceClassifier(Encoder(ModelConfig(**config["model"])), len(labels),
                               pooling=config["pooling"], dropout=config["dropout"],
                               id2label=labels)
    tensors = load_file(str(folder / "model.safetensors"))
    load_own(model, tensors, source=str(folder / "model.safetensors"))
    return model.eval()
