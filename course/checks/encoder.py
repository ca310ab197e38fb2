"""Checks for Exercise 7 (encoder) and the catalogue of encoder mistakes.

Oracles are Hugging Face's BERT modules holding the same weights (``BertModel`` and its
``embeddings`` and ``pooler``; ``AutoModel`` on the packaged all-MiniLM-L6-v2), and a direct
per-row average for mean pooling. A pre-LN encoder has no Hugging Face counterpart: that case
compares with the reference. ``hidden=True`` adds float64, a batch of one, full-length inputs,
more padding, a text with no real token and a second checkpoint.
"""

from __future__ import annotations

import json
import os
from functools import cache

import torch

from course.checks import oracles
from course.checks.core import (
    Mistake,
    Raised,
    Slip,
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
from course.checks.embeddings import on_meta

M = "solutions.encoder."
P = "solutions.pretrained."

MISTAKES = [
    # Part 1: EncoderEmbeddings.forward
    Mistake("no_token_types", M + "EncoderEmbeddings", "+ self.token_type(token_type_ids))", ")",
            "the token-type (segment) embeddings are missing: add "
            "self.token_type(token_type_ids) to the word and position embeddings"),
    Mistake("no_embedding_layernorm", M + "EncoderEmbeddings", "return self.dropout(self.ln(x))",
            "return self.dropout(x)",
            "the LayerNorm after the embeddings is missing: BERT normalises the sum "
            "(self.ln) before dropout"),
    Mistake("positions_off_by_one", M + "EncoderEmbeddings", "self.positions[:T]",
            "self.positions[1:T + 1]",
            "positions are off by one: the first token uses row 0 of the position table "
            "(self.positions[:T])"),
    Mistake("no_positions", M + "EncoderEmbeddings", "+ self.position(self.positions[:T])", "",
            "the position embeddings are missing: add self.position(self.positions[:T])"),
    Mistake("embedding_dropout_before_norm", M + "EncoderEmbeddings",
            "return self.dropout(self.ln(x))", "return self.ln(self.dropout(x))",
            "dropout comes before the LayerNorm: BERT normalises the sum first and drops the "
            "normalised vectors, self.dropout(self.ln(x))"),
    Mistake("positions_made_on_cpu", M + "EncoderEmbeddings", "self.positions[:T]",
            "torch.arange(T)",
            "the positions are made on the CPU (torch.arange(T) without device=), so the model "
            "fails on a GPU: take them from the buffer, self.positions[:T]"),
    Mistake("token_types_on_cpu", M + "EncoderEmbeddings", "torch.zeros_like(input_ids)",
            "torch.zeros(input_ids.shape, dtype=torch.long)",
            "the default token types are made on the CPU (torch.zeros without device=), so the "
            "model fails on a GPU: make them like the ids, torch.zeros_like(input_ids)"),
    Mistake("token_types_default_one", M + "EncoderEmbeddings", "torch.zeros_like(input_ids)",
            "torch.ones_like(input_ids)",
            "without token_type_ids every token belongs to segment 0, not 1: use "
            "torch.zeros_like(input_ids)"),
    # Part 2: Pooler.forward
    Mistake("pooler_on_mean", M + "Pooler", "hidden[:, 0]", "hidden.mean(1)",
            "the pooler reads the mean of all tokens; BERT's pooler reads the [CLS] vector, "
            "position 0: hidden[:, 0]"),
    Mistake("pooler_no_tanh", M + "Pooler", "torch.tanh(self.dense(hidden[:, 0]))",
            "self.dense(hidden[:, 0])",
            "the pooler has no tanh: pooled = tanh(dense(h_[CLS]))"),
    Mistake("pooler_last_token", M + "Pooler", "hidden[:, 0]", "hidden[:, -1]",
            "the pooler reads the last token; [CLS] is the first one, hidden[:, 0]"),
    # Part 3: Encoder.forward
    Mistake("mask_not_passed_down", M + "Encoder", "x = layer(x, mask)", "x = layer(x)",
            "the attention mask is not passed down to the layers: padding takes part in "
            "attention; call layer(x, mask) with mask = padding_mask(attention_mask)"),
    Mistake("token_types_not_passed", M + "Encoder", "self.embeddings(input_ids, token_type_ids)",
            "self.embeddings(input_ids)",
            "token_type_ids are not passed to the embeddings: every token is treated as "
            "segment 0"),
    Mistake("mask_made_on_cpu", M + "Encoder",
            "mask = None if attention_mask is None else padding_mask(attention_mask)",
            "mask = padding_mask(torch.ones(input_ids.shape, dtype=torch.long) if "
            "attention_mask is None else attention_mask)",
            "without an attention_mask a mask is made on the CPU (torch.ones without "
            "device=), so the encoder fails on a GPU: pass mask=None to the layers (every "
            "token is real), or make it like the ids, torch.ones_like(input_ids)"),
    Mistake("final_norm_skipped", M + "Encoder", "x = self.ln_f(x)", "pass",
            "a pre-LN stack needs its final LayerNorm: apply self.ln_f when it is not None"),
    Mistake("returns_pooled", M + "Encoder",
            "x = self.ln_f(x)\n        return x", "x = self.ln_f(x)\n        return self.pooler(x)",
            "the pooled summary (B, C) is returned where the last hidden state (B, T, C) is "
            "asked for: forward returns one vector per token; the pooler serves heads"),
    Mistake("extra_residual", M + "Encoder", "x = layer(x, mask)", "x = x + layer(x, mask)",
            "each layer's output is added to its input again: the layers already contain "
            "their residual connections, so x = layer(x, mask)"),
    # Part 4: mean_pool
    Mistake("mean_over_padding", M + "mean_pool", "(hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)",
            "hidden.mean(1)",
            "the average includes the padding: sum hidden * mask over the tokens and divide "
            "by the number of real tokens"),
    Mistake("divide_by_length", M + "mean_pool", "m.sum(1).clamp(min=1e-9)", "hidden.size(1)",
            "the masked sum is divided by the padded length T; divide by the number of real "
            "tokens, mask.sum(1)"),
    Mistake("empty_row_nan", M + "mean_pool", ".clamp(min=1e-9)", "",
            "a text with no real token gives 0 / 0 = NaN: clamp the count with "
            ".clamp(min=1e-9)"),
    # Part 5: copy_checkpoint
    Mistake("shape_not_checked", P + "copy_checkpoint",
            "if tuple(tensors[theirs].shape) != tuple(target.shape):", "if False:",
            "a tensor of the wrong shape is not reported: compare each checkpoint tensor's "
            "shape with the model's and raise CheckpointError naming it"),
    Mistake("assigned_not_copied", P + "copy_checkpoint", "target.copy_(tensors[names[name]])",
            "target = tensors[names[name]].clone()",
            "the checkpoint tensor is assigned to a local name, so the model keeps its random "
            "weights: copy it into the model's tensor in place with target.copy_(...)"),
    Mistake("missing_as_keyerror", P + "copy_checkpoint",
            'raise CheckpointError(f"{source} has no tensor', 'raise KeyError(f"{source} has no tensor',
            "a missing tensor must raise CheckpointError (a ValueError), not KeyError"),
    Mistake("model_not_returned", P + "copy_checkpoint", "return model", "return None",
            "copy_checkpoint must return the model it filled"),
]

# ---------------------------------------------------------------- oracles and inputs

TINY = dict(vocab_size=99, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=24, max_position_embeddings=20, type_vocab_size=2,
            hidden_act="gelu", layer_norm_eps=1e-12, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0)


def _transformers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


@cache
def _hf_bert(seed: int, dtype: torch.dtype = torch.float32, **overrides):
    """A Hugging Face BertModel with random weights (LayerNorms too), in eval mode."""
    transformers = _transformers()
    torch.manual_seed(seed)
    model = transformers.BertModel(transformers.BertConfig(**{**TINY, **overrides}))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:                        # not just ones and zeros
                p.copy_(oracles.randn(*p.shape, seed=seed + len(name), scale=0.2)
                        + (1.0 if name.endswith("weight") else 0.0))
    return model.to(dtype).eval()


def _config(hf):
    from solutions.pretrained import bert_config

    return bert_config(hf.config.to_dict())


def _bert_tensors(hf) -> dict:
    return dict(hf.state_dict())


def _batch(B: int, T: int, lengths: list[int], seed: int, vocab: int = 99):
    ids = oracles.token_ids(vocab, (B, T), seed)
    mask = oracles.lengths_mask(lengths, T).long()
    ids = ids.masked_fill(mask == 0, 0)
    types = (torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None] // 2).long() * mask
    return ids, mask, types


# ---------------------------------------------------------------- Part 1: embeddings

_EMB = {"word_embeddings.weight": "word.weight", "position_embeddings.weight": "position.weight",
        "token_type_embeddings.weight": "token_type.weight", "LayerNorm.weight": "ln.weight",
        "LayerNorm.bias": "ln.bias"}


def _our_embeddings(cls, hf, dtype):
    module = cls(_config(hf)).to(dtype)
    theirs = hf.embeddings.state_dict()
    module.load_state_dict({ours: theirs[name] for name, ours in _EMB.items()})
    return module.eval()


@check(M + "EncoderEmbeddings", part=1)
def check_embeddings(EncoderEmbeddings, hidden: bool = False) -> None:
    """LayerNorm(word + position + token type) equals Hugging Face's BertEmbeddings, in
    training mode too (dropout after the LayerNorm); it runs on the meta device without making
    CPU tensors."""
    f32, f64 = torch.float32, torch.float64
    cases = [("two segments", 2, 7, True, f32), ("token_type_ids=None", 2, 7, False, f32)]
    if hidden:
        cases += [("float64, two segments", 3, 5, True, f64), ("a batch of one", 1, 9, True, f32),
                  ("the longest input the model takes (20 tokens)", 2, 20, True, f32),
                  ("a single token, no token types", 2, 1, False, f64)]
    for i, (label, B, T, with_types, dtype) in enumerate(cases):
        hf = _hf_bert(100 + i, dtype)
        ids, _, types = _batch(B, T, [T] * B, seed=110 + i)
        types = types if with_types else None
        with torch.no_grad():
            expected = hf.embeddings(input_ids=ids, token_type_ids=types)

        def probe(cls, hf=hf, ids=ids, types=types, dtype=dtype):
            with torch.no_grad():
                return _our_embeddings(cls, hf, dtype)(ids.clone(),
                                                       None if types is None else types.clone())

        compare(EncoderEmbeddings, probe, expected,
                what=f"EncoderEmbeddings on ids ({B}, {T}), {dtype}, {label}",
                **oracles.tol(dtype))
    _check_embedding_dropout(EncoderEmbeddings, hidden)
    for label, with_types in [("token_type_ids=None", False)] + (
            [("two segments", True)] if hidden else []):
        _check_on_meta(EncoderEmbeddings, "EncoderEmbeddings", with_types, label,
                       lambda ids, mask, types: (ids, types))


def _check_embedding_dropout(EncoderEmbeddings, hidden: bool) -> None:
    """In training mode with dropout 0.3, under one seed, the output equals Hugging Face's
    BertEmbeddings in training mode under the same seed: dropout after the LayerNorm."""
    cases = [(2, 6, torch.float32)] + ([(1, 9, torch.float64)] if hidden else [])
    for i, (B, T, dtype) in enumerate(cases):
        hf = _hf_bert(150 + i, dtype, hidden_dropout_prob=0.3)
        ids, _, types = _batch(B, T, [T] * B, seed=160 + i)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(4321)
            expected = hf.embeddings.train()(input_ids=ids, token_type_ids=types)
        hf.embeddings.eval()

        def probe(cls, hf=hf, ids=ids, types=types, dtype=dtype):
            module = _our_embeddings(cls, hf, dtype).train()
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(4321)
                return module(ids.clone(), types.clone())

        compare(EncoderEmbeddings, probe, expected,
                what=f"EncoderEmbeddings(dropout=0.3).train() on ids ({B}, {T}), {dtype}, "
                     "seeded, compared with BertEmbeddings in training mode under the same seed",
                **oracles.tol(dtype))


def _check_on_meta(cls, name: str, given: bool, label: str, inputs) -> None:
    """The module, built from a small BERT config, runs on the meta device without making a
    tensor on the CPU: nothing in forward is created without the input's device. `given`:
    attention mask and token types passed; `inputs(ids, mask, types)`: the forward's
    arguments."""
    config = _config(_hf_bert(0))
    ids, mask, types = _batch(2, 5, [5, 3], seed=170)
    mask, types = (mask, types) if given else (None, None)
    args = inputs(ids, mask, types)

    def probe(cls, config=config, args=args):
        return on_meta(cls(config), *args)

    compare(cls, probe, ("meta", (2, 5, config.n_embd), []),
            what=f"{name} moved to the meta device, on ids (2, 5), {label}: (device, shape, "
                 "torch functions that made CPU tensors)",
            effects=[(mistake, lambda got, made=made: made in got[2])
                     for mistake, made in _MADE_ON_CPU[name]])


_MADE_ON_CPU = {  # the mistake a CPU tensor of this kind explains, whatever else is wrong
    "EncoderEmbeddings": [("positions_made_on_cpu", "arange"), ("token_types_on_cpu", "zeros")],
    "Encoder": [("mask_made_on_cpu", "ones")],
}


# ---------------------------------------------------------------- Part 2: pooler


@check(M + "Pooler", part=2)
def check_pooler(Pooler, hidden: bool = False) -> None:
    """tanh(dense(h_[CLS])) equals Hugging Face's BertPooler."""
    f32, f64 = torch.float32, torch.float64
    cases = [((2, 5, 16), f32)]
    if hidden:
        cases += [((3, 4, 16), f64), ((1, 1, 16), f32), ((2, 9, 16), f64)]
    for i, (shape, dtype) in enumerate(cases):
        hf = _hf_bert(200 + i, dtype)
        h = oracles.randn(*shape, seed=210 + i, dtype=dtype, scale=2.0)
        with torch.no_grad():
            expected = hf.pooler(h)

        def probe(cls, hf=hf, h=h, dtype=dtype, C=shape[-1]):
            pooler = cls(C).to(dtype)
            pooler.dense.load_state_dict(hf.pooler.dense.state_dict())
            with torch.no_grad():
                return pooler(h.clone())

        compare(Pooler, probe, expected, what=f"Pooler({shape[-1]}) on hidden {shape}, {dtype}",
                **oracles.tol(dtype))


# ---------------------------------------------------------------- Part 3: encoder

ENCODER_USES = (M + "EncoderEmbeddings", M + "Pooler")


def _encoder_state(hf, dtype, norm_first=False) -> dict:
    """Our Encoder's state dict holding the Hugging Face weights (computed on the judging side;
    a pre-LN stack also gets a random final LayerNorm)."""
    names = _names(hf.config.num_hidden_layers)
    tensors = _bert_tensors(hf)
    state = {ours: tensors[theirs].clone() for ours, theirs in names.items()}
    if norm_first:
        g = torch.Generator().manual_seed(7)
        C = hf.config.hidden_size
        state["ln_f.weight"] = (1 + 0.2 * torch.randn(C, generator=g, dtype=torch.float64)).to(dtype)
        state["ln_f.bias"] = (0.2 * torch.randn(C, generator=g, dtype=torch.float64)).to(dtype)
    return state


def _our_encoder(cls, config, state, dtype):
    """The learner's class with the given weights, in eval mode (runs where the class lives)."""
    model = cls(config).to(dtype)
    model.load_state_dict(state)
    return model.eval()


def _real(out, mask):
    return out[mask.bool()] if isinstance(out, torch.Tensor) and out.dim() == 3 else out


@check(M + "Encoder", part=3, uses=ENCODER_USES)
def check_encoder(Encoder, hidden: bool = False) -> None:
    """The last hidden state at every real token equals Hugging Face's BertModel with the same
    weights (post-LN); a pre-LN stack ends with its final LayerNorm; it runs on the meta device
    without making CPU tensors."""
    f32, f64 = torch.float32, torch.float64
    cases = [("padding and two segments", [7, 4], 7, f32, False),
             ("pre-LN stack (norm_first=True)", [6, 6], 6, f32, True)]
    if hidden:
        cases += [("float64, much padding", [8, 2, 5], 8, f64, False),
                  ("a batch of one, full length", [20], 20, f32, False),
                  ("pre-LN, float64, padding", [5, 3], 5, f64, True)]
    for i, (label, lengths, T, dtype, pre_ln) in enumerate(cases):
        hf = _hf_bert(300 + i, dtype)
        ids, mask, types = _batch(len(lengths), T, lengths, seed=310 + i)
        config = _config(hf)
        config.norm_first = pre_ln
        state = _encoder_state(hf, dtype, norm_first=pre_ln)
        if pre_ln:
            reference = _our_encoder(copy_of(M + "Encoder"), config, state, dtype)
            with torch.no_grad():
                expected = _real(reference(ids, mask, types), mask)
        else:
            with torch.no_grad():
                expected = _real(hf(input_ids=ids, attention_mask=mask,
                                    token_type_ids=types).last_hidden_state, mask)

        def probe(cls, config=config, state=state, ids=ids, mask=mask, types=types,
                  dtype=dtype):
            model = _our_encoder(cls, config, state, dtype)
            with torch.no_grad():
                return _real(model(ids.clone(), mask.clone(), types.clone()), mask)

        compare(Encoder, probe, expected,
                what=f"Encoder forward on ids {tuple(ids.shape)} with attention_mask and "
                     f"token_type_ids, {dtype}, {label} (real tokens only)",
                **oracles.tol(dtype))
    for label, given in [("no attention_mask", False)] + (
            [("attention_mask and token_type_ids", True)] if hidden else []):
        _check_on_meta(Encoder, "Encoder", given, label, lambda ids, mask, types:
                       (ids,) if mask is None else (ids, mask, types))


@check(M + "Encoder", part=3, uses=ENCODER_USES)
def check_encoder_padding(Encoder, hidden: bool = False) -> None:
    """A text's real tokens get the same output alone and padded in a batch; without a mask
    every token is real."""
    cases = [([5, 3], 5)]
    if hidden:
        cases += [([9, 1, 4], 9), ([6, 6], 6)]
    for i, (lengths, T) in enumerate(cases):
        hf = _hf_bert(400 + i)
        ids, mask, types = _batch(len(lengths), T, lengths, seed=410 + i)
        with torch.no_grad():
            alone = [hf(input_ids=ids[b:b + 1, :n], token_type_ids=types[b:b + 1, :n])
                     .last_hidden_state[0] for b, n in enumerate(lengths)]
        expected = torch.cat(alone)                                  # (sum of lengths, C)

        config, state = _config(hf), _encoder_state(hf, torch.float32)

        def probe(cls, config=config, state=state, ids=ids, mask=mask, types=types):
            model = _our_encoder(cls, config, state, torch.float32)
            with torch.no_grad():
                return _real(model(ids.clone(), mask.clone(), types.clone()), mask)

        compare(Encoder, probe, expected,
                what=f"Encoder on a padded batch with lengths {lengths}, compared with each "
                     "text encoded alone without a mask (real tokens only)",
                **oracles.tol(torch.float32))


# ---------------------------------------------------------------- Part 4: mean pooling


def _mean_oracle(hidden, mask):
    rows = []
    for h, m in zip(hidden, mask, strict=True):
        real = h[m.bool()]
        rows.append(real.mean(0) if len(real) else torch.zeros_like(h[0]))
    return torch.stack(rows)


@check(M + "mean_pool", part=4)
def check_mean_pool(mean_pool, hidden: bool = False) -> None:
    """The average of each row's real tokens (padding excluded); zeros for a row without any."""
    f32, f64 = torch.float32, torch.float64
    cases = [("padding in row 1", (2, 5, 3), [5, 2], f32)]
    if hidden:
        cases += [("float64, three rows", (3, 6, 4), [1, 6, 3], f64),
                  ("a batch of one, no padding", (1, 4, 8), [4], f32),
                  ("row 1 has no real token", (2, 3, 2), [3, 0], f64)]
    for i, (label, shape, lengths, dtype) in enumerate(cases):
        h = oracles.randn(*shape, seed=500 + i, dtype=dtype)
        mask = oracles.lengths_mask(lengths, shape[1]).long()
        compare(mean_pool, lambda f, h=h, m=mask: f(h.clone(), m.clone()), _mean_oracle(h, mask),
                what=f"mean_pool(hidden {shape}, attention_mask with lengths {lengths}), "
                     f"{dtype}, {label}", **oracles.tol(dtype))


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


def _names(n_layer: int) -> dict:
    from solutions.pretrained import BERT_NAMES, expand

    return expand(BERT_NAMES, n_layer)


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


# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("embeddings_sum_without_types", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    positions = self.positions[: input_ids.shape[1]]
    x = self.word(input_ids) + self.position(positions)[None]
    x = self.ln(x)
    return self.dropout(x)
""", "no_token_types"),
    Slip("embeddings_no_norm", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    if token_type_ids is None:
        token_type_ids = input_ids * 0
    T = input_ids.shape[-1]
    out = self.word(input_ids) + self.token_type(token_type_ids)
    out = out + self.position.weight[:T]
    return self.dropout(out)
""", "no_embedding_layernorm"),
    Slip("embeddings_positions_from_one", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    B, T = input_ids.shape
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    pos = self.positions[1:T + 1]
    return self.dropout(self.ln(self.word(input_ids) + self.position(pos)
                                + self.token_type(token_type_ids)))
""", "positions_off_by_one"),
    Slip("embeddings_norm_each_part", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    T = input_ids.size(1)
    word = self.ln(self.word(input_ids))
    return self.dropout(word + self.position(self.positions[:T])
                        + self.token_type(token_type_ids))
""", None),
    Slip("pooler_average", M + "Pooler.forward", """
def forward(self, hidden):
    summary = hidden.sum(dim=1) / hidden.shape[1]
    return torch.tanh(self.dense(summary))
""", "pooler_on_mean"),
    Slip("pooler_linear_only", M + "Pooler.forward", """
def forward(self, hidden):
    cls = hidden[:, 0, :]
    return self.dense(cls)
""", "pooler_no_tanh"),
    Slip("pooler_relu", M + "Pooler.forward", """
def forward(self, hidden):
    return torch.relu(self.dense(hidden[:, 0]))
""", None),
    Slip("encoder_mask_only_first_layer", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    h = self.embeddings(input_ids, token_type_ids)
    mask = padding_mask(attention_mask) if attention_mask is not None else None
    for i, layer in enumerate(self.layers):
        h = layer(h, mask if i == 0 else None)
    if self.ln_f is not None:
        h = self.ln_f(h)
    return h
""", None),
    Slip("encoder_ignores_mask", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    h = self.embeddings(input_ids, token_type_ids)
    for layer in self.layers:
        h = layer(h)
    return h if self.ln_f is None else self.ln_f(h)
""", "mask_not_passed_down"),
    Slip("encoder_no_types", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    x = self.embeddings(input_ids)
    mask = None
    if attention_mask is not None:
        mask = attention_mask.bool()[:, None, None, :]
    for layer in self.layers:
        x = layer(x, mask)
    if self.ln_f is not None:
        x = self.ln_f(x)
    return x
""", "token_types_not_passed"),
    Slip("encoder_no_final_norm", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    x = self.embeddings(input_ids, token_type_ids=token_type_ids)
    mask = None if attention_mask is None else padding_mask(attention_mask)
    for block in self.layers:
        x = block(x, mask=mask)
    return x
""", "final_norm_skipped"),
    Slip("embeddings_arange_positions", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    B, T = input_ids.shape
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    pos = torch.arange(T).unsqueeze(0)
    x = self.word(input_ids) + self.position(pos) + self.token_type(token_type_ids)
    return self.dropout(self.ln(x))
""", "positions_made_on_cpu"),
    Slip("embeddings_dropout_first", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    T = input_ids.size(1)
    types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
    x = self.word(input_ids) + self.position(self.positions[:T]) + self.token_type(types)
    x = self.dropout(x)
    return self.ln(x)
""", "embedding_dropout_before_norm"),
    Slip("encoder_mask_of_ones", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    if attention_mask is None:
        attention_mask = torch.ones(input_ids.size(0), input_ids.size(1), dtype=torch.long)
    x = self.embeddings(input_ids, token_type_ids)
    mask = padding_mask(attention_mask)
    for layer in self.layers:
        x = layer(x, mask)
    return x if self.ln_f is None else self.ln_f(x)
""", "mask_made_on_cpu"),
    Slip("mean_pool_all_positions", M + "mean_pool", """
def mean_pool(hidden, attention_mask):
    return hidden.sum(dim=1) / hidden.shape[1]
""", "mean_over_padding"),
    Slip("mean_pool_masked_sum_over_T", M + "mean_pool", """
def mean_pool(hidden, attention_mask):
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / hidden.shape[1]
""", "divide_by_length"),
    Slip("mean_pool_nan_on_empty", M + "mean_pool", """
def mean_pool(hidden, attention_mask):
    mask = attention_mask[..., None].type_as(hidden)
    return torch.sum(hidden * mask, dim=1) / torch.sum(mask, dim=1)
""", "empty_row_nan"),
    Slip("copy_without_checks", P + "copy_checkpoint", """
def copy_checkpoint(model, tensors, names, source="the checkpoint"):
    state = model.state_dict()
    with torch.no_grad():
        for name, target in state.items():
            target.copy_(tensors[names[name]])
    return model
""", None),
    Slip("copy_checks_while_copying", P + "copy_checkpoint", """
def copy_checkpoint(model, tensors, names, source="the checkpoint"):
    with torch.no_grad():
        for name, target in model.state_dict().items():
            theirs = names[name]
            if theirs not in tensors:
                raise CheckpointError(f"{source} has no tensor {theirs!r} (needed for {name!r})")
            if tensors[theirs].shape != target.shape:
                raise CheckpointError(f"{source}: {theirs!r} has the wrong shape")
            target.copy_(tensors[theirs])
    return model
""", None),
    Slip("copy_forgets_return", P + "copy_checkpoint", """
def copy_checkpoint(model, tensors, names, source="the checkpoint"):
    state = model.state_dict()
    for name in state:
        if names[name] not in tensors:
            raise CheckpointError(f"{source} has no tensor {names[name]!r}")
        if tuple(tensors[names[name]].shape) != tuple(state[name].shape):
            raise CheckpointError(f"{source}: tensor {names[name]!r} has the wrong shape")
    with torch.no_grad():
        for name in state:
            state[name].copy_(tensors[names[name]])
""", "model_not_returned"),
    Slip("embeddings_types_always_zero", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    T = input_ids.size(1)
    segments = torch.zeros_like(input_ids)
    x = self.word(input_ids) + self.position(self.positions[:T]) + self.token_type(segments)
    return self.dropout(self.ln(x))
""", None),
    Slip("embeddings_position_of_ids", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    x = self.word(input_ids) + self.position(input_ids) + self.token_type(token_type_ids)
    return self.dropout(self.ln(x))
""", None),
    Slip("pooler_last_token", M + "Pooler.forward", """
def forward(self, hidden):
    return torch.tanh(self.dense(hidden[:, -1]))
""", "pooler_last_token"),
    Slip("pooler_no_dense", M + "Pooler.forward", """
def forward(self, hidden):
    return torch.tanh(hidden[:, 0])
""", None),
    Slip("pooler_keeps_time_axis", M + "Pooler.forward", """
def forward(self, hidden):
    return torch.tanh(self.dense(hidden[:, :1]))
""", None),
    Slip("encoder_mask_inverted", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    x = self.embeddings(input_ids, token_type_ids)
    mask = None
    if attention_mask is not None:
        mask = padding_mask(1 - attention_mask)
    for layer in self.layers:
        x = layer(x, mask)
    return x if self.ln_f is None else self.ln_f(x)
""", None),
    Slip("encoder_returns_pooled", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    x = self.embeddings(input_ids, token_type_ids)
    mask = None if attention_mask is None else padding_mask(attention_mask)
    for layer in self.layers:
        x = layer(x, mask)
    if self.ln_f is not None:
        x = self.ln_f(x)
    return self.pooler(x)
""", "returns_pooled"),
    Slip("encoder_final_norm_every_layer", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    x = self.embeddings(input_ids, token_type_ids)
    mask = None if attention_mask is None else padding_mask(attention_mask)
    for layer in self.layers:
        x = layer(x, mask)
        if self.ln_f is not None:
            x = self.ln_f(x)
    return x
""", None),
    Slip("mean_pool_over_all_steps", M + "mean_pool", """
def mean_pool(hidden, attention_mask):
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(dim=1) / hidden.size(1)
""", "divide_by_length"),
    Slip("mean_pool_max", M + "mean_pool", """
def mean_pool(hidden, attention_mask):
    m = attention_mask.unsqueeze(-1).bool()
    return hidden.masked_fill(~m, float("-inf")).max(dim=1).values
""", None),
    Slip("copy_by_load_state_dict", P + "copy_checkpoint", """
def copy_checkpoint(model, tensors, names, source="the checkpoint"):
    check_names(model, names)
    model.load_state_dict({ours: tensors[theirs] for ours, theirs in names.items()})
    return model
""", "missing_as_keyerror"),
    Slip("copy_ignores_name_table", P + "copy_checkpoint", """
def copy_checkpoint(model, tensors, names, source="the checkpoint"):
    check_names(model, names)
    state = model.state_dict()
    for name, t in state.items():
        if name not in tensors:
            raise CheckpointError(f"{source} has no tensor {name!r}")
        if tensors[name].shape != t.shape:
            raise CheckpointError(f"{source}: {name!r} has the wrong shape")
    with torch.no_grad():
        for name, t in state.items():
            t.copy_(tensors[name])
    return model
""", None),
]
