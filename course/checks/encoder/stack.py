"""Parts 3 and 4: the `Encoder` and `mean_pool`."""

from __future__ import annotations

import torch

from course.checks import oracles
from course.checks.core import check, compare, copy_of
from course.checks.encoder.mistakes import M
from course.checks.encoder.shared import (
    _batch,
    _bert_tensors,
    _check_on_meta,
    _config,
    _hf_bert,
    _names,
)

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
