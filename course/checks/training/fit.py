"""Part 6: `fit`, and the floor run (Chapter 9's budget and the capstone's) that trains a real
GPT on the grammar corpus."""

from __future__ import annotations

import marshal
import math

import torch

from course.checks.core import Raised, call, check, compare, copy_of, fail
from course.checks.training.mistakes import T
from course.checks.training.shared import _gpt, _weights

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
