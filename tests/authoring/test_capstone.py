"""The capstone: a workspace of the instructor notebooks (every answer written) is collected into
the learner's package, which trains to the grammar floor with no reference body running; a
catalogued mistake in any exercise stops the capstone (`python -m course capstone` too) and
`train --mine` with that exercise and part named; `train --mine` killed mid-run resumes to the same weights."""

from __future__ import annotations

import ast
import importlib
import json
import shutil
from pathlib import Path

import nbformat
import pytest
import torch
from killed_run import killed_and_resumed

from course.__main__ import main
from course.capstone import collect as collecting
from course.capstone.preflight import PartFails, preflight
from course.capstone.run import ReferenceRan, build_gpt, capstone, package_of, spy_step
from course.checks import core
from course.datasets.grammar import Grammar

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "exercises" / "source").glob("0[1-9]_*/*.ipynb"))


def make_workspace(folder: Path) -> Path:
    """A flat workspace as `make lab` lays it out, of the instructor notebooks."""
    folder.mkdir(parents=True, exist_ok=True)
    for nb in NOTEBOOKS:
        shutil.copy(nb, folder / nb.name)
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    folder = make_workspace(tmp_path_factory.mktemp("workspace"))
    package_of(folder)  # collected and every part checked once (verdicts remembered)
    return folder


@pytest.fixture(scope="module")
def grammar_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "grammar.txt"
    path.write_text(Grammar().text(Grammar().corpus(12_000, seed=0)))
    return path


def test_collected_package_is_the_learners_code(workspace):
    package = workspace / collecting.PACKAGE
    assert collecting.fresh(workspace)
    assert {p.stem for p in package.glob("*.py")} >= {"attention", "decoder", "training"}
    for path in package.rglob("*.py"):  # nothing imports the reference
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                assert not any(n.startswith("solutions") for n in names), (path, names)
    mine = collecting.load(package)
    assert mine.GPT.__module__.endswith(".decoder") and mine.train_step.__module__.endswith(
        ".training")
    assert mine.given.model.MultiHeadAttention is mine.MultiHeadAttention  # given code -> yours
    assert collecting.unwritten(workspace) == []


def test_capstone_trains_the_learners_gpt_to_the_floor(workspace):
    result = capstone(workspace)
    assert result.gap < 0.05, result
    words = result.text.split()
    assert len(words) == 25 and set(words) <= set(Grammar().vocab)
    assert result.losses[-1] < result.losses[0] - 1


def test_spy_sees_no_reference_body_and_catches_one(workspace):
    mine = package_of(workspace)
    grammar = Grammar()
    data = {"train": grammar.corpus(2000, seed=0)}
    sizes = dict(block_size=8, n_layer=1, n_head=2, n_embd=16)
    spy = spy_step(mine, build_gpt(mine, grammar.vocab_size, **sizes), data,
                   workspace / collecting.PACKAGE)
    assert {Path(f).stem for f in spy.under(workspace)} >= {"attention", "decoder", "training",
                                                           "normalization", "feedforward"}
    reference = importlib.import_module("solutions.attention")
    module = vars(mine)["attention"]
    mine_split = module.split_heads
    module.split_heads = reference.split_heads   # one part quietly taken from the reference
    try:
        with pytest.raises(ReferenceRan, match="attention.py"):
            spy_step(mine, build_gpt(mine, grammar.vocab_size, **sizes), data,
                     workspace / collecting.PACKAGE)
    finally:
        module.split_heads = mine_split


def _first_landing_mistake(notebook: Path):
    """The first catalogued mistake of the notebook's topic that lands in one of its graded
    cells, and the notebook with it made."""
    topic = notebook.stem.split("_", 1)[1]
    nb = nbformat.read(notebook, as_version=4)
    for mistake in importlib.import_module(f"course.checks.{topic}").MISTAKES:
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("solution"):
                made = core.made(cell.source, mistake=mistake)
                if made != cell.source:
                    cell.source = made
                    return mistake, cell.metadata["nbgrader"]["grade_id"], nb
    raise AssertionError(f"no mistake of {topic} lands in a graded cell")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_a_mistake_is_named_by_exercise_and_part(workspace, tmp_path, notebook, grammar_file,
                                                 capsys):
    mistake, part, nb = _first_landing_mistake(notebook)
    folder = tmp_path / "ws"
    shutil.copytree(workspace, folder)
    nbformat.write(nb, folder / notebook.name)  # newer than the package: collected again
    number, name = int(notebook.stem[:2]), mistake.target.split(".")[2]
    expected = f"your {name} from exercise {number} ({notebook.stem[3:]}), part "
    with pytest.raises(PartFails) as failure:
        capstone(folder)
    assert str(failure.value).startswith(expected) and f"({part}) fails" in str(failure.value)
    capsys.readouterr()
    assert main(["train", "--mine", str(folder), "--data", str(grammar_file), "--out",
                 str(tmp_path / "out"), "--max-iters", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert expected in err and f"({part}) fails" in err and not (tmp_path / "out").exists()
    assert main(["capstone", str(folder)]) == 2
    assert expected in capsys.readouterr().err


def test_an_unwritten_part_is_named(workspace, tmp_path):
    folder = tmp_path / "ws"
    shutil.copytree(workspace, folder)
    path = folder / "06_normalization.ipynb"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "layernorm":
            cell.source = core.made(cell.source, blank=True)
    nbformat.write(nb, path)
    with pytest.raises(PartFails, match=r"your LayerNorm from exercise 6 \(normalization\), "
                                        r"part 2 \(layernorm\) is not written yet"):
        preflight(collecting.load(collecting.collect(folder)))
    assert [p.part for p in collecting.unwritten(folder)] == ["layernorm"]


def test_exercises_the_model_does_not_run_may_be_unwritten(workspace, tmp_path):
    folder = tmp_path / "ws"
    shutil.copytree(workspace, folder)
    release = ROOT / "exercises" / "release"
    for name in ("01_tokenization", "07_encoder"):  # as released: unwritten
        shutil.copy(release / name / f"{name}.ipynb", folder)
    left = preflight(collecting.load(collecting.collect(folder)))
    assert {p.exercise for p in left} == {"01_tokenization", "07_encoder"}
    # ModelConfig(position="sinusoidal") builds the table with the learner's sinusoidal_table
    shutil.copy(release / "02_embeddings" / "02_embeddings.ipynb", folder)
    with pytest.raises(PartFails, match=r"^your sinusoidal_table\b.* from exercise 2 "
                                        r"\(embeddings\), part \d \(\w+\) is not written yet"):
        preflight(collecting.load(collecting.collect(folder)))


def test_train_mine_killed_resumes_to_the_same_weights(workspace, tmp_path, grammar_file):
    common = ["--mine", workspace, "--data", grammar_file, "--max-iters", 6, "--eval-every", 6,
              "--ckpt-every", 1, "--quiet", "--seed", "2"]
    a, b = killed_and_resumed(tmp_path, common, 6)
    assert a["step"] == b["step"] == 6 and a["mine"] == str(workspace)
    assert a["model_config"]["fused"] is False
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["losses"] == b["losses"]
    metrics = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(x)["step"] for x in metrics]
    assert rows == [0, 6]
