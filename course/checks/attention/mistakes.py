"""The catalogue of known attention mistakes (`MISTAKES`), with the dotted prefixes of the
targets they and the checks name."""

from __future__ import annotations

from course.checks.core import Mistake

T = "solutions.attention."

MISTAKES = [
    # Part 1: attention_scores
    Mistake("no_scaling", T + "attention_scores", " / math.sqrt(q.size(-1))", "",
            "the scores are not divided by sqrt(d_k): scale q @ k^T by 1 / sqrt(q.size(-1))"),
    Mistake("scale_by_d_k", T + "attention_scores", "math.sqrt(q.size(-1))", "q.size(-1)",
            "the scores are divided by d_k instead of sqrt(d_k)"),
    Mistake("scale_by_length", T + "attention_scores", "math.sqrt(q.size(-1))",
            "math.sqrt(k.size(-2))",
            "the scores are scaled by the square root of the sequence length; scale by "
            "sqrt(d_k), the size of each query/key vector (the last axis)"),
    # Part 2: masked_softmax
    Mistake("mask_after_softmax", T + "masked_softmax",
            "scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)", "pass",
            "the mask is applied after the softmax, so the remaining weights no longer sum to 1: "
            "fill masked scores with a very negative number BEFORE the softmax"),
    Mistake("mask_inverted", T + "masked_softmax", "masked_fill(~mask,", "masked_fill(mask,",
            "the mask is inverted: True means 'may attend' (like the tokenizer's attention_mask, "
            "1 = real token), so fill the positions where the mask is False"),
    Mistake("softmax_wrong_axis", T + "masked_softmax", "torch.softmax(scores, dim=-1)",
            "torch.softmax(scores, dim=-2)",
            "the softmax runs over the queries (dim=-2); each query's weights over the keys "
            "must sum to 1, so use dim=-1"),
    Mistake("neg_inf_nan", T + "masked_softmax", "torch.finfo(scores.dtype).min", 'float("-inf")',
            "a fully masked row gives NaN: softmax of a row of -inf is 0/0. Fill with "
            "torch.finfo(scores.dtype).min (finite) and set such rows to zero"),
    Mistake("fully_masked_row_uniform", T + "masked_softmax", "weights = weights * mask",
            "weights = weights",
            "a fully masked row spreads its weight uniformly over the masked keys: a query "
            "with nothing to attend to must get all-zero weights (multiply by the mask)"),
    # Part 3: scaled_dot_product_attention
    Mistake("weights_times_keys", T + "scaled_dot_product_attention", "return weights @ v,",
            "return weights @ k,",
            "the attention weights multiply the keys; the output is the weighted sum of the VALUES"),
    Mistake("returns_scores", T + "scaled_dot_product_attention", "weights @ v, weights",
            "weights @ v, scores",
            "the second result is the raw scores; return the attention weights (after the "
            "masked softmax)"),
    Mistake("dropout_ignored", T + "scaled_dot_product_attention", "if dropout_p > 0.0:",
            "if False:",
            "dropout_p is ignored: when dropout_p > 0 apply F.dropout(weights, p=dropout_p) "
            "to the attention weights"),
    # Part 4: split_heads / merge_heads
    Mistake("split_without_transpose", T + "split_heads",
            "x.view(B, T, n_heads, C // n_heads).transpose(1, 2)",
            "x.view(B, n_heads, T, C // n_heads)",
            "split_heads reshapes (B, T, C) straight to (B, H, T, D), which mixes tokens "
            "between heads: view as (B, T, H, D) first, then transpose(1, 2)"),
    Mistake("merge_without_transpose", T + "merge_heads", "x.transpose(1, 2).reshape(B, T, H * D)",
            "x.reshape(B, T, H * D)",
            "merge_heads reshapes (B, H, T, D) straight to (B, T, C), which mixes tokens "
            "between heads: transpose(1, 2) to (B, T, H, D) first, then reshape"),
    # Part 5: MultiHeadAttention.project and .attend
    Mistake("shared_projections", T + "MultiHeadAttention", "k = split_heads(self.key(context)",
            "k = split_heads(self.query(context)",
            "the keys are made with the query projection: queries, keys and values each need "
            "their own projection (self.query, self.key, self.value)"),
    Mistake("no_output_projection", T + "MultiHeadAttention", "return self.out(merge_heads(y)),",
            "return merge_heads(y),",
            "the output projection is missing: after merging the heads apply self.out"),
    Mistake("dropout_at_eval", T + "MultiHeadAttention",
            "dropout_p = self.dropout if self.training else 0.0", "dropout_p = self.dropout",
            "dropout is still applied in eval mode: use self.dropout only when self.training "
            "is True, else 0.0"),
    Mistake("context_ignored", T + "MultiHeadAttention",
            "context = x if context is None else context", "context = x",
            "keys and values come from x even when a context is given: in cross-attention "
            "they are projected from `context` (x only when context is None)"),
    Mistake("fused_path_unmasked", T + "MultiHeadAttention", "attn_mask=mask,", "attn_mask=None,",
            "the fused path (need_weights=False) ignores the mask: pass attn_mask=mask to "
            "F.scaled_dot_product_attention, so that both paths agree"),
    Mistake("causal_ignored", T + "MultiHeadAttention", "if causal:", "if False:",
            "causal=True is ignored: each query must also be kept from the keys after its own "
            "position (combine the mask with causal_mask)"),
    Mistake("causal_replaces_mask", T + "MultiHeadAttention",
            "mask = visible if mask is None else mask & visible", "mask = visible",
            "with causal=True the given mask (padding) is dropped: combine both, mask & causal"),
    Mistake("causal_off_by_one", T + "MultiHeadAttention",
            "visible = causal_mask(q.size(-2), q.device, past=k.size(-2) - q.size(-2))",
            "visible = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, "
            "device=q.device).tril(k.size(-2) - q.size(-2) - 1)[None, None]",
            "the causal mask is off by one (tril(-1)): it also hides each query's own "
            "position, and the first query then sees nothing; query i sees keys 0..i, tril(0)"),
    Mistake("mask_or_causal", T + "MultiHeadAttention",
            "mask = visible if mask is None else mask & visible",
            "mask = visible if mask is None else mask | visible",
            "the padding mask and the causal mask are combined with | (either allows): a key "
            "is visible only when both allow it, mask & causal"),
    # Part 6: train_copy_tasks
    Mistake("previous_offset", T + "train_copy_tasks", '"previous token": (-1, True)',
            '"previous token": (1, True)',
            "the 'previous token' run learns another task: the previous token is offset=-1 "
            "(offset=+1 is the next token)"),
    Mistake("next_is_previous", T + "train_copy_tasks", '"next token": (1, True)',
            '"next token": (-1, True)',
            "the 'next token' run learns the previous token (offset=-1): the next token is "
            "offset=+1"),
    Mistake("next_unmasked", T + "train_copy_tasks", '"next token": (1, True)',
            '"next token": (1, False)',
            "the 'next token' run trains without the causal mask, so it learns to read the "
            "answer from the future: keep causal=True"),
    Mistake("no_mask_kept", T + "train_copy_tasks", '"next token, no mask": (1, False)',
            '"next token, no mask": (1, True)',
            "the 'next token, no mask' run keeps the causal mask: pass causal=False"),
    Mistake("steps_split", T + "train_copy_tasks", "steps=steps)", "steps=steps // 3)",
            "a run does not train `steps` steps: pass steps=steps to every call of train"),
    Mistake("global_class", T + "train_copy_tasks", "{name: train(attention_cls,",
            "{name: train(MultiHeadAttention,",
            "a run trains the notebook's MultiHeadAttention instead of the class it is given: "
            "pass attention_cls to train"),
]
