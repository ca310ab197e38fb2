"""A Llama-layout decoder (chapter 12): our :class:`~solutions.decoder.GPT` configured with
RMSNorm, SwiGLU, rotary positions and grouped-query attention, and :meth:`Llama.from_hf`, which
loads a ``transformers`` LlamaForCausalLM or Qwen3ForCausalLM in memory (same logits).

Their layer is GPT-2's pre-LN block with RMSNorm, a SwiGLU feed-forward network, rotary
positions inside grouped-query attention and no biases; Qwen3 adds an RMSNorm over every query
and key head. The name table below is a plain rename: Hugging Face's Linear layers already have
nn.Linear's layout, and rotary positions pair feature i with i + D/2 in both codes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from solutions.decoder import GPT
from solutions.model import ModelConfig
from solutions.pretrained import CheckpointError, copy_checkpoint, expand

LLAMA_FAMILY = ("llama", "qwen3")

LLAMA_NAMES: list[tuple[str, str]] = [
    ("model.embed_tokens.weight", "wte.weight"),
    ("model.norm.weight", "ln_f.weight"),
    ("lm_head.weight", "lm_head.weight"),
    *[(f"model.layers.{{i}}.{theirs}.weight", f"blocks.{{i}}.{ours}.weight")
      for theirs, ours in (
          ("input_layernorm", "ln_1"),                  # RMSNorm before attention
          ("self_attn.q_proj", "attn.query"),           # C -> H * D
          ("self_attn.k_proj", "attn.key"),             # C -> H_kv * D
          ("self_attn.v_proj", "attn.value"),           # C -> H_kv * D
          ("self_attn.o_proj", "attn.out"),             # H * D -> C
          ("self_attn.q_norm", "attn.q_norm"),          # Qwen3: RMSNorm over each query head
          ("self_attn.k_norm", "attn.k_norm"),          # Qwen3: and each key head
          ("post_attention_layernorm", "ln_2"),         # RMSNorm before the MLP
          ("mlp.gate_proj", "mlp.gate"),                # C -> d_ff, through SiLU
          ("mlp.up_proj", "mlp.up"),                    # C -> d_ff
          ("mlp.down_proj", "mlp.down"),                # d_ff -> C
      )],
]


def llama_config(hf_config) -> ModelConfig:
    """A `transformers` LlamaConfig or Qwen3Config -> our ModelConfig; refuses what our model
    does not compute (biases, scaled rotary positions, sliding windows, other activations)."""
    kind = getattr(hf_config, "model_type", None)
    if kind not in LLAMA_FAMILY:
        raise CheckpointError(f"expected a Llama or Qwen3 config, got model_type {kind!r}")
    rope = getattr(hf_config, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    unsupported = {
        "an activation other than SiLU": hf_config.hidden_act != "silu",
        "biases": getattr(hf_config, "attention_bias", False)
        or getattr(hf_config, "mlp_bias", False),
        "scaled rotary positions": rope.get("rope_type", "default") != "default",
        "sliding-window attention": getattr(hf_config, "use_sliding_window", False),
    }
    for what, present in unsupported.items():
        if present:
            raise CheckpointError(f"this {kind} checkpoint uses {what}, which our GPT does not "
                                  "compute")
    head_dim = getattr(hf_config, "head_dim", None) \
        or hf_config.hidden_size // hf_config.num_attention_heads
    return ModelConfig(
        vocab_size=hf_config.vocab_size, block_size=hf_config.max_position_embeddings,
        n_layer=hf_config.num_hidden_layers, n_head=hf_config.num_attention_heads,
        n_embd=hf_config.hidden_size, d_ff=hf_config.intermediate_size, dropout=0.0,
        norm_first=True, eps=hf_config.rms_norm_eps, norm="rms", activation="swiglu",
        position="rope", rope_theta=float(theta), n_kv_head=hf_config.num_key_value_heads,
        head_dim=head_dim, qk_norm=kind == "qwen3",
        tie_weights=bool(hf_config.tie_word_embeddings), bias=False)


def load_llama(gpt: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Copy a LlamaForCausalLM's or Qwen3ForCausalLM's state_dict into our GPT `gpt` (in
    place); returns it."""
    names = expand(LLAMA_NAMES, gpt.config.n_layer)
    if not gpt.config.qk_norm:
        names = {ours: theirs for ours, theirs in names.items() if "_norm" not in ours}
    if gpt.config.tie_weights:                             # one matrix, stored once
        names["lm_head.weight"] = "model.embed_tokens.weight"
    return copy_checkpoint(gpt, state_dict, names, source="the Llama-family model")


class Llama(GPT):
    """:class:`~solutions.decoder.GPT` with a Llama-family configuration (see
    :func:`llama_config`): the same forward pass, the parts chosen by the configuration."""

    @classmethod
    def from_hf(cls, model: nn.Module) -> Llama:
        """Our model with the weights of a `transformers` LlamaForCausalLM or Qwen3ForCausalLM
        (same logits)."""
        return load_llama(cls(llama_config(model.config)), model.state_dict())
