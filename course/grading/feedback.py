"""Feedback: hidden tests show their failure message (which the judge has already cut to
what may be shown: `judge._hidden_error`), never their code; nothing from a submission reaches
the instructor's browser as live HTML or script; a bounded copy is kept."""

from __future__ import annotations

import shutil
from pathlib import Path

from nbgrader.preprocessors import NbGraderPreprocessor

HIDDEN = "### BEGIN HIDDEN TESTS"
TEXT = ("text/plain",)
MAX_FEEDBACK_MB = 5


class HideHiddenTracebacks(NbGraderPreprocessor):
    """For cells with hidden tests, cut tracebacks (which quote the code) to `Error: message`.

    Runs before nbgrader's ClearHiddenTests, which removes the hidden code from the source.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and HIDDEN in cell.source:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename')}: {output.get('evalue')}"]
        return cell, resources


class OnlyText(NbGraderPreprocessor):
    """Outputs keep plain text only; cell attachments and raw cells are dropped.

    Markdown cells are then cleaned by nbconvert's SanitizeHTML (no <script>, no on* handlers).
    """

    def preprocess_cell(self, cell, resources, index):
        cell.pop("attachments", None)
        if cell.cell_type == "raw":
            cell.source = ""
        for output in cell.get("outputs", []):
            if "data" in output:
                output["data"] = {k: v for k, v in output["data"].items() if k in TEXT}
            output.pop("metadata", None)
        return cell, resources


def keep(html: Path, result, target: Path) -> None:
    """Copy a graded submission's feedback page to `target` (the class folder's), unless it is
    missing, a link, or over MAX_FEEDBACK_MB (then the result's status says so)."""
    if html.is_file() and not html.is_symlink():
        if html.stat().st_size > MAX_FEEDBACK_MB * 2**20:
            result.status = f"graded (feedback over {MAX_FEEDBACK_MB} MiB, not kept)"
        else:
            result.feedback = target
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(html, target, follow_symlinks=False)
