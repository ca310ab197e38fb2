"""The catalogue of known modern-decoder mistakes (`MISTAKES`), with the dotted prefixes of the
targets they and the checks name."""

from __future__ import annotations

from course.checks.core import Mistake

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
