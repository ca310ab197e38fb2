"""The catalogue of known encoder mistakes (`MISTAKES`), with the dotted prefixes of the targets
they and the checks name."""

from __future__ import annotations

from course.checks.core import Mistake

M = "solutions.encoder."
P = "solutions.pretrained."

MISTAKES = [
    # Part 1: EncoderEmbeddings.forward
    Mistake("no_token_types", M + "EncoderEmbeddings", "+ self.token_type(token_type_ids))", ")",
            "the token-type (segment) embeddings are missing: add "
            "self.token_type(token_type_ids) to the word and position embeddings"),
    Mistake("no_embedding_layernorm", M + "EncoderEmbeddings", "return self.dropout(self.ln(x))",
            "return self.dropout(x)",
            "the LayerNorm after the embeddings is missing: BERT normalises the sum "
            "(self.ln) before dropout"),
    Mistake("positions_off_by_one", M + "EncoderEmbeddings", "self.positions[:T]",
            "self.positions[1:T + 1]",
            "positions are off by one: the first token uses row 0 of the position table "
            "(self.positions[:T])"),
    Mistake("no_positions", M + "EncoderEmbeddings", "+ self.position(self.positions[:T])", "",
            "the position embeddings are missing: add self.position(self.positions[:T])"),
    Mistake("embedding_dropout_before_norm", M + "EncoderEmbeddings",
            "return self.dropout(self.ln(x))", "return self.ln(self.dropout(x))",
            "dropout comes before the LayerNorm: BERT normalises the sum first and drops the "
            "normalised vectors, self.dropout(self.ln(x))"),
    Mistake("positions_made_on_cpu", M + "EncoderEmbeddings", "self.positions[:T]",
            "torch.arange(T)",
            "the positions are made on the CPU (torch.arange(T) without device=), so the model "
            "fails on a GPU: take them from the buffer, self.positions[:T]"),
    Mistake("token_types_on_cpu", M + "EncoderEmbeddings", "torch.zeros_like(input_ids)",
            "torch.zeros(input_ids.shape, dtype=torch.long)",
            "the default token types are made on the CPU (torch.zeros without device=), so the "
            "model fails on a GPU: make them like the ids, torch.zeros_like(input_ids)"),
    Mistake("token_types_default_one", M + "EncoderEmbeddings", "torch.zeros_like(input_ids)",
            "torch.ones_like(input_ids)",
            "without token_type_ids every token belongs to segment 0, not 1: use "
            "torch.zeros_like(input_ids)"),
    # Part 2: Pooler.forward
    Mistake("pooler_on_mean", M + "Pooler", "hidden[:, 0]", "hidden.mean(1)",
            "the pooler reads the mean of all tokens; BERT's pooler reads the [CLS] vector, "
            "position 0: hidden[:, 0]"),
    Mistake("pooler_no_tanh", M + "Pooler", "torch.tanh(self.dense(hidden[:, 0]))",
            "self.dense(hidden[:, 0])",
            "the pooler has no tanh: pooled = tanh(dense(h_[CLS]))"),
    Mistake("pooler_last_token", M + "Pooler", "hidden[:, 0]", "hidden[:, -1]",
            "the pooler reads the last token; [CLS] is the first one, hidden[:, 0]"),
    # Part 3: Encoder.forward
    Mistake("mask_not_passed_down", M + "Encoder", "x = layer(x, mask)", "x = layer(x)",
            "the attention mask is not passed down to the layers: padding takes part in "
            "attention; call layer(x, mask) with mask = padding_mask(attention_mask)"),
    Mistake("token_types_not_passed", M + "Encoder", "self.embeddings(input_ids, token_type_ids)",
            "self.embeddings(input_ids)",
            "token_type_ids are not passed to the embeddings: every token is treated as "
            "segment 0"),
    Mistake("mask_made_on_cpu", M + "Encoder",
            "mask = None if attention_mask is None else padding_mask(attention_mask)",
            "mask = padding_mask(torch.ones(input_ids.shape, dtype=torch.long) if "
            "attention_mask is None else attention_mask)",
            "without an attention_mask a mask is made on the CPU (torch.ones without "
            "device=), so the encoder fails on a GPU: pass mask=None to the layers (every "
            "token is real), or make it like the ids, torch.ones_like(input_ids)"),
    Mistake("final_norm_skipped", M + "Encoder", "x = self.ln_f(x)", "pass",
            "a pre-LN stack needs its final LayerNorm: apply self.ln_f when it is not None"),
    Mistake("returns_pooled", M + "Encoder",
            "x = self.ln_f(x)\n        return x", "x = self.ln_f(x)\n        return self.pooler(x)",
            "the pooled summary (B, C) is returned where the last hidden state (B, T, C) is "
            "asked for: forward returns one vector per token; the pooler serves heads"),
    Mistake("extra_residual", M + "Encoder", "x = layer(x, mask)", "x = x + layer(x, mask)",
            "each layer's output is added to its input again: the layers already contain "
            "their residual connections, so x = layer(x, mask)"),
    # Part 4: mean_pool
    Mistake("mean_over_padding", M + "mean_pool", "(hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)",
            "hidden.mean(1)",
            "the average includes the padding: sum hidden * mask over the tokens and divide "
            "by the number of real tokens"),
    Mistake("divide_by_length", M + "mean_pool", "m.sum(1).clamp(min=1e-9)", "hidden.size(1)",
            "the masked sum is divided by the padded length T; divide by the number of real "
            "tokens, mask.sum(1)"),
    Mistake("empty_row_nan", M + "mean_pool", ".clamp(min=1e-9)", "",
            "a text with no real token gives 0 / 0 = NaN: clamp the count with "
            ".clamp(min=1e-9)"),
    # Part 5: copy_checkpoint
    Mistake("shape_not_checked", P + "copy_checkpoint",
            "if tuple(tensors[theirs].shape) != tuple(target.shape):", "if False:",
            "a tensor of the wrong shape is not reported: compare each checkpoint tensor's "
            "shape with the model's and raise CheckpointError naming it"),
    Mistake("assigned_not_copied", P + "copy_checkpoint", "target.copy_(tensors[names[name]])",
            "target = tensors[names[name]].clone()",
            "the checkpoint tensor is assigned to a local name, so the model keeps its random "
            "weights: copy it into the model's tensor in place with target.copy_(...)"),
    Mistake("missing_as_keyerror", P + "copy_checkpoint",
            'raise CheckpointError(f"{source} has no tensor', 'raise KeyError(f"{source} has no tensor',
            "a missing tensor must raise CheckpointError (a ValueError), not KeyError"),
    Mistake("model_not_returned", P + "copy_checkpoint", "return model", "return None",
            "copy_checkpoint must return the model it filled"),
]
