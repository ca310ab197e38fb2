"""The second catalogue (`SLIPS`): wrong versions of the transfer-learning parts written as a
learner would write them."""

from __future__ import annotations

from course.checks.core import Slip
from course.checks.transfer.mistakes import L, T

# ---------------------------------------------------------------- the second catalogue


SLIPS = [
    Slip("freeze_flag_on_module", T + "freeze", '''
def freeze(model):
    model.requires_grad = False
    return model
''', None),
    Slip("freeze_by_eval", T + "freeze", '''
def freeze(model):
    return model.eval()
''', None),
    Slip("freeze_children_params", T + "freeze", '''
def freeze(model):
    for child in model.children():
        for p in child.parameters(recurse=False):
            p.requires_grad = False
    return model
''', None),
    Slip("unfreeze_startswith", T + "unfreeze", '''
def unfreeze(model, names):
    found = False
    for n, p in model.named_parameters():
        for name in names:
            if n.startswith(name):
                p.requires_grad = True
                found = True
    if not found:
        raise ValueError("no such parameter")
    return model
''', "unfreeze_prefix_without_dot"),
    Slip("unfreeze_ignores_unknown", T + "unfreeze", '''
def unfreeze(model, names):
    for n, p in model.named_parameters():
        if any(n == x or n.startswith(x + ".") for x in names):
            p.requires_grad_(True)
    return model
''', "unfreeze_silent_typo"),
    Slip("count_all", T + "count_trainable", '''
def count_trainable(model):
    total = 0
    for p in model.parameters():
        total += p.numel()
    return total
''', "count_everything"),
    Slip("count_len", T + "count_trainable", '''
def count_trainable(model):
    return len([p for p in model.parameters() if p.requires_grad])
''', "count_tensors"),
    Slip("count_per_module", T + "count_trainable", '''
def count_trainable(model):
    return sum(p.numel() for m in model.modules() for p in m.parameters(recurse=False)
               if p.requires_grad)
''', None),
    Slip("optimizer_everything", T + "trainable_optimizer", '''
def trainable_optimizer(model, lr, weight_decay=0.01):
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
''', "optimizer_over_all_parameters"),
    Slip("features_plain_mean", T + "extract_features", '''
def extract_features(encoder, input_ids, attention_mask):
    was = encoder.training
    encoder.eval()
    with torch.no_grad():
        out = encoder(input_ids, attention_mask).mean(1)
    encoder.train(was)
    return out
''', "features_mean_over_padding"),
    Slip("features_no_eval", T + "extract_features", '''
def extract_features(encoder, input_ids, attention_mask):
    with torch.no_grad():
        h = encoder(input_ids, attention_mask)
        m = attention_mask.unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1)
''', "features_in_train_mode"),
    Slip("features_divide_by_T", T + "extract_features", '''
def extract_features(encoder, input_ids, attention_mask):
    was = encoder.training
    encoder.eval()
    with torch.no_grad():
        h = encoder(input_ids, attention_mask)
        h = h * attention_mask[..., None]
        out = h.sum(dim=1) / h.size(1)
    encoder.train(was)
    return out
''', None),
    Slip("features_left_in_eval", T + "extract_features", '''
def extract_features(encoder, input_ids, attention_mask):
    encoder.eval()
    with torch.no_grad():
        h = encoder(input_ids, attention_mask)
    m = attention_mask[:, :, None].to(h.dtype)
    return (h * m).sum(1) / m.sum(1)
''', "features_mode_not_restored"),
    Slip("head_no_zero_grad", T + "train_head", '''
def train_head(features, labels, n_classes=2, steps=300, lr=1e-2, seed=0):
    torch.manual_seed(seed)
    head = nn.Linear(features.size(1), n_classes)
    opt = torch.optim.SGD(head.parameters(), lr=lr)
    for _ in range(3):
        loss = F.cross_entropy(head(features), labels)
        loss.backward()
        opt.step()
    return head
''', None),
    Slip("unfreeze_dotted_substring", T + "unfreeze", '''
def unfreeze(model, names):
    hits = 0
    for full, p in model.named_parameters():
        if any("." + name + "." in "." + full + "." for name in names):
            p.requires_grad = True
            hits += 1
    if hits == 0:
        raise ValueError(f"nothing called {names}")
    return model
''', "unfreeze_component_name"),
    Slip("optimizer_default_decay", T + "trainable_optimizer", '''
def trainable_optimizer(model, lr, weight_decay=0.01):
    params = [p for p in model.parameters() if p.requires_grad]
    if len(params) == 0:
        raise ValueError("nothing to train")
    return torch.optim.AdamW(params, lr)
''', "weight_decay_dropped"),
    Slip("head_global_random_state", T + "train_head", '''
def train_head(features, labels, n_classes=2, steps=300, lr=1e-2, seed=0):
    head = nn.Linear(features.shape[1], n_classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(head(features), labels)
        loss.backward()
        optimizer.step()
    head.eval()
    return head
''', "head_unseeded"),
    Slip("head_still_training", T + "train_head", '''
def train_head(features, labels, n_classes=2, steps=300, lr=1e-2, seed=0):
    torch.manual_seed(seed)
    head = nn.Linear(features.size(-1), n_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=lr)
    for step in range(steps):
        logits = head(features)
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head
''', "head_left_training"),
    Slip("post_softmax_rows", T + "postprocess", '''
def postprocess(logits, id2label):
    p = torch.softmax(logits, 0)
    return [{"label": id2label[int(r.argmax())], "score": float(r.max())} for r in p]
''', "softmax_over_batch"),
    Slip("post_max_logit", T + "postprocess", '''
def postprocess(logits, id2label):
    out = []
    for row in logits:
        i = int(row.argmax())
        out.append({"label": id2label[i], "score": float(row[i])})
    return out
''', "score_is_logit"),
    Slip("post_tensor_score", T + "postprocess", '''
def postprocess(logits, id2label):
    probs = logits.softmax(-1)
    return [{"label": id2label[int(p.argmax())], "score": p.max()} for p in probs]
''', None),
    Slip("lora_times_alpha", L + "LoRALinear.forward", '''
def forward(self, x):
    return self.base(x) + self.alpha * (self.dropout(x) @ self.A.T @ self.B.T)
''', "lora_scaled_by_alpha"),
    Slip("lora_functional_no_dropout", L + "LoRALinear.forward", '''
def forward(self, x):
    lora = F.linear(F.linear(x, self.A), self.B)
    return F.linear(x, self.base.weight, self.base.bias) + self.scaling * lora
''', "lora_no_dropout"),
    Slip("lora_dropout_everything", L + "LoRALinear.forward", '''
def forward(self, x):
    x = self.dropout(x)
    return self.base(x) + (x @ self.A.T @ self.B.T) * self.scaling
''', None),
    Slip("lora_divides_by_alpha", L + "LoRALinear.forward", '''
def forward(self, x):
    delta = (self.B @ self.A) * self.r / self.alpha
    return self.base(x) + self.dropout(x) @ delta.T
''', None),
    Slip("lora_detached_update", L + "LoRALinear.forward", '''
def forward(self, x):
    delta = (self.B.detach() @ self.A.detach()) * self.scaling
    return self.base(x) + self.dropout(x) @ delta.T
''', None),
    Slip("merge_plus_equals", L + "LoRALinear.merge", '''
def merge(self):
    self.base.weight += self.scaling * self.B @ self.A
    return self.base
''', "merge_in_place"),
    Slip("merge_forgets_scale", L + "LoRALinear.merge", '''
def merge(self):
    layer = nn.Linear(self.base.in_features, self.base.out_features)
    layer.weight.data = self.base.weight + self.B @ self.A
    layer.bias.data = self.base.bias
    return layer
''', "merge_not_scaled"),
    Slip("merge_returns_tensor", L + "LoRALinear.merge", '''
def merge(self):
    return self.base.weight + self.scaling * self.B @ self.A
''', None),
    Slip("freeze_returns_nothing", T + "freeze", """
def freeze(model):
    for p in model.parameters():
        p.requires_grad = False
""", None),
    Slip("unfreeze_substring", T + "unfreeze", """
def unfreeze(model, names):
    for name in names:
        found = False
        for n, p in model.named_parameters():
            if name in n:
                p.requires_grad = True
                found = True
        if not found:
            raise ValueError(f"nothing called {name!r}")
    return model
""", "unfreeze_prefix_without_dot"),
    Slip("unfreeze_exact_names_only", T + "unfreeze", """
def unfreeze(model, names):
    params = dict(model.named_parameters())
    for name in names:
        if name not in params:
            raise ValueError(f"no parameter called {name!r}")
        params[name].requires_grad_(True)
    return model
""", None),
    Slip("count_tied_twice", T + "count_trainable", """
def count_trainable(model):
    total = 0
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if p.requires_grad:
                total += p.numel()
    return total
""", None),
    Slip("features_cls_token", T + "extract_features", """
@torch.no_grad()
def extract_features(encoder, input_ids, attention_mask):
    was_training = encoder.training
    encoder.eval()
    hidden = encoder(input_ids, attention_mask)
    encoder.train(was_training)
    return hidden[:, 0]
""", "features_cls_state"),
    Slip("features_pooler_output", T + "extract_features", """
@torch.no_grad()
def extract_features(encoder, input_ids, attention_mask):
    was_training = encoder.training
    encoder.eval()
    try:
        return encoder.pooler(encoder(input_ids, attention_mask))
    finally:
        encoder.train(was_training)
""", None),
    Slip("head_plain_sgd", T + "train_head", """
def train_head(features, labels, n_classes=2, steps=300, lr=1e-2, seed=0):
    torch.manual_seed(seed)
    head = nn.Linear(features.size(1), n_classes)
    opt = torch.optim.SGD(head.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(head(features), labels)
        loss.backward()
        opt.step()
    return head.eval()
""", None),
    Slip("post_label_index", T + "postprocess", """
def postprocess(logits, id2label):
    probs = logits.softmax(-1)
    out = []
    for row in probs:
        i = int(row.argmax())
        out.append({"label": i, "score": float(row[i])})
    return out
""", None),
    Slip("post_sigmoid_scores", T + "postprocess", """
def postprocess(logits, id2label):
    probs = torch.sigmoid(logits.detach().float())
    score, best = probs.max(-1)
    return [{"label": id2label[int(b)], "score": float(s)} for s, b in zip(score, best)]
""", None),
]
