"""Part 5: `copy_checkpoint`, loading all-MiniLM-L6-v2's weights into ours, and its errors."""

from __future__ import annotations

import json
from functools import cache

import torch

from course.checks.core import (
    Raised,
    _verdict,
    call,
    check,
    compare,
    copy_of,
    diagnose,
    fail,
    fails_first,
    replaying,
    short,
)
from course.checks.encoder.mistakes import M, P
from course.checks.encoder.shared import _batch, _config, _hf_bert, _names, _transformers

# ---------------------------------------------------------------- Part 5: copy_checkpoint

ENCODER_PARTS = (M + "EncoderEmbeddings", M + "Pooler", M + "Encoder")


def _encoder_class(copy_checkpoint, hidden: bool):
    """The learner's own Encoder when Parts 1-3 pass, else the reference (with a note)."""
    namespace = getattr(copy_checkpoint, "__globals__", {})
    mine = namespace.get("Encoder")
    if mine is None or str(getattr(mine, "__module__", "")).startswith("solutions"):
        return copy_of(M + "Encoder"), "the reference Encoder"
    if all(namespace.get(t.rpartition(".")[2]) is not None
           and _verdict(t, namespace[t.rpartition(".")[2]], hidden) is None
           for t in ENCODER_PARTS):
        return mine, "your own Encoder"
    if replaying():  # a student bundle has no reference Encoder
        for t in ENCODER_PARTS:
            fails_first(t, namespace.get(t.rpartition(".")[2]), hidden)
        return mine, "your own Encoder"
    print("Note: Parts 1-3 do not all pass yet; this part was checked with the reference "
          "Encoder.")
    return copy_of(M + "Encoder"), "the reference Encoder"


@cache
def _minilm():
    from safetensors.torch import load_file

    from solutions.pretrained import bert_config, minilm_path

    transformers = _transformers()
    folder = minilm_path()
    config = bert_config(json.loads((folder / "config.json").read_text()))
    tensors = load_file(str(folder / "model.safetensors"))
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(["A learner's own encoder runs a real model.", "Hello!",
                       "Padding must not change anything."], padding=True, return_tensors="pt")
    hf = transformers.AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = hf(**batch).last_hidden_state[batch["attention_mask"].bool()]
    return config, tensors, batch, expected


@check(P + "copy_checkpoint", part=5)
def check_copy_checkpoint(copy_checkpoint, hidden: bool = False) -> None:
    """MiniLM's checkpoint copied into an Encoder reproduces Hugging Face's AutoModel; the
    function returns the model it filled."""
    cls, whose = _encoder_class(copy_checkpoint, hidden)
    cases = ["minilm"] + (["tiny"] if hidden else [])
    for case in cases:
        if case == "minilm":
            config, tensors, batch, expected = _minilm()
            args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            what = (f"copy_checkpoint(Encoder(MiniLM's config), MiniLM's tensors, names) with "
                    f"{whose}, compared with transformers.AutoModel (real tokens)")
        else:
            hf = _hf_bert(600)
            config, tensors = _config(hf), dict(hf.state_dict())
            tensors["cls.predictions.bias"] = torch.zeros(3)      # extra tensors are ignored
            ids, mask, types = _batch(2, 6, [6, 3], seed=610)
            args = (ids, mask, types)
            with torch.no_grad():
                expected = hf(input_ids=ids, attention_mask=mask,
                              token_type_ids=types).last_hidden_state[mask.bool()]
            what = (f"copy_checkpoint into {whose} from a random 2-layer BERT whose checkpoint "
                    "also holds a tensor the model does not use")

        def probe(f, config=config, tensors=tensors, args=args, what=what):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)                  # the same random start for every call
                model = cls(config)
            result = f(model, tensors, _names(config.n_layer), "the checkpoint")
            if result is not model:
                return ("returned", short(result))
            with torch.no_grad():
                return model.eval()(*args)[args[1].bool()]

        compare(copy_checkpoint, probe, expected, what=what, rtol=0, atol=1e-4)


def _error_case(tensors: dict, broken: str, how: str) -> dict:
    bad = dict(tensors)
    if how == "missing":
        del bad[broken]
    else:
        bad[broken] = torch.zeros(*bad[broken].shape[:-1], bad[broken].shape[-1] + 1)
    return bad


@check(P + "copy_checkpoint", part=5)
def check_copy_checkpoint_errors(copy_checkpoint, hidden: bool = False) -> None:
    """A missing or misshaped tensor raises CheckpointError naming the first bad tensor, and
    nothing is copied."""
    hf = _hf_bert(700)
    config, tensors = _config(hf), dict(hf.state_dict())
    cases = [("encoder.layer.1.intermediate.dense.weight", "missing"),
             ("encoder.layer.0.attention.self.key.bias", "misshaped")]
    if hidden:
        cases += [("embeddings.word_embeddings.weight", "misshaped"),
                  ("pooler.dense.bias", "missing")]
    cls = copy_of(M + "Encoder")
    for broken, how in cases:
        bad = _error_case(tensors, broken, how)
        what = (f"copy_checkpoint with tensor {broken!r} {how} in the checkpoint; expected a "
                f"CheckpointError naming it, and the model left unchanged")

        def probe(f, bad=bad, broken=broken):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = cls(config)
            before = {k: v.clone() for k, v in model.state_dict().items()}
            try:
                f(model, bad, _names(config.n_layer), "the checkpoint")
            except Exception as error:
                unchanged = all(torch.equal(before[k], v) for k, v in model.state_dict().items())
                return (type(error).__name__, repr(broken) in str(error), unchanged)
            return ("no error", False, True)

        result = call(copy_checkpoint, probe, what)
        if isinstance(result, Raised):
            fail(f"{what}\n  raised {result}", diagnose(result, probe, what))
        kind, named, unchanged = result
        expected = ("CheckpointError", True, True)
        if result != expected:
            problem = ("no error was raised" if kind == "no error" else
                       f"raised {kind} instead of CheckpointError" if kind != "CheckpointError"
                       else "the message does not name the tensor" if not named
                       else "some tensors were copied before the error (check every tensor "
                            "first, then copy)")
            fail(f"{what}\n  {problem}", diagnose(result, probe, what))
