"""Checks for Exercise 5 (residual connections) and the catalogue of residual mistakes.

Oracles are independent of the reference: ``x + F(x)`` computed directly for `Residual`;
``torch.nn.TransformerEncoderLayer`` (either norm placement, a causal ``src_mask``, a padding
mask) and ``torch.nn.TransformerDecoderLayer`` (causal self-attention plus cross-attention)
with their weights copied into the learner's `Block`; a plain backward pass over ``.grad`` for
`gradient_norms`. ``hidden=True`` adds float64, ReLU, other sizes, a batch of one, a single
token and layers without parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import oracles
from course.checks.core import (
    Mistake,
    Raised,
    Raises,
    Slip,
    call,
    check,
    compare,
    copy_of,
    fail,
)

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


def _fmt(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


# ---------------------------------------------------------------- Part 1: Residual


def _linear(C_in: int, C_out: int, dtype: torch.dtype, seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(C_in, C_out).to(dtype)


@check(M + "Residual", part=1)
def check_residual(Residual, hidden: bool = False) -> None:
    """Residual()(x, F) == x + F(x) for a module or a plain function F, gradients flow through
    both paths; a sub-layer that changes the shape, or returns a pair (output, weights) as
    attention does, is refused with a ValueError."""
    f32, f64 = torch.float32, torch.float64
    cases = [("a Linear sub-layer", (2, 5, 8), f32, None),
             ("the function h -> 2.0 * h + 0.5 as sub-layer", (3, 4), f32, "fn"),
             ("a sub-layer that changes the shape", (2, 5, 8), f32, "bad"),
             ("a sub-layer that returns a pair (output, weights), as attention does",
              (2, 5, 8), f32, "pair")]
    if hidden:
        cases += [("float64, a batch of one token", (1, 1, 16), f64, None),
                  ("eval mode with dropout 0.5 (no dropout at evaluation)", (2, 3, 6), f32,
                   "eval"),
                  ("float64, the function h -> -1.0 * h + 0.0 as sub-layer", (2, 2, 3), f64,
                   "fn-1")]
    for i, (label, shape, dtype, kind) in enumerate(cases):
        x = oracles.randn(*shape, seed=10 + i, dtype=dtype)
        C = shape[-1]
        what = f"Residual()(x {_fmt(shape)}, sublayer), {dtype}, with {label}"
        if kind == "bad":
            compare(Residual, lambda cls, x=x, C=C: cls()(x.clone(), _linear(C, C - 1, f32, 1)),
                    Raises("ValueError"), what=what)
            continue
        if kind == "pair":
            compare(Residual, lambda cls, x=x: cls()(x.clone(), lambda h: (2.0 * h, None)),
                    Raises("ValueError"), what=what)
            continue
        if kind and kind.startswith("fn"):
            factor, shift = (2.0, 0.5) if kind == "fn" else (-1.0, 0.0)
            expected_out = x + (factor * x + shift)

            def probe(cls, x=x, factor=factor, shift=shift):
                xg = x.clone().requires_grad_()
                out = cls()(xg, lambda h: factor * h + shift)
                out.sum().backward()
                return out.detach(), xg.grad
            expected = (expected_out, torch.full_like(x, 1.0 + factor))
        else:
            sub = _linear(C, C, dtype, 20 + i)
            xg = x.clone().requires_grad_()
            ref_out = xg + sub(xg)                        # the oracle: x + F(x)
            ref_out.sum().backward()
            expected = (ref_out.detach(), xg.grad)

            def probe(cls, x=x, C=C, dtype=dtype, i=i, kind=kind):
                residual = cls(dropout=0.5 if kind else 0.0)
                residual = residual.eval() if kind == "eval" else residual
                xg = x.clone().requires_grad_()
                out = residual(xg, _linear(C, C, dtype, 20 + i))
                out.sum().backward()
                return out.detach(), xg.grad
        compare(Residual, probe, expected, what=what, parts=("output", "gradient of x"),
                **oracles.tol(dtype))


@check(M + "Residual", part=1)
def check_residual_dropout(Residual, hidden: bool = False) -> None:
    """In training mode dropout acts on the branch only: with a branch of ones and dropout p,
    out - x is 0 or 1 / (1 - p) everywhere (about a share p of zeros), never a change of x."""
    cases = [((64, 64), 0.5)]
    if hidden:
        cases += [((4, 32, 16), 0.25), ((1, 200), 0.8)]
    for i, (shape, p) in enumerate(cases):
        x = torch.randint(-4, 5, shape, generator=torch.Generator().manual_seed(90 + i)).float()
        what = f"Residual(dropout={p}).train()(x {_fmt(shape)}, torch.ones_like)"

        def probe(cls, x=x, p=p):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(1234)
                return cls(dropout=p).train()(x.clone(), torch.ones_like)

        got = call(Residual, probe, what)
        if isinstance(got, Raised):
            fail(f"{what}\n  raised {got}")
        scale = 1.0 / (1.0 - p)
        delta = got - x
        ok_values = (delta.abs() < 1e-5) | ((delta - scale).abs() < 1e-4)
        if not bool(ok_values.all()):  # out - x, compared with the nearest of 0 and scale
            expected = torch.where(delta.abs() < 1e-5, 0.0, scale)
            compare(Residual, lambda cls, x=x, probe=probe: probe(cls) - x, expected,
                    what=what + f": out - x must be 0 or {scale:g}")
        share = (delta.abs() < 1e-5).float().mean().item()
        if abs(share - p) > 0.15:
            fail(f"{what}: {share:.0%} of the branch is dropped, expected about {p:.0%}; "
                 "dropout must act on the branch F(x) in training mode")


# ---------------------------------------------------------------- Part 2: Block


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    """Random weights everywhere (LayerNorm scale and shift too): nothing is an identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return module


def _torch_layer(case: dict) -> nn.Module:
    torch.manual_seed(case["seed"])
    kind = nn.TransformerDecoderLayer if case.get("cross") else nn.TransformerEncoderLayer
    layer = kind(case["C"], case["H"], case["d_ff"], dropout=0.0,
                 activation=case.get("activation", "gelu"), batch_first=True,
                 norm_first=case["norm_first"], layer_norm_eps=case.get("eps", 1e-5))
    return _randomize(layer, case["seed"]).to(case["dtype"])


def _copy_into_block(block: nn.Module, layer: nn.Module, cross: bool) -> nn.Module:
    """The torch layer's weights -> the learner's Block (names fixed by the given __init__)."""
    from solutions.pretrained import load_torch_attention

    load_torch_attention(block.attn, layer.self_attn)
    norms = [(block.ln_1, layer.norm1), (block.ln_2, layer.norm2)]
    if cross:
        load_torch_attention(block.cross_attn, layer.multihead_attn)
        norms = [(block.ln_1, layer.norm1), (block.ln_cross, layer.norm2),
                 (block.ln_2, layer.norm3)]
    pairs = [(block.mlp.fc, layer.linear1), (block.mlp.proj, layer.linear2), *norms]
    with torch.no_grad():
        for ours, theirs in pairs:
            ours.weight.copy_(theirs.weight)
            ours.bias.copy_(theirs.bias)
    return block


def _inputs(case: dict):
    x = oracles.randn(case["B"], case["T"], case["C"], seed=case["seed"] + 1,
                      dtype=case["dtype"])
    context = oracles.randn(case["B"], case["T_ctx"], case["C"], seed=case["seed"] + 2,
                            dtype=case["dtype"]) if case.get("cross") else None
    return x, context


def _torch_result(case: dict) -> tuple:
    """The oracle: output and gradient of x of the torch layer."""
    layer = _torch_layer(case)
    x, context = _inputs(case)
    x = x.requires_grad_()
    T, lengths = case["T"], case.get("lengths")
    future = torch.ones(T, T, dtype=torch.bool).triu(1) if case.get("causal") else None
    if case.get("cross"):
        pad = None if lengths is None else ~oracles.lengths_mask(lengths, case["T_ctx"])
        out = layer(x, context, tgt_mask=future, memory_key_padding_mask=pad,
                    tgt_is_causal=False)
    else:
        pad = None if lengths is None else ~oracles.lengths_mask(lengths, T)
        out = layer(x, src_mask=future, src_key_padding_mask=pad)
    out.sum().backward()
    return out.detach(), x.grad


def _config(case: dict):
    from solutions.model import ModelConfig  # the configuration is given, not graded

    return ModelConfig(n_embd=case["C"], n_head=case["H"], d_ff=case["d_ff"],
                       norm_first=case["norm_first"], eps=case.get("eps", 1e-5),
                       activation=case.get("activation", "gelu"))


def _block_probe(case: dict):
    def probe(Block):
        block = Block(_config(case), causal=case.get("causal", False),
                      cross=case.get("cross", False)).to(case["dtype"])
        _copy_into_block(block, _torch_layer(case), case.get("cross", False)).eval()
        x, context = _inputs(case)
        x = x.requires_grad_()
        lengths = case.get("lengths")
        mask = None if lengths is None else oracles.lengths_mask(
            lengths, case["T_ctx"] if case.get("cross") else case["T"])[:, None, None, :]
        if case.get("cross"):
            out = block(x, context=context, context_mask=mask)
        else:
            out = block(x, mask=mask)
        out.sum().backward()
        return out.detach(), x.grad
    return probe


def _describe(case: dict) -> str:
    kind = "pre-LN" if case["norm_first"] else "post-LN"
    flags = "".join([", causal=True" if case.get("causal") else "",
                     ", cross=True" if case.get("cross") else ""])
    context = f", context ({case['B']}, {case['T_ctx']}, {case['C']})" if case.get("cross") \
        else ""
    lengths = case.get("lengths")
    pad = "no mask" if lengths is None else f"padding mask, lengths {lengths}"
    return (f"Block({kind}, n_embd={case['C']}, n_head={case['H']}{flags}) on x "
            f"({case['B']}, {case['T']}, {case['C']}){context}, {pad}, {case['dtype']} "
            f"({case['label']})")


def _check_block(Block, cases: list[dict], seed: int) -> None:
    for i, case in enumerate(cases):
        case = dict(case, seed=seed + 10 * i)
        compare(Block, _block_probe(case), _torch_result(case), what=_describe(case),
                parts=("output", "gradient of x"), **oracles.tol(case["dtype"]))


def _check_silenced_branches(Block, norm_first: bool, hidden: bool) -> None:
    """With the attention and feed-forward outputs zeroed and dropout 0.5 in training mode, a
    pre-LN block is exactly the identity and a post-LN block is ln_2(ln_1(x))."""
    shapes = [(2, 5, 16)] + ([(1, 1, 8)] if hidden else [])
    for i, shape in enumerate(shapes):
        x = oracles.randn(*shape, seed=200 + i, scale=3.0)
        C = shape[-1]
        expected = x if norm_first else F.layer_norm(F.layer_norm(x, (C,)), (C,))
        what = (f"Block({'pre' if norm_first else 'post'}-LN, dropout=0.5).train() with its "
                f"attention and feed-forward outputs set to zero, on x {_fmt(shape)}")

        def probe(Block, x=x, C=C):
            from solutions.model import ModelConfig

            config = ModelConfig(n_embd=C, n_head=2, dropout=0.5, norm_first=norm_first)
            block = Block(config).train()
            with torch.no_grad():
                for linear in (block.attn.out, block.mlp.proj):
                    linear.weight.zero_()
                    linear.bias.zero_()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(4321)
                return block(x.clone())

        compare(Block, probe, expected, what=what, **oracles.tol(torch.float32))


def _check_training_dropout(Block, norm_first: bool, hidden: bool) -> None:
    """In training mode with dropout 0.3, under one seed, the block equals the reference under
    the same seed: dropout on each attention branch and inside the feed-forward network, so the
    same random draws land in the same places (a branch without its dropout shifts them)."""
    from solutions.model import ModelConfig

    reference = copy_of(M + "Block")
    cases = [((2, 5, 16), False)] + ([((1, 3, 8), True)] if hidden else [])
    for i, (shape, cross) in enumerate(cases):
        x = oracles.randn(*shape, seed=260 + i)
        context = oracles.randn(shape[0], 4, shape[-1], seed=270 + i) if cross else None
        kind = "pre" if norm_first else "post"
        what = (f"Block({kind}-LN, dropout=0.3{', causal=True, cross=True' if cross else ''})"
                f".train() on x {_fmt(shape)}, seeded, compared with the reference block "
                "under the same seed")

        def probe(Block, x=x, context=context, C=shape[-1], i=i, cross=cross):
            config = ModelConfig(n_embd=C, n_head=2, d_ff=2 * C, dropout=0.3,
                                 norm_first=norm_first)
            with torch.random.fork_rng(devices=[]):
                block = _randomize(Block(config, causal=cross, cross=cross), 280 + i).train()
                torch.manual_seed(4321)
                kw = {} if context is None else {"context": context.clone()}
                return block(x.clone(), **kw)

        compare(Block, probe, call(reference, probe, what), what=what,
                **oracles.tol(torch.float32))


def _cases(norm_first: bool, hidden: bool) -> list[dict]:
    """Blocks without a mask (padding has its own test, so a mask slip costs that test)."""
    f32, f64 = torch.float32, torch.float64
    base = dict(norm_first=norm_first, C=16, H=4, d_ff=40, B=2, T=5, dtype=f32)
    cases = [dict(base, label="no mask")]
    if hidden:
        cases += [dict(base, C=24, H=3, d_ff=48, B=3, T=6, dtype=f64,
                       label="float64, 3 heads of 8 features"),
                  dict(base, C=8, H=2, d_ff=16, B=1, T=4, activation="relu", eps=1e-6,
                       label="a batch of one, ReLU, eps 1e-6"),
                  dict(base, C=12, H=6, B=2, T=1, dtype=f64, label="a single token")]
    return cases


@check(M + "Block", part=2, uses=(M + "Residual",))
def check_block_pre_ln(Block, hidden: bool = False) -> None:
    """A pre-LN Block equals nn.TransformerEncoderLayer(norm_first=True) with the same weights
    (output and gradient); dropout never touches the skip path and drops each branch."""
    _check_block(Block, _cases(True, hidden), seed=100)
    _check_silenced_branches(Block, True, hidden)
    _check_training_dropout(Block, True, hidden)


@check(M + "Block", part=2, uses=(M + "Residual",))
def check_block_post_ln(Block, hidden: bool = False) -> None:
    """A post-LN Block equals nn.TransformerEncoderLayer(norm_first=False) with the same
    weights (output and gradient); in training mode dropout drops each branch."""
    _check_block(Block, _cases(False, hidden), seed=300)
    _check_silenced_branches(Block, False, hidden)
    _check_training_dropout(Block, False, hidden)


@check(M + "Block", part=2, uses=(M + "Residual",))
def check_block_padding(Block, hidden: bool = False) -> None:
    """With a padding mask, pre-LN and post-LN Blocks equal torch's layer given the same
    key padding mask."""
    f32, f64 = torch.float32, torch.float64
    base = dict(C=16, H=4, d_ff=40, B=2, T=5, dtype=f32, lengths=[5, 3])
    cases = [dict(base, norm_first=True, label="pre-LN, sequence 1 has 2 padding tokens"),
             dict(base, norm_first=False, label="post-LN, sequence 1 has 2 padding tokens")]
    if hidden:
        cases += [dict(base, norm_first=False, C=24, H=3, d_ff=48, B=3, T=6, lengths=[6, 1, 4],
                       dtype=f64, label="post-LN, float64, a sequence with a single real token"),
                  dict(base, norm_first=True, B=1, T=4, lengths=[2],
                       label="pre-LN, a batch of one, half of it padding")]
    _check_block(Block, cases, seed=700)


@check(M + "Block", part=2, uses=(M + "Residual",))
def check_block_causal_cross(Block, hidden: bool = False) -> None:
    """causal=True equals torch's layer with a causal mask (with and without padding);
    cross=True equals nn.TransformerDecoderLayer (causal self-attention, cross-attention to a
    padded context)."""
    f32, f64 = torch.float32, torch.float64
    base = dict(norm_first=True, C=16, H=4, d_ff=40, B=2, T=5, dtype=f32, causal=True)
    cases = [dict(base, label="causal"),
             dict(base, lengths=[5, 3], label="causal and padding"),
             dict(base, cross=True, T_ctx=7, lengths=[7, 4],
                  label="cross-attention to a padded context")]
    if hidden:
        cases += [dict(base, norm_first=False, lengths=[5, 2], dtype=f64,
                       label="post-LN, causal and padding, float64"),
                  dict(base, norm_first=False, cross=True, T=3, T_ctx=6, lengths=[6, 2],
                       label="post-LN, cross-attention"),
                  dict(base, cross=True, B=1, T=4, T_ctx=2, dtype=f64,
                       label="a batch of one, a context of 2 tokens, float64")]
    _check_block(Block, cases, seed=500)


# ---------------------------------------------------------------- Part 3: gradient norms


class _Unused(nn.Module):
    """tanh(Linear(x)) with one parameter the output does not depend on."""

    def __init__(self, C: int):
        super().__init__()
        self.lin = nn.Linear(C, C)
        self.spare = nn.Parameter(torch.ones(3))

    def forward(self, x):
        return torch.tanh(self.lin(x))


def _layers(kind: str, depth: int, C: int, dtype: torch.dtype, seed: int) -> list[nn.Module]:
    torch.manual_seed(seed)
    if kind == "tanh":
        layers = [nn.Sequential(nn.Linear(C, C), nn.Tanh()) for _ in range(depth)]
    elif kind == "mlp":
        layers = [nn.Sequential(nn.Linear(C, 2 * C), nn.GELU(), nn.Linear(2 * C, C))
                  for _ in range(depth)]
    else:  # "mixed": a layer without parameters and one with an unused parameter
        layers = [nn.Linear(C, C), nn.Tanh(), _Unused(C), nn.Linear(C, C, bias=False)]
    return [f.to(dtype) for f in layers]


def _oracle_norms(layers: list[nn.Module], x, grad, skip: bool) -> list[float]:
    """A plain backward pass; each layer's norm from the .grad of its parameters."""
    h = x
    for f in layers:
        h = h + f(h) if skip else f(h)
    h.backward(grad)
    norms = []
    for f in layers:
        squares = sum(float(p.grad.double().pow(2).sum()) for p in f.parameters()
                      if p.grad is not None)
        norms.append(squares ** 0.5)
    return norms


def _check_norms(gradient_norms, skip: bool, hidden: bool, seed: int) -> None:
    f32, f64 = torch.float32, torch.float64
    cases = [("3 Linear+Tanh layers", "tanh", 3, (16, 8), f64),
             ("4 two-layer MLPs", "mlp", 4, (10, 6), f64),
             ("grad of the wrong shape", "tanh", 2, (4, 8), f64)]
    if hidden:
        cases += [("12 Linear+Tanh layers, float32", "tanh", 12, (32, 16), f32),
                  ("a layer without parameters and one with an unused parameter", "mixed",
                   4, (5, 6), f64),
                  ("a batch of one, (B, T, C) input", "mlp", 2, (1, 3, 4), f64)]
    for i, (label, kind, depth, shape, dtype) in enumerate(cases):
        C = shape[-1]
        x = oracles.randn(*shape, seed=seed + 2 * i, dtype=dtype)
        grad = oracles.randn(*shape, seed=seed + 2 * i + 1, dtype=dtype)
        what = f"gradient_norms({label}, x {_fmt(shape)}, {dtype}, skip={skip})"
        if label.startswith("grad of the wrong"):
            compare(gradient_norms,
                    lambda f, kind=kind, depth=depth, C=C, dtype=dtype, x=x: f(
                        _layers(kind, depth, C, dtype, seed), x.clone(),
                        torch.zeros(x.shape[0], C + 1, dtype=dtype), skip=skip),
                    Raises("ValueError"), what=what)
            continue
        expected = _oracle_norms(_layers(kind, depth, C, dtype, seed + i), x, grad, skip)

        def probe(f, kind=kind, depth=depth, C=C, dtype=dtype, x=x, grad=grad, i=i):
            out = f(_layers(kind, depth, C, dtype, seed + i), x.clone(), grad.clone(),
                    skip=skip)
            return [float(v) for v in out] if isinstance(out, (list, tuple)) else out

        compare(gradient_norms, probe, expected, what=what,
                rtol=1e-4 if dtype == f32 else 1e-8, atol=0.0)
    if not skip:
        _check_second_call(gradient_norms, seed)


def _check_second_call(gradient_norms, seed: int) -> None:
    """Called twice on the same layers (as the exercise's demonstration does), the second call
    gives the same norms: nothing of the first call's gradients stays behind."""
    shape = (8, 6)
    x = oracles.randn(*shape, seed=seed + 50, dtype=torch.float64)
    grad = oracles.randn(*shape, seed=seed + 51, dtype=torch.float64)
    expected = _oracle_norms(_layers("tanh", 3, 6, torch.float64, seed + 50), x, grad, False)

    def probe(f):
        layers = _layers("tanh", 3, 6, torch.float64, seed + 50)
        f(layers, x.clone(), grad.clone())
        out = f(layers, x.clone(), grad.clone())
        return [float(v) for v in out] if isinstance(out, (list, tuple)) else out

    compare(gradient_norms, probe, expected, rtol=1e-8, atol=0.0,
            what=f"gradient_norms(3 Linear+Tanh layers, x {_fmt(shape)}, float64), the second "
                 "of two calls on the same layers")


@check(M + "gradient_norms", part=3)
def check_gradient_norms(gradient_norms, hidden: bool = False) -> None:
    """Plain stacks: one norm per layer, input side first, equal to a plain backward pass; a
    second call on the same layers gives the same norms."""
    _check_norms(gradient_norms, skip=False, hidden=hidden, seed=600)


@check(M + "gradient_norms", part=3)
def check_gradient_norms_residual(gradient_norms, hidden: bool = False) -> None:
    """Residual stacks (skip=True): x <- x + f(x) in every layer."""
    _check_norms(gradient_norms, skip=True, hidden=hidden, seed=700)


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
