"""Published model configurations, shipped as data, and a parameter counter for each layout.

Each file in ``configs/`` holds one model: its ``name``, ``family`` (BERT, RoBERTa, GPT-2, ...),
``kind`` (encoder, decoder, encoder-decoder), ``year``, the ``source`` it was copied from and
``config``: the published ``config.json`` keys that decide its size, under their original names.

- :func:`names` / :func:`load` -- the models on file, one model's record.
- :func:`parameter_count` -- counts from the configuration alone, split into
  ``embeddings``, ``attention``, ``feed_forward``, ``norms`` and ``other`` (poolers, projections,
  relative-position tables), plus ``total``. One counter per ``model_type`` in :data:`COUNTERS`;
  add a function there to support a new layout.
- :func:`table` -- rows for a chapter's table of sizes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

CONFIGS = Path(__file__).parent / "configs"


def names(kind: str | None = None) -> list[str]:
    """Names of the models on file (optionally only one kind), in file-name order."""
    found = sorted(p.stem for p in CONFIGS.glob("*.json"))
    return [n for n in found if kind is None or load(n)["kind"] == kind]


@cache
def _read(name: str) -> str:
    path = CONFIGS / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"no model {name!r} on file; known: {', '.join(names())}")
    return path.read_text()


def load(name: str) -> dict:
    """One model's record: name, family, kind, year, source, config."""
    return json.loads(_read(name))


# ---------------------------------------------------------------------------------------------
# Counters: config dict -> parts. Linear(n, m) holds n*m + m numbers, LayerNorm(n) 2n.
# ---------------------------------------------------------------------------------------------


def _linear(n: int, m: int, bias: bool = True) -> int:
    return n * m + (m if bias else 0)


def _bert_like_layer(H: int, F: int) -> dict[str, int]:
    """One post-LN BERT layer: q, k, v, output projections; two LayerNorms; the MLP."""
    return {"attention": 4 * _linear(H, H), "feed_forward": _linear(H, F) + _linear(F, H),
            "norms": 2 * 2 * H}


def _times(parts: dict[str, int], n: int) -> dict[str, int]:
    return {k: v * n for k, v in parts.items()}


def _add(*parts: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in parts:
        for k, v in p.items():
            out[k] = out.get(k, 0) + v
    return out


def _bert(c: dict, pooler: bool = True) -> dict[str, int]:
    """BERT, RoBERTa, MiniLM, ELECTRA (factorised embeddings when embedding_size < hidden),
    ALBERT (and its cross-layer sharing)."""
    H, F, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    E = c.get("embedding_size", H)
    embeddings = (c["vocab_size"] + c["max_position_embeddings"] + c.get("type_vocab_size", 2)) * E
    other = _linear(E, H) if E != H else 0                # project embeddings up to H
    unique_layers = c.get("num_hidden_groups", L) * c.get("inner_group_num", 1)
    if pooler:
        other += _linear(H, H)
    return _add({"embeddings": embeddings, "norms": 2 * E, "other": other},
                _times(_bert_like_layer(H, F), unique_layers))


def _distilbert(c: dict) -> dict[str, int]:
    H, F = c["dim"], c["hidden_dim"]
    embeddings = (c["vocab_size"] + c["max_position_embeddings"]) * H  # no token types
    return _add({"embeddings": embeddings, "norms": 2 * H, "other": 0},
                _times(_bert_like_layer(H, F), c["n_layers"]))


def _deberta(c: dict, v2: bool) -> dict[str, int]:
    """DeBERTa: no absolute positions at the input; attention adds content-to-position and
    position-to-content terms from a shared table of relative-position embeddings."""
    H, F, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    E = c.get("embedding_size", H)
    embeddings = c["vocab_size"] * E
    if c.get("position_biased_input", True):
        embeddings += c["max_position_embeddings"] * E
    embeddings += c.get("type_vocab_size", 0) * E
    other = _linear(E, H, bias=False) if E != H else 0
    att = c.get("pos_att_type") or []
    if v2:  # separate q, k, v with biases; position projections shared with k/q if share_att_key
        attention = 4 * _linear(H, H)
        if not c.get("share_att_key", False):
            attention += _linear(H, H) * ("c2p" in att) + _linear(H, H) * ("p2c" in att)
        buckets = c.get("position_buckets", -1)
    else:   # v1: one packed q/k/v projection without bias, plus q and v biases
        attention = 3 * H * H + 2 * H + _linear(H, H)
        if c.get("relative_attention", False):
            attention += _linear(H, H, bias=False) * ("c2p" in att or "p2p" in att)
            attention += _linear(H, H) * ("p2c" in att or "p2p" in att)
        buckets = -1
    layer = {"attention": attention, "feed_forward": _linear(H, F) + _linear(F, H),
             "norms": 2 * 2 * H}
    rel = 0
    norms = 2 * E
    if c.get("relative_attention", False):
        span = c.get("max_relative_positions", -1)
        span = c["max_position_embeddings"] if span < 1 else span
        rel = 2 * (buckets if buckets > 0 else span) * H
        if v2 and "layer_norm" in c.get("norm_rel_ebd", "none"):
            norms += 2 * H
    return _add({"embeddings": embeddings, "norms": norms, "other": other + rel},
                _times(layer, L))


def _gpt(c: dict, final_norm: bool = True) -> dict[str, int]:
    """GPT (post-LN, no final LayerNorm) and GPT-2 (pre-LN, final ln_f): learned positions,
    packed q/k/v Conv1D, MLP of n_inner (default 4 * n_embd); the LM head is tied."""
    H, L = c["n_embd"], c["n_layer"]
    F = c.get("n_inner") or 4 * H
    layer = {"attention": _linear(H, 3 * H) + _linear(H, H),
             "feed_forward": _linear(H, F) + _linear(F, H), "norms": 2 * 2 * H}
    return _add({"embeddings": (c["vocab_size"] + c["n_positions"]) * H,
                 "norms": 2 * H if final_norm else 0, "other": 0}, _times(layer, L))


def _ctrl(c: dict) -> dict[str, int]:
    """CTRL: GPT-2-like pre-LN stack with sinusoidal positions (no position table)."""
    H, F, L = c["n_embd"], c["dff"], c["n_layer"]
    layer = {"attention": 4 * _linear(H, H), "feed_forward": _linear(H, F) + _linear(F, H),
             "norms": 2 * 2 * H}
    return _add({"embeddings": c["vocab_size"] * H, "norms": 2 * H, "other": 0},
                _times(layer, L))


def _transfo_xl(c: dict) -> dict[str, int]:
    """Transformer-XL: adaptive input embeddings (rarer token clusters get narrower vectors,
    projected up), relative positions (a projection r_net and two bias vectors per layer when
    untie_r), bias-free attention projections, post-LN."""
    D, E, n, d = c["d_model"], c["d_embed"], c["n_head"], c["d_head"]
    edges = [0, *c["cutoffs"], c["vocab_size"]]
    embeddings = other = 0
    for i in range(len(edges) - 1):
        width = E // c["div_val"] ** i
        embeddings += (edges[i + 1] - edges[i]) * width
        if c["div_val"] > 1 or D != E:
            other += D * width                            # projection up to d_model
    layer = {"attention": _linear(D, 3 * n * d, bias=False) + _linear(n * d, D, bias=False)
             + _linear(D, n * d, bias=False) + (2 * n * d if c.get("untie_r", True) else 0),
             "feed_forward": _linear(D, c["d_inner"]) + _linear(c["d_inner"], D),
             "norms": 2 * 2 * D}
    shared_r = 0 if c.get("untie_r", True) else 2 * n * d
    return _add({"embeddings": embeddings, "norms": 0, "other": other + shared_r},
                _times(layer, c["n_layer"]))


def _t5(c: dict) -> dict[str, int]:
    """T5: one shared token table, bias-free projections, RMSNorm (one weight vector), a
    relative-position bias table in the first layer of each stack; gated FFN for *gated-*."""
    D, F, inner = c["d_model"], c["d_ff"], c["num_heads"] * c["d_kv"]
    gated = c.get("feed_forward_proj", "relu").startswith("gated")
    attention = 2 * _linear(D, inner, bias=False) + _linear(D, inner, bias=False) \
        + _linear(inner, D, bias=False)
    ffn = (2 if gated else 1) * _linear(D, F, bias=False) + _linear(F, D, bias=False)
    enc = {"attention": attention, "feed_forward": ffn, "norms": 2 * D}
    dec = {"attention": 2 * attention, "feed_forward": ffn, "norms": 3 * D}
    L_dec = c.get("num_decoder_layers") or c["num_layers"]
    rel = 2 * c["relative_attention_num_buckets"] * c["num_heads"]
    return _add({"embeddings": c["vocab_size"] * D, "norms": 2 * D, "other": rel},
                _times(enc, c["num_layers"]), _times(dec, L_dec))


def _seq2seq(c: dict, *, learned_positions: bool, embedding_norm: bool,
             final_norm: bool) -> dict[str, int]:
    """BART family: a shared token table, encoder and decoder stacks of q/k/v/out projections
    with biases (the decoder adds cross-attention), FFNs, a LayerNorm after each sub-layer.
    BART: learned positions (2 spare rows) and a LayerNorm on the embeddings; mBART adds a
    final LayerNorm per stack; Marian and Pegasus use fixed sinusoidal positions."""
    D, V = c["d_model"], c["vocab_size"]
    embeddings = V * D
    if learned_positions:
        embeddings += 2 * (c["max_position_embeddings"] + 2) * D
    # sinusoidal tables are fixed, but transformers stores them as (frozen) parameters
    other = 0 if learned_positions else 2 * c["max_position_embeddings"] * D
    norms = 2 * 2 * D * (embedding_norm + final_norm)
    enc_f, dec_f = c["encoder_ffn_dim"], c["decoder_ffn_dim"]
    enc = {"attention": 4 * _linear(D, D), "feed_forward": _linear(D, enc_f) + _linear(enc_f, D),
           "norms": 2 * 2 * D}
    dec = {"attention": 8 * _linear(D, D), "feed_forward": _linear(D, dec_f) + _linear(dec_f, D),
           "norms": 3 * 2 * D}
    return _add({"embeddings": embeddings, "norms": norms, "other": other},
                _times(enc, c["encoder_layers"]), _times(dec, c["decoder_layers"]))


COUNTERS: dict[str, Callable[[dict], dict[str, int]]] = {
    "bert": _bert,
    "roberta": _bert,
    "albert": _bert,
    "electra": lambda c: _bert(c, pooler=False),
    "distilbert": _distilbert,
    "deberta": lambda c: _deberta(c, v2=False),
    "deberta-v2": lambda c: _deberta(c, v2=True),
    "openai-gpt": lambda c: _gpt(c, final_norm=False),
    "gpt2": _gpt,
    "ctrl": _ctrl,
    "transfo-xl": _transfo_xl,
    "t5": _t5,
    "bart": lambda c: _seq2seq(c, learned_positions=True, embedding_norm=True, final_norm=False),
    "mbart": lambda c: _seq2seq(c, learned_positions=True, embedding_norm=True, final_norm=True),
    "marian": lambda c: _seq2seq(c, learned_positions=False, embedding_norm=False,
                                 final_norm=False),
    "pegasus": lambda c: _seq2seq(c, learned_positions=False, embedding_norm=False,
                                  final_norm=True),
}


def parameter_count(config: dict) -> dict[str, int]:
    """A published config (dict with ``model_type``) -> parameter counts by part and total
    (the bare model without a task head, as ``transformers.AutoModel`` builds it)."""
    kind = config.get("model_type")
    if kind not in COUNTERS:
        raise ValueError(f"no parameter counter for model_type {kind!r}; known: "
                         f"{', '.join(sorted(COUNTERS))}")
    parts = COUNTERS[kind](config)
    return {**parts, "total": sum(parts.values())}


def _first(config: dict, *keys: str):
    """The value of the first of `keys` the config has (models name their sizes differently;
    an encoder-decoder reports its encoder)."""
    return next((config[k] for k in keys if k in config), None)


def table(kind: str | None = None) -> list[dict]:
    """One row per model on file: name, family, year, layers, width, heads, vocabulary and
    parameter counts (millions), sorted by family year then size."""
    rows = []
    for name in names(kind):
        record = load(name)
        c = record["config"]
        count = parameter_count(c)
        rows.append({
            "model": name, "family": record["family"], "year": record["year"],
            "layers": _first(c, "num_hidden_layers", "n_layers", "n_layer", "num_layers",
                             "encoder_layers"),
            "width": _first(c, "hidden_size", "dim", "n_embd", "d_model"),
            "heads": _first(c, "num_attention_heads", "n_heads", "n_head", "num_heads",
                            "encoder_attention_heads"),
            "vocab": c["vocab_size"],
            "params_M": count["total"] / 1e6,
            "embeddings_M": count["embeddings"] / 1e6,
        })
    return sorted(rows, key=lambda r: (r["year"], r["family"], r["params_M"]))
