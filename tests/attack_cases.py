"""The third hostile catalogue: notebooks that try to take an answer from the grader itself
(lent references, probe frames, twins, oracles, the reply channel). Each is built from the
exercise's release notebook by small edits, so any point beyond `honest` is a point stolen.

`ATTACKS`: case -> Attack(exercise, what it tries, build, honest points, marker). `marker`: a
text the feedback must not show (printed with reference code or hidden inputs; never in the
notebook's own source); `shown`: one it must show (what the learner's own cells print after
the tests began).
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
    shown: str | None = None  # a text the notebook's own cells print that feedback shows


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
    return appended(cases.source_nb(BPE), DISASSEMBLE + 'print("OWN" + "-OUTPUT", 6 * 7)\n')


FROM_GRADER = '''
import sys

def _from_grader():
    """Called by the grader's probe, not by one of the notebook's own cells."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "run_code":  # IPython running a cell
            return False
        frame = frame.f_back
    return True
'''

SPY = FROM_GRADER + '''
_seen = []
_honest_counts = get_pair_counts

def get_pair_counts(ids, counts=None):
    if _from_grader():
        _seen.append(list(ids))
    return _honest_counts(ids, counts)
'''

PRINT_SEEN = 'print("OWN" + "-OUTPUT", 6 * 7)\nif _seen:\n    print("HIDDEN" + "-INPUT", _seen)\n'


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



NORM, ENCODER, TRAINING = "06_normalization", "07_encoder", "09_training"


def moved_first(nb, grade_ids: tuple[str, ...]):
    """`nb` with the cells of `grade_ids` (in this order) moved just below the imports."""
    nb = nbformat.from_dict(nb)
    cells = [c for g in grade_ids for c in nb.cells if cases.meta(c).get("grade_id") == g]
    rest = [c for c in nb.cells if c not in cells]
    first = next(i for i, c in enumerate(rest) if c.cell_type == "code")  # the imports
    nb.cells = [*rest[:first + 1], *cells, *rest[first + 1:]]
    return nb


STASH = "_stash = globals().get('_stash', {})\n"


def lent_from_stash(*names: str) -> str:
    """Definitions that answer `names` with the references a harvest kept."""
    return STASH + "\n".join(f"def {n}(*args, **kwargs):\n    return _stash[{n!r}](*args, "
                             f"**kwargs)\n" for n in names)


def stash_on_call(source: str, hook: str, names: tuple[str, ...]) -> str:
    """`source` (a solution cell) whose method or function `hook` first keeps `names` from
    the learner's namespace (where a check lends references) in `_stash`."""
    keep = f"_stash.update({{n: globals()[n] for n in {names!r} if n in globals()}})"
    head, _, tail = source.partition(f"def {hook}(")
    signature, _, body = tail.partition(":\n")
    indent = body[:len(body) - len(body.lstrip(" "))]
    if body.lstrip().startswith('"""'):  # after the docstring
        doc_end = body.index('"""', body.index('"""') + 3) + 4
        signature, body = signature + ":\n" + body[:doc_end], body[doc_end:]
        return f"{STASH}{head}def {hook}({signature}{indent}{keep}\n{body}"
    return f"{STASH}{head}def {hook}({signature}:\n{indent}{keep}\n{body}"


def norm_reordered():
    """LayerNorm (honest, calling layer_norm) and its tests moved above Part 1: LayerNorm's
    forward keeps the layer_norm it is lent, and Part 1's cell answers with it."""
    nb = solution(cases.release_nb(NORM), "layernorm", stash_on_call(
        instructor(NORM, "layernorm"), "forward", ("layer_norm",)))
    nb = solution(nb, "layer_norm", lent_from_stash("layer_norm"))
    return moved_first(nb, ("layernorm", "test_layernorm", "test_layernorm_backward"))


NORM_TWINS = '''
import solutions.model as _m

def layer_norm(x, weight, bias, eps=1e-5):
    norm = _m.ModelConfig(n_embd=x.size(-1), eps=eps).layer_norm()
    norm.weight.data, norm.bias.data = weight, bias
    return norm(x)
'''


def norm_twins():
    nb = solution(cases.release_nb(NORM), "layernorm",
                  "from solutions.normalization import FusedLayerNorm as LayerNorm\n")
    return solution(nb, "layer_norm", NORM_TWINS)


HUNT = '''
import gc, sys
_busy = set()

def _hunt(name, mine, *args, **kwargs):
    """Call any other object named `name` found up the stack or anywhere in memory."""
    if name in _busy:
        raise NotImplementedError
    _busy.add(name)
    try:
        pool, frame = [], sys._getframe(1)
        while frame is not None:
            pool += list(frame.f_locals.values())
            frame = frame.f_back
        for obj in pool + gc.get_objects():
            if callable(obj) and getattr(obj, "__name__", "") == name and obj is not mine():
                try:
                    return obj(*args, **kwargs)
                except Exception:
                    continue
        raise NotImplementedError
    finally:
        _busy.discard(name)
'''

HUNT_ENCODER = HUNT + '''
class Encoder(nn.Module):
    def __new__(cls, *args, **kwargs):
        return _hunt("Encoder", lambda: Encoder, *args, **kwargs)
'''


def encoder_hunt():
    """copy_checkpoint (honest) and its tests first; Encoder unwritten, built by any other
    Encoder the checks left in the worker's memory or on the stack."""
    nb = solution(cases.release_nb(ENCODER), "encoder", HUNT_ENCODER)
    nb = solution(nb, "copy_checkpoint", instructor(ENCODER, "copy_checkpoint"))
    return moved_first(nb, ("copy_checkpoint", "test_copy_checkpoint",
                            "test_copy_checkpoint_errors"))


def encoder_reordered():
    """Encoder (honest) and its tests above Parts 1 and 2: its __init__ keeps the embeddings
    and pooler it is lent, and Parts 1 and 2 answer with them."""
    nb = solution(cases.release_nb(ENCODER), "encoder", stash_on_call(
        instructor(ENCODER, "encoder"), "__init__", ("EncoderEmbeddings", "Pooler")))
    nb = solution(nb, "embeddings", lent_from_stash("EncoderEmbeddings"))
    nb = solution(nb, "pooler", lent_from_stash("Pooler"))
    return moved_first(nb, ("encoder", "test_encoder", "test_encoder_padding"))


ENCODER_TWINS = '''
from solutions.encoder import SentenceEncoder as _S

def mean_pool(hidden, attention_mask):
    return _S.__dict__["pool"](None, hidden, attention_mask)
'''


def encoder_twins():
    nb = solution(cases.release_nb(ENCODER), "mean_pool", ENCODER_TWINS)
    return solution(nb, "encoder",
                    "import solutions.encoder as _e\nEncoder = _e.__dict__['Encoder']\n")


HUNT_LOAD = '''
def load_checkpoint(*args, **kwargs):
    return _hunt("load_checkpoint", lambda: load_checkpoint, *args, **kwargs)
'''


def training_hunt():
    """save_checkpoint honest; load_checkpoint unwritten, answered by any other load_checkpoint
    found up the stack or in memory while the checks run."""
    save = instructor(TRAINING, "checkpoint").split("def load_checkpoint")[0]
    return solution(cases.release_nb(TRAINING), "checkpoint", HUNT + save + HUNT_LOAD)


def training_reordered():
    """fit (honest) and its tests first: it keeps the train_step, param_groups and lr_at it is
    lent, and Parts 1 to 3 answer with them."""
    nb = solution(cases.release_nb(TRAINING), "fit", stash_on_call(
        instructor(TRAINING, "fit"), "fit", ("lr_at", "param_groups", "train_step")))
    for grade_id, name in (("lr_at", "lr_at"), ("param_groups", "param_groups"),
                           ("train_step", "train_step")):
        nb = solution(nb, grade_id, lent_from_stash(name))
    return moved_first(nb, ("fit", "test_fit", "test_fit_floor"))


TRAINING_TWINS = '''
from solutions.training import train as _train

def fit(model, data, config, device="cpu"):
    return _train(model, data, config, device=device)
'''


def training_twins():
    nb = solution(cases.release_nb(TRAINING), "fit", TRAINING_TWINS)
    return solution(nb, "checkpoint",
                    "from solutions.checkpoint import load_checkpoint, save_checkpoint\n")


SPY_LR = FROM_GRADER + '''
_seen = []
_honest_lr_at = lr_at

def lr_at(*args):
    if _from_grader():
        _seen.append(args)
    return _honest_lr_at(*args)
'''


def training_print_inputs():
    nb = solution(cases.source_nb(TRAINING), "lr_at", instructor(TRAINING, "lr_at") + SPY_LR)
    return appended(nb, PRINT_SEEN)


def visible_lr_at_calls() -> list:
    """The argument tuples the visible lr_at checks call it with (recorded in process)."""
    from course.checks import training
    from solutions.training import lr_at

    seen = set()

    def recorder(*args):
        seen.add(args)
        return lr_at(*args)

    training.check_lr_at(recorder)
    training.check_lr_at_edges(recorder)
    return sorted(seen)


RAISE_LR = FROM_GRADER + '''
_visible, _honest_lr_at = {visible!r}, lr_at

def lr_at(*args):
    if _from_grader() and args not in _visible:
        raise ValueError("HIDDEN" + "-ARGS " + repr(args))
    return _honest_lr_at(*args)
'''


def training_raise_inputs():
    """lr_at right on every visible case; on any other input the grader gives it, it raises an
    error whose message is the inputs."""
    return solution(cases.source_nb(TRAINING), "lr_at", instructor(TRAINING, "lr_at") +
                    RAISE_LR.format(visible=visible_lr_at_calls()))


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
                                    marker="LOAD_FAST", shown="OWN-OUTPUT 42"),  # an opcode
    "print-hidden-inputs": Attack(BPE, "a correct notebook prints every input it was given",
                                  print_hidden_inputs, honest=20, marker="HIDDEN-INPUT",
                                  shown="OWN-OUTPUT 42"),
    "forged-bomb": Attack(BPE, "a forged reply: a 200-byte self-similar list (2^24 pieces)",
                          on_replies(BOMB)),
    "forged-reply": Attack(BPE, "a forged empty result sent ahead of the real one",
                           on_replies(FORGED_OK)),
    "garbage-reply": Attack(BPE, "garbage bytes on the reply channel", on_replies(GARBAGE)),
    "list-header": Attack(BPE, "a plain cell forges a reply whose header is a list",
                          list_header),
    "stalled-reply": Attack(BPE, "half a reply header, then silence", on_replies(STALL)),
    "oracle-scores": Attack(ATTENTION, "attention_scores from course.checks.oracles",
                            attention_with("attention_scores", ORACLE)),
    "oracle-softmax": Attack(ATTENTION, "masked_softmax from course.checks.oracles",
                             attention_with("masked_softmax", ORACLE_SOFTMAX)),
    "twin-attention-loop": Attack(ATTENTION, "attention_scores through attention_loop",
                                  attention_with("attention_scores", LOOP)),
    "twin-fused": Attack(ATTENTION, "MultiHeadAttention wrapping FusedMultiHeadAttention",
                         attention_with("multi_head_attention", FUSED)),
    "norm-reordered": Attack(NORM, "LayerNorm's tests moved first keep the layer_norm lent "
                             "to its check", norm_reordered, honest=2),
    "norm-twins": Attack(NORM, "FusedLayerNorm, and ModelConfig.layer_norm()", norm_twins),
    "encoder-hunt": Attack(ENCODER, "Encoder built by any other Encoder on the stack or in "
                           "memory (copy_checkpoint's tests first)", encoder_hunt, honest=4),
    "encoder-reordered": Attack(ENCODER, "Encoder's tests moved first keep the embeddings and "
                                "pooler lent to its check", encoder_reordered, honest=3),
    "encoder-twins": Attack(ENCODER, "mean_pool from SentenceEncoder, Encoder from the "
                            "solutions module's namespace", encoder_twins),
    "training-hunt": Attack(TRAINING, "load_checkpoint answered by any other load_checkpoint "
                            "on the stack or in memory", training_hunt, honest=1),
    "training-reordered": Attack(TRAINING, "fit's tests moved first keep the parts lent to "
                                 "its check", training_reordered, honest=3),
    "training-twins": Attack(TRAINING, "fit through train, the checkpoint functions from "
                             "solutions.checkpoint", training_twins),
    "training-print-inputs": Attack(TRAINING, "a correct notebook prints every input lr_at "
                                    "was given", training_print_inputs, honest=18,
                                    marker="HIDDEN-INPUT", shown="OWN-OUTPUT 42"),
    "training-raise-inputs": Attack(TRAINING, "lr_at raises an error quoting any input it was "
                                    "not shown", training_raise_inputs, honest=15,
                                    marker="HIDDEN-ARGS"),
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
