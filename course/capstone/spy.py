"""A spy on which Python code runs: proof that no body of the reference (``solutions/``) runs
while the learner's model trains.

    with Spy() as spy:
        loss = train_step(model, ...)           # forward, backward and the optimizer step
    spy.files  # every source file a Python function that ran was defined in
    spy.reference()  # those under solutions/: must be empty

It records the code object of every Python call (``sys.setprofile``, on every thread, so the
autograd engine's threads are seen too); torch's own C++ kernels are not Python calls.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

SOLUTIONS = Path(__file__).resolve().parents[2] / "solutions"


class Spy:
    """Record the source files of every Python function called while active."""

    def __init__(self):
        self.files: set[str] = set()

    def _profile(self, frame, event, arg):
        if event == "call":
            self.files.add(frame.f_code.co_filename)

    def __enter__(self) -> Spy:
        self._saved = sys.getprofile(), threading.getprofile()
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc) -> None:
        sys.setprofile(self._saved[0])
        threading.setprofile(self._saved[1])

    def reference(self) -> list[str]:
        """The files under solutions/ whose code ran."""
        return sorted(f for f in self.files if Path(f).resolve().is_relative_to(SOLUTIONS))

    def under(self, folder) -> list[str]:
        """The files under `folder` whose code ran."""
        folder = Path(folder).resolve()
        return sorted(f for f in self.files if Path(f).resolve().is_relative_to(folder))
