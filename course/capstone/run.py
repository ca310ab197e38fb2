"""The capstone run: the learner's GPT, built from their own classes, trained with their own
loop to the grammar corpus's floor, and sampled with their own ``generate``.

    result = capstone("workspace")       # collects, checks the parts it runs, trains, samples
    result.gap, result.seconds, result.text

The model and the budget are Chapter 9's floor run (``course.checks.training.FLOOR_MODEL`` and
``FLOOR_TRAIN``: a 2-layer GPT, 300 steps), built with ``ModelConfig(fused=False)``: every
module is the learner's, none of the course's fused twins. :func:`spy_step` proves that no
body of the reference runs in the forward pass, the backward pass, the optimizer step or
sampling.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from course.capstone.collect import collect, load
from course.capstone.preflight import preflight
from course.capstone.spy import Spy


class ReferenceRan(AssertionError):
    """A body of the reference ran inside the learner's model or training step."""


@dataclass
class Result:
    loss: float                 # validation loss, nats per word, on the floor run's windows
    floor: float                # the exact floor on the same windows
    seconds: float              # wall time of the training
    losses: list[float] = field(repr=False)   # every step's training loss
    text: str = ""              # words the trained model generated

    @property
    def gap(self) -> float:
        return self.loss - self.floor


def workspace(folder=".") -> Path:
    """The learner's workspace: `folder` if it holds the exercise notebooks (the capstone's
    notebook sits beside them); else, for the book and for grading, a workspace made of the
    instructor notebooks (every answer written), and a note says so."""
    from course.authoring.exercises import SOURCE
    from course.capstone.collect import notebooks

    if notebooks(folder):
        return Path(folder)
    made = Path(tempfile.gettempdir()) / "course-capstone-instructor"
    made.mkdir(exist_ok=True)
    for nb in sorted(SOURCE.glob("0[1-9]_*/*.ipynb")):
        if not (made / nb.name).exists() or (made / nb.name).read_bytes() != nb.read_bytes():
            shutil.copy(nb, made / nb.name)
    print(f"Note: no exercise notebooks in {Path(folder).resolve()}: this run uses the "
          "instructor notebooks (every answer written) as the workspace.")
    return made


def package_of(workspace, check: bool = True):
    """The learner's package collected from the workspace (re-collected when a notebook
    changed), with the parts the capstone runs checked first (PartFails names a wrong one).
    One process at a time (the processes of `torchrun` each call it): a lock file in the
    workspace."""
    import fcntl

    with open(Path(workspace) / ".mytransformer.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        folder = collect(workspace)
        mine = load(folder)
        if check:
            preflight(mine, folder=folder)
    return mine


def build_gpt(mine, vocab_size: int, **sizes):
    """The learner's GPT from their own classes (fused=False: no fused twin)."""
    return mine.GPT(mine.ModelConfig(vocab_size=vocab_size, fused=False, **sizes))


def mine_trainer(workspace):
    """(build, train) for `python -m course train --mine`: build(ModelConfig) -> the
    learner's GPT (fused=False), and the course's loop `train` from their package, which runs
    their step, schedule, parameter groups, loss estimate and checkpoints. A part that is
    unwritten or wrong raises DataError, naming the exercise and the part."""
    from dataclasses import asdict

    from course.capstone.collect import CollectError
    from course.capstone.preflight import PartFails
    from course.cli.train import DataError

    try:
        mine = package_of(workspace)
    except (CollectError, PartFails) as error:
        raise DataError(str(error)) from None

    def build(config):
        return build_gpt(mine, **{k: v for k, v in asdict(config).items() if k != "fused"})

    return build, mine.train


def spy_step(mine, model, data: dict[str, torch.Tensor], package_folder) -> Spy:
    """One training step (forward, backward, optimizer, schedule) and a short sample of the
    learner's model under the spy; ReferenceRan if any code of solutions/ ran, and also if none
    of the learner's package did (the spy would prove nothing)."""
    from course.checks.training import FLOOR_TRAIN

    config = mine.TrainConfig(**FLOOR_TRAIN)
    optimizer = torch.optim.AdamW(mine.param_groups(model, config.weight_decay), lr=config.lr)
    scheduler = mine.make_scheduler(optimizer, config)
    batch = mine.get_batch(data["train"], 4, model.config.block_size,
                           generator=torch.Generator().manual_seed(0))     # (4, T) twice
    with Spy() as spy:
        mine.train_step(model, optimizer, scheduler, [batch], config.grad_clip)
        model.eval()
        mine.generate(model, batch[0][:1, :4], 3)
        model.train()
    if spy.reference():
        raise ReferenceRan("code of the reference ran in your model or training step: "
                           + ", ".join(Path(f).name for f in spy.reference()))
    if not spy.under(package_folder):
        raise ReferenceRan("none of your package's code ran: the spy saw nothing to check")
    return spy


def capstone(workspace, max_iters: int | None = None, n_words: int = 24) -> Result:
    """Collect, check, train the learner's GPT on the grammar corpus with their `fit`, and
    sample `n_words` words with their `generate`. `max_iters` shortens the run (tests)."""
    from course.checks.training import FLOOR_MODEL, FLOOR_TRAIN, floor_data
    from course.datasets.grammar import model_nll

    mine = package_of(workspace)
    grammar, data, val = floor_data()
    torch.manual_seed(0)
    model = build_gpt(mine, grammar.vocab_size, **FLOOR_MODEL)
    spy_step(mine, build_gpt(mine, grammar.vocab_size, **FLOOR_MODEL), data,
             Path(mine.__file__).parent)
    config = mine.TrainConfig(**{**FLOOR_TRAIN, **({"max_iters": max_iters}
                                                   if max_iters else {})})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # matrices this small multiply fastest on one thread
    try:
        start = time.perf_counter()
        losses = mine.fit(model, data, config)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    loss = model_nll(model, val).mean().item()
    model.eval()
    prompt = torch.tensor([grammar.encode("the")])
    out = mine.generate(model, prompt, n_words, generator=torch.Generator().manual_seed(0))
    return Result(loss, grammar.window_floor(val).mean().item(), seconds, list(losses),
                  grammar.text(out[0]))


def add_parser(sub) -> None:
    """`python -m course capstone [WORKSPACE]`: collect, check, train to the floor, write."""
    p = sub.add_parser("capstone", help="collect your code from the exercise notebooks, check "
                                        "it, train your GPT to the grammar floor")
    p.add_argument("workspace", nargs="?", default="workspace",
                   help="the folder of your exercise notebooks (default: workspace)")
    p.set_defaults(run=_run)


def _run(args) -> int:
    import sys

    from course.capstone.collect import CollectError, unwritten
    from course.capstone.preflight import PartFails

    try:
        result = capstone(args.workspace)
    except (CollectError, PartFails) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for part in unwritten(args.workspace):
        print(f"not written yet (the capstone does not need it): {part.label()}")
    print(f"your GPT: validation loss {result.loss:.4f}, floor {result.floor:.4f}: "
          f"{result.gap:.4f} above it, after {result.seconds:.1f} s of training")
    print(result.text)
    return 0
