"""The catalogue of known residual mistakes (`MISTAKES`), with the dotted prefixes of the
targets they and the checks name."""

from __future__ import annotations

from course.checks.core import Mistake

M = "solutions.residual."

MISTAKES = [
    # Part 1: Residual
    Mistake("skip_missing", M + "Residual", "return x + self.dropout(out)",
            "return self.dropout(out)",
            "the skip is missing: a residual connection returns x + dropout(F(x)), not the "
            "branch F(x) alone"),
    Mistake("dropout_on_skip", M + "Residual", "return x + self.dropout(out)",
            "return self.dropout(x) + out",
            "dropout is applied to the skip path x instead of the branch: return "
            "x + dropout(F(x)), so that x itself always passes unchanged"),
    Mistake("dropout_on_sum", M + "Residual", "return x + self.dropout(out)",
            "return self.dropout(x + out)",
            "dropout is applied to the sum x + F(x), which also drops parts of x: apply it to "
            "the branch only, x + dropout(F(x))"),
    Mistake("sublayer_twice", M + "Residual", "out = sublayer(x)",
            "out = sublayer(sublayer(x))",
            "the sub-layer is applied twice (F(F(x))): call it once, on x"),
    Mistake("no_shape_check", M + "Residual",
            "if not isinstance(out, torch.Tensor) or out.shape != x.shape:", "if False:",
            "a sub-layer that changes the shape must be refused with a ValueError before the "
            "sum (x + F(x) would fail with a confusing error, or broadcast silently)"),
    Mistake("tuple_unpacked", M + "Residual", "out = sublayer(x)",
            "out = sublayer(x)\n        out = out[0] if isinstance(out, tuple) else out",
            "a sub-layer that returns a tuple (attention's (output, weights)) is unpacked "
            "quietly: Residual takes a callable that returns a tensor shaped like x, so "
            "anything else must raise a ValueError (the caller picks the output, "
            "lambda h: attn(h)[0])"),
    # Part 2: Block.forward
    Mistake("norms_swapped", M + "Block", "if self.norm_first:", "if not self.norm_first:",
            "pre-LN and post-LN are swapped: norm_first=True (pre-LN) normalises the input of "
            "each branch, x + attn(ln_1(x)); norm_first=False (post-LN) normalises the sum"),
    Mistake("pre_ln_add_after_norm", M + "Block",
            "x = self.res_attn(x, lambda h: self.attn(self.ln_1(h), **kw)[0])",
            "x = self.ln_1(x)\n            x = self.res_attn(x, lambda h: self.attn(h, **kw)[0])",
            "the residual is added after the norm in a pre-LN block (ln_1(x) + attn(ln_1(x))): "
            "the skip must carry x itself, res_attn(x, lambda h: attn(ln_1(h))[0])"),
    Mistake("skip_added_twice", M + "Block",
            "x = self.res_attn(x, lambda h: self.attn(self.ln_1(h), **kw)[0])",
            "x = x + self.res_attn(x, lambda h: self.attn(self.ln_1(h), **kw)[0])",
            "x is added twice: a Residual already returns x + dropout(F(x)), so write "
            "x = res_attn(x, F), not x = x + res_attn(x, F)"),
    Mistake("pre_ln_mlp_add_after_norm", M + "Block",
            "x = self.res_mlp(x, lambda h: self.mlp(self.ln_2(h)))",
            "x = self.ln_2(x)\n            x = self.res_mlp(x, self.mlp)",
            "the feed-forward residual is added after the norm in a pre-LN block "
            "(ln_2(x) + mlp(ln_2(x))): the skip must carry x itself, x + mlp(ln_2(x))"),
    Mistake("pre_ln_norm_on_output", M + "Block",
            "x = self.res_mlp(x, lambda h: self.mlp(self.ln_2(h)))",
            "x = self.res_mlp(x, lambda h: self.ln_2(self.mlp(h)))",
            "the LayerNorm is applied to the branch's output instead of its input: pre-LN is "
            "x + mlp(ln_2(x))"),
    Mistake("pre_ln_skip_missing", M + "Block",
            "x = self.res_mlp(x, lambda h: self.mlp(self.ln_2(h)))",
            "x = self.mlp(self.ln_2(x))",
            "the skip around the feed-forward network is missing: x = x + mlp(ln_2(x)), "
            "res_mlp(x, lambda h: mlp(ln_2(h)))"),
    Mistake("mask_not_passed", M + "Block", "kw = dict(mask=mask, causal=self.causal,",
            "kw = dict(causal=self.causal,",
            "the mask is not passed down to self-attention: padding stays visible; call "
            "self.attn(..., mask=mask, causal=self.causal)"),
    Mistake("post_ln_skip_missing", M + "Block",
            "x = self.ln_1(self.res_attn(x, lambda h: self.attn(h, **kw)[0]))",
            "x = self.ln_1(self.attn(x, **kw)[0])",
            "the skip around self-attention is missing in the post-LN block: "
            "ln_1(x + attn(x)), ln_1(res_attn(x, lambda h: attn(h)[0]))"),
    Mistake("post_ln_normalises_input", M + "Block", "x = self.ln_2(self.res_mlp(x, self.mlp))",
            "x = self.res_mlp(x, lambda h: self.mlp(self.ln_2(h)))",
            "the post-LN block (norm_first=False) normalises the feed-forward input like "
            "pre-LN: post-LN adds first, then normalises, ln_2(x + mlp(x))"),
    Mistake("attention_not_dropped", M + "Block",
            "x = self.res_attn(x, lambda h: self.attn(self.ln_1(h), **kw)[0])",
            "x = x + self.attn(self.ln_1(x), **kw)[0]",
            "the self-attention branch is added without its dropout (x + attn(ln_1(x))): in "
            "training mode the branch is dropped before the sum; write it with its Residual, "
            "res_attn(x, lambda h: attn(ln_1(h))[0])"),
    Mistake("post_ln_norm_on_branch", M + "Block",
            "x = self.ln_1(self.res_attn(x, lambda h: self.attn(h, **kw)[0]))\n"
            "            if self.cross:\n"
            "                x = self.ln_cross(self.res_cross(x, lambda h: self.cross_attn(\n"
            "                    h, context, mask=context_mask)[0]))\n"
            "            x = self.ln_2(self.res_mlp(x, self.mlp))",
            "x = self.res_attn(x, lambda h: self.ln_1(self.attn(h, **kw)[0]))\n"
            "            if self.cross:\n"
            "                x = self.res_cross(x, lambda h: self.ln_cross(self.cross_attn(\n"
            "                    h, context, mask=context_mask)[0]))\n"
            "            x = self.res_mlp(x, lambda h: self.ln_2(self.mlp(h)))",
            "the post-LN block normalises the branch, x + ln(F(x)): post-LN normalises the "
            "sum, ln(x + F(x)), so that the stream itself is normalised after each layer"),
    Mistake("causal_not_passed", M + "Block", "causal=self.causal", "causal=False",
            "the block is causal but its self-attention is not told: pass "
            "causal=self.causal, so that position i sees no position after it"),
    Mistake("cross_without_context", M + "Block",
            "self.ln_cross(h), context, mask=context_mask)",
            "self.ln_cross(h), mask=context_mask)",
            "cross-attention does not read the context: pass the encoder output as the "
            "keys and values, cross_attn(ln_cross(h), context, mask=context_mask)"),
    Mistake("context_mask_not_passed", M + "Block",
            "self.ln_cross(h), context, mask=context_mask)",
            "self.ln_cross(h), context)",
            "the context mask is not passed down to cross-attention: padding in the context "
            "stays visible; pass mask=context_mask"),
    # Part 3: gradient_norms
    Mistake("skip_ignored", M + "gradient_norms", "h = h + f(h) if skip else f(h)",
            "h = f(h)",
            "skip=True is ignored: a residual stack computes x <- x + f(x)"),
    Mistake("squared_norms", M + "gradient_norms",
            "norms.append(math.sqrt(sum(g.pow(2).sum().item() for g in mine)))",
            "norms.append(sum(g.pow(2).sum().item() for g in mine))",
            "these are squared norms: take the square root of the sum of squares"),
    Mistake("sum_of_norms", M + "gradient_norms",
            "norms.append(math.sqrt(sum(g.pow(2).sum().item() for g in mine)))",
            "norms.append(sum(g.norm().item() for g in mine))",
            "the norms of a layer's parameters are added up; the norm of all of them together "
            "is the square root of the sum of ALL squared entries"),
    Mistake("first_parameter_only", M + "gradient_norms",
            "grads[start:start + len(ps)]", "grads[start:start + 1]",
            "only each layer's first parameter is counted: include all of its parameters "
            "(weights and biases)"),
    Mistake("output_side_first", M + "gradient_norms", "return norms", "return norms[::-1]",
            "the norms are listed from the output side: list them from the input side, the "
            "first layer first"),
    Mistake("grad_ignored", M + "gradient_norms", "grad_outputs=grad,",
            "grad_outputs=torch.ones_like(h),",
            "the given gradient is ignored (ones are backpropagated): pass grad_outputs=grad"),
    Mistake("grads_accumulate", M + "gradient_norms",
            "grads = torch.autograd.grad(h, flat, grad_outputs=grad, allow_unused=True)",
            "h.backward(grad)\n    grads = [p.grad for p in flat]",
            "the norms are read from .grad after .backward(), which ADDS to the gradients "
            "already there: a second call on the same layers gives doubled numbers. Use "
            "torch.autograd.grad(out, params, grad_outputs=grad, allow_unused=True), which "
            "leaves .grad alone"),
    Mistake("no_grad_shape_check", M + "gradient_norms", "if grad.shape != h.shape:",
            "if False:",
            "a grad that does not have the output's shape must be refused with a ValueError"),
]
