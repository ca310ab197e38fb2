"""Checks for Exercise 8 (decoder) and the catalogue of decoder and decoding mistakes.

Oracles: Hugging Face's GPT-2 (``GPT2LMHeadModel`` with random weights, no download) for the
GPT's logits, loss, parameter count and greedy generation; our Chapter 3 attention over the
whole sequence with an explicit causal mask for the KV cache (which the attention itself
fills, through ``cache=``); a sort-based top-k / top-p written here and
``torch.softmax`` for sampling (frequencies of many draws). ``hidden=True`` adds other sizes,
float64, a batch of one, prompts longer than the window and other seeds.

Its modules: `mistakes`, `shared`, `gpt`, `generation`, `slips`.
"""

from course.checks.decoder.generation import (
    check_generate,
    check_generate_stop,
    check_next_token,
    check_top_k,
    check_top_p,
)
from course.checks.decoder.gpt import check_gpt, check_gpt_cached, check_gpt_loss, check_layer_cache
from course.checks.decoder.mistakes import MISTAKES
from course.checks.decoder.slips import SLIPS

__all__ = [
    "MISTAKES", "SLIPS", "check_generate", "check_generate_stop", "check_gpt", "check_gpt_cached",
    "check_gpt_loss", "check_layer_cache", "check_next_token", "check_top_k", "check_top_p",
]
