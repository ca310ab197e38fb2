"""The second catalogue (`SLIPS`): wrong versions of the feed-forward parts written as a learner
would write them."""

from __future__ import annotations

from course.checks.core import Slip
from course.checks.feedforward.mistakes import T

# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("gelu_where_relu", T + "gelu", """
def gelu(x):
    return torch.where(x > 0, x, torch.zeros_like(x))
""", "gelu_is_relu"),
    Slip("gelu_written_as_tanh", T + "gelu", """
def gelu(x):
    inner = math.sqrt(2 / math.pi) * (x + 0.044715 * torch.pow(x, 3))
    return 0.5 * x * (1 + torch.tanh(inner))
""", "gelu_is_tanh"),
    Slip("gelu_rounded_constant", T + "gelu", """
def gelu(x):
    return 0.5 * x * (1 + torch.erf(x * 0.7071))
""", None),
    Slip("gelu_forgot_x", T + "gelu", """
def gelu(x):
    cdf = 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    return cdf
""", None),
    Slip("gelu_sigmoid_by_hand", T + "gelu", """
def gelu(x):
    return x / (1 + torch.exp(-1.702 * x))
""", "gelu_sigmoid"),
    Slip("tanh_without_cube", T + "gelu_tanh", """
def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh((2 / math.pi) ** 0.5 * x))
""", "tanh_no_cubic"),
    Slip("tanh_typo_coefficient", T + "gelu_tanh", """
def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.44715 * x ** 3)))
""", None),
    Slip("ffn_sequential_gelu_only", T + "FeedForward.forward", """
def forward(self, x):
    return F.dropout(self.proj(F.gelu(self.fc(x))), self.dropout, self.training)
""", "ffn_activation_ignored"),
    Slip("ffn_dropout_on_hidden", T + "FeedForward.forward", """
def forward(self, x):
    acts = {"gelu": gelu, "gelu_tanh": gelu_tanh, "relu": torch.relu}
    hidden = acts[self.activation](self.fc(x))
    hidden = F.dropout(hidden, self.dropout, self.training)
    return self.proj(hidden)
""", "ffn_dropout_on_hidden"),
    Slip("ffn_both_gelus_exact", T + "FeedForward.forward", """
def forward(self, x):
    acts = {"relu": torch.relu, "gelu": gelu, "gelu_tanh": gelu}
    return F.dropout(self.proj(acts[self.activation](self.fc(x))), self.dropout, self.training)
""", "ffn_activation_ignored"),
    Slip("ffn_misspelt_tanh", T + "FeedForward.forward", """
def forward(self, x):
    h = self.fc(x)
    if self.activation == "relu":
        h = torch.relu(h)
    elif self.activation == "tanh":
        h = gelu_tanh(h)
    else:
        h = gelu(h)
    return F.dropout(self.proj(h), self.dropout, self.training)
""", "ffn_activation_ignored"),
    Slip("ffn_functional_dropout_default", T + "FeedForward.forward", """
def forward(self, x):
    if self.activation == "relu":
        h = torch.relu(self.fc(x))
    elif self.activation == "gelu_tanh":
        h = gelu_tanh(self.fc(x))
    else:
        h = gelu(self.fc(x))
    return F.dropout(self.proj(h), self.dropout)
""", "ffn_dropout_at_eval"),
    Slip("ffn_activation_last", T + "FeedForward.forward", """
def forward(self, x):
    act = {"gelu": gelu, "gelu_tanh": gelu_tanh, "relu": torch.relu}[self.activation]
    y = act(self.proj(self.fc(x)))
    return F.dropout(y, self.dropout, self.training)
""", "ffn_activation_last"),
    Slip("ffn_adds_its_input", T + "FeedForward.forward", """
def forward(self, x):
    act = {"gelu": gelu, "gelu_tanh": gelu_tanh, "relu": torch.relu}[self.activation]
    return x + F.dropout(self.proj(act(self.fc(x))), self.dropout, self.training)
""", "ffn_residual_inside"),
    Slip("ffn_dropout_twice", T + "FeedForward.forward", """
def forward(self, x):
    act = {"gelu": gelu, "gelu_tanh": gelu_tanh, "relu": torch.relu}[self.activation]
    h = F.dropout(act(self.fc(x)), self.dropout, self.training)
    return F.dropout(self.proj(h), self.dropout, self.training)
""", None),
    Slip("params_bias_always", T + "feedforward_parameters", """
def feedforward_parameters(d_model, d_ff, bias=True):
    return 2 * d_model * d_ff + d_model + d_ff
""", "params_bias_ignored"),
    Slip("params_assumes_4x", T + "feedforward_parameters", """
def feedforward_parameters(d_model, d_ff, bias=True):
    n = 8 * d_model * d_model
    if bias:
        n += 5 * d_model
    return n
""", None),
    Slip("gelu_erf_over_two", T + "gelu", """
def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / 2))
""", None),
    Slip("gelu_no_half", T + "gelu", """
def gelu(x):
    return x * (1 + torch.erf(x / math.sqrt(2)))
""", "gelu_no_half"),
    Slip("tanh_pi_fraction_flipped", T + "gelu_tanh", """
def gelu_tanh(x):
    c = math.sqrt(math.pi / 2)
    return 0.5 * x * (1 + torch.tanh(c * (x + 0.044715 * x ** 3)))
""", None),
    Slip("tanh_square_not_cube", T + "gelu_tanh", """
def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x * x)))
""", "tanh_square"),
    Slip("ffn_gelu_means_tanh", T + "FeedForward.forward", """
def forward(self, x):
    h = self.fc(x)
    h = torch.relu(h) if self.activation == "relu" else gelu_tanh(h)
    return F.dropout(self.proj(h), p=self.dropout, training=self.training)
""", "ffn_tanh_for_exact"),
    Slip("ffn_fresh_dropout_module", T + "FeedForward.forward", """
def forward(self, x):
    act = {"gelu": gelu, "gelu_tanh": gelu_tanh, "relu": torch.relu}[self.activation]
    return nn.Dropout(self.dropout)(self.proj(act(self.fc(x))))
""", "ffn_dropout_at_eval"),
    Slip("ffn_proj_without_bias", T + "FeedForward.forward", """
def forward(self, x):
    act = {"gelu": gelu, "gelu_tanh": gelu_tanh, "relu": torch.relu}[self.activation]
    h = act(self.fc(x))
    y = F.linear(h, self.proj.weight)
    return F.dropout(y, p=self.dropout, training=self.training)
""", None),
    Slip("params_one_bias_only", T + "feedforward_parameters", """
def feedforward_parameters(d_model, d_ff, bias=True):
    return 2 * d_model * d_ff + (d_ff if bias else 0)
""", None),
    Slip("params_bias_per_hidden_twice", T + "feedforward_parameters", """
def feedforward_parameters(d_model, d_ff, bias=True):
    total = d_model * d_ff * 2
    if bias:
        total += 2 * d_ff
    return total
""", None),
]
