"""`python -m course train` and `python -m course sample`: train a GPT on any UTF-8 text file
and sample from it.

    python -m course train --data FILE --out DIR [--preset cpu-small|gpt2-small] [--mine WS]
        [--tokenizer char|bpe] [--max-iters N] [--eval-every N] [--ckpt-every N] [--resume]
        [--device D] [--dtype auto|float32|bfloat16] [--compile] [--seed S]
    python -m course sample --ckpt DIR --prompt TEXT --max-new-tokens N
        [--temperature T] [--top-k K] [--top-p P] [--seed S]

The first 90% of the tokens train, the last 10% validate. The file is read as a stream and its
token ids kept on disk (memory-mapped), so it may be larger than memory. DIR/metrics.jsonl gets one JSON
object per evaluation (step, train_loss, val_loss, elapsed_s, tokens_per_s); DIR/ckpt.pt holds
the model, optimizer, scheduler, random states, data position, model configuration and tokenizer.
Several processes (``torchrun --nproc_per_node=N -m course train ...``) train data-parallel.

``--mine WORKSPACE`` trains the learner's own GPT instead of the course's: the package
collected from their notebooks (``course.capstone``; re-collected when a notebook changed),
each part checked first (a wrong or unwritten part stops the run, named), the model built from
their classes with ``fused=False``, and the course's loop run around their ``train_step``,
``lr_at``, ``param_groups``, ``estimate_loss`` and checkpoints (bf16 autocast, torch.compile,
DDP, exact resume, as without it). The tokenizer is the course's.
"""

from __future__ import annotations

import codecs
import itertools
import json
import os
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

# preset -> (model configuration, training configuration), nanoGPT's recipes
PRESETS = {
    # nanoGPT's CPU recipe for character-level Shakespeare
    "cpu-small": (dict(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
                  dict(batch_size=12, block_size=64, max_iters=2000, lr=1e-3, min_lr=1e-4,
                       warmup_iters=100, beta2=0.99, weight_decay=0.1, grad_clip=1.0,
                       eval_every=250, eval_iters=20)),
    # GPT-2 124M (vocabulary padded to 50304 as nanoGPT does) for a GPU: ~0.5M tokens per step
    "gpt2-small": (dict(block_size=1024, n_layer=12, n_head=12, n_embd=768, dropout=0.0,
                        vocab_size=50304, activation="gelu_tanh"),
                   dict(batch_size=12, block_size=1024, grad_accum=40, max_iters=600_000,
                        lr=6e-4, min_lr=6e-5, warmup_iters=2000, beta2=0.95, weight_decay=0.1,
                        grad_clip=1.0, eval_every=1000, eval_iters=200, compile=True)),
}
BPE_VOCAB = 512            # merges learned on the first BPE_TRAIN_CHARS characters
BPE_TRAIN_CHARS = 200_000
BLOCK_BYTES = 1 << 20      # the file is read a megabyte at a time
BLOCK_IDS = 1 << 20        # and its ids written to disk a million at a time


class DataError(ValueError):
    """A training file that cannot be used, with the reason in plain words."""


def check_file(path) -> Path:
    """The path of a usable text file; a clear DataError if it is missing, a folder, empty,
    or binary (NUL bytes in its first megabyte). Reads no more than it must."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a folder; give a UTF-8 text file")
    with open(path, "rb") as f:
        head = f.read(BLOCK_BYTES)
        if b"\x00" in head:
            raise DataError(f"{path} looks binary (it holds NUL bytes); give a UTF-8 text file")
        block = head
        while not block.strip():
            if not block:
                raise DataError(f"{path} is empty: a language model needs text to learn from")
            block = f.read(BLOCK_BYTES)
    return path


def read_pieces(path):
    """The file's text, decoded as UTF-8 block by block as it is read (never all at once); a
    clear DataError at the first byte that is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0                                           # bytes read before this block
    with open(path, "rb") as f:
        while block := f.read(BLOCK_BYTES):
            pending = len(decoder.getstate()[0])         # bytes of a character cut in two
            try:
                yield decoder.decode(block)
            except UnicodeDecodeError as err:
                raise DataError(f"{path} is not UTF-8 text (byte {offset - pending + err.start} "
                                "cannot be decoded); convert it, e.g. with iconv -t utf-8"
                                ) from None
            offset += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text (it ends inside a character); convert it, "
                        "e.g. with iconv -t utf-8") from None


# ---------------------------------------------------------------------------------------------
# Tokenizers, stored inside the checkpoint as plain data
# ---------------------------------------------------------------------------------------------


def make_tokenizer(kind: str, path):
    """The tokenizer for the file: its characters, or BPE merges learned on its beginning."""
    from solutions.tokenization_bpe import BPETokenizer
    from solutions.tokenization_char import CharTokenizer

    if kind == "char":
        chars = set()
        for piece in read_pieces(path):
            chars.update(piece)
        return CharTokenizer("".join(chars))
    if kind == "bpe":
        start = ""
        for piece in read_pieces(path):
            start += piece[: BPE_TRAIN_CHARS - len(start)]
            if len(start) == BPE_TRAIN_CHARS:
                break
        return BPETokenizer.train(start, BPE_VOCAB)
    raise DataError(f"unknown tokenizer {kind!r}; use 'char' or 'bpe'")


def tokenizer_state(tok) -> dict:
    from solutions.tokenization_char import CharTokenizer

    if isinstance(tok, CharTokenizer):
        return {"kind": "char", "itos": list(tok.itos)}
    return {"kind": "bpe", "merges": [[a, b, i] for (a, b), i in tok.merges.items()],
            "special_tokens": list(tok.special_tokens), "pattern": tok.pattern}


def tokenizer_from_state(state: dict):
    from solutions.tokenization_bpe import BPETokenizer
    from solutions.tokenization_char import CharTokenizer

    if state["kind"] == "char":
        tok = CharTokenizer("".join(state["itos"][1:]), unk_token=state["itos"][0])
        if tok.itos != state["itos"]:
            raise ValueError("the checkpoint's character vocabulary could not be rebuilt")
        return tok
    merges = {(a, b): i for a, b, i in state["merges"]}
    return BPETokenizer(merges, state["special_tokens"], state["pattern"])


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------


def build_configs(args, vocab_size: int, saved: dict | None = None):
    """The model and training configurations: the preset's (or, when resuming, the saved
    ones) with the command line's overrides."""
    from solutions.model import ModelConfig
    from solutions.training import TrainConfig

    if saved:
        model_kw, train_kw = dict(saved["model_config"]), dict(saved["train_config"])
    else:
        if args.preset not in PRESETS:
            raise DataError(f"unknown preset {args.preset!r}; known: {', '.join(PRESETS)}")
        model_kw, train_kw = (dict(d) for d in PRESETS[args.preset])
        model_kw["vocab_size"] = max(vocab_size, model_kw.get("vocab_size", 0))
    for key in ("max_iters", "eval_every", "ckpt_every", "dtype", "seed"):
        if getattr(args, key) is not None:
            train_kw[key] = getattr(args, key)
    if args.compile:
        train_kw["compile"] = True
    if not saved:
        train_kw["warmup_iters"] = min(train_kw["warmup_iters"],
                                       max(1, train_kw["max_iters"] // 10))
    train_kw["progress"] = not args.quiet
    return ModelConfig(**model_kw), TrainConfig(**train_kw)


def encode_file(tok, path, folder):
    """The file's token ids as a 1-D LongTensor backed by a temporary file in `folder`, not by
    memory: the text streams through the tokenizer (BPE's encode_iterable) and the ids go to
    disk in blocks, so a corpus larger than memory can be trained on."""
    import numpy as np
    import torch

    ids = (tok.encode_iterable(read_pieces(path)) if hasattr(tok, "encode_iterable")
           else (i for piece in read_pieces(path) for i in tok.encode(piece)))
    store = tempfile.TemporaryFile(dir=folder)           # deleted when the process ends
    while block := list(itertools.islice(ids, BLOCK_IDS)):
        store.write(np.asarray(block, dtype=np.int64).tobytes())
    store.flush()
    n = store.tell() // 8
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.from_numpy(np.memmap(store, dtype=np.int64, mode="c", shape=(n,)))


def encode_splits(tok, path, block_size: int, folder) -> dict:
    """Token ids of the file: the first 90% train, the last 10% validate."""
    ids = encode_file(tok, path, folder)
    n_val = len(ids) // 10
    need = 10 * (block_size + 1)
    if len(ids) < need:
        raise DataError(f"the text is too short: {len(ids)} tokens, but a block of "
                        f"{block_size} tokens needs at least {need} (the last 10% validate, "
                        f"and must hold one window of {block_size + 1} tokens)")
    return {"train": ids[: len(ids) - n_val], "val": ids[len(ids) - n_val:]}


def run_train(args) -> int:
    import torch

    from solutions.checkpoint import load_checkpoint

    out = Path(args.out)
    path = check_file(args.data)
    if args.resume:
        state = load_checkpoint(out / "ckpt.pt")
        tok = tokenizer_from_state(state["tokenizer"])
        model_cfg, train_cfg = build_configs(args, 0, saved=state)
    else:
        tok = make_tokenizer(args.tokenizer, path)
        model_cfg, train_cfg = build_configs(args, tok.vocab_size)
    # the ids go to a temporary file beside the run (not /tmp, often memory); no folder is made
    folder = next(f for f in (out.absolute(), *out.absolute().parents) if f.is_dir())
    data = encode_splits(tok, path, train_cfg.block_size, folder)
    from solutions.decoder import GPT
    from solutions.training import train

    if args.mine:  # the learner's GPT, trained by the course's loop around their step
        from course.capstone.run import mine_trainer

        model_cfg = replace(model_cfg, fused=False)
        build, train = mine_trainer(args.mine)
    else:
        build = GPT
    torch.manual_seed(train_cfg.seed)
    model = build(model_cfg)
    rank = int(os.environ.get("RANK", 0))
    if rank == 0:
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{args.data}: {len(data['train']):,} training and {len(data['val']):,} "
              f"validation tokens (vocabulary {tok.vocab_size}); model: "
              f"{n_params / 1e6:.2f}M parameters", file=sys.stderr)
    history = train(model, data, train_cfg, args.device, out_dir=out, resume=args.resume,
                    extra={"model_config": asdict(model_cfg), "mine": args.mine,
                           "tokenizer": tokenizer_state(tok), "preset": args.preset})
    if rank == 0 and history["evals"]:
        last = history["evals"][-1]
        print(f"step {last['step']}: train loss {last['train_loss']:.4f}, val loss "
              f"{last['val_loss']:.4f}, {last['elapsed_s']:.1f} s; wrote {out / 'metrics.jsonl'}"
              f" and {out / 'ckpt.pt'}")
    return 0


# ---------------------------------------------------------------------------------------------
# sample
# ---------------------------------------------------------------------------------------------


def load_model(ckpt, device="cpu"):
    """(model in eval mode, tokenizer) from a checkpoint file or folder written by train."""
    from solutions.checkpoint import load_checkpoint
    from solutions.decoder import GPT
    from solutions.model import ModelConfig

    state = load_checkpoint(ckpt)
    if "model_config" not in state or "tokenizer" not in state:
        raise DataError(f"{ckpt} was not written by `python -m course train`")
    model = GPT(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), tokenizer_from_state(state["tokenizer"])


def run_sample(args) -> int:
    import torch

    from solutions.generation import generate
    from solutions.training import pick_device

    device = pick_device(args.device)
    model, tok = load_model(args.ckpt, device)
    ids = tok.encode(args.prompt) if args.prompt else []
    if not ids:
        ids = [0]
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    g = torch.Generator(device=device).manual_seed(args.seed)
    out = generate(model, idx, args.max_new_tokens, temperature=args.temperature,
                   top_k=args.top_k, top_p=args.top_p, generator=g)
    print(tok.decode(out[0].tolist()))
    return 0


# ---------------------------------------------------------------------------------------------
# argument parsing (registered in course/__main__.py)
# ---------------------------------------------------------------------------------------------


def _errors_as_messages(run):
    def wrapped(args) -> int:
        try:
            return run(args)
        except (DataError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return wrapped


def add_parsers(sub) -> None:
    """Add the `train` and `sample` sub-commands to the course's argument parser."""
    p = sub.add_parser("train", help="train a GPT on a UTF-8 text file")
    p.add_argument("--data", required=True, help="a UTF-8 text file")
    p.add_argument("--out", required=True, help="folder for metrics.jsonl and ckpt.pt")
    p.add_argument("--preset", default="cpu-small", help=f"one of {', '.join(PRESETS)}")
    p.add_argument("--mine", metavar="WORKSPACE",
                   help="train your own GPT, collected from the exercise notebooks there")
    p.add_argument("--tokenizer", default="char", choices=["char", "bpe"])
    p.add_argument("--max-iters", dest="max_iters", type=int)
    p.add_argument("--eval-every", dest="eval_every", type=int)
    p.add_argument("--ckpt-every", dest="ckpt_every", type=int)
    p.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.pt")
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16"])
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--seed", type=int)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_errors_as_messages(run_train))

    p = sub.add_parser("sample", help="continue a prompt with a model trained by `train`")
    p.add_argument("--ckpt", required=True, help="the --out folder of `train` (or its ckpt.pt)")
    p.add_argument("--prompt", default="", help="text to continue")
    p.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", dest="top_k", type=int)
    p.add_argument("--top-p", dest="top_p", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    p.set_defaults(run=_errors_as_messages(run_sample))


def metrics(out_dir) -> list[dict]:
    """The rows of OUT/metrics.jsonl."""
    path = Path(out_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
