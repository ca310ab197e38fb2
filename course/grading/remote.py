"""What crosses between the checks and the learner's worker: a `Remote` handle stands for a
learner object there; a check's probe on it is pickled to the worker (`install`), and only its
plain result comes back (`untag`, `torch.load(weights_only=True)`), never unpickled here.
"""

from __future__ import annotations

import io
import json
import sys

from course.grading.process import Worker, by_value, pickled
from course.grading.runtime import reference_target

# a check that would lend the reference of a part not judged yet (the judge's `Order` judges
# the cell again once that part is)
BEFORE = "this cannot be checked before Part {part} (`{name}`) is graded"


class Remote:
    """Stands for the learner's object `name` inside the worker."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<your {self.name}>"

    def __reduce__(self):  # a probe that captured it finds the learner's object in the worker
        return (eval, (f"__course_learner__({self.name!r})",))


CURRENT: list[Worker] = []
REMOTES: dict[str, Remote] = {}  # one handle per name and notebook, so checks can cache
# Every earlier notebook's handles stay alive: a check's cache keyed by a handle's id() can
# never meet a later notebook (a process grading many notebooks reuses no id).
RETIRED: list[Remote] = []


def remote(name: str) -> Remote:
    return REMOTES.setdefault(name, Remote(name))


class RemoteNamespace:
    """The learner's namespace in the worker, as far as the checks need it: look a name up,
    lend it the reference version of an earlier (already judged) part, give it back."""

    def __init__(self, worker: Worker):
        self.worker = worker

    def get(self, name: str, default=None):
        return remote(name) if self.worker.request(b"has", name.encode())[0]["has"] else default

    def __setitem__(self, name: str, value) -> None:
        if isinstance(value, Remote) and value.name == name:
            self.worker.request(b"restore", name.encode())
            return
        if name in self.worker.ungraded():  # its reference is not the learner's to keep yet
            from course.checks.core import CheckFailed
            from course.checks.engine.registry import part_of

            part = part_of(reference_target(name) or name)
            raise CheckFailed(BEFORE.format(part=part, name=name))
        self.worker.request(b"bind", name.encode() + b"\0" + pickled(value))

    def pop(self, name: str, default=None):
        self.worker.request(b"restore", name.encode())
        return default


def untag(value, depth: int = 0):
    """A torch-free result from the worker (JSON, tagged by the worker's `_tagged`) as the
    plain values it stands for: nothing but None, bool, int, float, str, bytes, list, tuple
    and dict is ever built."""
    if depth > 40:
        raise ValueError("a result nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "b" and isinstance(inner, str):
            return bytes.fromhex(inner)
        if tag in ("l", "t") and isinstance(inner, list):
            items = [untag(v, depth + 1) for v in inner]
            return items if tag == "l" else tuple(items)
        if tag == "d" and isinstance(inner, list):
            return {untag(k, depth + 1): untag(v, depth + 1) for k, v in inner}
    raise ValueError("the notebook's reply is not a plain result")


NODES = 1_000_000  # containers and items in one result
BYTES = 512 * 2**20  # tensor and text bytes in one result
MESSAGE_CHARS = 2000  # of a failure the learner's code raised


def walked(value):
    """`value` once walked within the node and byte budgets: a result that holds one container
    twice (a tree of shared lists, small to send and huge to print) or nests too deep is
    refused before any check reads it."""
    seen: set[int] = set()
    nodes = size = 0
    todo = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        nodes += 1
        if nodes > NODES or depth > 40:
            raise ValueError("the notebook's result is too large or nested too deeply")
        if isinstance(item, (list, tuple, dict)):
            if item and id(item) in seen:  # (the worker sends no shared container of its own)
                raise ValueError("the notebook's result holds the same container twice")
            seen.add(id(item))
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            todo += [(child, depth + 1) for child in children]
        elif isinstance(item, (str, bytes)):
            size += len(item)
        elif hasattr(item, "element_size") and hasattr(item, "numel"):  # a tensor
            size += item.element_size() * item.numel()
        if size > BYTES:
            raise ValueError("the notebook's result is too large")
    return value


def _replay(header: dict, payload: bytes):
    """A zero-argument function that gives back what the probe gave in the worker."""
    from course.checks.core import CheckFailed

    status = header.get("status")

    def replay():
        if status == "ok" and header.get("format") == "json":
            return walked(untag(json.loads(payload)))
        if status == "ok":
            import torch

            return walked(torch.load(io.BytesIO(payload), weights_only=True))
        if status == "not-implemented":
            raise NotImplementedError
        if status == "check-failed":
            raise CheckFailed(str(header.get("message", ""))[:MESSAGE_CHARS])
        kind = str(header.get("kind", "Exception"))[:100]
        error = type(kind if kind.isidentifier() else "Exception", (Exception,), {})(
            str(header.get("message", ""))[:MESSAGE_CHARS])
        raise error

    return replay


def install() -> None:
    """Route the checks' probes on `Remote` objects to the worker (idempotent)."""
    from course.checks import core

    original = getattr(core.call, "__wrapped_call__", core.call)

    def judged_call(obj, probe, *args, **kwargs):
        if isinstance(obj, Remote):
            staged = isinstance(probe, core.Staged)
            header, payload = CURRENT[-1].probe(obj.name, probe.first if staged else probe)
            return original(_replay(header, payload),
                            (lambda replay: probe.then(replay())) if staged else
                            (lambda replay: replay()), *args, **kwargs)
        return original(obj, probe, *args, **kwargs)

    judged_call.__wrapped_call__ = original
    if hasattr(core, "_namespace"):  # the checks rebind earlier parts in the learner's namespace
        namespace_of = getattr(core._namespace, "__wrapped_namespace__", core._namespace)

        def judged_namespace(obj):
            if isinstance(obj, Remote):
                return RemoteNamespace(CURRENT[-1])
            return namespace_of(obj)

        judged_namespace.__wrapped_namespace__ = namespace_of
        core._namespace = judged_namespace
    for name, module in list(sys.modules.items()):
        if name.startswith("course.checks") and getattr(module, "call", None) in (original,
                                                                                 core.call):
            module.call = judged_call
    by_value()
