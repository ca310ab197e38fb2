"""Parts 3 and 4: `FeedForward` (with the output-dropout check SwiGLU's reuse) and its parameter
count."""

from __future__ import annotations

import torch
from torch import nn

from course.checks import oracles
from course.checks.core import Raised, call, check, compare, diagnose, fail
from course.checks.feedforward.mistakes import T

# ---------------------------------------------------------------- Part 3: FeedForward


def check_output_dropout(cls, probe, clean: torch.Tensor, label: str, shape, p: float,
                         last: str) -> None:
    """A feed-forward network's dropout acts once, on its output (the output of `last`), and
    only while training: `probe(cls, train=...)` runs the learner's `cls` on the same input
    whose clean output is `clean`; in train mode about a fraction p must be zero and the rest
    the clean output scaled by 1 / (1 - p)."""
    compare(cls, probe, clean, what=f"{label}.eval() on x {shape}: no dropout in eval mode",
            **oracles.tol(torch.float32))
    what = f"{label}.train() on x {shape}"
    out = call(cls, lambda c: probe(c, train=True), what)
    if isinstance(out, Raised):
        fail(f"{what}\n  raised {out}")
    dropped = out == 0
    kept_ok = torch.allclose(torch.where(dropped, 0.0, out),
                             torch.where(dropped, 0.0, clean / (1 - p)), rtol=1e-4, atol=1e-5)
    share = dropped.float().mean().item()
    if not kept_ok or abs(share - p) > 0.15:
        problem = ("the outputs kept are not the network's output scaled by 1 / (1 - p): "
                   f"apply dropout once, to the output of {last}" if not kept_ok else
                   f"{share:.0%} of the outputs are zero, expected about {p:.0%}")
        fail(f"{what}\n  {problem}", diagnose(out, lambda c: probe(c, train=True), what))

ACTS = {"gelu": nn.GELU(), "gelu_tanh": nn.GELU(approximate="tanh"), "relu": nn.ReLU()}


def _oracle_layers(d_model: int, d_ff: int | None, bias: bool, dtype, seed: int) -> nn.Module:
    """Two torch nn.Linear layers named like ours, with random (non-zero) biases."""
    torch.manual_seed(seed)
    hidden = 4 * d_model if d_ff is None else d_ff
    layers = nn.Module()
    layers.fc = nn.Linear(d_model, hidden, bias=bias, dtype=dtype)
    layers.proj = nn.Linear(hidden, d_model, bias=bias, dtype=dtype)
    if bias:
        with torch.no_grad():
            layers.fc.bias.uniform_(-0.5, 0.5)
            layers.proj.bias.uniform_(-0.5, 0.5)
    return layers


def _run(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, gradient of sum(output * w) with respect to x) for fixed weights w."""
    x = x.clone().requires_grad_()
    y = module(x)
    w = torch.linspace(-1.0, 1.0, y.numel(), dtype=y.dtype).view_as(y)
    (grad,) = torch.autograd.grad((y * w).sum(), x)
    return y.detach(), grad


def _conv_oracle(layers: nn.Module, act: nn.Module) -> nn.Module:
    """The same network as two Conv1d(kernel_size=1) layers over (B, C, T)."""
    fc, proj = layers.fc, layers.proj
    conv1 = nn.Conv1d(fc.in_features, fc.out_features, 1, dtype=fc.weight.dtype)
    conv2 = nn.Conv1d(proj.in_features, proj.out_features, 1, dtype=fc.weight.dtype)
    with torch.no_grad():
        conv1.weight.copy_(fc.weight[:, :, None])
        conv1.bias.copy_(fc.bias)
        conv2.weight.copy_(proj.weight[:, :, None])
        conv2.bias.copy_(proj.bias)

    class ByConv(nn.Module):
        def forward(self, x):                          # (B, T, C) -> (B, C, T) -> back
            return conv2(act(conv1(x.transpose(1, 2)))).transpose(1, 2)

    return ByConv()


def _ffn_cases(hidden: bool) -> list[dict]:
    f32, f64 = torch.float32, torch.float64
    cases = [dict(label="activation='gelu', a Conv1d of kernel size 1 as oracle", d=8, h=None,
                  act="gelu", bias=True, shape=(2, 5, 8), dtype=f32, conv=True),
             dict(label="activation='relu'", d=8, h=16, act="relu", bias=True, shape=(2, 3, 8),
                  dtype=f32),
             dict(label="activation='gelu_tanh', no bias", d=8, h=None, act="gelu_tanh",
                  bias=False, shape=(1, 4, 8), dtype=f32)]
    if hidden:
        cases += [dict(label="float64", d=16, h=24, act="gelu", bias=True, shape=(3, 7, 16),
                       dtype=f64),
                  dict(label="float64, tanh", d=12, h=None, act="gelu_tanh", bias=True,
                       shape=(2, 4, 12), dtype=f64, conv=True),
                  dict(label="a single token", d=6, h=None, act="gelu", bias=True,
                       shape=(1, 1, 6), dtype=f64),
                  dict(label="no batch axis (T, C)", d=8, h=32, act="relu", bias=False,
                       shape=(5, 8), dtype=f32),
                  dict(label="wide inputs", d=4, h=64, act="gelu", bias=True, shape=(2, 3, 4),
                       dtype=f64, scale=4.0)]
    return cases


@check(T + "FeedForward", part=3, uses=(T + "gelu", T + "gelu_tanh"))
def check_feedforward(FeedForward, hidden: bool = False) -> None:
    """In eval mode, output and input gradient equal torch's Linear -> activation -> Linear
    with the same weights (and the Conv1d(kernel_size=1) form of it)."""
    for i, case in enumerate(_ffn_cases(hidden)):
        layers = _oracle_layers(case["d"], case["h"], case["bias"], case["dtype"], seed=100 + i)
        act = ACTS[case["act"]]
        oracle = _conv_oracle(layers, act) if case.get("conv") else \
            nn.Sequential(layers.fc, act, layers.proj)
        x = oracles.randn(*case["shape"], seed=200 + i, dtype=case["dtype"],
                          scale=case.get("scale", 1.0))
        state = layers.state_dict()

        def probe(cls, case=case, state=state, x=x):
            module = cls(case["d"], case["h"], activation=case["act"], bias=case["bias"])
            module = module.to(case["dtype"])
            module.load_state_dict(state)
            return _run(module.eval(), x)

        compare(FeedForward, probe, _run(oracle, x), parts=("output", "gradient of x"),
                what=f"FeedForward({case['d']}, d_ff={case['h']}, activation='{case['act']}', "
                     f"bias={case['bias']}).eval() on x {case['shape']}, {case['label']}",
                **oracles.tol(case["dtype"]))


@check(T + "FeedForward", part=3, uses=(T + "gelu", T + "gelu_tanh"))
def check_feedforward_dropout(FeedForward, hidden: bool = False) -> None:
    """Dropout acts on the output, only while training: in eval mode the output is the
    network's; in train mode about a fraction p is zero and the rest is scaled by 1/(1-p)."""
    cases = [(16, 0.5, (4, 8, 16))] + ([(8, 0.2, (2, 16, 8)), (32, 0.7, (1, 4, 32))]
                                      if hidden else [])
    for i, (d, p, shape) in enumerate(cases):
        layers = _oracle_layers(d, None, True, torch.float32, seed=300 + i)
        clean = nn.Sequential(layers.fc, ACTS["gelu"], layers.proj)(
            x := oracles.randn(*shape, seed=400 + i)).detach()
        state = layers.state_dict()

        def probe(cls, d=d, p=p, x=x, state=state, train=False):
            module = cls(d, dropout=p)
            module.load_state_dict(state)
            module.train(train)
            torch.manual_seed(1234)
            with torch.no_grad():
                return module(x.clone())

        check_output_dropout(FeedForward, probe, clean, f"FeedForward({d}, dropout={p})",
                             shape, p, "proj")


# ---------------------------------------------------------------- Part 4: parameter count


def _counted(d_model: int, d_ff: int, bias: bool) -> int:
    layers = [nn.Linear(d_model, d_ff, bias=bias, device="meta"),
              nn.Linear(d_ff, d_model, bias=bias, device="meta")]
    return sum(p.numel() for layer in layers for p in layer.parameters())


@check(T + "feedforward_parameters", part=4)
def check_feedforward_parameters(feedforward_parameters, hidden: bool = False) -> None:
    """The number of parameters of the two nn.Linear layers, with or without biases."""
    cases = [(8, 32, True), (8, 32, False), (768, 3072, True)]
    if hidden:
        cases += [(384, 1536, True), (5, 7, True), (1, 1, False), (12288, 49152, True),
                  (3, 100, False)]
    for d_model, d_ff, bias in cases:
        compare(feedforward_parameters, lambda f, d=d_model, h=d_ff, b=bias: f(d, h, b),
                _counted(d_model, d_ff, bias),
                what=f"feedforward_parameters({d_model}, {d_ff}, bias={bias})")
