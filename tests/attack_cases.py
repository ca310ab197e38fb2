"""The third hostile catalogue: notebooks that try to take an answer from the grader itself
(lent references, probe frames, twins, oracles, the reply channel). Each is built from the
exercise's release notebook by small edits (tests/attack_edits.py; the notebooks are in
tests/attacks_tokenization.py and tests/attacks_models.py), so any point beyond `honest` is a
point stolen.

`ATTACKS`: case -> Attack(exercise, what it tries, build, honest points, marker). `marker`: a
text the feedback must not show (printed with reference code or hidden inputs; never in the
notebook's own source); `shown`: one it must show (the notice that replaces what a learner's
cell prints after the tests began).
"""

from __future__ import annotations

from dataclasses import dataclass

import attacks_models as models
import attacks_tokenization as tok
import grading_cases as cases
import nbformat
from attack_edits import ATTENTION, BPE, ENCODER, NORM, TRAINING

from course.grading.judge import AFTER_TESTS


@dataclass(frozen=True)
class Attack:
    exercise: str
    what: str
    build: object  # () -> notebook
    honest: float = 0.0  # points the notebook earns by its own honest code
    marker: str | None = None
    shown: str | None = None  # a text the feedback must show


ATTACKS = {
    "reordered-harvest": Attack(BPE, "Part 3's test moved first keeps the Part 2 references "
                                "lent to its check", tok.reordered_harvest, honest=3),
    "twin-train-bpe": Attack(BPE, "train_bpe_naive answered by the fast twin train_bpe "
                             "(best_pair honest)", tok.twin_train_bpe, honest=1),
    "twin-bpe-tokenizer": Attack(BPE, "Part 4 answered through BPETokenizer",
                                 tok.twin_bpe_tokenizer),
    "twin-wordpiece": Attack(BPE, "wordpiece answered through WordPieceTokenizer",
                             tok.twin_wordpiece),
    "module-dict": Attack(BPE, "wordpiece read from the solutions module's namespace",
                          tok.twin_wordpiece_helper),
    "stack-walk": Attack(BPE, "get_pair_counts finds another get_pair_counts up the stack",
                         tok.stack_walk),
    "disassemble-reference": Attack(BPE, "a correct notebook disassembles the references it was "
                                    "sent into its output", tok.disassemble_reference, honest=20,
                                    marker="LOAD_FAST", shown=AFTER_TESTS),  # an opcode
    "print-hidden-inputs": Attack(BPE, "a correct notebook prints every input it was given",
                                  tok.print_hidden_inputs, honest=20, marker="HIDDEN-INPUT",
                                  shown=AFTER_TESTS),
    "forged-bomb": Attack(BPE, "a forged reply: a 200-byte self-similar list (2^24 pieces)",
                          tok.on_replies(tok.BOMB)),
    "forged-reply": Attack(BPE, "a forged empty result sent ahead of the real one",
                           tok.on_replies(tok.FORGED_OK)),
    "garbage-reply": Attack(BPE, "garbage bytes on the reply channel", tok.on_replies(tok.GARBAGE)),
    "list-header": Attack(BPE, "a plain cell forges a reply whose header is a list",
                          tok.list_header),
    "stalled-reply": Attack(BPE, "half a reply header, then silence", tok.on_replies(tok.STALL)),
    "oracle-scores": Attack(ATTENTION, "attention_scores from course.checks.oracles",
                            models.attention_with("attention_scores", models.ORACLE)),
    "oracle-softmax": Attack(ATTENTION, "masked_softmax from course.checks.oracles",
                             models.attention_with("masked_softmax", models.ORACLE_SOFTMAX)),
    "twin-attention-loop": Attack(ATTENTION, "attention_scores through attention_loop",
                                  models.attention_with("attention_scores", models.LOOP)),
    "twin-fused": Attack(ATTENTION, "MultiHeadAttention wrapping FusedMultiHeadAttention",
                         models.attention_with("multi_head_attention", models.FUSED)),
    "norm-reordered": Attack(NORM, "LayerNorm's tests moved first keep the layer_norm lent "
                             "to its check", models.norm_reordered, honest=2),
    "norm-twins": Attack(NORM, "FusedLayerNorm, and ModelConfig.layer_norm()", models.norm_twins),
    "encoder-hunt": Attack(ENCODER, "Encoder built by any other Encoder on the stack or in "
                           "memory (copy_checkpoint's tests first)", models.encoder_hunt, honest=4),
    "encoder-reordered": Attack(ENCODER, "Encoder's tests moved first keep the embeddings and "
                                "pooler lent to its check", models.encoder_reordered, honest=3),
    "encoder-twins": Attack(ENCODER, "mean_pool from SentenceEncoder, Encoder from the "
                            "solutions module's namespace", models.encoder_twins),
    "training-hunt": Attack(TRAINING, "load_checkpoint answered by any other load_checkpoint "
                            "on the stack or in memory", models.training_hunt, honest=1),
    "training-reordered": Attack(TRAINING, "fit's tests moved first keep the parts lent to "
                                 "its check", models.training_reordered, honest=3),
    "training-twins": Attack(TRAINING, "fit through train, the checkpoint functions from "
                             "solutions.checkpoint", models.training_twins),
    "training-print-inputs": Attack(TRAINING, "a correct notebook prints every input lr_at "
                                    "was given", models.training_print_inputs, honest=18,
                                    marker="HIDDEN-INPUT", shown=AFTER_TESTS),
    "training-raise-inputs": Attack(TRAINING, "lr_at raises an error quoting any input it was "
                                    "not shown", models.training_raise_inputs, honest=15,
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
