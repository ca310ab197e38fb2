"""Authoring: the exercise builder, solution-source rewriting, the student bundle."""
