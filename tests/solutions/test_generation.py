"""Decoding (solutions.generation): greedy equals Hugging Face's GPT-2 generate, the KV cache
changes nothing but the speed, sampling filters keep the right tokens, seeds reproduce, and
beam search finds the best sequence an exhaustive search finds."""

from __future__ import annotations

import itertools

import pytest
import torch
import transformers

from solutions.decoder import GPT, EncoderDecoder
from solutions.generation import (
    beam_search,
    filter_top_k,
    filter_top_p,
    generate,
    next_token,
)
from solutions.model import ModelConfig


def tiny(**kw) -> GPT:
    torch.manual_seed(kw.pop("seed", 0))
    base = dict(vocab_size=13, block_size=24, n_layer=2, n_head=2, n_embd=16)
    return GPT(ModelConfig(**{**base, **kw})).eval()


def test_greedy_equals_hf_generate():
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=97,
                                     n_positions=64, bos_token_id=0, eos_token_id=0)
    hf = transformers.GPT2LMHeadModel(config).eval()
    gpt = GPT.from_hf(hf)
    prompt = torch.randint(1, 97, (3, 6), generator=torch.Generator().manual_seed(3))
    theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=20,
                         do_sample=False, eos_token_id=None, pad_token_id=0)
    for use_cache in (True, False):
        assert torch.equal(generate(gpt, prompt, 20, greedy=True, use_cache=use_cache), theirs)


@pytest.mark.parametrize("kw", [dict(greedy=True), dict(temperature=0.7, top_k=5),
                                dict(top_p=0.8), dict(temperature=1.5)])
def test_cache_gives_the_same_tokens(kw):
    gpt = tiny()
    prompt = torch.randint(13, (2, 3), generator=torch.Generator().manual_seed(0))
    runs = [generate(gpt, prompt, 15, use_cache=c, generator=torch.Generator().manual_seed(7),
                     **kw) for c in (True, False)]
    assert torch.equal(runs[0], runs[1])


def test_seeded_generator_reproduces_and_differs_across_seeds():
    gpt = tiny()
    prompt = torch.zeros(4, 1, dtype=torch.long)
    a = generate(gpt, prompt, 12, generator=torch.Generator().manual_seed(1))
    b = generate(gpt, prompt, 12, generator=torch.Generator().manual_seed(1))
    c = generate(gpt, prompt, 12, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_generation_past_block_size_crops_the_window():
    gpt = tiny(block_size=8)
    prompt = torch.randint(13, (1, 5), generator=torch.Generator().manual_seed(0))
    with_cache = generate(gpt, prompt, 12, greedy=True)
    without = generate(gpt, prompt, 12, greedy=True, use_cache=False)
    assert with_cache.shape == (1, 17) and torch.equal(with_cache, without)


def test_stop_token_ends_rows_and_fills_them():
    gpt = tiny()
    prompt = torch.randint(13, (3, 2), generator=torch.Generator().manual_seed(0))
    free = generate(gpt, prompt, 10, greedy=True)
    stop = int(free[0, 4])                                # the third generated token of row 0
    out = generate(gpt, prompt, 10, greedy=True, stop=stop)
    for row_free, row in zip(free, out):
        hits = (row_free[2:] == stop).nonzero()
        if len(hits):
            end = 2 + int(hits[0]) + 1
            assert torch.equal(row[:end], row_free[:end]) and (row[end:] == stop).all()
    assert out.size(1) <= free.size(1)


def test_generate_restores_training_mode():
    gpt = tiny().train()
    generate(gpt, torch.zeros(1, 1, dtype=torch.long), 3)
    assert gpt.training


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = filter_top_k(logits, 2)
    assert torch.isfinite(kept).tolist() == [[False, True, False, True, False]]
    assert torch.equal(filter_top_k(logits, 10), logits)
    with pytest.raises(ValueError):
        filter_top_k(logits, 0)


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.05, 0.5, 0.1, 0.3, 0.05]])
    logits = probs.log()
    # 0.5 + 0.3 = 0.8 >= 0.75: two tokens; 0.8 + 0.1 >= 0.85: three; p=1 keeps all
    assert torch.isfinite(filter_top_p(logits, 0.75)).tolist() == [[False, True, False, True,
                                                                    False]]
    assert torch.isfinite(filter_top_p(logits, 0.85)).sum() == 3
    assert torch.isfinite(filter_top_p(logits, 0.01)).sum() == 1   # the best always stays
    assert torch.isfinite(filter_top_p(logits, 1.0)).all()
    with pytest.raises(ValueError):
        filter_top_p(logits, 0.0)


def test_sampling_frequencies_follow_temperature_and_filters():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(20000, 4)
    g = torch.Generator().manual_seed(0)
    for temperature in (0.5, 1.0, 2.0):
        draws = next_token(logits, temperature=temperature, generator=g).flatten()
        freq = torch.bincount(draws, minlength=4) / draws.numel()
        assert torch.allclose(freq, torch.softmax(logits[0] / temperature, -1), atol=0.015)
    draws = next_token(logits, top_k=2, generator=g).flatten()
    assert set(draws.tolist()) == {0, 1}
    with pytest.raises(ValueError, match="temperature"):
        next_token(logits, temperature=0.0)


def _exhaustive_best(gpt, prompt, n, stop, length_penalty):
    """Score every sequence of up to n new tokens (ending at stop, or full length)."""
    best, best_seq = -float("inf"), None
    V = gpt.config.vocab_size
    for length in range(1, n + 1):
        for tail in itertools.product(range(V), repeat=length):
            if any(t == stop for t in tail[:-1]) or (length < n and tail[-1] != stop):
                continue
            seq = torch.cat([prompt[0], torch.tensor(tail)])
            with torch.no_grad():
                logp = torch.log_softmax(gpt(seq[None, :-1])[0][0], -1)
            total = sum(float(logp[prompt.size(1) - 1 + i, t]) for i, t in enumerate(tail))
            score = total / length ** length_penalty
            if score > best:
                best, best_seq = score, seq
    return best_seq


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0])
def test_wide_beam_equals_exhaustive_search(length_penalty):
    gpt = tiny(vocab_size=4, seed=3)
    prompt = torch.tensor([[1, 2]])
    found = beam_search(gpt, prompt, 3, beam_width=16, length_penalty=length_penalty, stop=0)
    assert torch.equal(found[0], _exhaustive_best(gpt, prompt, 3, 0, length_penalty))


def test_beam_of_one_is_greedy_and_beam_errors():
    gpt = tiny()
    prompt = torch.tensor([[3, 4, 5]])
    assert torch.equal(beam_search(gpt, prompt, 8, beam_width=1),
                       generate(gpt, prompt, 8, greedy=True))
    with pytest.raises(ValueError, match=r"\(1, T\)"):
        beam_search(gpt, prompt.expand(2, 3), 4)
    with pytest.raises(ValueError, match="block_size"):
        beam_search(gpt, prompt, 30)


def test_generate_and_beam_search_on_an_encoder_decoder():
    torch.manual_seed(0)
    model = EncoderDecoder(ModelConfig(vocab_size=11, block_size=12, n_layer=1, n_head=2,
                                       n_embd=16)).eval()
    src = torch.randint(11, (1, 7))
    start = torch.zeros(1, 1, dtype=torch.long)
    greedy = generate(model.conditioned(src), start, 6, greedy=True)
    no_cache = generate(model.conditioned(src), start, 6, greedy=True, use_cache=False)
    beam = beam_search(model.conditioned(src), start, 6, beam_width=1)
    assert torch.equal(greedy, no_cache) and torch.equal(greedy, beam)
    assert beam_search(model.conditioned(src), start, 6, beam_width=3).shape[1] <= 7
