"""Grading a class: each submission autograded alone, sandboxed, merged into the class gradebook."""
