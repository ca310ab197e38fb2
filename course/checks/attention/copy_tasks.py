"""Part 6: `train_copy_tasks`, judged by the held-out accuracy of the copy tasks it trains."""

from __future__ import annotations

import torch

from course.checks.attention.mistakes import MISTAKES, T
from course.checks.core import Mistake, Raised, call, check, copy_of, fail

# ---------------------------------------------------------------- Part 6: training

RUNS = {"previous token": -1, "next token": 1, "next token, no mask": 1}  # name -> offset
LEARNED = 0.95   # held-out accuracy a run that can see its answer must reach (the exercise says)
CHANCE = 0.2     # held-out accuracy a run whose answer is out of sight stays under (chance 1/16)
PEEKS = 0.5      # held-out accuracy that shows a model learned to read another position
_RUNS: dict[tuple, tuple] = {}  # (the learner's code, steps, hidden) -> (kept alive, result)
_UNSET = object()  # a name the learner's function reads that is not one of its globals


def _held_out(hidden: bool) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """offset -> (inputs, targets) of sequences that no training run sees (other seeds)."""
    from course.datasets.tasks import copy_task

    n = 1000 if hidden else 400
    return {offset: copy_task(n, offset=offset, seed=30_000 + 7 * hidden + offset)
            for offset in (-1, 1)}


def _experiment_probe(fn, attention_cls, steps: int, inputs: dict[int, torch.Tensor]):
    """Run the learner's experiment where their code runs; give back, for each run: the steps
    it trained, whether it trained `attention_cls`, and its predictions on the held-out inputs
    of both tasks, with and without the causal mask (the accuracies are computed here)."""
    from course.datasets.tasks import train

    runs = fn(attention_cls, train, steps)
    if not isinstance(runs, dict) or set(runs) != set(RUNS):
        keys = sorted(map(str, runs)) if isinstance(runs, dict) else None
        return (f"a {type(runs).__name__}" + (f" with keys {keys}" if keys is not None else "")
                + f"; expected a dict with the keys {sorted(RUNS)}")
    out = {}
    for name, result in runs.items():
        model, losses = getattr(result, "model", None), getattr(result, "losses", None)
        if not isinstance(model, torch.nn.Module) or not isinstance(losses, list):
            return (f"runs[{name!r}] is a {type(result).__name__}; expected what train "
                    "returned (with .model and .losses)")
        model.eval()
        with torch.no_grad():
            predicted = {(offset, causal): model(x, causal=causal)[0].argmax(-1)
                         for offset, x in inputs.items() for causal in (True, False)}
        out[name] = (len(losses), type(getattr(model, "attention", None)) is attention_cls,
                     predicted)
    return out


def _code_key(fn) -> tuple:
    """The learner's function as code (nested code objects included), its defaults and the
    global values it reads: the same key gives the same runs."""
    def code(c):
        return (c.co_code, c.co_names, c.co_varnames,
                tuple(code(k) if hasattr(k, "co_code") else repr(k) for k in c.co_consts))

    def names(c):
        return set(c.co_names).union(*(names(k) for k in c.co_consts if hasattr(k, "co_code")))

    found = getattr(fn, "__code__", None)
    if found is None:  # a handle on the learner's object elsewhere (the grader's judge)
        return ("object", id(fn)), (fn,)
    values = tuple(fn.__globals__.get(n, _UNSET) for n in sorted(names(found)))
    return (code(found), repr(fn.__defaults__), repr(fn.__kwdefaults__),
            tuple(map(id, values))), (fn, values)


def _experiment(fn, hidden: bool) -> tuple[str, int, dict | str]:
    """(what was called, steps, {run: (steps trained, trained attention_cls?, {(offset,
    causal): held-out accuracy})} or what went wrong), computed once per code and case."""
    from course.datasets.tasks import IGNORE

    steps = 60 if hidden else 100
    what = f"train_copy_tasks(attention_cls, train, steps={steps})"
    key, alive = _code_key(fn)
    key = (key, steps, hidden)
    if key in _RUNS:
        return _RUNS[key][1]
    held_out = _held_out(hidden)
    reference = copy_of(T + "MultiHeadAttention")
    inputs = {offset: x for offset, (x, _) in held_out.items()}
    got = call(fn, lambda f: _experiment_probe(f, reference, steps, inputs), what)
    if isinstance(got, Raised):
        result = (what, steps, f"raised {got}")
    elif isinstance(got, str):
        result = (what, steps, f"returned {got}")
    else:
        table = {}
        for name, (trained, own_class, predicted) in got.items():
            accuracy = {}
            for (offset, causal), guess in predicted.items():
                target = held_out[offset][1]
                keep = target != IGNORE
                accuracy[offset, causal] = (guess[keep] == target[keep]).float().mean().item()
            table[name] = (trained, own_class, accuracy)
        result = (what, steps, table)
    _RUNS[key] = (alive, result)
    return result


def _named(*names: str) -> list[Mistake]:
    return [m for m in MISTAKES if m.name in names]


def _runs_or_fail(fn, hidden: bool) -> tuple[str, int, dict]:
    what, steps, table = _experiment(fn, hidden)
    if isinstance(table, str):
        fail(f"{what}\n  {table}")
    for name, (trained, own_class, _) in table.items():
        if trained != steps:
            fail(f"{what}: the {name!r} run trained {trained} steps, expected {steps}",
                 _named("steps_split"))
        if not own_class:
            fail(f"{what}: the {name!r} run did not train the class passed as attention_cls",
                 _named("global_class"))
    return what, steps, table


def _percent(accuracy: dict, offset: int, causal: bool) -> str:
    return f"{accuracy[offset, causal]:.1%}"


@check(T + "train_copy_tasks", part=6)
def check_train_copy_tasks(train_copy_tasks, hidden: bool = False) -> None:
    """Every run trains `steps` steps of the class it is given; the previous-token run reaches
    LEARNED held-out accuracy (checked on sequences no run trained on)."""
    what, steps, table = _runs_or_fail(train_copy_tasks, hidden)
    accuracy = table["previous token"][2]
    if accuracy[-1, True] < LEARNED:
        fail(f"{what}: after {steps} steps the 'previous token' model copies the previous token "
             f"of held-out sequences with accuracy {_percent(accuracy, -1, True)} under the "
             f"causal mask; it must reach {LEARNED:.0%}",
             _named("previous_offset") if accuracy[-1, True] < CHANCE else [])
    print(f"previous token: held-out accuracy {_percent(accuracy, -1, True)} after {steps} "
          "steps")


@check(T + "train_copy_tasks", part=6)
def check_train_copy_tasks_mask(train_copy_tasks, hidden: bool = False) -> None:
    """The next-token run, under the causal mask, stays at chance and did not learn to read the
    future; the no-mask run reads it and reaches LEARNED held-out accuracy."""
    what, steps, table = _runs_or_fail(train_copy_tasks, hidden)
    following, peeking = table["next token"][2], table["next token, no mask"][2]
    if following[1, False] >= PEEKS:
        fail(f"{what}: the 'next token' model predicts the next token of held-out sequences with "
             f"accuracy {_percent(following, 1, False)} when the mask is taken away: it was "
             "trained to read the future", _named("next_unmasked"))
    if following[-1, True] >= PEEKS:
        fail(f"{what}: the 'next token' model copies the previous token with accuracy "
             f"{_percent(following, -1, True)}: it was trained on the previous token",
             _named("next_is_previous"))
    if following[1, True] >= CHANCE:
        fail(f"{what}: the 'next token' model predicts the next token with accuracy "
             f"{_percent(following, 1, True)} under the causal mask, above chance (1/16)")
    if peeking[1, False] < LEARNED:
        fail(f"{what}: after {steps} steps the 'next token, no mask' model predicts the next "
             f"token of held-out sequences with accuracy {_percent(peeking, 1, False)} without "
             f"the mask; it must reach {LEARNED:.0%}",
             _named("no_mask_kept") if peeking[1, False] < CHANCE
             and max(peeking[-1, True], peeking[-1, False]) < PEEKS else [])
    print(f"next token: {_percent(following, 1, True)} under the mask (chance {1 / 16:.1%}), "
          f"{_percent(peeking, 1, False)} without it")
