"""The second catalogue (`SLIPS`): wrong versions of the normalization parts written as a
learner would write them."""

from __future__ import annotations

from course.checks.core import Slip
from course.checks.normalization.mistakes import T

# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("torch_var_default", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mu = torch.mean(x, dim=-1, keepdim=True)
    sigma2 = torch.var(x, dim=-1, keepdim=True)
    return weight * (x - mu) / torch.sqrt(sigma2 + eps) + bias
""", "unbiased_variance"),
    Slip("std_plus_eps", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    centered = x - x.mean(-1, keepdim=True)
    std = x.std(-1, keepdim=True, unbiased=False)
    return centered / (std + eps) * weight + bias
""", "eps_outside_sqrt"),
    Slip("rsqrt_no_eps", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) * torch.rsqrt(var) * weight + bias
""", "no_eps"),
    Slip("over_time_axis", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = torch.mean(x, 1, keepdim=True)
    var = torch.mean((x - mean) ** 2, 1, keepdim=True)
    return (x - mean) / (var + eps) ** 0.5 * weight + bias
""", "time_axis"),
    Slip("batch_and_time", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    dims = tuple(range(x.dim() - 1))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias
""", None),
    Slip("scale_shift_swapped", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    normed = (x - mean) / torch.sqrt(var + eps)
    return bias * normed + weight
""", "weight_bias_swapped"),
    Slip("var_without_keepdim", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias
""", "no_keepdim"),
    Slip("layernorm_functional_default_eps", T + "LayerNorm.forward", """
def forward(self, x):
    return F.layer_norm(x, (self.normalized_shape,), self.weight, self.bias)
""", "module_eps_ignored"),
    Slip("layernorm_scale_shift_mixup", T + "LayerNorm.forward", """
def forward(self, x):
    scale, shift = self.bias, self.weight
    return layer_norm(x, scale, shift, eps=self.eps)
""", "module_params_swapped"),
    Slip("layernorm_fixed_eps", T + "LayerNorm.forward", """
def forward(self, x):
    return layer_norm(x, self.weight, self.bias, 1e-5)
""", "module_eps_ignored"),
    Slip("layernorm_detached_stats", T + "LayerNorm.forward", """
def forward(self, x):
    mean = x.mean(-1, keepdim=True).detach()
    var = ((x - mean) ** 2).mean(-1, keepdim=True).detach()
    return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
""", None),
    Slip("layernorm_no_grad_params", T + "LayerNorm.forward", """
def forward(self, x):
    with torch.no_grad():
        w, b = self.weight.clone(), self.bias.clone()
    return layer_norm(x, w, b, self.eps)
""", "module_params_detached"),
    Slip("layernorm_inline_unbiased", T + "LayerNorm.forward", """
def forward(self, x):
    mu = x.mean(dim=-1, keepdim=True)
    sd = torch.sqrt(x.var(dim=-1, keepdim=True) + self.eps)
    return self.weight * (x - mu) / sd + self.bias
""", "unbiased_variance"),
    Slip("rms_is_l2_normalize", T + "RMSNorm.forward", """
def forward(self, x):
    return x / (x.norm(dim=-1, keepdim=True) + self.eps) * self.weight
""", "rms_sum"),
    Slip("rms_without_eps", T + "RMSNorm.forward", """
def forward(self, x):
    return self.weight * x / x.pow(2).mean(-1, keepdim=True).sqrt()
""", "rms_no_eps"),
    Slip("rms_subtracts_mean", T + "RMSNorm.forward", """
def forward(self, x):
    x = x - x.mean(-1, keepdim=True)
    return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
""", None),
    Slip("ln_forgets_bias", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight
""", None),
    Slip("ln_mean_square_as_var", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = (x ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias
""", None),
    Slip("ln_divides_by_variance", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    return (x - mean) / (var + eps) * weight + bias
""", "divide_by_variance"),
    Slip("ln_over_batch_axis", T + "layer_norm", """
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(0, keepdim=True)
    var = x.var(0, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias
""", "batch_axis"),
    Slip("layernorm_fixed_unit_params", T + "LayerNorm.forward", """
def forward(self, x):
    return layer_norm(x, torch.ones_like(self.weight), torch.zeros_like(self.bias), self.eps)
""", "no_affine"),
    Slip("layernorm_over_last_two", T + "LayerNorm.forward", """
def forward(self, x):
    mean = x.mean(dim=(-2, -1), keepdim=True)
    var = x.var(dim=(-2, -1), keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
""", "stats_over_sequence"),
    Slip("rms_eps_outside_root", T + "RMSNorm.forward", """
def forward(self, x):
    rms = x.pow(2).mean(-1, keepdim=True).sqrt()
    return x / (rms + self.eps) * self.weight
""", "rms_eps_outside"),
    Slip("rms_sum_of_squares", T + "RMSNorm.forward", """
def forward(self, x):
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + self.eps) * self.weight
""", "rms_sum"),
    Slip("rms_mean_abs", T + "RMSNorm.forward", """
def forward(self, x):
    return x / (x.abs().mean(-1, keepdim=True) + self.eps) * self.weight
""", None),
    Slip("rms_weight_added", T + "RMSNorm.forward", """
def forward(self, x):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps) + self.weight
""", None),
]
