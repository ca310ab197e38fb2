"""Decoding: turning a language model's next-token scores into text, one token at a time.

- :func:`filter_top_k`, :func:`filter_top_p` -- keep only the likeliest tokens (top-k) or the
  smallest set of tokens whose probabilities add up to p (nucleus, top-p).
- :func:`next_token` -- one decision from the last position's logits: greedy, or sampling with
  temperature, top-k and top-p.
- :func:`generate` -- the loop, with or without a KV cache (same tokens, the cache is faster).
- :func:`beam_search` -- keep the `beam_width` best partial sequences, scored by their total
  log-probability divided by length ** length_penalty.

`model(idx)` must return `(logits (B, T, V), loss)` like :class:`solutions.decoder.GPT`; for the
cache it must also accept `cache=` and offer `new_cache()`.
"""

from __future__ import annotations

import torch


def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row (..., V); the others become -inf."""
    if k < 1:
        raise ValueError(f"top_k must be at least 1, got {k}")
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1): the k-th largest
    return logits.masked_fill(logits < kth, float("-inf"))


def filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probabilities add up to at least p (the most
    likely token always stays); the others become -inf. logits (..., V)."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    before = probs.cumsum(dim=-1) - probs                 # mass of the likelier tokens
    drop_sorted = before >= p                             # already p without this token
    drop = drop_sorted.scatter(-1, order, drop_sorted)    # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def next_token(logits: torch.Tensor, *, greedy: bool = False, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """logits (B, V) of the last position -> the next token ids (B, 1)."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be (B, V), got {tuple(logits.shape)}")
    if greedy:
        return logits.argmax(dim=-1, keepdim=True)        # (B, 1)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use greedy=True for argmax), "
                         f"got {temperature}")
    logits = logits / temperature                         # before the softmax
    if top_k is not None:
        logits = filter_top_k(logits, top_k)
    if top_p is not None:
        logits = filter_top_p(logits, top_p)
    probs = torch.softmax(logits.float(), dim=-1)         # (B, V)
    return torch.multinomial(probs, 1, generator=generator)  # (B, 1)


def logits_of(out) -> torch.Tensor:
    """A model's output -> its logits (a GPT returns (logits, loss))."""
    return out[0] if isinstance(out, tuple) else out


def generate(model, idx: torch.Tensor, max_new_tokens: int, *, greedy: bool = False,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             use_cache: bool = True, stop: int | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Extend idx (B, T) by up to max_new_tokens tokens -> (B, T + n). Runs in eval mode.

    Greedy takes the argmax; otherwise tokens are sampled from softmax(logits / temperature),
    optionally restricted to the top_k tokens and/or the top_p nucleus. A seeded `generator`
    makes sampling reproducible. `stop`: a token id that ends a sequence (the rows that have
    stopped are filled with it; generation ends when every row has stopped). With use_cache the
    keys and values of earlier tokens are kept instead of recomputed: same tokens, less work.
    Longer than block_size, only the last block_size tokens are read.
    """
    if idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError(f"idx must be (B, T) token ids with T >= 1, got {tuple(idx.shape)}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    block_size = model.config.block_size
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            cache, done = None, torch.zeros(idx.size(0), 1, dtype=torch.bool, device=idx.device)
            for _ in range(max_new_tokens):
                if use_cache and cache is not None and cache.length < block_size:
                    logits = logits_of(model(idx[:, -1:], cache=cache))   # the new token only
                else:  # first step, no cache, or the window is full: read the last block_size
                    window = idx[:, -block_size:]
                    cache = model.new_cache() if use_cache else None
                    logits = logits_of(model(window, cache=cache) if use_cache else model(window))
                new = next_token(logits[:, -1, :], greedy=greedy, temperature=temperature,
                                 top_k=top_k, top_p=top_p, generator=generator)  # (B, 1)
                if stop is not None:
                    new = new.masked_fill(done, stop)
                    done = done | (new == stop)
                idx = torch.cat([idx, new], dim=1)            # (B, T + 1)
                if stop is not None and bool(done.all()):
                    break
            return idx
    finally:
        model.train(was_training)


@torch.no_grad()
def beam_search(model, idx: torch.Tensor, max_new_tokens: int, *, beam_width: int = 4,
                length_penalty: float = 1.0, stop: int | None = None) -> torch.Tensor:
    """The best continuation of one prompt idx (1, T) found by beam search -> (1, T + n).

    Keeps the `beam_width` partial sequences with the highest total log-probability; a
    sequence that emits `stop` is finished. Finished and full-length sequences compete on
    score = total log-probability / (generated length ** length_penalty): 0 compares raw
    totals (favouring short answers), 1 the mean per token, larger values favour long ones.
    """
    if idx.dim() != 2 or idx.size(0) != 1 or idx.size(1) == 0:
        raise ValueError(f"beam_search extends one prompt: idx must be (1, T), got "
                         f"{tuple(idx.shape)}")
    if beam_width < 1 or max_new_tokens < 1:
        raise ValueError("beam_width and max_new_tokens must be at least 1")
    block_size = model.config.block_size
    if idx.size(1) + max_new_tokens > block_size:
        raise ValueError(f"prompt + max_new_tokens ({idx.size(1) + max_new_tokens}) exceeds "
                         f"block_size {block_size}")
    was_training = model.training
    model.eval()
    try:
        T0 = idx.size(1)
        cache = model.new_cache()
        logits = logits_of(model(idx, cache=cache))[:, -1, :]        # (1, V)
        beams = idx                                                # (W, T)
        scores = torch.zeros(1, device=idx.device)                 # total log-probs (W,)
        finished: list[tuple[float, torch.Tensor]] = []
        for step in range(1, max_new_tokens + 1):
            logp = torch.log_softmax(logits.float(), dim=-1)       # (W, V)
            total = (scores[:, None] + logp).flatten()             # (W * V,)
            k = min(beam_width * 2 if stop is not None else beam_width, total.numel())
            best, flat = torch.topk(total, k)
            V = logp.size(-1)
            rows, tokens = flat // V, flat % V
            keep_rows, keep_tokens, keep_scores = [], [], []
            for score, row, token in zip(best.tolist(), rows.tolist(), tokens.tolist()):
                if stop is not None and token == stop:
                    seq = torch.cat([beams[row], beams.new_tensor([token])])
                    finished.append((score / step ** length_penalty, seq))
                elif len(keep_rows) < beam_width:
                    keep_rows.append(row)
                    keep_tokens.append(token)
                    keep_scores.append(score)
            if not keep_rows:
                break
            index = torch.tensor(keep_rows, device=idx.device)
            beams = torch.cat([beams[index], torch.tensor(keep_tokens, device=idx.device)[:, None]],
                              dim=1)                               # (W, T + step)
            scores = torch.tensor(keep_scores, device=idx.device)
            # stop early when no live beam can beat the best finished one any more
            if finished and length_penalty <= 0 and max(f[0] for f in finished) >= \
                    scores.max().item() / step ** length_penalty:
                break
            if step == max_new_tokens:
                break
            cache.reorder(index)
            if hasattr(model, "reorder"):                          # an encoded source
                model.reorder(index)
            logits = logits_of(model(beams[:, -1:], cache=cache))[:, -1, :]
        length = beams.size(1) - T0
        finished += [(s / length ** length_penalty, b) for s, b in zip(scores.tolist(), beams)]
        best_seq = max(finished, key=lambda f: f[0])[1]
        return best_seq[None, :]
    finally:
        model.train(was_training)
