"""Attacks on the model exercises (3, 6, 7, 9): oracles, twins, references lent to a later
part's check and kept, objects hunted on the stack and in memory, printed and raised inputs."""

from __future__ import annotations

import grading_cases as cases
from attack_edits import (
    ATTENTION,
    ENCODER,
    FROM_GRADER,
    HUNT,
    NORM,
    PRINT_SEEN,
    TRAINING,
    appended,
    instructor,
    lent_from_stash,
    moved_first,
    solution,
    stash_on_call,
)

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
