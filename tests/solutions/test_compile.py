"""The model under torch.compile and in bf16, on the CPU (inductor, which needs a C++ compiler:
its tests skip without one, except under CI, where .ci/run installs g++ and a skip fails).

- the GPT and the encoder compile whole (``fullgraph=True``: any graph break is an error),
  forward and backward, and give eager's outputs and gradients in float32 within
  rtol 1e-4, atol 1e-5 (inductor fuses and reorders the float32 sums);
- ``train(..., compile=True)`` takes a step and evaluates, matching eager's losses (rtol 1e-4);
- bf16 autocast training on the CPU runs in bf16, learns, and follows float32's loss at every
  step within 0.01 nats;
- every causal layer of the GPT asks PyTorch's attention for ``is_causal=True`` with no mask,
  on the CPU and on the meta device, eager and compiled, so that a GPU can run FlashAttention
  (the graph of a compiled model is read by a custom backend; an eager call is seen by a
  TorchFunctionMode, whatever name the model imports the function under);
- the measuring code of ``python -m course bench gpu`` runs on the CPU (tiny sizes).
"""

from __future__ import annotations

import math
import os
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from solutions.decoder import GPT
from solutions.encoder import Encoder
from solutions.model import ModelConfig
from solutions.training import TrainConfig, train

RTOL, ATOL = 1e-4, 1e-5
# One size and batch shape for every compiled GPT, so that inductor compiles each of its C++
# kernels once (compiling them dominates these tests' time).
SMALL = dict(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16)
B, T = 4, 16


@pytest.fixture
def inductor():
    """Inductor's CPU backend can compile here: a C++ compiler is installed."""
    if not shutil.which(os.environ.get("CXX", "g++")):
        if os.environ.get("CI"):
            pytest.fail("a C++ compiler is required under CI (.ci/run installs g++)")
        pytest.skip("torch.compile on the CPU needs a C++ compiler (apt-get install -y g++)")


@pytest.fixture(scope="module", autouse=True)
def compile_in_process():
    """Inductor compiles in this process: no pool of workers to start for a few kernels."""
    with torch._inductor.config.patch(compile_threads=1):
        yield


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test traces from scratch: no graph or guard of another test is reused."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def ids(shape, seed=0, vocab=SMALL["vocab_size"]):
    return torch.randint(vocab, shape, generator=torch.Generator().manual_seed(seed))


def assert_compiled_matches_eager(model, inputs, pick):
    """Compile `model` whole; the tensor `pick(model(*inputs))` and the gradients of its sum
    weighted by fixed random numbers match eager's, and the backward pass is the compiled one."""
    compiled = torch.compile(model, fullgraph=True)
    got = pick(compiled(*inputs))
    assert got.grad_fn is not None and got.grad_fn.name() == "CompiledFunctionBackward"
    weight = torch.randn(got.shape, generator=torch.Generator().manual_seed(2))
    (got * weight).sum().backward()
    got_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    expected = pick(model(*inputs))
    (expected * weight).sum().backward()
    torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads and got_grads.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=RTOL, atol=ATOL, msg=name)


def test_gpt_compiles_whole_forward_and_backward(inductor):
    torch.manual_seed(0)
    model = GPT(ModelConfig(**SMALL))
    x, y = ids((B, T)), ids((B, T), seed=1)
    assert_compiled_matches_eager(model, (x, y), lambda out: out[1])           # the loss


def test_encoder_compiles_whole_forward_and_backward(inductor):
    torch.manual_seed(0)
    model = Encoder(ModelConfig(**SMALL, norm_first=False))  # BERT's layout
    assert_compiled_matches_eager(model, (ids((B, T)),), lambda hidden: hidden)


def corpus(n=3000):
    """A learnable sequence: each token is the one before plus 7, modulo the vocabulary."""
    data = torch.arange(n) * 7 % SMALL["vocab_size"]
    return {"train": data, "val": data[: n // 4]}


def run_training(dtype="float32", compile=False, max_iters=1, hook=None):
    torch.manual_seed(0)
    model = GPT(ModelConfig(**SMALL))
    if hook:
        model.lm_head.register_forward_hook(hook)
    config = TrainConfig(batch_size=B, block_size=T, max_iters=max_iters, lr=1e-2, min_lr=1e-3,
                         warmup_iters=1, eval_every=max_iters, eval_iters=1, dtype=dtype,
                         compile=compile, progress=False, seed=0)
    return train(model, corpus(), config, "cpu")


def test_train_compiled_takes_a_step_like_eager(inductor):
    compiled, eager = run_training(compile=True), run_training()
    assert len(compiled["losses"]) == 1 and math.isfinite(compiled["losses"][0])
    assert compiled["losses"] == pytest.approx(eager["losses"], rel=RTOL)
    for row, expected in zip(compiled["evals"], eager["evals"], strict=True):  # before, after
        assert row["val_loss"] == pytest.approx(expected["val_loss"], rel=RTOL)


def test_bf16_autocast_training_on_the_cpu():
    dtypes = set()
    bf16 = run_training("bfloat16", max_iters=12,
                        hook=lambda module, args, out: dtypes.add(out.dtype))
    fp32 = run_training("float32", max_iters=12)
    assert dtypes == {torch.bfloat16}                     # the logits were computed in bf16
    losses = bf16["losses"]
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-3:]) / 3 < losses[0] - 0.5         # it learns
    assert losses == pytest.approx(fp32["losses"], abs=0.01)  # and follows float32


# ---------------------------------------------------------------------------------------------
# every causal layer asks for is_causal=True and no mask
# ---------------------------------------------------------------------------------------------

SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale")


def sdpa_call(args, kwargs) -> dict:
    """A call's arguments by name: {"attn_mask": ..., "is_causal": ..., ...}."""
    return {"attn_mask": None, "is_causal": False, **dict(zip(SDPA_ARGS, args)), **kwargs}


class SdpaSpy(TorchFunctionMode):
    """Records the arguments of every eager call of F.scaled_dot_product_attention."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            self.calls.append(sdpa_call(args, kwargs))
        return func(*args, **kwargs)


def compiled_sdpa_calls(model, *inputs) -> list[dict]:
    """The scaled_dot_product_attention calls in the graph torch.compile captures of `model`
    (whole: fullgraph=True); the graph then runs eagerly."""
    calls = []

    def backend(graph_module, example_inputs):
        calls.extend(sdpa_call(node.args, node.kwargs) for node in graph_module.graph.nodes
                     if node.op == "call_function"
                     and node.target is F.scaled_dot_product_attention)
        return graph_module.forward

    torch.compile(model, backend=backend, fullgraph=True)(*inputs)
    return calls


def describe(mask):
    """None, or what kind of mask was passed: a tensor's shape, a graph node's name."""
    if mask is None:
        return None
    return f"a {tuple(mask.shape)} mask" if isinstance(mask, torch.Tensor) else f"mask {mask}"


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_every_causal_layer_calls_attention_with_is_causal_and_no_mask(device, compiled):
    config = ModelConfig(**{**SMALL, "n_layer": 3})
    with torch.device(device):
        torch.manual_seed(0)
        model = GPT(config)
        x = torch.randint(config.vocab_size, (B, T))
    if compiled:
        calls = compiled_sdpa_calls(model, x, x)
    else:
        with SdpaSpy() as spy:
            model(x, x)
        calls = spy.calls
    assert len(calls) == config.n_layer, f"{len(calls)} attention calls for {config.n_layer} layers"
    seen = [(call["is_causal"], describe(call["attn_mask"])) for call in calls]
    assert seen == [(True, None)] * config.n_layer, (
        f"every layer should pass is_causal=True and attn_mask=None; got {seen}")


# ---------------------------------------------------------------------------------------------
# the GPU benchmark's measuring code, on the CPU (its timings are never asserted)
# ---------------------------------------------------------------------------------------------


def test_gpu_benchmark_measures_each_model_on_the_cpu():
    from course.bench import gpu

    config = ModelConfig(**{**SMALL, "activation": "gelu_tanh"})
    rows = gpu.training("cpu", config, 2, rounds=1, steps=1, warmup=1, backend="eager")
    assert [row["name"] for row in rows] == ["ours", "nanoGPT", "ours, fused=False"]
    V, L, C, H = config.vocab_size, config.n_layer, config.n_embd, config.n_head
    params = V * C + L * (12 * C * C + 13 * C) + 2 * C    # without the position table
    flops = 6 * params + 12 * L * H * (C // H) * T         # nanoGPT's count, per token
    for row in rows:
        assert row["gflop_per_token"] * 1e9 == flops, row["name"]  # the same sizes
        assert row["tokens_per_s"] > 0 and math.isfinite(row["loss"])
        assert row["mfu"] == pytest.approx(flops * row["tokens_per_s"] / gpu.PEAK_FLOPS)
        assert row["attention"] == "flash", row                # PyTorch's CPU flash kernel
        assert "aten::_scaled_dot_product_flash_attention_for_cpu" in row["kernels"]
    assert rows[1]["ratio"] == 1.0 and isinstance(rows[0]["ok"], bool)
    skipped = gpu.training("cpu", config, 2, rounds=1, steps=1, warmup=0, backend=None,
                           budget_s=0)                 # no time left after the first model
    assert [("skipped" in row) for row in skipped] == [False, True, True]
    row = gpu.generation("cpu", config, prompt=4, new_tokens=4, rounds=1)
    assert row["cached_tokens_per_s"] > 0 and row["uncached_tokens_per_s"] > 0
    assert row["ratio"] == pytest.approx(row["cached_tokens_per_s"]
                                         / row["uncached_tokens_per_s"])


def test_kernel_family_names_the_attention_kernel():
    from course.bench.gpu import kernel_family

    assert kernel_family(["pytorch_flash::flash_fwd_kernel", "flash_bwd_dq_dk_dv"]) == "flash"
    assert kernel_family(["fmha_cutlassF_bf16_aligned_64x64_rf_sm80"]) == "efficient"
    assert kernel_family(["cudnn_generated_fort_native_sdpa_sm90_flash_fprop"]) == "cudnn"
    assert kernel_family([]) == "math"
