"""Parts 1 and 2: the `GPT` (logits, loss, dropout, the cached forward) and the KV cache
`LayerCache`."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from course.checks import oracles
from course.checks.core import call, check, compare, copy_of
from course.checks.decoder.mistakes import M
from course.checks.decoder.shared import _gpt_cases, _hf_gpt2, _load

# ---------------------------------------------------------------- Part 1: GPT


@check(M + "GPT", part=1)
def check_gpt(GPT, hidden: bool = False) -> None:
    """Logits equal GPT-2's (same weights) on whole sequences; in training mode, dropout falls
    where the reference's does."""
    for i, (label, sizes, B, T, dtype) in enumerate(_gpt_cases(hidden)):
        hf = _hf_gpt2(*sizes, dtype)
        idx = oracles.token_ids(sizes[4], (B, T), seed=300 + i)
        with torch.no_grad():
            expected = hf(idx).logits

        def probe(cls, hf=hf, idx=idx):
            with torch.no_grad():
                return _load(cls, hf)(idx.clone())[0]

        compare(GPT, probe, expected, what=f"GPT logits on idx ({B}, {T}), {label}",
                **oracles.tol(dtype))
    _check_gpt_dropout(GPT, hidden)


def _check_gpt_dropout(GPT, hidden: bool) -> None:
    """In training mode with dropout 0.2, under one seed, the logits equal the reference GPT's
    under the same seed: the embeddings are dropped first, then each block drops its branches
    (a missing dropout shifts every random draw after it)."""
    reference = copy_of(M + "GPT")
    for i, (label, sizes, B, T, dtype) in enumerate(_gpt_cases(hidden)[::2]):
        hf = _hf_gpt2(*sizes, dtype)
        idx = oracles.token_ids(sizes[4], (B, T), seed=350 + i)

        def probe(cls, hf=hf, idx=idx, dtype=dtype):
            from solutions.pretrained import gpt2_config, load_gpt2

            config = dataclasses.replace(gpt2_config(hf.config), dropout=0.2)
            with torch.random.fork_rng(devices=[]):
                model = load_gpt2(cls(config), hf.state_dict()).to(dtype).train()
                torch.manual_seed(4321)
                with torch.no_grad():
                    return model(idx.clone())[0]

        what = (f"GPT(dropout=0.2).train() logits on idx ({B}, {T}), {label}, seeded, "
                "compared with the reference GPT under the same seed")
        compare(GPT, probe, call(reference, probe, what), what=what, **oracles.tol(dtype))


@check(M + "GPT", part=1)
def check_gpt_cached(GPT, hidden: bool = False) -> None:
    """With a KV cache (a prompt, then one token at a time) the logits equal GPT-2's on the
    whole sequence."""
    for i, (label, sizes, B, T, dtype) in enumerate(_gpt_cases(hidden)):
        hf = _hf_gpt2(*sizes, dtype)
        idx = oracles.token_ids(sizes[4], (B, T), seed=300 + i)
        with torch.no_grad():
            expected = hf(idx).logits
        prefill = max(1, T // 3)

        def cached(cls, hf=hf, idx=idx, prefill=prefill, T=T):
            model = _load(cls, hf)
            kv = model.new_cache()
            with torch.no_grad():
                pieces = [model(idx[:, :prefill].clone(), cache=kv)[0]]
                pieces += [model(idx[:, t:t + 1].clone(), cache=kv)[0]
                           for t in range(prefill, T)]
            return torch.cat(pieces, dim=1)

        compare(GPT, cached, expected,
                what=f"GPT with a KV cache (a prompt, then one token at a time), {label}",
                **oracles.tol(dtype))


@check(M + "GPT", part=1)
def check_gpt_loss(GPT, hidden: bool = False) -> None:
    """The loss with shifted targets equals the cross-entropy of GPT-2's logits, and targets
    equal to ignore_index are skipped."""
    for i, (label, sizes, B, T, dtype) in enumerate(_gpt_cases(hidden)):
        hf = _hf_gpt2(*sizes, dtype)
        text = oracles.token_ids(sizes[4], (B, T), seed=400 + i)
        with torch.no_grad():                             # GPT-2's logits, targets shifted
            logits = hf(text[:, :-1]).logits
            expected = F.cross_entropy(logits.flatten(0, 1), text[:, 1:].flatten())

        def probe(cls, hf=hf, text=text):
            with torch.no_grad():
                return _load(cls, hf)(text[:, :-1].clone(), text[:, 1:].clone())[1]

        compare(GPT, probe, expected,
                what=f"GPT loss, idx = text[:, :-1], targets = text[:, 1:], {label}",
                **oracles.tol(dtype))
        padded = text[:, 1:].clone()
        padded[-1, T // 2:] = 0                           # padding, ignored with ignore_index=0
        expected = F.cross_entropy(logits.flatten(0, 1), padded.flatten(), ignore_index=0)

        def probe_pad(cls, hf=hf, text=text, padded=padded):
            with torch.no_grad():
                return _load(cls, hf)(text[:, :-1].clone(), padded.clone(), ignore_index=0)[1]

        compare(GPT, probe_pad, expected,
                what=f"GPT loss with padded targets and ignore_index=0, {label}",
                **oracles.tol(dtype))


# ---------------------------------------------------------------- Part 2: the KV cache


@check(M + "LayerCache", part=2)
def check_layer_cache(LayerCache, hidden: bool = False) -> None:
    """Attention fed a prompt and then the next tokens with cache=LayerCache() equals causal
    attention over the whole sequence (chapter 3's explicit mask), and the cache ends up
    holding every key and value in order."""
    from solutions.attention import FusedMultiHeadAttention, MultiHeadAttention, split_heads

    f32, f64 = torch.float32, torch.float64
    cases = [("a prompt of 3, then one token at a time", 2, 7, 16, 4, [3, 1, 1, 1, 1], f32),
             ("one token at a time", 1, 5, 8, 2, [1, 1, 1, 1, 1], f32)]
    if hidden:
        cases += [("the whole sequence at once", 2, 6, 12, 3, [6], f64),
                  ("chunks of 2, 3, 1", 3, 6, 16, 2, [2, 3, 1], f32),
                  ("float64, a prompt of 4", 1, 9, 8, 1, [4, 1, 1, 1, 1, 1], f64)]
    for i, (label, B, T, C, H, chunks, dtype) in enumerate(cases):
        torch.manual_seed(500 + i)
        kind = (MultiHeadAttention, FusedMultiHeadAttention)[i % 2]
        attn = kind(C, H).to(dtype).eval()
        x = oracles.randn(B, T, C, seed=510 + i, dtype=dtype)
        causal = torch.ones(T, T, dtype=torch.bool).tril()[None, None]
        with torch.no_grad():
            out = attn(x, mask=causal)[0]
            k, v = split_heads(attn.key(x), H), split_heads(attn.value(x), H)

        def probe(cls, attn=attn, x=x, chunks=chunks):
            cache, pieces, at = cls(), [], 0
            with torch.no_grad():
                for n in chunks:
                    pieces.append(attn(x[:, at:at + n].clone(), causal=True, cache=cache)[0])
                    at += n
            return torch.cat(pieces, dim=1), cache.k, cache.v, cache.length

        compare(LayerCache, probe, (out, k, v, T),
                what=f"{kind.__name__}({C}, {H}) with cache=LayerCache() on x ({B}, {T}, {C}) "
                     f"fed {chunks} tokens at a time ({label})",
                parts=("output", "cached keys", "cached values", "length"),
                **oracles.tol(dtype))
