"""Benchmarks, each reported as ratios against a baseline: `python -m course bench NAME`.

A benchmark is a function `run(quick: bool = False) -> list[dict]`; each row holds a `name`, our
measurement, the baseline's, their `ratio`, the `target`, whether both computed the same result
(`same`) and whether the target is met (`ok`).
Timings are measured here, never asserted in tests.
"""

from __future__ import annotations

from course.bench import attention, capstone, encoder, generation, grading, tokenization, train

BENCHES = {"tokenization": tokenization.run, "attention": attention.run, "encoder": encoder.run,
           "train": train.run, "generation": generation.run, "grading": grading.run,
           "capstone": capstone.run}


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
