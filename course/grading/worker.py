"""The only process that runs a learner's code while grading: an untrusted worker in a sandbox.

Started by the trusted judge (`course.grading.process.Worker`) inside bubblewrap, with no view
of the reference solutions' graded objects, the checks, the hidden tests, the instructor notebook
or the gradebook. It answers these requests on its standard input/output:

- ("run", source): run one of the learner's cells (IPython syntax); reply with its printed text
  and its error, if any;
- ("probe", name, payload): unpickle a probe sent by the judge, apply it to the learner's
  object `name` and reply with the result, as tensors and plain containers only;
- ("bind", name, payload) / ("restore", name): while a later part is checked, the earlier
  parts it calls are the reference versions (sent by the judge once those parts are judged);
- ("reference", name, payload): every test of a part is judged; from now on the graded
  object's stub in `solutions` (what given helpers call) is this reference.

The judge decides every score from these replies; nothing here can change how they are judged.

Threat model of the reply channel. The learner's code runs in this process with every power it
has (frames, `gc`, ctypes, /proc/self/fd): it can reach the reply stream, read the requests,
and write any frame. No secret kept here could authenticate a reply, since whatever this file
can read the learner's code can read too, and a separate trusted process would gain nothing:
a probe's result is computed here, by the learner's code, so the value in a genuine reply is
already the learner's to choose. The judge therefore trusts nothing a reply says: each one is
bounded (header and payload sizes), parsed as plain data only (JSON, or tensors through
`torch.load(weights_only=True)`; never unpickled), walked within a node and byte budget before a
check reads it (shared or deep structures refused), and its messages are cut to a fixed length;
a reply that is not one this file sends ends the worker; the trusted process has a memory
limit; the expected results are computed by the judge from the references it alone holds. A
forged reply can thus claim only what the learner's own function could have returned for this
notebook's probes (the same as hard-coding a result), in this worker, which grades no one else.
The limit: what a probe's own code observes here (a call it watches for, an input it sees
left unchanged) is only as true as the learner's code lets it be, forged reply or not.
This file is run as a script and imports nothing from the course. Its arguments name modules to
import before the first request (the exercise's own, e.g. torch), so a worker started ahead of
its submission has them ready; a result is sent back with torch only when torch is loaded.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import struct
import sys
import traceback

LIMIT = 20_000  # characters of printed text kept per cell
MISSING = object()


def _read(stream) -> bytes | None:
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack("!I", head)
    return stream.read(size)


def _write(stream, header: dict, payload: bytes = b"") -> None:
    data = json.dumps(header).encode()
    stream.write(struct.pack("!II", len(data), len(payload)) + data + payload)
    stream.flush()


class _Unsupported(Exception):
    pass


def _plain(value, depth: int = 0):
    """The result as tensors and plain containers (what the judge can read back safely).
    Without torch loaded, no result can hold a tensor: torch is not imported for it."""
    torch = sys.modules.get("torch")

    if depth > 20:
        raise _Unsupported("a result nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if torch is not None:
        if isinstance(value, torch.dtype):
            return value
        if isinstance(value, torch.Tensor):
            return (value.detach().cpu().clone() if value.device.type != "meta"
                    else value.detach())
        if isinstance(value, torch.Size):
            return tuple(value)
    if isinstance(value, (list, tuple)):
        items = [_plain(v, depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {_plain(k, depth + 1): _plain(v, depth + 1) for k, v in value.items()}
    raise _Unsupported(f"a result of type {type(value).__name__}")


def _tagged(value):
    """A torch-free result as JSON: containers and bytes tagged (read by the judge's
    `untag`, which builds nothing but these plain types)."""
    if isinstance(value, bytes):
        return {"b": value.hex()}
    if isinstance(value, list):
        return {"l": [_tagged(v) for v in value]}
    if isinstance(value, tuple):
        return {"t": [_tagged(v) for v in value]}
    if isinstance(value, dict):
        return {"d": [[_tagged(k), _tagged(v)] for k, v in value.items()]}
    return value


def _encode(value) -> tuple[dict, bytes]:
    """(header, payload) of a probe's plain result."""
    if "torch" in sys.modules:
        import torch

        buffer = io.BytesIO()
        torch.save(value, buffer)
        return {"status": "ok", "format": "torch"}, buffer.getvalue()
    return {"status": "ok", "format": "json"}, json.dumps(_tagged(value)).encode()


def main() -> int:
    requests, replies = sys.stdin.buffer, os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # The learner's prints must never reach the reply channel.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    import importlib
    import pickle

    import cloudpickle  # noqa: F401  (functions pickled by value need it loaded)
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    for module in sys.argv[1:]:  # the exercise's own modules, before any request
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001  (the learner's import will say what is wrong)
            pass

    shell = InteractiveShell.instance()  # cells compile as in a notebook (no future flags)
    namespace = shell.user_ns
    builtins.__course_learner__ = lambda name: namespace[name]
    builtins.__course_reference__ = {}  # graded parts already judged -> their reference
    saved: dict = {}
    while True:
        message = _read(requests)
        if message is None:
            return 0
        kind, _, body = message.partition(b"\0")
        if kind == b"run":
            with capture_output(display=False) as captured:
                result = shell.run_cell(body.decode(), store_history=False, silent=False)
            error = result.error_before_exec or result.error_in_exec
            text = (captured.stdout + captured.stderr)[-LIMIT:]
            header = {"text": text}
            if error is not None:
                header["error"] = [type(error).__name__, str(error)[:2000]]
            _write(replies, header)
        elif kind == b"probe":
            name_bytes, _, payload = body.partition(b"\0")
            name = name_bytes.decode()
            try:
                probe = pickle.loads(payload)
                if name not in namespace:
                    raise NameError(f"name '{name}' is not defined")
                value = _plain(probe(namespace[name]))
            except NotImplementedError:
                _write(replies, {"status": "not-implemented"})
                continue
            except _Unsupported as error:
                _write(replies, {"status": "raised", "kind": "TypeError",
                                 "message": f"the grader cannot read back {error}"})
                continue
            except BaseException as error:  # the learner's code may raise anything
                status = "check-failed" if type(error).__name__ == "CheckFailed" else "raised"
                _write(replies, {"status": status, "kind": type(error).__name__,
                                 "message": str(error)[:4000],
                                 "where": traceback.format_exc(limit=-3)[-2000:]})
                continue
            try:
                header, payload = _encode(value)
            except Exception as error:  # noqa: BLE001  (e.g. a float key JSON cannot hold)
                _write(replies, {"status": "raised", "kind": "TypeError",
                                 "message": f"the grader cannot read back {error}"})
                continue
            _write(replies, header, payload)
        elif kind == b"has":
            _write(replies, {"has": body.decode() in namespace})
        elif kind == b"bind":  # the judge lends a reference earlier part for one check
            name_bytes, _, payload = body.partition(b"\0")
            name = name_bytes.decode()
            saved.setdefault(name, namespace.get(name, MISSING))
            try:
                namespace[name] = pickle.loads(payload)
                _write(replies, {"ok": True})
            except Exception as error:  # noqa: BLE001
                _write(replies, {"ok": False, "error": f"{type(error).__name__}: {error}"})
        elif kind == b"reference":  # a part is judged: given helpers now call its reference
            name_bytes, _, payload = body.partition(b"\0")
            try:
                builtins.__course_reference__[name_bytes.decode()] = pickle.loads(payload)
                _write(replies, {"ok": True})
            except Exception as error:  # noqa: BLE001
                _write(replies, {"ok": False, "error": f"{type(error).__name__}: {error}"})
        elif kind == b"restore":
            name = body.decode()
            value = saved.pop(name, MISSING)
            if value is MISSING:
                namespace.pop(name, None)
            else:
                namespace[name] = value
            _write(replies, {"ok": True})
        else:
            _write(replies, {"error": ["ProtocolError", f"unknown request {kind!r}"]})


if __name__ == "__main__":
    sys.exit(main())
