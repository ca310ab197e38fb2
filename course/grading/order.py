"""The order in which an exercise's parts are judged: a part is judged (and the worker gets
its reference) once every test cell that mentions it has been; a test cell that reached a
later part before it was judged waits for it.
"""

from __future__ import annotations

import contextlib
import re

from course.authoring import source
from course.grading import runtime
from course.grading.process import Worker, WorkerGone
from course.grading.remote import BEFORE
from course.grading.stand_in import MESSAGE


def test_mentions(source_nb) -> dict[str, set[str]]:
    """grade id of each test cell -> the graded names its source mentions (the parts it
    tests; a part is judged once every test cell that mentions it has been)."""
    graded = runtime.graded_names(source_nb)
    return {cell.metadata["nbgrader"]["grade_id"]: source.names_used(cell.source) & graded
            for cell in runtime.code_cells(source_nb, test=True)}


# "merge is imported from the reference ...": a probe reached a part not judged yet;
# "... before Part 2 (`merge`) is graded": a check would have lent it
NEEDS = re.compile(r"(\w+)" + re.escape(MESSAGE[len("{name}"):MESSAGE.index(".")]) + "|"
                   + re.escape(BEFORE[:BEFORE.index("{part}")]) + r"\S+ \(`(\w+)`\)")


class Order:
    """When each part is judged, and test cells that must wait for a later part.

    A part is judged once every test cell that mentions it has been; then the worker gets its
    reference (`Worker.judged`). A test cell whose probe reached a later part the learner has
    not written yet (given code calling it: GPT's cached forward calls the KV-cache attention
    of Part 2) waits, and is judged again as soon as that part is judged, so it meets the
    reference there as it would in-process. Its own parts stay unjudged meanwhile, so their
    reference never reaches the worker while they are still tested.
    """

    def __init__(self, mentions: dict[str, set[str]]):
        self.mentions = mentions
        self.pending = {name: {g for g, names in mentions.items() if name in names}
                        for names in mentions.values() for name in names}
        self.closed: set[str] = set()
        self.waiting: list[tuple[object, set[str], object]] = []  # (cell, names, judge)

    def _needs(self, cell) -> set[str]:
        """Later parts this cell's failures say it reached before they were judged."""
        own = self.mentions.get(cell.metadata["nbgrader"].get("grade_id"), set())
        text = " ".join(str(o.get("evalue", "")) for o in cell.outputs
                        if o.get("output_type") == "error")
        return {n for pair in NEEDS.findall(text) for n in pair
                if n and n in self.pending and n not in self.closed and n not in own}

    def judge(self, cell, run, worker: Worker) -> None:
        cell.outputs = run(cell)
        needs = self._needs(cell)
        if needs:
            self.waiting.append((cell, needs, run))
        else:
            self._done(cell, worker)

    def _done(self, cell, worker: Worker) -> None:
        grade_id = cell.metadata["nbgrader"].get("grade_id")
        for name in sorted(self.mentions.get(grade_id, set())):
            self.pending[name].discard(grade_id)
            if not self.pending[name] and name not in self.closed:
                self.closed.add(name)
                with contextlib.suppress(WorkerGone):
                    worker.judged(name)
        for entry in list(self.waiting):
            waiting_cell, needs, run = entry
            if needs <= self.closed and entry in self.waiting:
                self.waiting.remove(entry)
                self.judge(waiting_cell, run, worker)
