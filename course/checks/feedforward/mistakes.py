"""The catalogue of known feed-forward mistakes (`MISTAKES`), with the dotted prefixes of the
targets they and the checks name."""

from __future__ import annotations

from course.checks.core import Mistake

T = "solutions.feedforward."
EXACT = "0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))"
TANH = "0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))"

MISTAKES = [
    # Part 1: gelu
    Mistake("gelu_is_relu", T + "gelu", EXACT, "torch.relu(x)",
            "this is ReLU, max(0, x); GELU is x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))), "
            "smooth around 0 and slightly negative for small negative x"),
    Mistake("gelu_is_tanh", T + "gelu", EXACT, TANH,
            "this is GPT-2's tanh approximation of GELU; Part 1 asks for the exact GELU with "
            "torch.erf: 0.5 * x * (1 + erf(x / sqrt(2)))"),
    Mistake("gelu_no_sqrt2", T + "gelu", "torch.erf(x / math.sqrt(2.0))", "torch.erf(x)",
            "erf's argument is x / sqrt(2), not x: Phi(x) = (1 + erf(x / sqrt(2))) / 2"),
    Mistake("gelu_times_sqrt2", T + "gelu", "x / math.sqrt(2.0)", "x * math.sqrt(2.0)",
            "erf's argument is x divided by sqrt(2), not multiplied by it"),
    Mistake("gelu_no_half", T + "gelu", "0.5 * x * (1.0 + torch.erf", "x * (1.0 + torch.erf",
            "the factor 1/2 is missing: Phi(x) = (1 + erf(x / sqrt(2))) / 2, so "
            "GELU(x) = 0.5 * x * (1 + erf(x / sqrt(2)))"),
    Mistake("gelu_sigmoid", T + "gelu", EXACT, "x * torch.sigmoid(1.702 * x)",
            "this is the sigmoid approximation x * sigmoid(1.702 x); write the exact GELU "
            "with torch.erf"),
    # Part 2: gelu_tanh
    Mistake("tanh_is_exact", T + "gelu_tanh", TANH, EXACT,
            "this is the exact GELU (with erf); Part 2 asks for the tanh approximation "
            "0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))"),
    Mistake("tanh_no_cubic", T + "gelu_tanh", "(x + 0.044715 * x ** 3)", "x",
            "the cubic term is missing: tanh's argument is sqrt(2 / pi) * (x + 0.044715 * x**3)"),
    Mistake("tanh_no_sqrt", T + "gelu_tanh", "math.sqrt(2.0 / math.pi)", "(2.0 / math.pi)",
            "the factor is the square root of 2 / pi (about 0.798), not 2 / pi"),
    Mistake("tanh_square", T + "gelu_tanh", "x ** 3", "x ** 2",
            "the correction term is 0.044715 * x**3 (a cube, so it keeps the sign of x)"),
    # Part 3: FeedForward.forward (the constructor is given)
    Mistake("ffn_relu", T + "FeedForward", "h = gelu(h)", "h = torch.relu(h)",
            "activation='gelu' uses ReLU; use your gelu for 'gelu' (ReLU only for 'relu')"),
    Mistake("ffn_tanh_for_exact", T + "FeedForward", "h = gelu(h)", "h = gelu_tanh(h)",
            "activation='gelu' uses the tanh approximation; 'gelu' is the exact GELU, "
            "'gelu_tanh' the approximation"),
    Mistake("ffn_activation_ignored", T + "FeedForward", 'if self.activation == "gelu":',
            "if True:",
            "the activation used is not the one named by `activation`: 'gelu' is your gelu, "
            "'gelu_tanh' your gelu_tanh (the approximation GPT-2 was trained with) and 'relu' "
            "torch.relu"),
    Mistake("ffn_no_activation", T + "FeedForward", "h = self.fc(x)\n", "h = self.fc(x)\n"
            "        return F.dropout(self.proj(h), p=self.dropout, training=self.training)\n",
            "there is no activation between the two linear layers: without it the network "
            "is one linear map; apply the activation to fc's output"),
    Mistake("ffn_no_proj", T + "FeedForward", "y = self.proj(h)", "y = h",
            "the second linear layer self.proj is missing: it maps the d_ff hidden features "
            "back to d_model"),
    Mistake("ffn_dropout_at_eval", T + "FeedForward",
            "F.dropout(y, p=self.dropout, training=self.training)", "F.dropout(y, p=self.dropout)",
            "dropout is applied in eval mode too: F.dropout(y, p, training=self.training) "
            "(F.dropout's training flag defaults to True)"),
    Mistake("ffn_activation_last", T + "FeedForward", "y = self.proj(h)",
            "y = self.proj(self.fc(x))\n"
            "        y = {'gelu': gelu, 'gelu_tanh': gelu_tanh, 'relu': torch.relu}"
            "[self.activation](y)",
            "the activation acts after the second linear layer; it belongs between them, on the "
            "d_ff hidden features: proj(activation(fc(x)))"),
    Mistake("ffn_dropout_on_hidden", T + "FeedForward",
            "y = self.proj(h)\n        return F.dropout(y, p=self.dropout, training=self.training)",
            "y = self.proj(F.dropout(h, p=self.dropout, training=self.training))\n"
            "        return y",
            "dropout acts on the hidden features before proj; in this network it acts once, on "
            "the output of proj"),
    Mistake("ffn_residual_inside", T + "FeedForward",
            "return F.dropout(y, p=self.dropout, training=self.training)",
            "return x + F.dropout(y, p=self.dropout, training=self.training)",
            "the input x was added to the output: the residual connection belongs to the "
            "transformer block (Chapter 5), not to the feed-forward network itself"),
    # Part 4: feedforward_parameters
    Mistake("params_no_bias", T + "feedforward_parameters",
            "biases = d_ff + d_model if bias else 0", "biases = 0",
            "the biases are not counted: fc has d_ff of them and proj d_model"),
    Mistake("params_bias_ignored", T + "feedforward_parameters",
            "biases = d_ff + d_model if bias else 0", "biases = d_ff + d_model",
            "with bias=False there are no biases to count"),
    Mistake("params_one_matrix", T + "feedforward_parameters",
            "weights = d_model * d_ff + d_ff * d_model", "weights = d_model * d_ff",
            "only one weight matrix is counted: fc holds d_model * d_ff weights and proj "
            "another d_ff * d_model"),
]
