"""One submission, trusted side: nbgrader `autograde` then `generate_feedback`, in one process.

    python -m course.grading.autograde WORK ASSIGNMENT STUDENT

WORK is a per-submission nbgrader course folder made by the grader. This process runs
nbgrader (trusted code) outside any sandbox; the learner's code runs only in the sandboxed
worker that `course.grading.judge.JudgedExecute` starts. Exit status 0 when both steps
succeeded; otherwise the failing step's log is printed and the status is 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

# What grading adds to the course's nbgrader configuration.
CONFIG = '''
c.Autograde.autograde_preprocessors = [
    "course.grading.judge.JudgedExecute",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 40
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "course.grading.feedback.HideHiddenTracebacks",
    "nbgrader.preprocessors.ClearHiddenTests",
    "course.grading.feedback.OnlyText",
    "nbconvert.preprocessors.sanitize.SanitizeHTML",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
c.SanitizeHTML.enabled = True
c.SanitizeHTML.sanitized_output_types = {"text/html", "text/markdown", "text/latex",
                                         "image/svg+xml", "application/javascript"}
# The exercises' folding hints stay folding hints (tags with no attributes, no script).
c.SanitizeHTML.tags = ["a", "abbr", "acronym", "b", "blockquote", "code", "em", "i", "li", "ol",
                       "strong", "ul", "details", "summary"]
'''


def main(argv: list[str]) -> int:
    work, assignment, student = Path(argv[0]), argv[1], argv[2]
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(work)).load_config()
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    for step in (api.autograde, api.generate_feedback):
        result = step(assignment, student, force=True)
        if not result.get("success"):
            print(f"nbgrader {step.__name__} failed")
            print(result.get("log", ""))
            print(result.get("error", ""))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
