"""Parts 1 and 2: what learns (`freeze`, `unfreeze`, `count_trainable`) and
`trainable_optimizer`."""

from __future__ import annotations

import torch
from torch import nn

from course.checks.core import CheckFailed, Raises, check, compare, short
from course.checks.transfer.mistakes import T
from course.checks.transfer.shared import (
    _flat,
    _oracle_count,
    _Scaled,
    _tiny_encoder,
    _trainable_names,
)

# ---------------------------------------------------------------- Part 1: choosing what learns


@check(T + "freeze", part=1)
def check_freeze(freeze, hidden: bool = False) -> None:
    """Every parameter, at every depth, stops learning; the model is returned."""
    for n_layer in [2] + ([1, 4] if hidden else []):
        what = f"freeze(a module holding a parameter and an encoder of {n_layer} layers)"

        def probe(f, n_layer=n_layer):
            model = _Scaled(n_layer)
            returned = f(model)
            return (_trainable_names(model), returned is model)

        compare(freeze, probe, ([], True), what=what, parts=("trainable parameters left",
                                                            "returns the model"))


@check(T + "unfreeze", part=1)
def check_unfreeze(unfreeze, hidden: bool = False) -> None:
    """Exactly the named submodules (and what lies below them) learn again; a name that
    matches nothing, a component inside the full dotted names included, raises ValueError."""
    cases = [("['pooler']", 2, ["pooler"]), ("['layers.1']", 11, ["layers.1"])]
    if hidden:
        cases += [("['layers.0.attn', 'pooler.dense.bias']", 2,
                   ["layers.0.attn", "pooler.dense.bias"]),
                  ("['embeddings.word.weight']", 1, ["embeddings.word.weight"])]
    for label, n_layer, names in cases:
        model = _tiny_encoder(n_layer)
        expected = sorted(n for n, _ in model.named_parameters()
                          if any(n == x or n.startswith(x + ".") for x in names))

        def probe(f, n_layer=n_layer, names=names):
            model = _tiny_encoder(n_layer)
            for p in model.parameters():
                p.requires_grad_(False)
            returned = f(model, list(names))
            return (_trainable_names(model), returned is model)

        compare(unfreeze, probe, (expected, True),
                what=f"unfreeze(a frozen encoder of {n_layer} layers, {label})",
                parts=("trainable parameters", "returns the model"))
    for label, names in [("['poolr']", ["poolr"])] + ([("['layers.1.attn.quer']",
                                                         ["layers.1.attn.quer"])]
                                                       if hidden else []):
        compare(unfreeze, lambda f, names=names: (f(_tiny_encoder(2), names), "no error")[1],
                Raises("ValueError"), what=f"unfreeze(an encoder, {label}): a name that "
                                           "matches nothing")
    inner = [("an encoder", "attn", lambda: _tiny_encoder(2))]
    if hidden:
        inner += [("a module holding an encoder as `encoder`", "pooler", lambda: _Scaled(1))]
    def unfrozen(f, make, name):
        """The parameters left trainable when unfreezing `name` in a frozen model."""
        model = make().requires_grad_(False)
        f(model, [name])
        return _trainable_names(model)

    for model_label, name, make in inner:
        compare(unfreeze, lambda f, make=make, name=name: unfrozen(f, make, name),
                Raises("ValueError"),
                what=f"unfreeze({model_label}, [{name!r}]): a name found inside parameters' "
                     "names, not a full dotted name from the top, matches nothing")


@check(T + "count_trainable", part=1)
def check_count_trainable(count_trainable, hidden: bool = False) -> None:
    """The number of trainable numbers, frozen parameters excluded, a shared tensor once."""
    def frozen_but_pooler(model):
        for n, p in model.named_parameters():
            p.requires_grad_(n.startswith("pooler."))
        return model

    def tied():  # two layers sharing one weight matrix, as a tied LM head shares the table
        model = nn.ModuleDict({"a": nn.Linear(4, 4), "b": nn.Linear(4, 4)})
        model["b"].weight = model["a"].weight
        return model

    cases = [("a whole encoder", lambda: _tiny_encoder()),
             ("an encoder with only the pooler trainable",
              lambda: frozen_but_pooler(_tiny_encoder()))]
    if hidden:
        cases += [("two layers sharing one weight", tied),
                  ("a model with nothing trainable",
                   lambda: frozen_but_pooler(nn.Linear(3, 3)))]
    for label, make in cases:
        compare(count_trainable, lambda f, make=make: f(make()), _oracle_count(make()),
                what=f"count_trainable({label})")


# ---------------------------------------------------------------- Part 2: the optimizer


@check(T + "trainable_optimizer", part=2)
def check_trainable_optimizer(trainable_optimizer, hidden: bool = False) -> None:
    """AdamW over the trainable parameters only, with the given weight decay: a frozen weight
    with a stale gradient does not move; the trainable ones take torch's AdamW step; no
    trainable parameter at all raises ValueError."""
    def probe(f, decay=0.5):
        model = _tiny_encoder()
        for n, p in model.named_parameters():
            p.requires_grad_(n.startswith("pooler."))
            p.grad = torch.ones_like(p)                   # a gradient left from earlier
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt = f(model, lr=0.1, weight_decay=decay)
        if not isinstance(opt, torch.optim.AdamW):
            raise CheckFailed(f"trainable_optimizer must return a torch.optim.AdamW, got "
                              f"{short(opt)}")
        opt.step()
        moved = sorted(n for n, p in model.named_parameters() if not torch.equal(p, before[n]))
        held = sum(p.numel() for g in opt.param_groups for p in g["params"])
        return moved, held, _flat(model.pooler).detach()

    def oracle(decay):
        """torch's AdamW over the pooler alone, one step from the same gradients."""
        model = _tiny_encoder()
        for p in model.pooler.parameters():
            p.grad = torch.ones_like(p)
        torch.optim.AdamW(model.pooler.parameters(), lr=0.1, weight_decay=decay).step()
        pooler = sorted(n for n, _ in model.named_parameters() if n.startswith("pooler."))
        return (pooler, sum(p.numel() for p in model.pooler.parameters()),
                _flat(model.pooler).detach())

    parts = ("parameters that moved in one step", "numbers the optimizer holds",
             "the pooler's values after the step")
    compare(trainable_optimizer, probe, oracle(0.5),
            what="trainable_optimizer(an encoder with only the pooler trainable, frozen "
                 "weights holding old gradients, lr=0.1, weight_decay=0.5)", parts=parts)
    if hidden:
        compare(trainable_optimizer, lambda f: probe(f, decay=0.0), oracle(0.0),
                what="trainable_optimizer(the same, weight_decay=0)", parts=parts)

        def nothing(f):
            model = nn.Linear(2, 2).requires_grad_(False)
            return f(model, lr=0.1)

        compare(trainable_optimizer, nothing, Raises("ValueError"),
                what="trainable_optimizer(a model with nothing trainable)")
