"""Oracles the modern-decoder checks share: Hugging Face's Llama code with random weights, and
ours loaded from it."""

from __future__ import annotations

from functools import cache

import torch

# ---------------------------------------------------------------- shared oracles


def _llama_config(d_model: int, n_heads: int, n_kv_heads: int, head_dim: int, theta: float,
                  d_ff: int = 8, bias: bool = False):
    import transformers

    transformers.logging.set_verbosity_error()
    config = transformers.LlamaConfig(
        vocab_size=8, hidden_size=d_model, intermediate_size=d_ff, num_hidden_layers=1,
        num_attention_heads=n_heads, num_key_value_heads=n_kv_heads, head_dim=head_dim,
        max_position_embeddings=256, rope_theta=theta, mlp_bias=bias)
    config._attn_implementation = "eager"
    return config


def _hf():
    from transformers.models.llama import modeling_llama

    return modeling_llama


@cache
def _hf_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Hugging Face's cos and sin of positions 0 .. max_len - 1, each (max_len, head_dim)."""
    rotary = _hf().LlamaRotaryEmbedding(_llama_config(head_dim, 1, 1, head_dim, theta))
    x = torch.zeros(1, max_len, head_dim)
    cos, sin = rotary(x, torch.arange(max_len)[None])
    return cos[0], sin[0]


def _hf_rotated(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, D) rotated by Hugging Face's apply_rotary_pos_emb with cos, sin (T, D)."""
    rotated, _ = _hf().apply_rotary_pos_emb(x, x, cos[None].to(x.dtype), sin[None].to(x.dtype))
    return rotated.reshape(x.shape)


def _ours(state: dict) -> dict:
    """A LlamaMLP's or LlamaAttention's state_dict under our names."""
    names = {"gate_proj": "gate", "up_proj": "up", "down_proj": "down", "q_proj": "query",
             "k_proj": "key", "v_proj": "value", "o_proj": "out"}
    return {names[k.split(".")[0]] + "." + k.split(".", 1)[1]: v for k, v in state.items()}
