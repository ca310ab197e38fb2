"""Capstone benchmark: `python -m course bench capstone`. One row: the learner's GPT, collected
from the instructor notebooks (every answer written) and built with ``fused=False``, trained by
the collected ``fit`` on Chapter 9's floor run; its validation loss minus the exact floor
(target <= 0.05 nats per word) and its training wall time (target < 180 s on 2 CPU cores), with
the whole run's time (collecting, checking every part, the spy, sampling) beside it. `quick`:
30 steps, no target.
"""

from __future__ import annotations

import time


def run(quick: bool = False) -> list[dict]:
    from course.capstone.run import capstone, workspace
    from course.checks.capstone import FLOOR_MARGIN, FLOOR_SECONDS

    start = time.perf_counter()
    result = capstone(workspace("/nonexistent-workspace"), max_iters=30 if quick else None)
    total = time.perf_counter() - start
    ok = result.gap <= FLOOR_MARGIN and result.seconds < FLOOR_SECONDS
    return [{"name": "capstone: your GPT to the grammar floor" + (" (quick)" if quick else ""),
             "loss - floor": result.gap, "training s": result.seconds, "total s": total,
             "target": f"<= {FLOOR_MARGIN} nats, < {FLOOR_SECONDS} s",
             "ok": ok if not quick else True}]
