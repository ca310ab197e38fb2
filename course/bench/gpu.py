"""GPU benchmark: `python -m course bench gpu`, one prepared run that fits a five-minute loan
of one GPU (CUDA only; elsewhere the command says so and exits with status 2).

Training: the `gpt2-small` preset (124M parameters, T = 1024, vocabulary 50304), random token
ids (nothing downloaded), batch 12, bf16 autocast, torch.compile, the course's training step
(fused AdamW, gradient clipping) for three models:

- ours: GPT with the default ``ModelConfig.fused``;
- nanoGPT: the nanoGPT-equivalent model of ``course.bench.train`` at the same sizes, biases on;
- ours, fused=False: the from-definition modules of chapters 3, 4 and 6.

Each model is built, compiled and warmed up in turn (compile_s: its first step, compiling
included, reported apart), then the three are timed interleaved in rounds of a few steps, and
the best round counts. Per model:

- tokens/s, and ratio = tokens/s / nanoGPT's;
- MFU = FLOPs per token x tokens/s / PEAK_FLOPS. FLOPs per token as nanoGPT's estimate_mfu
  (PaLM, appendix B): 6 N + 12 L H Q T, with N the parameters without the position table, L
  layers, H heads, Q = C / H the head size and T the sequence length (forward and backward,
  attention included). The peak is an H100 SXM's dense bf16 989 TFLOP/s, whatever the GPU;
- peak_mem_gb: torch.cuda.max_memory_allocated while the model is built, compiled and warmed
  up, less what was allocated before (the other models): its weights, gradients, AdamW state
  and activations;
- attention: the attention kernels torch.profiler saw during one training step (their names,
  and the family they belong to: flash, efficient, cudnn or math).

Generation: ours in bf16 (not compiled) generates greedily from a prompt with the KV cache and
without; tokens/s of each, ratio = cached / uncached, `same`: the same tokens.
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from dataclasses import replace

import torch

from course.bench.train import NanoGPT
from solutions.decoder import GPT
from solutions.generation import generate
from solutions.model import ModelConfig
from solutions.training import TrainConfig, make_optimizer, train_step

PEAK_FLOPS = 989e12             # H100 SXM, dense bf16 (NVIDIA's data sheet)
TARGET_MFU = 0.45               # ours, gpt2-small, bf16, on an H100
TARGET_RATIO = 1.0              # ours / nanoGPT, tokens/s
BUDGET_S = 270                  # a model is skipped rather than pass five minutes in all
ATTENTION = re.compile(r"flash|fmha|attention|sdpa", re.IGNORECASE)
FAMILIES = (("cudnn", "cudnn"), ("flash", "flash"), ("fmha", "efficient"),
            ("efficient", "efficient"), ("attention_kernel", "efficient"))


def gpt2_small() -> tuple[ModelConfig, TrainConfig]:
    from course.cli.train import PRESETS

    model_kw, train_kw = PRESETS["gpt2-small"]
    return ModelConfig(**model_kw), TrainConfig(**train_kw)


def flops_per_token(model: torch.nn.Module, config: ModelConfig) -> float:
    """Training FLOPs per token (forward and backward), nanoGPT's count: 6 N + 12 L H Q T."""
    n = sum(p.numel() for p in model.parameters()) - model.wpe.weight.numel()
    L, H, T = config.n_layer, config.n_head, config.block_size
    return 6 * n + 12 * L * H * (config.n_embd // H) * T


def progress(line: str) -> None:
    """A line on stderr as the run goes (a run cut short still shows how far it got)."""
    print(f"bench gpu: {line}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def attention_kernels(step, device: torch.device) -> list[str]:
    """The names of the attention kernels (GPU) or aten operators (CPU) that the profiler sees
    while `step()` runs, shortened to what precedes their template or argument list. Kernels
    that torch.compile generates (triton_*, named after the operations they fuse, such as the
    preparation of attention's inputs) are left out: they are not the attention kernel."""
    from torch.profiler import ProfilerActivity, profile

    activity = ProfilerActivity.CUDA if device.type == "cuda" else ProfilerActivity.CPU
    with profile(activities=[activity]) as prof:
        step()
        sync(device)
    names = {re.split(r"[<(]", event.key, maxsplit=1)[0].strip()
             for event in prof.key_averages()}
    if device.type != "cuda":
        names = {name for name in names if name.startswith("aten::")}
    return sorted(name for name in names
                  if ATTENTION.search(name) and not name.startswith("triton_"))


def kernel_family(names: list[str]) -> str:
    """flash, efficient, cudnn, or math when no dedicated attention kernel ran."""
    for key, family in FAMILIES:
        if any(key in name.lower() for name in names):
            return family
    return "math"


def training(device, config: ModelConfig, batch_size: int, *, rounds: int = 5,
             steps: int = 5, warmup: int = 3, backend: str | None = "inductor",
             dtype: str = "bfloat16", peak_flops: float = PEAK_FLOPS,
             budget_s: float = BUDGET_S) -> list[dict]:
    """Rows for ours, nanoGPT and ours with fused=False, trained on random ids (B, T) on
    `device`; `backend`: torch.compile's backend, None for eager. A model whose compilation
    would likely pass `budget_s` seconds since the start is skipped (its row says so)."""
    device = torch.device(device)
    start = time.perf_counter()
    T = config.block_size
    g = torch.Generator().manual_seed(0)
    x, y = (torch.randint(config.vocab_size, (batch_size, T), generator=g).to(device)
            for _ in range(2))
    train_config = replace(gpt2_small()[1], batch_size=batch_size, block_size=T)
    builders = {
        "ours": lambda: GPT(config),
        "nanoGPT": lambda: NanoGPT(config.vocab_size, T, config.n_layer, config.n_head,
                                   config.n_embd, bias=config.bias),
        "ours, fused=False": lambda: GPT(replace(config, fused=False)),
    }
    steps_of, info = {}, {}
    for name, build in builders.items():
        spent = time.perf_counter() - start
        longest = max((row["compile_s"] for row in info.values()), default=0.0)
        if info and spent + 1.5 * longest > budget_s:
            progress(f"{name}: skipped, its compilation would pass {budget_s:g} s")
            continue                                      # its row says so too
        sync(device)
        base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        torch.manual_seed(0)
        model = build().to(device)
        optimizer = make_optimizer(model, train_config, device)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        fast = torch.compile(model, backend=backend) if backend else model

        def step(fast=fast, optimizer=optimizer, scheduler=scheduler):
            return train_step(fast, optimizer, scheduler, [(x, y)], train_config.grad_clip,
                              dtype)

        t0 = time.perf_counter()
        step()
        sync(device)
        compile_s = time.perf_counter() - t0
        for _ in range(warmup):
            step()
        sync(device)
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**30 \
            if device.type == "cuda" else None
        kernels = attention_kernels(step, device)
        progress(f"{name}: first step {compile_s:.1f} s (compiling), attention kernels: "
                 f"{', '.join(kernels) or 'none'}")
        steps_of[name] = step
        info[name] = dict(compile_s=compile_s, peak_mem_gb=peak, kernels=kernels,
                          flops=flops_per_token(model, config))
    times, losses = {name: [] for name in steps_of}, {}
    for _ in range(rounds):                                   # interleaved
        for name, step in steps_of.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                loss = step()
            sync(device)
            times[name].append((time.perf_counter() - t0) / steps)
            losses[name] = loss.item()
    progress("timed " + ", ".join(f"{name} {batch_size * T / min(t):.0f} tokens/s"
                                  for name, t in times.items()))
    speed = {name: batch_size * T / min(spent) for name, spent in times.items()}
    rows = []
    for name in builders:
        if name not in info:
            rows.append(dict(name=name, skipped=f"its compilation would pass {budget_s:g} s"))
            continue
        row = dict(name=name, baseline="nanoGPT", tokens_per_s=speed[name],
                   ratio=speed[name] / speed["nanoGPT"] if "nanoGPT" in speed else None,
                   mfu=info[name]["flops"] * speed[name] / peak_flops,
                   peak_mem_gb=info[name]["peak_mem_gb"], compile_s=info[name]["compile_s"],
                   attention=kernel_family(info[name]["kernels"]), loss=losses[name])
        if name == "ours":
            row.update(target=f"MFU >= {TARGET_MFU:.0%} (H100), ratio >= {TARGET_RATIO:g}",
                       ok=row["mfu"] >= TARGET_MFU and (row["ratio"] or 0) >= TARGET_RATIO)
        rows.append({**row, "gflop_per_token": info[name]["flops"] / 1e9,
                     "kernels": ", ".join(info[name]["kernels"])})
    return rows


def generation(device, config: ModelConfig, *, prompt: int = 16, new_tokens: int = 256,
               batch_size: int = 1, rounds: int = 3, dtype=torch.bfloat16) -> dict:
    """Greedy generation with ours in `dtype`, with the KV cache and without (median of
    `rounds`, interleaved, after one warm-up each): tokens/s and whether the tokens agree."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = GPT(config).to(device=device, dtype=dtype).eval()
    idx = torch.randint(config.vocab_size, (batch_size, prompt),
                        generator=torch.Generator().manual_seed(1)).to(device)
    outputs = {c: generate(model, idx, new_tokens, greedy=True, use_cache=c)
               for c in (True, False)}                        # also the warm-up
    times = {True: [], False: []}
    for _ in range(rounds):
        for use_cache in times:
            sync(device)
            t0 = time.perf_counter()
            generate(model, idx, new_tokens, greedy=True, use_cache=use_cache)
            sync(device)
            times[use_cache].append(time.perf_counter() - t0)
    cached, full = (batch_size * new_tokens / statistics.median(times[c]) for c in (True, False))
    return dict(name=f"generation, KV cache ({str(dtype).removeprefix('torch.')})",
                size=f"B={batch_size}, prompt {prompt}, {new_tokens} new tokens",
                baseline="no KV cache",
                cached_tokens_per_s=cached, uncached_tokens_per_s=full, ratio=cached / full,
                same=torch.equal(outputs[True], outputs[False]))


def run(quick: bool = False) -> list[dict]:
    """The training rows for gpt2-small (quick: 2 layers, T = 256, fewer steps) and the
    generation row. Needs CUDA."""
    from course.bench import unavailable

    reason = unavailable("gpu")
    if reason:
        raise RuntimeError(reason)
    torch.backends.cuda.matmul.allow_tf32 = True          # as nanoGPT's train.py
    torch.backends.cudnn.allow_tf32 = True
    config = gpt2_small()[0]
    if quick:
        config = replace(config, n_layer=2, block_size=256)
    device = torch.device("cuda")
    gpu = torch.cuda.get_device_name(device)
    rows = training(device, config, batch_size=12, rounds=2 if quick else 5)
    for row in rows:
        row["gpu"] = gpu
    rows.append(generation(device, config, new_tokens=32 if quick else 256))
    return rows


if __name__ == "__main__":  # pragma: no cover
    from course.bench import report

    print(report(run()))
