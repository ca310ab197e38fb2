"""Submissions, trusted side: nbgrader `autograde` then `generate_feedback`.

    python -m course.grading.autograde WORK ASSIGNMENT STUDENT
    python -m course.grading.autograde --serve

WORK is a per-submission nbgrader course folder made by the grader. This process runs
nbgrader (trusted code) outside any sandbox; the learner's code runs only in the sandboxed
worker that `course.grading.judge.JudgedExecute` starts, a fresh one for every submission.
With WORK: exit status 0 when both steps succeeded; otherwise the failing step's log is printed
and the status is 1.

`--serve` grades many submissions in sequence (one such process per job slot of `grade`), so
nbgrader, the checks and the references are loaded once: each request is one line of JSON on
standard input, each reply one line of JSON on standard output. Nothing of a submission can
stay behind for the next: the learner's code ran in its own worker, now ended, and only plain
data (text, numbers, tensors read with `weights_only`) ever came back from it; each
submission has its own course folder and gradebook; the checks' handles on learner objects
are never reused (`remote.RETIRED`).
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

from course.authoring import exercises

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


def grade(work: Path, assignment: str, student: str) -> tuple[bool, str]:
    """(succeeded, log): autograde then generate_feedback in the course folder WORK."""
    api = exercises.nbgrader_api(work)
    for step in (api.autograde, api.generate_feedback):
        result = step(assignment, student, force=True)
        if not result.get("success"):
            return False, (f"nbgrader {step.__name__} failed\n{result.get('log', '')}\n"
                           f"{result.get('error', '')}")
    return True, ""


def generate(root: Path, assignment: str) -> tuple[bool, str]:
    """(succeeded, log): generate_assignment in the course folder ROOT."""
    try:
        exercises.generate_assignment(root, assignment)
    except RuntimeError as error:
        return False, str(error)
    return True, ""


def peak_rss_mb() -> float:
    """This process's largest resident memory since it started (VmHWM: unlike ru_maxrss, not
    inherited from the process it was forked from)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def serve() -> int:
    """Answer requests until standard input ends (see the module doc)."""
    from course.grading import judge, process

    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints never reach the replies
    home = Path.cwd()
    exercises.gradebooks_without_subprocess()
    judge.SPARES = process.Spares()
    try:
        for line in sys.stdin:
            request = json.loads(line)
            judge.PEAKS.clear()
            try:
                if request["kind"] == "grade":
                    work = Path(request["work"])
                    os.environ[judge.SETTINGS] = json.dumps(request["settings"])
                    os.chdir(work)
                    ok, log = grade(work, request["assignment"], request["student"])
                else:
                    ok, log = generate(Path(request["root"]), request["assignment"])
            except Exception as error:  # noqa: BLE001  (reported; the next request goes on)
                ok, log = False, f"{type(error).__name__}: {error}"
            finally:
                os.chdir(home)
                os.environ.pop(judge.SETTINGS, None)
            rss = peak_rss_mb()
            replies.write(json.dumps({"ok": ok, "log": log[-20_000:],
                                      "worker_mb": max(judge.PEAKS, default=None),
                                      "grader_mb": rss}) + "\n")
            replies.flush()
    finally:
        judge.SPARES.close()
    return 0


def main(argv: list[str]) -> int:
    if argv == ["--serve"]:
        return serve()
    ok, log = grade(Path(argv[0]), argv[1], argv[2])
    if not ok:
        print(log)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
