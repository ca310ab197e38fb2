"""Every module of the reference transformer runs forward and backward on the `meta` device.

A tensor created inside `forward` without `device=` lands on the CPU and fails here, so this
proves the modules are ready for a GPU without needing one.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch

import solutions

# class name -> (constructor, example inputs on a device). Every nn.Module in `solutions` must
# appear here, so a new module cannot skip this test.
EXAMPLES: dict[str, tuple] = {}


def modules_in_solutions() -> dict[str, type]:
    found = {}
    for info in pkgutil.iter_modules(solutions.__path__):
        module = importlib.import_module(f"solutions.{info.name}")
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, torch.nn.Module)
                    and obj.__module__ == module.__name__):
                found[name] = obj
    return found


def test_every_module_has_an_example():
    missing = sorted(set(modules_in_solutions()) - set(EXAMPLES))
    assert not missing, f"add these modules to EXAMPLES: {missing}"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_forward_and_backward_on_meta(name):
    build, inputs = EXAMPLES[name]
    torch.manual_seed(0)
    module = build().to("meta")
    module.train()
    out = module(*inputs("meta"))
    out = out[0] if isinstance(out, tuple) else out
    assert out.device.type == "meta"
    out.float().sum().backward()
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    assert all(g is not None and g.device.type == "meta" for g in grads)


def test_a_cpu_tensor_made_in_forward_is_caught():
    class Leaky(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3))

        def forward(self, x):
            return x * self.w + torch.arange(3)  # no device=: lands on the CPU

    with pytest.raises(RuntimeError):
        Leaky().to("meta")(torch.ones(3, device="meta"))
