"""The checks engine: grade a learner's object against an oracle, and name the mistake.

How a topic module is written (``course/checks/attention.py`` is the worked example)::

    from course.checks.core import Mistake, Raises, check, compare
    from course import oracles

    T = "solutions.attention."

    MISTAKES = [  # >= 10 realistic slips: a find/replace of the reference's CODE, and a hint
        Mistake("softmax_wrong_axis", T + "masked_softmax",
                "torch.softmax(scores, dim=-1)", "torch.softmax(scores, dim=-2)",
                "the softmax runs over the queries (dim=-2); ..."),
        ...
    ]

    @check(T + "masked_softmax", part=2, uses=(T + "attention_scores",))
    def check_masked_softmax(masked_softmax, hidden: bool = False) -> None:
        \"\"\"Weights over the keys sum to 1; masked keys get exactly 0.\"\"\"
        for label, scores, mask in cases(hidden):                 # labels name the case
            expected = oracle_weights(scores, mask)              # the oracle, computed once
            compare(masked_softmax, lambda f: f(scores.clone(), mask), expected,
                    what=f"masked_softmax(scores {shape}, {label})",
                    effects=[("softmax_wrong_axis", lambda got: sums_over(got, -2))],
                    **oracles.tol(scores.dtype))

The rules the engine keeps for every topic:

- ``@check(target, part=N, uses=...)`` registers the check for a dotted solution target
  (``REGISTRY[target]``; several checks may share a target). The decorated check keeps the call
  ``check_x(obj, hidden=False)`` that a template's test cell makes. It refuses an object imported
  from ``solutions``, and it knows the target's mistakes (``MISTAKES`` of the check's module).
- ``uses`` lists the earlier parts the learner's code calls by name (``split_heads`` inside
  ``MultiHeadAttention``). While the check runs, those names in the learner's namespace are the
  reference versions, so one slip costs the points of its own part only. If the learner's own
  earlier part fails its checks, the message (or, on success, a printed note) says
  "Part N fails first; this part was checked with the reference Part N". A helper's mistakes are
  also diagnosed *through* this part (a learner who wrote the helper inline gets its hint).
- ``compare(learner, probe, expected, what=...)``: ``probe(obj)`` runs once on the learner's
  object; ``expected`` is the oracle's result, computed once by the check (a value, or
  ``Raises("ValueError")`` for a case that must raise). A tuple result with ``parts=(names)`` is
  compared part by part and the message names the first part that differs. Mutants run the same
  probe only when the learner's result is wrong, and each (mistake, case) result is cached.
- Exceptions compare by class AND normalised message; when the learner's code raised, the message
  shows their exception and the line of their code that raised it.
- Diagnosis: first the mutants whose output on this case equals the learner's exactly; if none,
  ``effects``: ``(mistake name, predicate(learner's result) -> bool)`` pairs that recognise a
  mistake by what it does (rows that sum to one over the wrong axis, ...), so the same mistake
  written another way gets the same hint.
- A ``find`` matches CODE only: comments are stripped before the edit, so a reworded comment in
  the reference never breaks the catalogue (tests/test_checks.py proves every ``find`` lands
  exactly once, and in exactly one solution cell of the exercise).
- Shared inputs, masks, tolerances and oracles live once in ``course/oracles.py``; the input
  checks the reference code calls (``require_tensor``, ``require_ids``, ...) live once in
  ``solutions/inputs.py`` and the template's import cell gives them to the learner.
- A second catalogue, ``SLIPS = [Slip(name, target, code, mistake name or None), ...]`` (>= 10):
  whole wrong definitions a learner might write (``target`` "solutions.x.Cls.forward" for a
  method the learner writes inside a given class). ``tests/test_slips.py`` runs the exercise in
  process (``grade_in_process``) once per slip and per mistake, and proves each fails only its
  own part's tests and never gets another mistake's hint.
- Checks run torch on one thread (tiny tensors; ten times faster on a busy machine).
- A student bundle (``course/bundle.py``) carries no reference. ``recording()`` keeps, for every
  visible case, the expected result and each known mistake's result; in a bundle
  (``replaying()``) ``compare`` reads them back, ``copy_of`` gives the learner's own object and
  the given code runs the learner's parts (``learners_code``). So a check reaches the reference
  only through ``copy_of`` or the ``solutions`` imports, and its case labels (``what``) depend
  on the case alone, never on the learner's result.
- Exercise design lives in the template: ``:write: Cls.forward`` names the only bodies the
  learner writes (the constructor and the rest are given); ``solutions/`` carries no markers.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import io
import linecache
import math
import re
import sys
import textwrap
import tokenize
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

COPIES = "course.copies"  # __name__ of code rebuilt from solution source (never "solutions.*")
COURSE = Path(__file__).resolve().parent.parent  # course/: engine frames are not learner code


class CheckFailed(AssertionError):
    """A graded check failed; the message is written for the learner."""


# ---------------------------------------------------------------- mistakes and copies


@dataclass(frozen=True)
class Mistake:
    """A realistic mistake: one edit of one solution object's code, and the hint a learner sees."""

    name: str
    target: str  # dotted path of the solution object, e.g. "solutions.tokenization.merge"
    find: str  # code only (no comment text): matched in the source with comments removed
    replace: str
    hint: str

    def source(self) -> str:
        """The target's code (comments removed) with this mistake made."""
        return edit(code_only(target_source(self.target)), self.find, self.replace)

    def build(self):
        """The mutant object."""
        return _exec(self.target, self.source())


def edit(source: str, find: str, replace: str) -> str:
    count = source.count(find)
    if count != 1:
        raise ValueError(f"edit must match exactly once, matched {count} times: {find!r}")
    return source.replace(find, replace)


def code_only(source: str) -> str:
    """`source` with every comment removed (line structure and strings kept)."""
    lines = source.splitlines(keepends=True)
    for tok in reversed(list(tokenize.generate_tokens(io.StringIO(source).readline))):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            line = lines[row - 1]
            lines[row - 1] = line[:col].rstrip() + ("\n" if line.endswith("\n") else "")
    return "".join(lines)


def _resolve(target: str):
    module_name, _, attr = target.rpartition(".")
    return importlib.import_module(module_name), attr


def target_source(target: str) -> str:
    module, attr = _resolve(target)
    return textwrap.dedent(inspect.getsource(getattr(module, attr)))


def _exec(target: str, source: str, **names):
    """Run `source` in a private copy of the target module's namespace (plus `names`)."""
    module, attr = _resolve(target)
    namespace = dict(vars(module))
    namespace.update(names)
    namespace["__name__"] = COPIES
    exec(compile(source, f"<{target}>", "exec"), namespace)
    return namespace[attr]


def copy_of(target: str):
    """The reference rebuilt from its source, as a learner who typed it would have it (in a
    student bundle, which has no reference: the learner's own object of that name)."""
    return _stand_in(target) if replaying() else _copy_of(target)


@cache
def _copy_of(target: str):
    return _exec(target, target_source(target))


@cache
def mutant(mistake: Mistake):
    return mistake.build()


@dataclass(frozen=True)
class Through:
    """A helper's mistake seen through a later part that calls the helper by name."""

    mistake: Mistake
    target: str  # the calling part

    @property
    def name(self) -> str:
        return self.mistake.name

    @property
    def hint(self) -> str:
        return self.mistake.hint

    def build(self):
        helper = self.mistake.target.rpartition(".")[2]
        return _exec(self.target, target_source(self.target), **{helper: mutant(self.mistake)})


@cache
def _built(known: Mistake | Through):
    return mutant(known) if isinstance(known, Mistake) else known.build()


# ---------------------------------------------------------------- a student bundle's tape


TAPE = Path(__file__).with_name("tape.pt")  # only in a student bundle (course.bundle)
_TAPE: dict | None = None  # the loaded tape: {"known": {check: [Known]}, "cases": {key: ...}}
_TAPE_LOOKED = False
_RECORDING: dict | None = None  # the tape being recorded


@dataclass(frozen=True)
class Known:
    """A mistake as a tape keeps it: its name and hint, and whether it is the part's own."""

    name: str
    hint: str
    own: bool


class NotInBundle(CheckFailed):
    """A check needs a reference object that a student bundle does not carry."""


class NotWritten(NotImplementedError):
    """Raised in a bundle by given code that needs a part the learner has not written yet."""


def replaying() -> bool:
    """True in a student bundle: expected results and mutant results come from its tape."""
    global _TAPE, _TAPE_LOOKED
    if not _TAPE_LOOKED:
        _TAPE_LOOKED = True
        if TAPE.exists():
            import torch

            _TAPE = torch.load(TAPE, weights_only=False)
    return _TAPE is not None


@contextmanager
def recording() -> Iterator[dict]:
    """Record every case the checks run while active: the expected result and every known
    mistake's result (all computed with the reference, which a bundle does not carry)."""
    global _RECORDING
    _RECORDING = {"known": {}, "cases": {}}
    _VERDICTS.clear()
    try:
        yield _RECORDING
    finally:
        _RECORDING = None


def _check_id(spec: Spec) -> str:
    return f"{spec.module}:{spec.check.__qualname__}"


def _taped(probe: Callable, expected: Any, what: str, actual: Any, tolerance: dict) -> Any:
    """The expected result of this case: recorded with its mutants' results while recording;
    in a bundle read from the tape (the `expected` its check computed is not the reference's).
    A case the reference never reached (a check that compares only once the learner's result
    is wrong) keeps its own `expected` in a bundle only when that already fails the learner."""
    if not _ACTIVE or (_RECORDING is None and not replaying()):
        return expected
    context = _ACTIVE[-1]
    n = context.seen[what] = context.seen.get(what, 0) + 1
    key = f"{_check_id(context.spec)}|{what}|{n}"
    if replaying():
        if key not in _TAPE["cases"] and context.blind:  # its case differs: named in the notes
            raise CheckFailed(f"{what}: not checked.")
        if key not in _TAPE["cases"] and not same(actual, expected, **tolerance):
            return expected
        if key not in _TAPE["cases"]:
            raise NotInBundle(f"{what}: this case has no recorded answer in the student bundle "
                              "(it runs when your work is graded).")
        expected, context.cases[what] = _TAPE["cases"][key]
        return expected
    results = {}
    for known in _current_mistakes():
        result = _mutant_result(known, probe, what)
        if not isinstance(result, CheckFailed):
            results[known.name] = result
    _RECORDING["cases"][key] = (expected, results)
    return expected


def _raised_in_case(spec: Spec, raised: Raised) -> NoReturn:
    """In a bundle, the learner's code raised where the check ran the reference to compute the
    expected result of its next case: fail as that case would (the tape keeps cases in order)."""
    __tracebackhide__ = True
    context, prefix = _ACTIVE[-1], _check_id(spec) + "|"
    keys = [key for key in _TAPE["cases"] if key.startswith(prefix)]
    done = sum(context.seen.values())
    if done >= len(keys):
        raise CheckFailed(f"checking {spec.name}: your code raised {raised}")
    what = keys[done][len(prefix):keys[done].rindex("|")]
    context.cases[what] = _TAPE["cases"][keys[done]][1]
    fail(f"{what}\n  raised {raised}", diagnose(raised, lambda obj: None, what))


def _stand_in(target: str) -> Any:
    """In a bundle, the reference `target` is the learner's own object of that name."""
    name = target.rpartition(".")[2]
    if _ACTIVE:
        context = _ACTIVE[-1]
        if context.spec.target == target:
            return context.obj
        namespace = _namespace(context.obj)
        if namespace is not None and name in namespace:
            mine = namespace[name]
            _fails_first(context, target, mine, False)
            if isinstance(mine, type):  # not the notebook's own object: a check may tell apart
                return type(mine.__name__, (mine,), {"__module__": mine.__module__,
                                                     "__qualname__": mine.__qualname__})
            return functools.wraps(mine)(lambda *args, **kwargs: mine(*args, **kwargs)) \
                if inspect.isfunction(mine) else mine
    raise NotInBundle(f"this check needs `{name}`, which the student bundle does not carry "
                      "(it runs when your work is graded).")


# ---------------------------------------------------------------- registry


@dataclass
class Spec:
    target: str
    part: int
    uses: tuple[str, ...]
    check: Callable
    module: str

    @property
    def name(self) -> str:
        return self.target.rpartition(".")[2]

    def mistakes(self) -> list[Mistake | Through]:
        """The target's own mistakes, then those of the helpers it calls."""
        catalogue = getattr(importlib.import_module(self.module), "MISTAKES", [])
        own = [m for m in catalogue if m.target == self.target]
        through = [Through(m, self.target) for u in self.uses for m in catalogue if m.target == u]
        return own + through


REGISTRY: dict[str, list[Spec]] = {}  # dotted target -> its checks, in definition order


def check(target: str, *, part: int, uses: Sequence[str] = ()):
    """Register a check of `target` (graded in Part `part`); `uses`: earlier parts it calls."""

    def register(fn: Callable) -> Callable:
        spec = Spec(target, part, tuple(uses), fn, fn.__module__)

        @functools.wraps(fn)
        def run(obj: Any, hidden: bool = False) -> None:
            __tracebackhide__ = True
            key = (fn.__module__, fn.__qualname__, id(obj), hidden)
            try:
                require_own(obj, spec.name)
                with _checking(spec, obj, hidden):
                    checked = _replayed(obj, hidden) if replaying() else fn(obj, hidden) or True
            except CheckFailed as error:
                _VERDICTS[key] = (obj, str(error).splitlines()[0] if str(error) else "fails")
                raise
            if checked:
                _VERDICTS[key] = (obj, None)

        def _replayed(obj: Any, hidden: bool) -> bool:
            """In a student bundle the check's own code runs the learner's objects where it
            would run the reference: an error there is the learner's. False if it could not
            run yet (a part it needs is not written)."""
            try:
                fn(obj, hidden)
            except NotWritten as error:
                print(f"Note: not checked yet: this needs `{error}`, a part you have not "
                      "written yet. Run this cell again once it is (grading checks it in full).")
                return False
            except (CheckFailed, NotInBundle):
                raise
            except NotImplementedError:
                raise CheckFailed(f"{spec.name} is not implemented yet (it raises "
                                  "NotImplementedError).") from None
            except Exception as error:  # the learner's code, run where the reference was
                _raised_in_case(spec, Raised(type(error).__name__, str(error),
                                             _learner_line(error)))
            return True

        run.spec = spec
        specs = REGISTRY.setdefault(target, [])
        specs[:] = [s for s in specs if s.check.__qualname__ != fn.__qualname__] + [spec]
        spec.check = run
        return run

    return register


def checks_for(target: str) -> list[Callable]:
    """Every registered check of a target (importing its topic module if needed)."""
    if target not in REGISTRY:
        topic = target.split(".")[1]
        importlib.import_module(f"course.checks.{topic}")
    return [s.check for s in REGISTRY.get(target, [])]


def run_checks(target: str, obj: Any, hidden: bool = False) -> None:
    for run in checks_for(target):
        run(obj, hidden)


@dataclass
class _Context:
    spec: Spec
    obj: Any = None  # the learner's object under check
    notes: list[str] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)  # what -> compare calls so far
    blind: bool = False  # a bundle whose earlier part fails: no mistake is hinted
    cases: dict[str, dict] = field(default_factory=dict)  # what -> its taped mutant results


_ACTIVE: list[_Context] = []
_VERDICTS: dict[tuple, tuple[Any, str | None]] = {}  # (check, id, hidden) -> (obj, failure)


def _namespace(obj: Any) -> dict | None:
    """The globals the learner's object looks names up in (a notebook's namespace). A decorated
    function (`@torch.no_grad()`, `functools.wraps`) is unwrapped first: the wrapper's globals
    are the decorator's module, not the notebook."""
    if inspect.isfunction(obj):
        return inspect.unwrap(obj).__globals__
    for value in vars(obj).values() if isinstance(obj, type) else ():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            value = value.fget
        if inspect.isfunction(value):
            return inspect.unwrap(value).__globals__
    return None


def _verdict(target: str, obj: Any, hidden: bool) -> str | None:
    """None if `obj` passes every check of `target`, else the first line of its failure (each
    check's verdict on an object is remembered: a notebook's earlier test cells already ran)."""
    checks_for(target)
    for spec in REGISTRY.get(target, []):
        fn = inspect.unwrap(spec.check)
        key = (fn.__module__, fn.__qualname__, id(obj), hidden)
        if not (key in _VERDICTS and _VERDICTS[key][0] is obj):
            try:
                with redirect_stdout(io.StringIO()):  # the nested checks' own notes
                    spec.check(obj, hidden)
            except CheckFailed:
                pass
        if _VERDICTS.get(key, (None, None))[1] is not None:  # (none: it could not run yet)
            return _VERDICTS[key][1]
    return None


@contextmanager
def _checking(spec: Spec, obj: Any, hidden: bool) -> Iterator[_Context]:
    """Rebind the earlier parts `spec.uses` to the reference in the learner's namespace (in a
    student bundle, which has none: the given code runs the learner's parts instead)."""
    context = _Context(spec, obj)
    namespace = _namespace(obj)
    threads = _one_thread()
    saved: dict[str, Any] = {}
    missing = object()
    if replaying():
        _learner_parts(spec, context, namespace, hidden)
    if namespace is not None and not replaying():
        for used in spec.uses:
            name = used.rpartition(".")[2]
            reference = _copy_of(used)
            mine = namespace.get(name, missing)
            reference_made = str(getattr(mine, "__module__", "")).startswith("solutions")
            if mine is not missing and mine is not reference and not reference_made:
                if _verdict(used, mine, hidden) is not None:
                    part = REGISTRY[used][0].part if REGISTRY.get(used) else "?"
                    context.notes.append(
                        f"Part {part} (`{name}`) fails first; this part was checked with the "
                        f"reference Part {part}.")
            saved[name] = mine
            namespace[name] = reference
    _ACTIVE.append(context)
    try:
        yield context
    except CheckFailed as error:
        if context.notes:
            raise CheckFailed(str(error) + "\n" + "\n".join(dict.fromkeys(context.notes))) \
                from None
        raise
    else:
        for note in dict.fromkeys(context.notes):
            print("Note:", note)
    finally:
        threads()
        _ACTIVE.pop()
        for name, value in saved.items():
            if value is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value


def _learner_parts(spec: Spec, context: _Context, namespace: dict | None,
                   hidden: bool) -> None:
    """In a bundle an earlier part that fails its own checks is named, and then no mistake is
    hinted (the given code runs the learner's parts: `learners_code`)."""
    if namespace is None:
        return
    called = _names_read(context.obj)  # parts it calls by name, declared in `uses` or not
    for used in dict.fromkeys([*spec.uses, *(t for t in REGISTRY
                                             if t.rpartition(".")[2] in called)]):
        name = used.rpartition(".")[2]
        if name in namespace:
            _fails_first(context, used, namespace[name], hidden)


def _names_read(obj: Any) -> set[str]:
    """The global names the code of a function, or of a class's methods, reads."""
    functions = [obj] if inspect.isfunction(obj) else [
        v.fget if isinstance(v, property) else getattr(v, "__func__", v)
        for v in vars(obj).values()] if isinstance(obj, type) else []
    names, codes = set(), [f.__code__ for f in functions if inspect.isfunction(f)]
    while codes:
        code = codes.pop()
        names |= set(code.co_names)
        codes += [c for c in code.co_consts if inspect.iscode(c)]
    return names


def fails_first(target: str, mine: Any, hidden: bool) -> None:
    """In a bundle, where a check runs the learner's `target` in place of the reference: if it
    fails its own checks, say so and hint no mistake (the failure may be that part's)."""
    if _ACTIVE and replaying() and mine is not None:
        _fails_first(_ACTIVE[-1], target, mine, hidden)


def _fails_first(context: _Context, target: str, mine: Any, hidden: bool) -> None:
    if mine is context.obj or not REGISTRY.get(target) \
            or any(c.spec.target == target for c in _ACTIVE) \
            or _verdict(target, mine, hidden) is None:  # (a part being checked: not again)
        return
    name = target.rpartition(".")[2]
    part = REGISTRY[target][0].part
    note = f"Part {part} (`{name}`) fails first, and this part uses it: fix Part {part} first."
    if note not in context.notes:
        context.notes.append(note)
    context.blind = True


def learners_code(namespace: dict, qualnames: Sequence[str]) -> None:
    """In a bundle's given module: each body named ('merge', 'GPT.forward') left to write runs
    the learner's definition of that name in the notebook (`__main__`) once there is one."""
    for qualname in qualnames:
        top, _, attr = qualname.partition(".")
        owner = namespace[top] if attr else None
        stub = vars(owner)[attr] if attr else namespace[top]
        getter = stub.fget if isinstance(stub, property) else stub

        def delegate(*args, _stub=getter, _top=top, _attr=attr, _given=namespace[top],
                     **kwargs):
            mine = getattr(sys.modules.get("__main__"), _top, None)
            if mine is None or mine is _given or (_attr and not isinstance(mine, type)):
                return _stub(*args, **kwargs)
            if _ACTIVE and replaying():
                _fails_first(_ACTIVE[-1], f"{namespace['__name__']}.{_top}", mine, False)
            if _attr:
                mine = vars(mine).get(_attr, _stub)
            return (mine.fget if isinstance(mine, property) else mine)(*args, **kwargs)

        delegate = functools.wraps(getter)(delegate)
        if not attr:
            namespace[top] = delegate
        else:
            setattr(owner, attr, property(delegate) if isinstance(stub, property) else delegate)


def _one_thread() -> Callable[[], None]:
    """Run torch on one thread while checking (a check's tensors are tiny: threads only wait
    for each other, ten times slower on a busy machine); returns the function that restores."""
    torch = sys.modules.get("torch")
    if torch is None:
        return lambda: None
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return lambda: torch.set_num_threads(before)


def _current_mistakes() -> list[Mistake | Through | Known]:
    if not _ACTIVE:
        return []
    spec = _ACTIVE[-1].spec
    if replaying():
        return _TAPE["known"].get(_check_id(spec), [])
    known = spec.mistakes()
    if _RECORDING is not None:
        _RECORDING["known"][_check_id(spec)] = [
            Known(m.name, m.hint, isinstance(m, Mistake)) for m in known]
    return known


# ---------------------------------------------------------------- comparing


@dataclass(frozen=True)
class Raised:
    """What a probe raised, kept as a value so it can be compared with a mutant's."""

    kind: str
    message: str
    line: str = ""  # where the learner's code raised: "line 7: x = q @ k"

    def __str__(self) -> str:
        where_ = f"\n  at {self.line}" if self.line else ""
        return f"{self.kind}: {self.message}{where_}"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Raised) and self.kind == other.kind
                and normalised(self.message) == normalised(other.message))

    def __hash__(self) -> int:
        return hash((self.kind, normalised(self.message)))


@dataclass(frozen=True)
class Raises:
    """The expected result of a case that must raise: an exception of this class."""

    kind: str

    def __str__(self) -> str:
        return f"a {self.kind}"


def normalised(message: str) -> str:
    """An exception message without addresses, object ids and spacing differences."""
    text = re.sub(r"0x[0-9a-fA-F]+", "0x?", message)
    text = re.sub(r"<[^<>]* at [^<>]*>", "<object>", text)
    return " ".join(text.split()).lower()


def same(actual: Any, expected: Any, *, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """Structural equality; tensors and floats compare with a tolerance, shape and dtype exact.
    Exceptions compare by class and normalised message; `Raises` by class only."""
    if isinstance(expected, Raises):
        return isinstance(actual, Raised) and actual.kind == expected.kind
    if isinstance(expected, Raised) or isinstance(actual, Raised):
        return actual == expected
    if type(expected).__module__ == "torch" and type(expected).__name__ == "Tensor":
        import torch

        return (isinstance(actual, torch.Tensor) and actual.shape == expected.shape
                and actual.dtype == expected.dtype and actual.device == expected.device
                and (actual.device.type == "meta"
                     or bool(torch.allclose(actual.detach(), expected.detach(), rtol=rtol,
                                            atol=atol, equal_nan=True))))
    if isinstance(expected, float) and isinstance(actual, (int, float)):
        return math.isclose(actual, expected, rel_tol=rtol, abs_tol=atol)
    if isinstance(expected, dict):  # key order is ignored; compare list(d.items()) when it matters
        return (isinstance(actual, dict) and set(actual) == set(expected)
                and all(same(actual[k], expected[k], rtol=rtol, atol=atol) for k in expected))
    if isinstance(expected, (list, tuple)):
        return (isinstance(actual, (list, tuple)) and len(actual) == len(expected)
                and all(same(a, e, rtol=rtol, atol=atol) for a, e in zip(actual, expected)))
    return type(actual) is type(expected) and actual == expected


def close(got: Any, want: Any, *, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Same shape and values within tolerance, whatever the dtypes (for effect predicates)."""
    import torch

    return (isinstance(got, torch.Tensor) and got.shape == want.shape
            and bool(torch.allclose(got.detach().double(), want.detach().double(), rtol=rtol,
                                    atol=atol)))


def short(value: Any, limit: int = 160) -> str:
    """A repr cut to `limit` characters; tensors show shape and dtype first."""
    if isinstance(value, (Raised, Raises)):
        return f"an exception ({value})" if isinstance(value, Raised) else str(value)
    import torch

    if isinstance(value, torch.Tensor):
        head = f"tensor of shape {tuple(value.shape)}, {value.dtype}"
        if value.device.type == "meta":
            return head + " on meta"
        first = value.detach().flatten()[:6].tolist()
        values = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in first)
        more = ", ..." if value.numel() > 6 else ""
        return f"{head}: [{values}{more}]"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def where(actual: Any, expected: Any) -> str:
    """For two tensors of one shape that differ: where they differ most, in words."""
    import torch

    if not (isinstance(actual, torch.Tensor) and isinstance(expected, torch.Tensor)
            and actual.shape == expected.shape and actual.dtype == expected.dtype
            and actual.device == expected.device and actual.numel()
            and actual.device.type != "meta" and actual.dtype != torch.bool):
        return ""
    gap = (actual.detach() - expected.detach()).abs().nan_to_num(math.inf)
    at = tuple(int(i) for i in torch.unravel_index(gap.argmax(), gap.shape))
    return (f"\n  the largest difference is at index {at}: expected "
            f"{expected[at].item():.6g}, got {actual[at].item():.6g}")


def require_own(obj: Any, what: str) -> None:
    """Zero for a part whose answer is the reference imported from `solutions`."""
    classes = obj.__mro__ if isinstance(obj, type) else (obj,)
    if any(str(getattr(c, "__module__", "")).startswith("solutions") for c in classes):
        raise CheckFailed(f"{what} is imported from the reference `solutions` package. "
                          "Write your own implementation to earn these points.")


def _learner_line(error: BaseException) -> str:
    """'line N: code' of the deepest frame of the learner's own code in the traceback."""
    found = ""
    for frame in traceback.extract_tb(error.__traceback__):
        path = frame.filename
        if path.startswith(("<solutions", "<frozen")) or path.startswith(sys.prefix) \
                or path.startswith(sys.base_prefix) or path.startswith(str(COURSE)) \
                or "site-packages" in path:
            continue
        code = (frame.line or linecache.getline(path, frame.lineno)).strip()
        found = f"line {frame.lineno}: {code}" if code else f"line {frame.lineno}"
    return found


def call(obj: Any, probe: Callable[[Any], Any], what: str) -> Any:
    """Run a probe on an object; an exception becomes a `Raised` value."""
    try:
        return probe(obj)
    except NotWritten:
        raise
    except NotImplementedError:
        raise CheckFailed(f"{what} is not implemented yet (it raises NotImplementedError).") \
            from None
    except CheckFailed:
        raise
    except Exception as error:  # the learner's code may raise anything
        return Raised(type(error).__name__, str(error), _learner_line(error))


_MUTANT_RESULTS: dict[tuple, Any] = {}


def _mutant_result(known: Mistake | Through | Known, probe: Callable, what: str) -> Any:
    if isinstance(known, Known):  # a student bundle: the result its tape keeps, if any
        cases = _ACTIVE[-1].cases.get(what, {}) if _ACTIVE else {}
        return cases.get(known.name, CheckFailed("not on the tape"))
    key = (known, what)
    if key not in _MUTANT_RESULTS:
        try:
            _MUTANT_RESULTS[key] = call(_built(known), probe, known.name)
        except CheckFailed as error:
            _MUTANT_RESULTS[key] = error
    return _MUTANT_RESULTS[key]


def diagnose(actual: Any, probe: Callable[[Any], Any], what: str,
             effects: Sequence[tuple[str, Callable[[Any], bool]]] = (),
             **tolerance) -> list[Mistake | Through]:
    """The known mistakes that explain the learner's result on this case: the mutants giving
    exactly that result; failing that, the mistakes whose effect predicate holds."""
    known = _current_mistakes()
    found = []
    for mistake in known:
        result = _mutant_result(mistake, probe, what)
        if not isinstance(result, CheckFailed) and same(actual, result, **tolerance):
            found.append(mistake)
    own = [m for m in found if isinstance(m, Mistake) or isinstance(m, Known) and m.own]
    if own or isinstance(actual, Raised):  # a part's own mistake before a helper's
        return own or found
    if found:
        return found
    by_name = {m.name: m for m in known}
    for name, holds in effects:
        try:
            if holds(actual):
                found.append(by_name[name])
        except Exception:  # an effect predicate never breaks a check
            continue
    return list(dict.fromkeys(found))


def compare(learner: Any, probe: Callable[[Any], Any], expected: Any, *, what: str,
            parts: Sequence[str] | None = None,
            effects: Sequence[tuple[str, Callable[[Any], bool]]] = (),
            **tolerance) -> Any:
    """Fail with a diagnostic message unless probe(learner) matches `expected`.

    `expected` is the oracle's result for this case (or `Raises(kind)`). With `parts`, the probe
    returns a tuple and each element is compared in turn; the message names the first that
    differs. Returns the learner's result.
    """
    __tracebackhide__ = True
    actual = call(learner, probe, what)
    expected = _taped(probe, expected, what, actual, tolerance)
    if same(actual, expected, **tolerance):
        return actual
    if isinstance(actual, Raised):
        message = f"{what}\n  expected {short(expected)}\n  raised   {actual}" \
            if isinstance(expected, Raises) else f"{what}\n  raised {actual}"
    elif parts is not None and isinstance(actual, tuple) and len(actual) == len(parts) \
            and isinstance(expected, tuple):
        name, got, want = next((n, a, e) for n, a, e in zip(parts, actual, expected)
                               if not same(a, e, **tolerance))
        message = (f"{what}: {name}\n  expected {short(want)}\n  got      {short(got)}"
                   + where(got, want))
    else:
        message = (f"{what}\n  expected {short(expected)}\n  got      {short(actual)}"
                   + where(actual, expected))
    fail(message, diagnose(actual, probe, what, effects, **tolerance))


def fail(message: str, known: Sequence[Mistake | Through] = ()) -> NoReturn:
    """Raise CheckFailed, naming the known mistakes that explain the learner's output."""
    __tracebackhide__ = True
    if known and not (_ACTIVE and _ACTIVE[-1].blind):
        message += "\nLikely mistake: " + "\nOr: ".join(dict.fromkeys(m.hint for m in known))
    raise CheckFailed(message)


def cpu_tensor_spy():
    """A context manager recording the torch functions that return a CPU tensor while active.

    Indexing a `meta` table with a CPU `arange` silently works, so on the meta device it is
    this spy, not the output's device, that catches a tensor made without `device=`.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    class CpuTensorSpy(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.made_on_cpu: list[str] = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor) and out.device.type == "cpu":
                self.made_on_cpu.append(getattr(func, "__name__", str(func)))
            return out

    return CpuTensorSpy()


# ---------------------------------------------------------------- a whole exercise, in process


@dataclass(frozen=True)
class Slip:
    """A learner's plausible wrong version of one solution object, written as code of its own
    (not an edit of the reference): the second catalogue of a topic. `mistake` names the
    catalogued mistake it makes, or None when no hint fits (then none may be given)."""

    name: str
    target: str  # the solution object the learner wrote wrongly
    code: str  # the learner's whole definition of that object
    mistake: str | None


def replace_definition(source: str, qualname: str, code: str) -> str:
    """`source` with the def/class `qualname` ('merge', or 'Cls.method' for a method the learner
    writes inside a given class), decorators included, replaced by `code`."""
    import ast

    body, node = ast.parse(source).body, None
    for piece in qualname.split("."):
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                     and n.name == piece), None)
        if node is None:
            raise ValueError(f"no definition of {qualname!r} in this cell")
        body = node.body
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    lines = source.splitlines()
    pad = " " * node.col_offset
    new = [pad + line if line else line
           for line in textwrap.dedent(code).strip("\n").splitlines()]
    lines[first - 1:node.end_lineno] = new
    return "\n".join(lines)


def _module_of(target: str) -> str:
    """'solutions.attention.MultiHeadAttention.forward' -> 'solutions.attention'."""
    return ".".join(target.split(".")[:2])


@dataclass
class TestCell:
    grade_id: str
    points: int
    failure: str | None  # the learner-facing message, None if it passed


def grade_in_process(exercise: str, *, slip: Slip | None = None,
                     mistake: Mistake | None = None, blank: bool = False) -> list[TestCell]:
    """Run an exercise's instructor notebook (hidden tests included) in this process, with one
    slip or one catalogued mistake made in its solution cell, or with every region the learner
    writes left as released (`blank`); return every test cell's result. The fast, in-process
    proof of what a slip costs (the nbgrader run is tested separately)."""
    cells = _notebook_cells(exercise)
    last = max(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("grade"))
    namespace: dict[str, Any] = {"__name__": "__main__"}
    results = []
    changed = slip is None and mistake is None and not blank  # before a change: the reference's
    demos = _demonstrations(exercise)
    for index, cell in enumerate(cells[:last + 1]):  # the cells after the last test: ungraded
        if cell.cell_type != "code" or index in demos:
            continue
        meta = cell.metadata.get("nbgrader", {})
        source = cell.source
        if meta.get("solution"):
            source = made(source, mistake=mistake, slip=slip, blank=blank)
            changed = changed or source != cell.source
        if meta.get("grade") and not changed:  # unchanged code before it: the reference's result
            results.append(TestCell(meta["grade_id"], int(meta["points"]), None))
            continue
        filename = f"<cell {index}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            with redirect_stdout(io.StringIO()):
                exec(compile(source, filename, "exec", dont_inherit=True), namespace)
            failure = None
        except Exception as error:  # a failing cell: its message is what the learner reads
            failure = f"{type(error).__name__}: {error}"
        if meta.get("grade"):
            results.append(TestCell(meta["grade_id"], int(meta["points"]), failure))
    return results


def made(source: str, *, mistake: Mistake | None = None, slip: Slip | None = None,
         blank: bool = False) -> str:
    """A solution cell's source with one catalogued mistake or one slip made (where it lands
    in this cell), or every region the learner writes left as nbgrader releases it (`blank`)."""
    if mistake is not None and mistake.find in code_only(source):
        source = edit(code_only(source), mistake.find, mistake.replace)
    if slip is not None:
        qualname = slip.target.removeprefix(_module_of(slip.target) + ".")
        if re.search(rf"^(def|class) {qualname.split('.')[0]}\b", source, re.M):
            source = replace_definition(source, qualname, slip.code)
    if blank:
        source = re.sub(r"^( *)### BEGIN SOLUTION\n.*?^ *### END SOLUTION$",
                        r"\1raise NotImplementedError()", source, flags=re.M | re.S)
    return source


@cache
def _demonstrations(exercise: str) -> frozenset[int]:
    """The plain code cells no later graded cell needs: they bind no name a later kept cell
    reads and change no object it reads (a demonstration such as a training run to look at).
    Grading in process skips them; nbgrader runs every cell."""
    import ast

    cells = _notebook_cells(exercise)
    needed: set[str] = set()
    skip = set()
    for index in reversed(range(len(cells))):
        cell = cells[index]
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # a magic: keep it
            continue
        bound, changed = set(), set()
        for node in tree.body:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    bound.add(sub.id)
                elif isinstance(sub, (ast.Attribute, ast.Subscript)) \
                        and isinstance(sub.ctx, ast.Store) and isinstance(sub.value, ast.Name):
                    changed.add(sub.value.id)
                elif isinstance(sub, (ast.FunctionDef, ast.ClassDef)):
                    bound.add(sub.name)
                elif isinstance(sub, ast.alias):
                    bound.add((sub.asname or sub.name).split(".")[0])
        if not cell.metadata.get("nbgrader") and not (bound | changed) & needed:
            skip.add(index)
            continue
        needed |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return frozenset(skip)


@cache
def _notebook_cells(exercise: str) -> tuple:
    from course import exercises

    return tuple(exercises.instructor_notebook(exercises.TEMPLATES / f"{exercise}.md").cells)


def hints_in(message: str) -> list[str]:
    """The hints a failure message gives ("Likely mistake: ..." / "Or: ...", one line each)."""
    return [line.split(": ", 1)[1] for line in message.splitlines()
            if line.startswith(("Likely mistake: ", "Or: "))]
