"""Checkpoint loading (solutions.pretrained) and the published-configuration data
(course.datasets.families).

Oracles: Hugging Face ``transformers`` (BertModel on the same folder, parameter counts of
models it builds from the same configurations)."""

from __future__ import annotations

import json
import os

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from course.datasets import families
from solutions import pretrained
from solutions.encoder import Encoder
from solutions.model import ModelConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=48, max_position_embeddings=40, type_vocab_size=2,
            hidden_act="gelu", layer_norm_eps=1e-12)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A random BERT saved the Hugging Face way: config.json + model.safetensors."""
    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig(**TINY)).eval()
    folder = tmp_path_factory.mktemp("tiny_bert")
    hf.save_pretrained(folder)
    return folder, hf


def _batch(vocab: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = 0
    types = torch.zeros_like(ids)
    types[:, 5:] = 1
    return ids, mask, types


def test_table_covers_every_tensor_once():
    config = ModelConfig(n_layer=3, n_embd=32, n_head=4, norm_first=False)
    names = pretrained.expand(pretrained.BERT_NAMES, 3)
    ours = set(Encoder(config).state_dict())
    assert set(names) == ours
    assert len(set(names.values())) == len(names)                # one source per tensor


def test_any_bert_folder_equals_transformers(tiny_folder):
    folder, hf = tiny_folder
    ours = Encoder.from_pretrained(folder)
    assert not ours.training
    ids, mask, types = _batch(TINY["vocab_size"])
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        got = ours(ids, mask, types)
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], rtol=0, atol=1e-5)


def test_bert_prefix_of_a_task_model_is_stripped(tmp_path):
    torch.manual_seed(1)
    hf = transformers.BertForMaskedLM(transformers.BertConfig(**TINY)).eval()
    hf.bert.pooler = transformers.models.bert.modeling_bert.BertPooler(hf.config)
    hf.save_pretrained(tmp_path)
    assert any(k.startswith("bert.") for k in load_file(str(tmp_path / "model.safetensors")))
    ours = Encoder.from_pretrained(tmp_path)
    ids, mask, types = _batch(TINY["vocab_size"], seed=1)
    with torch.no_grad():
        expected = hf.bert(input_ids=ids, attention_mask=mask,
                           token_type_ids=types).last_hidden_state
        got = ours(ids, mask, types)
    torch.testing.assert_close(got[mask.bool()], expected[mask.bool()], rtol=0, atol=1e-5)


def _copy_folder(src, dst, edit):
    (dst / "config.json").write_text((src / "config.json").read_text())
    tensors = load_file(str(src / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(dst / "model.safetensors"))
    return dst


def test_missing_tensor_is_named(tiny_folder, tmp_path):
    folder, _ = tiny_folder
    bad = _copy_folder(folder, tmp_path,
                       lambda t: t.pop("encoder.layer.1.intermediate.dense.weight"))
    with pytest.raises(pretrained.CheckpointError,
                       match=r"no tensor 'encoder\.layer\.1\.intermediate\.dense\.weight'"):
        Encoder.from_pretrained(bad)


def test_misshaped_tensor_is_named(tiny_folder, tmp_path):
    folder, _ = tiny_folder

    def shrink(t):
        t["encoder.layer.0.attention.self.key.bias"] = torch.zeros(31)
    bad = _copy_folder(folder, tmp_path, shrink)
    with pytest.raises(pretrained.CheckpointError,
                       match=r"'encoder\.layer\.0\.attention\.self\.key\.bias' has shape \(31,\)"):
        Encoder.from_pretrained(bad)


def test_first_bad_tensor_is_reported_and_nothing_copied(tiny_folder):
    folder, _ = tiny_folder
    tensors = load_file(str(folder / "model.safetensors"))
    del tensors["pooler.dense.bias"], tensors["embeddings.LayerNorm.weight"]
    model = Encoder(pretrained.bert_config(json.loads((folder / "config.json").read_text())))
    before = model.embeddings.word.weight.clone()
    with pytest.raises(pretrained.CheckpointError, match="embeddings.LayerNorm.weight"):
        pretrained.copy_checkpoint(model, tensors, pretrained.expand(pretrained.BERT_NAMES, 2))
    assert torch.equal(model.embeddings.word.weight, before)


def test_bad_folders_and_configs(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        Encoder.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        Encoder.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(pretrained.CheckpointError, match="model_type 'gpt2'"):
        pretrained.bert_config({**TINY, "model_type": "gpt2"})
    with pytest.raises(pretrained.CheckpointError, match="hidden_act 'swish'"):
        pretrained.bert_config({**TINY, "hidden_act": "swish"})
    with pytest.raises(pretrained.CheckpointError, match="intermediate_size"):
        pretrained.bert_config({k: v for k, v in TINY.items() if k != "intermediate_size"})


def test_minilm_config_is_read_as_post_ln():
    config = Encoder.from_pretrained().config
    assert (config.n_layer, config.n_embd, config.n_head, config.d_ff) == (6, 384, 12, 1536)
    assert config.norm_first is False and config.eps == 1e-12


def test_load_bert_attention_copies_the_four_projections():
    from solutions.attention import MultiHeadAttention

    torch.manual_seed(2)
    hf = transformers.BertModel(transformers.BertConfig(**TINY)).eval()
    block = hf.encoder.layer[0].attention
    mha = pretrained.load_bert_attention(MultiHeadAttention(32, 4), block)
    x = torch.randn(2, 6, 32)
    with torch.no_grad():
        expected = block.output.dense(block.self(x)[0])        # attention without residual+LN
        got, _ = mha(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="query"):
        pretrained.load_bert_attention(MultiHeadAttention(16, 4), block)


# ----------------------------------------------------------------------------- families


@pytest.mark.parametrize("name", families.names("encoder"))
def test_parameter_count_equals_transformers(name):
    config = families.load(name)["config"]
    hf_config = transformers.AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = transformers.AutoModel.from_config(hf_config)
    expected = sum(p.numel() for p in model.parameters())
    assert families.parameter_count(config)["total"] == expected


def test_our_encoder_has_minilms_parameter_count():
    count = families.parameter_count(families.load("all-MiniLM-L6-v2")["config"])["total"]
    with torch.device("meta"):
        model = Encoder(pretrained.bert_config(families.load("all-MiniLM-L6-v2")["config"]))
    assert sum(p.numel() for p in model.parameters()) == count


def test_families_table_and_errors():
    rows = families.table("encoder")
    assert {r["family"] for r in rows} >= {"BERT", "DistilBERT", "RoBERTa", "ALBERT", "ELECTRA",
                                           "DeBERTa"}
    for record in map(families.load, families.names()):
        assert record["source"].startswith("https://") and record["kind"] in (
            "encoder", "decoder", "encoder-decoder")
    with pytest.raises(KeyError, match="no model 'nope'"):
        families.load("nope")
    with pytest.raises(ValueError, match="no parameter counter"):
        families.parameter_count({"model_type": "mamba"})
