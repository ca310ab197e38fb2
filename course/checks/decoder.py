"""Checks for Exercise 8 (decoder) and the catalogue of decoder and decoding mistakes.

Oracles: Hugging Face's GPT-2 (``GPT2LMHeadModel`` with random weights, no download) for the
GPT's logits, loss, parameter count and greedy generation; our Chapter 3 attention over the
whole sequence with an explicit causal mask for the KV cache (which the attention itself
fills, through ``cache=``); a sort-based top-k / top-p written here and
``torch.softmax`` for sampling (frequencies of many draws). ``hidden=True`` adds other sizes,
float64, a batch of one, prompts longer than the window and other seeds.
"""

from __future__ import annotations

import dataclasses
from functools import cache

import torch
import torch.nn.functional as F

from course.checks import oracles
from course.checks.core import CheckFailed, Mistake, Slip, call, check, compare, copy_of

M = "solutions.decoder."
G = "solutions.generation."

MISTAKES = [
    # Part 1: GPT.forward (the constructor is given)
    Mistake("cache_bypassed", M + "GPT",
            "x = block(x, cache=None if cache is None else cache[i])",
            "x = block(x)",
            "with a cache, the blocks run without it, so the new tokens never see the earlier "
            "ones: pass each block its layer of the cache, block(x, cache=cache[i])"),
    Mistake("cache_same_layer", M + "GPT", "cache[i]", "cache[0]",
            "every block reads and writes the same layer of the cache: pass each block its own "
            "layer cache[i] (enumerate the blocks) so that each keeps its own keys and values"),
    Mistake("targets_shifted_twice", M + "GPT", "lm_loss(logits, targets, ignore_index)",
            "lm_loss(logits[:, :-1], targets[:, 1:], ignore_index)",
            "the targets are shifted again inside forward: targets[:, t] already is the token "
            "after idx[:, t], so compare logits[:, t] with targets[:, t]"),
    Mistake("ignore_index_dropped", M + "GPT", "lm_loss(logits, targets, ignore_index)",
            "lm_loss(logits, targets)",
            "ignore_index is not passed on: targets equal to ignore_index must not count in "
            "the loss"),
    Mistake("positions_ignore_cache", M + "GPT", "self.positions[start:start + T]",
            "self.positions[:T]",
            "with a KV cache the new tokens' positions start at the cache length, not at 0: "
            "use self.positions[start:start + T]"),
    Mistake("no_final_norm", M + "GPT", "self.lm_head(self.ln_f(x))", "self.lm_head(x)",
            "the final LayerNorm is missing: apply self.ln_f before the LM head"),
    Mistake("no_embedding_dropout", M + "GPT", "x = self.drop(self.wte(idx) + self.wpe(pos))",
            "x = self.wte(idx) + self.wpe(pos)",
            "the embedding dropout is missing: in training mode GPT-2 drops the sum of the "
            "token and position embeddings, x = self.drop(wte(idx) + wpe(positions))"),
    Mistake("no_positions", M + "GPT", "self.wte(idx) + self.wpe(pos)", "self.wte(idx)",
            "the position embeddings are missing: add self.wpe(positions) to the token "
            "embeddings"),
    # Part 2: LayerCache
    Mistake("cache_not_appended", M + "LayerCache",
            "k, v = torch.cat([self.k, k], dim=-2), torch.cat([self.v, v], dim=-2)",
            "k, v = k, v",
            "update replaces the cached keys and values with the new ones, so a new token "
            "never sees the earlier tokens: append them after the past (torch.cat, dim=-2)"),
    Mistake("cache_wrong_axis", M + "LayerCache",
            "torch.cat([self.k, k], dim=-2), torch.cat([self.v, v], dim=-2)",
            "torch.cat([self.k, k], dim=1), torch.cat([self.v, v], dim=1)",
            "the new keys and values are appended along the heads axis: keys are (B, H, T, D), "
            "so positions follow one another on the time axis, dim=-2"),
    Mistake("cache_new_first", M + "LayerCache",
            "torch.cat([self.k, k], dim=-2), torch.cat([self.v, v], dim=-2)",
            "torch.cat([k, self.k], dim=-2), torch.cat([v, self.v], dim=-2)",
            "the new keys and values are put before the cached ones: the past comes first, so "
            "that position t stays at index t"),
    Mistake("cache_values_are_keys", M + "LayerCache", "torch.cat([self.v, v], dim=-2)",
            "torch.cat([self.k, v], dim=-2)",
            "the cached keys are used as the past values: append the new values to self.v"),
    Mistake("cache_not_stored", M + "LayerCache", "self.k, self.v = k, v", "pass",
            "update does not keep the keys and values for the next step: store all of them "
            "in self.k and self.v"),
    Mistake("length_wrong_axis", M + "LayerCache", "self.k.size(-2)", "self.k.size(-1)",
            "length counts the features of a head, not the cached positions: keys are "
            "(B, H, T_past, D), so the length is the size of axis -2"),
    # Part 3: filter_top_k, filter_top_p, next_token
    Mistake("top_k_wrong_side", G + "filter_top_k", "logits.masked_fill(logits < kth,",
            "logits.masked_fill(logits > kth,",
            "top-k removes the wrong side: keep the k LARGEST logits (remove those below the "
            "k-th largest)"),
    Mistake("top_k_only_max", G + "filter_top_k", "values[..., -1:]", "values[..., :1]",
            "only the largest logit is kept: the threshold is the k-th largest, the LAST of "
            "torch.topk's values"),
    Mistake("top_p_wrong_side", G + "filter_top_p", "drop_sorted = before >= p",
            "drop_sorted = before < p",
            "top-p keeps the wrong side: keep the likeliest tokens until their mass reaches p "
            "and drop the tail (drop a token when the mass before it is already >= p)"),
    Mistake("top_p_drops_crossing", G + "filter_top_p", "before = probs.cumsum(dim=-1) - probs",
            "before = probs.cumsum(dim=-1)",
            "top-p drops the token that makes the mass reach p (and may drop every token): "
            "decide on the mass BEFORE each token, cumsum - probs"),
    Mistake("top_p_sorted_order", G + "filter_top_p",
            "drop = drop_sorted.scatter(-1, order, drop_sorted)", "drop = drop_sorted",
            "the top-p decision is applied in sorted order, not vocabulary order: scatter it "
            "back with the sort indices"),
    Mistake("temperature_ignored", G + "next_token", "logits = logits / temperature",
            "logits = logits",
            "the temperature has no effect: divide the logits by it BEFORE the softmax "
            "(dividing probabilities changes nothing once they are renormalised)"),
    Mistake("temperature_multiplied", G + "next_token", "logits = logits / temperature",
            "logits = logits * temperature",
            "the logits are multiplied by the temperature; divide them (T < 1 sharpens, "
            "T > 1 flattens)"),
    Mistake("greedy_wrong_axis", G + "next_token", "logits.argmax(dim=-1, keepdim=True)",
            "logits.argmax(dim=0, keepdim=True)",
            "greedy takes the argmax over the batch: take it over the vocabulary (dim=-1), "
            "one token per row"),
    Mistake("generator_ignored", G + "next_token",
            "torch.multinomial(probs, 1, generator=generator)", "torch.multinomial(probs, 1)",
            "the draw ignores `generator`, so a seeded generator does not make sampling "
            "reproducible: pass it on, torch.multinomial(probs, 1, generator=generator)"),
    # Part 4: generate
    Mistake("cache_never_reused", G + "generate",
            "if use_cache and cache is not None and cache.length < block_size:", "if False:",
            "the cache is never reused: every step runs the whole window with a fresh cache. "
            "After the first step, feed only the newest token with the cache of the steps "
            "before, model(idx[:, -1:], cache=cache), and start over only when the cache holds "
            "block_size positions"),
    Mistake("no_crop", G + "generate", "window = idx[:, -block_size:]", "window = idx",
            "the model is given more than block_size tokens: read only the last block_size "
            "(idx[:, -block_size:])"),
    Mistake("cache_never_restarted", G + "generate",
            "if use_cache and cache is not None and cache.length < block_size:",
            "if use_cache and cache is not None:",
            "the cache is never started afresh: once it holds block_size tokens, read the last "
            "block_size tokens again with a new cache (the window slides; the cache cannot)"),
    Mistake("whole_sequence_with_cache", G + "generate",
            "model(idx[:, -1:], cache=cache)", "model(idx, cache=cache)",
            "with a cache, feed only the newest token idx[:, -1:]: the earlier ones are "
            "already cached"),
    Mistake("first_position_logits", G + "generate", "logits[:, -1, :]", "logits[:, 0, :]",
            "the next token is chosen from the first position's logits; use the LAST "
            "position (logits[:, -1, :])"),
    Mistake("stop_not_kept", G + "generate", "new = new.masked_fill(done, stop)",
            "new = new",
            "a row that has stopped keeps generating: fill its new tokens with the stop token "
            "(new.masked_fill(done, stop))"),
    Mistake("mode_not_restored", G + "generate", "model.train(was_training)", "pass",
            "generate leaves the model in eval mode: remember model.training and restore it "
            "at the end"),
    Mistake("generate_with_grad", G + "generate", "with torch.no_grad():",
            "with torch.enable_grad():",
            "the model runs with gradients on, building autograd graphs that generation never "
            "uses: put the loop inside with torch.no_grad():"),
]


# ---------------------------------------------------------------- shared oracles


@cache
def _hf_gpt2(seed: int, n_layer: int, n_head: int, n_embd: int, vocab: int, n_pos: int,
             dtype: torch.dtype = torch.float32):
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(seed)
    config = transformers.GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                                     vocab_size=vocab, n_positions=n_pos, bos_token_id=0,
                                     eos_token_id=0)
    return transformers.GPT2LMHeadModel(config).to(dtype).eval()


def _load(cls, hf):
    """The learner's GPT class with the HF model's weights (loaded by the course's table)."""
    from solutions.pretrained import gpt2_config, load_gpt2

    return load_gpt2(cls(gpt2_config(hf.config)), hf.state_dict()).to(
        next(hf.parameters()).dtype).eval()


def _gpt_cases(hidden: bool):
    f32, f64 = torch.float32, torch.float64
    cases = [("2 layers, 4 heads", (0, 2, 4, 32, 50, 24), 2, 12, f32)]
    if hidden:
        cases += [("1 layer, 1 head, a batch of one, float64", (1, 1, 1, 16, 11, 8), 1, 8, f64),
                  ("3 layers, 2 heads", (2, 3, 2, 24, 37, 16), 3, 16, f32)]
    return cases


# ---------------------------------------------------------------- Part 1: GPT


@check(M + "GPT", part=1)
def check_gpt(GPT, hidden: bool = False) -> None:
    """Logits equal GPT-2's (same weights) on whole sequences; in training mode, dropout falls
    where the reference's does."""
    for i, (label, sizes, B, T, dtype) in enumerate(_gpt_cases(hidden)):
        hf = _hf_gpt2(*sizes, dtype)
        idx = oracles.token_ids(sizes[4], (B, T), seed=300 + i)
        with torch.no_grad():
            expected = hf(idx).logits

        def probe(cls, hf=hf, idx=idx):
            with torch.no_grad():
                return _load(cls, hf)(idx.clone())[0]

        compare(GPT, probe, expected, what=f"GPT logits on idx ({B}, {T}), {label}",
                **oracles.tol(dtype))
    _check_gpt_dropout(GPT, hidden)


def _check_gpt_dropout(GPT, hidden: bool) -> None:
    """In training mode with dropout 0.2, under one seed, the logits equal the reference GPT's
    under the same seed: the embeddings are dropped first, then each block drops its branches
    (a missing dropout shifts every random draw after it)."""
    reference = copy_of(M + "GPT")
    for i, (label, sizes, B, T, dtype) in enumerate(_gpt_cases(hidden)[::2]):
        hf = _hf_gpt2(*sizes, dtype)
        idx = oracles.token_ids(sizes[4], (B, T), seed=350 + i)

        def probe(cls, hf=hf, idx=idx, dtype=dtype):
            from solutions.pretrained import gpt2_config, load_gpt2

            config = dataclasses.replace(gpt2_config(hf.config), dropout=0.2)
            with torch.random.fork_rng(devices=[]):
                model = load_gpt2(cls(config), hf.state_dict()).to(dtype).train()
                torch.manual_seed(4321)
                with torch.no_grad():
                    return model(idx.clone())[0]

        what = (f"GPT(dropout=0.2).train() logits on idx ({B}, {T}), {label}, seeded, "
                "compared with the reference GPT under the same seed")
        compare(GPT, probe, call(reference, probe, what), what=what, **oracles.tol(dtype))


@check(M + "GPT", part=1)
def check_gpt_cached(GPT, hidden: bool = False) -> None:
    """With a KV cache (a prompt, then one token at a time) the logits equal GPT-2's on the
    whole sequence."""
    for i, (label, sizes, B, T, dtype) in enumerate(_gpt_cases(hidden)):
        hf = _hf_gpt2(*sizes, dtype)
        idx = oracles.token_ids(sizes[4], (B, T), seed=300 + i)
        with torch.no_grad():
            expected = hf(idx).logits
        prefill = max(1, T // 3)

        def cached(cls, hf=hf, idx=idx, prefill=prefill, T=T):
            model = _load(cls, hf)
            kv = model.new_cache()
            with torch.no_grad():
                pieces = [model(idx[:, :prefill].clone(), cache=kv)[0]]
                pieces += [model(idx[:, t:t + 1].clone(), cache=kv)[0]
                           for t in range(prefill, T)]
            return torch.cat(pieces, dim=1)

        compare(GPT, cached, expected,
                what=f"GPT with a KV cache (a prompt, then one token at a time), {label}",
                **oracles.tol(dtype))


@check(M + "GPT", part=1)
def check_gpt_loss(GPT, hidden: bool = False) -> None:
    """The loss with shifted targets equals the cross-entropy of GPT-2's logits, and targets
    equal to ignore_index are skipped."""
    for i, (label, sizes, B, T, dtype) in enumerate(_gpt_cases(hidden)):
        hf = _hf_gpt2(*sizes, dtype)
        text = oracles.token_ids(sizes[4], (B, T), seed=400 + i)
        with torch.no_grad():                             # GPT-2's logits, targets shifted
            logits = hf(text[:, :-1]).logits
            expected = F.cross_entropy(logits.flatten(0, 1), text[:, 1:].flatten())

        def probe(cls, hf=hf, text=text):
            with torch.no_grad():
                return _load(cls, hf)(text[:, :-1].clone(), text[:, 1:].clone())[1]

        compare(GPT, probe, expected,
                what=f"GPT loss, idx = text[:, :-1], targets = text[:, 1:], {label}",
                **oracles.tol(dtype))
        padded = text[:, 1:].clone()
        padded[-1, T // 2:] = 0                           # padding, ignored with ignore_index=0
        expected = F.cross_entropy(logits.flatten(0, 1), padded.flatten(), ignore_index=0)

        def probe_pad(cls, hf=hf, text=text, padded=padded):
            with torch.no_grad():
                return _load(cls, hf)(text[:, :-1].clone(), padded.clone(), ignore_index=0)[1]

        compare(GPT, probe_pad, expected,
                what=f"GPT loss with padded targets and ignore_index=0, {label}",
                **oracles.tol(dtype))


# ---------------------------------------------------------------- Part 2: the KV cache


@check(M + "LayerCache", part=2)
def check_layer_cache(LayerCache, hidden: bool = False) -> None:
    """Attention fed a prompt and then the next tokens with cache=LayerCache() equals causal
    attention over the whole sequence (chapter 3's explicit mask), and the cache ends up
    holding every key and value in order."""
    from solutions.attention import FusedMultiHeadAttention, MultiHeadAttention, split_heads

    f32, f64 = torch.float32, torch.float64
    cases = [("a prompt of 3, then one token at a time", 2, 7, 16, 4, [3, 1, 1, 1, 1], f32),
             ("one token at a time", 1, 5, 8, 2, [1, 1, 1, 1, 1], f32)]
    if hidden:
        cases += [("the whole sequence at once", 2, 6, 12, 3, [6], f64),
                  ("chunks of 2, 3, 1", 3, 6, 16, 2, [2, 3, 1], f32),
                  ("float64, a prompt of 4", 1, 9, 8, 1, [4, 1, 1, 1, 1, 1], f64)]
    for i, (label, B, T, C, H, chunks, dtype) in enumerate(cases):
        torch.manual_seed(500 + i)
        kind = (MultiHeadAttention, FusedMultiHeadAttention)[i % 2]
        attn = kind(C, H).to(dtype).eval()
        x = oracles.randn(B, T, C, seed=510 + i, dtype=dtype)
        causal = torch.ones(T, T, dtype=torch.bool).tril()[None, None]
        with torch.no_grad():
            out = attn(x, mask=causal)[0]
            k, v = split_heads(attn.key(x), H), split_heads(attn.value(x), H)

        def probe(cls, attn=attn, x=x, chunks=chunks):
            cache, pieces, at = cls(), [], 0
            with torch.no_grad():
                for n in chunks:
                    pieces.append(attn(x[:, at:at + n].clone(), causal=True, cache=cache)[0])
                    at += n
            return torch.cat(pieces, dim=1), cache.k, cache.v, cache.length

        compare(LayerCache, probe, (out, k, v, T),
                what=f"{kind.__name__}({C}, {H}) with cache=LayerCache() on x ({B}, {T}, {C}) "
                     f"fed {chunks} tokens at a time ({label})",
                parts=("output", "cached keys", "cached values", "length"),
                **oracles.tol(dtype))


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


# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("gpt_arange_positions", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    B, T = idx.shape
    pos = torch.arange(T, device=idx.device)
    h = self.wte(idx) + self.wpe(pos)[None]
    h = self.drop(h)
    for n, blk in enumerate(self.blocks):
        h = blk(h, cache=cache[n] if cache is not None else None)
    logits = self.lm_head(self.ln_f(h))
    if targets is None:
        return logits, None
    return logits, lm_loss(logits, targets, ignore_index)
""", "positions_ignore_cache"),
    Slip("gpt_forgets_ln_f", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    start = cache.length if cache is not None else 0
    h = self.wte(idx) + self.wpe(self.positions[start:start + idx.shape[1]])
    for n, blk in enumerate(self.blocks):
        h = blk(h, cache=None if cache is None else cache[n])
    logits = self.lm_head(h)
    loss = lm_loss(logits, targets, ignore_index) if targets is not None else None
    return logits, loss
""", "no_final_norm"),
    Slip("gpt_shifts_targets", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    start = 0 if cache is None else cache.length
    x = self.drop(self.wte(idx) + self.wpe(self.positions[start:start + idx.size(1)]))
    for i, block in enumerate(self.blocks):
        x = block(x, cache=None if cache is None else cache[i])
    logits = self.lm_head(self.ln_f(x))
    loss = None
    if targets is not None:
        V = logits.size(-1)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), targets[:, 1:].reshape(-1),
                               ignore_index=ignore_index)
    return logits, loss
""", "targets_shifted_twice"),
    Slip("gpt_cross_entropy_default_ignore", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    start = 0 if cache is None else cache.length
    x = self.drop(self.wte(idx) + self.wpe(self.positions[start:start + idx.size(1)]))
    for i, block in enumerate(self.blocks):
        x = block(x, cache=None if cache is None else cache[i])
    logits = self.lm_head(self.ln_f(x))
    if targets is None:
        return logits, None
    return logits, F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
""", "ignore_index_dropped"),
    Slip("gpt_cache_layer_zero", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    T = idx.size(1)
    offset = cache.length if cache else 0
    x = self.wte(idx) + self.wpe(self.positions[offset:offset + T])
    x = self.drop(x)
    for block in self.blocks:
        if cache is None:
            x = block(x)
        else:
            x = block(x, cache=cache[0])
    logits = self.lm_head(self.ln_f(x))
    return logits, (lm_loss(logits, targets, ignore_index) if targets is not None else None)
""", "cache_same_layer"),
    Slip("gpt_blocks_never_cached", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    start = cache.length if cache is not None else 0
    h = self.drop(self.wte(idx) + self.wpe(self.positions[start:start + idx.shape[-1]]))
    for block in self.blocks:
        h = block(h)
    logits = self.lm_head(self.ln_f(h))
    loss = None
    if targets is not None:
        loss = lm_loss(logits, targets, ignore_index=ignore_index)
    return logits, loss
""", "cache_bypassed"),
    Slip("cache_overwrites", M + "LayerCache.update", """
def update(self, k, v):
    self.k, self.v = k, v
    return self.k, self.v
""", "cache_not_appended"),
    Slip("cache_cat_on_heads", M + "LayerCache.update", """
def update(self, k, v):
    if self.k is None:
        self.k, self.v = k, v
    else:
        self.k = torch.cat((self.k, k), 1)
        self.v = torch.cat((self.v, v), 1)
    return self.k, self.v
""", "cache_wrong_axis"),
    Slip("cache_prepends", M + "LayerCache.update", """
def update(self, k, v):
    if self.k is not None:
        k = torch.cat([k, self.k], dim=2)
        v = torch.cat([v, self.v], dim=2)
    self.k, self.v = k, v
    return k, v
""", "cache_new_first"),
    Slip("top_k_drops_kth", G + "filter_top_k", """
def filter_top_k(logits, k):
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return torch.where(logits > kth, logits, torch.full_like(logits, float("-inf")))
""", None),
    Slip("top_p_loop_drops_crossing", G + "filter_top_p", """
def filter_top_p(logits, p):
    probs = torch.softmax(logits, dim=-1)
    out = torch.full_like(logits, float("-inf"))
    flat, dest = probs.reshape(-1, probs.size(-1)), out.view(-1, probs.size(-1))
    src = logits.reshape(-1, logits.size(-1))
    for r in range(flat.size(0)):
        total = 0.0
        for j in flat[r].argsort(descending=True).tolist():
            total += flat[r, j].item()
            if total >= p:
                break
            dest[r, j] = src[r, j]
    return out
""", "top_p_drops_crossing"),
    Slip("temperature_on_probabilities", G + "next_token", """
def next_token(logits, *, greedy=False, temperature=1.0, top_k=None, top_p=None,
               generator=None):
    if greedy:
        return logits.argmax(-1, keepdim=True)
    if top_k is not None:
        logits = filter_top_k(logits, top_k)
    if top_p is not None:
        logits = filter_top_p(logits, top_p)
    probs = torch.softmax(logits, dim=-1) / temperature
    return torch.multinomial(probs, 1, generator=generator)
""", "temperature_ignored"),
    Slip("generate_never_crops", G + "generate", """
def generate(model, idx, max_new_tokens, *, greedy=False, temperature=1.0, top_k=None,
             top_p=None, use_cache=True, stop=None, generator=None):
    mode = model.training
    model.eval()
    cache = model.new_cache() if use_cache else None
    done = torch.zeros(idx.size(0), 1, dtype=torch.bool, device=idx.device)
    fed = 0
    for _ in range(max_new_tokens):
        logits = logits_of(model(idx[:, fed:], cache=cache) if use_cache else model(idx))
        fed = idx.size(1) if use_cache else 0
        nxt = next_token(logits[:, -1], greedy=greedy, temperature=temperature, top_k=top_k,
                         top_p=top_p, generator=generator)
        if stop is not None:
            nxt = torch.where(done, torch.full_like(nxt, stop), nxt)
            done |= nxt == stop
        idx = torch.cat([idx, nxt], dim=1)
        if stop is not None and done.all():
            break
    model.train(mode)
    return idx
""", "cache_never_restarted"),
    Slip("generate_reads_first_position", G + "generate", """
def generate(model, idx, max_new_tokens, *, greedy=False, temperature=1.0, top_k=None,
             top_p=None, use_cache=True, stop=None, generator=None):
    was = model.training
    model.eval()
    L = model.config.block_size
    cache = None
    finished = torch.zeros(idx.size(0), 1, dtype=torch.bool, device=idx.device)
    for _ in range(max_new_tokens):
        if use_cache and cache is not None and cache.length < L:
            out = model(idx[:, -1:], cache=cache)
        else:
            cache = model.new_cache() if use_cache else None
            out = model(idx[:, -L:], cache=cache) if use_cache else model(idx[:, -L:])
        scores = logits_of(out)
        nxt = next_token(scores[:, 0], greedy=greedy, temperature=temperature, top_k=top_k,
                         top_p=top_p, generator=generator)
        if stop is not None:
            nxt[finished] = stop
            finished = finished | (nxt == stop)
        idx = torch.cat((idx, nxt), 1)
        if stop is not None and bool(finished.all()):
            break
    model.train(was)
    return idx
""", "first_position_logits"),
    Slip("generate_fresh_cache_each_step", G + "generate", """
def generate(model, idx, max_new_tokens, *, greedy=False, temperature=1.0, top_k=None,
             top_p=None, use_cache=True, stop=None, generator=None):
    training = model.training
    model.eval()
    n = model.config.block_size
    stopped = torch.zeros(idx.size(0), 1, dtype=torch.bool, device=idx.device)
    try:
        with torch.no_grad():
            for _ in range(max_new_tokens):
                context = idx[:, -n:]
                if use_cache:
                    out = model(context, cache=model.new_cache())
                else:
                    out = model(context)
                new = next_token(logits_of(out)[:, -1, :], greedy=greedy,
                                 temperature=temperature, top_k=top_k, top_p=top_p,
                                 generator=generator)
                if stop is not None:
                    new = torch.where(stopped, torch.full_like(new, stop), new)
                    stopped = stopped | (new == stop)
                idx = torch.cat([idx, new], dim=1)
                if stop is not None and stopped.all():
                    break
    finally:
        model.train(training)
    return idx
""", "cache_never_reused"),
    Slip("next_token_global_rng", G + "next_token", """
def next_token(logits, *, greedy=False, temperature=1.0, top_k=None, top_p=None,
               generator=None):
    if greedy:
        return torch.argmax(logits, dim=-1, keepdim=True)
    scaled = logits / temperature
    if top_k is not None:
        scaled = filter_top_k(scaled, top_k)
    if top_p is not None:
        scaled = filter_top_p(scaled, top_p)
    return torch.multinomial(F.softmax(scaled, dim=-1), num_samples=1)
""", "generator_ignored"),
    Slip("gpt_embeddings_not_dropped", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    self.check_inputs(idx, cache)
    past = 0 if cache is None else cache.length
    h = self.wte(idx) + self.wpe(self.positions[past:past + idx.size(1)])
    for layer, block in enumerate(self.blocks):
        h = block(h) if cache is None else block(h, cache=cache[layer])
    logits = self.lm_head(self.ln_f(h))
    if targets is None:
        return logits, None
    return logits, lm_loss(logits, targets, ignore_index)
""", "no_embedding_dropout"),
    Slip("gpt_loss_without_none_check", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    self.check_inputs(idx, cache)
    start = cache.length if cache is not None else 0
    pos = self.positions[start:start + idx.size(1)]
    x = self.drop(self.wte(idx) + self.wpe(pos))
    for i, block in enumerate(self.blocks):
        x = block(x, cache=cache[i] if cache is not None else None)
    logits = self.lm_head(self.ln_f(x))
    return logits, lm_loss(logits, targets, ignore_index)
""", None),
    Slip("cache_length_is_batch", M + "LayerCache.length", """
@property
def length(self):
    return 0 if self.k is None else len(self.k)
""", None),
    Slip("cache_returns_new_only", M + "LayerCache.update", """
def update(self, k, v):
    if self.k is None:
        self.k, self.v = k, v
    else:
        self.k = torch.cat((self.k, k), dim=2)
        self.v = torch.cat((self.v, v), dim=2)
    return k, v
""", None),
    Slip("top_k_sorted_index_k", G + "filter_top_k", """
def filter_top_k(logits, k):
    values = torch.sort(logits, dim=-1, descending=True).values
    threshold = values[..., k:k + 1]
    return logits.masked_fill(logits < threshold, float("-inf"))
""", None),
    Slip("top_p_keeps_the_tail", G + "filter_top_p", """
def filter_top_p(logits, p):
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    before = probs.cumsum(dim=-1) - probs
    drop_sorted = before < p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))
""", "top_p_wrong_side"),
    Slip("top_p_sorted_order", G + "filter_top_p", """
def filter_top_p(logits, p):
    sorted_logits, _ = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    cum = probs.cumsum(-1)
    drop = (cum - probs) >= p
    return sorted_logits.masked_fill(drop, float("-inf"))
""", None),
    Slip("top_p_gather_back", G + "filter_top_p", """
def filter_top_p(logits, p):
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    drop_sorted = probs.cumsum(dim=-1) - probs >= p
    drop = drop_sorted.gather(-1, order)
    return logits.masked_fill(drop, float("-inf"))
""", None),
    Slip("next_greedy_flat", G + "next_token", """
def next_token(logits, *, greedy=False, temperature=1.0, top_k=None, top_p=None,
               generator=None):
    if greedy:
        return torch.argmax(logits, dim=-1)
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    logits = logits / temperature
    if top_k is not None:
        logits = filter_top_k(logits, top_k)
    if top_p is not None:
        logits = filter_top_p(logits, top_p)
    return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
""", None),
    Slip("generate_cache_never_restarted", G + "generate", """
def generate(model, idx, max_new_tokens, *, greedy=False, temperature=1.0, top_k=None,
             top_p=None, use_cache=True, stop=None, generator=None):
    block_size = model.config.block_size
    was_training = model.training
    model.eval()
    cache = model.new_cache() if use_cache else None
    done = torch.zeros(idx.size(0), 1, dtype=torch.bool)
    with torch.no_grad():
        for step in range(max_new_tokens):
            if use_cache and step > 0:
                logits, _ = model(idx[:, -1:], cache=cache)
            elif use_cache:
                logits, _ = model(idx[:, -block_size:], cache=cache)
            else:
                logits, _ = model(idx[:, -block_size:])
            new = next_token(logits[:, -1], greedy=greedy, temperature=temperature,
                             top_k=top_k, top_p=top_p, generator=generator)
            if stop is not None:
                new = new.masked_fill(done, stop)
                done = done | (new == stop)
            idx = torch.cat([idx, new], dim=1)
            if stop is not None and done.all():
                break
    model.train(was_training)
    return idx
""", "cache_never_restarted"),
    Slip("generate_stop_not_filled", G + "generate", """
def generate(model, idx, max_new_tokens, *, greedy=False, temperature=1.0, top_k=None,
             top_p=None, use_cache=True, stop=None, generator=None):
    block_size = model.config.block_size
    was_training = model.training
    model.eval()
    cache = None
    with torch.no_grad():
        for _ in range(max_new_tokens):
            if use_cache and cache is not None and cache.length < block_size:
                logits, _ = model(idx[:, -1:], cache=cache)
            else:
                cache = model.new_cache() if use_cache else None
                window = idx[:, -block_size:]
                logits, _ = model(window, cache=cache) if use_cache else model(window)
            new = next_token(logits[:, -1, :], greedy=greedy, temperature=temperature,
                             top_k=top_k, top_p=top_p, generator=generator)
            idx = torch.cat([idx, new], dim=1)
            if stop is not None and bool((idx == stop).any(dim=1).all()):
                break
    model.train(was_training)
    return idx
""", "stop_not_kept"),
]
