"""The machinery behind `course.checks.core`, one concern a module."""
