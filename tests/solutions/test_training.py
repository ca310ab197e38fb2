"""The training functions: batches, loss estimate, schedule, parameter groups, clipping and
accumulation, checkpoints that survive SIGKILL, and data parallelism with torchrun (gloo)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from solutions.checkpoint import load_checkpoint
from solutions.training import (
    TrainConfig,
    autocast,
    clip_grad_norm,
    estimate_loss,
    get_batch,
    lr_at,
    make_optimizer,
    make_scheduler,
    param_groups,
    pick_device,
    train,
    train_step,
)

ROOT = Path(__file__).resolve().parents[2]

TINY_LM = '''
import time
import torch
import torch.nn.functional as F
from torch import nn


class TinyLM(nn.Module):
    """Embeddings, one causal mixing layer, LayerNorm, dropout and a head: small but with
    every kind of parameter (matrices, biases, gains) and randomness (dropout)."""

    def __init__(self, vocab_size, block_size, n_embd=16, dropout=0.0, delay=0.0):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.mix = nn.Linear(n_embd, n_embd)
        self.ln = nn.LayerNorm(n_embd)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(n_embd, vocab_size)
        self.delay = delay

    def forward(self, idx, targets=None):
        if self.delay:
            time.sleep(self.delay)
        B, T = idx.shape
        x = self.wte(idx) + self.wpe.weight[:T]                    # (B, T, C)
        w = torch.ones(T, T, device=idx.device).tril()
        x = x + torch.tanh(self.mix((w / w.sum(1, keepdim=True)) @ x))  # causal mean
        logits = self.head(self.drop(self.ln(x)))                  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss
'''
namespace: dict = {}
exec(TINY_LM, namespace)  # noqa: S102 - the same source runs in the subprocess scripts below
TinyLM = namespace["TinyLM"]


def corpus(n=4000, seed=0):
    """A learnable pattern plus noise: the next token is (token + 1) % 11 with probability 0.8,
    else uniform (floor about 0.89 nats)."""
    import random

    rng = random.Random(seed)
    x = [rng.randrange(11)]
    for _ in range(n - 1):
        x.append((x[-1] + 1) % 11 if rng.random() < 0.8 else rng.randrange(11))
    x = torch.tensor(x)
    return {"train": x[: n * 9 // 10], "val": x[n * 9 // 10:]}


def small_config(**kw):
    base = dict(batch_size=8, block_size=16, max_iters=30, lr=1e-2, min_lr=3e-4, warmup_iters=5,
                eval_every=10, eval_iters=4, progress=False, seed=0)
    return TrainConfig(**{**base, **kw})


# ------------------------------------------------------------------------------ pieces


def test_get_batch_targets_are_inputs_shifted_by_one():
    data = torch.arange(100)
    x, y = get_batch(data, 5, 8, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 8) and x.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)
    # windows reach the last token
    seen = torch.cat([get_batch(data, 64, 8)[1] for _ in range(20)])
    assert int(seen.max()) == 99
    with pytest.raises(ValueError, match="needs at least"):
        get_batch(torch.arange(8), 2, 8)
    with pytest.raises(ValueError, match="1-D LongTensor"):
        get_batch(torch.zeros(100), 2, 8)


def test_estimate_loss_averages_batches_in_eval_mode_without_grad():
    torch.manual_seed(0)
    model = TinyLM(11, 16, dropout=0.5).train()
    data = corpus()
    a = estimate_loss(model, data, 4, 16, 10, seed=3)
    assert model.training                                     # mode restored
    assert a == estimate_loss(model, data, 4, 16, 10, seed=3)  # eval mode: no dropout noise
    g = torch.Generator().manual_seed(3)
    model.eval()
    with torch.no_grad():
        by_hand = sum(model(*get_batch(data["val"], 4, 16, generator=g))[1].item()
                      for _ in range(10)) / 10
    assert a["val"] == pytest.approx(by_hand, rel=1e-6)


def test_schedule_warmup_then_cosine():
    lr, min_lr, warm, total = 1.0, 0.1, 10, 110
    values = [lr_at(s, lr, min_lr, warm, total) for s in range(130)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(values[:10], values[1:10], strict=False))  # rising
    assert all(a >= b for a, b in zip(values[10:110], values[11:111], strict=False))  # falling
    assert values[60] == pytest.approx(min_lr + 0.5 * (lr - min_lr))  # halfway down
    assert values[110] == values[129] == min_lr                  # flat after max_iters
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(2, 2))], lr=lr)
    sched = make_scheduler(opt, TrainConfig(lr=lr, min_lr=min_lr, warmup_iters=warm,
                                            max_iters=total))
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx(values[:20])


def test_weight_decay_on_matrices_only():
    model = TinyLM(11, 16)
    groups = param_groups(model, 0.1)
    decay = {id(p) for p in groups[0]["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decay}
    assert names == {"wte.weight", "wpe.weight", "mix.weight", "head.weight"}
    assert groups[1]["weight_decay"] == 0.0 and len(groups[1]["params"]) == 4  # biases, ln
    tied = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 5, bias=False))
    tied[1].weight = tied[0].weight
    assert sum(len(g["params"]) for g in param_groups(tied, 0.1)) == 1
    opt = make_optimizer(model, TrainConfig(weight_decay=0.3))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.3, 0.0]


def test_device_choice_and_autocast():
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else \
        "mps" if torch.backends.mps.is_available() else "cpu"
    assert pick_device().type == expected
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            pick_device("cuda")
    with autocast("cpu", "bfloat16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast("cpu", "auto"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_config_is_validated():
    with pytest.raises(ValueError, match="max_iters"):
        TrainConfig(max_iters=0)
    with pytest.raises(TypeError, match="batch_size"):
        TrainConfig(batch_size=2.5)
    with pytest.raises(ValueError, match="dtype"):
        TrainConfig(dtype="fp8")


# ------------------------------------------------------------------------------ the loop


def test_training_learns_and_logs(tmp_path):
    torch.manual_seed(0)
    model = TinyLM(11, 16)
    history = train(model, corpus(), small_config(max_iters=60), "cpu", out_dir=tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 10, 20, 30, 40, 50, 60]
    assert set(rows[0]) >= {"step", "train_loss", "val_loss", "elapsed_s", "tokens_per_s"}
    assert rows[0]["val_loss"] == pytest.approx(math.log(11), abs=0.3)
    assert rows[-1]["val_loss"] < 1.3 < rows[0]["val_loss"]
    assert len(history["losses"]) == 60 and rows[-1]["tokens_per_s"] > 0
    state = load_checkpoint(tmp_path)
    assert state["step"] == 60 and state["train_config"]["max_iters"] == 60


def test_accumulation_equals_one_big_batch():
    """train_step over two micro-batches of 4 rows = one step over the 8 rows: the loss is
    divided by the number of micro-batches, and stale gradients are cleared first."""
    data = corpus()
    torch.manual_seed(0)
    a, b = TinyLM(11, 16), TinyLM(11, 16)
    b.load_state_dict(a.state_dict())
    g = torch.Generator().manual_seed(0)
    batches = [get_batch(data["train"], 4, 16, generator=g) for _ in range(2)]
    whole = [(torch.cat([bt[0] for bt in batches]), torch.cat([bt[1] for bt in batches]))]
    losses = []
    for model, micro in ((a, batches), (b, whole)):
        for p in model.parameters():
            p.grad = torch.ones_like(p)                         # stale gradients
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
        losses.append(train_step(model, opt, sched, micro, grad_clip=0.0))
    assert losses[0] == pytest.approx(float(losses[1]), rel=1e-6)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6)


def _grads(shapes, scale, seed, missing=()):
    """Parameters of the given shapes with random gradients times `scale` (None at `missing`)."""
    g = torch.Generator().manual_seed(seed)
    params = [nn.Parameter(torch.zeros(shape)) for shape in shapes]
    for i, p in enumerate(params):
        if i not in missing:
            p.grad = torch.randn(p.shape, generator=g) * scale
    return params


def _twins(params):
    """A copy of the parameters with copies of their gradients."""
    twins = [nn.Parameter(p.detach().clone()) for p in params]
    for p, t in zip(params, twins, strict=True):
        t.grad = None if p.grad is None else p.grad.clone()
    return twins


CLIP_SHAPES = [
    [(3,)],                                           # one vector
    [(4, 5), (5,), (2, 3, 4), ()],                    # matrix, bias, 3-D, scalar
    [(64, 32), (32,), (32, 64), (1,), (7, 1, 3)],
]


@pytest.mark.parametrize("shapes", CLIP_SHAPES)
@pytest.mark.parametrize("scale, max_norm", [(10.0, 1.0), (0.01, 1.0), (1.0, 0.3), (3.0, 5)])
def test_clip_grad_norm_equals_torch(shapes, scale, max_norm):
    """Same returned norm and same gradients as torch.nn.utils.clip_grad_norm_, whether the
    norm is above the limit (scaled down) or below it (unchanged); None gradients skipped."""
    missing = (1,) if len(shapes) > 2 else ()
    ours = _grads(shapes, scale, seed=len(shapes), missing=missing)
    theirs = _twins(ours)
    before = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in ours if
                                                 p.grad is not None]))
    norm = clip_grad_norm(ours, max_norm)
    expected = nn.utils.clip_grad_norm_(theirs, max_norm)
    assert norm.shape == () and torch.allclose(norm, expected, rtol=1e-6, atol=0)
    assert torch.allclose(norm, before, rtol=1e-5)
    for p, t in zip(ours, theirs, strict=True):
        assert (p.grad is None) == (t.grad is None)
        if p.grad is not None:
            assert torch.allclose(p.grad, t.grad, rtol=1e-6, atol=1e-9)
    after = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in ours if
                                                p.grad is not None]))
    assert after <= max_norm * (1 + 1e-5)
    if before <= max_norm:
        assert after == pytest.approx(float(before), rel=1e-6)  # below the limit: unchanged


def test_clip_grad_norm_edge_cases():
    """No gradient at all: norm 0 like torch; a single tensor is accepted; max_norm > 0."""
    assert float(clip_grad_norm(_grads([(2, 2)], 1.0, 0, missing=(0,)), 1.0)) == 0.0
    assert float(nn.utils.clip_grad_norm_(_grads([(2, 2)], 1.0, 0, missing=(0,)), 1.0)) == 0.0
    (p,) = _grads([(5,)], 10.0, 1)
    (t,) = _twins([p])
    assert torch.allclose(clip_grad_norm(p, 1.0), nn.utils.clip_grad_norm_(t, 1.0))
    assert torch.allclose(p.grad, t.grad)
    for bad in (0, -1.0, "1", None, True):
        with pytest.raises(ValueError, match="max_norm must be a number > 0"):
            clip_grad_norm([p], bad)


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_clip_grad_norm_non_finite_behaves_like_torch(bad):
    """A gradient holding inf or NaN: the returned norm is inf or NaN (so a loop can skip the
    step), and the gradients are what torch's become: with inf the scale is 0, so zeros and a
    NaN where the inf was; with NaN every entry is NaN."""
    ours = _grads([(3, 4), (4,)], 1.0, 2)
    ours[0].grad[1, 2] = bad
    theirs = _twins(ours)
    norm = clip_grad_norm(ours, 1.0)
    expected = nn.utils.clip_grad_norm_(theirs, 1.0)
    assert (math.isinf(norm) if bad == math.inf else math.isnan(norm))
    assert torch.equal(norm.isnan(), expected.isnan()) and torch.equal(norm.isinf(),
                                                                       expected.isinf())
    for p, t in zip(ours, theirs, strict=True):
        assert torch.equal(p.grad.isnan(), t.grad.isnan())
        assert torch.allclose(p.grad, t.grad, equal_nan=True)
    assert ours[0].grad[1, 2].isnan()
    finite = torch.cat([p.grad.flatten() for p in ours])
    finite = finite[torch.arange(len(finite)) != 6]           # all but the bad entry
    assert (finite == 0).all() if bad == math.inf else finite.isnan().all()


def test_clipping_happens_after_backward_with_the_configured_norm(monkeypatch):
    import solutions.training as training

    seen = []
    real = training.clip_grad_norm

    def spy(params, max_norm):
        params = list(params)
        seen.append((max_norm, all(p.grad is not None for p in params)))
        norm = real(params, max_norm)
        clipped = torch.cat([p.grad.flatten() for p in params]).norm()
        assert clipped <= max_norm * (1 + 1e-4)
        return norm

    monkeypatch.setattr(training, "clip_grad_norm", spy)
    torch.manual_seed(0)
    train(TinyLM(11, 16), corpus(), small_config(max_iters=3, grad_clip=0.05), "cpu")
    assert seen == [(0.05, True)] * 3
    seen.clear()
    train(TinyLM(11, 16), corpus(), small_config(max_iters=3, grad_clip=0.0), "cpu")
    assert seen == []


def test_resume_in_process_gives_identical_weights(tmp_path):
    data = corpus()
    cfg = small_config(max_iters=20, ckpt_every=5, eval_every=5)
    torch.manual_seed(0)
    full = TinyLM(11, 16, dropout=0.2)
    train(full, data, cfg, "cpu", out_dir=tmp_path / "full")
    torch.manual_seed(0)
    cut = TinyLM(11, 16, dropout=0.2)
    _train_steps(cut, data, cfg, tmp_path / "cut", stop_at=12)  # last checkpoint: step 10
    assert load_checkpoint(tmp_path / "cut")["step"] == 10
    torch.manual_seed(123)                                      # other init: overwritten
    resumed = TinyLM(11, 16, dropout=0.2)
    train(resumed, data, cfg, "cpu", out_dir=tmp_path / "cut", resume=True)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    rows = (tmp_path / "cut/metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [0, 5, 10, 15, 20]


def _train_steps(model, data, cfg, out_dir, stop_at):
    """Run train() but stop it after `stop_at` optimizer steps (an exception from the model)."""
    calls = {"n": 0}
    forward = model.forward

    def counting(idx, targets=None):
        if model.training:
            calls["n"] += 1
            if calls["n"] > stop_at * cfg.grad_accum:
                raise KeyboardInterrupt
        return forward(idx, targets)

    model.forward = counting
    with pytest.raises(KeyboardInterrupt):
        train(model, data, cfg, "cpu", out_dir=out_dir)
    model.forward = forward


# ------------------------------------------------------------------------------ subprocesses

SCRIPT = TINY_LM + '''
import json, sys
sys.path.insert(0, {root!r})
from solutions.training import TrainConfig, train

out, resume, delay, steps = sys.argv[1], sys.argv[2] == "1", float(sys.argv[3]), int(sys.argv[4])
g = torch.Generator().manual_seed(0)
data = torch.randint(11, (3000,), generator=g)
data = {{"train": data[:2700], "val": data[2700:]}}
torch.manual_seed(0)
model = TinyLM(11, 16, dropout=0.1, delay=delay)
cfg = TrainConfig(batch_size=8, block_size=16, max_iters=steps, lr=3e-3, min_lr=3e-4,
                  warmup_iters=5, eval_every=10, eval_iters=2, ckpt_every=3, progress=False,
                  grad_accum=2, seed=0)
history = train(model, data, cfg, "cpu", out_dir=out, resume=resume)
torch.save(model.state_dict(), out + "/final.pt")
json.dump(history["losses"], open(out + "/losses.json", "w"))
'''


def _run(script, *args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env, **kw)


def test_sigkill_then_resume_ends_with_identical_weights(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(root=str(ROOT)))
    steps = 40
    full, cut = tmp_path / "full", tmp_path / "cut"
    full.mkdir(), cut.mkdir()
    assert _run(script, full, 0, 0.0, steps).wait(timeout=120) == 0
    victim = _run(script, cut, 0, 0.01, steps)               # slowed down to be killed midway
    deadline = time.time() + 120
    while time.time() < deadline:
        rows = (cut / "metrics.jsonl").read_text().splitlines() \
            if (cut / "metrics.jsonl").exists() else []
        if len(rows) >= 2 and (cut / "ckpt.pt").exists():    # past step 10, checkpoints written
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    killed_at = torch.load(cut / "ckpt.pt", weights_only=True)["step"]
    assert 0 < killed_at < steps and not (cut / "final.pt").exists()
    assert _run(script, cut, 1, 0.0, steps).wait(timeout=120) == 0
    a = torch.load(full / "final.pt", weights_only=True)
    b = torch.load(cut / "final.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((full / "losses.json").read_text()) == \
        json.loads((cut / "losses.json").read_text())
    steps_logged = [json.loads(x)["step"] for x in (cut / "metrics.jsonl").read_text().split("\n")
                    if x]
    assert steps_logged == [0, 10, 20, 30, 40]


DDP_SCRIPT = TINY_LM + '''
import json, os, sys
sys.path.insert(0, {root!r})
from solutions.training import TrainConfig, train

g = torch.Generator().manual_seed(0)
data = torch.randint(11, (3000,), generator=g)
data = {{"train": data[:2700], "val": data[2700:]}}
torch.manual_seed(0)
model = TinyLM(11, 16)
cfg = TrainConfig(batch_size=8, block_size=16, max_iters=8, lr=3e-3, min_lr=3e-4,
                  warmup_iters=2, eval_every=4, eval_iters=2, grad_accum=2, progress=False,
                  seed=0)
history = train(model, data, cfg, "cpu")
if int(os.environ.get("RANK", 0)) == 0:
    json.dump({{"losses": history["losses"], "evals": history["evals"],
               "world": int(os.environ.get("WORLD_SIZE", 1)),
               "weights": [p.detach().flatten().tolist() for p in model.parameters()]}},
              open(sys.argv[1], "w"))
'''


def test_ddp_two_processes_match_one_process(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(root=str(ROOT)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, str(script), tmp_path / "one.json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", str(script), tmp_path / "two.json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert two.returncode == 0, two.stderr[-3000:]
    a = json.loads((tmp_path / "one.json").read_text())
    b = json.loads((tmp_path / "two.json").read_text())
    assert a["world"] == 1 and b["world"] == 2
    assert len(a["losses"]) == len(b["losses"]) == 8
    assert a["losses"] == pytest.approx(b["losses"], rel=1e-5, abs=1e-6)
    for wa, wb in zip(a["weights"], b["weights"], strict=True):
        assert wa == pytest.approx(wb, rel=1e-4, abs=1e-5)
    assert [r["val_loss"] for r in a["evals"]] == \
        pytest.approx([r["val_loss"] for r in b["evals"]], rel=1e-5)


def test_train_step_runs_on_the_meta_device():
    """The trainer's step makes no tensor on the CPU when the model lives elsewhere."""
    from course.checks.core import cpu_tensor_spy
    from solutions.decoder import GPT
    from solutions.model import ModelConfig
    from solutions.training import make_scheduler

    with torch.device("meta"):
        model = GPT(ModelConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32))
    # SGD: AdamW keeps its step counts on the CPU by PyTorch's design
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = make_scheduler(optimizer, TrainConfig(lr=0.1, min_lr=0.01))
    x = torch.randint(50, (2, 16), device="meta")
    with cpu_tensor_spy() as spy:
        loss = train_step(model, optimizer, scheduler, [(x, x), (x, x)], 1.0)
    assert loss.device.type == "meta" and spy.made_on_cpu == []


def test_schedule_matches_pytorchs_own_schedulers():
    """lr_at against an independent oracle: LinearLR warm-up, then CosineAnnealingLR."""
    lr, min_lr, warm, total = 0.5, 0.02, 7, 60
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    oracle = torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warm, end_factor=1.0,
                                          total_iters=warm - 1),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warm, eta_min=min_lr),
    ], milestones=[warm])
    for step in range(total):
        assert lr_at(step, lr, min_lr, warm, total) == pytest.approx(
            opt.param_groups[0]["lr"], rel=1e-9), step
        opt.step()
        oracle.step()


def test_fit_is_the_bare_loop_and_learns():
    from solutions.training import fit

    torch.manual_seed(0)
    model = TinyLM(11, 16)
    losses = fit(model, corpus(), small_config(max_iters=40, grad_accum=2))
    assert len(losses) == 40 and all(isinstance(v, float) for v in losses)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5
    torch.manual_seed(0)
    again = TinyLM(11, 16)
    assert fit(again, corpus(), small_config(max_iters=40, grad_accum=2)) == losses
