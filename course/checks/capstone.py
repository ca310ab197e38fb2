"""Checks for Exercise 11 (the capstone): the GPT assembled from the learner's package, trained
with their loop to the grammar floor with no reference body running, and sampled.

Every check runs on the learner's package (``course.capstone``), collected from the workspace
the notebook sits in (or, for the book and for grading, from the instructor notebooks):
``parts_pass`` names the first part of exercises 1-9 that is unwritten or fails its own
checks; the floor run is Chapter 9's (``FLOOR_MODEL``, ``FLOOR_TRAIN``), and waits for the 3-step run
to pass. `SLIPS` is a second catalogue: wrong versions written as a learner would write them.
"""

from __future__ import annotations

import math
import time
from functools import cache
from pathlib import Path

import torch

from course.checks.core import CheckFailed, Mistake, Slip, call, check, compare, copy_of, fail, same

T = "solutions.capstone."
FLOOR_MARGIN = 0.05      # nats per word above the exact floor
FLOOR_SECONDS = 180      # on 2 CPU cores

MISTAKES = [
    # Part 1: build_gpt
    Mistake("fused_twins", T + "build_gpt", "n_embd=n_embd, fused=False)",
            "n_embd=n_embd, fused=True)",
            "the model asks for the course's fused twins (fused=True), which are not your code "
            "and not in your package: build it with fused=False"),
    Mistake("layer_head_swapped", T + "build_gpt",
            "n_layer=n_layer,\n                              n_head=n_head,",
            "n_layer=n_head,\n                              n_head=n_layer,",
            "n_layer and n_head are swapped: n_layer is the number of blocks, n_head the number "
            "of attention heads in each"),
    Mistake("default_block_size", T + "build_gpt", "block_size=block_size, ", "",
            "block_size is left at ModelConfig's default (512): pass block_size=block_size, "
            "the length of the position table"),
    # Part 2: train_gpt
    Mistake("reference_fit", T + "train_gpt", "mine.fit(model, data, config)",
            "__import__('solutions.training').training.fit(model, data, config)",
            "the model trains with the course's fit, not yours: call mine.fit"),
    Mistake("fresh_model", T + "train_gpt", "mine.fit(model, data, config)",
            "mine.fit(mine.GPT(model.config), data, config)",
            "fit trains a new GPT, not `model`: train the model you are given, in place"),
    Mistake("last_loss_only", T + "train_gpt",
            "[float(loss) for loss in mine.fit(model, data, config)]",
            "mine.fit(model, data, config)[-1]",
            "only the last loss is returned: return the list of every step's loss"),
    Mistake("losses_not_returned", T + "train_gpt", "return [float", "[float",
            "train_gpt returns None: return the losses fit gives back"),
    # Part 3: complete
    Mistake("unseeded_sample", T + "complete",
            "generator=torch.Generator().manual_seed(seed)", "generator=None",
            "the sample does not use `seed`: pass generate a generator seeded with it"),
    Mistake("seed_fixed", T + "complete", "manual_seed(seed)", "manual_seed(0)",
            "the generator is always seeded with 0: seed it with the `seed` argument"),
    Mistake("no_batch_axis", T + "complete", "torch.tensor([prompt], dtype=torch.long)",
            "torch.tensor(prompt, dtype=torch.long)",
            "generate takes a batch of shape (B, T): give the prompt a batch axis, "
            "torch.tensor([prompt])"),
    Mistake("new_tokens_only", T + "complete", "out[0].tolist()",
            "out[0, len(prompt):].tolist()",
            "only the new tokens are returned: return the prompt followed by them"),
    Mistake("mode_not_restored", T + "complete", "model.train(was_training)", "pass",
            "the model stays in eval mode after sampling: give it back in the mode it came in"),
    Mistake("left_training", T + "complete", "model.train(was_training)", "model.train()",
            "the model is always put in training mode after sampling, even if it came in eval "
            "mode: give it back in the mode it came in (model.train(was_training))"),
]


@cache
def _mine():
    from course.capstone.run import package_of, workspace

    return package_of(workspace())


def parts_pass() -> None:
    """Each part of exercises 1-9 that the capstone runs is written and passes its checks."""
    from course.capstone.preflight import PartFails

    try:
        _mine()
    except PartFails as error:
        raise CheckFailed(str(error)) from None
    print("every part of your package passes its exercise's checks")


def _describe(model, mine) -> tuple:
    """(sorted (where from, class) of every sub-module, number of parameters): where from is
    "yours" for the package, "torch", or the module that defines it."""
    def origin(module: str) -> str:
        return "yours" if module.startswith(mine.__name__ + ".") else \
            "torch" if module.startswith("torch.") else module

    return (sorted((origin(type(m).__module__), type(m).__name__) for m in model.modules()),
            sum(p.numel() for p in model.parameters()))


@check(T + "build_gpt", part=1)
def check_build_gpt(build_gpt, hidden: bool = False) -> None:
    """The GPT of the given sizes, every module the package's own or torch's."""
    mine = _mine()
    for sizes in [(13, 8, 2, 4, 16)] + ([(7, 4, 1, 2, 8)] if hidden else []):
        torch.manual_seed(0)
        expected = _describe(copy_of(T + "build_gpt")(mine, *sizes), mine)
        compare(build_gpt, lambda f, s=sizes: _describe(f(mine, *s), mine), expected,
                what=f"build_gpt(mine, vocab_size, block_size, n_layer, n_head, n_embd) with "
                     f"sizes {sizes}", parts=("the modules", "the number of parameters"))


def _small_run(train_gpt, seed: int):
    from course.capstone.spy import Spy
    from course.datasets.grammar import Grammar

    mine = _mine()
    grammar = Grammar()
    ids = grammar.corpus(3000, seed=seed)
    torch.manual_seed(seed)
    model = copy_of(T + "build_gpt")(mine, grammar.vocab_size, 8, 1, 2, 16)
    config = mine.TrainConfig(batch_size=4, block_size=8, max_iters=3, lr=1e-2, min_lr=1e-3,
                              warmup_iters=1, seed=seed, progress=False)
    with Spy() as spy:
        losses = train_gpt(mine, model, {"train": ids[:2700], "val": ids[2700:]}, config)
    return [float(x) for x in losses], spy.reference()


@check(T + "train_gpt", part=2)
def check_train_gpt(train_gpt, hidden: bool = False) -> None:
    """A few steps give the losses of the package's fit, and no reference body runs."""
    for seed in [0] + ([4] if hidden else []):
        expected, _ = _small_run(copy_of(T + "train_gpt"), seed)
        last = [("last_loss_only", lambda got, e=expected: same(got, e[-1:], rtol=1e-4)
                 or same(got, e[-1], rtol=1e-4))]
        compare(train_gpt, lambda f, s=seed: _small_run(f, s)[0], expected,
                what=f"train_gpt(mine, 1-layer GPT, grammar data, 3 steps, seed={seed})",
                effects=last, rtol=1e-4, atol=1e-6)
        reference = call(train_gpt, lambda f, s=seed: _small_run(f, s)[1], "train_gpt")
        if reference:
            fail("code of the reference ran while your model trained: "
                 + ", ".join(Path(f).name for f in reference),
                 [m for m in MISTAKES if m.name == "reference_fit"])


_FLOOR: dict[bytes, tuple[float, float, float]] = {}


def floor_run(train_gpt) -> tuple[float, float, float]:
    """(validation loss, exact floor, seconds) of the learner's GPT after Chapter 9's floor run
    with `train_gpt`."""
    from course.checks.training import FLOOR_MODEL, FLOOR_TRAIN, floor_data
    from course.datasets.grammar import model_nll

    mine = _mine()
    grammar, data, val = floor_data()
    torch.manual_seed(0)
    model = copy_of(T + "build_gpt")(mine, grammar.vocab_size, **FLOOR_MODEL)
    start = time.perf_counter()
    train_gpt(mine, model, data, mine.TrainConfig(**FLOOR_TRAIN))
    seconds = time.perf_counter() - start
    return model_nll(model, val).mean().item(), grammar.window_floor(val).mean().item(), seconds


@check(T + "train_gpt", part=2)
def check_train_floor(train_gpt, hidden: bool = False) -> None:
    """Your GPT, trained by your loop, ends within FLOOR_MARGIN of the exact floor, in time."""
    from course.checks.training import FLOOR_TRAIN

    expected, _ = _small_run(copy_of(T + "train_gpt"), 0)
    short_run = call(train_gpt, lambda f: _small_run(f, 0), "train_gpt")
    if not (isinstance(short_run, tuple) and same(short_run[0], expected, rtol=1e-4, atol=1e-6)
            and not short_run[1]):
        fail("train_gpt fails the 3-step run of the test above (test_train_gpt): fix that first; "
             "the floor run waits for it")
    key = getattr(getattr(train_gpt, "__code__", None), "co_code", id(train_gpt))
    if key not in _FLOOR:
        result = call(train_gpt, floor_run, "train_gpt")
        if not isinstance(result, tuple):
            fail(f"train_gpt raised {result} while training on the grammar corpus")
        _FLOOR[key] = result
    loss, floor, seconds = _FLOOR[key]
    if not math.isfinite(loss) or loss - floor > FLOOR_MARGIN:
        fail(f"after {FLOOR_TRAIN['max_iters']} steps the validation loss is {loss:.4f}, {loss - floor:.4f} nats per "
             f"word above the exact floor {floor:.4f}; it must be within {FLOOR_MARGIN}")
    if seconds > FLOOR_SECONDS:
        fail(f"training took {seconds:.0f} s; it must take under {FLOOR_SECONDS} s")
    print(f"validation loss {loss:.4f}, floor {floor:.4f}: {loss - floor:.4f} above it, "
          f"in {seconds:.0f} s")


def _sample(complete, seed: int, training: bool):
    from course.datasets.grammar import Grammar

    mine = _mine()
    torch.manual_seed(1)
    model = copy_of(T + "build_gpt")(mine, Grammar().vocab_size, 16, 1, 2, 16)
    model.train(training)
    ids = complete(mine, model, [1, 7], 6, seed=seed)
    return list(ids), model.training


@check(T + "complete", part=3)
def check_complete(complete, hidden: bool = False) -> None:
    """The prompt and the package's seeded sample; the model's mode given back."""
    for seed, training in [(3, True)] + ([(5, False)] if hidden else []):
        expected = _sample(copy_of(T + "complete"), seed, training)
        compare(complete, lambda f, a=(seed, training): _sample(f, *a), expected,
                what=f"complete(mine, GPT in {'training' if training else 'eval'} mode, "
                     f"prompt [1, 7], 6 new, seed={seed})",
                parts=("the ids", "model.training afterwards"))


SLIPS = [
    # Part 1: build_gpt
    Slip("config_positional", T + "build_gpt", """
def build_gpt(mine, vocab_size, block_size, n_layer, n_head, n_embd):
    return mine.GPT(mine.ModelConfig(vocab_size, block_size, n_layer, n_head, n_embd))
""", "fused_twins"),
    Slip("heads_for_layers", T + "build_gpt", """
def build_gpt(mine, vocab_size, block_size, n_layer, n_head, n_embd):
    cfg = mine.ModelConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_head,
                           n_head=n_layer, n_embd=n_embd, fused=False)
    return mine.GPT(cfg)
""", "layer_head_swapped"),
    Slip("no_block_size", T + "build_gpt", """
def build_gpt(mine, vocab_size, block_size, n_layer, n_head, n_embd):
    cfg = mine.ModelConfig(vocab_size=vocab_size, n_layer=n_layer, n_head=n_head,
                           n_embd=n_embd, fused=False)
    return mine.GPT(cfg)
""", "default_block_size"),
    Slip("hidden_width_is_n_embd", T + "build_gpt", """
def build_gpt(mine, vocab_size, block_size, n_layer, n_head, n_embd):
    cfg = mine.ModelConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer,
                           n_head=n_head, n_embd=n_embd, d_ff=n_embd, fused=False)
    return mine.GPT(cfg)
""", None),
    # Part 2: train_gpt
    Slip("imports_course_fit", T + "train_gpt", """
def train_gpt(mine, model, data, config):
    from solutions.training import fit
    return fit(model, data, config)
""", "reference_fit"),
    Slip("trains_a_copy", T + "train_gpt", """
def train_gpt(mine, model, data, config):
    net = mine.GPT(model.config)
    losses = mine.fit(net, data, config)
    return [float(x) for x in losses]
""", "fresh_model"),
    Slip("last_as_list", T + "train_gpt", """
def train_gpt(mine, model, data, config):
    losses = mine.fit(model, data, config)
    return losses[-1:]
""", "last_loss_only"),
    Slip("prints_losses", T + "train_gpt", """
def train_gpt(mine, model, data, config):
    for step, loss in enumerate(mine.fit(model, data, config)):
        print(step, loss)
""", "losses_not_returned"),
    # Part 3: complete
    Slip("flat_prompt", T + "complete", """
def complete(mine, model, prompt, n_new, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = mine.generate(model, torch.tensor(prompt), n_new, generator=g)
    return out.tolist()
""", "no_batch_axis"),
    Slip("continuation_only", T + "complete", """
def complete(mine, model, prompt, n_new, seed=0):
    mode = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    out = mine.generate(model, torch.tensor([prompt]), n_new, generator=g)
    model.train(mode)
    return out[0][len(prompt):].tolist()
""", "new_tokens_only"),
    Slip("eval_for_good", T + "complete", """
def complete(mine, model, prompt, n_new, seed=0):
    model.eval()
    g = torch.Generator().manual_seed(seed)
    return mine.generate(model, torch.tensor([prompt]), n_new, generator=g)[0].tolist()
""", "mode_not_restored"),
    Slip("back_to_train", T + "complete", """
def complete(mine, model, prompt, n_new, seed=0):
    model.eval()
    g = torch.Generator().manual_seed(seed)
    ids = mine.generate(model, torch.tensor([prompt]), n_new, generator=g)[0].tolist()
    model.train()
    return ids
""", "left_training"),
    Slip("greedy_instead", T + "complete", """
def complete(mine, model, prompt, n_new, seed=0):
    mode = model.training
    model.eval()
    out = mine.generate(model, torch.tensor([prompt]), n_new, greedy=True)
    model.train(mode)
    return out[0].tolist()
""", None),
    Slip("generator_not_seeded", T + "complete", """
def complete(mine, model, prompt, n_new, seed=0):
    mode = model.training
    model.eval()
    out = mine.generate(model, torch.tensor([prompt]), n_new, generator=torch.Generator())
    model.train(mode)
    return out[0].tolist()
""", "unseeded_sample"),
]
