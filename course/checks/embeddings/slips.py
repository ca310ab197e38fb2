"""The second catalogue (`SLIPS`): wrong versions of the embedding parts written as a learner
would write them."""

from __future__ import annotations

from course.checks.core import Slip
from course.checks.embeddings.mistakes import T

# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("one_hot_float", T + "one_hot_embed", """
def one_hot_embed(ids, weight):
    return F.one_hot(ids, num_classes=weight.shape[0]).float() @ weight
""", "one_hot_float32"),
    Slip("one_hot_without_num_classes", T + "one_hot_embed", """
def one_hot_embed(ids, weight):
    return F.one_hot(ids).to(weight.dtype) @ weight
""", None),
    Slip("one_hot_times_transpose", T + "one_hot_embed", """
def one_hot_embed(ids, weight):
    vectors = F.one_hot(ids, weight.size(0)).type(weight.dtype)
    return torch.matmul(vectors, weight.t())
""", "one_hot_weight_transposed"),
    Slip("token_rows_detached", T + "TokenEmbedding.forward", """
def forward(self, ids):
    table = self.weight.detach()
    return table[ids]
""", "lookup_through_data"),
    Slip("token_lookup_by_one_hot", T + "TokenEmbedding.forward", """
def forward(self, ids):
    return F.one_hot(ids, self.weight.size(0)).float() @ self.weight
""", None),
    Slip("learned_positions_on_cpu", T + "LearnedPositionalEmbedding.forward", """
def forward(self, x):
    T = x.shape[1]
    if T > self.max_len:
        raise ValueError(f"got {T} positions, max_len is {self.max_len}")
    return self.weight[torch.arange(T)]
""", "arange_on_cpu"),
    Slip("learned_length_from_len", T + "LearnedPositionalEmbedding.forward", """
def forward(self, x):
    T = len(x)
    if T > self.max_len:
        raise ValueError(f"got {T} positions, max_len is {self.max_len}")
    return self.weight[:T]
""", "length_from_batch_axis"),
    Slip("learned_error_without_numbers", T + "LearnedPositionalEmbedding.forward", """
def forward(self, x):
    T = x.shape[1]
    if T > self.max_len:
        raise ValueError("sequence too long")
    return self.weight[:T]
""", None),
    Slip("table_cat_halves", T + "sinusoidal_table", """
def sinusoidal_table(max_len, d_model, *, dtype=torch.float32, device=None):
    if d_model % 2:
        raise ValueError("d_model must be even")
    pos = torch.arange(max_len, dtype=torch.float64, device=device)[:, None]
    freq = 1.0 / 10000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float64, device=device)
                             / d_model)
    return torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], dim=1).to(dtype)
""", "sin_cos_concatenated"),
    Slip("table_exponent_over_d", T + "sinusoidal_table", """
def sinusoidal_table(max_len, d_model, *, dtype=torch.float32, device=None):
    if d_model % 2:
        raise ValueError("d_model must be even")
    table = torch.zeros(max_len, d_model, dtype=torch.float64, device=device)
    pos = torch.arange(max_len, dtype=torch.float64, device=device).unsqueeze(1)
    i = torch.arange(d_model // 2, dtype=torch.float64, device=device)
    table[:, 0::2] = torch.sin(pos / 10000 ** (i / d_model))
    table[:, 1::2] = torch.cos(pos / 10000 ** (i / d_model))
    return table.to(dtype)
""", "exponent_i_over_d"),
    Slip("table_in_float32", T + "sinusoidal_table", """
def sinusoidal_table(max_len, d_model, *, dtype=torch.float32, device=None):
    if d_model % 2:
        raise ValueError("d_model must be even")
    pos = torch.arange(max_len, device=device).float().unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, device=device).float()
                    * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model, device=device)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)
    return table.to(dtype)
""", None),
    Slip("table_cos_first", T + "sinusoidal_table", """
def sinusoidal_table(max_len, d_model, *, dtype=torch.float32, device=None):
    if d_model % 2:
        raise ValueError("d_model must be even")
    rows = []
    for pos in range(max_len):
        row = []
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            row += [math.cos(angle), math.sin(angle)]
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64, device=device).reshape(max_len, d_model).to(dtype)
""", "sin_cos_swapped"),
    Slip("sinusoid_new_table", T + "SinusoidalPositionalEncoding.forward", """
def forward(self, x):
    T = x.shape[1]
    if T > self.max_len:
        raise ValueError(f"sequence of {T} tokens is longer than max_len={self.max_len}")
    return sinusoidal_table(T, self.pe.shape[-1])
""", "table_recomputed_in_forward"),
    Slip("sinusoid_length_of_features", T + "SinusoidalPositionalEncoding.forward", """
def forward(self, x):
    T = x.shape[-1]
    if T > self.max_len:
        raise ValueError(f"sequence of {T} tokens is longer than max_len={self.max_len}")
    return self.pe[:T, :]
""", "length_from_last_axis"),
    Slip("embedding_functional_dropout", T + "TransformerEmbedding.forward", """
def forward(self, ids):
    return F.dropout(self.word_embeddings(ids) + self.position_embeddings(ids), p=self.drop.p)
""", "dropout_on_in_eval"),
    Slip("embedding_dropout_module_in_forward", T + "TransformerEmbedding.forward", """
def forward(self, ids):
    dropout = nn.Dropout(self.drop.p)
    return dropout(self.word_embeddings(ids) + self.position_embeddings(ids))
""", "dropout_on_in_eval"),
    Slip("embedding_dropout_each_term", T + "TransformerEmbedding.forward", """
def forward(self, ids):
    return self.drop(self.word_embeddings(ids)) + self.drop(self.position_embeddings(ids))
""", None),
]
