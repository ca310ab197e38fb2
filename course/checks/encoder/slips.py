"""The second catalogue (`SLIPS`): wrong versions of the encoder parts written as a learner
would write them."""

from __future__ import annotations

from course.checks.core import Slip
from course.checks.encoder.mistakes import M, P

# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("embeddings_sum_without_types", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    positions = self.positions[: input_ids.shape[1]]
    x = self.word(input_ids) + self.position(positions)[None]
    x = self.ln(x)
    return self.dropout(x)
""", "no_token_types"),
    Slip("embeddings_no_norm", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    if token_type_ids is None:
        token_type_ids = input_ids * 0
    T = input_ids.shape[-1]
    out = self.word(input_ids) + self.token_type(token_type_ids)
    out = out + self.position.weight[:T]
    return self.dropout(out)
""", "no_embedding_layernorm"),
    Slip("embeddings_positions_from_one", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    B, T = input_ids.shape
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    pos = self.positions[1:T + 1]
    return self.dropout(self.ln(self.word(input_ids) + self.position(pos)
                                + self.token_type(token_type_ids)))
""", "positions_off_by_one"),
    Slip("embeddings_norm_each_part", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    T = input_ids.size(1)
    word = self.ln(self.word(input_ids))
    return self.dropout(word + self.position(self.positions[:T])
                        + self.token_type(token_type_ids))
""", None),
    Slip("pooler_average", M + "Pooler.forward", """
def forward(self, hidden):
    summary = hidden.sum(dim=1) / hidden.shape[1]
    return torch.tanh(self.dense(summary))
""", "pooler_on_mean"),
    Slip("pooler_linear_only", M + "Pooler.forward", """
def forward(self, hidden):
    cls = hidden[:, 0, :]
    return self.dense(cls)
""", "pooler_no_tanh"),
    Slip("pooler_relu", M + "Pooler.forward", """
def forward(self, hidden):
    return torch.relu(self.dense(hidden[:, 0]))
""", None),
    Slip("encoder_mask_only_first_layer", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    h = self.embeddings(input_ids, token_type_ids)
    mask = padding_mask(attention_mask) if attention_mask is not None else None
    for i, layer in enumerate(self.layers):
        h = layer(h, mask if i == 0 else None)
    if self.ln_f is not None:
        h = self.ln_f(h)
    return h
""", None),
    Slip("encoder_ignores_mask", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    h = self.embeddings(input_ids, token_type_ids)
    for layer in self.layers:
        h = layer(h)
    return h if self.ln_f is None else self.ln_f(h)
""", "mask_not_passed_down"),
    Slip("encoder_no_types", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    x = self.embeddings(input_ids)
    mask = None
    if attention_mask is not None:
        mask = attention_mask.bool()[:, None, None, :]
    for layer in self.layers:
        x = layer(x, mask)
    if self.ln_f is not None:
        x = self.ln_f(x)
    return x
""", "token_types_not_passed"),
    Slip("encoder_no_final_norm", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    x = self.embeddings(input_ids, token_type_ids=token_type_ids)
    mask = None if attention_mask is None else padding_mask(attention_mask)
    for block in self.layers:
        x = block(x, mask=mask)
    return x
""", "final_norm_skipped"),
    Slip("embeddings_arange_positions", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    B, T = input_ids.shape
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    pos = torch.arange(T).unsqueeze(0)
    x = self.word(input_ids) + self.position(pos) + self.token_type(token_type_ids)
    return self.dropout(self.ln(x))
""", "positions_made_on_cpu"),
    Slip("embeddings_dropout_first", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    T = input_ids.size(1)
    types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
    x = self.word(input_ids) + self.position(self.positions[:T]) + self.token_type(types)
    x = self.dropout(x)
    return self.ln(x)
""", "embedding_dropout_before_norm"),
    Slip("encoder_mask_of_ones", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    if attention_mask is None:
        attention_mask = torch.ones(input_ids.size(0), input_ids.size(1), dtype=torch.long)
    x = self.embeddings(input_ids, token_type_ids)
    mask = padding_mask(attention_mask)
    for layer in self.layers:
        x = layer(x, mask)
    return x if self.ln_f is None else self.ln_f(x)
""", "mask_made_on_cpu"),
    Slip("mean_pool_all_positions", M + "mean_pool", """
def mean_pool(hidden, attention_mask):
    return hidden.sum(dim=1) / hidden.shape[1]
""", "mean_over_padding"),
    Slip("mean_pool_masked_sum_over_T", M + "mean_pool", """
def mean_pool(hidden, attention_mask):
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / hidden.shape[1]
""", "divide_by_length"),
    Slip("mean_pool_nan_on_empty", M + "mean_pool", """
def mean_pool(hidden, attention_mask):
    mask = attention_mask[..., None].type_as(hidden)
    return torch.sum(hidden * mask, dim=1) / torch.sum(mask, dim=1)
""", "empty_row_nan"),
    Slip("copy_without_checks", P + "copy_checkpoint", """
def copy_checkpoint(model, tensors, names, source="the checkpoint"):
    state = model.state_dict()
    with torch.no_grad():
        for name, target in state.items():
            target.copy_(tensors[names[name]])
    return model
""", None),
    Slip("copy_checks_while_copying", P + "copy_checkpoint", """
def copy_checkpoint(model, tensors, names, source="the checkpoint"):
    with torch.no_grad():
        for name, target in model.state_dict().items():
            theirs = names[name]
            if theirs not in tensors:
                raise CheckpointError(f"{source} has no tensor {theirs!r} (needed for {name!r})")
            if tensors[theirs].shape != target.shape:
                raise CheckpointError(f"{source}: {theirs!r} has the wrong shape")
            target.copy_(tensors[theirs])
    return model
""", None),
    Slip("copy_forgets_return", P + "copy_checkpoint", """
def copy_checkpoint(model, tensors, names, source="the checkpoint"):
    state = model.state_dict()
    for name in state:
        if names[name] not in tensors:
            raise CheckpointError(f"{source} has no tensor {names[name]!r}")
        if tuple(tensors[names[name]].shape) != tuple(state[name].shape):
            raise CheckpointError(f"{source}: tensor {names[name]!r} has the wrong shape")
    with torch.no_grad():
        for name in state:
            state[name].copy_(tensors[names[name]])
""", "model_not_returned"),
    Slip("embeddings_types_always_zero", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    T = input_ids.size(1)
    segments = torch.zeros_like(input_ids)
    x = self.word(input_ids) + self.position(self.positions[:T]) + self.token_type(segments)
    return self.dropout(self.ln(x))
""", None),
    Slip("embeddings_position_of_ids", M + "EncoderEmbeddings.forward", """
def forward(self, input_ids, token_type_ids=None):
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    x = self.word(input_ids) + self.position(input_ids) + self.token_type(token_type_ids)
    return self.dropout(self.ln(x))
""", None),
    Slip("pooler_last_token", M + "Pooler.forward", """
def forward(self, hidden):
    return torch.tanh(self.dense(hidden[:, -1]))
""", "pooler_last_token"),
    Slip("pooler_no_dense", M + "Pooler.forward", """
def forward(self, hidden):
    return torch.tanh(hidden[:, 0])
""", None),
    Slip("pooler_keeps_time_axis", M + "Pooler.forward", """
def forward(self, hidden):
    return torch.tanh(self.dense(hidden[:, :1]))
""", None),
    Slip("encoder_mask_inverted", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    x = self.embeddings(input_ids, token_type_ids)
    mask = None
    if attention_mask is not None:
        mask = padding_mask(1 - attention_mask)
    for layer in self.layers:
        x = layer(x, mask)
    return x if self.ln_f is None else self.ln_f(x)
""", None),
    Slip("encoder_returns_pooled", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    x = self.embeddings(input_ids, token_type_ids)
    mask = None if attention_mask is None else padding_mask(attention_mask)
    for layer in self.layers:
        x = layer(x, mask)
    if self.ln_f is not None:
        x = self.ln_f(x)
    return self.pooler(x)
""", "returns_pooled"),
    Slip("encoder_final_norm_every_layer", M + "Encoder.forward", """
def forward(self, input_ids, attention_mask=None, token_type_ids=None):
    x = self.embeddings(input_ids, token_type_ids)
    mask = None if attention_mask is None else padding_mask(attention_mask)
    for layer in self.layers:
        x = layer(x, mask)
        if self.ln_f is not None:
            x = self.ln_f(x)
    return x
""", None),
    Slip("mean_pool_over_all_steps", M + "mean_pool", """
def mean_pool(hidden, attention_mask):
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(dim=1) / hidden.size(1)
""", "divide_by_length"),
    Slip("mean_pool_max", M + "mean_pool", """
def mean_pool(hidden, attention_mask):
    m = attention_mask.unsqueeze(-1).bool()
    return hidden.masked_fill(~m, float("-inf")).max(dim=1).values
""", None),
    Slip("copy_by_load_state_dict", P + "copy_checkpoint", """
def copy_checkpoint(model, tensors, names, source="the checkpoint"):
    check_names(model, names)
    model.load_state_dict({ours: tensors[theirs] for ours, theirs in names.items()})
    return model
""", "missing_as_keyerror"),
    Slip("copy_ignores_name_table", P + "copy_checkpoint", """
def copy_checkpoint(model, tensors, names, source="the checkpoint"):
    check_names(model, names)
    state = model.state_dict()
    for name, t in state.items():
        if name not in tensors:
            raise CheckpointError(f"{source} has no tensor {name!r}")
        if tensors[name].shape != t.shape:
            raise CheckpointError(f"{source}: {name!r} has the wrong shape")
    with torch.no_grad():
        for name, t in state.items():
            t.copy_(tensors[name])
    return model
""", None),
]
