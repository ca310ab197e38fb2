"""Encoder benchmark: our Encoder against PyTorch's and Hugging Face's, measured in one run.

- Training step (forward + backward) of our ``Encoder`` against the same model assembled from
  ``torch.nn`` parts (``nn.Embedding`` x 3, ``nn.LayerNorm`` and ``nn.TransformerEncoder`` with
  post-LN GELU layers), holding the same weights: once on a padded batch (a boolean padding
  mask reaches every layer) and once without a mask, where both run PyTorch's fused
  ``F.scaled_dot_product_attention`` on the plain path.
- Inference throughput of all-MiniLM-L6-v2: ``Encoder.from_pretrained()`` against
  ``transformers.AutoModel`` on the same padded batch of real text.

Runs are interleaved (ours, theirs, ours, ...) so machine noise hits both alike; each row also
checks that both computed the same result. ratio = baseline time / our time (above 1: we are
faster). The thread count is left as it is.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from solutions.encoder import Encoder
from solutions.model import ModelConfig

FULL = dict(B=8, T=128, C=256, H=8, L=4, V=8000)
QUICK = dict(B=2, T=16, C=32, H=4, L=2, V=100)
TARGETS = {"mask": 0.9, "sdpa": 1.0, "minilm": 1.0}


class TorchEncoder(nn.Module):
    """BERT's encoder from torch.nn parts: the baseline, same weights as an Encoder."""

    def __init__(self, ours: Encoder):
        super().__init__()
        c = ours.config
        self.word = nn.Embedding(c.vocab_size, c.n_embd)
        self.position = nn.Embedding(c.block_size, c.n_embd)
        self.token_type = nn.Embedding(c.type_vocab_size, c.n_embd)
        self.ln = nn.LayerNorm(c.n_embd, eps=c.eps)
        layer = nn.TransformerEncoderLayer(c.n_embd, c.n_head, c.d_ff, dropout=0.0,
                                           activation="gelu", layer_norm_eps=c.eps,
                                           batch_first=True, norm_first=False)
        self.layers = nn.TransformerEncoder(layer, c.n_layer, enable_nested_tensor=False)
        self.register_buffer("positions", torch.arange(c.block_size), persistent=False)
        with torch.no_grad():
            for name in ("word", "position", "token_type"):
                getattr(self, name).weight.copy_(getattr(ours.embeddings, name).weight)
            self.ln.load_state_dict(ours.embeddings.ln.state_dict())
            for theirs, mine in zip(self.layers.layers, ours.layers, strict=True):
                qkv = torch.cat([mine.attn.query.weight, mine.attn.key.weight,
                                 mine.attn.value.weight])
                theirs.self_attn.in_proj_weight.copy_(qkv)
                theirs.self_attn.in_proj_bias.copy_(torch.cat(
                    [mine.attn.query.bias, mine.attn.key.bias, mine.attn.value.bias]))
                theirs.self_attn.out_proj.load_state_dict(mine.attn.out.state_dict())
                theirs.linear1.load_state_dict(mine.mlp.fc.state_dict())
                theirs.linear2.load_state_dict(mine.mlp.proj.state_dict())
                theirs.norm1.load_state_dict(mine.ln_1.state_dict())
                theirs.norm2.load_state_dict(mine.ln_2.state_dict())

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        T = input_ids.size(1)
        types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        x = self.ln(self.word(input_ids) + self.position(self.positions[:T])
                    + self.token_type(types))
        padding = None if attention_mask is None else attention_mask == 0  # True = ignore
        return self.layers(x, src_key_padding_mask=padding)


def _timed(fns: dict, warmup: int, repeats: int, inner: int) -> dict[str, float]:
    """Median seconds per call of each function, interleaved."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            times[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(t) for name, t in times.items()}


def _row(name, size, baseline, ours_s, theirs_s, target, same, **extra) -> dict:
    ratio = theirs_s / ours_s
    return dict(name=name, size=size, baseline=baseline, ours_s=ours_s, baseline_s=theirs_s,
                ratio=ratio, target=f"ratio >= {target:g}, same output", same=same,
                ok=bool(same) and ratio >= target, **extra)


def bench_training(masked: bool, quick: bool = False) -> dict:
    s = QUICK if quick else FULL
    B, T = s["B"], s["T"]
    torch.manual_seed(0)
    ours = Encoder(ModelConfig(vocab_size=s["V"], block_size=T, n_layer=s["L"], n_embd=s["C"],
                               n_head=s["H"], norm_first=False, eps=1e-12)).train()
    theirs = TorchEncoder(ours).train()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(s["V"], (B, T), generator=g)
    mask = None
    if masked:
        lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
        lengths[0] = T
        mask = (torch.arange(T) < lengths[:, None]).long()   # (B, T): 1 = real token

    def step(model):
        model.zero_grad(set_to_none=True)
        out = model(ids, mask)
        (out if mask is None else out * mask[..., None]).square().mean().backward()
        return out.detach()

    real = torch.ones(B, T, dtype=torch.bool) if mask is None else mask.bool()
    same = torch.allclose(step(ours)[real], step(theirs)[real], rtol=1e-4, atol=1e-4)
    warmup, repeats, inner = (1, 3, 1) if quick else (1, 5, 1)
    t = _timed({"ours": lambda: step(ours), "theirs": lambda: step(theirs)},
               warmup, repeats, inner)
    label = "padded batch (mask)" if masked else "no mask (SDPA path)"
    return _row(f"Encoder forward+backward, {label}",
                f"B={B} T={T} C={s['C']} H={s['H']} L={s['L']}",
                "torch.nn.TransformerEncoder + nn.Embedding", t["ours"], t["theirs"],
                TARGETS["mask" if masked else "sdpa"], same)


def bench_minilm(quick: bool = False) -> dict:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging

    from solutions.pretrained import minilm_path

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    folder = minilm_path()
    ours = Encoder.from_pretrained(folder)
    theirs = AutoModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    from course.datasets import english_prose

    paragraphs = [" ".join(p.split()) for p in english_prose().split("\n\n") if len(p) > 80]
    B = 4 if quick else 32
    batch = tokenizer(paragraphs[:B], padding=True, truncation=True,
                      max_length=32 if quick else 128, return_tensors="pt")
    args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])

    @torch.no_grad()
    def run_ours():
        return ours(*args)

    @torch.no_grad()
    def run_theirs():
        return theirs(**batch).last_hidden_state

    real = batch["attention_mask"].bool()
    same = torch.allclose(run_ours()[real], run_theirs()[real], rtol=0, atol=1e-4)
    warmup, repeats, inner = (1, 3, 1) if quick else (1, 5, 1)
    t = _timed({"ours": run_ours, "theirs": run_theirs}, warmup, repeats, inner)
    B, T = batch["input_ids"].shape
    return _row("MiniLM inference (texts/s)", f"B={B} T={T}, padded, no_grad",
                "transformers.AutoModel", t["ours"], t["theirs"], TARGETS["minilm"], same,
                ours_per_s=B / t["ours"], baseline_per_s=B / t["theirs"])


def run(quick: bool = False) -> list[dict]:
    """The three rows; quick=True uses small sizes (a smoke test)."""
    return [bench_training(True, quick), bench_training(False, quick), bench_minilm(quick)]


if __name__ == "__main__":  # pragma: no cover
    from course.bench import report

    print(report(run()))
