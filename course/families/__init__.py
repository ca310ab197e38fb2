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


COUNTERS: dict[str, Callable[[dict], dict[str, int]]] = {
    "bert": _bert,
    "roberta": _bert,
    "albert": _bert,
    "electra": lambda c: _bert(c, pooler=False),
    "distilbert": _distilbert,
    "deberta": lambda c: _deberta(c, v2=False),
    "deberta-v2": lambda c: _deberta(c, v2=True),
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
            "layers": c.get("num_hidden_layers", c.get("n_layers", c.get("n_layer"))),
            "width": c.get("hidden_size", c.get("dim", c.get("n_embd"))),
            "heads": c.get("num_attention_heads", c.get("n_heads", c.get("n_head"))),
            "vocab": c["vocab_size"],
            "params_M": count["total"] / 1e6,
            "embeddings_M": count["embeddings"] / 1e6,
        })
    return sorted(rows, key=lambda r: (r["year"], r["family"], r["params_M"]))
