"""Feedback preprocessors: hidden tests show their failure message, never their code; and
nothing from a submission reaches the instructor's browser as live HTML or script."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor

HIDDEN = "### BEGIN HIDDEN TESTS"
TEXT = ("text/plain",)


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
