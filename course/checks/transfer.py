"""Checks for Exercise 10 (transfer learning) and its catalogues of mistakes.

Oracles are written here, independently of the reference: the parameters that should learn
are listed by name, counted over unique tensors, and compared with what the learner's functions
leave trainable; features are the eval-mode, no-gradient, mask-weighted mean of the encoder's
output; post-processing is a softmax over the classes. The head of Part 4 is judged by what it
achieves on all-MiniLM-L6-v2 features of the course's reviews. The LoRA layer of Part 6 is
compared with its formula written out here: W x + b + (alpha / r) B A dropout(x), and merged
weights W + (alpha / r) B A, from weights loaded into the learner's module.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from course.checks import oracles
from course.checks.core import (
    CheckFailed,
    Mistake,
    Raised,
    Raises,
    Slip,
    call,
    check,
    compare,
    diagnose,
    fail,
    short,
)

T = "solutions.transfer."
L = "solutions.lora."

MISTAKES = [
    # freeze / unfreeze / count_trainable
    Mistake("freeze_top_level_only", T + "freeze", "for p in model.parameters():",
            "for p in model.parameters(recurse=False):",
            "freeze stops only the parameters held directly by the model, not those of its "
            "submodules: loop over model.parameters() (recursive) and turn requires_grad off"),
    Mistake("unfreeze_prefix_without_dot", T + "unfreeze",
            'n == name or n.startswith(name + ".")', "n.startswith(name)",
            "a name is matched as a bare prefix, so 'layers.1' also unfreezes 'layers.10', "
            "'layers.11', ...: match the name itself or the name followed by a dot"),
    Mistake("unfreeze_component_name", T + "unfreeze",
            'n == name or n.startswith(name + ".")', 'f".{name}." in f".{n}."',
            "a name is matched anywhere inside a parameter's name, so 'attn' unfreezes every "
            "layer's attention: names are full dotted names from the top of the model; match "
            "the name itself or the name followed by a dot at the start, n == name or "
            "n.startswith(name + '.')"),
    Mistake("unfreeze_silent_typo", T + "unfreeze", "        if not chosen:\n", "        if False:\n",
            "a name that matches no parameter is silently ignored: raise a ValueError so a "
            "typo (say 'poolr') does not leave the model training nothing"),
    Mistake("count_everything", T + "count_trainable",
            "for p in model.parameters() if p.requires_grad)", "for p in model.parameters())",
            "count_trainable counts frozen parameters too: count only those with "
            "requires_grad=True"),
    Mistake("count_tensors", T + "count_trainable", "p.numel()", "1",
            "count_trainable counts parameter tensors, not the numbers in them: add up "
            "p.numel()"),
    # trainable_optimizer
    Mistake("optimizer_over_all_parameters", T + "trainable_optimizer",
            "[p for p in model.parameters() if p.requires_grad]", "list(model.parameters())",
            "the optimizer holds the frozen parameters too: any that has a gradient left over "
            "from before freezing still moves (Adam's step and weight decay). Give AdamW only "
            "the parameters with requires_grad=True"),
    Mistake("weight_decay_dropped", T + "trainable_optimizer",
            "lr=lr, weight_decay=weight_decay)", "lr=lr)",
            "the weight_decay argument is not passed on, so AdamW uses its own default (0.01): "
            "give it weight_decay=weight_decay"),
    # extract_features
    Mistake("features_in_train_mode", T + "extract_features", "    encoder.eval()\n", "",
            "the features are computed in training mode, so dropout changes them from call to "
            "call: switch the encoder to eval() first (and back afterwards)"),
    Mistake("features_mode_not_restored", T + "extract_features",
            "encoder.train(was_training)", "encoder.eval()",
            "extract_features leaves the encoder in eval mode: restore the mode it had "
            "(encoder.train(was_training))"),
    Mistake("features_mean_over_padding", T + "extract_features",
            "mean_pool(hidden, attention_mask)", "hidden.mean(dim=1)",
            "the mean runs over padding positions too: weigh it by the attention mask and "
            "divide by each text's number of real tokens"),
    Mistake("features_cls_state", T + "extract_features",
            "mean_pool(hidden, attention_mask)", "hidden[:, 0]",
            "the features are the [CLS] state; this exercise's features are the mean of each "
            "text's real tokens (mean pooling)"),
    # train_head
    Mistake("head_unseeded", T + "train_head", "    torch.manual_seed(seed)\n", "",
            "the head's initialisation is not seeded, so two runs with the same seed give "
            "different heads: call torch.manual_seed(seed) before making the nn.Linear"),
    Mistake("head_left_training", T + "train_head", "return head.eval()", "return head",
            "the head is returned in training mode: return head.eval(), ready to predict"),
    # postprocess
    Mistake("softmax_over_batch", T + "postprocess", "F.softmax(logits.detach().float(), dim=-1)",
            "F.softmax(logits.detach().float(), dim=0)",
            "the softmax runs over the batch axis; each row's probabilities are over the "
            "classes (dim=-1)"),
    Mistake("score_is_logit", T + "postprocess", "score, best = probs.max(dim=-1)",
            "score, best = logits.detach().float().max(dim=-1)",
            "the score is the largest logit; it must be the probability of the chosen class "
            "(the softmax of the logits)"),
    # LoRALinear.forward and merge
    Mistake("lora_scaled_by_alpha", L + "LoRALinear", "update * self.scaling",
            "update * self.alpha",
            "the LoRA branch is multiplied by alpha; the scale is alpha / r (self.scaling), so "
            "that changing the rank does not change the size of the update"),
    Mistake("lora_not_scaled", L + "LoRALinear", "update * self.scaling", "update",
            "the LoRA branch is not scaled: multiply B A x by self.scaling (alpha / r)"),
    Mistake("lora_no_dropout", L + "LoRALinear", "self.dropout(x) @ self.A.T", "x @ self.A.T",
            "in training the LoRA branch skips its dropout: the branch reads self.dropout(x), "
            "the frozen layer reads x itself"),
    Mistake("lora_without_base", L + "LoRALinear", "return self.base(x) + update * self.scaling",
            "return update * self.scaling",
            "the frozen layer's own output is missing: LoRA adds its update to base(x), it "
            "does not replace it"),
    Mistake("merge_not_scaled", L + "LoRALinear", "self.scaling * (self.B @ self.A)",
            "(self.B @ self.A)",
            "the merged weight adds B @ A without its scale: W + self.scaling * (B @ A), the "
            "same scale as in forward"),
    Mistake("merge_scaled_by_alpha", L + "LoRALinear", "self.scaling * (self.B @ self.A)",
            "self.alpha * (self.B @ self.A)",
            "the merged weight adds alpha * B @ A; forward scales by alpha / r, and the merged "
            "layer must give the same outputs: W + self.scaling * (B @ A)"),
    Mistake("merge_transposed", L + "LoRALinear", "(self.B @ self.A)", "(self.A.T @ self.B.T)",
            "the update is transposed: B (out, r) @ A (r, in) has the weight's shape (out, in); "
            "A.T @ B.T is (in, out)"),
    Mistake("merge_in_place", L + "LoRALinear",
            "merged.weight.copy_(self.base.weight + self.scaling * (self.B @ self.A))",
            "self.base.weight.add_(self.scaling * (self.B @ self.A))\n"
            "        merged.weight.copy_(self.base.weight)",
            "merge changes the frozen base weight in place, so the LoRA layer now adds its "
            "update twice: build the merged weight as a new tensor and leave base alone"),
    Mistake("merge_drops_bias", L + "LoRALinear", "merged.bias.copy_(self.base.bias)",
            "merged.bias.zero_()",
            "the merged layer lost the base layer's bias: copy base.bias into it"),
]


# ---------------------------------------------------------------- shared inputs


def _tiny_encoder(n_layer: int = 2, dropout: float = 0.0, seed: int = 0):
    """A small post-LN Encoder, the same weights for the same arguments (the learner's global
    random state is left alone)."""
    from solutions.encoder import Encoder
    from solutions.model import ModelConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Encoder(ModelConfig(vocab_size=40, block_size=12, n_layer=n_layer, n_head=2,
                                   n_embd=8, dropout=dropout, norm_first=False))


class _Scaled(nn.Module):
    """An encoder with one parameter of its own (a learned output scale) on top."""

    def __init__(self, n_layer: int):
        super().__init__()
        self.encoder = _tiny_encoder(n_layer)
        self.scale = nn.Parameter(torch.ones(()))


def _batch(B: int, T: int, lengths: list[int], seed: int):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()   # (B, T)
    ids = torch.randint(1, 40, (B, T), generator=g).masked_fill(mask == 0, 0)
    return ids, mask


def _trainable_names(model: nn.Module) -> list[str]:
    return sorted(n for n, p in model.named_parameters() if p.requires_grad)


def _flat(module: nn.Module) -> torch.Tensor:
    """All of a module's parameters in one vector."""
    return torch.cat([p.flatten() for p in module.parameters()])


def _oracle_count(model: nn.Module) -> int:
    unique = {id(p): p for p in model.parameters()}
    return sum(p.numel() for p in unique.values() if p.requires_grad)


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


# ---------------------------------------------------------------- Part 3: features


def _oracle_features(encoder, ids, mask) -> torch.Tensor:
    encoder = encoder.eval()
    with torch.no_grad():
        hidden = encoder(ids, mask)                            # (B, T, C)
    m = mask.to(hidden.dtype)[..., None]
    return (hidden * m).sum(1) / m.sum(1)


@check(T + "extract_features", part=3)
def check_extract_features(extract_features, hidden: bool = False) -> None:
    """Eval mode, no gradient, the mean of each text's real tokens; the mode is restored."""
    cases = [("padded batch of 3", 3, 6, [6, 3, 1], True)]
    if hidden:
        cases += [("a batch of one, no padding", 1, 5, [5], True),
                  ("an encoder already in eval mode", 2, 7, [2, 7], False)]
    for i, (label, B, T_, lengths, training) in enumerate(cases):
        ids, mask = _batch(B, T_, lengths, seed=30 + i)
        expected = _oracle_features(_tiny_encoder(dropout=0.5, seed=i), ids, mask)

        def probe(f, i=i, ids=ids, mask=mask, training=training):
            encoder = _tiny_encoder(dropout=0.5, seed=i).train(training)
            torch.manual_seed(7)
            first = f(encoder, ids, mask)
            if not isinstance(first, torch.Tensor):
                return first
            return (first.detach(), first.requires_grad, encoder.training)

        compare(extract_features, probe, (expected, False, training),
                what=f"extract_features({label}, encoder dropout 0.5)",
                parts=("features", "features require a gradient", "encoder.training after"),
                rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- Part 4: a head on MiniLM


HEAD_ACCURACY = 0.68  # the accuracy the exercise states for Part 4


@lru_cache(maxsize=1)
def minilm_review_features():
    """all-MiniLM-L6-v2 mean-pooled features of 512 training and 256 test reviews, with
    labels: ((x_train, y_train), (x_test, y_test))."""
    from course.datasets import sentiment
    from solutions.encoder import Encoder
    from solutions.pretrained import minilm_path
    from solutions.tokenization_wordpiece import WordPieceTokenizer

    tokenizer = WordPieceTokenizer(minilm_path() / "vocab.txt")
    encoder = Encoder.from_pretrained().eval()
    out = []
    for split, n in (("train", 512), ("test", 256)):
        texts, labels = sentiment.reviews(split, n)
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        x = torch.cat([_oracle_features(encoder, batch["input_ids"][i:i + 128],
                                        batch["attention_mask"][i:i + 128])
                       for i in range(0, n, 128)])
        out.append((x, torch.tensor(labels)))
    return tuple(out)


def _linear_weights(head) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) of the nn.Linear a learner's train_head returned."""
    if not isinstance(head, nn.Linear):
        raise CheckFailed(f"train_head must return an nn.Linear, got {short(head)}")
    return head.weight.detach(), None if head.bias is None else head.bias.detach()


def _head_accuracy(weights, x: torch.Tensor, y: torch.Tensor, what: str, probe) -> float:
    """The accuracy on (x, y) of a head whose (weight, bias) came back from the learner's code,
    measured here; fails (naming a mistake when one explains it) if it raised or does not fit."""
    if isinstance(weights, Raised):
        fail(f"{what}\n  raised {weights}", diagnose(weights, probe, what))
    try:
        logits = nn.functional.linear(x, *weights)            # (N, n_classes)
    except (TypeError, RuntimeError) as error:
        fail(f"{what}: the head's weights do not fit the features ({error})",
             diagnose(weights, probe, what))
    return (logits.argmax(-1) == y).float().mean().item()


@check(T + "train_head", part=4)
def check_train_head(train_head, hidden: bool = False) -> None:
    """A Linear(C, n_classes) that learns a separable toy problem perfectly, is the same for the
    same seed, comes back in eval mode, and reaches the stated test accuracy on MiniLM
    features. The learner's code returns the head; its weights
    are judged here."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(60, 5, generator=g, dtype=torch.float64).float()
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()   # 3 classes, separable

    def toy(f):
        return _linear_weights(f(x.clone(), y.clone(), n_classes=3, steps=300, lr=0.05))

    what = "train_head(60 separable points in 5-D, 3 classes, 300 steps)"
    weights = call(train_head, toy, what)
    if not isinstance(weights, Raised) and tuple(weights[0].shape) != (3, 5):
        fail(f"{what}: (out_features, in_features)\n  expected (3, 5)\n  got      "
             f"{tuple(weights[0].shape)}", diagnose(weights, toy, what))
    accuracy = _head_accuracy(weights, x, y, what, toy)
    if accuracy < 0.95:
        fail(f"{what}: training accuracy {accuracy:.0%}, expected at least 95% (the points "
             "are separable)", diagnose(weights, toy, what))

    def seeded(f):
        """Heads trained with seeds 5, 5 and 6 under global seeds 1, 2 and 3."""
        heads = []
        with torch.random.fork_rng(devices=[]):
            for global_seed, seed in ((1, 5), (2, 5), (3, 6)):
                torch.manual_seed(global_seed)
                heads.append(f(x.clone(), y.clone(), n_classes=3, steps=20, lr=0.05,
                               seed=seed))
        weights = [torch.cat([t.flatten() for t in _linear_weights(h) if t is not None])
                   for h in heads]
        return (bool(torch.equal(weights[0], weights[1])),
                bool(torch.equal(weights[0], weights[2])), heads[0].training)

    compare(train_head, seeded, (True, False, False),
            what="train_head(the same points, 20 steps) with seed=5 twice, the global seed "
                 "changed in between, then with seed=6",
            parts=("the same head for the same seed", "the same head for another seed",
                   "head.training on return"))
    if hidden:
        (x_train, y_train), (x_test, y_test) = minilm_review_features()
        what = "train_head on MiniLM features of 512 reviews (defaults)"

        def reviews(f):
            return _linear_weights(f(x_train.clone(), y_train.clone()))

        accuracy = _head_accuracy(call(train_head, reviews, what), x_test, y_test, what, reviews)
        if accuracy < HEAD_ACCURACY:
            fail(f"{what}: test accuracy {accuracy:.1%}, the exercise asks for at least "
                 f"{HEAD_ACCURACY:.0%}")


# ---------------------------------------------------------------- Part 5: post-processing


def _oracle_postprocess(logits: torch.Tensor, labels: list[str]) -> list[dict]:
    probs = torch.softmax(logits.double(), dim=1)
    return [{"label": labels[int(row.argmax())], "score": float(row.max())} for row in probs]


@check(T + "postprocess", part=5)
def check_postprocess(postprocess, hidden: bool = False) -> None:
    """One {"label", "score"} per row: the most likely class and its softmax probability."""
    g = torch.Generator().manual_seed(5)
    cases = [("4 texts, 2 classes", torch.randn(4, 2, generator=g) * 3,
              ["negative", "positive"])]
    if hidden:
        cases += [("one text, 3 classes", torch.tensor([[0.5, 2.5, -1.0]]), ["a", "b", "c"]),
                  ("float64, 5 texts, 4 classes",
                   torch.randn(5, 4, generator=g, dtype=torch.float64) * 4,
                   ["w", "x", "y", "z"])]
    for label, logits, names in cases:
        compare(postprocess, lambda f, logits=logits, names=names: f(logits.clone(), names),
                _oracle_postprocess(logits, names), what=f"postprocess({label})",
                rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- Part 6: LoRA


def _lora_cases(hidden: bool) -> list[tuple]:
    """(label, in, out, r, alpha, bias, x shape, dtype) of the LoRA checks."""
    f32, f64 = torch.float32, torch.float64
    cases = [("r=2, alpha=4, square", 6, 6, 2, 4.0, True, (2, 3, 6), f32),
             ("r=3, alpha=2, in 6 -> out 4", 6, 4, 3, 2.0, True, (2, 3, 6), f32)]
    if hidden:
        cases += [("r=1, alpha=8, float64, no bias", 5, 7, 1, 8.0, False, (4, 5), f64),
                  ("r=4, alpha=4, a batch of one", 8, 8, 4, 4.0, True, (1, 2, 8), f32)]
    return cases


def _lora_state(n_in: int, n_out: int, r: int, bias: bool, dtype, seed: int) -> dict:
    """Weights for a LoRALinear: base (out, in) and (out,), A (r, in), B (out, r), B non-zero
    so that the update shows."""
    g = torch.Generator().manual_seed(seed)
    state = {"base.weight": torch.randn(n_out, n_in, generator=g, dtype=dtype) / 2,
             "A": torch.randn(r, n_in, generator=g, dtype=dtype) / 2,
             "B": torch.randn(n_out, r, generator=g, dtype=dtype) / 2}
    if bias:
        state["base.bias"] = torch.randn(n_out, generator=g, dtype=dtype)
    return state


def _lora_loaded(cls, n_in, n_out, r, alpha, bias, dtype, state, dropout=0.0):
    """The learner's LoRALinear (its given constructor) around a new nn.Linear, holding
    `state`."""
    with torch.random.fork_rng(devices=[]):
        module = cls(nn.Linear(n_in, n_out, bias=bias, dtype=dtype), r, alpha, dropout)
    module.load_state_dict(state)
    return module


def _dropped(x: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    """x with dropout p applied as nn.Dropout draws it right after torch.manual_seed(seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.functional.dropout(x, p, training=True)


@check(L + "LoRALinear", part=6)
def check_lora_forward(LoRALinear, hidden: bool = False) -> None:
    """Output and gradients of A and B equal W x + b + (alpha / r) B A dropout(x), in eval
    mode and in training with dropout 0.5 (the same dropout mask)."""
    for i, (label, n_in, n_out, r, alpha, bias, shape, dtype) in enumerate(_lora_cases(hidden)):
        state = _lora_state(n_in, n_out, r, bias, dtype, seed=110 + i)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(120 + i), dtype=dtype)
        for training in (False, True):
            A = state["A"].clone().requires_grad_()
            B = state["B"].clone().requires_grad_()
            seen = _dropped(x, 0.5, seed=7) if training else x
            y = nn.functional.linear(x, state["base.weight"], state.get("base.bias")) \
                + (seen @ A.T @ B.T) * (alpha / r)
            direction = torch.linspace(-1.0, 2.0, y.numel(), dtype=dtype).view_as(y)
            expected = (y.detach(), *torch.autograd.grad((y * direction).sum(), [A, B]))

            def probe(cls, args=(n_in, n_out, r, alpha, bias, dtype, state), x=x,
                      training=training, direction=direction):
                module = _lora_loaded(cls, *args, dropout=0.5).train(training)
                torch.manual_seed(7)
                y = module(x.clone())
                grads = torch.autograd.grad((y * direction).sum(), [module.A, module.B],
                                            allow_unused=True)
                return (y.detach(), *grads)

            mode = "training, dropout 0.5" if training else "eval mode, dropout 0.5"
            compare(LoRALinear, probe, expected,
                    what=f"LoRALinear(nn.Linear({n_in}, {n_out}), {label}) on x {shape}, "
                         f"{mode}",
                    parts=("output", "gradient of A", "gradient of B"),
                    **oracles.tol(dtype))


@check(L + "LoRALinear", part=6)
def check_lora_merge(LoRALinear, hidden: bool = False) -> None:
    """merge() returns an nn.Linear with weight W + (alpha / r) B A and the base's bias; the
    base layer is unchanged."""
    for i, (label, n_in, n_out, r, alpha, bias, _, dtype) in enumerate(_lora_cases(hidden)):
        state = _lora_state(n_in, n_out, r, bias, dtype, seed=130 + i)
        weight = state["base.weight"] + (alpha / r) * (state["B"] @ state["A"])
        expected = (True, weight, state.get("base.bias"), state["base.weight"])

        def probe(cls, args=(n_in, n_out, r, alpha, bias, dtype, state)):
            module = _lora_loaded(cls, *args)
            merged = module.merge()
            if not isinstance(merged, nn.Linear):
                return (False, None, None, module.base.weight.detach())
            return (True, merged.weight.detach(),
                    None if merged.bias is None else merged.bias.detach(),
                    module.base.weight.detach())

        compare(LoRALinear, probe, expected,
                what=f"LoRALinear(nn.Linear({n_in}, {n_out}), {label}).merge()",
                parts=("returns an nn.Linear", "merged weight", "merged bias",
                       "base weight after merge"),
                **oracles.tol(dtype))


# ---------------------------------------------------------------- the second catalogue


SLIPS = [
    Slip("freeze_flag_on_module", T + "freeze", '''
def freeze(model):
    model.requires_grad = False
    return model
''', None),
    Slip("freeze_by_eval", T + "freeze", '''
def freeze(model):
    return model.eval()
''', None),
    Slip("freeze_children_params", T + "freeze", '''
def freeze(model):
    for child in model.children():
        for p in child.parameters(recurse=False):
            p.requires_grad = False
    return model
''', None),
    Slip("unfreeze_startswith", T + "unfreeze", '''
def unfreeze(model, names):
    found = False
    for n, p in model.named_parameters():
        for name in names:
            if n.startswith(name):
                p.requires_grad = True
                found = True
    if not found:
        raise ValueError("no such parameter")
    return model
''', "unfreeze_prefix_without_dot"),
    Slip("unfreeze_ignores_unknown", T + "unfreeze", '''
def unfreeze(model, names):
    for n, p in model.named_parameters():
        if any(n == x or n.startswith(x + ".") for x in names):
            p.requires_grad_(True)
    return model
''', "unfreeze_silent_typo"),
    Slip("count_all", T + "count_trainable", '''
def count_trainable(model):
    total = 0
    for p in model.parameters():
        total += p.numel()
    return total
''', "count_everything"),
    Slip("count_len", T + "count_trainable", '''
def count_trainable(model):
    return len([p for p in model.parameters() if p.requires_grad])
''', "count_tensors"),
    Slip("count_per_module", T + "count_trainable", '''
def count_trainable(model):
    return sum(p.numel() for m in model.modules() for p in m.parameters(recurse=False)
               if p.requires_grad)
''', None),
    Slip("optimizer_everything", T + "trainable_optimizer", '''
def trainable_optimizer(model, lr, weight_decay=0.01):
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
''', "optimizer_over_all_parameters"),
    Slip("features_plain_mean", T + "extract_features", '''
def extract_features(encoder, input_ids, attention_mask):
    was = encoder.training
    encoder.eval()
    with torch.no_grad():
        out = encoder(input_ids, attention_mask).mean(1)
    encoder.train(was)
    return out
''', "features_mean_over_padding"),
    Slip("features_no_eval", T + "extract_features", '''
def extract_features(encoder, input_ids, attention_mask):
    with torch.no_grad():
        h = encoder(input_ids, attention_mask)
        m = attention_mask.unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1)
''', "features_in_train_mode"),
    Slip("features_divide_by_T", T + "extract_features", '''
def extract_features(encoder, input_ids, attention_mask):
    was = encoder.training
    encoder.eval()
    with torch.no_grad():
        h = encoder(input_ids, attention_mask)
        h = h * attention_mask[..., None]
        out = h.sum(dim=1) / h.size(1)
    encoder.train(was)
    return out
''', None),
    Slip("features_left_in_eval", T + "extract_features", '''
def extract_features(encoder, input_ids, attention_mask):
    encoder.eval()
    with torch.no_grad():
        h = encoder(input_ids, attention_mask)
    m = attention_mask[:, :, None].to(h.dtype)
    return (h * m).sum(1) / m.sum(1)
''', "features_mode_not_restored"),
    Slip("head_no_zero_grad", T + "train_head", '''
def train_head(features, labels, n_classes=2, steps=300, lr=1e-2, seed=0):
    torch.manual_seed(seed)
    head = nn.Linear(features.size(1), n_classes)
    opt = torch.optim.SGD(head.parameters(), lr=lr)
    for _ in range(3):
        loss = F.cross_entropy(head(features), labels)
        loss.backward()
        opt.step()
    return head
''', None),
    Slip("unfreeze_dotted_substring", T + "unfreeze", '''
def unfreeze(model, names):
    hits = 0
    for full, p in model.named_parameters():
        if any("." + name + "." in "." + full + "." for name in names):
            p.requires_grad = True
            hits += 1
    if hits == 0:
        raise ValueError(f"nothing called {names}")
    return model
''', "unfreeze_component_name"),
    Slip("optimizer_default_decay", T + "trainable_optimizer", '''
def trainable_optimizer(model, lr, weight_decay=0.01):
    params = [p for p in model.parameters() if p.requires_grad]
    if len(params) == 0:
        raise ValueError("nothing to train")
    return torch.optim.AdamW(params, lr)
''', "weight_decay_dropped"),
    Slip("head_global_random_state", T + "train_head", '''
def train_head(features, labels, n_classes=2, steps=300, lr=1e-2, seed=0):
    head = nn.Linear(features.shape[1], n_classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(head(features), labels)
        loss.backward()
        optimizer.step()
    head.eval()
    return head
''', "head_unseeded"),
    Slip("head_still_training", T + "train_head", '''
def train_head(features, labels, n_classes=2, steps=300, lr=1e-2, seed=0):
    torch.manual_seed(seed)
    head = nn.Linear(features.size(-1), n_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=lr)
    for step in range(steps):
        logits = head(features)
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head
''', "head_left_training"),
    Slip("post_softmax_rows", T + "postprocess", '''
def postprocess(logits, id2label):
    p = torch.softmax(logits, 0)
    return [{"label": id2label[int(r.argmax())], "score": float(r.max())} for r in p]
''', "softmax_over_batch"),
    Slip("post_max_logit", T + "postprocess", '''
def postprocess(logits, id2label):
    out = []
    for row in logits:
        i = int(row.argmax())
        out.append({"label": id2label[i], "score": float(row[i])})
    return out
''', "score_is_logit"),
    Slip("post_tensor_score", T + "postprocess", '''
def postprocess(logits, id2label):
    probs = logits.softmax(-1)
    return [{"label": id2label[int(p.argmax())], "score": p.max()} for p in probs]
''', None),
    Slip("lora_times_alpha", L + "LoRALinear.forward", '''
def forward(self, x):
    return self.base(x) + self.alpha * (self.dropout(x) @ self.A.T @ self.B.T)
''', "lora_scaled_by_alpha"),
    Slip("lora_functional_no_dropout", L + "LoRALinear.forward", '''
def forward(self, x):
    lora = F.linear(F.linear(x, self.A), self.B)
    return F.linear(x, self.base.weight, self.base.bias) + self.scaling * lora
''', "lora_no_dropout"),
    Slip("lora_dropout_everything", L + "LoRALinear.forward", '''
def forward(self, x):
    x = self.dropout(x)
    return self.base(x) + (x @ self.A.T @ self.B.T) * self.scaling
''', None),
    Slip("lora_divides_by_alpha", L + "LoRALinear.forward", '''
def forward(self, x):
    delta = (self.B @ self.A) * self.r / self.alpha
    return self.base(x) + self.dropout(x) @ delta.T
''', None),
    Slip("lora_detached_update", L + "LoRALinear.forward", '''
def forward(self, x):
    delta = (self.B.detach() @ self.A.detach()) * self.scaling
    return self.base(x) + self.dropout(x) @ delta.T
''', None),
    Slip("merge_plus_equals", L + "LoRALinear.merge", '''
def merge(self):
    self.base.weight += self.scaling * self.B @ self.A
    return self.base
''', "merge_in_place"),
    Slip("merge_forgets_scale", L + "LoRALinear.merge", '''
def merge(self):
    layer = nn.Linear(self.base.in_features, self.base.out_features)
    layer.weight.data = self.base.weight + self.B @ self.A
    layer.bias.data = self.base.bias
    return layer
''', "merge_not_scaled"),
    Slip("merge_returns_tensor", L + "LoRALinear.merge", '''
def merge(self):
    return self.base.weight + self.scaling * self.B @ self.A
''', None),
    Slip("freeze_returns_nothing", T + "freeze", """
def freeze(model):
    for p in model.parameters():
        p.requires_grad = False
""", None),
    Slip("unfreeze_substring", T + "unfreeze", """
def unfreeze(model, names):
    for name in names:
        found = False
        for n, p in model.named_parameters():
            if name in n:
                p.requires_grad = True
                found = True
        if not found:
            raise ValueError(f"nothing called {name!r}")
    return model
""", "unfreeze_prefix_without_dot"),
    Slip("unfreeze_exact_names_only", T + "unfreeze", """
def unfreeze(model, names):
    params = dict(model.named_parameters())
    for name in names:
        if name not in params:
            raise ValueError(f"no parameter called {name!r}")
        params[name].requires_grad_(True)
    return model
""", None),
    Slip("count_tied_twice", T + "count_trainable", """
def count_trainable(model):
    total = 0
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if p.requires_grad:
                total += p.numel()
    return total
""", None),
    Slip("features_cls_token", T + "extract_features", """
@torch.no_grad()
def extract_features(encoder, input_ids, attention_mask):
    was_training = encoder.training
    encoder.eval()
    hidden = encoder(input_ids, attention_mask)
    encoder.train(was_training)
    return hidden[:, 0]
""", "features_cls_state"),
    Slip("features_pooler_output", T + "extract_features", """
@torch.no_grad()
def extract_features(encoder, input_ids, attention_mask):
    was_training = encoder.training
    encoder.eval()
    try:
        return encoder.pooler(encoder(input_ids, attention_mask))
    finally:
        encoder.train(was_training)
""", None),
    Slip("head_plain_sgd", T + "train_head", """
def train_head(features, labels, n_classes=2, steps=300, lr=1e-2, seed=0):
    torch.manual_seed(seed)
    head = nn.Linear(features.size(1), n_classes)
    opt = torch.optim.SGD(head.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(head(features), labels)
        loss.backward()
        opt.step()
    return head.eval()
""", None),
    Slip("post_label_index", T + "postprocess", """
def postprocess(logits, id2label):
    probs = logits.softmax(-1)
    out = []
    for row in probs:
        i = int(row.argmax())
        out.append({"label": i, "score": float(row[i])})
    return out
""", None),
    Slip("post_sigmoid_scores", T + "postprocess", """
def postprocess(logits, id2label):
    probs = torch.sigmoid(logits.detach().float())
    score, best = probs.max(-1)
    return [{"label": id2label[int(b)], "score": float(s)} for s, b in zip(score, best)]
""", None),
]
