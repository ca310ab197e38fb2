"""LoRA: our layer against the `peft` package's LoRA layer given the same A and B (outputs and
merged weights), on a small nn.Linear and on all-MiniLM-L6-v2's queries and values; merging,
freezing by name and the input checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from solutions.encoder import Encoder
from solutions.lora import LoRALinear, adam_state_bytes, add_lora, merge_lora
from solutions.pretrained import minilm_path
from solutions.transfer import count_trainable

peft = pytest.importorskip("peft")


def _peft_layer(base: nn.Linear, r: int, alpha: float, dropout: float = 0.0):
    from peft import LoraConfig
    from peft.tuners.lora import Linear

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout)
    return Linear(base, "default", config, r=r, lora_alpha=alpha)


def _random_update(ours: LoRALinear, seed: int) -> None:
    """B is zero at the start; give it (and A) values so the update shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ours.A.copy_(torch.randn(ours.A.shape, generator=g, dtype=ours.A.dtype))
        ours.B.copy_(torch.randn(ours.B.shape, generator=g, dtype=ours.B.dtype))


@pytest.mark.parametrize("r,alpha,bias", [(1, 1, True), (4, 8, False), (16, 32, True)])
def test_equals_peft_layer_and_its_merge(r, alpha, bias):
    torch.manual_seed(r)
    base = nn.Linear(12, 7, bias=bias, dtype=torch.float64)
    ours = LoRALinear(base, r, alpha)
    _random_update(ours, seed=r)
    theirs = _peft_layer(nn.Linear(12, 7, bias=bias, dtype=torch.float64), r, alpha)
    theirs.base_layer.load_state_dict(base.state_dict())
    with torch.no_grad():
        theirs.lora_A["default"].weight.copy_(ours.A)
        theirs.lora_B["default"].weight.copy_(ours.B)
    assert theirs.scaling["default"] == ours.scaling == alpha / r
    x = torch.randn(3, 5, 12, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-12, atol=1e-12)
    merged = ours.merge()
    theirs.merge()
    torch.testing.assert_close(merged.weight, theirs.base_layer.weight, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(merged(x), ours(x), rtol=1e-12, atol=1e-12)
    if bias:
        torch.testing.assert_close(merged.bias, base.bias)


def test_initialisation_matches_peft():
    """B = 0 (the wrapped layer starts as the base); A drawn as peft draws it."""
    base = nn.Linear(20, 6)
    torch.manual_seed(3)
    ours = LoRALinear(base, 4, 8)
    theirs = _peft_layer(nn.Linear(20, 6), 4, 8)
    torch.manual_seed(3)
    theirs.reset_lora_parameters("default", True)     # peft's own draw, from the same seed
    assert torch.equal(ours.B, torch.zeros(6, 4))
    torch.testing.assert_close(ours.A, theirs.lora_A["default"].weight)
    x = torch.randn(2, 20)
    torch.testing.assert_close(ours(x), base(x))


def test_dropout_applies_to_the_branch_input_as_peft():
    base = nn.Linear(10, 5)
    ours = LoRALinear(base, 2, 4, dropout=0.5).train()
    _random_update(ours, seed=1)
    theirs = _peft_layer(nn.Linear(10, 5), 2, 4, dropout=0.5).train()
    theirs.base_layer.load_state_dict(base.state_dict())
    with torch.no_grad():
        theirs.lora_A["default"].weight.copy_(ours.A)
        theirs.lora_B["default"].weight.copy_(ours.B)
    x = torch.randn(4, 10)
    torch.manual_seed(0)
    mine = ours(x)
    torch.manual_seed(0)
    torch.testing.assert_close(mine, theirs(x))
    assert not torch.allclose(mine, ours.eval()(x))     # dropout did act in training


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_minilm_queries_and_values_equal_peft():
    """Our Encoder with LoRA on query and value == Hugging Face's BertModel under peft, with
    the same A and B in every layer; merging gives the same outputs again."""
    import transformers
    from peft import LoraConfig, get_peft_model

    hf = transformers.AutoModel.from_pretrained(minilm_path(), attn_implementation="eager")
    hf = get_peft_model(hf, LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"]))
    ours = add_lora(Encoder.from_pretrained(), ["query", "value"], r=4, alpha=8)
    g = torch.Generator().manual_seed(0)
    for i, layer in enumerate(ours.layers):
        hf_attn = hf.base_model.model.encoder.layer[i].attention.self
        for name in ("query", "value"):
            mine, theirs = getattr(layer.attn, name), getattr(hf_attn, name)
            with torch.no_grad():
                mine.A.normal_(generator=g)
                mine.B.normal_(0.0, 0.02, generator=g)
                theirs.lora_A["default"].weight.copy_(mine.A)
                theirs.lora_B["default"].weight.copy_(mine.B)
    ids = torch.tensor([[101, 7592, 2088, 2003, 2025, 11771, 102, 0],
                        [101, 1037, 2204, 3185, 102, 0, 0, 0]])
    mask = (ids != 0).long()
    ours.eval(), hf.eval()
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        got = ours(ids, mask)
        real = mask.bool()
        torch.testing.assert_close(got[real], expected[real], rtol=1e-4, atol=1e-4)
        merge_lora(ours)
        torch.testing.assert_close(ours(ids, mask)[real], got[real], rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, LoRALinear) for m in ours.modules())


def test_add_lora_trains_only_the_update_and_what_is_named():
    model = nn.ModuleDict({"attn": nn.ModuleDict({"query": nn.Linear(8, 8),
                                                  "value": nn.Linear(8, 8),
                                                  "key": nn.Linear(8, 8)}),
                           "classifier": nn.Linear(8, 2)})
    add_lora(model, ["query", "value"], r=2, alpha=4, train=["classifier"])
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == ["attn.query.A", "attn.query.B", "attn.value.A", "attn.value.B",
                         "classifier.bias", "classifier.weight"]
    assert count_trainable(model) == 2 * (2 * 8 + 8 * 2) + 2 * 8 + 2
    assert isinstance(model["attn"]["key"], nn.Linear)


def test_adam_state_is_two_moments_per_trainable_number():
    model = add_lora(nn.ModuleDict({"q": nn.Linear(16, 16)}), ["q"], r=2, alpha=2)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    assert adam_state_bytes(opt) == 0
    model["q"](torch.randn(3, 16)).sum().backward()
    opt.step()
    steps = sum(s["step"].numel() * s["step"].element_size() for s in opt.state.values())
    assert adam_state_bytes(opt) == 2 * 4 * count_trainable(model) + steps


def test_merge_leaves_the_base_alone():
    base = nn.Linear(6, 3)
    before = base.weight.detach().clone()
    layer = LoRALinear(base, 2, 2)
    _random_update(layer, seed=2)
    merged = layer.merge()
    assert merged is not base and torch.equal(base.weight, before)
    assert not merged.weight.requires_grad or merged.weight.grad is None


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(r=0, alpha=1), ValueError, "r must be"),
    (dict(r=2.0, alpha=1), ValueError, "r must be"),
    (dict(r=2, alpha=0), ValueError, "alpha must be"),
    (dict(r=2, alpha=1, dropout=1.0), ValueError, "dropout must be"),
])
def test_layer_refuses_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        LoRALinear(nn.Linear(4, 4), **kwargs)
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRALinear(nn.Conv1d(4, 4, 1), r=1, alpha=1)


def test_add_lora_refuses_what_it_cannot_do():
    def model():
        return nn.ModuleDict({"query": nn.Linear(4, 4), "norm": nn.LayerNorm(4)})
    with pytest.raises(ValueError, match="'quer'"):
        add_lora(model(), ["quer"], r=1, alpha=1)
    with pytest.raises(TypeError, match="norm is a LayerNorm"):
        add_lora(model(), ["norm"], r=1, alpha=1)
    with pytest.raises(TypeError, match="not a str"):
        add_lora(model(), "query", r=1, alpha=1)
    with pytest.raises(ValueError, match="'head'"):
        add_lora(model(), ["query"], r=1, alpha=1, train=["head"])
    with pytest.raises(ValueError, match="no LoRALinear"):
        merge_lora(model())


def test_scaling_is_alpha_over_r():
    assert LoRALinear(nn.Linear(3, 3), 8, 16).scaling == 2.0
