"""Attacks on exercise 1 (tokenization): lent references kept, twins, the stack, printed
references and hidden inputs, and forged, garbage and stalled replies on the reply channel."""

from __future__ import annotations

import grading_cases as cases
from attack_edits import BPE, FROM_GRADER, PRINT_SEEN, appended, instructor, solution

HARVEST = '''
_honest_train = train_bpe_naive
_stash = {}

def train_bpe_naive(*args, **kwargs):
    _stash.update({n: globals()[n] for n in ("get_pair_counts", "merge", "best_pair")})
    return _honest_train(*args, **kwargs)

def best_pair(counts):
    raise NotImplementedError
'''

REBIND = '''
def _lent(name):
    def call(*args, **kwargs):
        return _stash[name](*args, **kwargs)
    return call

get_pair_counts, merge, best_pair = _lent("get_pair_counts"), _lent("merge"), _lent("best_pair")
'''


def reordered_harvest():
    """Part 3 (honest train_bpe_naive) and its test moved above Parts 1 and 2: the references
    lent to it for its check are kept, and Part 2's cell answers Part 2 and best_pair with
    them."""
    nb = solution(cases.release_nb(BPE), "train_bpe", instructor(BPE, "train_bpe") + HARVEST)
    nb = solution(nb, "pair_counts_and_merge", REBIND)
    cells = nb.cells
    sol = next(c for c in cells if cases.meta(c).get("grade_id") == "train_bpe")
    test = next(c for c in cells if cases.meta(c).get("grade_id") == "test_train_bpe")
    cells.remove(sol)
    cells.remove(test)
    first = next(i for i, c in enumerate(cells) if c.cell_type == "code")  # the imports
    nb.cells = [*cells[:first + 1], sol, test, *cells[first + 1:]]
    return nb


def twin_train_bpe():
    return solution(cases.release_nb(BPE), "train_bpe", instructor(BPE, "train_bpe").split(
        "def train_bpe_naive")[0] + '''
from solutions.tokenization_bpe import train_bpe as _fast

def train_bpe_naive(text, vocab_size, *args, **kwargs):
    return _fast(text, vocab_size)
''')


def twin_bpe_tokenizer():
    return solution(cases.release_nb(BPE), "bpe_encode_decode", '''
from solutions.tokenization_bpe import BPETokenizer as _Tok

def apply_merges(ids, merges):
    return _Tok(merges)._encode_ordinary(bytes(ids).decode("latin-1"))

def build_vocab(merges):
    return _Tok(merges).vocab

def decode_bytes(ids, vocab):
    raise NotImplementedError
''')


def twin_wordpiece():
    return solution(cases.release_nb(BPE), "wordpiece", '''
from solutions.tokenization_wordpiece import WordPieceTokenizer as _Tok

def wordpiece(word, vocab, unk_token="[UNK]", max_chars=100):
    return _Tok({**vocab, "[CLS]": -1, "[SEP]": -2, "[PAD]": -3, "[MASK]": -4,
                 unk_token: vocab.get(unk_token, -5)}, lowercase=False).tokenize(word)
''')


def twin_wordpiece_helper():
    return solution(cases.release_nb(BPE), "wordpiece", '''
import solutions.tokenization_wordpiece as _w

def wordpiece(word, vocab, unk_token="[UNK]", max_chars=100):
    return _w.__dict__["wordpiece"](word, vocab, unk_token, max_chars)
''')


DISASSEMBLE = '''
import builtins, dis, io
_out = io.StringIO()
for _name, _ref in getattr(builtins, "__course_reference__", {}).items():
    for _f in [_ref, *vars(_ref).values()] if isinstance(_ref, type) else [_ref]:
        if hasattr(_f, "__code__"):
            dis.dis(_f, file=_out)
print(_out.getvalue())
'''


def disassemble_reference():
    """A correct notebook whose last cell prints every reference the worker was sent."""
    return appended(cases.source_nb(BPE), DISASSEMBLE + 'print("OWN" + "-OUTPUT", 6 * 7)\n')



SPY = FROM_GRADER + '''
_seen = []
_honest_counts = get_pair_counts

def get_pair_counts(ids, counts=None):
    if _from_grader():
        _seen.append(list(ids))
    return _honest_counts(ids, counts)
'''



def print_hidden_inputs():
    """A correct notebook that records every input its function is given and prints them all
    at the end (hidden cases included)."""
    nb = cases.source_nb(BPE)
    nb = solution(nb, "pair_counts_and_merge", instructor(BPE, "pair_counts_and_merge") + SPY)
    return appended(nb, PRINT_SEEN)


STACK = '''
import sys

def get_pair_counts(ids, counts=None):
    frame = sys._getframe(1)
    while frame is not None:
        for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):
            module = str(getattr(value, "__module__", ""))
            if callable(value) and getattr(value, "__name__", "") == "get_pair_counts" \\
                    and value is not get_pair_counts:
                return value(ids, counts)
        frame = frame.f_back
    raise NotImplementedError
'''


def stack_walk():
    """get_pair_counts looks up the call stack for any other get_pair_counts (a reference a
    probe or the worker holds) and answers with it."""
    return solution(cases.release_nb(BPE), "pair_counts_and_merge", STACK + '''
def merge(ids, pair, new_id):
    raise NotImplementedError
''')


REPLIES = '''
import io, json, struct, sys

def _replies():
    frame = sys._getframe(1)
    while frame is not None:
        if "replies" in frame.f_locals:
            return frame.f_locals["replies"]
        frame = frame.f_back

def _send(header, payload=b""):
    data = json.dumps(header).encode()
    stream = _replies()
    stream.write(struct.pack("!II", len(data), len(payload)) + data + payload)
    stream.flush()
'''

BOMB = REPLIES + '''
import os, torch

def get_pair_counts(ids, counts=None):
    bomb = [0]
    for _ in range(24):
        bomb = [bomb, bomb]
    buffer = io.BytesIO()
    torch.save(bomb, buffer)
    _send({"status": "ok", "format": "torch"}, buffer.getvalue())
    os._exit(0)

def merge(ids, pair, new_id):
    raise NotImplementedError
'''

FORGED_OK = REPLIES + '''
import os

def get_pair_counts(ids, counts=None):
    counts = {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    _send({"status": "ok", "format": "json"}, json.dumps({"d": []}).encode())
    return counts

def merge(ids, pair, new_id):
    raise NotImplementedError
'''

GARBAGE = REPLIES + '''
def get_pair_counts(ids, counts=None):
    _replies().write(b"\\xff" * 64)
    _replies().flush()
    return {}

def merge(ids, pair, new_id):
    raise NotImplementedError
'''

STALL = REPLIES + '''
import time

def get_pair_counts(ids, counts=None):
    _replies().write(b"\\x00\\x00")
    _replies().flush()
    time.sleep(3600)

def merge(ids, pair, new_id):
    raise NotImplementedError
'''


LIST_HEADER = REPLIES + '''
_replies().write(struct.pack("!II", 2, 0) + b"[]")
_replies().flush()
'''


def list_header():
    """A plain cell (no probe running) writes a reply whose header is a list."""
    return cases.with_cell(cases.release_nb(BPE), LIST_HEADER, at=2)


def on_replies(code: str):
    return lambda: solution(cases.release_nb(BPE), "pair_counts_and_merge", code)
