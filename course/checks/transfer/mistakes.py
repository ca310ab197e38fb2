"""The catalogue of known transfer-learning mistakes (`MISTAKES`), with the dotted prefixes of
the targets they and the checks name."""

from __future__ import annotations

from course.checks.core import Mistake

T = "solutions.transfer."
L = "solutions.lora."

MISTAKES = [
    # freeze / unfreeze / count_trainable
    Mistake("freeze_top_level_only", T + "freeze", "for p in model.parameters():",
            "for p in model.parameters(recurse=False):",
            "freeze stops only the parameters held directly by the model, not those of its "
            "submodules: loop over model.parameters() (recursive) and turn requires_grad off"),
    Mistake("unfreeze_prefix_without_dot", T + "unfreeze",
            'n == name or n.startswith(name + ".")', "n.startswith(name)",
            "a name is matched as a bare prefix, so 'layers.1' also unfreezes 'layers.10', "
            "'layers.11', ...: match the name itself or the name followed by a dot"),
    Mistake("unfreeze_component_name", T + "unfreeze",
            'n == name or n.startswith(name + ".")', 'f".{name}." in f".{n}."',
            "a name is matched anywhere inside a parameter's name, so 'attn' unfreezes every "
            "layer's attention: names are full dotted names from the top of the model; match "
            "the name itself or the name followed by a dot at the start, n == name or "
            "n.startswith(name + '.')"),
    Mistake("unfreeze_silent_typo", T + "unfreeze", "        if not chosen:\n", "        if False:\n",
            "a name that matches no parameter is silently ignored: raise a ValueError so a "
            "typo (say 'poolr') does not leave the model training nothing"),
    Mistake("count_everything", T + "count_trainable",
            "for p in model.parameters() if p.requires_grad)", "for p in model.parameters())",
            "count_trainable counts frozen parameters too: count only those with "
            "requires_grad=True"),
    Mistake("count_tensors", T + "count_trainable", "p.numel()", "1",
            "count_trainable counts parameter tensors, not the numbers in them: add up "
            "p.numel()"),
    # trainable_optimizer
    Mistake("optimizer_over_all_parameters", T + "trainable_optimizer",
            "[p for p in model.parameters() if p.requires_grad]", "list(model.parameters())",
            "the optimizer holds the frozen parameters too: any that has a gradient left over "
            "from before freezing still moves (Adam's step and weight decay). Give AdamW only "
            "the parameters with requires_grad=True"),
    Mistake("weight_decay_dropped", T + "trainable_optimizer",
            "lr=lr, weight_decay=weight_decay)", "lr=lr)",
            "the weight_decay argument is not passed on, so AdamW uses its own default (0.01): "
            "give it weight_decay=weight_decay"),
    # extract_features
    Mistake("features_in_train_mode", T + "extract_features", "    encoder.eval()\n", "",
            "the features are computed in training mode, so dropout changes them from call to "
            "call: switch the encoder to eval() first (and back afterwards)"),
    Mistake("features_mode_not_restored", T + "extract_features",
            "encoder.train(was_training)", "encoder.eval()",
            "extract_features leaves the encoder in eval mode: restore the mode it had "
            "(encoder.train(was_training))"),
    Mistake("features_mean_over_padding", T + "extract_features",
            "mean_pool(hidden, attention_mask)", "hidden.mean(dim=1)",
            "the mean runs over padding positions too: weigh it by the attention mask and "
            "divide by each text's number of real tokens"),
    Mistake("features_cls_state", T + "extract_features",
            "mean_pool(hidden, attention_mask)", "hidden[:, 0]",
            "the features are the [CLS] state; this exercise's features are the mean of each "
            "text's real tokens (mean pooling)"),
    # train_head
    Mistake("head_unseeded", T + "train_head", "    torch.manual_seed(seed)\n", "",
            "the head's initialisation is not seeded, so two runs with the same seed give "
            "different heads: call torch.manual_seed(seed) before making the nn.Linear"),
    Mistake("head_left_training", T + "train_head", "return head.eval()", "return head",
            "the head is returned in training mode: return head.eval(), ready to predict"),
    # postprocess
    Mistake("softmax_over_batch", T + "postprocess", "F.softmax(logits.detach().float(), dim=-1)",
            "F.softmax(logits.detach().float(), dim=0)",
            "the softmax runs over the batch axis; each row's probabilities are over the "
            "classes (dim=-1)"),
    Mistake("score_is_logit", T + "postprocess", "score, best = probs.max(dim=-1)",
            "score, best = logits.detach().float().max(dim=-1)",
            "the score is the largest logit; it must be the probability of the chosen class "
            "(the softmax of the logits)"),
    # LoRALinear.forward and merge
    Mistake("lora_scaled_by_alpha", L + "LoRALinear", "update * self.scaling",
            "update * self.alpha",
            "the LoRA branch is multiplied by alpha; the scale is alpha / r (self.scaling), so "
            "that changing the rank does not change the size of the update"),
    Mistake("lora_not_scaled", L + "LoRALinear", "update * self.scaling", "update",
            "the LoRA branch is not scaled: multiply B A x by self.scaling (alpha / r)"),
    Mistake("lora_no_dropout", L + "LoRALinear", "self.dropout(x) @ self.A.T", "x @ self.A.T",
            "in training the LoRA branch skips its dropout: the branch reads self.dropout(x), "
            "the frozen layer reads x itself"),
    Mistake("lora_without_base", L + "LoRALinear", "return self.base(x) + update * self.scaling",
            "return update * self.scaling",
            "the frozen layer's own output is missing: LoRA adds its update to base(x), it "
            "does not replace it"),
    Mistake("merge_not_scaled", L + "LoRALinear", "self.scaling * (self.B @ self.A)",
            "(self.B @ self.A)",
            "the merged weight adds B @ A without its scale: W + self.scaling * (B @ A), the "
            "same scale as in forward"),
    Mistake("merge_scaled_by_alpha", L + "LoRALinear", "self.scaling * (self.B @ self.A)",
            "self.alpha * (self.B @ self.A)",
            "the merged weight adds alpha * B @ A; forward scales by alpha / r, and the merged "
            "layer must give the same outputs: W + self.scaling * (B @ A)"),
    Mistake("merge_transposed", L + "LoRALinear", "(self.B @ self.A)", "(self.A.T @ self.B.T)",
            "the update is transposed: B (out, r) @ A (r, in) has the weight's shape (out, in); "
            "A.T @ B.T is (in, out)"),
    Mistake("merge_in_place", L + "LoRALinear",
            "merged.weight.copy_(self.base.weight + self.scaling * (self.B @ self.A))",
            "self.base.weight.add_(self.scaling * (self.B @ self.A))\n"
            "        merged.weight.copy_(self.base.weight)",
            "merge changes the frozen base weight in place, so the LoRA layer now adds its "
            "update twice: build the merged weight as a new tensor and leave base alone"),
    Mistake("merge_drops_bias", L + "LoRALinear", "merged.bias.copy_(self.base.bias)",
            "merged.bias.zero_()",
            "the merged layer lost the base layer's bias: copy base.bias into it"),
]
