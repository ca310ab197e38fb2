"""The second catalogue (`SLIPS`): wrong versions of the attention parts written as a learner
would write them."""

from __future__ import annotations

from course.checks.attention.mistakes import T
from course.checks.core import Slip

# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("scores_unscaled_matmul", T + "attention_scores", """
def attention_scores(q, k):
    return torch.matmul(q, k.transpose(-1, -2))
""", "no_scaling"),
    Slip("scores_over_d", T + "attention_scores", """
def attention_scores(q, k):
    d_k = q.shape[-1]
    return q @ k.transpose(-2, -1) / d_k
""", "scale_by_d_k"),
    Slip("scores_k_dot_T", T + "attention_scores", """
def attention_scores(q, k):
    return q @ k.T / math.sqrt(q.size(-1))
""", None),
    Slip("softmax_dim_1", T + "masked_softmax", """
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    weights = F.softmax(scores, dim=1)
    return weights if mask is None else weights * mask
""", "softmax_wrong_axis"),
    Slip("softmax_minus_inf", T + "masked_softmax", """
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), float("-inf"))
    return scores.softmax(-1)
""", "neg_inf_nan"),
    Slip("softmax_then_mask", T + "masked_softmax", """
def masked_softmax(scores, mask=None):
    weights = torch.exp(scores - scores.amax(-1, keepdim=True))
    weights = weights / weights.sum(-1, keepdim=True)
    if mask is not None:
        weights = weights * mask
    return weights
""", "mask_after_softmax"),
    Slip("softmax_fill_where_true", T + "masked_softmax", """
def masked_softmax(scores, mask=None):
    if mask is None:
        return scores.softmax(dim=-1)
    filled = torch.where(mask, torch.full_like(scores, -1e9), scores)
    return filled.softmax(dim=-1) * ~mask
""", "mask_inverted"),
    Slip("softmax_uniform_padding_rows", T + "masked_softmax", """
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    return torch.softmax(scores, dim=-1)
""", "fully_masked_row_uniform"),
    Slip("attention_sums_keys", T + "scaled_dot_product_attention", """
def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    weights = masked_softmax(attention_scores(q, k), mask)
    if dropout_p:
        weights = F.dropout(weights, dropout_p)
    return torch.matmul(weights, k), weights
""", "weights_times_keys"),
    Slip("attention_no_dropout", T + "scaled_dot_product_attention", """
def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    weights = masked_softmax(attention_scores(q, k), mask)
    return weights @ v, weights
""", "dropout_ignored"),
    Slip("split_one_reshape", T + "split_heads", """
def split_heads(x, n_heads):
    B, T, C = x.shape
    return x.reshape(B, n_heads, T, C // n_heads)
""", "split_without_transpose"),
    Slip("merge_view_after_permute", T + "merge_heads", """
def merge_heads(x):
    B, H, T, D = x.shape
    return x.permute(0, 2, 1, 3).view(B, T, H * D)
""", None),
    Slip("mha_no_out", T + "MultiHeadAttention.attend", """
def attend(self, q, k, v, mask=None, causal=False, need_weights=False):
    if causal:
        c = causal_mask(q.size(-2), q.device, past=k.size(-2) - q.size(-2))
        mask = c if mask is None else mask & c
    p = self.dropout if self.training else 0.0
    if need_weights:
        y, w = scaled_dot_product_attention(q, k, v, mask, p)
        return merge_heads(y), w
    return merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)), None
""", "no_output_projection"),
    Slip("mha_self_only", T + "MultiHeadAttention.project", """
def project(self, x, context=None):
    q = split_heads(self.query(x), self.n_heads)
    k = split_heads(self.key(x), self.n_heads)
    v = split_heads(self.value(x), self.n_heads)
    return q, k, v
""", "context_ignored"),
    Slip("mha_dropout_always", T + "MultiHeadAttention.attend", """
def attend(self, q, k, v, mask=None, causal=False, need_weights=False):
    if causal:
        later = causal_mask(q.size(-2), q.device, past=k.size(-2) - q.size(-2))
        mask = later if mask is None else mask & later
    if need_weights:
        y, w = scaled_dot_product_attention(q, k, v, mask, self.dropout)
    else:
        y, w = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                              dropout_p=self.dropout), None
    return self.out(merge_heads(y)), w
""", "dropout_at_eval"),
    Slip("mha_causal_drops_padding", T + "MultiHeadAttention.attend", """
def attend(self, q, k, v, mask=None, causal=False, need_weights=False):
    if causal:
        mask = causal_mask(q.size(-2), q.device, past=k.size(-2) - q.size(-2))
    p = self.dropout if self.training else 0.0
    if need_weights:
        y, w = scaled_dot_product_attention(q, k, v, mask, p)
    else:
        y, w = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p), None
    return self.out(merge_heads(y)), w
""", "causal_replaces_mask"),
    Slip("mha_fused_mask_inverted", T + "MultiHeadAttention.attend", """
def attend(self, q, k, v, mask=None, causal=False, need_weights=False):
    if causal:
        c = causal_mask(q.size(-2), q.device, past=k.size(-2) - q.size(-2))
        mask = c if mask is None else mask & c
    p = self.dropout if self.training else 0.0
    if need_weights:
        y, w = scaled_dot_product_attention(q, k, v, mask, p)
    else:  # PyTorch's masks are True where attention is NOT allowed (a wrong belief)
        y, w = F.scaled_dot_product_attention(
            q, k, v, attn_mask=None if mask is None else ~mask, dropout_p=p), None
    return self.out(merge_heads(y)), w
""", None),
    Slip("runs_next_sees_future", T + "train_copy_tasks", """
def train_copy_tasks(attention_cls, train, steps=100):
    previous = train(attention_cls, offset=-1, steps=steps)
    following = train(attention_cls, offset=1, causal=False, steps=steps)
    peeking = train(attention_cls, offset=1, causal=False, steps=steps)
    return {"previous token": previous, "next token": following,
            "next token, no mask": peeking}
""", "next_unmasked"),
    Slip("runs_default_steps", T + "train_copy_tasks", """
def train_copy_tasks(attention_cls, train, steps=100):
    runs = {}
    for name, offset, causal in [("previous token", -1, True), ("next token", 1, True),
                                 ("next token, no mask", 1, False)]:
        runs[name] = train(attention_cls, offset=offset, causal=causal)
    return runs
""", "steps_split"),
    Slip("runs_notebook_class", T + "train_copy_tasks", """
def train_copy_tasks(attention_cls, train, steps=100):
    names = ["previous token", "next token", "next token, no mask"]
    settings = [dict(offset=-1), dict(offset=1), dict(offset=1, causal=False)]
    return {n: train(MultiHeadAttention, steps=steps, **kw) for n, kw in zip(names, settings)}
""", "global_class"),
    Slip("runs_all_forward", T + "train_copy_tasks", """
def train_copy_tasks(attention_cls, train, steps=100):
    out = {}
    out["previous token"] = train(attention_cls, offset=+1, causal=True, steps=steps)
    out["next token"] = train(attention_cls, offset=+1, causal=True, steps=steps)
    out["next token, no mask"] = train(attention_cls, offset=+1, causal=False, steps=steps)
    return out
""", "previous_offset"),
    Slip("runs_accuracies_only", T + "train_copy_tasks", """
def train_copy_tasks(attention_cls, train, steps=100):
    tasks = {"previous token": (-1, True), "next token": (1, True),
             "next token, no mask": (1, False)}
    return {name: train(attention_cls, offset=o, causal=c, steps=steps).accuracy
            for name, (o, c) in tasks.items()}
""", None),
]
