"""Training a language model: functions a reader can hold in their head (in the spirit of
nanoGPT's train.py), usable for any ``nn.Module`` whose ``forward(idx, targets)`` returns
``(logits, loss)``.

- :func:`pick_device` -- cuda, then mps, then cpu (or the one asked for).
- :func:`get_batch` -- random windows of a 1-D token tensor: inputs and the next-token targets.
- :func:`estimate_loss` -- the mean loss over many random batches, in eval mode, without grad.
- :func:`lr_at` -- linear warm-up, then cosine decay to ``min_lr``; :func:`make_scheduler`.
- :func:`param_groups` / :func:`make_optimizer` -- AdamW with weight decay on matrices only.
- :func:`autocast` -- bf16 autocast on CUDA (and on CPU when asked).
- :func:`clip_grad_norm` -- scale all gradients together to a global L2 norm of at most max_norm.
- :func:`train_step` -- one optimizer step: gradient accumulation over micro-batches, clipping.
- :func:`fit` -- the bare loop: batches and steps, nothing else.
- :func:`train` -- the loop: periodic evaluation, progress bar, checkpoints (written and read
  by :mod:`solutions.checkpoint`), and data parallelism with ``torchrun``
  (DistributedDataParallel).
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from solutions.checkpoint import load_checkpoint, save_checkpoint


@dataclass
class TrainConfig:
    """Hyperparameters of :func:`train`. Defaults: nanoGPT's small character-level recipe."""

    batch_size: int = 12          # sequences per optimizer step and micro-step, all processes
    block_size: int = 64          # tokens per sequence
    max_iters: int = 2000         # optimizer steps
    lr: float = 1e-3              # peak learning rate
    min_lr: float = 1e-4          # learning rate at the end of the cosine
    warmup_iters: int = 100       # linear warm-up steps
    weight_decay: float = 0.1     # on matrices only
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0        # max global gradient norm; 0 = no clipping
    grad_accum: int = 1           # micro-steps per optimizer step
    eval_every: int = 250         # steps between evaluations (and at the end)
    eval_iters: int = 20          # batches per split in an evaluation
    ckpt_every: int = 0           # steps between checkpoints; 0 = only at the end
    dtype: str = "auto"           # "auto" (bf16 on CUDA, else float32), "float32", "bfloat16"
    compile: bool = False         # torch.compile the model
    seed: int = 1337
    progress: bool = True         # tqdm progress bar

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not isinstance(value, int) or isinstance(value, bool)):
                raise TypeError(f"TrainConfig.{f.name} must be an int, got {value!r}")
        for name in ("batch_size", "block_size", "max_iters", "grad_accum", "eval_every",
                     "eval_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"dtype must be 'auto', 'float32' or 'bfloat16', got {self.dtype!r}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"need 0 <= min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}")


# ---------------------------------------------------------------------------------------------
# Devices, batches, loss estimate
# ---------------------------------------------------------------------------------------------


def pick_device(preference: str | None = None) -> torch.device:
    """`preference` ("cuda", "cuda:1", "mps", "cpu") if given, else cuda, then mps, then cpu."""
    if preference:
        device = torch.device(preference)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is available")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError("device 'mps' was asked for but Apple's MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def get_batch(data: torch.Tensor, batch_size: int, block_size: int, device="cpu",
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of a 1-D token tensor: x (B, T) and the targets y (B, T) = x shifted by
    one token (y[:, t] is the token after x[:, t])."""
    if data.dim() != 1 or data.dtype != torch.long:
        raise ValueError(f"data must be a 1-D LongTensor of token ids, got {data.dtype} "
                         f"of shape {tuple(data.shape)}")
    if len(data) < block_size + 1:
        raise ValueError(f"data has {len(data)} tokens; a window of block_size={block_size} "
                         f"needs at least {block_size + 1}")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size + 1)
    windows = data[starts[:, None] + offsets]            # (B, T+1)
    x, y = windows[:, :-1], windows[:, 1:]               # (B, T), (B, T)
    if torch.device(device).type == "cuda":               # async copy from pinned memory
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device,
                                                                                non_blocking=True)
    return x.to(device), y.to(device)


def autocast(device, dtype: str = "auto"):
    """The mixed-precision context: bf16 autocast on CUDA for "auto" (float32 elsewhere), bf16
    on any device for "bfloat16", none for "float32"."""
    device = torch.device(device)
    use_bf16 = dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda"
                                       and torch.cuda.is_bf16_supported())
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.no_grad()
def estimate_loss(model: nn.Module, splits: dict[str, torch.Tensor], batch_size: int,
                  block_size: int, eval_iters: int, device="cpu", seed: int = 0,
                  dtype: str = "auto") -> dict[str, float]:
    """Mean loss over `eval_iters` random batches of each split, in eval mode and without grad
    (the model's mode is restored). The same `seed` gives the same batches."""
    was_training = model.training
    model.eval()
    out = {}
    for name, data in splits.items():
        g = torch.Generator().manual_seed(seed)
        total = 0.0
        for _ in range(eval_iters):
            x, y = get_batch(data, batch_size, block_size, device, g)
            with autocast(device, dtype):
                _, loss = model(x, y)
            total += loss.item()
        out[name] = total / eval_iters
    model.train(was_training)
    return out


# ---------------------------------------------------------------------------------------------
# Learning-rate schedule and optimizer
# ---------------------------------------------------------------------------------------------


def lr_at(step: int, lr: float, min_lr: float, warmup_iters: int, max_iters: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up from lr/warmup_iters to
    lr over the first `warmup_iters` steps, then a cosine from lr down to min_lr at `max_iters`,
    then min_lr."""
    if step < warmup_iters:
        return lr * (step + 1) / warmup_iters
    if step >= max_iters:
        return min_lr
    progress = (step - warmup_iters) / max(1, max_iters - warmup_iters)  # 0 -> 1
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    """A LambdaLR that sets each group's learning rate to lr_at(step) (its state_dict is the
    step count, saved in checkpoints)."""
    def factor(step: int) -> float:
        return lr_at(step, config.lr, config.min_lr, config.warmup_iters,
                     config.max_iters) / config.lr
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: matrices (weights of Linear and Embedding, dim >= 2) decay; biases and
    LayerNorm gains (dim < 2) do not. Tied parameters appear once."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, config: TrainConfig, device="cpu") -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`: on CUDA and on the CPU the fused kernel, which updates
    every parameter in one call instead of a handful of small operations per parameter (the
    same update); elsewhere the multi-tensor (foreach) one."""
    fused = torch.device(device).type in ("cuda", "cpu")
    return torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr,
                             betas=(config.beta1, config.beta2), fused=fused,
                             foreach=not fused)


@torch.no_grad()
def clip_grad_norm(parameters, max_norm: float) -> torch.Tensor:
    """Scale every gradient by min(1, max_norm / (norm + 1e-6)), in place, where norm is the L2
    norm of all gradient entries taken as one vector; returns that norm before clipping (0-d).
    Parameters without a gradient are skipped. No `if`: the scale is always applied, so a GPU
    never waits for the CPU. An inf or NaN gradient gives an inf or NaN norm, returned as it is,
    and useless gradients (zeros and NaN, as torch.nn.utils.clip_grad_norm_ leaves): skip the
    step when the norm is not finite."""
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real) or max_norm <= 0:
        raise ValueError(f"max_norm must be a number > 0, got {max_norm!r}")
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    device = grads[0].device
    norms = [torch.linalg.vector_norm(g).to(device) for g in grads]  # one per tensor
    total = torch.linalg.vector_norm(torch.stack(norms))  # sqrt of the sum of their squares
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale.to(g.device))
    return total


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


def train_step(model: nn.Module, optimizer, scheduler, micro_batches: list, grad_clip: float,
               dtype: str = "auto") -> torch.Tensor:
    """One optimizer step over `micro_batches` [(x, y), ...] (gradient accumulation: their mean
    loss is the step's loss), with gradient clipping, the optimizer and the scheduler.
    Returns the mean loss (detached). A DistributedDataParallel model averages the gradients
    across processes once, on the last micro-batch."""
    optimizer.zero_grad(set_to_none=True)
    n = len(micro_batches)
    total = 0.0
    for i, (x, y) in enumerate(micro_batches):
        sync = i == n - 1 or not hasattr(model, "no_sync")
        with contextlib.nullcontext() if sync else model.no_sync():
            with autocast(x.device, dtype):
                _, loss = model(x, y)
            (loss / n).backward()                        # gradients add up over micro-batches
        total = total + loss.detach().float() / n       # stays on the device: no sync
    if grad_clip > 0:
        clip_grad_norm(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    return total


def fit(model: nn.Module, data: dict[str, torch.Tensor], config: TrainConfig,
        device="cpu") -> list[float]:
    """The bare loop: `config.max_iters` steps of :func:`train_step` on random batches of
    data["train"] (a generator seeded with `config.seed`), AdamW over :func:`param_groups`,
    the :func:`lr_at` schedule. Returns the loss of every step. (:func:`train` adds evaluation,
    checkpoints, a progress bar and several processes.)"""
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr,
                                  betas=(config.beta1, config.beta2))
    scheduler = make_scheduler(optimizer, config)
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    losses = []
    for _ in range(config.max_iters):
        micro_batches = [get_batch(data["train"], config.batch_size, config.block_size, device,
                                   generator) for _ in range(config.grad_accum)]
        loss = train_step(model, optimizer, scheduler, micro_batches, config.grad_clip,
                          config.dtype)
        losses.append(loss.item())
    return losses


def _distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, device): starts the process group when launched by torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, device
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return rank, world, device


def train(model: nn.Module, data: dict[str, torch.Tensor], config: TrainConfig,
          device=None, out_dir=None, resume: bool = False, extra: dict | None = None) -> dict:
    """Train `model` on data["train"], evaluating on data["val"]; returns the history
    {"losses": per-step training loss, "evals": [metrics rows]}.

    Under torchrun each of the W processes takes its B / W rows of the same global batch, so the
    losses match a single process with the same `batch_size`. With `out_dir`, rank 0 writes
    metrics.jsonl (one row per evaluation) and ckpt.pt (every `ckpt_every` steps and at the
    end); `resume=True` continues from out_dir/ckpt.pt exactly where it stopped. `extra` is
    stored in the checkpoint (e.g. the model configuration and the tokenizer).
    """
    from tqdm.auto import tqdm

    if "train" not in data or "val" not in data:
        raise ValueError("data must be a dict with 'train' and 'val' token tensors")
    device = pick_device(None if device is None else str(device))
    rank, world, device = _distributed(device)
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the number of "
                         f"processes ({world})")
    rows = slice(rank * config.batch_size // world, (rank + 1) * config.batch_size // world)
    torch.manual_seed(config.seed + rank)                # dropout differs per process
    random.seed(config.seed)
    data_gen = torch.Generator().manual_seed(config.seed)  # same global batches on every rank

    model.to(device)
    optimizer = make_optimizer(model, config, device)
    scheduler = make_scheduler(optimizer, config)
    out_dir = Path(out_dir) if out_dir is not None else None
    ckpt_path = out_dir / "ckpt.pt" if out_dir else None
    metrics_path = out_dir / "metrics.jsonl" if out_dir else None
    start, elapsed0, history = 0, 0.0, {"losses": [], "evals": []}
    if resume:
        if ckpt_path is None or not ckpt_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
        state = load_checkpoint(ckpt_path, model, optimizer, scheduler, data_gen, device)
        start, elapsed0 = state["step"], state.get("elapsed_s", 0.0)
        history["losses"] = list(state.get("losses", []))
    if rank == 0 and out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume and metrics_path.exists():             # drop rows after the checkpoint
            kept = [ln for ln in metrics_path.read_text().splitlines()
                    if ln.strip() and json.loads(ln)["step"] <= start]
        metrics_path.write_text("".join(ln + "\n" for ln in kept))

    fast = torch.compile(model) if config.compile else model
    net = fast
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            fast, device_ids=[device.index] if device.type == "cuda" else None)
    splits = {"train": data["train"], "val": data["val"]}
    t0, last_t, last_step = time.perf_counter(), time.perf_counter(), start
    tokens_per_step = config.batch_size * config.grad_accum * config.block_size

    def evaluate(step: int) -> None:
        nonlocal last_t, last_step
        now = time.perf_counter()
        losses = estimate_loss(fast, splits, config.batch_size, config.block_size,
                               config.eval_iters, device, seed=config.seed + 1, dtype=config.dtype)
        row = {"step": step, "train_loss": losses["train"], "val_loss": losses["val"],
               "elapsed_s": elapsed0 + now - t0,
               "tokens_per_s": (step - last_step) * tokens_per_step / max(now - last_t, 1e-9),
               "lr": scheduler.get_last_lr()[0]}
        history["evals"].append(row)
        if rank == 0 and metrics_path:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
        last_t, last_step = time.perf_counter(), step

    def checkpoint(step: int) -> None:
        if rank == 0 and ckpt_path:
            save_checkpoint(ckpt_path, model, optimizer, scheduler, step, data_gen,
                            {"elapsed_s": elapsed0 + time.perf_counter() - t0,
                             "losses": history["losses"], "train_config": asdict(config),
                             **(extra or {})})

    model.train()
    bar = tqdm(range(start, config.max_iters), initial=start, total=config.max_iters,
               disable=not config.progress or rank != 0, desc="training", leave=False)
    for step in bar:
        if step % config.eval_every == 0 and step > start or step == 0:
            evaluate(step)
        if config.ckpt_every and step % config.ckpt_every == 0 and step > start:
            checkpoint(step)
        micro_batches = []
        for _ in range(config.grad_accum):
            x, y = get_batch(data["train"], config.batch_size, config.block_size, "cpu", data_gen)
            micro_batches.append((x[rows].to(device), y[rows].to(device)))  # (B / W, T) each
        step_loss = train_step(net, optimizer, scheduler, micro_batches, config.grad_clip,
                               config.dtype)
        if world > 1:
            dist.all_reduce(step_loss)                   # sum over processes (gloo has no AVG)
            step_loss /= world
        history["losses"].append(step_loss.item())
        bar.set_postfix(loss=f"{history['losses'][-1]:.3f}")
    bar.close()
    if start < config.max_iters:
        evaluate(config.max_iters)
        checkpoint(config.max_iters)
    if world > 1:
        dist.barrier()
    return history
