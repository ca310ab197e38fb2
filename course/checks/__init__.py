"""Graded checks: one module (or package of modules) per exercise, named after its topic
(`course.checks.attention` for `03_attention`), with its catalogues of known mistakes
(`MISTAKES`, `SLIPS`) and a `@check` for each solution object the exercise grades; `core` is the
engine they use."""


def topics() -> list[str]:
    """Every exercise's topic, in course order, derived from the templates: each has a checks
    module here."""
    from course.authoring import exercises

    return [name.split("_", 1)[1] for name in exercises.names()]
