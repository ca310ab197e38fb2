"""The one module that reads and rewrites solution source (`course.authoring.source`)."""

from __future__ import annotations

import ast
import builtins
import textwrap

import pytest

from course.authoring import source
from course.grading import runtime, stand_in

MODULE = textwrap.dedent('''\
    from __future__ import annotations


    @decorated
    def first(x):
        return x


    class Second:
        def method(self):
            return 2


    def third():
        return 3
    ''')


def test_definitions_include_decorators_and_nothing_else():
    assert list(source.top_level(MODULE)) == ["first", "Second", "third"]
    assert source.definitions(MODULE)["first"] == "@decorated\ndef first(x):\n    return x"
    assert [name for name, _ in source.functions(ast.parse(MODULE))] == \
        ["first", "Second.method", "third"]


def test_rewrite_replaces_drops_and_keeps_whole_definitions():
    text = source.rewrite(MODULE, lambda node: {"first": "first = 1\n", "third": ""}.get(node.name))
    assert "@decorated" not in text and "first = 1\n" in text
    assert "def third" not in text and "class Second:" in text
    assert text.startswith("from __future__ import annotations\n")
    compile(text, "<rewritten>", "exec")


def test_replace_definition_reaches_a_method_and_keeps_its_indent():
    text = source.replace_definition(MODULE, "Second.method", "def method(self):\n    return 9")
    assert "    def method(self):\n        return 9" in text and "return 2" not in text
    with pytest.raises(ValueError, match="no definition of 'Second.other'"):
        source.replace_definition(MODULE, "Second.other", "pass")


def test_released_and_unwritten_read_what_nbgrader_leaves():
    marked = source.mark_solution("def f(x):\n    '''Doc.'''\n    return x\n\n\ndef g():\n"
                                  "    return 1")
    blank = source.released(marked)
    assert source.BEGIN not in blank and "    '''Doc.'''\n    raise NotImplementedError()" in blank
    assert source.unwritten(blank) == ["f", "g"]
    assert source.unwritten(marked) == []


def test_rebuild_runs_source_beside_the_module_without_touching_it():
    import solutions.attention as attention

    text = source.source_of("solutions.attention.causal_mask")
    copy = source.rebuild("solutions.attention.causal_mask", text)
    assert copy is not attention.causal_mask and copy.__module__ == source.COPIES
    assert bool((copy(4, "cpu") == attention.causal_mask(4, "cpu")).all())
    with pytest.raises(ValueError, match="only copy code from the solutions package"):
        source.source_of("os.path.join")


def test_the_runtime_keeps_only_a_stand_in_of_each_graded_definition():
    text = runtime.redact(MODULE, {"first", "Second"})
    assert list(source.top_level(text)) == ["third"]
    assert "first = stand_in(__name__, 'first', is_class=False)" in text
    assert "Second = stand_in(__name__, 'Second', is_class=True)" in text


def test_a_stand_in_is_the_learners_version_until_judged_then_the_reference(monkeypatch):
    class Mine:
        def __init__(self, x):
            self.x = x

    learner = {"Part": Mine, "helper": lambda x: x + 1}
    monkeypatch.setattr(builtins, "__course_learner__", learner.__getitem__, raising=False)
    monkeypatch.setattr(builtins, "__course_reference__", {}, raising=False)
    Part = stand_in.stand_in("solutions.x", "Part", is_class=True)
    helper = stand_in.stand_in("solutions.x", "helper", is_class=False)
    missing = stand_in.stand_in("solutions.x", "missing", is_class=False)
    assert (Part.__module__, Part.__qualname__, helper.__qualname__) == \
        ("solutions.x", "Part", "helper")
    assert isinstance(Part(3), Mine) and isinstance(Mine(1), Part) and helper(1) == 2
    with pytest.raises(RuntimeError, match="missing is imported from the reference"):
        missing()
    builtins.__course_reference__["helper"] = lambda x: x * 10
    assert helper(2) == 20
def test_mark_solution_wraps_bodies_after_docstrings():
    code = textwrap.dedent('''\
        class A:
            """Doc."""

            def f(self, x):
                """Doc of f."""
                def inner():
                    return x
                return inner()

            @property
            def g(self):
                return 1
        ''')
    marked = source.mark_solution(code)
    assert marked.count(source.BEGIN) == 2 and marked.count(source.END) == 2
    assert '"""Doc of f."""\n        ### BEGIN SOLUTION\n        def inner' in marked
    assert "    return inner()\n        ### END SOLUTION" in marked
    compile(marked, "<marked>", "exec")


def test_write_names_the_only_bodies_the_learner_writes():
    code = textwrap.dedent('''\
        class A:
            def __init__(self):
                self.x = 1

            def forward(self, y):
                """Doc."""
                return y + self.x
        ''')
    marked = source.mark_solution(code, ["A.forward"])
    assert marked.count(source.BEGIN) == 1
    assert "        self.x = 1\n" in marked.split(source.BEGIN)[0]  # given
    assert '"""Doc."""\n        ### BEGIN SOLUTION\n        return y + self.x' in marked
    with pytest.raises(ValueError, match="names no function"):
        source.mark_solution(code, ["A.backward"])


def test_leading_input_checks_stay_given():
    """A body's leading input checks are given; the learner writes from the first other line."""
    code = textwrap.dedent('''\
        def f(x, y=None):
            """Doc."""
            require_batch_ids(x, "x")
            if y is not None:
                require_batch_ids(y, "y", like=x)
            if x.dim() != 2:
                raise ValueError("x must be (B, T)")
            n = x.size(1)
            if n > 3:
                raise ValueError("too long")
            return n
        ''')
    given, written = source.mark_solution(code).split(source.BEGIN)
    assert 'raise ValueError("x must be (B, T)")' in given
    assert "n = x.size(1)" in written and 'raise ValueError("too long")' in written
    only_checks = 'def g(x):\n    """Doc."""\n    self.check_inputs(x)\n    return x\n'
    assert "self.check_inputs(x)\n    ### BEGIN SOLUTION\n    return x" in \
        source.mark_solution(only_checks)


