"""The reference LayerNorm and RMSNorm against torch.nn.LayerNorm, F.layer_norm and
torch.nn.RMSNorm: outputs and gradients, float32 and float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from solutions.normalization import FusedLayerNorm, LayerNorm, RMSNorm, layer_norm

DTYPES = [torch.float32, torch.float64]


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)


def randn(*shape, dtype=torch.float32, seed=0, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).mul_(scale).add_(shift).to(dtype)


def random_affine(module, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))


def forward_backward(module, x):
    x = x.detach().clone().requires_grad_()
    y = module(x)
    (y * torch.linspace(-1, 2, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
    return y, x.grad, [p.grad for p in module.parameters()]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 5, 16), (7, 3), (1, 1, 1, 8), (4, 2)])
def test_layernorm_matches_torch_forward_and_backward(dtype, shape):
    C = shape[-1]
    ours, theirs = LayerNorm(C).to(dtype), nn.LayerNorm(C, dtype=dtype)
    assert [n for n, _ in ours.named_parameters()] == ["weight", "bias"]
    torch.testing.assert_close(ours.weight, theirs.weight)
    torch.testing.assert_close(ours.bias, theirs.bias)
    random_affine(ours)
    theirs.load_state_dict(ours.state_dict())
    x = randn(*shape, dtype=dtype, scale=3.0, shift=2.0)
    for a, b in zip(forward_backward(ours, x), forward_backward(theirs, x), strict=True):
        torch.testing.assert_close(a, b, **tol(dtype))


@pytest.mark.parametrize("eps", [1e-5, 1e-12, 0.1])
def test_layernorm_eps_inside_the_square_root(eps):
    x = randn(3, 6, 10, dtype=torch.float64, scale=0.01)  # small variance: eps matters
    torch.testing.assert_close(LayerNorm(10, eps=eps).double()(x), F.layer_norm(x, (10,), eps=eps))


def test_each_token_normalised_alone():
    x = randn(4, 6, 32, dtype=torch.float64, scale=5.0, shift=-3.0)
    y = LayerNorm(32).double()(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(4, 6, dtype=torch.float64))
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(4, 6, dtype=torch.float64),
                               rtol=1e-4, atol=1e-4)
    # a token's output does not depend on the other tokens or on the other sequences
    torch.testing.assert_close(LayerNorm(32).double()(x[2:3, 4:5]), y[2:3, 4:5])


def test_constant_token_gives_bias_not_nan():
    ln = LayerNorm(5)
    random_affine(ln)
    y = ln(torch.full((2, 3, 5), 7.0))
    torch.testing.assert_close(y, ln.bias.detach().expand(2, 3, 5))


def test_functional_matches_f_layer_norm():
    x, w, b = randn(2, 3, 8), randn(8, seed=1), randn(8, seed=2)
    torch.testing.assert_close(layer_norm(x, w, b, 1e-5), F.layer_norm(x, (8,), w, b, 1e-5))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 5, 16), (3, 7), (1, 1, 4)])
def test_rmsnorm_matches_torch(dtype, shape):
    C = shape[-1]
    ours, theirs = RMSNorm(C).to(dtype), nn.RMSNorm(C, eps=1e-6, dtype=dtype)
    assert [n for n, _ in ours.named_parameters()] == ["weight"]
    random_affine(ours)
    theirs.load_state_dict(ours.state_dict())
    x = randn(*shape, dtype=dtype, scale=2.0, shift=1.0)
    for a, b in zip(forward_backward(ours, x), forward_backward(theirs, x), strict=True):
        torch.testing.assert_close(a, b, **tol(dtype))


def test_rmsnorm_keeps_the_mean_layernorm_removes_it():
    x = randn(2, 3, 64, dtype=torch.float64, shift=5.0)
    assert (RMSNorm(64).double()(x).mean(-1) > 0.9).all()
    assert (LayerNorm(64).double()(x).mean(-1).abs() < 1e-12).all()


@pytest.mark.parametrize("make, message", [
    (lambda: LayerNorm(8)(torch.zeros(2, 3, 6)), r"8 features.*\(2, 3, 6\)"),
    (lambda: FusedLayerNorm(8)(torch.zeros(2, 3, 6)), r"8 features.*\(2, 3, 6\)"),
    (lambda: RMSNorm(8)(torch.zeros(2, 8, 3)), r"RMSNorm.*8 features.*\(2, 8, 3\)"),
    (lambda: layer_norm(torch.zeros(4, 5), torch.ones(4), torch.zeros(4)), "4 features"),
    (lambda: LayerNorm((8,)), "normalized_shape"),
    (lambda: RMSNorm(0), "normalized_shape"),
])
def test_bad_input_gets_a_clear_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("shape, eps", [((2, 5, 16), 1e-5), ((3, 7), 1e-12), ((1, 1, 4), 0.1)])
def test_fused_layernorm_equals_the_definition(shape, eps):
    """Same parameters, same output and gradients (x, weight, bias) in float64."""
    C = shape[-1]
    ours, fused = LayerNorm(C, eps=eps).double(), FusedLayerNorm(C, eps=eps).double()
    random_affine(ours)
    fused.load_state_dict(ours.state_dict())
    assert list(fused.state_dict()) == list(ours.state_dict()) == ["weight", "bias"]
    x = randn(*shape, dtype=torch.float64, scale=3.0, shift=2.0)
    for a, b in zip(forward_backward(fused, x), forward_backward(ours, x), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
