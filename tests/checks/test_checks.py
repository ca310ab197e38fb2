"""The checks engine: every registered check passes the reference and fails every mutant in its
topic's catalogue, naming the mistake; importing the reference scores zero; exceptions, earlier
parts and probe counts behave as `course.checks.core` promises."""

from __future__ import annotations

import importlib
import io
import json
import linecache
import re
import subprocess
import sys
import tokenize

import jupytext
import pytest
from checking import hints_in

from course.authoring import exercises
from course.checks import core, topics
from course.checks.core import CheckFailed, Raised, copy_of, mutant, require_own
from course.checks.engine import catalogue, registry

TOPICS = topics()

MODULES = {topic: importlib.import_module(f"course.checks.{topic}") for topic in TOPICS}
TARGETS = sorted(core.REGISTRY)
MISTAKES = [(topic, k) for topic, m in MODULES.items() for k in m.MISTAKES]
EXERCISES = {name.split("_", 1)[1]: name for name in exercises.names()}


def run_all(target, obj):
    core.run_checks(target, obj)
    core.run_checks(target, obj, hidden=True)


@pytest.mark.parametrize("target", TARGETS)
def test_reference_passes(target):
    run_all(target, copy_of(target))


@pytest.mark.parametrize("target", TARGETS)
def test_imported_reference_scores_zero(target):
    reference = importlib.import_module(target.rpartition(".")[0])
    for run in core.checks_for(target):
        with pytest.raises(CheckFailed, match="imported from the reference"):
            run(getattr(reference, target.rpartition(".")[2]))


@pytest.mark.parametrize("topic,mistake", MISTAKES, ids=[k.name for _, k in MISTAKES])
def test_mutant_fails_and_is_named(topic, mistake):
    assert mistake.target in core.REGISTRY, f"no check for {mistake.target}"
    with pytest.raises(CheckFailed) as failure:
        run_all(mistake.target, mutant(mistake))
    assert hints_in(str(failure.value)) == [mistake.hint]


@pytest.mark.parametrize("topic", TOPICS)
def test_catalogue_is_large_and_distinct(topic):
    names = [k.name for k in MODULES[topic].MISTAKES]
    assert len(names) >= 10 and len(set(names)) == len(names)
    assert len({k.hint for k in MODULES[topic].MISTAKES}) == len(names)


# ---------------------------------------------------------------- templates and catalogues


def _template_calls(name: str) -> set[str]:
    text = (exercises.TEMPLATES / f"{name}.md").read_text()
    return set(re.findall(r"^(check_\w+)\(", text, re.M))


@pytest.mark.parametrize("topic", TOPICS)
def test_every_check_a_template_calls_is_registered(topic):
    registered = {spec.check.__name__ for specs in core.REGISTRY.values() for spec in specs
                  if spec.module == MODULES[topic].__name__}
    called = _template_calls(EXERCISES[topic])
    assert called and called <= registered, called - registered
    assert registered <= called, f"registered but never graded: {registered - called}"


def test_the_checks_modules_are_the_exercises_topics():
    """Each template has its checks module, and every module that registers checks is one."""
    registry.load_all()
    registering = {spec.module for specs in core.REGISTRY.values() for spec in specs}
    assert registering == {f"course.checks.{topic}" for topic in TOPICS}


def _parts(exercise: str) -> dict[str, int]:
    """Solution object -> the part that copies it (1 for the template's first `:part:` cell)."""
    nb = jupytext.read(exercises.TEMPLATES / f"{exercise}.md", fmt="md:myst")
    copied = [str(c.metadata["copy"]).split() for c in nb.cells if "part" in c.metadata]
    return {target: n for n, targets in enumerate(copied, 1) for target in targets}


@pytest.mark.parametrize("topic", TOPICS)
def test_each_check_names_the_part_of_the_template_that_copies_its_target(topic):
    parts = _parts(EXERCISES[topic])
    specs = [spec for specs in core.REGISTRY.values() for spec in specs
             if spec.module == MODULES[topic].__name__]
    assert specs
    for spec in specs:
        assert parts.get(spec.target) == spec.part, (spec.check.__name__, spec.target)
        for used in spec.uses:  # an earlier part, or one of the same part
            assert parts.get(used, spec.part + 1) <= spec.part, (spec.check.__name__, used)


def test_checks_for_finds_a_target_through_the_registry():
    """In a fresh interpreter, a target whose module names no checks module (a check of
    `solutions.generation.generate` lives in `course.checks.decoder`) still finds its checks."""
    target = min(core.REGISTRY, key=lambda t: t.split(".")[1] in TOPICS)
    code = ("import json, sys\nfrom course.checks.core import checks_for\n"
            "print(json.dumps([c.__qualname__ for c in checks_for(sys.argv[1])]))")
    out = subprocess.run([sys.executable, "-c", code, target], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == [spec.check.__qualname__ for spec in core.REGISTRY[target]]


@pytest.mark.parametrize("topic", TOPICS)
def test_every_find_lands_in_exactly_one_region_the_learner_writes(topic):
    nb = exercises.instructor_notebook(exercises.TEMPLATES / f"{EXERCISES[topic]}.md")
    regions = [core.code_only(region) for c in nb.cells
               if c.metadata.get("nbgrader", {}).get("solution")
               for region in re.findall(rf"{exercises.BEGIN}\n(.*?){exercises.END}", c.source,
                                        re.S)]
    for mistake in MODULES[topic].MISTAKES:
        hits = [r for r in regions if mistake.find in r]
        assert len(hits) == 1, f"{mistake.name}: in {len(hits)} regions the learner writes"
        assert hits[0].count(mistake.find) == 1, mistake.name


@pytest.mark.parametrize("topic,mistake", MISTAKES, ids=[k.name for _, k in MISTAKES])
def test_catalogue_matches_code_not_comments(topic, mistake):
    source = core.source_of(mistake.target)
    lines = source.splitlines(keepends=True)
    for tok in reversed(list(tokenize.generate_tokens(io.StringIO(source).readline))):
        if tok.type == tokenize.COMMENT:  # every comment reworded
            row, col = tok.start
            lines[row - 1] = lines[row - 1][:col] + "# said otherwise\n"
    reworded = "".join(lines)
    assert reworded != source or "#" not in source
    core.edit(core.code_only(reworded), mistake.find, mistake.replace)


# ---------------------------------------------------------------- the engine itself


def test_exceptions_compare_by_class_and_message():
    assert Raised("RuntimeError", "shape mismatch at 0x7f01") == \
        Raised("RuntimeError", "shape  mismatch at 0x0002")
    assert Raised("RuntimeError", "shape mismatch") != Raised("RuntimeError", "index error")
    assert Raised("ValueError", "x") != Raised("TypeError", "x")
    assert core.same(Raised("ValueError", "any text"), core.Raises("ValueError"))


def test_a_difference_is_shown_where_it_is_with_the_digits_that_tell_it():
    """-inf against a number is pointed at where it first occurs, a number gets the digits that
    tell it from the other, and a dtype that differs is said in words."""
    import torch

    inf = float("-inf")
    want = torch.tensor([[3.0, 1.0, inf, inf, inf]])
    got = torch.tensor([[3.0, 1.0, inf, 0.8992, inf]])
    with pytest.raises(CheckFailed) as failure:
        core.compare(None, lambda _: got, want, what="filter")
    assert "first element whose finiteness differs is at index (0, 3): expected -inf, got " \
        "0.8992" in str(failure.value)
    want = torch.tensor([-0.13228612, 2.0], dtype=torch.float64)
    with pytest.raises(CheckFailed) as failure:
        core.compare(None, lambda _: want + 2e-7, want, what="x", rtol=1e-7, atol=1e-9)
    assert "index (0,): expected -0.1322861, got -0.1322859" in str(failure.value)
    with pytest.raises(CheckFailed) as failure:
        core.compare(None, lambda _: want.float(), want, what="x")
    assert "you returned float32; expected float64\n  (the values agree" in str(failure.value)


def test_top_k_keeping_one_too_many_is_shown_at_the_token_it_keeps():
    from course.checks.decoder import check_top_k

    top_k = _learner("import torch\n\ndef filter_top_k(logits, k):\n"
                     "    kth = torch.sort(logits, descending=True).values[..., k:k + 1]\n"
                     "    return logits.masked_fill(logits < kth, float('-inf'))\n",
                     "filter_top_k")
    with pytest.raises(CheckFailed) as failure:
        check_top_k(top_k)
    assert re.search(r"expected -inf, got -?\d", str(failure.value)), str(failure.value)


def _learner(source: str, name: str, namespace: dict | None = None):
    """Define `name` as a notebook cell would (its source is known to linecache)."""
    filename = f"<learner cell {name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {} if namespace is None else namespace
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]


def test_learner_exception_is_shown_with_their_line():
    from course.checks.attention import check_attention_scores

    scores = _learner("import torch\n\ndef attention_scores(q, k):\n"
                      "    return q @ k / q.size(-1) ** 0.5\n", "attention_scores")
    with pytest.raises(CheckFailed) as failure:
        check_attention_scores(scores)
    message = str(failure.value)
    assert "raised RuntimeError" in message
    assert "line 4: return q @ k / q.size(-1) ** 0.5" in message
    assert "Likely mistake" not in message  # no catalogued mutant raises this


def test_not_implemented_is_reported_plainly():
    from course.checks.tokenization import check_merge

    merge = _learner("def merge(ids, pair, new_id):\n    raise NotImplementedError()\n", "merge")
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check_merge(merge)


ATTENTION_NOTEBOOK = """
import math
import torch
import torch.nn.functional as F

def attention_scores(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))

def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=SOFTMAX_AXIS)
    return weights if mask is None else weights * mask

def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    weights = masked_softmax(attention_scores(q, k), mask)
    if dropout_p > 0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ V_OR_K, weights
"""


def _attention_notebook(axis: int, values: str) -> dict:
    namespace: dict = {}
    source = ATTENTION_NOTEBOOK.replace("SOFTMAX_AXIS", str(axis)).replace("V_OR_K", values)
    _learner(source, "scaled_dot_product_attention", namespace)
    return namespace


def test_an_earlier_part_is_the_reference_while_a_later_part_is_checked(capsys):
    from course.checks.attention import check_attention, check_masked_softmax

    ns = _attention_notebook(axis=-2, values="v")  # masked_softmax wrong, attention right
    with pytest.raises(CheckFailed):
        check_masked_softmax(ns["masked_softmax"])
    check_attention(ns["scaled_dot_product_attention"], hidden=True)  # passes: costs once
    assert "Part 2 (`masked_softmax`) fails first; this part was checked with the reference " \
        "Part 2." in capsys.readouterr().out
    assert ns["masked_softmax"].__name__ == "masked_softmax"  # the learner's name is restored
    assert ns["masked_softmax"] is not copy_of("solutions.attention.masked_softmax")

    ns = _attention_notebook(axis=-2, values="k")  # both wrong: the message says which first
    with pytest.raises(CheckFailed) as failure:
        check_attention(ns["scaled_dot_product_attention"])
    message = str(failure.value)
    assert "Part 2 (`masked_softmax`) fails first" in message
    assert hints_in(message) == [
        MODULES["attention"].MISTAKES[[m.name for m in MODULES["attention"].MISTAKES]
                                      .index("weights_times_keys")].hint]


def test_a_helper_written_inline_is_named_as_the_helper_mistake():
    from course.checks.attention import MISTAKES, check_mha_self

    source = core.source_of("solutions.attention.MultiHeadAttention")
    inline = source.replace("split_heads(",  # heads cut by one reshape, without a transpose
                            "(lambda t, H: t.reshape(t.size(0), H, t.size(1), -1))(")
    assert inline != source
    ns = dict(vars(importlib.import_module("solutions.attention")))
    ns["__name__"] = "notebook"
    cls = _learner(inline, "MultiHeadAttention", ns)
    with pytest.raises(CheckFailed) as failure:
        check_mha_self(cls)
    hint = next(m.hint for m in MISTAKES if m.name == "split_without_transpose")
    assert hints_in(str(failure.value)) == [hint]


def test_probes_run_once_per_case():
    """Each case calls the learner's class once (the oracle's result is computed separately),
    and a passing check runs no mutant."""
    from course.checks.attention import check_mha_self

    made = []
    reference = copy_of("solutions.attention.MultiHeadAttention")

    class Counted(reference):
        def __init__(self, *args, **kwargs):
            made.append(args)
            super().__init__(*args, **kwargs)

    before = len(catalogue.MUTANT_RESULTS)
    check_mha_self(Counted, hidden=True)
    assert len(made) == 8 * 2  # eight cases, each with need_weights True and False
    assert len(catalogue.MUTANT_RESULTS) == before


def test_subclass_of_reference_counts_as_imported():
    from solutions.tokenization_char import CharTokenizer

    class Mine(CharTokenizer):
        pass

    with pytest.raises(CheckFailed):
        require_own(Mine, "CharTokenizer")


def test_a_class_derived_from_a_given_class_is_the_learners_own():
    """Exercise 12's GroupedQueryAttention derives from the given MultiHeadAttention: the
    learner's own; a class holding the reference's method is not."""
    from solutions.attention import MultiHeadAttention
    from solutions.modern import GroupedQueryAttention

    class Mine(MultiHeadAttention):
        def forward(self, x):
            return x

    require_own(Mine, "GroupedQueryAttention")
    for lifted in (type("Lifted", (MultiHeadAttention,),
                        {"forward": GroupedQueryAttention.forward}),
                   type("Sub", (GroupedQueryAttention,), {})):
        with pytest.raises(CheckFailed, match="imported from the reference"):
            require_own(lifted, "GroupedQueryAttention")


SINUSOIDS = """
import math
import torch

def sinusoidal_table(max_len, d_model, dtype=torch.float32, device=None):
    if d_model % 2:
        raise ValueError("d_model must be even")
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    for pos in range(max_len):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            table[pos, FIRST] = math.cos(angle)
            table[pos, SECOND] = math.sin(angle)
    return table.to(dtype=dtype, device=device)
"""


@pytest.mark.parametrize("first, second, name", [("2 * i", "2 * i + 1", "sin_cos_swapped"),
                                                 ("d_model // 2 + i", "i",
                                                  "sin_cos_concatenated")])
def test_a_mistake_written_another_way_gets_the_same_hint(first, second, name):
    """Loops over positions and features, not the reference's vectorised code: the mistake gets
    its hint (from the mutant's result or, failing that, from its effect on the table)."""
    from course.checks.embeddings import MISTAKES, check_sinusoidal_table

    table = _learner(SINUSOIDS.replace("FIRST", first).replace("SECOND", second),
                     "sinusoidal_table")
    with pytest.raises(CheckFailed) as failure:
        check_sinusoidal_table(table)
    assert hints_in(str(failure.value)) == [next(m.hint for m in MISTAKES if m.name == name)]
    right = SINUSOIDS.replace("FIRST", "2 * i + 1").replace("SECOND", "2 * i")
    check_sinusoidal_table(_learner(right, "sinusoidal_table"))  # the loops themselves are fine


def test_the_two_attention_paths_disagreeing_is_said():
    """A fused path written wrong in a way no catalogue lists (no scaling) is reported as the
    fused path disagreeing with the explicit path that passed."""
    from course.checks.attention import check_mha_self

    source = core.source_of("solutions.attention.MultiHeadAttention")
    fused = "F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)"
    assert fused in source
    ns = dict(vars(importlib.import_module("solutions.attention")))
    ns["__name__"] = "notebook"
    cls = _learner(source.replace(fused, fused[:-1] + ", scale=1.0)"), "MultiHeadAttention", ns)
    with pytest.raises(CheckFailed, match="the fused path disagrees with the explicit one"):
        check_mha_self(cls)
