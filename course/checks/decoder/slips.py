"""The second catalogue (`SLIPS`): wrong versions of the decoder and decoding parts written as a
learner would write them."""

from __future__ import annotations

from course.checks.core import Slip
from course.checks.decoder.mistakes import G, M

# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("gpt_arange_positions", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    B, T = idx.shape
    pos = torch.arange(T, device=idx.device)
    h = self.wte(idx) + self.wpe(pos)[None]
    h = self.drop(h)
    for n, blk in enumerate(self.blocks):
        h = blk(h, cache=cache[n] if cache is not None else None)
    logits = self.lm_head(self.ln_f(h))
    if targets is None:
        return logits, None
    return logits, lm_loss(logits, targets, ignore_index)
""", "positions_ignore_cache"),
    Slip("gpt_forgets_ln_f", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    start = cache.length if cache is not None else 0
    h = self.wte(idx) + self.wpe(self.positions[start:start + idx.shape[1]])
    for n, blk in enumerate(self.blocks):
        h = blk(h, cache=None if cache is None else cache[n])
    logits = self.lm_head(h)
    loss = lm_loss(logits, targets, ignore_index) if targets is not None else None
    return logits, loss
""", "no_final_norm"),
    Slip("gpt_shifts_targets", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    start = 0 if cache is None else cache.length
    x = self.drop(self.wte(idx) + self.wpe(self.positions[start:start + idx.size(1)]))
    for i, block in enumerate(self.blocks):
        x = block(x, cache=None if cache is None else cache[i])
    logits = self.lm_head(self.ln_f(x))
    loss = None
    if targets is not None:
        V = logits.size(-1)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), targets[:, 1:].reshape(-1),
                               ignore_index=ignore_index)
    return logits, loss
""", "targets_shifted_twice"),
    Slip("gpt_cross_entropy_default_ignore", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    start = 0 if cache is None else cache.length
    x = self.drop(self.wte(idx) + self.wpe(self.positions[start:start + idx.size(1)]))
    for i, block in enumerate(self.blocks):
        x = block(x, cache=None if cache is None else cache[i])
    logits = self.lm_head(self.ln_f(x))
    if targets is None:
        return logits, None
    return logits, F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
""", "ignore_index_dropped"),
    Slip("gpt_cache_layer_zero", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    T = idx.size(1)
    offset = cache.length if cache else 0
    x = self.wte(idx) + self.wpe(self.positions[offset:offset + T])
    x = self.drop(x)
    for block in self.blocks:
        if cache is None:
            x = block(x)
        else:
            x = block(x, cache=cache[0])
    logits = self.lm_head(self.ln_f(x))
    return logits, (lm_loss(logits, targets, ignore_index) if targets is not None else None)
""", "cache_same_layer"),
    Slip("gpt_blocks_never_cached", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    start = cache.length if cache is not None else 0
    h = self.drop(self.wte(idx) + self.wpe(self.positions[start:start + idx.shape[-1]]))
    for block in self.blocks:
        h = block(h)
    logits = self.lm_head(self.ln_f(h))
    loss = None
    if targets is not None:
        loss = lm_loss(logits, targets, ignore_index=ignore_index)
    return logits, loss
""", "cache_bypassed"),
    Slip("cache_overwrites", M + "LayerCache.update", """
def update(self, k, v):
    self.k, self.v = k, v
    return self.k, self.v
""", "cache_not_appended"),
    Slip("cache_cat_on_heads", M + "LayerCache.update", """
def update(self, k, v):
    if self.k is None:
        self.k, self.v = k, v
    else:
        self.k = torch.cat((self.k, k), 1)
        self.v = torch.cat((self.v, v), 1)
    return self.k, self.v
""", "cache_wrong_axis"),
    Slip("cache_prepends", M + "LayerCache.update", """
def update(self, k, v):
    if self.k is not None:
        k = torch.cat([k, self.k], dim=2)
        v = torch.cat([v, self.v], dim=2)
    self.k, self.v = k, v
    return k, v
""", "cache_new_first"),
    Slip("top_k_drops_kth", G + "filter_top_k", """
def filter_top_k(logits, k):
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return torch.where(logits > kth, logits, torch.full_like(logits, float("-inf")))
""", None),
    Slip("top_p_loop_drops_crossing", G + "filter_top_p", """
def filter_top_p(logits, p):
    probs = torch.softmax(logits, dim=-1)
    out = torch.full_like(logits, float("-inf"))
    flat, dest = probs.reshape(-1, probs.size(-1)), out.view(-1, probs.size(-1))
    src = logits.reshape(-1, logits.size(-1))
    for r in range(flat.size(0)):
        total = 0.0
        for j in flat[r].argsort(descending=True).tolist():
            total += flat[r, j].item()
            if total >= p:
                break
            dest[r, j] = src[r, j]
    return out
""", "top_p_drops_crossing"),
    Slip("temperature_on_probabilities", G + "next_token", """
def next_token(logits, *, greedy=False, temperature=1.0, top_k=None, top_p=None,
               generator=None):
    if greedy:
        return logits.argmax(-1, keepdim=True)
    if top_k is not None:
        logits = filter_top_k(logits, top_k)
    if top_p is not None:
        logits = filter_top_p(logits, top_p)
    probs = torch.softmax(logits, dim=-1) / temperature
    return torch.multinomial(probs, 1, generator=generator)
""", "temperature_ignored"),
    Slip("generate_never_crops", G + "generate", """
def generate(model, idx, max_new_tokens, *, greedy=False, temperature=1.0, top_k=None,
             top_p=None, use_cache=True, stop=None, generator=None):
    mode = model.training
    model.eval()
    cache = model.new_cache() if use_cache else None
    done = torch.zeros(idx.size(0), 1, dtype=torch.bool, device=idx.device)
    fed = 0
    for _ in range(max_new_tokens):
        logits = logits_of(model(idx[:, fed:], cache=cache) if use_cache else model(idx))
        fed = idx.size(1) if use_cache else 0
        nxt = next_token(logits[:, -1], greedy=greedy, temperature=temperature, top_k=top_k,
                         top_p=top_p, generator=generator)
        if stop is not None:
            nxt = torch.where(done, torch.full_like(nxt, stop), nxt)
            done |= nxt == stop
        idx = torch.cat([idx, nxt], dim=1)
        if stop is not None and done.all():
            break
    model.train(mode)
    return idx
""", "cache_never_restarted"),
    Slip("generate_reads_first_position", G + "generate", """
def generate(model, idx, max_new_tokens, *, greedy=False, temperature=1.0, top_k=None,
             top_p=None, use_cache=True, stop=None, generator=None):
    was = model.training
    model.eval()
    L = model.config.block_size
    cache = None
    finished = torch.zeros(idx.size(0), 1, dtype=torch.bool, device=idx.device)
    for _ in range(max_new_tokens):
        if use_cache and cache is not None and cache.length < L:
            out = model(idx[:, -1:], cache=cache)
        else:
            cache = model.new_cache() if use_cache else None
            out = model(idx[:, -L:], cache=cache) if use_cache else model(idx[:, -L:])
        scores = logits_of(out)
        nxt = next_token(scores[:, 0], greedy=greedy, temperature=temperature, top_k=top_k,
                         top_p=top_p, generator=generator)
        if stop is not None:
            nxt[finished] = stop
            finished = finished | (nxt == stop)
        idx = torch.cat((idx, nxt), 1)
        if stop is not None and bool(finished.all()):
            break
    model.train(was)
    return idx
""", "first_position_logits"),
    Slip("generate_fresh_cache_each_step", G + "generate", """
def generate(model, idx, max_new_tokens, *, greedy=False, temperature=1.0, top_k=None,
             top_p=None, use_cache=True, stop=None, generator=None):
    training = model.training
    model.eval()
    n = model.config.block_size
    stopped = torch.zeros(idx.size(0), 1, dtype=torch.bool, device=idx.device)
    try:
        with torch.no_grad():
            for _ in range(max_new_tokens):
                context = idx[:, -n:]
                if use_cache:
                    out = model(context, cache=model.new_cache())
                else:
                    out = model(context)
                new = next_token(logits_of(out)[:, -1, :], greedy=greedy,
                                 temperature=temperature, top_k=top_k, top_p=top_p,
                                 generator=generator)
                if stop is not None:
                    new = torch.where(stopped, torch.full_like(new, stop), new)
                    stopped = stopped | (new == stop)
                idx = torch.cat([idx, new], dim=1)
                if stop is not None and stopped.all():
                    break
    finally:
        model.train(training)
    return idx
""", "cache_never_reused"),
    Slip("next_token_global_rng", G + "next_token", """
def next_token(logits, *, greedy=False, temperature=1.0, top_k=None, top_p=None,
               generator=None):
    if greedy:
        return torch.argmax(logits, dim=-1, keepdim=True)
    scaled = logits / temperature
    if top_k is not None:
        scaled = filter_top_k(scaled, top_k)
    if top_p is not None:
        scaled = filter_top_p(scaled, top_p)
    return torch.multinomial(F.softmax(scaled, dim=-1), num_samples=1)
""", "generator_ignored"),
    Slip("gpt_embeddings_not_dropped", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    self.check_inputs(idx, cache)
    past = 0 if cache is None else cache.length
    h = self.wte(idx) + self.wpe(self.positions[past:past + idx.size(1)])
    for layer, block in enumerate(self.blocks):
        h = block(h) if cache is None else block(h, cache=cache[layer])
    logits = self.lm_head(self.ln_f(h))
    if targets is None:
        return logits, None
    return logits, lm_loss(logits, targets, ignore_index)
""", "no_embedding_dropout"),
    Slip("gpt_loss_without_none_check", M + "GPT.forward", """
def forward(self, idx, targets=None, *, ignore_index=-100, cache=None):
    self.check_inputs(idx, cache)
    start = cache.length if cache is not None else 0
    pos = self.positions[start:start + idx.size(1)]
    x = self.drop(self.wte(idx) + self.wpe(pos))
    for i, block in enumerate(self.blocks):
        x = block(x, cache=cache[i] if cache is not None else None)
    logits = self.lm_head(self.ln_f(x))
    return logits, lm_loss(logits, targets, ignore_index)
""", None),
    Slip("cache_length_is_batch", M + "LayerCache.length", """
@property
def length(self):
    return 0 if self.k is None else len(self.k)
""", None),
    Slip("cache_returns_new_only", M + "LayerCache.update", """
def update(self, k, v):
    if self.k is None:
        self.k, self.v = k, v
    else:
        self.k = torch.cat((self.k, k), dim=2)
        self.v = torch.cat((self.v, v), dim=2)
    return k, v
""", None),
    Slip("top_k_sorted_index_k", G + "filter_top_k", """
def filter_top_k(logits, k):
    values = torch.sort(logits, dim=-1, descending=True).values
    threshold = values[..., k:k + 1]
    return logits.masked_fill(logits < threshold, float("-inf"))
""", None),
    Slip("top_p_keeps_the_tail", G + "filter_top_p", """
def filter_top_p(logits, p):
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    before = probs.cumsum(dim=-1) - probs
    drop_sorted = before < p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))
""", "top_p_wrong_side"),
    Slip("top_p_sorted_order", G + "filter_top_p", """
def filter_top_p(logits, p):
    sorted_logits, _ = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    cum = probs.cumsum(-1)
    drop = (cum - probs) >= p
    return sorted_logits.masked_fill(drop, float("-inf"))
""", None),
    Slip("top_p_gather_back", G + "filter_top_p", """
def filter_top_p(logits, p):
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    drop_sorted = probs.cumsum(dim=-1) - probs >= p
    drop = drop_sorted.gather(-1, order)
    return logits.masked_fill(drop, float("-inf"))
""", None),
    Slip("next_greedy_flat", G + "next_token", """
def next_token(logits, *, greedy=False, temperature=1.0, top_k=None, top_p=None,
               generator=None):
    if greedy:
        return torch.argmax(logits, dim=-1)
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    logits = logits / temperature
    if top_k is not None:
        logits = filter_top_k(logits, top_k)
    if top_p is not None:
        logits = filter_top_p(logits, top_p)
    return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
""", None),
    Slip("generate_cache_never_restarted", G + "generate", """
def generate(model, idx, max_new_tokens, *, greedy=False, temperature=1.0, top_k=None,
             top_p=None, use_cache=True, stop=None, generator=None):
    block_size = model.config.block_size
    was_training = model.training
    model.eval()
    cache = model.new_cache() if use_cache else None
    done = torch.zeros(idx.size(0), 1, dtype=torch.bool)
    with torch.no_grad():
        for step in range(max_new_tokens):
            if use_cache and step > 0:
                logits, _ = model(idx[:, -1:], cache=cache)
            elif use_cache:
                logits, _ = model(idx[:, -block_size:], cache=cache)
            else:
                logits, _ = model(idx[:, -block_size:])
            new = next_token(logits[:, -1], greedy=greedy, temperature=temperature,
                             top_k=top_k, top_p=top_p, generator=generator)
            if stop is not None:
                new = new.masked_fill(done, stop)
                done = done | (new == stop)
            idx = torch.cat([idx, new], dim=1)
            if stop is not None and done.all():
                break
    model.train(was_training)
    return idx
""", "cache_never_restarted"),
    Slip("generate_stop_not_filled", G + "generate", """
def generate(model, idx, max_new_tokens, *, greedy=False, temperature=1.0, top_k=None,
             top_p=None, use_cache=True, stop=None, generator=None):
    block_size = model.config.block_size
    was_training = model.training
    model.eval()
    cache = None
    with torch.no_grad():
        for _ in range(max_new_tokens):
            if use_cache and cache is not None and cache.length < block_size:
                logits, _ = model(idx[:, -1:], cache=cache)
            else:
                cache = model.new_cache() if use_cache else None
                window = idx[:, -block_size:]
                logits, _ = model(window, cache=cache) if use_cache else model(window)
            new = next_token(logits[:, -1, :], greedy=greedy, temperature=temperature,
                             top_k=top_k, top_p=top_p, generator=generator)
            idx = torch.cat([idx, new], dim=1)
            if stop is not None and bool((idx == stop).any(dim=1).all()):
                break
    model.train(was_training)
    return idx
""", "stop_not_kept"),
]
