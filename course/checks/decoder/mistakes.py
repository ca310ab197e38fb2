"""The catalogue of known decoder and decoding mistakes (`MISTAKES`), with the dotted prefixes
of the targets they and the checks name."""

from __future__ import annotations

from course.checks.core import Mistake

M = "solutions.decoder."
G = "solutions.generation."

MISTAKES = [
    # Part 1: GPT.forward (the constructor is given)
    Mistake("cache_bypassed", M + "GPT",
            "x = block(x, cache=None if cache is None else cache[i])",
            "x = block(x)",
            "with a cache, the blocks run without it, so the new tokens never see the earlier "
            "ones: pass each block its layer of the cache, block(x, cache=cache[i])"),
    Mistake("cache_same_layer", M + "GPT", "cache[i]", "cache[0]",
            "every block reads and writes the same layer of the cache: pass each block its own "
            "layer cache[i] (enumerate the blocks) so that each keeps its own keys and values"),
    Mistake("targets_shifted_twice", M + "GPT", "lm_loss(logits, targets, ignore_index)",
            "lm_loss(logits[:, :-1], targets[:, 1:], ignore_index)",
            "the targets are shifted again inside forward: targets[:, t] already is the token "
            "after idx[:, t], so compare logits[:, t] with targets[:, t]"),
    Mistake("ignore_index_dropped", M + "GPT", "lm_loss(logits, targets, ignore_index)",
            "lm_loss(logits, targets)",
            "ignore_index is not passed on: targets equal to ignore_index must not count in "
            "the loss"),
    Mistake("positions_ignore_cache", M + "GPT", "self.positions[start:start + T]",
            "self.positions[:T]",
            "with a KV cache the new tokens' positions start at the cache length, not at 0: "
            "use self.positions[start:start + T]"),
    Mistake("no_final_norm", M + "GPT", "self.lm_head(self.ln_f(x))", "self.lm_head(x)",
            "the final LayerNorm is missing: apply self.ln_f before the LM head"),
    Mistake("no_embedding_dropout", M + "GPT", "x = self.drop(self.wte(idx) + self.wpe(pos))",
            "x = self.wte(idx) + self.wpe(pos)",
            "the embedding dropout is missing: in training mode GPT-2 drops the sum of the "
            "token and position embeddings, x = self.drop(wte(idx) + wpe(positions))"),
    Mistake("no_positions", M + "GPT", "self.wte(idx) + self.wpe(pos)", "self.wte(idx)",
            "the position embeddings are missing: add self.wpe(positions) to the token "
            "embeddings"),
    # Part 2: LayerCache
    Mistake("cache_not_appended", M + "LayerCache",
            "k, v = torch.cat([self.k, k], dim=-2), torch.cat([self.v, v], dim=-2)",
            "k, v = k, v",
            "update replaces the cached keys and values with the new ones, so a new token "
            "never sees the earlier tokens: append them after the past (torch.cat, dim=-2)"),
    Mistake("cache_wrong_axis", M + "LayerCache",
            "torch.cat([self.k, k], dim=-2), torch.cat([self.v, v], dim=-2)",
            "torch.cat([self.k, k], dim=1), torch.cat([self.v, v], dim=1)",
            "the new keys and values are appended along the heads axis: keys are (B, H, T, D), "
            "so positions follow one another on the time axis, dim=-2"),
    Mistake("cache_new_first", M + "LayerCache",
            "torch.cat([self.k, k], dim=-2), torch.cat([self.v, v], dim=-2)",
            "torch.cat([k, self.k], dim=-2), torch.cat([v, self.v], dim=-2)",
            "the new keys and values are put before the cached ones: the past comes first, so "
            "that position t stays at index t"),
    Mistake("cache_values_are_keys", M + "LayerCache", "torch.cat([self.v, v], dim=-2)",
            "torch.cat([self.k, v], dim=-2)",
            "the cached keys are used as the past values: append the new values to self.v"),
    Mistake("cache_not_stored", M + "LayerCache", "self.k, self.v = k, v", "pass",
            "update does not keep the keys and values for the next step: store all of them "
            "in self.k and self.v"),
    Mistake("length_wrong_axis", M + "LayerCache", "self.k.size(-2)", "self.k.size(-1)",
            "length counts the features of a head, not the cached positions: keys are "
            "(B, H, T_past, D), so the length is the size of axis -2"),
    # Part 3: filter_top_k, filter_top_p, next_token
    Mistake("top_k_wrong_side", G + "filter_top_k", "logits.masked_fill(logits < kth,",
            "logits.masked_fill(logits > kth,",
            "top-k removes the wrong side: keep the k LARGEST logits (remove those below the "
            "k-th largest)"),
    Mistake("top_k_only_max", G + "filter_top_k", "values[..., -1:]", "values[..., :1]",
            "only the largest logit is kept: the threshold is the k-th largest, the LAST of "
            "torch.topk's values"),
    Mistake("top_p_wrong_side", G + "filter_top_p", "drop_sorted = before >= p",
            "drop_sorted = before < p",
            "top-p keeps the wrong side: keep the likeliest tokens until their mass reaches p "
            "and drop the tail (drop a token when the mass before it is already >= p)"),
    Mistake("top_p_drops_crossing", G + "filter_top_p", "before = probs.cumsum(dim=-1) - probs",
            "before = probs.cumsum(dim=-1)",
            "top-p drops the token that makes the mass reach p (and may drop every token): "
            "decide on the mass BEFORE each token, cumsum - probs"),
    Mistake("top_p_sorted_order", G + "filter_top_p",
            "drop = drop_sorted.scatter(-1, order, drop_sorted)", "drop = drop_sorted",
            "the top-p decision is applied in sorted order, not vocabulary order: scatter it "
            "back with the sort indices"),
    Mistake("temperature_ignored", G + "next_token", "logits = logits / temperature",
            "logits = logits",
            "the temperature has no effect: divide the logits by it BEFORE the softmax "
            "(dividing probabilities changes nothing once they are renormalised)"),
    Mistake("temperature_multiplied", G + "next_token", "logits = logits / temperature",
            "logits = logits * temperature",
            "the logits are multiplied by the temperature; divide them (T < 1 sharpens, "
            "T > 1 flattens)"),
    Mistake("greedy_wrong_axis", G + "next_token", "logits.argmax(dim=-1, keepdim=True)",
            "logits.argmax(dim=0, keepdim=True)",
            "greedy takes the argmax over the batch: take it over the vocabulary (dim=-1), "
            "one token per row"),
    Mistake("generator_ignored", G + "next_token",
            "torch.multinomial(probs, 1, generator=generator)", "torch.multinomial(probs, 1)",
            "the draw ignores `generator`, so a seeded generator does not make sampling "
            "reproducible: pass it on, torch.multinomial(probs, 1, generator=generator)"),
    # Part 4: generate
    Mistake("cache_never_reused", G + "generate",
            "if use_cache and cache is not None and cache.length < block_size:", "if False:",
            "the cache is never reused: every step runs the whole window with a fresh cache. "
            "After the first step, feed only the newest token with the cache of the steps "
            "before, model(idx[:, -1:], cache=cache), and start over only when the cache holds "
            "block_size positions"),
    Mistake("no_crop", G + "generate", "window = idx[:, -block_size:]", "window = idx",
            "the model is given more than block_size tokens: read only the last block_size "
            "(idx[:, -block_size:])"),
    Mistake("cache_never_restarted", G + "generate",
            "if use_cache and cache is not None and cache.length < block_size:",
            "if use_cache and cache is not None:",
            "the cache is never started afresh: once it holds block_size tokens, read the last "
            "block_size tokens again with a new cache (the window slides; the cache cannot)"),
    Mistake("whole_sequence_with_cache", G + "generate",
            "model(idx[:, -1:], cache=cache)", "model(idx, cache=cache)",
            "with a cache, feed only the newest token idx[:, -1:]: the earlier ones are "
            "already cached"),
    Mistake("first_position_logits", G + "generate", "logits[:, -1, :]", "logits[:, 0, :]",
            "the next token is chosen from the first position's logits; use the LAST "
            "position (logits[:, -1, :])"),
    Mistake("stop_not_kept", G + "generate", "new = new.masked_fill(done, stop)",
            "new = new",
            "a row that has stopped keeps generating: fill its new tokens with the stop token "
            "(new.masked_fill(done, stop))"),
    Mistake("mode_not_restored", G + "generate", "model.train(was_training)", "pass",
            "generate leaves the model in eval mode: remember model.training and restore it "
            "at the end"),
    Mistake("generate_with_grad", G + "generate", "with torch.no_grad():",
            "with torch.enable_grad():",
            "the model runs with gradients on, building autograd graphs that generation never "
            "uses: put the loop inside with torch.no_grad():"),
]
