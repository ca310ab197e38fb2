"""The second catalogue (`SLIPS`): wrong versions of the modern-decoder parts written as a
learner would write them."""

from __future__ import annotations

from course.checks.core import Slip
from course.checks.modern.mistakes import T

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
