"""Parts 4 and 5: `repeat_kv` and `GroupedQueryAttention`, checked against ``LlamaAttention``
with a ``DynamicCache``."""

from __future__ import annotations

from functools import cache

import torch
from torch import nn

from course.checks import oracles
from course.checks.core import check, compare
from course.checks.modern.mistakes import T
from course.checks.modern.shared import _hf, _llama_config, _ours

# ---------------------------------------------------------------- Part 4: repeat_kv


@check(T + "repeat_kv", part=4)
def check_repeat_kv(repeat_kv, hidden: bool = False) -> None:
    """Equals Hugging Face's repeat_kv: (B, H_kv, T, D) -> (B, H_kv * n_rep, T, D)."""
    cases = [((2, 2, 5, 4), 3), ((1, 3, 4, 2), 2)]
    if hidden:
        cases += [((2, 2, 3, 4), 1), ((2, 1, 3, 4), 4), ((3, 4, 1, 8), 2), ((1, 8, 6, 16), 2)]
    for i, (shape, n_rep) in enumerate(cases):
        dtype = torch.float64 if i % 2 else torch.float32
        x = oracles.randn(*shape, seed=90 + i, dtype=dtype)
        compare(repeat_kv, lambda f, x=x, n=n_rep: f(x.clone(), n), _hf().repeat_kv(x, n_rep),
                what=f"repeat_kv(x {shape}, n_rep={n_rep}), {dtype}", **oracles.tol(dtype))


# ---------------------------------------------------------------- Part 5: GroupedQueryAttention


def _gqa_cases(hidden: bool) -> list[dict]:
    cases = [dict(d=32, H=4, H_kv=2, D=8, theta=10000.0, B=2, T=7, chunks=[3, 1, 1, 1, 1]),
             dict(d=24, H=6, H_kv=3, D=4, theta=500000.0, B=1, T=5, chunks=[1, 1, 1, 1, 1])]
    if hidden:
        cases += [dict(d=16, H=4, H_kv=1, D=4, theta=10000.0, B=2, T=6, chunks=[2, 3, 1]),
                  dict(d=16, H=2, H_kv=2, D=8, theta=10000.0, B=1, T=9, chunks=[4, 1, 1, 1, 2]),
                  dict(d=16, H=4, H_kv=2, D=8, theta=1e6, B=3, T=8, chunks=[5, 1, 1, 1])]
    return cases


def _describe(case: dict) -> str:
    return (f"GroupedQueryAttention({case['d']}, n_heads={case['H']}, "
            f"n_kv_heads={case['H_kv']}, head_dim={case['D']}, rotary theta "
            f"{case['theta']:g}) on x ({case['B']}, {case['T']}, {case['d']})")


def _hf_attention(case: dict, seed: int):
    """Hugging Face's LlamaAttention over the whole sequence, causal: (module's weights under
    our names, x, output (B, T, C), cached keys and values (B, H_kv, T, D))."""
    return _hf_attention_of(tuple(sorted((k, v) for k, v in case.items() if k != "chunks")),
                            seed)


@cache
def _hf_attention_of(sizes: tuple, seed: int):
    from transformers import DynamicCache

    case = dict(sizes)
    config = _llama_config(case["d"], case["H"], case["H_kv"], case["D"], case["theta"])
    torch.manual_seed(seed)
    attention = _hf().LlamaAttention(config, layer_idx=0).eval()
    x = oracles.randn(case["B"], case["T"], case["d"], seed=seed + 1)
    cos, sin = _hf().LlamaRotaryEmbedding(config)(x, torch.arange(case["T"])[None])
    mask = torch.full((case["T"], case["T"]), float("-inf")).triu(1)[None, None]
    kv = DynamicCache()
    with torch.no_grad():
        out, _ = attention(x, (cos, sin), mask, past_key_values=kv)
    return _ours(attention.state_dict()), x, out, kv.layers[0].keys, kv.layers[0].values


def _built(cls, case: dict, state: dict) -> nn.Module:
    from solutions.modern import RotaryEmbedding

    rotary = RotaryEmbedding(case["D"], 64, case["theta"])
    module = cls(case["d"], case["H"], case["H_kv"], head_dim=case["D"], rotary=rotary)
    module.load_state_dict(state)
    return module.eval()


@check(T + "GroupedQueryAttention", part=5, uses=(T + "repeat_kv",))
def check_gqa(GroupedQueryAttention, hidden: bool = False) -> None:
    """Causal self-attention over a whole sequence equals Hugging Face's LlamaAttention's (same
    weights, rotary positions)."""
    for i, case in enumerate(_gqa_cases(hidden)):
        state, x, out, _, _ = _hf_attention(case, seed=100 + 10 * i)

        def probe(cls, case=case, state=state, x=x):
            with torch.no_grad():
                return _built(cls, case, state)(x.clone(), causal=True)[0]

        compare(GroupedQueryAttention, probe, out, what=f"{_describe(case)}, causal=True",
                **oracles.tol(torch.float32))


@check(T + "GroupedQueryAttention", part=5, uses=(T + "repeat_kv",))
def check_gqa_cached(GroupedQueryAttention, hidden: bool = False) -> None:
    """Fed a few tokens at a time with cache=LayerCache(): the outputs equal LlamaAttention's
    over the whole sequence, and the cache holds what its DynamicCache holds: the n_kv_heads
    rotated key heads and the value heads, nothing repeated."""
    for i, case in enumerate(_gqa_cases(hidden)):
        state, x, out, keys, values = _hf_attention(case, seed=100 + 10 * i)

        def probe(cls, case=case, state=state, x=x):
            from solutions.decoder import LayerCache

            module, kv, pieces, at = _built(cls, case, state), LayerCache(), [], 0
            with torch.no_grad():
                for n in case["chunks"]:
                    pieces.append(module(x[:, at:at + n].clone(), causal=True, cache=kv)[0])
                    at += n
            return torch.cat(pieces, dim=1), kv.k, kv.v

        compare(GroupedQueryAttention, probe, (out, keys, values),
                parts=("output", "cached keys", "cached values"),
                what=f"{_describe(case)} fed {case['chunks']} tokens at a time with "
                     "cache=LayerCache(), causal=True", **oracles.tol(torch.float32))
