"""Parts 3 and 4: sampling (`filter_top_k`, `filter_top_p`, `next_token`) and `generate`."""

from __future__ import annotations

import torch

from course.checks import oracles
from course.checks.core import CheckFailed, call, check, compare, copy_of
from course.checks.decoder.mistakes import G
from course.checks.decoder.shared import _hf_gpt2

# ---------------------------------------------------------------- Part 3: sampling


def _top_k_oracle(z: torch.Tensor, k: int) -> torch.Tensor:
    kth = z.sort(dim=-1, descending=True).values[..., min(k, z.size(-1)) - 1:][..., :1]
    return torch.where(z >= kth, z, torch.full_like(z, float("-inf")))


def _top_p_oracle(z: torch.Tensor, p: float) -> torch.Tensor:
    out = torch.full_like(z, float("-inf"))
    flat_z, flat_out = z.reshape(-1, z.size(-1)), out.view(-1, z.size(-1))
    for row, dest in zip(flat_z, flat_out):
        probs = torch.softmax(row.double(), -1)
        mass = 0.0
        for j in probs.argsort(descending=True).tolist():
            dest[j] = row[j]
            mass += probs[j].item()
            if mass >= p:
                break
    return out


def _logits_cases(hidden: bool):
    f32, f64 = torch.float32, torch.float64
    cases = [("(3, 10)", (3, 10), f32, 2.0), ("(1, 6)", (1, 6), f32, 1.0)]
    if hidden:
        cases += [("(2, 4, 9), float64", (2, 4, 9), f64, 3.0), ("(5, 30)", (5, 30), f32, 0.5)]
    return cases


@check(G + "filter_top_k", part=3)
def check_top_k(filter_top_k, hidden: bool = False) -> None:
    """The k largest logits of each row stay, the others become -inf."""
    for i, (label, shape, dtype, scale) in enumerate(_logits_cases(hidden)):
        z = oracles.randn(*shape, seed=600 + i, dtype=dtype) * scale
        for k in (1, 3, shape[-1] + 2) if hidden else (3, shape[-1] + 2):
            compare(filter_top_k, lambda f, z=z, k=k: f(z.clone(), k), _top_k_oracle(z, k),
                    what=f"filter_top_k(logits {label}, k={k})")


@check(G + "filter_top_p", part=3)
def check_top_p(filter_top_p, hidden: bool = False) -> None:
    """The smallest set of likeliest tokens whose probabilities reach p stays."""
    for i, (label, shape, dtype, scale) in enumerate(_logits_cases(hidden)):
        z = oracles.randn(*shape, seed=700 + i, dtype=dtype) * scale
        for p in (0.05, 0.6, 0.9, 1.0) if hidden else (0.6, 0.9):
            compare(filter_top_p, lambda f, z=z, p=p: f(z.clone(), p), _top_p_oracle(z, p),
                    what=f"filter_top_p(logits {label}, p={p})")


@check(G + "next_token", part=3, uses=(G + "filter_top_k", G + "filter_top_p"))
def check_next_token(next_token, hidden: bool = False) -> None:
    """Greedy is the argmax of each row; sampled tokens follow softmax(filtered(z / T)) and
    come from the given generator."""
    f32, f64 = torch.float32, torch.float64
    z = oracles.randn(4, 7, seed=800) * 2
    compare(next_token, lambda f: f(z.clone(), greedy=True), z.argmax(-1, keepdim=True),
            what="next_token(logits (4, 7), greedy=True)")
    cases = [dict(temperature=0.5), dict(temperature=1.0, top_k=3),
             dict(temperature=1.0, top_p=0.7)]
    if hidden:
        cases += [dict(temperature=2.0, top_k=5), dict(temperature=0.8, top_k=4, top_p=0.8),
                  dict(temperature=1.5)]
    N = 20000
    for i, kw in enumerate(cases):
        row = oracles.randn(1, 6, seed=810 + i, dtype=f64 if hidden and i % 2 else f32)
        filtered = row / kw["temperature"]
        if "top_k" in kw:
            filtered = _top_k_oracle(filtered, kw["top_k"])
        if "top_p" in kw:
            filtered = _top_p_oracle(filtered, kw["top_p"])
        expected = torch.softmax(filtered.double(), -1)[0]

        def probe(f, row=row, kw=kw):
            draws = f(row.expand(N, -1).clone(), generator=torch.Generator().manual_seed(7),
                      **kw)
            if not isinstance(draws, torch.Tensor) or draws.shape != (N, 1):
                raise CheckFailed(f"next_token must return (B, 1) token ids, got "
                                  f"{tuple(getattr(draws, 'shape', ()))}")
            return torch.bincount(draws.flatten(), minlength=6).double() / N

        compare(next_token, probe, expected, rtol=0.0, atol=0.02,
                what=f"frequencies of {N} draws of next_token(logits (1, 6), "
                     + ", ".join(f"{k}={v}" for k, v in kw.items()) + ")")
    _check_generator_used(next_token)


def _check_generator_used(next_token) -> None:
    """Two calls with generators seeded alike draw the same tokens, whatever the global random
    state in between: the draw comes from `generator`."""
    z = oracles.randn(64, 9, seed=820)

    def probe(f):
        draws = []
        with torch.random.fork_rng(devices=[]):
            for global_seed in (1, 2):
                torch.manual_seed(global_seed)
                draws.append(f(z.clone(), generator=torch.Generator().manual_seed(11)))
        if not all(isinstance(d, torch.Tensor) for d in draws):
            return draws
        return bool(torch.equal(*draws))

    compare(next_token, probe, True,
            what="next_token(logits (64, 9), generator=torch.Generator().manual_seed(11)) "
                 "twice, the global seed changed in between: the same tokens both times")


# ---------------------------------------------------------------- Part 4: generate


@check(G + "generate", part=4, uses=(G + "next_token",))
def check_generate(generate, hidden: bool = False) -> None:
    """Greedy decoding equals GPT-2's generate(do_sample=False), with and without the cache;
    past block_size, sampling and mode handling equal the reference loop; no forward pass runs
    with gradients on; with the cache each step after the first reads only the newest token
    until the window is full."""
    from solutions.decoder import GPT

    sizes = [(0, 2, 4, 32, 50, 24, 3, 5, 12)]
    if hidden:
        sizes += [(1, 1, 2, 16, 11, 16, 1, 1, 14), (2, 3, 2, 24, 37, 32, 2, 8, 20)]
    for seed, L, H, C, V, P, B, T, n in sizes:
        hf = _hf_gpt2(seed, L, H, C, V, P)
        prompt = oracles.token_ids(V, (B, T), seed=900 + seed)
        expected = hf.generate(prompt, attention_mask=torch.ones_like(prompt),
                               max_new_tokens=n, do_sample=False, eos_token_id=None,
                               pad_token_id=0)
        for use_cache in (True, False):
            compare(generate, lambda f, hf=hf, prompt=prompt, n=n, c=use_cache:
                    f(GPT.from_hf(hf), prompt.clone(), n, greedy=True, use_cache=c),
                    expected, what=f"generate(greedy=True, use_cache={use_cache}), prompt "
                                   f"({B}, {T}), {n} new tokens, compared with GPT-2's")
    reference = copy_of(G + "generate")
    hf = _hf_gpt2(0, 2, 4, 32, 50, 24)
    cases = [("past block_size (24): prompt 6 + 30 new tokens, greedy",
              dict(greedy=True), 30),
             ("sampling, top_k=5, seed 3", dict(top_k=5), 10)]
    if hidden:
        cases += [("past block_size, sampling, top_p=0.9, no cache",
                   dict(top_p=0.9, use_cache=False), 26),
                  ("past block_size, temperature 0.7", dict(temperature=0.7), 40)]
    for label, kw, n in cases:
        prompt = oracles.token_ids(50, (2, 6), seed=950)

        def probe(f, kw=kw, n=n, prompt=prompt):
            model = GPT.from_hf(hf).train()               # generate must use eval mode
            out = f(model, prompt.clone(), n, generator=torch.Generator().manual_seed(3),
                    **kw)
            return out, model.training

        compare(generate, probe, probe(reference), parts=("tokens", "model.training after"),
                what=f"generate, {label}")

    def grad_enabled(f):
        """Whether any forward pass of the model ran with gradients on."""
        model, seen = GPT.from_hf(hf), []
        model.register_forward_pre_hook(lambda module, args: seen.append(
            torch.is_grad_enabled()))
        f(model, oracles.token_ids(50, (2, 4), seed=970), 3, greedy=True)
        return any(seen)

    compare(generate, grad_enabled, False,
            what="gradients on during generate's forward passes (greedy, 3 new tokens)")
    for prompt_len, n in [(5, 30)] + ([(24, 3)] if hidden else []):
        prompt = oracles.token_ids(50, (2, prompt_len), seed=980 + prompt_len)
        what = (f"tokens the model reads at each forward pass of generate(use_cache=True, "
                f"greedy=True), prompt (2, {prompt_len}), {n} new tokens, block_size 24")

        def fed(f, prompt=prompt, n=n):
            return _tokens_fed(f, hf, prompt, n)

        compare(generate, fed, call(reference, fed, what), what=what)


def _tokens_fed(generate, hf, prompt: torch.Tensor, n: int) -> list[int]:
    """How many tokens the model embeds at each forward pass (seen by its token table, however
    the model is called): the prompt, then one token a step while the cache lasts."""
    from solutions.decoder import GPT

    model, fed = GPT.from_hf(hf), []
    model.wte.register_forward_pre_hook(lambda module, args: fed.append(args[0].size(-1)))
    generate(model, prompt.clone(), n, greedy=True, use_cache=True)
    return fed


@check(G + "generate", part=4, uses=(G + "next_token",))
def check_generate_stop(generate, hidden: bool = False) -> None:
    """A row that produced the stop token keeps it; generation ends when every row stopped."""
    from solutions.decoder import GPT
    from solutions.model import ModelConfig

    reference = copy_of(G + "generate")
    cases = [(0, 3, 12)] + ([(1, 5, 20), (2, 1, 9)] if hidden else [])
    for seed, B, n in cases:
        torch.manual_seed(seed)
        model = GPT(ModelConfig(vocab_size=6, block_size=32, n_layer=1, n_head=2, n_embd=16))
        prompt = oracles.token_ids(6, (B, 2), seed=960 + seed)

        def probe(f, model=model, prompt=prompt, n=n):
            return f(model, prompt.clone(), n, stop=0, generator=torch.Generator().manual_seed(1))

        compare(generate, probe, probe(reference),
                what=f"generate with stop=0 (sampling), prompt ({B}, 2), up to {n} new tokens")
