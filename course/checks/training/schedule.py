"""Parts 1 and 2: the learning-rate schedule `lr_at` and the optimizer's `param_groups`."""

from __future__ import annotations

from torch import nn

from course.checks.core import check, compare, copy_of
from course.checks.training.mistakes import T
from course.checks.training.shared import _gpt

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
