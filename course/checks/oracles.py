"""Shared inputs and independent oracles: used by the checks, the reference tests and the
benchmarks (each helper exists once, here).

- inputs: :func:`randn`, :func:`token_ids`, :func:`lengths_mask`; tolerances: :func:`tol`;
- attention: :func:`attention_weights` (PyTorch's own kernel), :func:`torch_mha`
  (torch.nn.MultiheadAttention; its weights load into ours by
  ``solutions.pretrained.load_torch_attention``), :func:`torch_mha_mask`;
- embeddings: :func:`closed_form_table` (the sinusoid formula, one Python float at a time);
- tokenization: :func:`byte_to_unicode`, :func:`to_hf_tokenizer` (the Rust `tokenizers` library
  running our merges).

Nothing here imports a grader (`course.checks`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------- inputs and tolerances


def tol(dtype: torch.dtype) -> dict:
    """rtol/atol for comparing two computations of the same result in `dtype`."""
    return dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-10)


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32,
          scale: float = 1.0) -> torch.Tensor:
    """Reproducible N(0, scale^2) numbers, drawn in float64 so every dtype sees the same ones."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).mul_(scale).to(dtype)


def token_ids(vocab_size: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Reproducible int64 ids in [0, vocab_size)."""
    return torch.randint(vocab_size, shape, generator=torch.Generator().manual_seed(seed))


def lengths_mask(lengths: list[int], T: int) -> torch.Tensor:
    """(B, T) bool, True on the first lengths[b] positions of row b (real tokens)."""
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]


# ---------------------------------------------------------------- attention


def attention_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """q k^T / sqrt(d_k) by einsum (not the reference's matmul)."""
    return torch.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.size(-1))


def attention_weights(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax over the keys with a mask (True = may attend), by PyTorch's attention kernel:
    attending from `scores` as queries to identity keys and values returns exactly the weights.
    A query with no key to attend to gets all-zero weights."""
    eye = torch.eye(scores.size(-1), dtype=scores.dtype)
    return F.scaled_dot_product_attention(scores, eye, eye, attn_mask=mask, scale=1.0) \
        .nan_to_num(0.0)


def attention(q, k, v, mask=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, weights) of scaled dot-product attention, from PyTorch's fused kernel."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).nan_to_num(0.0)
    return out, attention_weights(attention_scores(q, k), mask)


def torch_mha(C: int, H: int, *, bias: bool = True, dropout: float = 0.0,
              dtype: torch.dtype = torch.float32, seed: int = 0) -> nn.MultiheadAttention:
    """nn.MultiheadAttention(batch_first=True) with non-zero biases (so a missing bias shows)."""
    torch.manual_seed(seed)
    mha = nn.MultiheadAttention(C, H, dropout=dropout, bias=bias, batch_first=True, dtype=dtype)
    with torch.no_grad():
        for p in (mha.in_proj_bias, mha.out_proj.bias):
            if p is not None:
                p.uniform_(-0.5, 0.5)
    return mha


def torch_mha_mask(mask: torch.Tensor | None, B: int, H: int, T_q: int) -> torch.Tensor | None:
    """Our mask (True = may attend, broadcastable to (B, H, T_q, T_k)) -> the (B * H, T_q, T_k)
    `attn_mask` of nn.MultiheadAttention (True = may NOT attend)."""
    if mask is None:
        return None
    full = mask.expand(B, H, T_q, mask.size(-1))
    return ~full.reshape(B * H, T_q, mask.size(-1))


# ---------------------------------------------------------------- embeddings


def closed_form_table(max_len: int, d_model: int, *, dtype: torch.dtype = torch.float32,
                      device=None) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...), one Python float at a
    time: the formula as written, independent of any tensor code."""
    rows = []
    for pos in range(max_len):
        row = []
        for j in range(d_model):
            angle = pos / 10000 ** (2 * (j // 2) / d_model)
            row.append(math.sin(angle) if j % 2 == 0 else math.cos(angle))
        rows.append(row)
    table = torch.tensor(rows, dtype=torch.float64).reshape(max_len, d_model)
    return table.to(dtype=dtype, device=device)


# ---------------------------------------------------------------- tokenization


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for every byte: printable Latin-1 bytes stand for themselves,
    the others are shifted to U+0100 and up. Hugging Face's byte-level BPE stores tokens this way.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shift)
            shift += 1
    return mapping


def to_hf_tokenizer(bpe):
    """A :class:`solutions.tokenization_bpe.BPETokenizer` as a Rust `tokenizers.Tokenizer`: same
    vocabulary ids, merges in the same rank order, GPT-2's byte-level pre-tokenizer (same split
    regex), same special tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    from solutions.tokenization import GPT2_SPLIT_PATTERN

    if bpe.pattern != GPT2_SPLIT_PATTERN:
        raise ValueError("to_hf_tokenizer supports only GPT2_SPLIT_PATTERN pre-tokenization")
    symbol = byte_to_unicode()

    def as_str(i: int) -> str:
        return "".join(symbol[b] for b in bpe.vocab[i])

    n_base = 256 + len(bpe.merges)
    vocab = {as_str(i): i for i in range(n_base)}
    if len(vocab) != n_base:
        raise ValueError("two merges make the same byte string; tokenizers needs unique tokens")
    merges = [(as_str(a), as_str(b)) for a, b in bpe.merges]  # rank order

    tok = Tokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    specials = sorted(bpe.special_tokens, key=bpe.special_tokens.get)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    for s, i in bpe.special_tokens.items():
        if tok.token_to_id(s) != i:
            raise ValueError(f"special token {s!r} got id {tok.token_to_id(s)} instead of {i}")
    return tok
