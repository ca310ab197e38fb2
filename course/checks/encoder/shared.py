"""Oracles and inputs the encoder checks share: Hugging Face's BERT with the same weights,
configs, batches."""

from __future__ import annotations

import os
from functools import cache

import torch

from course.checks import oracles
from course.checks.core import compare
from course.checks.embeddings import on_meta

# ---------------------------------------------------------------- oracles and inputs

TINY = dict(vocab_size=99, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=24, max_position_embeddings=20, type_vocab_size=2,
            hidden_act="gelu", layer_norm_eps=1e-12, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0)


def _transformers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


@cache
def _hf_bert(seed: int, dtype: torch.dtype = torch.float32, **overrides):
    """A Hugging Face BertModel with random weights (LayerNorms too), in eval mode."""
    transformers = _transformers()
    torch.manual_seed(seed)
    model = transformers.BertModel(transformers.BertConfig(**{**TINY, **overrides}))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:                        # not just ones and zeros
                p.copy_(oracles.randn(*p.shape, seed=seed + len(name), scale=0.2)
                        + (1.0 if name.endswith("weight") else 0.0))
    return model.to(dtype).eval()


def _config(hf):
    from solutions.pretrained import bert_config

    return bert_config(hf.config.to_dict())


def _bert_tensors(hf) -> dict:
    return dict(hf.state_dict())


def _batch(B: int, T: int, lengths: list[int], seed: int, vocab: int = 99):
    ids = oracles.token_ids(vocab, (B, T), seed)
    mask = oracles.lengths_mask(lengths, T).long()
    ids = ids.masked_fill(mask == 0, 0)
    types = (torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None] // 2).long() * mask
    return ids, mask, types


def _check_on_meta(cls, name: str, given: bool, label: str, inputs) -> None:
    """The module, built from a small BERT config, runs on the meta device without making a
    tensor on the CPU: nothing in forward is created without the input's device. `given`:
    attention mask and token types passed; `inputs(ids, mask, types)`: the forward's
    arguments."""
    config = _config(_hf_bert(0))
    ids, mask, types = _batch(2, 5, [5, 3], seed=170)
    mask, types = (mask, types) if given else (None, None)
    args = inputs(ids, mask, types)

    def probe(cls, config=config, args=args):
        return on_meta(cls(config), *args)

    compare(cls, probe, ("meta", (2, 5, config.n_embd), []),
            what=f"{name} moved to the meta device, on ids (2, 5), {label}: (device, shape, "
                 "torch functions that made CPU tensors)",
            effects=[(mistake, lambda got, made=made: made in got[2])
                     for mistake, made in _MADE_ON_CPU[name]])


_MADE_ON_CPU = {  # the mistake a CPU tensor of this kind explains, whatever else is wrong
    "EncoderEmbeddings": [("positions_made_on_cpu", "arange"), ("token_types_on_cpu", "zeros")],
    "Encoder": [("mask_made_on_cpu", "ones")],
}


def _names(n_layer: int) -> dict:
    from solutions.pretrained import BERT_NAMES, expand

    return expand(BERT_NAMES, n_layer)
