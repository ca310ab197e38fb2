"""Checks for Exercise 4 (the feed-forward network) and the catalogue of its mistakes.

Oracles are independent of the reference: `torch.nn.functional.gelu` (with `approximate="none"`
and `"tanh"`), `torch.nn.Linear` layers around PyTorch's activations, a `torch.nn.Conv1d` of
kernel size 1 (the position-wise view), and parameter counts of `torch.nn.Linear` layers built
on the meta device. `hidden=True` adds float64, other shapes, a batch of one, extreme inputs and
other sizes. The constructor of `FeedForward` is given (tests/solutions/test_feedforward.py proves
its layout); the checks grade its `forward`. `SLIPS` is a second catalogue: wrong versions written
as a learner would write them (not edits of the reference); tests prove each fails and never
gets another mistake's hint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import oracles
from course.checks.core import Mistake, Raised, Slip, call, check, compare, diagnose, fail

T = "solutions.feedforward."
EXACT = "0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))"
TANH = "0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))"

MISTAKES = [
    # Part 1: gelu
    Mistake("gelu_is_relu", T + "gelu", EXACT, "torch.relu(x)",
            "this is ReLU, max(0, x); GELU is x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))), "
            "smooth around 0 and slightly negative for small negative x"),
    Mistake("gelu_is_tanh", T + "gelu", EXACT, TANH,
            "this is GPT-2's tanh approximation of GELU; Part 1 asks for the exact GELU with "
            "torch.erf: 0.5 * x * (1 + erf(x / sqrt(2)))"),
    Mistake("gelu_no_sqrt2", T + "gelu", "torch.erf(x / math.sqrt(2.0))", "torch.erf(x)",
            "erf's argument is x / sqrt(2), not x: Phi(x) = (1 + erf(x / sqrt(2))) / 2"),
    Mistake("gelu_times_sqrt2", T + "gelu", "x / math.sqrt(2.0)", "x * math.sqrt(2.0)",
            "erf's argument is x divided by sqrt(2), not multiplied by it"),
    Mistake("gelu_no_half", T + "gelu", "0.5 * x * (1.0 + torch.erf", "x * (1.0 + torch.erf",
            "the factor 1/2 is missing: Phi(x) = (1 + erf(x / sqrt(2))) / 2, so "
            "GELU(x) = 0.5 * x * (1 + erf(x / sqrt(2)))"),
    Mistake("gelu_sigmoid", T + "gelu", EXACT, "x * torch.sigmoid(1.702 * x)",
            "this is the sigmoid approximation x * sigmoid(1.702 x); write the exact GELU "
            "with torch.erf"),
    # Part 2: gelu_tanh
    Mistake("tanh_is_exact", T + "gelu_tanh", TANH, EXACT,
            "this is the exact GELU (with erf); Part 2 asks for the tanh approximation "
            "0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))"),
    Mistake("tanh_no_cubic", T + "gelu_tanh", "(x + 0.044715 * x ** 3)", "x",
            "the cubic term is missing: tanh's argument is sqrt(2 / pi) * (x + 0.044715 * x**3)"),
    Mistake("tanh_no_sqrt", T + "gelu_tanh", "math.sqrt(2.0 / math.pi)", "(2.0 / math.pi)",
            "the factor is the square root of 2 / pi (about 0.798), not 2 / pi"),
    Mistake("tanh_square", T + "gelu_tanh", "x ** 3", "x ** 2",
            "the correction term is 0.044715 * x**3 (a cube, so it keeps the sign of x)"),
    # Part 3: FeedForward.forward (the constructor is given)
    Mistake("ffn_relu", T + "FeedForward", "h = gelu(h)", "h = torch.relu(h)",
            "activation='gelu' uses ReLU; use your gelu for 'gelu' (ReLU only for 'relu')"),
    Mistake("ffn_tanh_for_exact", T + "FeedForward", "h = gelu(h)", "h = gelu_tanh(h)",
            "activation='gelu' uses the tanh approximation; 'gelu' is the exact GELU, "
            "'gelu_tanh' the approximation"),
    Mistake("ffn_activation_ignored", T + "FeedForward", 'if self.activation == "gelu":',
            "if True:",
            "the activation used is not the one named by `activation`: 'gelu' is your gelu, "
            "'gelu_tanh' your gelu_tanh (the approximation GPT-2 was trained with) and 'relu' "
            "torch.relu"),
    Mistake("ffn_no_activation", T + "FeedForward", "h = self.fc(x)\n", "h = self.fc(x)\n"
            "        return F.dropout(self.proj(h), p=self.dropout, training=self.training)\n",
            "there is no activation between the two linear layers: without it the network "
            "is one linear map; apply the activation to fc's output"),
    Mistake("ffn_no_proj", T + "FeedForward", "y = self.proj(h)", "y = h",
            "the second linear layer self.proj is missing: it maps the d_ff hidden features "
            "back to d_model"),
    Mistake("ffn_dropout_at_eval", T + "FeedForward",
            "F.dropout(y, p=self.dropout, training=self.training)", "F.dropout(y, p=self.dropout)",
            "dropout is applied in eval mode too: F.dropout(y, p, training=self.training) "
            "(F.dropout's training flag defaults to True)"),
    Mistake("ffn_activation_last", T + "FeedForward", "y = self.proj(h)",
            "y = self.proj(self.fc(x))\n"
            "        y = {'gelu': gelu, 'gelu_tanh': gelu_tanh, 'relu': torch.relu}"
            "[self.activation](y)",
            "the activation acts after the second linear layer; it belongs between them, on the "
            "d_ff hidden features: proj(activation(fc(x)))"),
    Mistake("ffn_dropout_on_hidden", T + "FeedForward",
            "y = self.proj(h)\n        return F.dropout(y, p=self.dropout, training=self.training)",
            "y = self.proj(F.dropout(h, p=self.dropout, training=self.training))\n"
            "        return y",
            "dropout acts on the hidden features before proj; in this network it acts once, on "
            "the output of proj"),
    Mistake("ffn_residual_inside", T + "FeedForward",
            "return F.dropout(y, p=self.dropout, training=self.training)",
            "return x + F.dropout(y, p=self.dropout, training=self.training)",
            "the input x was added to the output: the residual connection belongs to the "
            "transformer block (Chapter 5), not to the feed-forward network itself"),
    # Part 4: feedforward_parameters
    Mistake("params_no_bias", T + "feedforward_parameters",
            "biases = d_ff + d_model if bias else 0", "biases = 0",
            "the biases are not counted: fc has d_ff of them and proj d_model"),
    Mistake("params_bias_ignored", T + "feedforward_parameters",
            "biases = d_ff + d_model if bias else 0", "biases = d_ff + d_model",
            "with bias=False there are no biases to count"),
    Mistake("params_one_matrix", T + "feedforward_parameters",
            "weights = d_model * d_ff + d_ff * d_model", "weights = d_model * d_ff",
            "only one weight matrix is counted: fc holds d_model * d_ff weights and proj "
            "another d_ff * d_model"),
]


def _grid(dtype: torch.dtype) -> torch.Tensor:
    """Points where the exact and the tanh GELU differ most, and around zero."""
    return torch.linspace(-5.0, 5.0, 41, dtype=torch.float64).to(dtype)


def _gelu_cases(hidden: bool) -> list[tuple[str, torch.Tensor]]:
    f32, f64 = torch.float32, torch.float64
    cases = [("a grid from -5 to 5", _grid(f32)),
             ("(2, 3, 4) random, float32", oracles.randn(2, 3, 4, seed=1, scale=2.0))]
    if hidden:
        cases += [("a grid from -5 to 5, float64", _grid(f64)),
                  ("(1000,) random, float64", oracles.randn(1000, seed=2, dtype=f64, scale=3.0)),
                  ("(1, 1, 3072) activations", oracles.randn(1, 1, 3072, seed=3, scale=4.0)),
                  ("a 0-d tensor, float64", torch.tensor(-0.75, dtype=f64))]
    return cases


def _check_activation(fn, name: str, oracle, hidden: bool) -> None:
    for label, x in _gelu_cases(hidden):
        compare(fn, lambda f, x=x: f(x.clone()), oracle(x),
                what=f"{name}(x) on {label}", **oracles.tol(x.dtype))


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="none")


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


# ---------------------------------------------------------------- Parts 1 and 2: GELU


@check(T + "gelu", part=1)
def check_gelu(gelu, hidden: bool = False) -> None:
    """gelu(x) equals F.gelu(x) elementwise, any shape, the dtype of x."""
    _check_activation(gelu, "gelu", _gelu, hidden)


@check(T + "gelu", part=1)
def check_gelu_extremes(gelu, hidden: bool = False) -> None:
    """Large inputs: GELU(x) -> x for large x, -> 0 for very negative x, never NaN."""
    dtypes = [torch.float32] + ([torch.float64] if hidden else [])
    for dtype in dtypes:
        x = torch.tensor([-1e4, -60.0, -10.0, -0.75, 0.0, 10.0, 60.0, 1e4], dtype=dtype)
        compare(gelu, lambda f, x=x: f(x.clone()), _gelu(x),
                what=f"gelu(x) on very large and small inputs, {dtype}", **oracles.tol(dtype))


@check(T + "gelu_tanh", part=2)
def check_gelu_tanh(gelu_tanh, hidden: bool = False) -> None:
    """gelu_tanh(x) equals F.gelu(x, approximate="tanh") elementwise."""
    _check_activation(gelu_tanh, "gelu_tanh", _gelu_tanh, hidden)


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


# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("gelu_where_relu", T + "gelu", """
def gelu(x):
    return torch.where(x > 0, x, torch.zeros_like(x))
""", "gelu_is_relu"),
    Slip("gelu_written_as_tanh", T + "gelu", """
def gelu(x):
    inner = math.sqrt(2 / math.pi) * (x + 0.044715 * torch.pow(x, 3))
    return 0.5 * x * (1 + torch.tanh(inner))
""", "gelu_is_tanh"),
    Slip("gelu_rounded_constant", T + "gelu", """
def gelu(x):
    return 0.5 * x * (1 + torch.erf(x * 0.7071))
""", None),
    Slip("gelu_forgot_x", T + "gelu", """
def gelu(x):
    cdf = 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    return cdf
""", None),
    Slip("gelu_sigmoid_by_hand", T + "gelu", """
def gelu(x):
    return x / (1 + torch.exp(-1.702 * x))
""", "gelu_sigmoid"),
    Slip("tanh_without_cube", T + "gelu_tanh", """
def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh((2 / math.pi) ** 0.5 * x))
""", "tanh_no_cubic"),
    Slip("tanh_typo_coefficient", T + "gelu_tanh", """
def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.44715 * x ** 3)))
""", None),
    Slip("ffn_sequential_gelu_only", T + "FeedForward.forward", """
def forward(self, x):
    return F.dropout(self.proj(F.gelu(self.fc(x))), self.dropout, self.training)
""", "ffn_activation_ignored"),
    Slip("ffn_dropout_on_hidden", T + "FeedForward.forward", """
def forward(self, x):
    acts = {"gelu": gelu, "gelu_tanh": gelu_tanh, "relu": torch.relu}
    hidden = acts[self.activation](self.fc(x))
    hidden = F.dropout(hidden, self.dropout, self.training)
    return self.proj(hidden)
""", "ffn_dropout_on_hidden"),
    Slip("ffn_both_gelus_exact", T + "FeedForward.forward", """
def forward(self, x):
    acts = {"relu": torch.relu, "gelu": gelu, "gelu_tanh": gelu}
    return F.dropout(self.proj(acts[self.activation](self.fc(x))), self.dropout, self.training)
""", "ffn_activation_ignored"),
    Slip("ffn_misspelt_tanh", T + "FeedForward.forward", """
def forward(self, x):
    h = self.fc(x)
    if self.activation == "relu":
        h = torch.relu(h)
    elif self.activation == "tanh":
        h = gelu_tanh(h)
    else:
        h = gelu(h)
    return F.dropout(self.proj(h), self.dropout, self.training)
""", "ffn_activation_ignored"),
    Slip("ffn_functional_dropout_default", T + "FeedForward.forward", """
def forward(self, x):
    if self.activation == "relu":
        h = torch.relu(self.fc(x))
    elif self.activation == "gelu_tanh":
        h = gelu_tanh(self.fc(x))
    else:
        h = gelu(self.fc(x))
    return F.dropout(self.proj(h), self.dropout)
""", "ffn_dropout_at_eval"),
    Slip("ffn_activation_last", T + "FeedForward.forward", """
def forward(self, x):
    act = {"gelu": gelu, "gelu_tanh": gelu_tanh, "relu": torch.relu}[self.activation]
    y = act(self.proj(self.fc(x)))
    return F.dropout(y, self.dropout, self.training)
""", "ffn_activation_last"),
    Slip("ffn_adds_its_input", T + "FeedForward.forward", """
def forward(self, x):
    act = {"gelu": gelu, "gelu_tanh": gelu_tanh, "relu": torch.relu}[self.activation]
    return x + F.dropout(self.proj(act(self.fc(x))), self.dropout, self.training)
""", "ffn_residual_inside"),
    Slip("ffn_dropout_twice", T + "FeedForward.forward", """
def forward(self, x):
    act = {"gelu": gelu, "gelu_tanh": gelu_tanh, "relu": torch.relu}[self.activation]
    h = F.dropout(act(self.fc(x)), self.dropout, self.training)
    return F.dropout(self.proj(h), self.dropout, self.training)
""", None),
    Slip("params_bias_always", T + "feedforward_parameters", """
def feedforward_parameters(d_model, d_ff, bias=True):
    return 2 * d_model * d_ff + d_model + d_ff
""", "params_bias_ignored"),
    Slip("params_assumes_4x", T + "feedforward_parameters", """
def feedforward_parameters(d_model, d_ff, bias=True):
    n = 8 * d_model * d_model
    if bias:
        n += 5 * d_model
    return n
""", None),
    Slip("gelu_erf_over_two", T + "gelu", """
def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / 2))
""", None),
    Slip("gelu_no_half", T + "gelu", """
def gelu(x):
    return x * (1 + torch.erf(x / math.sqrt(2)))
""", "gelu_no_half"),
    Slip("tanh_pi_fraction_flipped", T + "gelu_tanh", """
def gelu_tanh(x):
    c = math.sqrt(math.pi / 2)
    return 0.5 * x * (1 + torch.tanh(c * (x + 0.044715 * x ** 3)))
""", None),
    Slip("tanh_square_not_cube", T + "gelu_tanh", """
def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x * x)))
""", "tanh_square"),
    Slip("ffn_gelu_means_tanh", T + "FeedForward.forward", """
def forward(self, x):
    h = self.fc(x)
    h = torch.relu(h) if self.activation == "relu" else gelu_tanh(h)
    return F.dropout(self.proj(h), p=self.dropout, training=self.training)
""", "ffn_tanh_for_exact"),
    Slip("ffn_fresh_dropout_module", T + "FeedForward.forward", """
def forward(self, x):
    act = {"gelu": gelu, "gelu_tanh": gelu_tanh, "relu": torch.relu}[self.activation]
    return nn.Dropout(self.dropout)(self.proj(act(self.fc(x))))
""", "ffn_dropout_at_eval"),
    Slip("ffn_proj_without_bias", T + "FeedForward.forward", """
def forward(self, x):
    act = {"gelu": gelu, "gelu_tanh": gelu_tanh, "relu": torch.relu}[self.activation]
    h = act(self.fc(x))
    y = F.linear(h, self.proj.weight)
    return F.dropout(y, p=self.dropout, training=self.training)
""", None),
    Slip("params_one_bias_only", T + "feedforward_parameters", """
def feedforward_parameters(d_model, d_ff, bias=True):
    return 2 * d_model * d_ff + (d_ff if bias else 0)
""", None),
    Slip("params_bias_per_hidden_twice", T + "feedforward_parameters", """
def feedforward_parameters(d_model, d_ff, bias=True):
    total = d_model * d_ff * 2
    if bias:
        total += 2 * d_ff
    return total
""", None),
]
