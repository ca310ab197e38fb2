"""Part 2: `Block`, checked against ``torch.nn.TransformerEncoderLayer`` and
``TransformerDecoderLayer`` holding the same weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import oracles
from course.checks.core import call, check, compare, copy_of
from course.checks.residual.mistakes import M
from course.checks.residual.shared import _fmt

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
