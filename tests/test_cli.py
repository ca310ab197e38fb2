"""`python -m course train` / `sample`: clear errors for unusable files, a short run that
writes metrics and a checkpoint, sampling from it, and a SIGKILLed run that resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from killed_run import killed_and_resumed

from course.__main__ import main
from course.datasets.grammar import Grammar

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def grammar_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "grammar.txt"
    path.write_text(Grammar().text(Grammar().corpus(12_000, seed=0)))
    return path


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"", "is empty"),
    (b"  \n\n ", "is empty"),
    (b"PK\x03\x04\x00\x00binary", "looks binary"),
    ("caf\u00e9".encode("latin-1") * 100, "not UTF-8"),
    (b"too short for a block of 64 characters", "too short"),
])
def test_unusable_files_get_a_clear_error(tmp_path, capsys, content, message):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    code = main(["train", "--data", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_preset_and_missing_checkpoint(tmp_path, grammar_file, capsys):
    assert main(["train", "--data", str(grammar_file), "--out", str(tmp_path),
                 "--preset", "huge"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["sample", "--ckpt", str(tmp_path / "nothing"), "--prompt", "a"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_train_then_sample(tmp_path, grammar_file, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(grammar_file), "--out", str(out), "--max-iters", "40",
                 "--eval-every", "20", "--quiet", "--seed", "1"]) == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 20, 40]
    for r in rows:
        assert set(r) >= {"step", "train_loss", "val_loss", "elapsed_s", "tokens_per_s"}
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - 0.5
    state = torch.load(out / "ckpt.pt", weights_only=True)
    assert state["model_config"]["n_layer"] == 4 and state["model_config"]["n_embd"] == 128
    assert state["train_config"]["batch_size"] == 12 and state["tokenizer"]["kind"] == "char"
    capsys.readouterr()
    args = ["sample", "--ckpt", str(out), "--prompt", "the cat", "--max-new-tokens", "30",
            "--seed", "3", "--temperature", "0.8", "--top-k", "10"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("the cat") and len(first.rstrip("\n")) == len("the cat") + 30
    assert main(args) == 0 and capsys.readouterr().out == first     # seeded
    assert main(args[:-4] + ["--top-p", "0.9"]) == 0


def test_bpe_tokenizer_round_trips_through_the_checkpoint(tmp_path, grammar_file, capsys):
    from course.cli.train import load_model

    out = tmp_path / "bpe"
    assert main(["train", "--data", str(grammar_file), "--out", str(out), "--max-iters", "2",
                 "--tokenizer", "bpe", "--quiet"]) == 0
    _, tok = load_model(out)
    text = grammar_file.read_text()[:500]
    assert tok.decode(tok.encode(text)) == text and tok.vocab_size > 256


def test_the_corpus_streams_in_blocks_with_the_ids_of_the_whole_text(tmp_path, monkeypatch):
    """Read in blocks of 7 bytes (characters cut in two), ids written 5 at a time: the same
    tokenizers and ids as from the whole text, and a bad byte reported at its file offset."""
    from course.cli import train as cli
    from solutions.tokenization_bpe import BPETokenizer
    from solutions.tokenization_char import CharTokenizer

    monkeypatch.setattr(cli, "BLOCK_BYTES", 7)
    monkeypatch.setattr(cli, "BLOCK_IDS", 5)
    monkeypatch.setattr(cli, "BPE_TRAIN_CHARS", 3000)
    text = Grammar().text(Grammar().corpus(300, seed=1)) + "\n\n  naïve 日本語 🙂'll\n" * 20
    path = tmp_path / "data.txt"
    path.write_text(text, encoding="utf-8")
    char = cli.make_tokenizer("char", path)
    assert char.itos == CharTokenizer(text).itos
    bpe = cli.make_tokenizer("bpe", path)
    assert bpe.merges == BPETokenizer.train(text[:3000], cli.BPE_VOCAB).merges
    for tok in (char, bpe):
        ids = cli.encode_file(tok, path, tmp_path)
        assert ids.dtype == torch.long and ids.tolist() == tok.encode(text)
    raw = text.encode("utf-8")
    path.write_bytes(raw[:100] + b"\xff" + raw[100:])
    with pytest.raises(cli.DataError, match="byte 100 cannot be decoded"):
        cli.encode_file(char, path, tmp_path)


def test_cli_run_killed_with_sigkill_resumes_to_the_same_weights(tmp_path, grammar_file):
    common = ["--data", grammar_file, "--max-iters", 20, "--eval-every", 10,
              "--ckpt-every", 5, "--quiet", "--seed", "2"]
    a, b = killed_and_resumed(tmp_path, common, 20)
    assert a["step"] == b["step"] == 20
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["losses"] == b["losses"]
    metrics = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(x)["step"] for x in metrics]
    assert rows == [0, 10, 20]


def test_bench_gpu_without_cuda_exits_2_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "gpu"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "needs a CUDA GPU" in err


def test_grading_the_capstone_is_refused_with_the_reason(tmp_path, capsys):
    (tmp_path / "ada").mkdir()
    code = main(["grade", str(tmp_path), "--assignment", "11_capstone",
                 "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "not auto-graded" in err and "workspace" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
