"""The third hostile catalogue: notebooks that try to take an answer from the grader itself
(lent references, probe frames, twins, oracles, the reply channel). Each is built from the
exercise's release notebook by small edits, so any point beyond `honest` is a point stolen.

`ATTACKS`: case -> Attack(exercise, what it tries, build, honest points, marker). `marker`: a
text the feedback must not show (printed with reference code or hidden inputs; never in the
notebook's own source).
"""

from __future__ import annotations

from dataclasses import dataclass

import grading_cases as cases
import nbformat

BPE = "01_tokenization"
ATTENTION = "03_attention"


@dataclass(frozen=True)
class Attack:
    exercise: str
    what: str
    build: object  # () -> notebook
    honest: float = 0.0  # points the notebook earns by its own honest code
    marker: str | None = None


def solution(nb, grade_id: str, code: str):
    """`nb` with the solution cell `grade_id` holding `code`."""
    nb = nbformat.from_dict(nb)
    (cell,) = [c for c in nb.cells if cases.meta(c).get("grade_id") == grade_id]
    cell.source = code
    return nb


def instructor(name: str, grade_id: str) -> str:
    (cell,) = [c for c in cases.source_nb(name).cells
               if cases.meta(c).get("grade_id") == grade_id]
    return cell.source


def appended(nb, code: str):
    return cases.with_cell(nb, code, at=len(nb.cells))


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
    return appended(cases.source_nb(BPE), DISASSEMBLE)


SPY = '''
_seen = []
_honest_counts = get_pair_counts

def get_pair_counts(ids, counts=None):
    _seen.append(list(ids))
    return _honest_counts(ids, counts)
'''


def print_hidden_inputs():
    """A correct notebook that records every input its function is given and prints them all
    at the end (hidden cases included)."""
    nb = cases.source_nb(BPE)
    nb = solution(nb, "pair_counts_and_merge", instructor(BPE, "pair_counts_and_merge") + SPY)
    return appended(nb, 'print("HIDDEN" + "-INPUT", _seen)')


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


def on_replies(code: str):
    return lambda: solution(cases.release_nb(BPE), "pair_counts_and_merge", code)


ORACLE = '''
import course.checks.oracles as _o

def attention_scores(q, k):
    return _o.attention_scores(q, k)
'''

ORACLE_SOFTMAX = '''
import course.checks.oracles as _o

def masked_softmax(scores, mask=None):
    return _o.attention_weights(scores, mask)
'''

LOOP = '''
from solutions.attention import attention_loop as _loop

def attention_scores(q, k):
    eye = torch.eye(k.size(-2), dtype=q.dtype)
    flat_q, flat_k = q.reshape(-1, *q.shape[-2:]), k.reshape(-1, *k.shape[-2:])
    out = [_loop(a * q.size(-1) ** 0.5, b, eye) for a, b in zip(flat_q, flat_k)]
    return torch.stack(out).reshape(*q.shape[:-1], k.size(-2))
'''

FUSED = '''
from solutions.attention import FusedMultiHeadAttention as _Fused

class MultiHeadAttention(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        self.inner = _Fused(*args, **kwargs)

    def forward(self, *args, **kwargs):
        return self.inner(*args, **kwargs)
'''


def attention_with(grade_id: str, code: str):
    return lambda: solution(cases.release_nb(ATTENTION), grade_id, code)


ATTACKS = {
    "reordered-harvest": Attack(BPE, "Part 3's test moved first keeps the Part 2 references "
                                "lent to its check", reordered_harvest, honest=3),
    "twin-train-bpe": Attack(BPE, "train_bpe_naive answered by the fast twin train_bpe "
                             "(best_pair honest)", twin_train_bpe, honest=1),
    "twin-bpe-tokenizer": Attack(BPE, "Part 4 answered through BPETokenizer",
                                 twin_bpe_tokenizer),
    "twin-wordpiece": Attack(BPE, "wordpiece answered through WordPieceTokenizer",
                             twin_wordpiece),
    "module-dict": Attack(BPE, "wordpiece read from the solutions module's namespace",
                          twin_wordpiece_helper),
    "stack-walk": Attack(BPE, "get_pair_counts finds another get_pair_counts up the stack",
                         stack_walk),
    "disassemble-reference": Attack(BPE, "a correct notebook disassembles the references it was "
                                    "sent into its output", disassemble_reference, honest=20,
                                    marker="LOAD_FAST"),  # (an opcode)
    "print-hidden-inputs": Attack(BPE, "a correct notebook prints every input it was given",
                                  print_hidden_inputs, honest=20, marker="HIDDEN-INPUT"),
    "forged-bomb": Attack(BPE, "a forged reply: a 200-byte self-similar list (2^24 pieces)",
                          on_replies(BOMB)),
    "forged-reply": Attack(BPE, "a forged empty result sent ahead of the real one",
                           on_replies(FORGED_OK)),
    "garbage-reply": Attack(BPE, "garbage bytes on the reply channel", on_replies(GARBAGE)),
    "stalled-reply": Attack(BPE, "half a reply header, then silence", on_replies(STALL)),
    "oracle-scores": Attack(ATTENTION, "attention_scores from course.checks.oracles",
                            attention_with("attention_scores", ORACLE)),
    "oracle-softmax": Attack(ATTENTION, "masked_softmax from course.checks.oracles",
                             attention_with("masked_softmax", ORACLE_SOFTMAX)),
    "twin-attention-loop": Attack(ATTENTION, "attention_scores through attention_loop",
                                  attention_with("attention_scores", LOOP)),
    "twin-fused": Attack(ATTENTION, "MultiHeadAttention wrapping FusedMultiHeadAttention",
                         attention_with("multi_head_attention", FUSED)),
}


# Honest notebooks in odd shapes: each earned full marks, and the summary says what was done.
@dataclass(frozen=True)
class Honest:
    exercise: str
    what: str
    build: object  # () -> notebook
    said: str  # in the result's status
    name: str = "{exercise}.ipynb"  # the file in the student's folder
    checkpoint: bool = False  # Jupyter's .ipynb_checkpoints copy (the untouched notebook) too


def _duplicated_test():
    nb = cases.source_nb(BPE)
    i, test = next((i, c) for i, c in enumerate(nb.cells)
                   if cases.meta(c).get("grade_id") == "test_get_pair_counts")
    copy = nbformat.from_dict(test)
    copy.source = "pass"
    nb.cells.insert(i + 1, copy)
    return nb


def _stub_then_copy():
    nb = cases.source_nb(BPE)
    i, cell = next((i, c) for i, c in enumerate(nb.cells)
                   if cases.meta(c).get("grade_id") == "pair_counts_and_merge")
    stub = nbformat.from_dict(cell)
    (stub.source,) = [c.source for c in cases.release_nb(BPE).cells
                      if cases.meta(c).get("grade_id") == "pair_counts_and_merge"]
    nb.cells.insert(i, stub)
    return nb


def _big_output():
    nb = cases.with_cell(cases.source_nb(BPE), 'print("x")', at=1)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                  text="x" * (50 * 2**20))]
    return nb


def _big_attachment():
    import base64

    nb = cases.source_nb(BPE)
    picture = base64.b64encode(b"\x89PNG" + b"\0" * (15 * 2**20)).decode()  # 20 MiB stored
    cell = nbformat.v4.new_markdown_cell("![plot](attachment:plot.png)")
    cell.attachments = {"plot.png": {"image/png": picture}}
    nb.cells.insert(1, cell)
    return nb


HONEST = {
    "duplicated-test-cell": Honest(BPE, "a test cell pasted twice (same grade id, the copy "
                                   "reduced to pass)", _duplicated_test, "second copy"),
    "stub-then-copy": Honest(BPE, "the stub left above a working copy of its cell (same grade "
                             "id)", _stub_then_copy, "plain code"),
    "big-output": Honest(BPE, "a cell with 50 MB of stored output", _big_output, "removed"),
    "big-attachment": Honest(BPE, "a markdown cell with a 20 MB attachment", _big_attachment,
                             "removed"),
    "renamed-copy": Honest(BPE, "the only notebook renamed -Copy1 beside .ipynb_checkpoints",
                           lambda: cases.source_nb(BPE), "Copy1",
                           name="{exercise}-Copy1.ipynb", checkpoint=True),
}


def write(folder, case) -> None:
    """Case `case` (an attack or an honest notebook) as a student's folder `folder`."""
    entry = ATTACKS.get(case) or HONEST[case]
    folder.mkdir(parents=True)
    name = getattr(entry, "name", "{exercise}.ipynb").format(exercise=entry.exercise)
    nbformat.write(entry.build(), folder / name)
    if getattr(entry, "checkpoint", False):
        (folder / ".ipynb_checkpoints").mkdir()
        nbformat.write(cases.release_nb(entry.exercise), folder / ".ipynb_checkpoints" /
                       name.replace(".ipynb", "-checkpoint.ipynb"))
