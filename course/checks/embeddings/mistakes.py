"""The catalogue of known embedding mistakes (`MISTAKES`), with the dotted prefixes of the
targets they and the checks name."""

from __future__ import annotations

from course.checks.core import Mistake

T = "solutions.embeddings."

LEARNED_LENGTH_CHECK = (
    "T = x.size(1)\n"
    "        if T > self.max_len:\n"
    '            raise ValueError(f"{T} tokens but only max_len={self.max_len} learned positions")'
)
SINUSOIDAL_LENGTH_CHECK = (
    "        if T > self.max_len:\n"
    '            raise ValueError(f"{T} tokens but the table has max_len={self.max_len} rows")\n'
)
SINUSOIDAL_LENGTH = 'T = x.size(1)\n' + SINUSOIDAL_LENGTH_CHECK

# Every find lands in code the learner writes: the bodies of one_hot_embed and
# sinusoidal_table and the forward of each module, after their given input checks (the
# constructors are given too).
MISTAKES = [
    # Part 1: one_hot_embed
    Mistake(
        "one_hot_weight_transposed", T + "one_hot_embed",
        "return one_hot @ weight", "return one_hot @ weight.T",
        "the weight was transposed. It is (vocab_size, d_model): row i is token i's vector, so "
        "one_hot(ids) (..., V) @ weight (V, C) needs no .T (nn.Linear stores (out, in); an "
        "embedding table does not).",
    ),
    Mistake(
        "one_hot_float32", T + "one_hot_embed",
        ".to(weight.dtype)", ".float()",
        "the one-hot vectors were made float32 whatever the table's dtype, so a float64 table "
        "cannot be multiplied by them. Convert them to weight.dtype.",
    ),
    # Part 2: TokenEmbedding.forward, LearnedPositionalEmbedding.forward
    Mistake(
        "lookup_through_data", T + "TokenEmbedding",
        "return self.weight[ids]", "return self.weight.data[ids]",
        "the rows were read through .data (or .detach()), which cuts them from autograd: the "
        "table gets no gradient and is never learned. Index the parameter itself: "
        "self.weight[ids].",
    ),
    Mistake(
        "positions_start_at_1", T + "LearnedPositionalEmbedding",
        "torch.arange(T, device=x.device)", "torch.arange(1, T + 1, device=x.device)",
        "positions start at 1; the first token is position 0, so a sequence of T tokens uses "
        "rows 0..T-1 (torch.arange(T)).",
    ),
    Mistake(
        "arange_on_cpu", T + "LearnedPositionalEmbedding",
        "torch.arange(T, device=x.device)", "torch.arange(T)",
        "torch.arange(T) is made on the CPU, which fails once the model is on a GPU. Make it "
        "where the input is: torch.arange(T, device=x.device).",
    ),
    Mistake(
        "length_from_batch_axis", T + "LearnedPositionalEmbedding",
        LEARNED_LENGTH_CHECK, LEARNED_LENGTH_CHECK.replace("x.size(1)", "x.size(0)"),
        "the sequence length was read from axis 0, which is the batch B; T is axis 1 of "
        "(B, T) ids or (B, T, C) activations.",
    ),
    Mistake(
        "learned_max_len_not_enforced", T + "LearnedPositionalEmbedding",
        LEARNED_LENGTH_CHECK, "T = x.size(1)",
        "a sequence longer than max_len is not refused before the lookup, so it fails with an "
        "IndexError that does not say why. Raise a ValueError that names both T and max_len.",
    ),
    # Part 3: sinusoidal_table, SinusoidalPositionalEncoding.forward
    Mistake(
        "sin_cos_concatenated", T + "sinusoidal_table",
        "table[:, 0::2] = torch.sin(angle)\n"
        "    table[:, 1::2] = torch.cos(angle)",
        "table[:, : d_model // 2] = torch.sin(angle)\n"
        "    table[:, d_model // 2 :] = torch.cos(angle)",
        "sin and cos were concatenated in two halves. They are interleaved: sin in the even "
        "features 0, 2, 4, ... and cos in the odd features 1, 3, 5, ... (table[:, 0::2] and "
        "table[:, 1::2]).",
    ),
    Mistake(
        "sin_cos_swapped", T + "sinusoidal_table",
        "table[:, 0::2] = torch.sin(angle)\n"
        "    table[:, 1::2] = torch.cos(angle)",
        "table[:, 0::2] = torch.cos(angle)\n"
        "    table[:, 1::2] = torch.sin(angle)",
        "sin and cos are swapped: sin goes in the even features 0, 2, 4, ... and cos in the odd "
        "ones, so the row of position 0 is [0, 1, 0, 1, ...].",
    ),
    Mistake(
        "exponent_i_over_d", T + "sinusoidal_table",
        "2 * i / d_model", "i / d_model",
        "the exponent is i/d_model instead of 2i/d_model: the pair (2i, 2i+1) has frequency "
        "1 / 10000^(2i/d_model), so the slowest pair should be near 1/10000.",
    ),
    Mistake(
        "base_1000", T + "sinusoidal_table",
        "10000.0 **", "1000.0 **",
        "the base is 1000; the original transformer uses 10000: pos / 10000^(2i/d_model).",
    ),
    Mistake(
        "positions_not_sliced", T + "SinusoidalPositionalEncoding",
        "return self.pe[:T]", "return self.pe",
        "the whole table (max_len, d_model) was returned; a sequence of T tokens needs only its "
        "first T rows: pe[:T].",
    ),
    Mistake(
        "table_recomputed_in_forward", T + "SinusoidalPositionalEncoding",
        "return self.pe[:T]", "return sinusoidal_table(T, self.pe.size(1))",
        "a new table was computed in forward: it is made in float32 on the CPU whatever "
        ".double() or .to(device) did to the module. Slice the buffer instead: self.pe[:T].",
    ),
    Mistake(
        "max_len_not_enforced", T + "SinusoidalPositionalEncoding",
        SINUSOIDAL_LENGTH_CHECK, "",
        "a sequence longer than max_len is not refused: pe[:T] then silently has only max_len "
        "rows. Raise a ValueError that names both T and max_len.",
    ),
    Mistake(
        "length_from_last_axis", T + "SinusoidalPositionalEncoding",
        SINUSOIDAL_LENGTH, SINUSOIDAL_LENGTH.replace("x.size(1)", "x.size(-1)"),
        "the sequence length was read from the last axis, which is right for ids (B, T) but is "
        "the feature axis C of activations (B, T, C); T is axis 1 of both.",
    ),
    # Part 4: TransformerEmbedding.forward
    Mistake(
        "positions_not_added", T + "TransformerEmbedding",
        "self.word_embeddings(ids) + self.position_embeddings(ids)",
        "self.word_embeddings(ids)",
        "the position vectors were not added: without them the model cannot tell the order of "
        "the tokens.",
    ),
    Mistake(
        "tokens_scaled", T + "TransformerEmbedding",
        "self.word_embeddings(ids) + self.position_embeddings(ids)",
        "self.word_embeddings(ids) * self.word_embeddings.weight.size(1) ** 0.5"
        " + self.position_embeddings(ids)",
        "the token vectors were multiplied by sqrt(d_model), as the original transformer does; "
        "this module follows BERT and GPT-2 and adds token and position vectors as they are.",
    ),
    Mistake(
        "dropout_before_positions", T + "TransformerEmbedding",
        "x = self.word_embeddings(ids) + self.position_embeddings(ids)\n"
        "        return self.drop(x)",
        "x = self.drop(self.word_embeddings(ids)) + self.position_embeddings(ids)\n"
        "        return x",
        "dropout was applied to the token vectors before the positions were added; it acts on "
        "the sum: drop(token + position).",
    ),
    Mistake(
        "dropout_on_in_eval", T + "TransformerEmbedding",
        "return self.drop(x)", "return F.dropout(x, self.drop.p)",
        "dropout is still on in eval() mode. F.dropout(x, p) defaults to training=True; use "
        "the module self.drop (or pass training=self.training) so model.eval() turns it off.",
    ),
]
