"""Part 5: `save_checkpoint` and `load_checkpoint`, judged by a resumed run matching an unbroken
one."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from course.checks.core import Raised, Raises, Staged, call, check, compare, copy_of, fail
from course.checks.training.mistakes import C
from course.checks.training.shared import _gpt, _ids, _weights

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
