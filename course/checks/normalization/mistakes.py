"""The catalogue of known normalization mistakes (`MISTAKES`), with the dotted prefixes of the
targets they and the checks name."""

from __future__ import annotations

from course.checks.core import Mistake

T = "solutions.normalization."
MEAN = "mean = x.mean(dim=-1, keepdim=True)"
VAR = "var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)"
STATS = MEAN + "\n    " + VAR


def _axis(dim: int) -> str:
    return STATS.replace("dim=-1", f"dim={dim}")


MISTAKES = [
    # Part 1: layer_norm
    Mistake("unbiased_variance", T + "layer_norm", VAR, "var = x.var(dim=-1, keepdim=True)",
            "the variance is the unbiased one (divided by C - 1); LayerNorm divides by C: "
            "x.var(dim=-1, unbiased=False, keepdim=True), or the mean of (x - mean)**2"),
    Mistake("eps_outside_sqrt", T + "layer_norm", "torch.sqrt(var + eps)",
            "(torch.sqrt(var) + eps)",
            "eps is added after the square root; it goes inside: sqrt(var + eps)"),
    Mistake("no_eps", T + "layer_norm", "torch.sqrt(var + eps)", "torch.sqrt(var)",
            "eps is missing: a token whose features are all equal gives 0 / 0 = NaN; divide "
            "by sqrt(var + eps)"),
    Mistake("batch_axis", T + "layer_norm", STATS, _axis(0),
            "the statistics are taken over the batch axis (dim=0), like BatchNorm; LayerNorm "
            "normalises each token over its own features, the last axis (dim=-1)"),
    Mistake("time_axis", T + "layer_norm", STATS, _axis(-2),
            "the statistics are taken over the tokens (dim=-2); LayerNorm normalises each "
            "token over its own features, the last axis (dim=-1)"),
    Mistake("stats_over_sequence", T + "layer_norm",
            "mean = x.mean(dim=-1, keepdim=True)\n    var = ((x - mean) ** 2).mean(dim=-1, "
            "keepdim=True)",
            "mean = x.mean(dim=(-2, -1), keepdim=True)\n    var = ((x - mean) ** 2).mean("
            "dim=(-2, -1), keepdim=True)",
            "the statistics are taken over the whole sequence (tokens and features together); "
            "LayerNorm normalises each token over its own C features: dim=-1"),
    Mistake("mean_wrong_axis", T + "layer_norm", MEAN, MEAN.replace("dim=-1", "dim=-2"),
            "the mean is taken over the tokens (dim=-2) while the variance is over the "
            "features: both are over the last axis"),
    Mistake("no_keepdim", T + "layer_norm", MEAN, "mean = x.mean(dim=-1)",
            "a statistic (the mean or the variance) lost its last axis, so it does not "
            "broadcast against x: reduce with keepdim=True"),
    Mistake("no_centering", T + "layer_norm", "x_hat = (x - mean) /", "x_hat = x /",
            "the mean is not subtracted before dividing: x_hat = (x - mean) / sqrt(var + eps)"),
    Mistake("divide_by_variance", T + "layer_norm", "/ torch.sqrt(var + eps)", "/ (var + eps)",
            "the division is by the variance; divide by the standard deviation "
            "sqrt(var + eps)"),
    Mistake("weight_bias_swapped", T + "layer_norm", "x_hat * weight + bias",
            "x_hat * bias + weight",
            "weight and bias are swapped: the weight multiplies, the bias adds"),
    Mistake("no_affine", T + "layer_norm", "return x_hat * weight + bias", "return x_hat",
            "the learned scale and shift are not applied: return x_hat * weight + bias"),
    # Part 2: LayerNorm.forward (the constructor is given)
    Mistake("module_params_swapped", T + "LayerNorm", "self.weight, self.bias, self.eps",
            "self.bias, self.weight, self.eps",
            "the module passes its parameters in the wrong order: layer_norm takes the scale "
            "first, then the shift: layer_norm(x, self.weight, self.bias, self.eps)"),
    Mistake("module_params_detached", T + "LayerNorm", "self.weight, self.bias, self.eps",
            "self.weight.data, self.bias.data, self.eps",
            "the parameters are detached (.data or .detach()), so no gradient reaches weight "
            "and bias and they never learn: pass self.weight and self.bias themselves"),
    Mistake("module_eps_ignored", T + "LayerNorm", "layer_norm(x, self.weight, self.bias, self.eps)",
            "layer_norm(x, self.weight, self.bias)",
            "the module's eps is not passed on: call layer_norm(x, self.weight, self.bias, "
            "self.eps)"),
    # Part 3: RMSNorm
    Mistake("rms_centered", T + "RMSNorm", "ms = (x * x).mean(dim=-1, keepdim=True)",
            "ms = ((x - x.mean(dim=-1, keepdim=True)) ** 2).mean(dim=-1, keepdim=True)",
            "RMSNorm does not subtract the mean: divide x by sqrt(mean(x**2) + eps)"),
    Mistake("rms_no_sqrt", T + "RMSNorm", "torch.sqrt(ms + self.eps)", "(ms + self.eps)",
            "the division is by the mean square; divide by its square root, the RMS"),
    Mistake("rms_eps_outside", T + "RMSNorm", "torch.sqrt(ms + self.eps)",
            "(torch.sqrt(ms) + self.eps)",
            "eps is added after the square root; it goes inside: sqrt(mean(x**2) + eps)"),
    Mistake("rms_no_eps", T + "RMSNorm", "torch.sqrt(ms + self.eps)", "torch.sqrt(ms)",
            "eps is missing: an all-zero token gives 0 / 0 = NaN; divide by "
            "sqrt(mean(x**2) + eps)"),
    Mistake("rms_wrong_axis", T + "RMSNorm", "(x * x).mean(dim=-1, keepdim=True)",
            "(x * x).mean(dim=0, keepdim=True)",
            "the mean square is taken over the batch axis; take it over each token's "
            "features, the last axis"),
    Mistake("rms_sum", T + "RMSNorm", "(x * x).mean(dim=-1", "(x * x).sum(dim=-1",
            "the squares are summed, not averaged: RMS = sqrt(mean(x**2)), that is "
            "sqrt(sum / C)"),
    Mistake("rms_no_weight", T + "RMSNorm", " * self.weight", "",
            "the learned scale is not applied: multiply by self.weight"),
]
