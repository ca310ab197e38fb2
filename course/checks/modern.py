"""Checks for Exercise 12 (today's decoders: rotary positions, SwiGLU, grouped-query attention)
and the catalogue of their mistakes.

Oracles are Hugging Face's Llama code with random weights (no download):
``LlamaRotaryEmbedding`` (the cos and sin tables), ``rotate_half`` and ``apply_rotary_pos_emb``
(the rotation), ``LlamaMLP`` (SwiGLU, weights copied), ``repeat_kv`` and ``LlamaAttention`` with a
``DynamicCache`` (grouped-query attention: outputs and the keys and values cached). The rotation
is also checked for the property it exists for: a score depends only on how far apart a query
and a key are. ``hidden=True`` adds other head sizes, thetas, offsets, float64, multi-query and
multi-head configurations and a batch of one. `SLIPS` is a second catalogue: wrong versions
written as a learner would write them (not edits of the reference).
"""

from __future__ import annotations

from functools import cache

import torch
from torch import nn

from course.checks import oracles
from course.checks.core import Mistake, Slip, check, compare
from course.checks.feedforward import check_output_dropout

T = "solutions.modern."
ROTATE = "q, k = self.rotary(q, start), self.rotary(k, start)"
REPEAT = "k, v = repeat_kv(k, self.n_rep), repeat_kv(v, self.n_rep)"
UPDATE = "if cache is not None:\n            k, v = cache.update(k, v)"
ATTEND = "return self.attend(q, k, v, mask, causal, need_weights)"

MISTAKES = [
    # Part 1: rotary_tables
    Mistake("rotary_exponent_i_over_d", T + "rotary_tables",
            "torch.arange(0, head_dim, 2, dtype=torch.float32, device=device)",
            "torch.arange(head_dim // 2, dtype=torch.float32, device=device)",
            "the exponent is i / D; pair i turns at theta^(-2i/D), so the frequencies run "
            "from 1 down to about 1/theta: use torch.arange(0, D, 2) / D"),
    Mistake("theta_ignored", T + "rotary_tables", "inv_freq = theta **", "inv_freq = 10000.0 **",
            "the base is always 10000: use the theta passed in (Llama 3 uses 500000)"),
    Mistake("frequencies_grow", T + "rotary_tables", "theta ** -(", "theta ** (",
            "the exponent lost its minus sign: the frequencies theta^(-2i/D) fall from 1 for "
            "the first pair to about 1/theta for the last"),
    Mistake("angles_interleaved", T + "rotary_tables", "torch.cat([angles, angles], dim=-1)",
            "angles.repeat_interleave(2, dim=-1)",
            "the angles are laid out for interleaved pairs (0, 1), (2, 3), ...; here feature i "
            "turns with feature i + D/2, so the table repeats its D/2 angles as two halves: "
            "torch.cat([angles, angles], dim=-1)"),
    Mistake("cos_sin_swapped", T + "rotary_tables", "return angles.cos(), angles.sin()",
            "return angles.sin(), angles.cos()",
            "cos and sin are returned in the wrong order: (cos, sin)"),
    # Part 2: rotate_half, apply_rotary
    Mistake("rotate_half_sign", T + "rotate_half", "torch.cat([-b, a], dim=-1)",
            "torch.cat([b, -a], dim=-1)",
            "the minus sign is on the wrong half, so every pair turns backwards: the halves "
            "(a, b) become (-b, a)"),
    Mistake("rotate_half_no_sign", T + "rotate_half", "torch.cat([-b, a], dim=-1)",
            "torch.cat([b, a], dim=-1)",
            "the halves are swapped without a sign change, which is a reflection, not a "
            "quarter turn: (a, b) becomes (-b, a)"),
    Mistake("rotate_half_interleaved", T + "rotate_half", "a, b = x.chunk(2, dim=-1)",
            "a, b = x[..., 0::2], x[..., 1::2]",
            "the pairs are taken as neighbours (0, 1), (2, 3), ...; Llama pairs feature i with "
            "feature i + D/2: split the last axis into its two halves (x.chunk(2, dim=-1))"),
    Mistake("apply_cos_sin_swapped", T + "apply_rotary",
            "x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)",
            "x * sin.to(x.dtype) + rotate_half(x) * cos.to(x.dtype)",
            "cos and sin are swapped: the rotated vector is x * cos + rotate_half(x) * sin"),
    Mistake("apply_minus_sin", T + "apply_rotary",
            "x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)",
            "x * cos.to(x.dtype) - rotate_half(x) * sin.to(x.dtype)",
            "the sine term is subtracted, so every pair turns backwards (by minus its angle): "
            "x * cos + rotate_half(x) * sin"),
    Mistake("apply_no_rotate_half", T + "apply_rotary",
            "x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)",
            "x * cos.to(x.dtype) + x * sin.to(x.dtype)",
            "the sine multiplies x itself, which only rescales it: it multiplies the quarter "
            "turn rotate_half(x), so each pair turns: x * cos + rotate_half(x) * sin"),
    # Part 3: SwiGLU.forward
    Mistake("silu_on_up", T + "SwiGLU", "F.silu(self.gate(x)) * self.up(x)",
            "self.gate(x) * F.silu(self.up(x))",
            "SiLU is on the wrong branch: it acts on gate(x), and up(x) is what it lets "
            "through: silu(gate(x)) * up(x)"),
    Mistake("sigmoid_not_silu", T + "SwiGLU", "F.silu(self.gate(x))",
            "torch.sigmoid(self.gate(x))",
            "the gate goes through a sigmoid; SwiGLU uses SiLU, z * sigmoid(z) (F.silu)"),
    Mistake("no_gate", T + "SwiGLU", "F.silu(self.gate(x)) * self.up(x)", "F.silu(self.up(x))",
            "there is no gate: SwiGLU multiplies silu(gate(x)) by up(x), feature by feature"),
    Mistake("swiglu_no_dropout", T + "SwiGLU",
            "F.dropout(self.down(h), p=self.dropout, training=self.training)", "self.down(h)",
            "dropout is missing: while training, apply dropout (p = self.dropout) to the "
            "output of down"),
    Mistake("swiglu_dropout_at_eval", T + "SwiGLU",
            "F.dropout(self.down(h), p=self.dropout, training=self.training)",
            "F.dropout(self.down(h), p=self.dropout)",
            "dropout is applied in eval mode too: F.dropout(y, p, training=self.training) "
            "(F.dropout's training flag defaults to True)"),
    # Part 4: repeat_kv
    Mistake("repeat_tiled", T + "repeat_kv", "x.repeat_interleave(n_rep, dim=1)",
            "x.repeat(1, n_rep, 1, 1)",
            "the key/value heads are tiled (0, 1, 0, 1, ...), so query heads read the wrong "
            "group: each head is repeated n_rep times in a row (0, 0, 1, 1, ...), "
            "repeat_interleave(n_rep, dim=1)"),
    Mistake("repeat_time_axis", T + "repeat_kv", "x.repeat_interleave(n_rep, dim=1)",
            "x.repeat_interleave(n_rep, dim=2)",
            "the positions are repeated (axis 2) instead of the heads: x is (B, H_kv, T, D), "
            "repeat along dim=1"),
    # Part 5: GroupedQueryAttention.forward
    Mistake("rotate_values", T + "GroupedQueryAttention", ROTATE,
            "q, k, v = self.rotary(q, start), self.rotary(k, start), self.rotary(v, start)",
            "the values are rotated too: positions act on the scores only, so rotate the "
            "queries and the keys and leave the values as they are"),
    Mistake("rotate_queries_only", T + "GroupedQueryAttention", ROTATE,
            "q = self.rotary(q, start)",
            "only the queries are rotated: the score depends on the distance only when the "
            "keys turn too, by their own positions"),
    Mistake("positions_not_offset", T + "GroupedQueryAttention",
            "start = 0 if cache is None else cache.length", "start = 0",
            "with a cache, the new tokens are rotated as positions 0, 1, ...: their positions "
            "start after the cached ones, at cache.length"),
    Mistake("repeat_before_cache", T + "GroupedQueryAttention", UPDATE + "\n        " + REPEAT,
            REPEAT + "\n        " + UPDATE,
            "the keys and values are repeated before they are cached, so the cache holds "
            "n_heads heads and saves nothing: cache the n_kv_heads heads, then repeat them"),
    Mistake("rotate_after_attention", T + "GroupedQueryAttention",
            ROTATE + "\n        " + UPDATE + "\n        " + REPEAT + "\n        " + ATTEND,
            "pass\n        " + UPDATE + "\n        " + REPEAT + "\n        y, weights = " + ATTEND[7:]
            + "\n        if self.rotary is not None:\n            heads = split_heads(y, "
            "self.n_heads)\n            y = self.rotary(heads, start).transpose(1, 2).flatten(2)"
            "\n        return y, weights",
            "the rotation comes after the dot product, on attention's output: positions "
            "turn the queries and the keys before q . k, so that every score sees how far "
            "apart its query and key are"),
    Mistake("rotate_after_cache", T + "GroupedQueryAttention",
            ROTATE + "\n        " + UPDATE,
            "q = self.rotary(q, start)\n        " + UPDATE
            + "\n        k = self.rotary(k, start)",
            "the keys are rotated after the cache: the cached keys are turned again, by the new "
            "tokens' positions; rotate the new keys first, then cache them"),
]


# ---------------------------------------------------------------- shared oracles


def _llama_config(d_model: int, n_heads: int, n_kv_heads: int, head_dim: int, theta: float,
                  d_ff: int = 8, bias: bool = False):
    import transformers

    transformers.logging.set_verbosity_error()
    config = transformers.LlamaConfig(
        vocab_size=8, hidden_size=d_model, intermediate_size=d_ff, num_hidden_layers=1,
        num_attention_heads=n_heads, num_key_value_heads=n_kv_heads, head_dim=head_dim,
        max_position_embeddings=256, rope_theta=theta, mlp_bias=bias)
    config._attn_implementation = "eager"
    return config


def _hf():
    from transformers.models.llama import modeling_llama

    return modeling_llama


@cache
def _hf_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Hugging Face's cos and sin of positions 0 .. max_len - 1, each (max_len, head_dim)."""
    rotary = _hf().LlamaRotaryEmbedding(_llama_config(head_dim, 1, 1, head_dim, theta))
    x = torch.zeros(1, max_len, head_dim)
    cos, sin = rotary(x, torch.arange(max_len)[None])
    return cos[0], sin[0]


def _hf_rotated(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, D) rotated by Hugging Face's apply_rotary_pos_emb with cos, sin (T, D)."""
    rotated, _ = _hf().apply_rotary_pos_emb(x, x, cos[None].to(x.dtype), sin[None].to(x.dtype))
    return rotated.reshape(x.shape)


# ---------------------------------------------------------------- Part 1: rotary_tables


@check(T + "rotary_tables", part=1)
def check_rotary_tables(rotary_tables, hidden: bool = False) -> None:
    """cos and sin (max_len, head_dim) equal Hugging Face's LlamaRotaryEmbedding's."""
    cases = [(8, 12, 10000.0), (16, 20, 500000.0)]
    if hidden:
        cases += [(2, 3, 10000.0), (4, 40, 10.0), (64, 33, 1e6), (128, 9, 10000.0)]
    for D, T, theta in cases:
        compare(rotary_tables, lambda f, D=D, T=T, theta=theta: f(D, T, theta),
                _hf_tables(D, T, theta), parts=("cos", "sin"),
                what=f"rotary_tables(head_dim={D}, max_len={T}, theta={theta:g})",
                **oracles.tol(torch.float32))
    D, T = (6, 10) if hidden else (8, 5)
    compare(rotary_tables, lambda f: f(D, T), _hf_tables(D, T, 10000.0), parts=("cos", "sin"),
            what=f"rotary_tables(head_dim={D}, max_len={T}) with the default theta",
            **oracles.tol(torch.float32))


# ---------------------------------------------------------------- Part 2: the rotation


@check(T + "rotate_half", part=2)
def check_rotate_half(rotate_half, hidden: bool = False) -> None:
    """Equals Hugging Face's rotate_half: the halves (a, b) become (-b, a)."""
    shapes = [(2, 3, 5, 8), (4,)]
    if hidden:
        shapes += [(1, 1, 1, 2), (2, 2, 3, 64), (3, 16)]
    for i, shape in enumerate(shapes):
        dtype = torch.float64 if i % 2 else torch.float32
        x = oracles.randn(*shape, seed=10 + i, dtype=dtype)
        compare(rotate_half, lambda f, x=x: f(x.clone()), _hf().rotate_half(x),
                what=f"rotate_half(x {shape}), {dtype}", **oracles.tol(dtype))


def _rotary_cases(hidden: bool) -> list[tuple]:
    """(label, x shape (B, H, T, D), first position, theta, dtype)."""
    f32, f64 = torch.float32, torch.float64
    cases = [("positions 0 ..", (2, 4, 6, 8), 0, 10000.0, f32),
             ("positions from 5 (a cache of 5)", (1, 2, 3, 16), 5, 10000.0, f32)]
    if hidden:
        cases += [("float64, theta 500000", (2, 3, 7, 32), 2, 500000.0, f64),
                  ("one position far in", (1, 1, 1, 4), 57, 10000.0, f32),
                  ("head size 2", (3, 2, 5, 2), 0, 10.0, f64),
                  ("(T, D) without batch and heads", (9, 64), 11, 1e6, f32)]
    return cases


@check(T + "apply_rotary", part=2, uses=(T + "rotate_half",))
def check_apply_rotary(apply_rotary, hidden: bool = False) -> None:
    """x rotated with the given tables equals Hugging Face's apply_rotary_pos_emb."""
    for i, (label, shape, start, theta, dtype) in enumerate(_rotary_cases(hidden)):
        T, D = shape[-2:]
        cos, sin = (t[start:start + T].to(dtype) for t in _hf_tables(D, start + T, theta))
        x = oracles.randn(*shape, seed=20 + i, dtype=dtype)
        compare(apply_rotary, lambda f, x=x, c=cos, s=sin: f(x.clone(), c.clone(), s.clone()),
                _hf_rotated(x, cos, sin),
                what=f"apply_rotary(x {shape}, cos, sin) at positions {start}..{start + T - 1}, "
                     f"theta {theta:g}, {dtype} ({label})", **oracles.tol(dtype))


def _closed_form_tables(head_dim: int, max_len: int, theta: float):
    """cos and sin (max_len, head_dim) of p * theta^(-2i/D), from Python floats in float64."""
    angles = [[p * theta ** (-2 * (j % (head_dim // 2)) / head_dim) for j in range(head_dim)]
              for p in range(max_len)]
    angles = torch.tensor(angles, dtype=torch.float64)
    return angles.cos(), angles.sin()


@check(T + "apply_rotary", part=2, uses=(T + "rotate_half",))
def check_rotary_distance(apply_rotary, hidden: bool = False) -> None:
    """Queries and keys rotated at positions shift, ..., shift + T - 1 give the scores they
    give at 0, ..., T - 1 (float64 tables): a score depends on the distance only."""
    cases = [(6, 8, 7, 10000.0)] + ([(4, 16, 30, 500000.0), (9, 4, 1, 10.0)] if hidden else [])
    for i, (T, D, shift, theta) in enumerate(cases):
        q = oracles.randn(1, 2, T, D, seed=30 + i, dtype=torch.float64)
        k = oracles.randn(1, 2, T, D, seed=40 + i, dtype=torch.float64)
        cos, sin = _closed_form_tables(D, shift + T, theta)

        def probe(f, q=q, k=k, cos=cos, sin=sin, shift=shift, T=T):
            def scores(at: int) -> torch.Tensor:
                c, s = cos[at:at + T].clone(), sin[at:at + T].clone()
                return f(q.clone(), c, s) @ f(k.clone(), c, s).mT   # (1, 2, T, T)
            return scores(shift) - scores(0)

        compare(apply_rotary, probe, torch.zeros(1, 2, T, T, dtype=torch.float64),
                what=f"scores q_m . k_n (2 heads, D={D}, theta {theta:g}) at positions "
                     f"{shift}..{shift + T - 1} minus those at 0..{T - 1}: a score depends "
                     "only on m - n, so the difference is 0", **oracles.tol(torch.float64))


# ---------------------------------------------------------------- Part 3: SwiGLU


def _hf_mlp(d_model: int, d_ff: int, bias: bool, dtype: torch.dtype, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    mlp = _hf().LlamaMLP(_llama_config(d_model, 1, 1, d_model, 10000.0, d_ff, bias)).to(dtype)
    if bias:
        with torch.no_grad():
            for layer in (mlp.gate_proj, mlp.up_proj, mlp.down_proj):
                layer.bias.uniform_(-0.5, 0.5)
    return mlp.eval()


def _ours(state: dict) -> dict:
    """A LlamaMLP's or LlamaAttention's state_dict under our names."""
    names = {"gate_proj": "gate", "up_proj": "up", "down_proj": "down", "q_proj": "query",
             "k_proj": "key", "v_proj": "value", "o_proj": "out"}
    return {names[k.split(".")[0]] + "." + k.split(".", 1)[1]: v for k, v in state.items()}


def _run(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, gradient of sum(output * w) with respect to x) for fixed weights w."""
    x = x.clone().requires_grad_()
    y = module(x)
    w = torch.linspace(-1.0, 1.0, y.numel(), dtype=y.dtype).view_as(y)
    (grad,) = torch.autograd.grad((y * w).sum(), x)
    return y.detach(), grad


@check(T + "SwiGLU", part=3)
def check_swiglu(SwiGLU, hidden: bool = False) -> None:
    """In eval mode, output and input gradient equal Hugging Face's LlamaMLP's (same
    weights)."""
    f32, f64 = torch.float32, torch.float64
    cases = [(16, 40, False, (2, 5, 16), f32), (8, 24, True, (1, 3, 8), f32)]
    if hidden:
        cases += [(32, 86, False, (3, 4, 32), f64), (6, 16, True, (1, 1, 6), f64),
                  (12, 32, False, (5, 12), f32)]
    for i, (d, h, bias, shape, dtype) in enumerate(cases):
        hf = _hf_mlp(d, h, bias, dtype, seed=50 + i)
        x, state = oracles.randn(*shape, seed=60 + i, dtype=dtype, scale=2.0), _ours(
            hf.state_dict())

        def probe(cls, d=d, h=h, bias=bias, dtype=dtype, state=state, x=x):
            module = cls(d, h, bias=bias).to(dtype)
            module.load_state_dict(state)
            return _run(module.eval(), x)

        compare(SwiGLU, probe, _run(hf, x), parts=("output", "gradient of x"),
                what=f"SwiGLU({d}, {h}, bias={bias}).eval() on x {shape}, {dtype}",
                **oracles.tol(dtype))


@check(T + "SwiGLU", part=3)
def check_swiglu_dropout(SwiGLU, hidden: bool = False) -> None:
    """Dropout acts on the output, only while training: in eval mode the output is
    LlamaMLP's; in train mode about a fraction p is zero and the rest is scaled by 1/(1-p)."""
    cases = [(16, 40, 0.5, (4, 8, 16))] + ([(8, 24, 0.2, (2, 16, 8)), (32, 64, 0.7, (1, 4, 32))]
                                          if hidden else [])
    for i, (d, h, p, shape) in enumerate(cases):
        hf = _hf_mlp(d, h, False, torch.float32, seed=70 + i)
        x, state = oracles.randn(*shape, seed=80 + i), _ours(hf.state_dict())
        with torch.no_grad():
            clean = hf(x)

        def probe(cls, d=d, h=h, p=p, x=x, state=state, train=False):
            module = cls(d, h, dropout=p)
            module.load_state_dict(state)
            module.train(train)
            torch.manual_seed(1234)
            with torch.no_grad():
                return module(x.clone())

        check_output_dropout(SwiGLU, probe, clean, f"SwiGLU({d}, {h}, dropout={p})",
                             shape, p, "down")


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


# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("tables_pow_of_index", T + "rotary_tables", """
def rotary_tables(head_dim, max_len, theta=10000.0, device=None):
    i = torch.arange(head_dim // 2, device=device)
    freqs = 1.0 / theta ** (i / head_dim)
    ang = torch.arange(max_len, device=device)[:, None] * freqs[None, :]
    ang = torch.cat((ang, ang), -1)
    return torch.cos(ang), torch.sin(ang)
""", "rotary_exponent_i_over_d"),
    Slip("tables_paper_layout", T + "rotary_tables", """
def rotary_tables(head_dim, max_len, theta=10000.0, device=None):
    freqs = theta ** (-torch.arange(0, head_dim, 2, device=device).float() / head_dim)
    ang = torch.arange(max_len, device=device).float()[:, None] * freqs
    ang = torch.stack([ang, ang], dim=-1).flatten(-2)
    return ang.cos(), ang.sin()
""", "angles_interleaved"),
    Slip("tables_half_width", T + "rotary_tables", """
def rotary_tables(head_dim, max_len, theta=10000.0, device=None):
    freqs = theta ** (-torch.arange(0, head_dim, 2, device=device).float() / head_dim)
    ang = torch.outer(torch.arange(max_len, device=device).float(), freqs)
    return ang.cos(), ang.sin()
""", None),
    Slip("rotate_half_neighbours", T + "rotate_half", """
def rotate_half(x):
    even, odd = x[..., ::2], x[..., 1::2]
    return torch.cat((-odd, even), dim=-1)
""", "rotate_half_interleaved"),
    Slip("rotate_half_backwards", T + "rotate_half", """
def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((x[..., half:], -x[..., :half]), dim=-1)
""", "rotate_half_sign"),
    Slip("rotate_half_flip", T + "rotate_half", """
def rotate_half(x):
    return torch.flip(x, dims=[-1])
""", None),
    Slip("apply_multiplies_only", T + "apply_rotary", """
def apply_rotary(x, cos, sin):
    return x * (cos + sin)
""", "apply_no_rotate_half"),
    Slip("apply_minus_sin", T + "apply_rotary", """
def apply_rotary(x, cos, sin):
    return x * cos - rotate_half(x) * sin
""", "apply_minus_sin"),
    Slip("swiglu_gate_up_mixed", T + "SwiGLU.forward", """
def forward(self, x):
    hidden = F.silu(self.up(x)) * self.gate(x)
    return F.dropout(self.down(hidden), self.dropout, self.training)
""", "silu_on_up"),
    Slip("swiglu_sigmoid_gate", T + "SwiGLU.forward", """
def forward(self, x):
    g = torch.sigmoid(self.gate(x))
    return F.dropout(self.down(g * self.up(x)), self.dropout, self.training)
""", "sigmoid_not_silu"),
    Slip("swiglu_forgot_dropout", T + "SwiGLU.forward", """
def forward(self, x):
    return self.down(F.silu(self.gate(x)) * self.up(x))
""", "swiglu_no_dropout"),
    Slip("swiglu_gelu", T + "SwiGLU.forward", """
def forward(self, x):
    h = F.gelu(self.gate(x)) * self.up(x)
    return F.dropout(self.down(h), self.dropout, self.training)
""", None),
    Slip("repeat_kv_expand_wrong", T + "repeat_kv", """
def repeat_kv(x, n_rep):
    return torch.cat([x] * n_rep, dim=1)
""", "repeat_tiled"),
    Slip("repeat_kv_on_time", T + "repeat_kv", """
def repeat_kv(x, n_rep):
    B, H, T, D = x.shape
    return x[:, :, :, None, :].expand(B, H, T, n_rep, D).reshape(B, H, T * n_rep, D)
""", "repeat_time_axis"),
    Slip("gqa_rotates_everything", T + "GroupedQueryAttention.forward", """
def forward(self, x, context=None, mask=None, need_weights=False, *, causal=False, cache=None):
    if context is not None:
        raise ValueError("GroupedQueryAttention is self-attention: context must be None")
    self.check_inputs(x, None, mask)
    q, k, v = self.project(x)
    pos = cache.length if cache is not None else 0
    if self.rotary is not None:
        q, k, v = (self.rotary(t, pos) for t in (q, k, v))
    if cache is not None:
        k, v = cache.update(k, v)
    k, v = repeat_kv(k, self.n_rep), repeat_kv(v, self.n_rep)
    return self.attend(q, k, v, mask, causal, need_weights)
""", "rotate_values"),
    Slip("gqa_positions_from_zero", T + "GroupedQueryAttention.forward", """
def forward(self, x, context=None, mask=None, need_weights=False, *, causal=False, cache=None):
    if context is not None:
        raise ValueError("GroupedQueryAttention is self-attention: context must be None")
    self.check_inputs(x, None, mask)
    q, k, v = self.project(x)
    if self.rotary is not None:
        q, k = self.rotary(q), self.rotary(k)
    if cache is not None:
        k, v = cache.update(k, v)
    k = repeat_kv(k, self.n_rep)
    v = repeat_kv(v, self.n_rep)
    return self.attend(q, k, v, mask, causal, need_weights)
""", "positions_not_offset"),
    Slip("gqa_cache_full_heads", T + "GroupedQueryAttention.forward", """
def forward(self, x, context=None, mask=None, need_weights=False, *, causal=False, cache=None):
    if context is not None:
        raise ValueError("GroupedQueryAttention is self-attention: context must be None")
    self.check_inputs(x, None, mask)
    q, k, v = self.project(x)
    start = cache.length if cache else 0
    if self.rotary is not None:
        q = self.rotary(q, start)
        k = self.rotary(k, start)
    k = repeat_kv(k, self.n_rep)
    v = repeat_kv(v, self.n_rep)
    if cache is not None:
        k, v = cache.update(k, v)
    return self.attend(q, k, v, mask, causal, need_weights)
""", "repeat_before_cache"),
    Slip("gqa_repeat_heads_by_tiling", T + "GroupedQueryAttention.forward", """
def forward(self, x, context=None, mask=None, need_weights=False, *, causal=False, cache=None):
    if context is not None:
        raise ValueError("GroupedQueryAttention is self-attention: context must be None")
    self.check_inputs(x, None, mask)
    q, k, v = self.project(x)
    start = 0 if cache is None else cache.length
    if self.rotary is not None:
        q, k = self.rotary(q, start), self.rotary(k, start)
    if cache is not None:
        k, v = cache.update(k, v)
    k, v = k.repeat(1, self.n_rep, 1, 1), v.repeat(1, self.n_rep, 1, 1)
    return self.attend(q, k, v, mask, causal, need_weights)
""", "repeat_tiled"),
]
