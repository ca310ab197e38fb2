"""Benchmarks, each reported as ratios against a baseline: `python -m course bench NAME`.

A benchmark is a function `run(quick: bool = False) -> list[dict]`; each row holds a `name`, our
measurement, the baseline's, their `ratio`, the `target`, whether both computed the same result
(`same`) and whether the target is met (`ok`).
Timings are measured here, never asserted in tests. `unavailable(name)` says why a benchmark
cannot run on this machine (`bench gpu` needs CUDA).
"""

from __future__ import annotations

import importlib


def _lazy(name: str):
    """course.bench.<name>'s run, imported when called: a benchmark needs only its own imports
    (`bench gpu` runs where PyTorch is installed and the graders' packages are not)."""
    def run(quick: bool = False) -> list[dict]:
        return importlib.import_module(f"course.bench.{name}").run(quick=quick)
    return run


BENCHES = {name: _lazy(name) for name in ("tokenization", "attention", "encoder", "train",
                                          "generation", "grading", "capstone", "gpu")}
NEEDS_CUDA = {"gpu"}


def unavailable(name: str) -> str | None:
    """Why benchmark `name` cannot run on this machine, or None."""
    if name in NEEDS_CUDA:
        import torch

        if not torch.cuda.is_available():
            return f"bench {name} needs a CUDA GPU, and PyTorch sees none on this machine"
    return None


def report(rows: list[dict]) -> str:
    """Rows -> a plain-text table, one line per row, columns in order of first appearance."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_cell(row.get(key, "")) for key in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
