"""Oracles the decoder checks share: Hugging Face's GPT-2 with random weights, loaded into ours."""

from __future__ import annotations

from functools import cache

import torch

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
