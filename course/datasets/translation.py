"""A toy translation task, generated offline from a seed, that needs cross-attention.

The source language is English-like; the target language is French-like with two rules that a
word-by-word dictionary cannot follow:

- **agreement with a later word**: a target determiner and its adjectives take the gender and
  number of their noun ("the big house" -> "la maison grande", "the big cats" -> "les chats
  grands"), but in the source the noun comes *after* them, so translating "the" needs a look
  at a word further right; the target verb agrees in number with its subject ("see" -> "voit"
  or "voient");
- **reordering**: adjectives follow their noun, and the verb moves to the end (subject, object,
  verb): "this small cat sees the old dogs" -> "ce chat petit les chiens vieux voit".

:func:`pairs` draws sentence pairs; :func:`batch` turns them into padded id tensors for
:class:`solutions.decoder.EncoderDecoder` (teacher forcing: the decoder reads ``<bos> y`` and
predicts ``y <eos>``); :func:`train` fits a small model and :func:`exact_match` scores whole
translations made by greedy decoding. Everything is seeded and runs on a CPU.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import torch

from solutions.decoder import EncoderDecoder
from solutions.generation import generate
from solutions.model import ModelConfig

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
IGNORE = -100

# source determiner -> target forms (masculine singular, feminine singular, plural)
DETERMINERS = {"the": ("le", "la", "les"), "a": ("un", "une", "des"),
               "this": ("ce", "cette", "ces")}
# source noun -> (target singular, target plural, gender)
NOUNS = {"cat": ("chat", "chats", "m"), "dog": ("chien", "chiens", "m"),
         "book": ("livre", "livres", "m"), "tree": ("arbre", "arbres", "m"),
         "house": ("maison", "maisons", "f"), "car": ("voiture", "voitures", "f"),
         "flower": ("fleur", "fleurs", "f"), "table": ("table", "tables", "f")}
# source adjective -> target forms (m sg, f sg, m pl, f pl)
ADJECTIVES = {"big": ("grand", "grande", "grands", "grandes"),
              "small": ("petit", "petite", "petits", "petites"),
              "green": ("vert", "verte", "verts", "vertes"),
              "old": ("vieux", "vieille", "vieux", "vieilles")}
# source verb (one form for both numbers) -> target (singular, plural)
VERBS = {"sees": ("voit", "voient"), "likes": ("aime", "aiment"),
         "takes": ("prend", "prennent"), "wants": ("veut", "veulent")}


def _plural(noun: str) -> str:
    return noun + "s"


def _source_words() -> list[str]:
    words = list(DETERMINERS) + list(ADJECTIVES) + list(VERBS)
    return words + [w for n in NOUNS for w in (n, _plural(n))]


def _target_words() -> list[str]:
    words = [w for forms in DETERMINERS.values() for w in forms]
    words += [w for sg, pl, _ in NOUNS.values() for w in (sg, pl)]
    words += [w for forms in ADJECTIVES.values() for w in forms]
    words += [w for forms in VERBS.values() for w in forms]
    return words


VOCAB: list[str] = [PAD, BOS, EOS] + list(dict.fromkeys(_source_words() + _target_words()))
ID = {w: i for i, w in enumerate(VOCAB)}
PAD_ID, BOS_ID, EOS_ID = ID[PAD], ID[BOS], ID[EOS]
MAX_LEN = 12  # longest sentence (9 words) plus room for <bos>/<eos>


def _noun_phrase(rng: random.Random) -> list[str]:
    det = rng.choice(list(DETERMINERS))
    adjectives = rng.sample(list(ADJECTIVES), rng.choice([0, 1, 1, 2, 2]))
    noun = rng.choice(list(NOUNS))
    plural = det != "a" and rng.random() < 0.5           # "a" is singular only
    return [det, *adjectives, _plural(noun) if plural else noun]


def sentence(rng: random.Random) -> list[str]:
    """A random source sentence: subject noun phrase, verb, object noun phrase."""
    return [*_noun_phrase(rng), rng.choice(list(VERBS)), *_noun_phrase(rng)]


def _translate_phrase(phrase: list[str]) -> tuple[list[str], bool]:
    det, *adjectives, noun = phrase
    plural = noun not in NOUNS
    sg, pl, gender = NOUNS[noun[:-1] if plural else noun]
    det_t = DETERMINERS[det][2 if plural else (0 if gender == "m" else 1)]
    form = (2 if plural else 0) + (1 if gender == "f" else 0)
    return [det_t, pl if plural else sg, *(ADJECTIVES[a][form] for a in adjectives)], plural


def translate(words: list[str]) -> list[str]:
    """The exact translation of a source sentence (the rules above)."""
    verb_at = next(i for i, w in enumerate(words) if w in VERBS)
    subject, subject_plural = _translate_phrase(words[:verb_at])
    obj, _ = _translate_phrase(words[verb_at + 1:])
    return subject + obj + [VERBS[words[verb_at]][1 if subject_plural else 0]]


def pairs(n: int, seed: int, exclude: set[tuple[str, ...]] = frozenset()):
    """n (source words, target words) pairs; sentences in `exclude` are never drawn."""
    rng, out = random.Random(seed), []
    while len(out) < n:
        src = sentence(rng)
        if tuple(src) not in exclude:
            out.append((src, translate(src)))
    return out


def batch(examples, device: torch.device | str = "cpu"):
    """Pairs -> (src (B, S), src_mask (B, S) bool, tgt_in (B, T), tgt_out (B, T)).

    Teacher forcing: tgt_in = <bos> y and tgt_out = y <eos>, shifted by one; padding is
    <pad> in the inputs and IGNORE (-100) in tgt_out, so the loss skips it."""
    S = max(len(s) for s, _ in examples)
    T = max(len(t) for _, t in examples) + 1
    src = torch.full((len(examples), S), PAD_ID, dtype=torch.long)
    tgt_in = torch.full((len(examples), T), PAD_ID, dtype=torch.long)
    tgt_out = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    for b, (s, t) in enumerate(examples):
        src[b, :len(s)] = torch.tensor([ID[w] for w in s])
        ids = [ID[w] for w in t]
        tgt_in[b, :len(ids) + 1] = torch.tensor([BOS_ID, *ids])
        tgt_out[b, :len(ids) + 1] = torch.tensor([*ids, EOS_ID])
    return src.to(device), (src != PAD_ID).to(device), tgt_in.to(device), tgt_out.to(device)


def config(**overrides) -> ModelConfig:
    """The small model used for this task."""
    base = dict(vocab_size=len(VOCAB), block_size=MAX_LEN, n_layer=2, n_head=4, n_embd=64,
                d_ff=128, dropout=0.0, pad_token_id=PAD_ID)
    return ModelConfig(**{**base, **overrides})


@dataclass
class Result:
    model: EncoderDecoder
    losses: list[float]
    accuracy: float          # exact match on the held-out sentences
    seconds: float           # training time


@torch.no_grad()
def translate_ids(model: EncoderDecoder, src: torch.Tensor, src_mask: torch.Tensor):
    """Greedy translations of a batch of sources -> (B, n) ids after <bos> (ending in <eos>,
    then filled with <eos>)."""
    start = torch.full((src.size(0), 1), BOS_ID, dtype=torch.long, device=src.device)
    out = generate(model.conditioned(src, src_mask), start, MAX_LEN - 1, greedy=True,
                   stop=EOS_ID)
    return out[:, 1:]


def decode(ids) -> list[str]:
    """Target ids -> words, up to the first <eos>."""
    words = []
    for i in ids.tolist() if isinstance(ids, torch.Tensor) else ids:
        if i == EOS_ID:
            break
        words.append(VOCAB[i])
    return words


def exact_match(model: EncoderDecoder, examples, batch_size: int = 500) -> float:
    """The fraction of sentences whose greedy translation is exactly right."""
    device = next(model.parameters()).device
    right = 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        src, src_mask, _, _ = batch(chunk, device)
        for ids, (_, target) in zip(translate_ids(model, src, src_mask), chunk):
            right += decode(ids) == target
    return right / len(examples)


def train(steps: int = 600, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
          n_test: int = 500, device: torch.device | str = "cpu", **overrides) -> Result:
    """Train an EncoderDecoder on fresh sentence pairs (never one of the n_test held-out
    sentences); returns the model, the loss per step, the held-out exact match and the
    training time. Runs on one CPU thread (faster than several for a model this small, and
    fair on a shared machine); the thread setting is restored afterwards."""
    torch.manual_seed(seed)
    test = pairs(n_test, seed=10_000 + seed)
    held_out = {tuple(s) for s, _ in test}
    train_pairs = pairs(steps * batch_size, seed=seed, exclude=held_out)
    model = EncoderDecoder(config(**overrides)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps,
                                                   pct_start=0.1)
    threads, losses = torch.get_num_threads(), []
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        model.train()
        for step in range(steps):
            examples = train_pairs[step * batch_size:(step + 1) * batch_size]
            src, src_mask, tgt_in, tgt_out = batch(examples, device)
            _, loss = model(src, tgt_in, tgt_out, src_mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        seconds = time.perf_counter() - start
        model.eval()
        accuracy = exact_match(model, test)
    finally:
        torch.set_num_threads(threads)
    return Result(model, losses, accuracy, seconds)
