"""Generation benchmark: greedy decoding with the KV cache against recomputing the whole prefix.

The same GPT (random weights, GPT-2's layout) generates the same number of tokens from the same
prompt both ways, interleaved in one process so machine noise hits both alike. With the cache
each step feeds one token and reads the earlier keys and values back; without it each step
runs the model over the whole sequence again. ratio = time without / time with the cache
(above 1: the cache is faster); `same` says whether both produced the same tokens.
"""

from __future__ import annotations

import statistics
import time

import torch

from solutions.decoder import GPT
from solutions.generation import generate
from solutions.model import ModelConfig

FULL = dict(n_layer=4, n_head=4, n_embd=128, block_size=512, prompt=16, new=240, B=1)
QUICK = dict(n_layer=2, n_head=2, n_embd=32, block_size=64, prompt=4, new=24, B=1)
TARGET = 2.0  # minimum speed-up of the cache at the full size


def run(quick: bool = False) -> list[dict]:
    size = QUICK if quick else FULL
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=256, block_size=size["block_size"],
                            n_layer=size["n_layer"], n_head=size["n_head"],
                            n_embd=size["n_embd"])).eval()
    prompt = torch.randint(256, (size["B"], size["prompt"]),
                           generator=torch.Generator().manual_seed(1))
    outputs = {c: generate(model, prompt, size["new"], greedy=True, use_cache=c)
               for c in (True, False)}                    # also a warm-up
    times = {True: [], False: []}
    for _ in range(2 if quick else 5):                    # interleaved: with, without, ...
        for use_cache in (True, False):
            start = time.perf_counter()
            generate(model, prompt, size["new"], greedy=True, use_cache=use_cache)
            times[use_cache].append(time.perf_counter() - start)
    cached, full = statistics.median(times[True]), statistics.median(times[False])
    same = torch.equal(outputs[True], outputs[False])
    ratio = full / cached
    return [dict(
        name="greedy generation, KV cache",
        size=(f"{size['n_layer']} layers x {size['n_embd']}, prompt {size['prompt']}, "
              f"{size['new']} new tokens"),
        baseline="recompute the whole prefix each step",
        ours_s=cached,
        baseline_s=full,
        ratio=ratio,
        target=f"ratio >= {TARGET:g}, same tokens",
        same=same,
        ok=same and (quick or ratio >= TARGET),
    )]


if __name__ == "__main__":  # pragma: no cover
    from course.bench import report

    print(report(run()))
