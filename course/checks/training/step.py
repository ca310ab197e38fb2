"""Parts 3 and 4: `train_step` (with gradient accumulation) and `estimate_loss`."""

from __future__ import annotations

import torch
from torch import nn

from course.checks.core import check, compare, copy_of
from course.checks.training.mistakes import T
from course.checks.training.shared import _gpt, _ids, _weights

# ---------------------------------------------------------------- Part 3: train_step


def _run_steps(train_step, n_micro: int, rows: int, grad_clip: float, seed: int):
    """Two train_step calls with SGD (so clipping and scaling show in the weights) and a
    schedule halving the rate each step, from stale gradients."""
    model = _gpt(seed)
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)                             # left from a former step
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 ** step)
    losses = []
    for k in range(2):
        micro = [(_ids(13, (rows, 8), seed * 10 + 2 * k + i), _ids(13, (rows, 8), 99 + i + k))
                 for i in range(n_micro)]
        torch.manual_seed(seed)
        loss = train_step(model, optimizer, scheduler, micro, grad_clip)
        losses.append(float(loss))
    return losses, _weights(model), optimizer.param_groups[0]["lr"]


def _step_cases(accumulation: bool, hidden: bool):
    if not accumulation:
        cases = [("one micro-batch, grad_clip=0.05", 1, 4, 0.05, 0)]
        if hidden:
            cases += [("one micro-batch, no clipping (grad_clip=0)", 1, 3, 0.0, 1)]
    else:
        cases = [("three micro-batches of 2 rows, grad_clip=0.05", 3, 2, 0.05, 2)]
        if hidden:
            cases += [("two micro-batches of 1 row, grad_clip=10", 2, 1, 10.0, 3)]
    return cases


def _check_steps(train_step, accumulation: bool, hidden: bool) -> None:
    reference = copy_of(T + "train_step")
    for label, n_micro, rows, clip, seed in _step_cases(accumulation, hidden):
        expected = _run_steps(reference, n_micro, rows, clip, seed)
        compare(train_step, lambda f, a=(n_micro, rows, clip, seed): _run_steps(f, *a),
                tuple(expected), parts=("the returned losses", "the weights after two steps",
                                        "the learning rate after two steps"),
                what=f"two calls of train_step ({label}, SGD lr=0.5 halving every step)",
                rtol=1e-4, atol=1e-6)


@check(T + "train_step", part=3)
def check_train_step(train_step, hidden: bool = False) -> None:
    """Clears old gradients, backpropagates, clips the total norm, steps both."""
    _check_steps(train_step, False, hidden)


@check(T + "train_step", part=3)
def check_train_step_accumulation(train_step, hidden: bool = False) -> None:
    """Several micro-batches: the gradients of loss / n add up to one big batch's."""
    _check_steps(train_step, True, hidden)


# ---------------------------------------------------------------- Part 4: estimate_loss


def _splits(seed: int) -> dict[str, torch.Tensor]:
    return {"train": _ids(13, (300,), seed), "val": _ids(13, (120,), seed + 1)}


def _estimate(estimate_loss, model, seed: int, eval_iters: int, batch: int):
    torch.manual_seed(seed)
    out = estimate_loss(model, _splits(seed), batch, 8, eval_iters, "cpu", seed)
    return {k: float(v) for k, v in out.items()}


@check(T + "estimate_loss", part=4)
def check_estimate_loss(estimate_loss, hidden: bool = False) -> None:
    """The mean over eval_iters seeded batches of each split, dropout off."""
    reference = copy_of(T + "estimate_loss")
    cases = [("dropout 0.3, 5 batches of 4", 0, 5, 4)]
    if hidden:
        cases += [("dropout 0.3, 1 batch of 1", 1, 1, 1), ("dropout 0.3, 9 batches of 3", 2, 9, 3)]
    for label, seed, iters, batch in cases:
        expected = _estimate(reference, _gpt(seed, dropout=0.3).train(), seed, iters, batch)
        compare(estimate_loss, lambda f, a=(seed, iters, batch):
                _estimate(f, _gpt(a[0], dropout=0.3).train(), *a), expected,
                what=f"estimate_loss(GPT, splits, ..., eval_iters={iters}) ({label})",
                rtol=1e-5, atol=1e-6)


class _Recorder(nn.Module):
    """A model that records the grad mode and its own mode at every forward."""

    def __init__(self):
        super().__init__()
        self.table = nn.Embedding(13, 13)
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, idx, targets=None):
        self.seen.append((torch.is_grad_enabled(), self.training))
        logits = self.table(idx)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


def _modes(estimate_loss, start_training: bool):
    model = _Recorder().train(start_training)
    estimate_loss(model, _splits(0), 2, 8, 2, "cpu", 0)
    grads = any(g for g, _ in model.seen)
    training = any(t for _, t in model.seen)
    return grads, training, model.training


@check(T + "estimate_loss", part=4)
def check_estimate_loss_modes(estimate_loss, hidden: bool = False) -> None:
    """No gradients, evaluation mode inside; the model's mode restored afterwards."""
    for start in [True] + ([False] if hidden else []):
        mode = "training" if start else "evaluation"
        compare(estimate_loss, lambda f, s=start: _modes(f, s), (False, False, start),
                parts=("gradients enabled during the forward passes",
                       "training mode during the forward passes",
                       "the model's mode afterwards"),
                what=f"estimate_loss on a model in {mode} mode")
