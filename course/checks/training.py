"""Checks for Exercise 9 (training) and the catalogue of training mistakes.

Oracles: the reference (`copy_of`) run on the same seeded inputs; the schedule is also checked
against PyTorch's own LinearLR + CosineAnnealingLR in tests/solutions/test_training.py. Every
probe seeds the global random generator first, so dropout and batches are the same for the learner, the
reference and each mutant, and a mutant's result can be matched exactly. The last part trains a
real GPT on the grammar corpus and compares its validation loss with the exact floor.
"""

from __future__ import annotations

import marshal
import math
import tempfile
from pathlib import Path

import torch
from torch import nn

from course.checks.core import (
    Mistake,
    Raised,
    Raises,
    Slip,
    Staged,
    call,
    check,
    compare,
    copy_of,
    fail,
)

T = "solutions.training."
C = "solutions.checkpoint."

MISTAKES = [
    # Part 1: lr_at
    Mistake("warmup_off_by_one", T + "lr_at", "lr * (step + 1) / warmup_iters",
            "lr * step / warmup_iters",
            "the warm-up is off by one: step 0 gets learning rate 0 (a wasted step) and the "
            "peak comes one step late; use lr * (step + 1) / warmup_iters"),
    Mistake("cosine_past_max", T + "lr_at", "if step >= max_iters:", "if False:",
            "after max_iters the cosine climbs back up: return min_lr for step >= max_iters"),
    Mistake("decay_to_zero", T + "lr_at",
            "min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)",
            "0.5 * (1.0 + math.cos(math.pi * progress)) * lr",
            "the cosine ends at 0, not at min_lr: use min_lr + 0.5 (1 + cos(pi progress)) "
            "(lr - min_lr)"),
    Mistake("cosine_from_step_zero", T + "lr_at",
            "(step - warmup_iters) / max(1, max_iters - warmup_iters)", "step / max_iters",
            "the cosine is measured from step 0 instead of from the end of the warm-up, so the "
            "rate drops suddenly when the warm-up ends: progress = (step - warmup_iters) / "
            "(max_iters - warmup_iters)"),
    # Part 2: param_groups
    Mistake("decay_on_vectors", T + "param_groups",
            "p.dim() >= 2]\n    no_decay = [p for p in model.parameters() if p.requires_grad "
            "and p.dim() < 2]",
            "p.dim() >= 1]\n    no_decay = [p for p in model.parameters() if p.requires_grad "
            "and p.dim() < 1]",
            "weight decay also reaches the biases and LayerNorm gains: decay only tensors with "
            "two or more dimensions (p.dim() >= 2)"),
    Mistake("decay_in_both_groups", T + "param_groups",
            '{"params": no_decay, "weight_decay": 0.0}',
            '{"params": no_decay, "weight_decay": weight_decay}',
            "the second group (biases, LayerNorm) also gets weight decay: give it "
            "\"weight_decay\": 0.0"),
    # Part 3: train_step
    Mistake("no_zero_grad", T + "train_step",
            "    optimizer.zero_grad(set_to_none=True)\n    n = len(micro_batches)",
            "    n = len(micro_batches)",
            "the gradients of the previous step are never cleared, so they pile up: call "
            "optimizer.zero_grad(set_to_none=True) at the start of the step"),
    Mistake("loss_not_divided", T + "train_step", "(loss / n).backward()", "loss.backward()",
            "with gradient accumulation the gradients of n micro-batches add up to n times one "
            "batch's: backpropagate loss / n"),
    Mistake("clip_before_backward", T + "train_step",
            "    optimizer.zero_grad(set_to_none=True)\n    n = len(micro_batches)",
            "    optimizer.zero_grad(set_to_none=True)\n"
            "    clip_grad_norm(model.parameters(), grad_clip)\n"
            "    grad_clip = 0\n    n = len(micro_batches)",
            "the gradients are clipped before backward(), when there are none yet: clip after "
            "the backward passes and before optimizer.step()"),
    Mistake("clip_by_value", T + "train_step", "clip_grad_norm(", "nn.utils.clip_grad_value_(",
            "each gradient entry is clipped to [-grad_clip, grad_clip]; clip the total norm "
            "with clip_grad_norm"),
    Mistake("no_scheduler_step", T + "train_step", "    scheduler.step()\n", "",
            "the scheduler never steps, so the learning rate never follows the schedule: call "
            "scheduler.step() after optimizer.step()"),
    Mistake("last_micro_batch_loss", T + "train_step",
            "total = total + loss.detach().float() / n", "total = loss.detach().float()",
            "the returned loss is the last micro-batch's: return the mean over the "
            "micro-batches"),
    # Part 4: estimate_loss
    Mistake("no_eval_mode", T + "estimate_loss", "    model.eval()\n", "",
            "the loss is estimated in training mode (dropout on): call model.eval() first"),
    Mistake("mode_not_restored", T + "estimate_loss", "    model.train(was_training)\n", "",
            "the model is left in evaluation mode: give it back in the mode it came in "
            "(model.train(was_training))"),
    Mistake("last_batch_only", T + "estimate_loss", "out[name] = total / eval_iters",
            "out[name] = loss.item()",
            "the estimate is the last batch's loss: average all eval_iters batches"),
    # Part 5: checkpoint
    Mistake("rng_not_restored", C + "load_checkpoint", '        set_rng_states(state["rng"])\n',
            "", "the random states are not restored, so dropout after resuming differs from the "
            "uninterrupted run: call set_rng_states(state[\"rng\"])"),
    Mistake("optimizer_not_restored", C + "load_checkpoint",
            'optimizer.load_state_dict(state["optimizer"])', "pass",
            "the optimizer's state (AdamW's running averages) is not restored: call "
            "optimizer.load_state_dict(state[\"optimizer\"])"),
    Mistake("scheduler_not_restored", C + "load_checkpoint",
            'scheduler.load_state_dict(state["scheduler"])', "pass",
            "the scheduler is not restored, so the learning rate restarts from step 0: call "
            "scheduler.load_state_dict(state[\"scheduler\"])"),
    Mistake("data_position_not_restored", C + "load_checkpoint",
            'data_generator.set_state(state["data_rng"])', "pass",
            "the batch generator is not restored, so the resumed run sees other batches: call "
            "data_generator.set_state(state[\"data_rng\"])"),
    Mistake("optimizer_not_saved", C + "save_checkpoint", '"optimizer": optimizer.state_dict(),',
            "", "the optimizer's state is not saved: store optimizer.state_dict() under "
            "\"optimizer\""),
    Mistake("not_atomic", C + "save_checkpoint", "torch.save(state, tmp)\n    os.replace(tmp, path)",
            "torch.save(state, path)",
            "the checkpoint is written straight to path, so a crash while writing leaves a "
            "broken file where the previous checkpoint was: torch.save to a temporary file in "
            "the same folder, then os.replace(tmp, path)"),
    # Part 6: fit
    Mistake("trains_on_validation", T + "fit", 'get_batch(data["train"]', 'get_batch(data["val"]',
            "the batches come from the validation split: train on data[\"train\"] only"),
    Mistake("no_param_groups", T + "fit", "param_groups(model, config.weight_decay), lr=config.lr,",
            "model.parameters(), lr=config.lr, weight_decay=config.weight_decay,",
            "AdamW gets all parameters with weight decay: pass param_groups(model, "
            "config.weight_decay)"),
    Mistake("no_accumulation", T + "fit", "for _ in range(config.grad_accum)]", "for _ in range(1)]",
            "each step uses one micro-batch: draw config.grad_accum micro-batches per step"),
]


# ---------------------------------------------------------------- shared inputs


def _gpt(seed: int, dropout: float = 0.0, vocab: int = 13, block: int = 8, layers: int = 1):
    from solutions.decoder import GPT
    from solutions.model import ModelConfig

    torch.manual_seed(seed)
    return GPT(ModelConfig(vocab_size=vocab, block_size=block, n_layer=layers, n_head=2,
                           n_embd=16, dropout=dropout))


def _weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _ids(vocab: int, shape, seed: int) -> torch.Tensor:
    return torch.randint(vocab, shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- Part 1: lr_at


def _schedule_cases(hidden: bool):
    cases = [("lr=1, min_lr=0.1, warm-up 4, max_iters 12", (1.0, 0.1, 4, 12), range(14))]
    if hidden:
        cases += [("lr=6e-4, min_lr=6e-5, warm-up 10, max_iters 100", (6e-4, 6e-5, 10, 100),
                   range(0, 130, 3)),
                  ("min_lr=0, warm-up 1", (3e-3, 0.0, 1, 20), range(25))]
    return cases


@check(T + "lr_at", part=1)
def check_lr_at(lr_at, hidden: bool = False) -> None:
    """Warm-up from lr / warmup_iters, cosine to min_lr at max_iters, flat afterwards."""
    reference = copy_of(T + "lr_at")
    for label, (lr, min_lr, warm, total), steps in _schedule_cases(hidden):
        steps = list(steps)
        expected = [float(reference(s, lr, min_lr, warm, total)) for s in steps]
        compare(lr_at, lambda f, a=(lr, min_lr, warm, total), st=steps:
                [float(f(s, *a)) for s in st], expected,
                what=f"[lr_at(step, ...) for step in {steps[0]}..{steps[-1]}] ({label})",
                rtol=1e-6, atol=1e-12)


@check(T + "lr_at", part=1)
def check_lr_at_edges(lr_at, hidden: bool = False) -> None:
    """Step 0 is not wasted, the peak is reached at the last warm-up step, min_lr afterwards."""
    reference = copy_of(T + "lr_at")
    cases = [(2.0, 0.5, 5, 50)] + ([(1e-3, 1e-4, 100, 2000), (1.0, 0.0, 3, 4)] if hidden else [])
    for lr, min_lr, warm, total in cases:
        steps = [0, warm - 1, warm, total - 1, total, total + 7, 2 * total]
        expected = [float(reference(s, lr, min_lr, warm, total)) for s in steps]
        compare(lr_at, lambda f, a=(lr, min_lr, warm, total), st=steps:
                [float(f(s, *a)) for s in st], expected,
                what=f"lr_at at steps {steps} (lr={lr}, min_lr={min_lr}, warm-up {warm}, "
                     f"max_iters {total})", rtol=1e-6, atol=1e-12)


# ---------------------------------------------------------------- Part 2: param_groups


def _group_models(hidden: bool):
    tied = nn.Sequential(nn.Embedding(7, 4), nn.LayerNorm(4), nn.Linear(4, 7, bias=False))
    tied[2].weight = tied[0].weight
    models = [("Embedding, LayerNorm, Linear",
               nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4), nn.Linear(4, 10))),
              ("a tied embedding", tied)]
    if hidden:
        frozen = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
        frozen[0].requires_grad_(False)
        models += [("a GPT", _gpt(0)), ("a frozen first layer", frozen)]
    return models


def _describe_groups(groups, model) -> list:
    names = {id(p): n for n, p in model.named_parameters()}
    return [([names.get(id(p), "?") for p in g["params"]], float(g["weight_decay"]))
            for g in groups]


@check(T + "param_groups", part=2)
def check_param_groups(param_groups, hidden: bool = False) -> None:
    """Matrices (dim >= 2) with weight_decay, vectors with 0.0, in parameter order."""
    reference = copy_of(T + "param_groups")
    for label, model in _group_models(hidden):
        expected = _describe_groups(reference(model, 0.1), model)
        compare(param_groups, lambda f, m=model: _describe_groups(f(m, 0.1), m), expected,
                what=f"param_groups(model, 0.1) for {label}: [(names, weight_decay), ...]")


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


# ---------------------------------------------------------------- Part 5: checkpoint


def _resume_objects(seed: int, dropout: float):
    """(objects(init_seed), steps(model, optimizer, scheduler, g, n)) of the resume test."""
    from solutions.training import TrainConfig, get_batch, make_optimizer, make_scheduler
    from solutions.training import train_step as step_fn

    config = TrainConfig(lr=1e-2, min_lr=1e-3, warmup_iters=2, max_iters=10)
    data = _ids(13, (400,), seed)

    def objects(init_seed):
        model = _gpt(init_seed, dropout=dropout)
        optimizer = make_optimizer(model, config)
        return model, optimizer, make_scheduler(optimizer, config), \
            torch.Generator().manual_seed(seed)

    def steps(model, optimizer, scheduler, g, n):
        for _ in range(n):
            step_fn(model, optimizer, scheduler, [get_batch(data, 4, 8, "cpu", g)], 1.0)

    return objects, steps


def _saved_run(save, seed: int, dropout: float) -> tuple[bytes, torch.Tensor]:
    """Run A: train 3 steps, save, 3 more. Returns (the file saved, the final weights)."""
    objects, steps = _resume_objects(seed, dropout)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ckpt.pt"
        model, optimizer, scheduler, g = objects(seed)
        torch.manual_seed(seed)
        steps(model, optimizer, scheduler, g, 3)
        save(path, model, optimizer, scheduler, 3, g, {"note": "resume test"})
        steps(model, optimizer, scheduler, g, 3)
        return path.read_bytes(), _weights(model)


def _loaded_run(load, saved: bytes, seed: int, dropout: float, folder_arg: bool):
    """Run B: fresh objects, load the file `saved`, 3 steps. Returns (weights, learning rate,
    step)."""
    objects, steps = _resume_objects(seed, dropout)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ckpt.pt"
        path.write_bytes(saved)
        torch.manual_seed(seed + 1000)                                  # scrambled states
        model, optimizer, scheduler, g = objects(seed + 1)
        state = load(Path(tmp) if folder_arg else path, model, optimizer, scheduler, g)
        steps(model, optimizer, scheduler, g, 3)
        return _weights(model), optimizer.param_groups[0]["lr"], int(state["step"])


def _resume(save, load, seed: int, dropout: float, folder_arg: bool):
    """Run A then run B. Returns B's weights, learning rate and step, and whether A and B
    agree. A probe on the learner's save or load: the other half, the reference, stays with
    the checks (`Staged`)."""
    saved, uninterrupted = _saved_run(save, seed, dropout)
    resumed, lr, step = _loaded_run(load, saved, seed, dropout, folder_arg)
    return resumed, lr, step, bool(torch.equal(resumed, uninterrupted))


def _saving(ref_load, seed: int, dropout: float, folder_arg: bool) -> Staged:
    """The resume test of the learner's save: their run A, then the reference run B."""
    def then(got):
        saved, uninterrupted = got
        resumed, lr, step = _loaded_run(ref_load, saved, seed, dropout, folder_arg)
        return resumed, lr, step, bool(torch.equal(resumed, uninterrupted))

    return Staged(lambda f: _saved_run(f, seed, dropout), then)


def _loading(ref_save, seed: int, dropout: float, folder_arg: bool) -> Staged:
    """The resume test of the learner's load: the reference run A, then their run B."""
    saved, uninterrupted = _saved_run(ref_save, seed, dropout)
    return Staged(lambda f: _loaded_run(f, saved, seed, dropout, folder_arg),
                  lambda got: (*got, bool(torch.equal(got[0], uninterrupted))))


def _load_cases(hidden: bool):
    cases = [("dropout 0.2, path of the file", 0, 0.2, False)]
    if hidden:
        cases += [("no dropout, the folder holding ckpt.pt", 1, 0.0, True)]
    return cases


@check(C + "save_checkpoint", part=5)
def check_save_checkpoint(save_checkpoint, hidden: bool = False) -> None:
    """Your save, the reference load: the resumed run equals the uninterrupted one; a crash
    while writing leaves the earlier checkpoint intact."""
    ref_save, ref_load = copy_of(C + "save_checkpoint"), copy_of(C + "load_checkpoint")
    for label, seed, dropout, folder in _load_cases(hidden):
        expected = _resume(ref_save, ref_load, seed, dropout, folder)
        compare(save_checkpoint, _saving(ref_load, seed, dropout, folder),
                expected, parts=("weights after resuming", "learning rate after resuming",
                                 "saved step", "resumed run equals the uninterrupted one"),
                what=f"save at step 3, load, 3 more steps ({label})", rtol=1e-6, atol=1e-7)
    what = "save_checkpoint(folder/'ckpt.pt', ..., step=7, extra={'tokenizer': 'chars'})"
    saved = call(save_checkpoint, _saved_files, what)
    if isinstance(saved, Raised):
        fail(f"{what}\n  raised {saved}")
    leftovers, step, tokenizer = saved
    if leftovers != ["ckpt.pt"] or tokenizer != "chars" or step != 7:
        fail(f"after {what} the folder holds {leftovers} and the file has step {step!r}, "
             f"tokenizer {tokenizer!r}; expected only ckpt.pt (the temporary file renamed "
             f"onto it), step 7 and the extra entries")
    compare(save_checkpoint, _crash_mid_write, EARLIER,
            what="save_checkpoint over an earlier ckpt.pt, the process killed while torch.save "
                 "writes: what is left at the path")


EARLIER = "the earlier checkpoint, unchanged"


def _crash_mid_write(save_checkpoint) -> str:
    """Save over an earlier checkpoint while torch.save dies halfway through writing (as a
    killed process would): what is left at the path."""

    class Killed(BaseException):  # not an Exception: no `except Exception` survives a kill
        pass

    def dying(obj, f, *args, **kwargs):
        calls.append(f)
        if hasattr(f, "write"):
            f.write(b"PK half a checkpoint")
        else:
            with open(f, "wb") as out:
                out.write(b"PK half a checkpoint")
        raise Killed

    save, calls = torch.save, []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ckpt.pt"
        torch.save({"step": 3}, path)
        earlier = path.read_bytes()
        model = _gpt(0)
        optimizer = torch.optim.AdamW(model.parameters())
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
        torch.save = dying
        try:
            save_checkpoint(path, model, optimizer, scheduler, 7, torch.Generator())
        except Killed:
            pass
        finally:
            torch.save = save
        if not calls:
            return "a new checkpoint written without torch.save"
        if not path.exists():
            return "no file"
        return EARLIER if path.read_bytes() == earlier else "a half-written file"


def _saved_files(save_checkpoint) -> tuple[list[str], object, object]:
    """Save step 7 with an extra entry into an empty folder: (the files left there, the saved
    step, the saved extra entry)."""
    with tempfile.TemporaryDirectory() as tmp:
        model = _gpt(0)
        optimizer = torch.optim.AdamW(model.parameters())
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
        save_checkpoint(Path(tmp) / "ckpt.pt", model, optimizer, scheduler, 7,
                        torch.Generator(), {"tokenizer": "chars"})
        leftovers = sorted(p.name for p in Path(tmp).iterdir())
        state = torch.load(Path(tmp) / "ckpt.pt", weights_only=True)
        return leftovers, state.get("step"), state.get("tokenizer")


@check(C + "load_checkpoint", part=5)
def check_load_checkpoint(load_checkpoint, hidden: bool = False) -> None:
    """The reference save, your load: every state restored; a missing file raises."""
    ref_save, ref_load = copy_of(C + "save_checkpoint"), copy_of(C + "load_checkpoint")
    for label, seed, dropout, folder in _load_cases(hidden):
        expected = _resume(ref_save, ref_load, seed, dropout, folder)
        compare(load_checkpoint, _loading(ref_save, seed, dropout, folder),
                expected, parts=("weights after resuming", "learning rate after resuming",
                                 "returned step", "resumed run equals the uninterrupted one"),
                what=f"save at step 3, load, 3 more steps ({label})", rtol=1e-6, atol=1e-7)
    if hidden:
        with tempfile.TemporaryDirectory() as tmp:
            compare(load_checkpoint, lambda f: f(Path(tmp) / "missing.pt"),
                    Raises("FileNotFoundError"), what="load_checkpoint of a missing file")


# ---------------------------------------------------------------- Part 6: fit


def _small_fit(fit, seed: int, accum: int):
    from course.datasets.grammar import Grammar
    from solutions.training import TrainConfig

    ids = Grammar().corpus(4000, seed=seed)
    data = {"train": ids[:3600], "val": ids[3600:]}
    model = _gpt(seed, vocab=40)
    config = TrainConfig(batch_size=4, block_size=8, max_iters=6, lr=1e-2, min_lr=1e-3,
                         warmup_iters=2, grad_accum=accum, weight_decay=0.5, seed=seed,
                         progress=False)
    torch.manual_seed(seed)
    losses = fit(model, data, config)
    return [float(x) for x in losses], _weights(model)


@check(T + "fit", part=6, uses=(T + "param_groups", T + "train_step"))
def check_fit(fit, hidden: bool = False) -> None:
    """The same losses and weights as the reference loop on a small run."""
    reference = copy_of(T + "fit")
    for accum, seed in [(2, 0)] + ([(1, 5), (3, 6)] if hidden else []):
        expected = _small_fit(reference, seed, accum)
        compare(fit, lambda f, a=(seed, accum): _small_fit(f, *a), tuple(expected),
                parts=("the step losses", "the weights after training"),
                what=f"fit(GPT, grammar data, 6 steps, grad_accum={accum}, seed={seed})",
                rtol=1e-4, atol=1e-6)


FLOOR_MARGIN = 0.05   # nats per word above the exact floor, stated in the exercise
_FLOOR_RESULTS: dict[tuple, tuple[float, float, object]] = {}


def _code_key(fit) -> tuple:
    """The same code gives the same run (the helpers it calls are the reference's during the
    check), so a run is computed once per distinct `fit` code."""
    code = getattr(fit, "__code__", None)
    if code is None:
        return ("object", id(fit))
    return ("code", marshal.dumps(code))  # nested code objects included, not their addresses


# The floor run (this check, Chapter 9's budget and the capstone): model, training, data
FLOOR_MODEL = dict(block_size=32, n_layer=2, n_head=4, n_embd=64)       # + the grammar's vocab
FLOOR_TRAIN = dict(batch_size=16, block_size=32, max_iters=300, lr=1e-2, min_lr=1e-3,
                   warmup_iters=30, seed=0, progress=False)


def floor_data():
    """The grammar, its train/val split of the floor run, and the 256 validation windows of
    32 words on which its loss and the exact floor are measured."""
    from course.datasets.grammar import Grammar, windows

    grammar = Grammar()
    ids = grammar.corpus(60_000, seed=0)
    data = {"train": ids[:54_000], "val": ids[54_000:]}
    return grammar, data, windows(data["val"], FLOOR_MODEL["block_size"], 256, seed=1)


def _floor_setup():
    """The grammar, its train/val split and the untrained 2-layer GPT of the floor run."""
    from solutions.decoder import GPT
    from solutions.model import ModelConfig

    grammar, data, _ = floor_data()
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=grammar.vocab_size, **FLOOR_MODEL))
    return grammar, data, model


def floor_train(fit) -> dict[str, torch.Tensor]:
    """Train the floor run's GPT with `fit` for 300 steps; its trained weights (a probe: the
    training runs wherever the learner's code does, the loss is measured by `floor_loss`)."""
    from solutions.training import TrainConfig

    _, data, model = _floor_setup()
    fit(model, data, TrainConfig(**FLOOR_TRAIN))
    return model.state_dict()


def floor_loss(weights: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(validation loss, exact floor) of the trained weights, on the same 256 windows of 32
    words."""
    from course.datasets.grammar import model_nll

    grammar, _, val = floor_data()
    _, _, model = _floor_setup()
    model.load_state_dict(weights)
    return model_nll(model, val).mean().item(), grammar.window_floor(val).mean().item()


@check(T + "fit", part=6, uses=(T + "param_groups", T + "train_step"))
def check_fit_floor(fit, hidden: bool = False) -> None:
    """300 steps of a 2-layer GPT on the grammar corpus end within FLOOR_MARGIN of the floor."""
    key = _code_key(fit)
    if key not in _FLOOR_RESULTS:
        weights = call(fit, floor_train, "fit")
        if isinstance(weights, Raised):
            fail(f"fit raised {weights} while training on the grammar corpus")
        try:
            _FLOOR_RESULTS[key] = (*floor_loss(weights), fit)  # fit kept: its id stays its own
        except Exception as error:
            fail(f"the weights fit trained could not be read back ({type(error).__name__}: "
                 f"{error}); train the model it is given, in place")
    loss, floor, _ = _FLOOR_RESULTS[key]
    if not math.isfinite(loss) or loss - floor > FLOOR_MARGIN:
        fail(f"after 300 steps the validation loss is {loss:.4f}, {loss - floor:.4f} nats per "
             f"word above the exact floor {floor:.4f}; it must be within {FLOOR_MARGIN}")
    print(f"validation loss {loss:.4f}, floor {floor:.4f}: {loss - floor:.4f} above it")


# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("warmup_from_zero", T + "lr_at", """
def lr_at(step, lr, min_lr, warmup_iters, max_iters):
    if step < warmup_iters:
        return lr * (step / warmup_iters)
    if step >= max_iters:
        return min_lr
    t = (step - warmup_iters) / (max_iters - warmup_iters)
    return min_lr + (lr - min_lr) * (1 + math.cos(t * math.pi)) / 2
""", "warmup_off_by_one"),
    Slip("cosine_unclamped", T + "lr_at", """
def lr_at(step, lr, min_lr, warmup_iters, max_iters):
    if step < warmup_iters:
        return lr * (step + 1) / warmup_iters
    ratio = (step - warmup_iters) / (max_iters - warmup_iters)
    return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * ratio))
""", "cosine_past_max"),
    Slip("linear_decay", T + "lr_at", """
def lr_at(step, lr, min_lr, warmup_iters, max_iters):
    if step < warmup_iters:
        return lr * (step + 1) / warmup_iters
    if step >= max_iters:
        return min_lr
    frac = (step - warmup_iters) / (max_iters - warmup_iters)
    return lr - frac * (lr - min_lr)
""", None),
    Slip("groups_by_name", T + "param_groups", """
def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
""", None),
    Slip("one_group", T + "param_groups", """
def param_groups(model, weight_decay):
    return [{"params": list(model.parameters()), "weight_decay": weight_decay}]
""", None),
    Slip("grads_accumulate_across_steps", T + "train_step", """
def train_step(model, optimizer, scheduler, micro_batches, grad_clip, dtype="auto"):
    losses = []
    for x, y in micro_batches:
        _, loss = model(x, y)
        (loss / len(micro_batches)).backward()
        losses.append(loss.item())
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    return torch.tensor(sum(losses) / len(losses))
""", "no_zero_grad"),
    Slip("sum_of_micro_losses", T + "train_step", """
def train_step(model, optimizer, scheduler, micro_batches, grad_clip, dtype="auto"):
    optimizer.zero_grad()
    total = 0.0
    for x, y in micro_batches:
        _, loss = model(x, y)
        loss.backward()
        total += loss.item()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    return torch.tensor(total / len(micro_batches))
""", "loss_not_divided"),
    Slip("clip_first", T + "train_step", """
def train_step(model, optimizer, scheduler, micro_batches, grad_clip, dtype="auto"):
    optimizer.zero_grad(set_to_none=True)
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    mean = 0.0
    for x, y in micro_batches:
        _, loss = model(x, y)
        (loss / len(micro_batches)).backward()
        mean = mean + loss.detach() / len(micro_batches)
    optimizer.step()
    scheduler.step()
    return mean
""", "clip_before_backward"),
    Slip("eval_with_inference_mode_only", T + "estimate_loss", """
def estimate_loss(model, splits, batch_size, block_size, eval_iters, device="cpu", seed=0,
                  dtype="auto"):
    result = {}
    with torch.inference_mode():
        for name, data in splits.items():
            g = torch.Generator().manual_seed(seed)
            losses = [model(*get_batch(data, batch_size, block_size, device, g))[1].item()
                      for _ in range(eval_iters)]
            result[name] = sum(losses) / len(losses)
    return result
""", "no_eval_mode"),
    Slip("one_generator_for_all_splits", T + "estimate_loss", """
@torch.no_grad()
def estimate_loss(model, splits, batch_size, block_size, eval_iters, device="cpu", seed=0,
                  dtype="auto"):
    was = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, data in splits.items():
        out[name] = sum(model(*get_batch(data, batch_size, block_size, device, g))[1].item()
                        for _ in range(eval_iters)) / eval_iters
    model.train(was)
    return out
""", None),
    Slip("generator_not_loaded", C + "load_checkpoint", """
def load_checkpoint(path, model=None, optimizer=None, scheduler=None, data_generator=None,
                    map_location="cpu"):
    path = Path(path)
    if path.is_dir():
        path = path / "ckpt.pt"
    if not path.exists():
        raise FileNotFoundError(path)
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    for obj, key in ((model, "model"), (optimizer, "optimizer"), (scheduler, "scheduler")):
        if obj is not None:
            obj.load_state_dict(ckpt[key])
    if data_generator is not None:
        set_rng_states(ckpt["rng"])
    return ckpt
""", "data_position_not_restored"),
    Slip("save_without_random_states", C + "save_checkpoint", """
def save_checkpoint(path, model, optimizer, scheduler, step, data_generator, extra=None):
    state = dict(model=model.state_dict(), optimizer=optimizer.state_dict(),
                 scheduler=scheduler.state_dict(), step=step,
                 data_rng=data_generator.get_state())
    state.update(extra or {})
    torch.save(state, path)
""", None),
    Slip("save_in_place", C + "save_checkpoint", """
def save_checkpoint(path, model, optimizer, scheduler, step, data_generator, extra=None):
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                  "scheduler": scheduler.state_dict(), "step": step, "rng": rng_states(),
                  "data_rng": data_generator.get_state()}
    if extra:
        checkpoint.update(extra)
    with open(path, "wb") as f:
        torch.save(checkpoint, f)
""", "not_atomic"),
    Slip("fit_all_parameters_decayed", T + "fit", """
def fit(model, data, config, device="cpu"):
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                            betas=(config.beta1, config.beta2))
    sched = make_scheduler(opt, config)
    gen = torch.Generator().manual_seed(config.seed)
    model.train()
    out = []
    for step in range(config.max_iters):
        batches = [get_batch(data["train"], config.batch_size, config.block_size, device, gen)
                   for _ in range(config.grad_accum)]
        out.append(float(train_step(model, opt, sched, batches, config.grad_clip, config.dtype)))
    return out
""", "no_param_groups"),
    Slip("cosine_ignores_warmup_offset", T + "lr_at", """
def lr_at(step, lr, min_lr, warmup_iters, max_iters):
    if step < warmup_iters:
        return lr * (step + 1) / warmup_iters
    if step >= max_iters:
        return min_lr
    progress = step / max_iters
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)
""", "cosine_from_step_zero"),
    Slip("cosine_down_to_zero", T + "lr_at", """
def lr_at(step, lr, min_lr, warmup_iters, max_iters):
    if step < warmup_iters:
        return lr * (step + 1) / warmup_iters
    if step >= max_iters:
        return min_lr
    progress = (step - warmup_iters) / (max_iters - warmup_iters)
    return lr * 0.5 * (1 + math.cos(math.pi * progress))
""", "decay_to_zero"),
    Slip("warmup_one_step_long", T + "lr_at", """
def lr_at(step, lr, min_lr, warmup_iters, max_iters):
    if step <= warmup_iters:
        return lr * (step + 1) / warmup_iters
    if step >= max_iters:
        return min_lr
    progress = (step - warmup_iters) / max(1, max_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
""", None),
    Slip("groups_per_module_tied_twice", T + "param_groups", """
def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if p.requires_grad:
                (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
""", None),
    Slip("groups_decay_swapped", T + "param_groups", """
def param_groups(model, weight_decay):
    big = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    small = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": big, "weight_decay": 0.0},
            {"params": small, "weight_decay": weight_decay}]
""", None),
    Slip("scheduler_before_optimizer", T + "train_step", """
def train_step(model, optimizer, scheduler, micro_batches, grad_clip, dtype="auto"):
    optimizer.zero_grad(set_to_none=True)
    n = len(micro_batches)
    total = 0.0
    for x, y in micro_batches:
        with autocast(x.device, dtype):
            _, loss = model(x, y)
        (loss / n).backward()
        total += loss.detach().float() / n
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scheduler.step()
    optimizer.step()
    return total
""", None),
    Slip("returns_last_micro_loss", T + "train_step", """
def train_step(model, optimizer, scheduler, micro_batches, grad_clip, dtype="auto"):
    optimizer.zero_grad(set_to_none=True)
    for x, y in micro_batches:
        with autocast(x.device, dtype):
            _, loss = model(x, y)
        (loss / len(micro_batches)).backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    return loss.detach()
""", "last_micro_batch_loss"),
    Slip("estimate_stays_in_train_mode", T + "estimate_loss", """
@torch.no_grad()
def estimate_loss(model, splits, batch_size, block_size, eval_iters, device="cpu", seed=0,
                  dtype="auto"):
    out = {}
    for name, data in splits.items():
        g = torch.Generator().manual_seed(seed)
        losses = []
        for _ in range(eval_iters):
            x, y = get_batch(data, batch_size, block_size, device, g)
            with autocast(device, dtype):
                _, loss = model(x, y)
            losses.append(loss.item())
        out[name] = sum(losses) / len(losses)
    return out
""", "no_eval_mode"),
    Slip("estimate_leaves_eval_mode", T + "estimate_loss", """
@torch.no_grad()
def estimate_loss(model, splits, batch_size, block_size, eval_iters, device="cpu", seed=0,
                  dtype="auto"):
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
    return out
""", "mode_not_restored"),
    Slip("estimate_last_batch_only", T + "estimate_loss", """
@torch.no_grad()
def estimate_loss(model, splits, batch_size, block_size, eval_iters, device="cpu", seed=0,
                  dtype="auto"):
    was_training = model.training
    model.eval()
    out = {}
    for name, data in splits.items():
        g = torch.Generator().manual_seed(seed)
        for _ in range(eval_iters):
            x, y = get_batch(data, batch_size, block_size, device, g)
            with autocast(device, dtype):
                _, loss = model(x, y)
        out[name] = loss.item()
    model.train(was_training)
    return out
""", "last_batch_only"),
    Slip("save_forgets_optimizer", C + "save_checkpoint", """
def save_checkpoint(path, model, optimizer, scheduler, step, data_generator, extra=None):
    model = getattr(model, "_orig_mod", model)
    model = getattr(model, "module", model)
    state = {"model": model.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
             "rng": rng_states(), "data_rng": data_generator.get_state()}
    state.update(extra or {})
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
""", "optimizer_not_saved"),
    Slip("load_ignores_folder", C + "load_checkpoint", """
def load_checkpoint(path, model=None, optimizer=None, scheduler=None, data_generator=None,
                    map_location="cpu"):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location=map_location, weights_only=True)
    if model is not None:
        model = getattr(getattr(model, "_orig_mod", model), "module", model)
        model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if data_generator is not None:
        data_generator.set_state(state["data_rng"])
        set_rng_states(state["rng"])
    return state
""", None),
    Slip("fit_one_micro_batch", T + "fit", """
def fit(model, data, config, device="cpu"):
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr,
                                  betas=(config.beta1, config.beta2))
    scheduler = make_scheduler(optimizer, config)
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    losses = []
    for _ in range(config.max_iters):
        batch = get_batch(data["train"], config.batch_size, config.block_size, device,
                          generator)
        loss = train_step(model, optimizer, scheduler, [batch], config.grad_clip, config.dtype)
        losses.append(loss.item())
    return losses
""", "no_accumulation"),
]
