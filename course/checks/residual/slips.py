"""The second catalogue (`SLIPS`): wrong versions of the residual parts written as a learner
would write them."""

from __future__ import annotations

from course.checks.core import Slip
from course.checks.residual.mistakes import M

# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("residual_returns_branch", M + "Residual.forward", """
def forward(self, x, sublayer):
    y = sublayer(x)
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        raise ValueError("sub-layer must keep the shape")
    return self.dropout(y)
""", "skip_missing"),
    Slip("residual_dropout_both", M + "Residual.forward", """
def forward(self, x, sublayer):
    y = sublayer(x)
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        raise ValueError("sub-layer must keep the shape")
    out = x + y
    return self.dropout(out)
""", "dropout_on_sum"),
    Slip("residual_doubles_x", M + "Residual.forward", """
def forward(self, x, sublayer):
    y = sublayer(x)
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        raise ValueError("sub-layer must keep the shape")
    return x + x + self.dropout(y)
""", None),
    Slip("residual_no_check", M + "Residual.forward", """
def forward(self, x, sublayer):
    return torch.add(x, self.dropout(sublayer(x)))
""", "no_shape_check"),
    Slip("residual_drops_the_input", M + "Residual.forward", """
def forward(self, x, sublayer):
    y = sublayer(self.dropout(x))
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        raise ValueError("sub-layer must keep the shape")
    return x + y
""", None),
    Slip("block_pre_ln_normalised_stream", M + "Block.forward", """
def forward(self, x, mask=None, context=None, context_mask=None, *, cache=None):
    require_mask_4d(mask, "mask")
    require_mask_4d(context_mask, "context_mask")
    if self.norm_first:
        h = self.ln_1(x)
        x = self.res_attn(h, lambda h: self.attn(h, mask=mask, causal=self.causal,
                                                 cache=cache)[0])
        if self.cross:
            h = self.ln_cross(x)
            x = self.res_cross(h, lambda h: self.cross_attn(h, context, mask=context_mask)[0])
        return self.res_mlp(self.ln_2(x), self.mlp)
    x = self.ln_1(self.res_attn(x, lambda h: self.attn(h, mask=mask, causal=self.causal,
                                                       cache=cache)[0]))
    if self.cross:
        x = self.ln_cross(self.res_cross(x, lambda h: self.cross_attn(h, context,
                                                                      mask=context_mask)[0]))
    return self.ln_2(self.res_mlp(x, self.mlp))
""", None),
    Slip("block_post_ln_as_pre_ln", M + "Block.forward", """
def forward(self, x, mask=None, context=None, context_mask=None, *, cache=None):
    def attend(h):
        return self.attn(self.ln_1(h), mask=mask, causal=self.causal, cache=cache)[0]

    x = self.res_attn(x, attend)
    if self.cross:
        x = self.res_cross(x, lambda h: self.cross_attn(self.ln_cross(h), context,
                                                        mask=context_mask)[0])
    return self.res_mlp(x, lambda h: self.mlp(self.ln_2(h)))
""", "norms_swapped"),
    Slip("block_forgets_mask", M + "Block.forward", """
def forward(self, x, mask=None, context=None, context_mask=None, *, cache=None):
    ln1, ln2 = self.ln_1, self.ln_2
    if self.norm_first:
        x = self.res_attn(x, lambda h: self.attn(ln1(h), causal=self.causal, cache=cache)[0])
        if self.cross:
            x = self.res_cross(x, lambda h: self.cross_attn(self.ln_cross(h), context,
                                                            mask=context_mask)[0])
        return self.res_mlp(x, lambda h: self.mlp(ln2(h)))
    x = ln1(self.res_attn(x, lambda h: self.attn(h, causal=self.causal, cache=cache)[0]))
    if self.cross:
        x = self.ln_cross(self.res_cross(x, lambda h: self.cross_attn(h, context,
                                                                      mask=context_mask)[0]))
    return ln2(self.res_mlp(x, self.mlp))
""", "mask_not_passed"),
    Slip("block_causal_never_passed", M + "Block.forward", """
def forward(self, x, mask=None, context=None, context_mask=None, *, cache=None):
    if self.norm_first:
        x = self.res_attn(x, lambda h: self.attn(self.ln_1(h), mask=mask, cache=cache)[0])
        if self.cross:
            x = self.res_cross(x, lambda h: self.cross_attn(self.ln_cross(h), context,
                                                            mask=context_mask)[0])
        x = self.res_mlp(x, lambda h: self.mlp(self.ln_2(h)))
    else:
        x = self.ln_1(self.res_attn(x, lambda h: self.attn(h, mask=mask, cache=cache)[0]))
        if self.cross:
            x = self.ln_cross(self.res_cross(x, lambda h: self.cross_attn(
                h, context, mask=context_mask)[0]))
        x = self.ln_2(self.res_mlp(x, self.mlp))
    return x
""", "causal_not_passed"),
    Slip("block_adds_x_again", M + "Block.forward", """
def forward(self, x, mask=None, context=None, context_mask=None, *, cache=None):
    kw = dict(mask=mask, causal=self.causal, cache=cache)
    if self.norm_first:
        x = x + self.res_attn(x, lambda h: self.attn(self.ln_1(h), **kw)[0])
        if self.cross:
            x = x + self.res_cross(x, lambda h: self.cross_attn(self.ln_cross(h), context,
                                                                mask=context_mask)[0])
        return x + self.res_mlp(x, lambda h: self.mlp(self.ln_2(h)))
    x = self.ln_1(x + self.res_attn(x, lambda h: self.attn(h, **kw)[0]))
    if self.cross:
        x = self.ln_cross(x + self.res_cross(x, lambda h: self.cross_attn(
            h, context, mask=context_mask)[0]))
    return self.ln_2(x + self.res_mlp(x, self.mlp))
""", None),
    Slip("norms_plain_only", M + "gradient_norms", """
def gradient_norms(layers, x, grad, skip=False):
    layers = list(layers)
    for f in layers:
        x = f(x)
    if grad.shape != x.shape:
        raise ValueError("grad must be shaped like the output")
    for f in layers:
        f.zero_grad()
    x.backward(grad)
    out = []
    for f in layers:
        total = sum((p.grad ** 2).sum() for p in f.parameters() if p.grad is not None)
        out.append(float(total) ** 0.5)
    return out
""", "skip_ignored"),
    Slip("norms_weight_only", M + "gradient_norms", """
def gradient_norms(layers, x, grad, skip=False):
    layers = list(layers)
    h = x
    for f in layers:
        h = (h + f(h)) if skip else f(h)
    if h.shape != grad.shape:
        raise ValueError("grad must be shaped like the output")
    h.backward(grad)
    result = []
    for f in layers:
        ps = [p for p in f.parameters() if p.grad is not None]
        result.append(ps[0].grad.norm().item() if ps else 0.0)
    return result
""", "first_parameter_only"),
    Slip("norms_reversed", M + "gradient_norms", """
def gradient_norms(layers, x, grad, skip=False):
    h = x
    for f in layers:
        h = h + f(h) if skip else f(h)
    if grad.shape != h.shape:
        raise ValueError("grad must be shaped like the output")
    h.backward(grad)
    norms = []
    for f in reversed(list(layers)):
        sq = [p.grad.pow(2).sum() for p in f.parameters() if p.grad is not None]
        norms.append(torch.stack(sq).sum().sqrt().item() if sq else 0.0)
    return norms
""", "output_side_first"),
    Slip("norms_backward_accumulates", M + "gradient_norms", """
def gradient_norms(layers, x, grad, skip=False):
    out = x
    for layer in layers:
        out = out + layer(out) if skip else layer(out)
    if out.shape != grad.shape:
        raise ValueError("grad must have the shape of the output")
    out.backward(gradient=grad)
    norms = []
    for layer in layers:
        total = 0.0
        for p in layer.parameters():
            if p.grad is not None:
                total += float((p.grad ** 2).sum())
        norms.append(math.sqrt(total))
    return norms
""", "grads_accumulate"),
    Slip("residual_unwraps_pairs", M + "Residual.forward", """
def forward(self, x, sublayer):
    y = sublayer(x)
    if isinstance(y, (tuple, list)):
        y = y[0]
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        raise ValueError("sub-layer must return a tensor shaped like x")
    return x + self.dropout(y)
""", "tuple_unpacked"),
    Slip("block_attention_without_dropout", M + "Block.forward", """
def forward(self, x, mask=None, context=None, context_mask=None, *, cache=None):
    kw = dict(mask=mask, causal=self.causal, cache=cache)
    if self.norm_first:
        x = x + self.attn(self.ln_1(x), **kw)[0]
        if self.cross:
            x = x + self.cross_attn(self.ln_cross(x), context, mask=context_mask)[0]
        return x + self.mlp(self.ln_2(x))
    x = self.ln_1(x + self.attn(x, **kw)[0])
    if self.cross:
        x = self.ln_cross(x + self.cross_attn(x, context, mask=context_mask)[0])
    return self.ln_2(x + self.mlp(x))
""", "attention_not_dropped"),
    Slip("residual_checks_rank_only", M + "Residual.forward", """
def forward(self, x, sublayer):
    y = sublayer(x)
    if y.dim() != x.dim():
        raise ValueError("the sub-layer changed the shape")
    return x + self.dropout(y)
""", "no_shape_check"),
    Slip("residual_type_error", M + "Residual.forward", """
def forward(self, x, sublayer):
    y = sublayer(x)
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        raise TypeError(f"sub-layer returned {type(y).__name__}, not a tensor like x")
    return x + self.dropout(y)
""", None),
    Slip("block_pre_ln_adds_to_normed", M + "Block.forward", """
def forward(self, x, mask=None, context=None, context_mask=None, *, cache=None):
    require_mask_4d(mask, "mask")
    require_mask_4d(context_mask, "context_mask")
    if self.norm_first:
        h = self.ln_1(x)
        x = h + self.res_attn.dropout(self.attn(h, mask=mask, causal=self.causal,
                                                cache=cache)[0])
        if self.cross:
            x = self.res_cross(x, lambda h: self.cross_attn(self.ln_cross(h), context,
                                                            mask=context_mask)[0])
        return self.res_mlp(x, lambda h: self.mlp(self.ln_2(h)))
    x = self.ln_1(self.res_attn(x, lambda h: self.attn(h, mask=mask, causal=self.causal,
                                                       cache=cache)[0]))
    if self.cross:
        x = self.ln_cross(self.res_cross(x, lambda h: self.cross_attn(h, context,
                                                                      mask=context_mask)[0]))
    return self.ln_2(self.res_mlp(x, self.mlp))
""", "pre_ln_add_after_norm"),
    Slip("block_post_ln_norms_branch", M + "Block.forward", """
def forward(self, x, mask=None, context=None, context_mask=None, *, cache=None):
    require_mask_4d(mask, "mask")
    require_mask_4d(context_mask, "context_mask")
    kw = dict(mask=mask, causal=self.causal, cache=cache)
    if self.norm_first:
        x = self.res_attn(x, lambda h: self.attn(self.ln_1(h), **kw)[0])
        if self.cross:
            x = self.res_cross(x, lambda h: self.cross_attn(self.ln_cross(h), context,
                                                            mask=context_mask)[0])
        return self.res_mlp(x, lambda h: self.mlp(self.ln_2(h)))
    x = self.res_attn(x, lambda h: self.ln_1(self.attn(h, **kw)[0]))
    if self.cross:
        x = self.res_cross(x, lambda h: self.ln_cross(self.cross_attn(h, context,
                                                                      mask=context_mask)[0]))
    return self.res_mlp(x, lambda h: self.ln_2(self.mlp(h)))
""", "post_ln_norm_on_branch"),
    Slip("block_cross_gets_self_mask", M + "Block.forward", """
def forward(self, x, mask=None, context=None, context_mask=None, *, cache=None):
    require_mask_4d(mask, "mask")
    require_mask_4d(context_mask, "context_mask")
    kw = dict(mask=mask, causal=self.causal, cache=cache)
    if self.norm_first:
        x = self.res_attn(x, lambda h: self.attn(self.ln_1(h), **kw)[0])
        if self.cross:
            x = self.res_cross(x, lambda h: self.cross_attn(self.ln_cross(h), context,
                                                            mask=mask)[0])
        return self.res_mlp(x, lambda h: self.mlp(self.ln_2(h)))
    x = self.ln_1(self.res_attn(x, lambda h: self.attn(h, **kw)[0]))
    if self.cross:
        x = self.ln_cross(self.res_cross(x, lambda h: self.cross_attn(h, context,
                                                                      mask=mask)[0]))
    return self.ln_2(self.res_mlp(x, self.mlp))
""", "context_mask_not_passed"),
    Slip("block_one_norm_for_all", M + "Block.forward", """
def forward(self, x, mask=None, context=None, context_mask=None, *, cache=None):
    require_mask_4d(mask, "mask")
    require_mask_4d(context_mask, "context_mask")
    kw = dict(mask=mask, causal=self.causal, cache=cache)
    ln = self.ln_1
    if self.norm_first:
        x = self.res_attn(x, lambda h: self.attn(ln(h), **kw)[0])
        if self.cross:
            x = self.res_cross(x, lambda h: self.cross_attn(ln(h), context,
                                                            mask=context_mask)[0])
        return self.res_mlp(x, lambda h: self.mlp(ln(h)))
    x = ln(self.res_attn(x, lambda h: self.attn(h, **kw)[0]))
    if self.cross:
        x = ln(self.res_cross(x, lambda h: self.cross_attn(h, context, mask=context_mask)[0]))
    return ln(self.res_mlp(x, self.mlp))
""", None),
    Slip("norms_summed_per_tensor", M + "gradient_norms", """
def gradient_norms(layers, x, grad, skip=False):
    h = x
    for f in layers:
        h = h + f(h) if skip else f(h)
    if grad.shape != h.shape:
        raise ValueError(f"grad must have the output's shape {tuple(h.shape)}")
    out = []
    for f in layers:
        ps = list(f.parameters())
        gs = torch.autograd.grad(h, ps, grad_outputs=grad, retain_graph=True)
        out.append(sum(g.norm().item() for g in gs))
    return out
""", "sum_of_norms"),
    Slip("norms_skip_from_input", M + "gradient_norms", """
def gradient_norms(layers, x, grad, skip=False):
    h = x
    for f in layers:
        h = x + f(h) if skip else f(h)
    if grad.shape != h.shape:
        raise ValueError(f"grad must have the output's shape {tuple(h.shape)}")
    params = [p for f in layers for p in f.parameters()]
    grads = dict(zip(params, torch.autograd.grad(h, params, grad, allow_unused=True)))
    return [math.sqrt(sum(float((grads[p] ** 2).sum()) for p in f.parameters()
                          if grads[p] is not None)) for f in layers]
""", None),
]
