"""Training benchmark: `python -m course bench train`. Three rows:

1. throughput: training tokens/s (forward + backward + AdamW) of our GPT against the same sizes
   built from torch.nn.TransformerEncoder with a causal mask, interleaved in one process;
   ratio = ours / theirs (target >= 1.0). Ours is the default GPT (``ModelConfig.fused``:
   self-attention, LayerNorm and GELU in PyTorch's fused kernels); the row also shows the
   from-definition modules of Chapters 3, 4 and 6 (``fused=False``) and their ratio, to see
   what the kernels buy;
2. grammar floor: our GPT trained for a fixed CPU time budget (3 minutes of process time) on
   the grammar corpus; its validation loss minus the exact floor on the same windows
   (target <= 0.03 nats per word);
3. cpu-small vs nanoGPT: our `cpu-small` preset (solutions.training.train + GPT) against a
   nanoGPT-equivalent baseline (nanoGPT's model.py and train.py loop re-written here, its CPU
   recipe: block 64, batch 12, 4 layers, 4 heads, 128 wide, 2000 iterations, dropout 0,
   lr 1e-3 -> 1e-4, warm-up 100, beta2 0.99, no biases) on the character-level pydoc prose;
   both evaluated on the same validation batches; target: loss no higher, CPU time no longer
   (ratio = nanoGPT's CPU seconds / ours; wall seconds are shown too).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from course.datasets import english_prose
from course.datasets.grammar import Grammar, model_nll, windows
from solutions.decoder import GPT
from solutions.model import ModelConfig
from solutions.tokenization_char import CharTokenizer
from solutions.training import TrainConfig, estimate_loss, get_batch, train

# ---------------------------------------------------------------------------------------------
# 1. throughput against nn.TransformerEncoder
# ---------------------------------------------------------------------------------------------


class TorchEncoderLM(nn.Module):
    """The same GPT built from torch.nn.TransformerEncoder (pre-LN, GELU, causal mask)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        C = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, C)
        self.wpe = nn.Embedding(config.block_size, C)
        layer = nn.TransformerEncoderLayer(C, config.n_head, dim_feedforward=config.d_ff,
                                           dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.body = nn.TransformerEncoder(layer, config.n_layer, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(C)
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(
            config.block_size), persistent=False)

    def forward(self, idx, targets=None):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe.weight[:T]                      # (B, T, C)
        x = self.body(x, mask=self.mask[:T, :T], is_causal=True)
        logits = self.lm_head(self.ln_f(x))                          # (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1),
                                                            targets.flatten())
        return logits, loss


def bench_throughput(quick: bool = False) -> dict:
    size = dict(n_layer=2, n_head=2, n_embd=32, block_size=32) if quick else \
        dict(n_layer=4, n_head=4, n_embd=128, block_size=64)
    B = 4 if quick else 12
    config = ModelConfig(vocab_size=96, dropout=0.0, **size)
    torch.manual_seed(0)
    models = {"ours": GPT(config), "definition": GPT(replace(config, fused=False)),
              "torch": TorchEncoderLM(config)}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-3) for k, m in models.items()}
    g = torch.Generator().manual_seed(0)
    x = torch.randint(96, (B, config.block_size), generator=g)
    y = torch.randint(96, (B, config.block_size), generator=g)

    def step(name):
        _, loss = models[name](x, y)
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()

    warmup, repeats, inner = (1, 3, 2) if quick else (3, 9, 5)
    for _ in range(warmup):
        for name in models:
            step(name)
    times = {name: [] for name in models}
    for _ in range(repeats):                                  # interleaved
        for name in times:
            start = time.perf_counter()
            for _ in range(inner):
                step(name)
            times[name].append((time.perf_counter() - start) / inner)
    tokens = B * config.block_size
    ours, theirs = tokens / min(times["ours"]), tokens / min(times["torch"])
    definition = tokens / min(times["definition"])
    return dict(name="training tokens/s", size=f"B={B} T={config.block_size} "
                f"L={config.n_layer} H={config.n_head} C={config.n_embd}",
                baseline="nn.TransformerEncoder + causal mask", ours=ours, baseline_value=theirs,
                ratio=ours / theirs, target="ratio >= 1.0", ok=ours / theirs >= 1.0,
                from_definition=definition, ratio_from_definition=definition / theirs)


# ---------------------------------------------------------------------------------------------
# 2. the grammar corpus's floor within a CPU time budget
# ---------------------------------------------------------------------------------------------


def bench_grammar(quick: bool = False, budget_s: float = 180.0) -> dict:
    budget_s = 10.0 if quick else budget_s
    grammar = Grammar()
    ids = grammar.corpus(300_000 if not quick else 50_000, seed=0)
    n_val = len(ids) // 10
    data = {"train": ids[:-n_val], "val": ids[-n_val:]}
    block = 128 if not quick else 32
    model_config = ModelConfig(vocab_size=grammar.vocab_size, block_size=block, n_layer=2,
                               n_head=4, n_embd=96, dropout=0.0)
    base = dict(batch_size=32, block_size=block, lr=3e-3, min_lr=3e-4, eval_iters=5,
                progress=False, seed=0)
    # time a few steps, then pick max_iters so that the whole schedule fits in the budget
    torch.manual_seed(0)
    probe = GPT(model_config)
    start = time.process_time()                          # CPU time: robust to a busy machine
    train(probe, data, TrainConfig(max_iters=20, warmup_iters=2, eval_every=20, **base), "cpu")
    per_step = (time.process_time() - start) / 20
    max_iters = max(20, int(budget_s / per_step))
    torch.manual_seed(0)
    model = GPT(model_config)
    start = time.process_time()
    train(model, data, TrainConfig(max_iters=max_iters, warmup_iters=max(2, max_iters // 20),
                                   eval_every=max_iters, **base), "cpu")
    seconds = time.process_time() - start
    val = windows(data["val"], block, 512 if not quick else 64, seed=1)
    loss = model_nll(model, val).mean().item()
    floor = grammar.window_floor(val).mean().item()
    return dict(name="grammar: val loss - exact floor", size=f"{max_iters} steps, "
                f"{seconds:.0f} s CPU, T={block}", baseline="exact floor (same windows)",
                ours=loss, baseline_value=floor, ratio=loss - floor,
                entropy_rate=grammar.entropy_rate(), target="loss - floor <= 0.03 nats/word",
                ok=loss - floor <= 0.03)


# ---------------------------------------------------------------------------------------------
# 3. cpu-small against a nanoGPT-equivalent baseline
# ---------------------------------------------------------------------------------------------


class NanoAttention(nn.Module):
    def __init__(self, C: int, H: int, bias: bool):
        super().__init__()
        self.c_attn = nn.Linear(C, 3 * C, bias=bias)
        self.c_proj = nn.Linear(C, C, bias=bias)
        self.n_head = H

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class NanoBlock(nn.Module):
    def __init__(self, C: int, H: int, bias: bool):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C, bias=bias)
        self.attn = NanoAttention(C, H, bias)
        self.ln_2 = nn.LayerNorm(C, bias=bias)
        self.c_fc = nn.Linear(C, 4 * C, bias=bias)
        self.c_proj = nn.Linear(4 * C, C, bias=bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x))))


class NanoGPT(nn.Module):
    """nanoGPT's model.py, condensed: same layout, same initialisation."""

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int,
                 n_embd: int, bias: bool = False):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList(NanoBlock(n_embd, n_head, bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

    def forward(self, idx, targets=None):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1),
                                                            targets.flatten())
        return logits, loss


def nanogpt_train(model, data, max_iters, batch_size=12, block_size=64, lr=1e-3, min_lr=1e-4,
                  warmup=100, seed=1337):
    """nanoGPT's train.py loop for one process on the CPU (no eval inside the timing)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(seed)
    for it in range(max_iters):
        if it < warmup:
            rate = lr * (it + 1) / (warmup + 1)
        else:
            ratio = (it - warmup) / (max_iters - warmup)
            rate = min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)
        for group in opt.param_groups:
            group["lr"] = rate
        x, y = get_batch(data["train"], batch_size, block_size, generator=g)
        _, loss = model(x, y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)


def bench_cpu_small(quick: bool = False) -> dict:
    from course.cli.train import PRESETS

    model_kw, train_kw = PRESETS["cpu-small"]
    text = english_prose()
    tok = CharTokenizer(text)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    n_val = len(ids) // 10
    data = {"train": ids[:-n_val], "val": ids[-n_val:]}
    max_iters = 60 if quick else train_kw["max_iters"]
    config = TrainConfig(**{**train_kw, "max_iters": max_iters, "eval_every": max_iters,
                            "eval_iters": 1, "progress": False,
                            "warmup_iters": min(train_kw["warmup_iters"], max_iters // 10)})
    torch.manual_seed(1337)
    ours = GPT(ModelConfig(vocab_size=tok.vocab_size, **model_kw))
    start, wall = time.process_time(), time.perf_counter()
    train(ours, data, config, "cpu")
    ours_s, ours_wall = time.process_time() - start, time.perf_counter() - wall
    torch.manual_seed(1337)
    nano = NanoGPT(tok.vocab_size, model_kw["block_size"], model_kw["n_layer"],
                   model_kw["n_head"], model_kw["n_embd"])
    start, wall = time.process_time(), time.perf_counter()
    nanogpt_train(nano, data, max_iters, warmup=config.warmup_iters)
    nano_s, nano_wall = time.process_time() - start, time.perf_counter() - wall
    evals = 20 if quick else 200                       # the same batches for both models
    ours_loss = estimate_loss(ours, {"val": data["val"]}, 12, 64, evals, seed=7)["val"]
    nano_loss = estimate_loss(nano, {"val": data["val"]}, 12, 64, evals, seed=7)["val"]
    return dict(name="cpu-small vs nanoGPT (pydoc prose, chars)",
                size=f"{max_iters} iters; CPU s ours {ours_s:.0f} / nanoGPT {nano_s:.0f}; "
                     f"wall s {ours_wall:.0f} / {nano_wall:.0f}",
                baseline="nanoGPT-equivalent, same recipe", ours=ours_loss,
                baseline_value=nano_loss, ratio=nano_s / ours_s,
                target="val loss <= baseline's + 0.01 and time ratio >= 0.95",
                ok=ours_loss <= nano_loss + 0.01 and nano_s / ours_s >= 0.95)


def run(quick: bool = False) -> list[dict]:
    """All three rows; quick=True: small sizes and budgets (a smoke test)."""
    return [bench_throughput(quick), bench_grammar(quick), bench_cpu_small(quick)]


if __name__ == "__main__":  # pragma: no cover
    from course.bench import report

    print(report(run()))
